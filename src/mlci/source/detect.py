"""Job 2's first half: read model code and say which framework trains which architecture, with evidence.

Decides by what is trained (fit calls, training loops, what build_model returns), never by what is imported;
reads the AST only (no import of the user's code, no TensorFlow), with a token scan where no AST can be built.
"""
from __future__ import annotations

import ast
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mlci.source._detect_ast import AstFacts
from mlci.source._detect_facts import Facts, Layer, Model
from mlci.source._detect_source import (AST_LIMIT, Chunk, Source, check_coding,  # noqa: F401  (the harness uses it)
                                        parse, read_source, tokens)
from mlci.source._detect_tokens import TokenFacts
from mlci.source._detect_vocab import SUPPORTED, UNSUPPORTED, classify
from mlci.core.errors import DetectionError, UsageError

if TYPE_CHECKING:
    from mlci.core.config import Config, ImagesConfig

FRAMEWORK_NAMES = {"sklearn": "scikit-learn", "keras": "Keras", "torch": "PyTorch"}
SKIP_DIRS = {".git", ".venv", "venv", "env", "site-packages", "__pycache__", ".ipynb_checkpoints", "node_modules",
             ".mlci", "tests", "test", "build", "dist", ".tox"}
MAX_EVIDENCE = 8


@dataclass
class Evidence:
    file: str
    line: int
    text: str
    why: str  # "trains keras.Sequential (fit at line 30)"


@dataclass
class Detection:
    framework: str  # sklearn | keras | torch | unsupported
    architecture: str  # cnn | ann | rnn | classical
    entry: Path  # the file decided on (for a folder: the entry)
    mode: str  # "module" when the file defines a top-level build_model, else "script"
    evidence: list[Evidence]
    fallback: bool  # True when the file did not parse as Python 3 and a degraded reading decided
    found: str | None = None  # for unsupported: what trains (xgboost) or the main import (numpy)
    image_name: str | None = field(default=None, repr=False)  # filled by detect() from the config
    trains: bool = field(default=False, repr=False)  # a training statement or build_model was found

    def image(self, images: "ImagesConfig") -> str | None:
        if self.framework in SUPPORTED:
            return getattr(images, self.framework, None)
        extra = getattr(images, "model_extra", None) or {}
        return extra.get(self.found) if self.found else None

    def to_dict(self) -> dict:
        return {
            "framework": self.framework,
            "architecture": self.architecture,
            "image": self.image_name,
            "entry": str(self.entry),
            "mode": self.mode,
            "fallback": self.fallback,
            "found": self.found,
            "evidence": [vars(item) for item in self.evidence],
        }


# ---------------------------------------------------------------- reading one file into facts

class _Where:
    """Maps the line numbers of the merged code back to a file (or notebook cell) and its own line."""

    def __init__(self, chunks: list[Chunk]):
        self.chunks = chunks
        self.starts: list[int] = []
        self.lines: list[str] = []
        for chunk in chunks:
            self.starts.append(len(self.lines))
            self.lines.extend(chunk.text.split("\n"))

    def locate(self, line: int) -> tuple[str, int, str]:
        index = 0
        for number, start in enumerate(self.starts):
            if start < line:
                index = number
        local = line - self.starts[index] if line > 0 else 0
        text = self.lines[line - 1].strip() if 0 < line <= len(self.lines) else ""
        return self.chunks[index].label, local, text[:160]

    def evidence(self, line: int, why: str) -> Evidence:
        label, local, text = self.locate(line)
        return Evidence(label, local, text, why)


