"""The command line: the `mlci` group; the commands live in one module per group, listed in COMMANDS below.

Each command parses options, calls one function of the core, and formats; MlciError -> exit code.
A command's module is imported only when that command runs (`mlci --help` reads the help from the source),
so the commands Jenkins calls on every build start at once (bench/startup.py).
"""
from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, MutableMapping
from pathlib import Path

import click

from mlci import __version__
from mlci.core.errors import EXIT_CODES

EXIT_HELP = "\b\nExit codes:\n" + "\n".join(f"  {code:>3}  {text}" for code, text in EXIT_CODES.items())

# name -> (module under mlci.cli, the click command in it), in the order a model goes through them,
# then the reading ones, then the tools: `mlci --help` lists them so.
COMMANDS = {
    "run": ("pipeline", "run"), "fetch": ("pipeline", "fetch"), "detect": ("detect", "detect_command"),
    "launch": ("pipeline", "launch"), "train": ("pipeline", "train"), "wait": ("pipeline", "wait"),
    "check": ("pipeline", "check"), "tweak": ("pipeline", "tweak"), "status": ("pipeline", "status"),
    "notify": ("notify", "notify_command"), "monitor": ("monitor", "monitor_command"),
    "report": ("results", "report"), "history": ("results", "history"), "runs": ("results", "list_runs"),
    "dashboard": ("results", "dashboard"), "worker": ("worker", "worker_command"),
    "daemon": ("daemon", "daemon_command"), "example": ("example", "example_command"),
    "images": ("images", "images_group"), "jenkins": ("jenkins", "jenkins_group"), "hook": ("jenkins", "hook_group"),
    "watch": ("jenkins", "watch_command"),
}
COMMAND_ORDER = tuple(COMMANDS)


class LazyCommands(MutableMapping):
    """The group's commands: a command's module is imported the first time the command is looked up."""

    def __init__(self, table: dict[str, tuple[str, str]]):
        self.table = table
        self.loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self.loaded:
            if name not in self.table:
                raise KeyError(name)
            module, attribute = self.table[name]
            self.loaded[name] = getattr(importlib.import_module(f"mlci.cli.{module}"), attribute)
        return self.loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self.loaded[name] = command

    def __delitem__(self, name: str) -> None:
        self.loaded.pop(name, None)
        self.table.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        yield from self.table
        yield from (name for name in self.loaded if name not in self.table)

    def __len__(self) -> int:
        return len(set(self.table) | set(self.loaded))

    def __contains__(self, name: object) -> bool:
        return name in self.table or name in self.loaded


def short_help(module: str, attribute: str, limit: int = 45) -> str:
    """A command's one-line help as click would make it, read from its module's source (nothing imported)."""
    import ast  # only for --help: the commands themselves never pay for it

    path = Path(__file__).with_name(f"{module}.py")
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return ""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == attribute:
            for decorator in node.decorator_list:
                called = getattr(decorator, "func", None)
                if not (isinstance(called, (ast.Attribute, ast.Name))
                        and getattr(called, "attr", getattr(called, "id", "")) in ("command", "group")):
                    continue  # an option's help=, not the command's
                for keyword in decorator.keywords:
                    if keyword.arg in ("short_help", "help") and isinstance(keyword.value, ast.Constant):
                        text = keyword.value.value
                        return text if keyword.arg == "short_help" else click.utils.make_default_short_help(text, limit)
            doc = ast.get_docstring(node) or ""
            return click.utils.make_default_short_help(doc.split("\f", 1)[0], limit)
    return ""


class PipelineOrderGroup(click.Group):
    """A group that lists its commands in COMMAND_ORDER (any other after them, alphabetically), imported lazily."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.commands = LazyCommands(dict(COMMANDS))

    def list_commands(self, ctx: click.Context) -> list[str]:
        known = [name for name in COMMAND_ORDER if name in self.commands]
        return known + sorted(name for name in self.commands if name not in COMMAND_ORDER)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Like click's, but the help of a command not yet imported comes from its source."""
        limit = formatter.width - 6 - max(len(name) for name in self.list_commands(ctx))
        rows = []
        for name in self.list_commands(ctx):
            if name in self.commands.loaded:
                command = self.commands.loaded[name]
                if command.hidden:
                    continue
                rows.append((name, command.get_short_help_str(limit)))
            else:
                rows.append((name, short_help(*self.commands.table[name], limit=limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=PipelineOrderGroup, epilog=EXIT_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlci")
def main() -> None:
    """mlci: detect a model's kind, train it, check the metric, tweak and retrain until the
    threshold, notify, and heal crashed trials. `mlci run MODEL_FILE` does it all in one process."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # oneDNN reorders float sums: resumed runs must match
