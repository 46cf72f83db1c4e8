"""Mutation score of the core: how many deliberate small bugs (mutants) the fast tests catch.

Runs mutmut (the `mutation` extra) module by module, each in its own copy of the tree so the checkout is
never touched, against only the fast tests that exercise that module (mutmut also picks, per mutant, the
tests that reach the mutated function). Prints the score per module and every surviving mutant's diff,
and writes bench/results/mutation.json. Not part of CI: it takes minutes. Run it niced:

    nice -n 15 .venv/bin/python bench/mutation.py            # every module
    nice -n 15 .venv/bin/python bench/mutation.py store oracle
    nice -n 15 .venv/bin/python bench/mutation.py store --resume     # after a stop, or after new tests
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
MUTMUT = Path(sys.executable).with_name("mutmut")


@dataclass(frozen=True)
class Target:
    """One module of the core: the files mutmut mutates, the functions scored (None: all), the fast tests."""

    files: tuple[str, ...]
    tests: tuple[str, ...]
    functions: tuple[str, ...] | None = None
    keyword: str = ""  # a pytest -k expression: leaves out tests that only drive the CLI in subprocesses (slow)


TARGETS = {
    "objective": Target(("src/mlci/core/objective.py",),
                        ("tests/core/test_objective.py", "tests/orchestration/test_oracle.py")),
    "oracle (budget, stop rules)": Target(("src/mlci/orchestration/oracle.py",),
                                          ("tests/orchestration/test_oracle.py", "tests/core/test_objective.py"),
                                          keyword="not launch_answers"),
    "states": Target(("src/mlci/core/states.py",),
                     ("tests/core/test_objective.py", "tests/orchestration/test_oracle.py")),
    "store": Target(("src/mlci/core/store.py", "src/mlci/core/_files.py"),
                    ("tests/core/test_store.py", "tests/orchestration/test_oracle.py"), keyword="not launch_answers"),
    "outbox (notify)": Target(("src/mlci/integrations/notify.py",), ("tests/integrations/test_notify.py",),
                              keyword="not wrong_password and not cli_ and not if_ended"),
    "failure classes": Target(("src/mlci/orchestration/failures.py",), ("tests/orchestration/test_failures.py",)),
    "detection rules": Target(("src/mlci/source/_detect_vocab.py", "src/mlci/source/detect.py",
                               "src/mlci/source/_detect_ast.py", "src/mlci/source/_detect_facts.py"),
                              ("tests/source/test_detect.py",),
                              ("layer_arch", "_layer_choice", "_architecture", "_pick_framework", "layers_for"),
                              keyword="not never_crash and not never_imports"),
}
SHORT = {name.split(" ")[0]: name for name in TARGETS}
# models/: src/mlci/examples links to it (mutmut copies src and stops at a dangling link)
COPIED = ("src", "tests", "jobs", "scripts", "models", "setup.cfg", "pyproject.toml")
LINE = re.compile(r"^\s*(\S+): (\S.*)$")


def function_of(mutant: str) -> str:
    """`mlci.core.store.xǁRunǁupdate__mutmut_3` -> `update`; `...x_file_hash__mutmut_1` -> `file_hash`."""
    name = mutant.rsplit(".", 1)[-1].rsplit("__mutmut_", 1)[0]
    return name.split("ǁ")[-1] if "ǁ" in name else name[2:]


def mutmut_section(target: Target) -> str:
    tests = "\n    ".join(target.tests)
    files = "\n    ".join(target.files)
    keyword = f"\n    -k\n    {target.keyword}" if target.keyword else ""
    return (f"\n[mutmut]\nsource_paths = src\nonly_mutate =\n    {files}\n"
            f"pytest_add_cli_args =\n    -p\n    no:cacheprovider\n    -q\n    -m\n    not slow and not docker{keyword}\n"
            f"pytest_add_cli_args_test_selection =\n    {tests}\n")


def verdicts(copy: Path, target: Target, env: dict) -> dict[str, str]:
    """mutmut's verdict on each mutant of the copy (of the scored functions only, where the target names them)."""
    listed = subprocess.run([str(MUTMUT), "results", "--all", "true"], cwd=copy, env=env, capture_output=True,
                            text=True, timeout=120).stdout
    mutants = {}
    for line in listed.splitlines():
        match = LINE.match(line)
        if match and "__mutmut_" in match.group(1):
            mutants[match.group(1)] = match.group(2)
    if target.functions is not None:
        mutants = {key: value for key, value in mutants.items() if function_of(key) in target.functions}
    return mutants