def _read_facts(source: Source) -> tuple[Facts, _Where, bool, list[Evidence]]:
    """Facts of a file; whether a degraded reading was needed; notes for the evidence."""
    where = _Where(source.chunks)
    notes = [Evidence(source.chunks[0].label, 0, "", note) for note in source.notes]
    total = sum(len(chunk.text) for chunk in source.chunks)
    if total > AST_LIMIT:
        notes.append(Evidence(source.chunks[0].label, 0, "", f"fallback to a token scan: {total / 1e6:.1f} MB of "
                              f"code is over the {AST_LIMIT / 1e6:.0f} MB AST limit"))
        return _token_facts(where), where, True, notes
    body: list[ast.stmt] = []
    degraded = False
    for start, chunk in zip(where.starts, source.chunks):
        tree, errors = parse(chunk.text, chunk.label)
        if tree is None:
            line, message = errors[-1] if errors else (0, "unparsable")
            notes.append(where.evidence(start + line if line else 0,
                                        f"fallback to a token scan: no AST could be built ({message} at line {line})"))
            return _token_facts(where), where, True, notes
        if errors:
            degraded = True
            fixed = [line for line, _ in errors if line > 0]
            done = ["tabs read as Python 2 read them"] if len(fixed) < len(errors) else []
            if fixed:
                done.append("line(s) " + ", ".join(map(str, fixed[:5])) + (" ..." if len(fixed) > 5 else "")
                            + " skipped")
            notes.append(where.evidence(start + fixed[0] if fixed else 0, f"fallback: not valid Python 3 "
                                        f"({errors[0][1]}); AST built with {' and '.join(done)}"))
        if start:
            ast.increment_lineno(tree, start)
        body.extend(tree.body)
    try:
        facts: Facts = AstFacts(ast.Module(body=body, type_ignores=[]))
    except RecursionError:
        notes.append(Evidence(source.chunks[0].label, 0, "",
                              "fallback to a token scan: the code nests too deeply for an AST"))
        return _token_facts(where), where, True, notes
    return facts, where, degraded, notes


def _token_facts(where: _Where) -> Facts:
    text = "\n".join(where.lines)
    return TokenFacts(tokens(text), text)


# ---------------------------------------------------------------- deciding

def _pick_framework(models: list[Model]) -> tuple[str, str | None]:
    counts = Counter(model.framework for model in models)
    deep = [name for name in ("keras", "torch") if counts[name]]
    if deep:  # the Keras and PyTorch images carry scikit-learn too, so a deep model decides
        return max(deep, key=lambda name: (counts[name], name == "keras")), None
    others = [name for name in counts if name not in SUPPORTED]
    if others:
        return "unsupported", max(others, key=lambda name: counts[name])
    return "sklearn", None


def _layer_choice(layers: list[Layer]) -> tuple[str, Layer] | None:
    layers = sorted(layers, key=lambda layer: layer.line)  # the first such layer in the file is the evidence
    for arch, weak in (("cnn", False), ("rnn", False), ("cnn", True), ("ann", False)):
        for layer in layers:
            if layer.symbol.arch == arch and layer.symbol.weak == weak:
                return arch, layer
    return None


def _architecture(framework: str, found: str | None, models: list[Model], all_facts: list[Facts]
                  ) -> tuple[str, Evidence | None]:
    if framework == "unsupported":
        return UNSUPPORTED.get(found or "", "classical"), None
    mine = [model for model in models if model.framework == framework]
    if framework == "sklearn":
        if mine and all(model.arch == "ann" for model in mine):
            return "ann", None
        return "classical", None
    layers: list[Layer] = []
    by_facts: dict[int, tuple[Facts, list[Model]]] = {}
    for model in mine:
        if model.facts is not None:
            by_facts.setdefault(id(model.facts), (model.facts, []))[1].append(model)
    for facts, group in by_facts.values():
        layers.extend(layer for layer in facts.layers_for(group) if layer.symbol.framework == framework)
    choice = _layer_choice(layers)
    if choice is None:  # the models' own scopes show no layers: any layer of that framework in the code
        choice = _layer_choice([layer for facts in all_facts for layer in facts.layers
                                if layer.symbol.framework == framework])
    if choice is None:  # (a model whose name says cnn or rnn, keras.applications.*, is a layer where it is built)
        return "ann", None
    arch, layer = choice
    last = layer.symbol.name.rsplit(".", 1)[-1]
    owner = _owner(layer, all_facts, models)
    return arch, owner.evidence(layer.line, f"{last} {'model' if layer.symbol.role == 'model' else 'layer'}: "
                                             f"{arch}" + (" (pooling without convolution)" if layer.symbol.weak
                                                           else ""))


