"""Turning a model file into text detection can read: bytes to text, notebook cells to code, text to an AST.

Real repositories hold CRLF files, wrong coding headers, Python 2 lines, notebooks with magics and binaries
named .py; this module copes with each and says what it did, so the evidence can tell the user.
"""
from __future__ import annotations

import ast
import codecs
import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from mlci.core.errors import DetectionError

# Above this many characters an AST costs seconds (10 MB ~ 20 s here); a token scan reads it in one.
AST_LIMIT = 2_000_000
MAX_REPAIRS = 200

_CODING = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")
_SIGNATURES = {
    b"\x89PNG": "a PNG image", b"PK\x03\x04": "a zip archive", b"\x7fELF": "an ELF executable",
    b"\x1f\x8b": "a gzip archive", b"\x89HDF": "an HDF5 file (saved weights?)", b"%PDF": "a PDF document",
    b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image", b"\x93NUMPY": "a NumPy array file",
    b"\x80\x02": "a pickle", b"\x80\x03": "a pickle", b"\x80\x04": "a pickle", b"\x80\x05": "a pickle",
}
_TEXT_CONTROLS = set(b"\t\n\r\f\v\x1b")


@dataclass
class Chunk:
    """One piece of code with its own line numbers: a .py file, or one notebook cell."""

    label: str  # what evidence shows as the file: "train.py" or "nb.ipynb[cell 3]"
    text: str


@dataclass
class Source:
    path: Path
    chunks: list[Chunk]
    notes: list[str] = field(default_factory=list)  # what reading had to do (decoding, dropped magics)


def _binary_kind(data: bytes) -> str | None:
    for magic, kind in _SIGNATURES.items():
        if data.startswith(magic):
            return kind
    head = data[:8192]
    if b"\x00" in head:
        return "binary data (it contains NUL bytes)"
    controls = sum(1 for byte in head if byte < 32 and byte not in _TEXT_CONTROLS)
    if head and controls / len(head) > 0.05:
        return "binary data (control bytes)"
    return None


def coding_header(data: bytes) -> tuple[str | None, int]:
    """The PEP 263 codec a file declares in its first two lines, and that line (None, 0 without one)."""
    for number, line in enumerate(data.split(b"\n", 2)[:2], start=1):
        match = _CODING.match(line)
        if match:
            return match.group(1).decode("ascii", "replace"), number
        if line.strip() and not line.lstrip().startswith(b"#"):
            break  # PEP 263: the header is honoured on line 2 only after a comment line
    return None, 0


def check_coding(data: bytes, name: str) -> None:
    """Python refuses to run a file whose coding header names a codec it does not know: so do detection
    and the harness, with this one line (exit 4)."""
    declared, line = coding_header(data)
    if declared is None:
        return
    try:
        codecs.lookup(declared)
    except LookupError:
        raise DetectionError(f"{name}:{line}: the coding header names an unknown codec {declared!r}; Python "
                             f"cannot run this file", hint="fix the header (e.g. # -*- coding: utf-8 -*-) or "
                                                           "remove it") from None


