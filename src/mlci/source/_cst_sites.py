"""What the script rewriter reads from any framework's code: a knob's sites (the literals that hold its value,
through a module-level constant too), what cannot be tuned and why, and the visitor that tracks constants.

mlci.source.rewrite (Keras, scikit-learn) and mlci.source._rewrite_torch (PyTorch) read with it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import libcst as cst

from mlci.core.knobs import REWRITABLE_INTS

INT_KNOBS = REWRITABLE_INTS


@dataclass
class Site:
    """One place in the source that holds a knob's value."""

    knob: str
    line: int
    value: Any
    text: str  # the call as written, shortened
    literal: cst.BaseExpression | None  # the literal to replace; None: the keyword is added to `call`
    call: cst.Call
    keyword: str | None = None
    via: str | None = None  # "EPOCHS = 5 (line 3)" when the call names a module-level constant
    shape: int = 0  # kernel_size written as a tuple of this length (0: an int)
    template: str | None = None  # the literal becomes this code: "keras.optimizers.Adam(learning_rate={value})"
    # A width that must match another site's (nn.Linear(128, 64)'s 128 is the previous layer's output): it
    # takes that site's new value times value // follows.value (a flattened conv output: channels * h * w).
    follows: "Site | None" = None


@dataclass
class Unresolved:
    knob: str
    line: int
    text: str
    why: str
    call: cst.Call | None = None


def _name(func: cst.BaseExpression) -> str:
    if isinstance(func, cst.Name):
        return func.value
    if isinstance(func, cst.Attribute):
        return func.attr.value
    return ""


def _literal(node: cst.BaseExpression) -> tuple[bool, Any]:
    if isinstance(node, cst.Integer):
        return True, int(node.evaluated_value)
    if isinstance(node, cst.Float):
        return True, float(node.evaluated_value)
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        ok, value = _literal(node.expression)
        return ok, -value if ok else None
    if isinstance(node, cst.Tuple) and node.elements:
        values = [_literal(e.value) for e in node.elements]
        if all(ok for ok, _ in values):
            return True, tuple(v for _, v in values)
    return False, None


def _arg(call: cst.Call, keyword: str | Iterable[str], position: int | None) -> cst.Arg | None:
    keywords = {keyword} if isinstance(keyword, str) else set(keyword)
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value in keywords:
            return arg
    if position is not None:
        positional = [a for a in call.args if a.keyword is None and not a.star]
        if len(positional) > position:
            return positional[position]
    return None


def _names_in(target: cst.BaseExpression) -> list[str]:
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, (cst.Tuple, cst.List)):
        return [n for e in target.elements for n in _names_in(e.value)]
    return []



class SiteReader(cst.CSTVisitor):
    """Imports, module-level constants and the sites of knobs found so far; subclasses say which calls hold knobs."""

    def __init__(self, module: cst.Module, path: str, positions):
        self.module = module
        self.path = path
        self.positions = positions
        self.constants: dict[str, list[tuple[cst.BaseExpression, int]]] = {}
        self.sites: list[Site] = []
        self.unresolved: list[Unresolved] = []
        self.imports: set[str] = set()

    def line(self, node: cst.CSTNode) -> int:
        return self.positions[node].start.line

    def text(self, node: cst.CSTNode) -> str:
        code = " ".join(self.module.code_for_node(node).split())
        return code if len(code) <= 70 else code[:67] + "..."

    # imports and module-level constants
    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            self.imports.add(self.module.code_for_node(alias.name).split(".")[0])

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if node.module is not None:
            self.imports.add(self.module.code_for_node(node.module).split(".")[0])

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            if isinstance(target.target, cst.Name):
                self.constants.setdefault(target.target.value, []).append((node.value, self.line(node)))

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if isinstance(node.target, cst.Name):
            self.constants.setdefault(node.target.value, []).append((node.value, -1))

    def visit_For(self, node: cst.For) -> None:
        for name in _names_in(node.target):
            self.constants.setdefault(name, []).append((node.iter, -1))

    def value_of(self, expr: cst.BaseExpression, label: str) -> tuple[cst.BaseExpression, Any, str | None] | str:
        """The literal `expr` is (or the module-level constant it names): (literal, value, via); else why not."""
        node, via = expr, None
        if isinstance(expr, cst.Name) and expr.value not in ("None", "True", "False"):
            bound = self.constants.get(expr.value, [])
            if len(bound) == 1 and bound[0][1] > 0 and _literal(bound[0][0])[0]:
                node, via = bound[0][0], f"{expr.value} = {self.text(bound[0][0])} (line {bound[0][1]})"
            else:
                why = ("its value is computed at run time" if bound else "it is not defined in this file")
                return f"{label}={expr.value}: {why}"
        ok, value = _literal(node)
        if not ok:
            return f"{self.text(expr)} is not a literal number"
        return node, value, via

    def knob(self, call: cst.Call, knob: str, keyword, position: int | None, *, default: Any = None,
             insert: bool = False, expr: cst.BaseExpression | None = None) -> Site | None:
        """Record the site of `knob` in `call` (its argument `keyword` / `position`, or `expr`); the new site."""
        main_keyword = keyword if isinstance(keyword, str) else keyword[0]
        if expr is None:
            arg = _arg(call, keyword, position)
            if arg is None:
                if insert and default is not None:
                    self.sites.append(Site(knob, self.line(call), default, self.text(call), None, call, main_keyword))
                    return self.sites[-1]
                return None
            expr = arg.value
        found = self.value_of(expr, main_keyword)
        if isinstance(found, str):
            self.unresolved.append(Unresolved(knob, self.line(call), self.text(call), found, call))
            return None
        node, value, via = found
        shape = 0
        if knob == "kernel_size" and isinstance(value, tuple):
            if len(set(value)) != 1 or not all(isinstance(v, int) for v in value):
                self.unresolved.append(Unresolved(knob, self.line(call), self.text(call), "a non-square kernel", call))
                return None
            shape, value = len(value), value[0]
        if isinstance(value, tuple) or (knob in INT_KNOBS and not isinstance(value, int)):
            return None
        self.sites.append(Site(knob, self.line(call), value, self.text(call), node, call, main_keyword, via, shape))
        return self.sites[-1]