def _owner(layer: Layer, all_facts: list[Facts], models: list[Model]) -> "_Where":
    for facts in all_facts:
        if any(item is layer for item in facts.layers):
            return facts.where
    return models[0].facts.where


@dataclass
class _Verdict:
    framework: str
    architecture: str
    found: str | None
    evidence: list[Evidence]
    trains: bool = False


def _decide(facts: Facts, siblings: list[Facts]) -> _Verdict:
    where: _Where = facts.where
    trained = [t for t in facts.trained if t.model.role == "model"]
    models: list[Model] = []
    evidence: list[Evidence] = []
    involved = [facts]
    if trained:
        models = [t.model for t in trained]
    elif facts.constructed:
        models = list(facts.constructed)
    borrowed = [m for sibling in siblings for m in ([t.model for t in sibling.trained if t.model.role == "model"]
                                                     or sibling.constructed)]
    if not trained and borrowed and (facts.unresolved_fits or facts.signals or not models):
        models, trained = borrowed, []
        involved += siblings
    if not models and [t for t in facts.trained if t.model.role == "transformer"]:
        models = [t.model for t in facts.trained]
        trained = list(facts.trained)
    if not models:
        strong = [layer for layer in facts.layers if not layer.symbol.weak] or facts.layers
        if strong:
            counts = Counter(layer.symbol.framework for layer in strong)
            framework = max(counts, key=lambda name: (counts[name], name == "keras"))
            arch, layer_evidence = _architecture(framework, None, [], involved)
            graph = framework == "keras" and all(layer.symbol.name.startswith("tensorflow.") and
                                                 ".keras." not in layer.symbol.name for layer in strong)
            what = ("TensorFlow graph code (no Keras model): runs in the Keras/TensorFlow image" if graph else
                    f"uses {FRAMEWORK_NAMES.get(framework, framework)} layers; no model object found")
            evidence.append(where.evidence(strong[0].line, what))
            if layer_evidence:
                evidence.append(layer_evidence)
            return _Verdict(framework, arch, None, evidence, bool(facts.signals.get(framework)))
        if facts.keras_style_fits:
            line = facts.keras_style_fits[0]
            evidence.append(where.evidence(line, "trains a model built elsewhere, called the way only Keras' fit "
                                                 "is (epochs, batch_size, fit_generator)"))
            return _Verdict("keras", "ann", None, evidence, True)
        imported = [name for name in SUPPORTED if name in facts.imported_frameworks()
                    or name == "keras" and "tensorflow" in facts.imported_frameworks()]
        if len(imported) > 1 and "sklearn" in imported and not any(
                (symbol := classify(name)) and symbol.role in ("model", "wrapper", "train")
                for name in facts.imported_names if name.startswith("sklearn")):
            imported.remove("sklearn")  # only metrics, splits and scalers from scikit-learn: it trains nothing
            besides = " (scikit-learn only for metrics, splits or preprocessing)"
        else:
            besides = ""
        if facts.unresolved_fits and len(imported) == 1:
            line = facts.unresolved_fits[0]
            evidence.append(where.evidence(line, "trains a model whose kind is not visible here; "
                                                 f"{FRAMEWORK_NAMES[imported[0]]} is the only framework imported"
                                                 + besides))
            return _Verdict(imported[0], "classical" if imported[0] == "sklearn" else "ann", None, evidence, True)
        if facts.module_mode and imported:
            # the harness will call build_model; what it returns is not visible (it raises, or comes from
            # elsewhere), so the framework the module imports is the best evidence left
            line = next(line for top, line in facts.imports
                        if top == imported[0] or imported[0] == "keras" and top == "tensorflow")
            evidence.append(where.evidence(line, f"what build_model returns is not visible; the module imports "
                                                 f"{FRAMEWORK_NAMES[imported[0]]}"))
            return _Verdict(imported[0], "classical" if imported[0] == "sklearn" else "ann", None, evidence, True)
        if facts.signals.get("keras") and "tensorflow" in facts.imported_frameworks():
            line = facts.signals["keras"][0]
            evidence.append(where.evidence(line, "TensorFlow training code without a Keras model: runs in the "
                                                 "Keras/TensorFlow image"))
            return _Verdict("keras", "ann", None, evidence, True)
        if facts.signals.get("torch"):
            line = max(facts.signals["torch"])
            evidence.append(where.evidence(line, "PyTorch training loop; the model it trains is not built here"))
            return _Verdict("torch", "ann", None, evidence, True)
        return _unsupported(facts)
    framework, found = _pick_framework(models)
    chosen = [model for model in models if (model.framework == framework or framework == "unsupported"
                                            and model.framework == found)]
    seen: set[str] = set()
    for item in sorted(trained, key=lambda t: (t.model.facts is not facts, t.model.line or t.line)):
        model = item.model
        if model not in chosen or model.name in seen:
            continue
        seen.add(model.name)
        owner = model.facts.where if model.facts is not None else where
        if item.how == "build_model returns it":
            evidence.append(owner.evidence(item.line, f"build_model returns {model.name}: the harness trains it"))
        elif model.line and model.line != item.line:
            at_label, at_line, _ = where.locate(item.line)
            at = f"line {at_line}" if at_label == owner.locate(model.line)[0] else f"{at_label} line {at_line}"
            evidence.append(owner.evidence(model.line, f"trains {model.name} ({item.how} at {at})"))
        else:
            evidence.append(owner.evidence(item.line, f"trains {model.name} ({item.how})"))
        if len(seen) >= 2:
            break
    loop_lines = facts.signals.get(framework) or []
    if not trained and borrowed and models is borrowed and (facts.unresolved_fits or loop_lines):
        first = chosen[0]
        owner = first.facts.where
        label, line, _ = owner.locate(first.line)
        at = facts.unresolved_fits[0] if facts.unresolved_fits else max(loop_lines)
        how = "" if facts.unresolved_fits else " in a training loop"
        evidence.append(where.evidence(at, f"trains {first.name}{how}, built in {label} (line {line})"))
        evidence.append(owner.evidence(first.line, f"builds {first.name} (imported by {where.chunks[0].label})"))
    elif not trained:
        for model in chosen:
            if model.name in seen:
                continue
            seen.add(model.name)
            owner = model.facts.where if model.facts is not None else where
            borrowed_from = "" if model.facts is facts else f", imported by {where.chunks[0].label}"
            evidence.append(owner.evidence(model.line, f"builds {model.name}{borrowed_from}; no training call "
                                                       "on it found in this file"))
            if len(seen) >= 2:
                break
        for line in facts.unresolved_fits[:1]:
            evidence.append(where.evidence(line, "trains a model whose kind is not visible here"))
    arch, layer_evidence = _architecture(framework, found, chosen, involved)
    if layer_evidence:
        evidence.append(layer_evidence)
    for top, line in facts.imports:
        if top in UNSUPPORTED and top != found and not any(m.framework == top for m in models):
            evidence.append(where.evidence(line, f"imports {top} but trains nothing with it; the "
                                                 f"{FRAMEWORK_NAMES.get(framework, framework)} image may lack it"))
            break
    outranked = sorted({m.name for m in models if m.framework not in (framework, found)})
    if outranked:
        evidence.append(Evidence(where.chunks[0].label, 0, "",
                                 f"also uses {', '.join(outranked[:3])}; {FRAMEWORK_NAMES.get(framework, found)} "
                                 "decides the image"))
    return _Verdict(framework, arch, found, evidence,
                    bool(trained) or bool((facts.unresolved_fits or loop_lines) and models is borrowed))