def copy_tree(copy: Path, items: tuple[str, ...]) -> None:
    for item in items:
        source = ROOT / item
        if source.is_dir():
            shutil.rmtree(copy / item, ignore_errors=True)
            shutil.copytree(source, copy / item, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", "mutants"))
        elif source.exists():
            shutil.copy2(source, copy / item)


def measure(name: str, target: Target, workdir: Path, timeout: float, resume: bool = False) -> dict:
    copy = workdir / re.sub(r"\W+", "-", name)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONDONTWRITEBYTECODE": "1"}
    # only the scored functions' mutants are run (mutmut's names: module.x_function, module.xǁClassǁmethod)
    modules = [file.removeprefix("src/").removesuffix(".py").replace("/", ".") for file in target.files]
    only = [pattern for module in modules for function in target.functions or ()
            for pattern in (f"{module}.x_{function}__mutmut_*", f"{module}.xǁ*ǁ{function}__mutmut_*")]
    batches = [only]
    if resume and (copy / "mutants").is_dir():
        # the tests as they are now, in the copy and in mutmut's: every verdict stands, the mutants not run yet
        # are run, then the survivors again (mutmut runs a mutant named on its command line anew)
        copy_tree(copy, ("tests",))
        copy_tree(copy / "mutants", ("tests",))
        survivors = [key for key, result in verdicts(copy, target, env).items() if result not in ("killed", "timeout")]
        batches += [survivors] if survivors else []
    else:
        shutil.rmtree(copy, ignore_errors=True)
        copy.mkdir(parents=True)
        copy_tree(copy, COPIED)
        with open(copy / "setup.cfg", "a", encoding="utf-8") as handle:
            handle.write(mutmut_section(target))
    started = time.monotonic()
    for names in batches:
        run = subprocess.run([str(MUTMUT), "run", "--max-children", "1", *names], cwd=copy, env=env,
                             capture_output=True, text=True, timeout=timeout)
    return result_of(name, target, copy, time.monotonic() - started, run)


def result_of(name: str, target: Target, copy: Path, seconds: float, run: subprocess.CompletedProcess) -> dict:
    """The module's score from mutmut's verdicts in its copy, with the diff of every survivor."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONDONTWRITEBYTECODE": "1"}
    mutants = verdicts(copy, target, env)
    survivors = []
    for key, result in sorted(mutants.items()):
        if result not in ("killed", "timeout"):  # a mutant that makes a test hang is caught (mutmut counts it so)
            diff = subprocess.run([str(MUTMUT), "show", key], cwd=copy, env=env, capture_output=True, text=True,
                                  timeout=60).stdout
            survivors.append({"mutant": key, "result": result, "diff": diff.strip()})
    killed = sum(1 for result in mutants.values() if result in ("killed", "timeout"))
    return {"module": name, "files": list(target.files), "tests": list(target.tests), "keyword": target.keyword,
            "timeouts": sorted(key for key, result in mutants.items() if result == "timeout"),
            "functions": list(target.functions) if target.functions else None, "mutants": len(mutants),
            "killed": killed, "score": round(100 * killed / len(mutants), 1) if mutants else None,
            "seconds": round(seconds, 1), "exit_code": run.returncode, "survivors": survivors,
            "error": None if mutants else (run.stdout + run.stderr)[-2000:]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help=f"some of: {', '.join(SHORT)} (default: all)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "mlci-mutation")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per module")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "mutation.json")
    parser.add_argument("--resume", action="store_true",
                        help="keep the copy of an earlier (or stopped) run: its verdicts stand; run the mutants it did "
                             "not reach and its survivors again, with the tests of the checkout as they are now")
    args = parser.parse_args()
    if not MUTMUT.exists():
        print(f"mutmut not found at {MUTMUT}: pip install -e '.[mutation]'", file=sys.stderr)
        return 2
    unknown = [m for m in args.modules if m not in SHORT]
    if unknown:
        print(f"unknown module {unknown[0]!r}; choose from {', '.join(SHORT)}", file=sys.stderr)
        return 2
    chosen = [SHORT[m] for m in args.modules] or list(TARGETS)
    console = Console()
    results = []
    for name in chosen:
        console.print(f"[bold]{name}[/]: mutating {', '.join(TARGETS[name].files)} ...")
        result = measure(name, TARGETS[name], args.workdir, args.timeout, args.resume)
        results.append(result)
        save(args.out, [result])  # module by module: a long run stopped early keeps what it measured
        for survivor in result["survivors"]:
            console.print(f"  [yellow]{survivor['result']}[/] {survivor['mutant']}")
            print("    " + "\n    ".join(survivor["diff"].splitlines()[3:]), flush=True)
        if result["error"]:
            console.print(f"  [red]no mutants measured[/]: {result['error']}", markup=False)
    table = Table(title="mutation score (bench/mutation.py, mutmut)")
    for column in ("module", "mutants", "killed", "survived", "score %", "seconds"):
        table.add_column(column, justify="left" if column == "module" else "right")
    for r in results:
        table.add_row(r["module"], str(r["mutants"]), str(r["killed"]), str(len(r["survivors"])),
                      f"{r['score']}" if r["score"] is not None else "—", f"{r['seconds']}")
    total = sum(r["mutants"] for r in results)
    killed = sum(r["killed"] for r in results)
    table.add_row("all", str(total), str(killed), str(total - killed),
                  f"{100 * killed / total:.1f}" if total else "—", f"{sum(r['seconds'] for r in results):.0f}")
    console.print(table)
    console.print(f"wrote {args.out}")
    return 0


def save(out: Path, results: list[dict]) -> None:
    """Merge into the JSON of earlier runs (a module measured again replaces its entry)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(out.read_text()) if out.exists() else {}
    merged = {**previous.get("modules", {}), **{r["module"]: r for r in results}}
    out.write_text(json.dumps({"tool": "mutmut", "modules": merged}, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    sys.exit(main())