def decode(data: bytes, name: str) -> tuple[str, list[str]]:
    """Bytes to text: BOMs, the PEP 263 header when it is right, else UTF-8, cp1252, latin-1."""
    notes: list[str] = []
    for bom, codec in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                       (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            try:
                return data.decode(codec), [f"read as {codec.upper()} (byte order mark)"]
            except UnicodeDecodeError:
                break
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    if not data.strip():
        raise DetectionError(f"{name}: the file is empty",
                             hint="commit the model code: a .py file or notebook that builds and trains a model")
    kind = _binary_kind(data)
    if kind:
        raise DetectionError(f"{name}: is {kind}, not Python source",
                             hint="point mlci at the model's .py file or notebook (check what was committed)")
    check_coding(data, name)
    declared = coding_header(data)[0]
    tried = []
    for encoding in (declared, "utf-8", "cp1252", "latin-1"):
        if not encoding or encoding in tried:
            continue
        tried.append(encoding)
        try:
            text = data.decode(encoding)
        except (LookupError, UnicodeDecodeError):
            continue
        if declared and encoding != declared:
            notes.append(f"the coding header says {declared!r} but the file is not; read as {encoding}")
        elif not declared and encoding != "utf-8":
            notes.append(f"not UTF-8; read as {encoding}")
        return text, notes
    raise AssertionError("latin-1 decodes any bytes")  # pragma: no cover


def normalize(text: str) -> str:
    """CRLF and lone CR to LF; NULs out (ast refuses them)."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


# IPython runs these without % or ! (automagic): `pip install keras`, `cd data`.
_AUTOMAGIC = re.compile(r"^(pip|pip3|conda|cd|wget|unzip|apt-get|nvidia-smi)(\s+[-\w./:~]|$)(?!.*[=(])")
_MAGIC_CELLS_KEPT = {"time", "timeit", "capture", "prun", "debug", "tensorflow_version"}


def _cell_code(lines: list[str]) -> list[str]:
    """A cell without IPython magics, one output line per input line (so line numbers stay right)."""
    if lines and lines[0].lstrip().startswith("%%"):
        magic = lines[0].lstrip()[2:].split(None, 1)
        name = magic[0] if magic else ""
        if name == "writefile" and len(magic) > 1 and magic[1].strip().endswith(".py"):
            return [""] + lines[1:]  # code written to a module the notebook then runs
        if name not in _MAGIC_CELLS_KEPT:
            return [""] * len(lines)  # %%bash, %%html, ...: not Python
        lines = [""] + lines[1:]
    code = []
    for line in lines:
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        if stripped.startswith(("%", "!", "?")) or re.match(r"^[\w.]+\s*=\s*[%!]", stripped) \
                or _AUTOMAGIC.match(stripped) or (stripped.endswith("?") and not stripped.startswith("#")):
            code.append(indent + "pass" if indent else "")
        else:
            code.append(line)
    return code


def notebook_chunks(data: bytes, path: Path) -> tuple[list[Chunk], list[str]]:
    text, notes = decode(data, path.name)
    try:
        notebook = json.loads(text)
    except ValueError as exc:
        raise DetectionError(f"{path.name}: is not a valid Jupyter notebook ({exc})",
                             hint="save it again from Jupyter, or export the code to a .py file") from None
    if not isinstance(notebook, dict):
        raise DetectionError(f"{path.name}: is not a Jupyter notebook (no 'cells')",
                             hint="save it again from Jupyter, or export the code to a .py file")
    cells = notebook.get("cells")
    if cells is None:  # nbformat 3 kept cells in worksheets, code under "input"
        cells = [cell for sheet in notebook.get("worksheets") or [] if isinstance(sheet, dict)
                 for cell in sheet.get("cells") or []]
    chunks, dropped = [], 0
    for number, cell in enumerate(cells if isinstance(cells, list) else [], 1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", cell.get("input", ""))
        if isinstance(source, list):
            source = "".join(str(part) for part in source)
        lines = normalize(str(source)).split("\n")
        code = _cell_code(lines)
        dropped += sum(1 for before, after in zip(lines, code) if before != after)
        chunks.append(Chunk(f"{path.name}[cell {number}]", "\n".join(code)))
    if not any(chunk.text.strip() for chunk in chunks):
        raise DetectionError(f"{path.name}: the notebook has no code cells",
                             hint="add the code that builds and trains the model")
    if dropped:
        notes.append(f"{dropped} IPython magic or shell line(s) ignored")
    return chunks, notes


def read_source(path: Path) -> Source:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DetectionError(f"{path}: cannot be read ({exc.strerror or exc})",
                             hint="check the file's permissions") from None
    if path.suffix.lower() == ".ipynb" or (data.lstrip()[:1] == b"{" and b'"cells"' in data[:20000]
                                           and b'"nbformat"' in data):  # a notebook saved under a .py name
        chunks, notes = notebook_chunks(data, path)
        return Source(path, chunks, notes)
    text, notes = decode(data, path.name)
    return Source(path, [Chunk(path.name, normalize(text))], notes)


# ---------------------------------------------------------------- parsing, with repair of broken lines

def _patched(line: str, again: bool) -> str:
    """A stand-in for a line Python 3 cannot parse that keeps the block structure around it."""
    stripped = line.lstrip()
    indent = line[: len(line) - len(stripped)]
    if again or not stripped:
        return ""
    if stripped.startswith("except"):
        head = stripped[6:].split(",", 1)[0].split(":", 1)[0].strip()
        return f"{indent}except {head}:" if head else f"{indent}except:"
    if stripped.startswith("elif"):
        return f"{indent}elif True:"
    if stripped.rstrip().endswith(":"):
        return f"{indent}if True:"
    return f"{indent}pass" if indent else "pass"


_PY2_PRINT = re.compile(r"^(\s*)print(\s*>>|\s+[^\s(=.,)\]}])")
_PY2_EXCEPT = re.compile(r"^(\s*)except\s+([^,:()]+),\s*\w+\s*:")


def _python2_lines(lines: list[str]) -> list[int]:
    """Rewrite every Python 2 print statement and `except E, e:` at once; the line numbers changed."""
    changed = []
    for index, line in enumerate(lines):
        match = _PY2_PRINT.match(line)
        if match:
            lines[index] = f"{match.group(1)}pass" if match.group(1) else "pass"
            changed.append(index + 1)
            continue
        match = _PY2_EXCEPT.match(line)
        if match:
            lines[index] = f"{match.group(1)}except {match.group(2).strip()}:"
            changed.append(index + 1)
    return changed


def _expand_indent(line: str) -> str:
    body = line.lstrip(" \t")
    return line[: len(line) - len(body)].expandtabs(8) + body


def parse(text: str, name: str) -> tuple[ast.Module | None, list[tuple[int, str]]]:
    """The AST of `text`, patching lines Python 3 rejects (Python 2 prints, a stray typo, merge markers).

    Returns the tree (None when no repair helps) and the (line, error) pairs that were patched. Each
    repair costs a parse, so a large file gets fewer.
    """
    lines = text.split("\n")
    patched: dict[int, int] = {}
    errors: list[tuple[int, str]] = []
    python2_done = tabs_done = False
    budget = max(3, min(MAX_REPAIRS, 20_000_000 // max(len(text), 1)))
    for _ in range(budget + 1):
        try:
            with warnings.catch_warnings():  # "invalid escape sequence" and friends are the user's business
                warnings.simplefilter("ignore")
                return ast.parse("\n".join(lines), filename=name), errors
        except SyntaxError as exc:
            lineno, message = exc.lineno, exc.msg
            if isinstance(exc, TabError) and not tabs_done:
                # Python 2 read a tab as "to the next multiple of 8": do the same, for the whole file at once
                tabs_done = True
                lines = [_expand_indent(line) for line in lines]
                errors.append((0, message))  # line 0: the whole file was changed, no line skipped
                continue
        except (ValueError, RecursionError, MemoryError, OverflowError) as exc:
            return None, errors + [(0, type(exc).__name__)]
        if not python2_done and ("print" in message or "exception types" in message):
            python2_done = True
            changed = _python2_lines(lines)
            if changed:
                errors.extend((number, message) for number in changed)
                continue
        if not lineno or lineno > len(lines) or patched.get(lineno, 0) >= 2:
            return None, errors + [(lineno or 0, message)]
        if not errors or errors[-1][0] != lineno:
            errors.append((lineno, message))
        lines[lineno - 1] = _patched(lines[lineno - 1], again=patched.get(lineno, 0) == 1)
        patched[lineno] = patched.get(lineno, 0) + 1
    return None, errors


# ---------------------------------------------------------------- token scan (when no AST can be built)

_TOKEN = re.compile(
    r"""(?P<comment>\#[^\n]*)
    |(?P<string>[rRbBuUfF]{0,2}(?:\"\"\"(?:[^\\]|\\.)*?(?:\"\"\"|\Z)|'''(?:[^\\]|\\.)*?(?:'''|\Z)
        |"(?:[^"\\\n]|\\.)*(?:"|$)|'(?:[^'\\\n]|\\.)*(?:'|$)))
    |(?P<name>[^\W\d]\w*(?:[ \t]*\.[ \t]*[^\W\d]\w*)*)
    |(?P<punct>[()\[\]{}=*;\n])""",
    re.VERBOSE | re.DOTALL | re.MULTILINE,
)
_SPACES = re.compile(r"[ \t]+")


@dataclass(slots=True)
class Token:
    kind: str  # name | punct
    text: str
    line: int


def tokens(text: str) -> list[Token]:
    """Names (dotted, as written) and the punctuation that shapes statements; comments and strings skipped.

    Commas and operators are not kept: a 10 MB file of data literals stays a few hundred thousand tokens.
    """
    found: list[Token] = []
    line = 1
    for _comment, string, name, punct in _TOKEN.findall(text):  # tuples, not Match objects: twice as fast
        if name:
            found.append(Token("name", _SPACES.sub("", name) if " " in name or "\t" in name else name, line))
        elif punct:
            found.append(Token("punct", punct, line))
            if punct == "\n":
                line += 1
        elif string:
            line += string.count("\n")
    return found