_STDLIB = set(getattr(__import__("sys"), "stdlib_module_names", ()))


def _unsupported(facts: Facts) -> _Verdict:
    where: _Where = facts.where
    third_party: list[tuple[str, int]] = []
    folder = (facts.path or Path("model.py")).parent
    for top, line in facts.imports:
        local = (folder / f"{top}.py").is_file() or (folder / top).is_dir()
        if top not in _STDLIB and not local and top not in (name for name, _ in third_party):
            third_party.append((top, line))
    found = next((top for top, _ in third_party if top in UNSUPPORTED), None)
    if found is None:
        found = next((top for top, _ in third_party if top not in ("tensorflow", "keras", "torch", "sklearn")),
                     third_party[0][0] if third_party else "python")
    evidence = [where.evidence(line, f"imports {top}") for top, line in third_party[:4]]
    if not third_party:
        evidence.append(Evidence(where.chunks[0].label, 0, "", "no imports and no model"))
    return _Verdict("unsupported", UNSUPPORTED.get(found, "classical"), found, evidence)


# ---------------------------------------------------------------- files, folders, siblings

def _sibling_files(path: Path, facts: Facts) -> list[Path]:
    found = []
    for module, _ in facts.local_imports:
        relative = module.lstrip(".")
        if not relative:
            continue
        base = path.parent / Path(*relative.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file() and candidate.resolve() != path.resolve() and candidate not in found:
                found.append(candidate)
                break
    return found[:10]


def _facts_of(path: Path) -> tuple[Facts, bool, list[Evidence]]:
    source = read_source(path)
    facts, where, degraded, notes = _read_facts(source)
    facts.where = where
    facts.path = path
    return facts, degraded, notes


def _analyze(path: Path) -> Detection:
    """The detection of one .py file or notebook; unsupported code is returned, not raised."""
    facts, degraded, notes = _facts_of(path)
    siblings: list[Facts] = []
    strong = [t for t in facts.trained if t.model.role == "model"]
    if not strong:
        for sibling in _sibling_files(path, facts):
            try:
                siblings.append(_facts_of(sibling)[0])
            except DetectionError:
                continue
    verdict = _decide(facts, siblings)
    evidence = verdict.evidence[:MAX_EVIDENCE] + notes
    return Detection(verdict.framework, verdict.architecture, path, "module" if facts.module_mode else "script",
                     evidence, degraded, verdict.found, trains=verdict.trains)


def _candidates(folder: Path) -> list[Path]:
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".py", ".ipynb")
                   and not p.name.startswith(("test_", "setup.", "conftest", "__init__")))
    if found:
        return found
    deeper: list[Path] = []
    for root, dirs, files in os.walk(folder):
        depth = len(Path(root).relative_to(folder).parts)
        # prune in place: a checkout's .git, .venv or node_modules can hold many thousands of files
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith(".") and depth < 3)
        deeper.extend(Path(root) / name for name in sorted(files)
                      if name.lower().endswith((".py", ".ipynb"))
                      and not name.startswith(("test_", "setup.", "conftest", "__init__")))
        if len(deeper) >= 200:
            break
    return deeper


def _entry_of_folder(folder: Path, config: "Config | None") -> tuple[Path, Detection | None]:
    entry = getattr(config, "entry", None) if config is not None else None
    if entry:
        path = folder / entry
        if not path.is_file():
            raise DetectionError(f"{folder}/mlci.toml: entry = {entry!r} names no file in {folder}",
                                 hint="set entry to the model file, relative to the folder")
        return path, None
    candidates = _candidates(folder)
    if not candidates:
        raise DetectionError(f"{folder}: no .py file or notebook in the folder",
                             hint="point mlci at the model file, or commit it to this folder")
    trainers: list[Detection] = []
    for path in candidates:
        try:
            detection = _analyze(path)
        except DetectionError:
            continue
        if detection.framework != "unsupported" and (detection.mode == "module" or detection.trains):
            trainers.append(detection)
    if len(trainers) == 1:
        return trainers[0].entry, trainers[0]
    if len(trainers) > 1:
        modules = [d for d in trainers if d.mode == "module"]
        named = [d for d in trainers if d.entry.stem in ("train", "main", "model", "run")]
        for preferred, why in ((modules, "the only one defining build_model"),
                               (named, "the only one named train, main, model or run")):
            if len(preferred) == 1:
                chosen = preferred[0]
                others = ", ".join(d.entry.name for d in trainers if d is not chosen)
                chosen.evidence.append(Evidence(chosen.entry.name, 0, "", f"entry of {folder.name}/: {why} of the "
                                                f"files that train (also {others}); set entry in mlci.toml to choose"))
                return chosen.entry, chosen
        names = ", ".join(str(d.entry.relative_to(folder)) for d in trainers[:5])
        raise DetectionError(f"{folder}: several files train a model ({names})",
                             hint=f"name the entry in {folder}/mlci.toml: entry = "
                                  f"\"{trainers[0].entry.relative_to(folder)}\"")
    if len(candidates) == 1:
        return candidates[0], None
    names = ", ".join(str(p.relative_to(folder)) for p in candidates[:5])
    raise DetectionError(f"{folder}: no file in the folder trains a model (looked at {names})",
                         hint=f"name the entry in {folder}/mlci.toml: entry = \"<file>.py\"")


# Libraries that plot, load or show data: a file that imports only these trains nothing an image could run.
_TRAIN_NOTHING = {"python", "matplotlib", "seaborn", "plotly", "bokeh", "altair", "PIL", "cv2", "imageio", "pandas",
                  "requests", "tqdm", "IPython", "ipywidgets", "yaml", "click", "rich"}


def unsupported_message(detection: Detection) -> str:
    trains = next((item for item in detection.evidence if item.why.startswith(("trains", "builds"))), None)
    if trains is not None:
        found = f"it {trains.why.split(' (')[0].split(';')[0]} (line {trains.line})"
    else:
        imports = [item.why.removeprefix("imports ") for item in detection.evidence if item.why.startswith("imports")]
        found = (f"no scikit-learn, Keras or PyTorch model is built or trained here (imports: {', '.join(imports)})"
                 if imports else "no scikit-learn, Keras or PyTorch model is built or trained here (no imports)")
    head = f"{detection.entry}: unsupported model code: {found}"
    if trains is None and (detection.found or "python") in _TRAIN_NOTHING:
        # Nothing is trained (a plotting or data script): an image would not help; the right file would.
        return (f"{head}; point mlci at the file that builds and trains the model (scikit-learn, Keras or "
                f"PyTorch), or name it in mlci.toml: entry = \"<file>.py\"")
    return (f"{head}; mlci has images for scikit-learn, Keras and PyTorch; to run it anyway map an image in "
            f"mlci.toml: [images] {detection.found} = \"your/image:tag\"")


def detect(path: Path, *, config: "Config | None" = None) -> Detection:
    """Detect the framework and architecture of a .py file, a notebook, or a folder's entry file.

    Raises UsageError for a missing path, DetectionError (exit 4) for binary, empty or unsupported code
    (unless [images] in mlci.toml maps what was found to an image).
    """
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder", hint="pass a model .py file, a notebook or a folder")
    if not path.is_dir() and not path.is_file():
        raise DetectionError(f"{path}: is not a regular file (a device, socket or pipe)",
                             hint="pass a model .py file, a notebook or a folder")
    if config is None:
        from mlci.core.config import load_config

        config = load_config(path)[0]
    if path.is_dir():
        entry, detection = _entry_of_folder(path, config)
        detection = detection or _analyze(entry)
    else:
        detection = _analyze(path)
    detection.image_name = detection.image(config.images)
    if detection.framework == "unsupported" and not detection.image_name:
        raise DetectionError(unsupported_message(detection))
    return detection
