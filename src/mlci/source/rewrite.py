"""Tweaks by rewriting a plain script's source with libcst (formatting and comments kept).

`scan(source)` finds the knobs (literals of epochs, units, filters, kernel size, dropout, learning
rate, scikit-learn parameters; where a layer can be inserted) with their lines; `rewrite(...)`
applies a dict of knob values to a copy and returns the new source and a unified diff.
PyTorch scripts' knobs are found by mlci.source._rewrite_torch; the writing is the same.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from mlci.core.errors import UsageError
from mlci.core.knobs import REWRITABLE, REWRITABLE_INTS
from mlci.source._cst_sites import Site, SiteReader, Unresolved, _arg, _name
from mlci.source._rewrite_torch import is_torch, torch_sites
from mlci.source.mode import is_script  # noqa: F401  (the one module/script rule, re-exported)

KERAS_MODULES = {"keras", "tensorflow", "tf_keras"}
DENSE = {"Dense"}
CONV = {"Conv1D", "Conv2D", "Conv3D", "Convolution1D", "Convolution2D", "Convolution3D"}
POOL = {"MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "MaxPool1D", "MaxPool2D", "MaxPool3D",
        "AveragePooling2D", "AvgPool2D"}
DROPOUT = {"Dropout"}
OPTIMIZER_NAMES = {"adam": "Adam", "adamw": "AdamW", "nadam": "Nadam", "adamax": "Adamax", "rmsprop": "RMSprop",
                   "sgd": "SGD", "adagrad": "Adagrad", "adadelta": "Adadelta"}
OPTIMIZERS = {"Adam": 0.001, "AdamW": 0.001, "Nadam": 0.001, "Adamax": 0.001, "RMSprop": 0.001, "SGD": 0.01,
              "Adagrad": 0.001, "Adadelta": 0.001}
MODEL_BUILDERS = {"Sequential"}
# scikit-learn estimators and the knobs they take: (keyword, position, default when the call omits it)
SKLEARN_KNOBS: dict[str, list[tuple[str, int | None, Any]]] = {
    "KNeighborsClassifier": [("n_neighbors", 0, 5)],
    "KNeighborsRegressor": [("n_neighbors", 0, 5)],
    "SVC": [("C", 0, 1.0)],
    "LinearSVC": [("C", None, 1.0)],
    "LogisticRegression": [("C", None, 1.0)],
    "RandomForestClassifier": [("n_estimators", 0, 100), ("max_depth", None, None)],
    "ExtraTreesClassifier": [("n_estimators", 0, 100), ("max_depth", None, None)],
    "GradientBoostingClassifier": [("n_estimators", None, 100), ("max_depth", None, 3)],
    "DecisionTreeClassifier": [("max_depth", None, None)],
    "AdaBoostClassifier": [("n_estimators", None, 50)],
}
# Knobs whose sites all move together: a site equal to the baseline takes the new value, others scale with it.
SCALAR_KNOBS = REWRITABLE  # from the knob catalogue (mlci.core.knobs), in site order
INT_KNOBS = REWRITABLE_INTS
SITE_ORDER = (*SCALAR_KNOBS, "optimizer")


@dataclass
class Container:
    """A model whose layers mlci can extend: a Sequential list, `.add` calls, or a functional chain."""

    style: str  # list | add | functional
    line: int
    dense: list[cst.Call]  # Dense calls in order (the last is the output layer)
    convs: list[cst.Call]
    pools: list[cst.Call]
    # where the layer calls live: list elements, statements (add / functional), in order
    items: list[Any] = field(default_factory=list)
    owner: Any = None  # the cst.List (list style) or the block holding the statements

    @property
    def hidden_dense(self) -> int:
        return max(len(self.dense) - 1, 0)


@dataclass
class Scan:
    path: str
    sites: list[Site]
    containers: list[Container]
    unresolved: list[Unresolved]
    framework: str | None
    module: cst.Module | None = None
    positions: Any = None
    error: str | None = None
    keras_ref: str | None = None  # how the script names the keras module (keras, tf.keras, ...)

    @property
    def container(self) -> Container | None:
        """The model layers are inserted into: the first one that has an output Dense layer."""
        return next((c for c in self.containers if c.dense and _insertable(c)), None)

    def baseline(self, knob: str) -> Any:
        found = [s.value for s in self.sites if s.knob == knob]
        return found[0] if found else None

    def hparams(self) -> dict[str, Any]:
        """The script's own values of its knobs: the baseline trial's hyperparameters."""
        values: dict[str, Any] = {}
        for site in self.sites:
            if site.value is not None and site.knob not in values and site.follows is None:
                values[site.knob] = site.value
        box = self.container
        if box is not None:
            values["dense_layers"] = box.hidden_dense
            if box.convs and _name(box.convs[-1].func) in ("Conv2D", "Convolution2D"):
                values["conv_blocks"] = len(box.convs)
        return values

    def summary(self) -> str:
        """One line: each knob with its value and line, then what is not tunable."""
        box = self.container
        knobs = [f"{s.knob}={s.value!r} (line {s.line})" for s in self.sites]
        knobs += [f"{k}={v} (line {box.line})" for k, v in self.hparams().items() if k in ("dense_layers", "conv_blocks")]
        untouched = [f"{u.knob} (line {u.line})" for u in self.unresolved]
        return (f"knobs tweak can rewrite: {', '.join(knobs) or 'none'}"
                + (f"; not tunable: {', '.join(untouched)}" if untouched else ""))

    def lines(self) -> list[str]:
        """What `mlci tweak --explain` prints: every knob with file:line, then what could not be used."""
        shown = []
        for site in self.sites:
            where = f"{self.path}:{site.line}"
            value = f"{site.value!r} (not written: the library's default)" if site.literal is None else repr(site.value)
            via = f" via {site.via}" if site.via else ""
            if site.follows is not None:
                via += f" (follows line {site.follows.line})"
            shown.append(f"{where}: {site.knob} = {value}  in {site.text}{via}")
        box = self.container
        if box is not None:
            shown.append(f"{self.path}:{box.line}: dense_layers = {box.hidden_dense}  ({box.style} model; "
                         f"a Dense layer can be inserted before the output layer)")
            if "conv_blocks" in self.hparams():
                shown.append(f"{self.path}:{box.line}: conv_blocks = {len(box.convs)}  ({box.style} model; "
                             f"a Conv2D block can be inserted after the last one)")
        for miss in self.unresolved:
            shown.append(f"{self.path}:{miss.line}: {miss.knob} not tunable: {miss.why}  in {miss.text}")
        return shown


@dataclass
class Rewrite:
    source: str
    diff: str
    changes: list[str]


# ----------------------------------------------------------------------------- reading


class _Reader(SiteReader):
    """Keras and scikit-learn knobs (PyTorch's are read by mlci.source._rewrite_torch)."""

    def __init__(self, module: cst.Module, path: str, positions):
        super().__init__(module, path, positions)
        self.sklearn_names: set[str] = set()  # variables bound to scikit-learn estimators
        self.keras_names: set[str] = set()  # variables bound to Sequential(...), Model(...), a local builder
        self.functions: set[str] = set()
        self.keras_ref: str | None = None  # how this file names the keras module (keras, tf.keras, ...)
        self.layer_calls: list[cst.Call] = []

    def visit_Import(self, node: cst.Import) -> None:
        super().visit_Import(node)
        for alias in node.names:
            dotted = self.module.code_for_node(alias.name)
            bound = alias.asname.name.value if alias.asname and isinstance(alias.asname.name, cst.Name) else None
            if dotted in ("keras", "tensorflow.keras"):
                self.keras_ref = self.keras_ref or bound or dotted
            elif dotted == "tensorflow":
                self.keras_ref = self.keras_ref or f"{bound or dotted}.keras"

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        super().visit_ImportFrom(node)
        if node.module is not None:
            if self.module.code_for_node(node.module) == "tensorflow" and not isinstance(node.names, cst.ImportStar):
                for alias in node.names:
                    if alias.name.value == "keras":
                        bound = alias.asname.name.value if alias.asname else "keras"
                        self.keras_ref = self.keras_ref or bound

    def visit_Assign(self, node: cst.Assign) -> None:
        super().visit_Assign(node)
        for target in node.targets:
            if isinstance(target.target, cst.Name):
                if isinstance(node.value, cst.Call) and _name(node.value.func) in SKLEARN_KNOBS:
                    self.sklearn_names.add(target.target.value)
                if isinstance(node.value, cst.Call) and (_name(node.value.func) in MODEL_BUILDERS | {"Model"}
                                                         or _name(node.value.func) in self.functions):
                    self.keras_names.add(target.target.value)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.functions.add(node.name.value)

    # the calls that hold knobs
    def visit_Call(self, node: cst.Call) -> None:
        name = _name(node.func)
        if name in DENSE | CONV | POOL | DROPOUT:
            self.layer_calls.append(node)
        if name == "fit" and isinstance(node.func, cst.Attribute):
            self._fit(node)
        elif name in SKLEARN_KNOBS:
            for keyword, position, default in SKLEARN_KNOBS[name]:
                self.knob(node, keyword, keyword, position, default=default, insert=True)
        elif name in OPTIMIZERS:
            self.knob(node, "learning_rate", ("learning_rate", "lr"), 0, default=OPTIMIZERS[name],
                       insert=bool(self.imports & KERAS_MODULES))
            if self.imports & KERAS_MODULES:  # the class is a knob too: the call is rewritten whole
                self.sites.append(Site("optimizer", self.line(node), name.lower(), self.text(node), node, node))
        elif name == "compile" and isinstance(node.func, cst.Attribute) and self.imports & KERAS_MODULES:
            self._optimizer_by_name(node)
        elif name in DROPOUT:
            self.knob(node, "dropout", "rate", 0)
        elif name in CONV:
            self.knob(node, "filters", "filters", 0)
            self.knob(node, "kernel_size", "kernel_size", 1)
        elif name in DENSE:
            self.knob(node, "units", ("units", "output_dim"), 0)  # output layers are dropped in scan()

    def _fit(self, node: cst.Call) -> None:
        receiver = node.func.value if isinstance(node.func, cst.Attribute) else None
        has_epochs = _arg(node, ("epochs", "nb_epoch"), 3) is not None  # fit(x, y, batch_size, epochs)
        name = receiver.value if isinstance(receiver, cst.Name) else ""
        keras_model = name in self.keras_names or ("model" in name.lower() and name not in self.sklearn_names)
        if not has_epochs and not (self.imports & KERAS_MODULES and keras_model):
            return  # a scikit-learn fit (a scaler, an estimator): it takes no epochs
        self.knob(node, "epochs", ("epochs", "nb_epoch"), 3, default=1, insert=True)

    def _optimizer_by_name(self, call: cst.Call) -> None:
        """compile(optimizer="adam"): the learning rate is Keras' default until mlci writes the optimizer out."""
        arg = _arg(call, "optimizer", 0)
        if arg is None or not isinstance(arg.value, cst.SimpleString):
            return
        class_name = OPTIMIZER_NAMES.get(str(arg.value.evaluated_value).lower())
        if class_name is None:
            return
        keras_ref = self.keras_ref or '__import__("keras")'
        self.sites.append(Site("optimizer", self.line(call), class_name.lower(), self.text(call), arg.value, call))
        self.sites.append(Site("learning_rate", self.line(call), OPTIMIZERS[class_name], self.text(call), arg.value,
                               call, "optimizer", template=f"{keras_ref}.optimizers.{class_name}(learning_rate={{value}})"))

def _layer_of(expr: cst.BaseExpression) -> cst.Call | None:
    """The layer constructor in `Dense(8)` or in the functional `Dense(8)(x)`."""
    if isinstance(expr, cst.Call):
        if _name(expr.func) in DENSE | CONV | POOL:
            return expr
        if isinstance(expr.func, cst.Call) and _name(expr.func.func) in DENSE | CONV | POOL:
            return expr.func
    return None


def _containers(module: cst.Module, reader: _Reader) -> list[Container]:
    found: list[Container] = []
    in_loop: set[int] = set()

    class Finder(cst.CSTVisitor):
        def __init__(self):
            self.loop_depth = 0

        def visit_For(self, node):
            self.loop_depth += 1

        def leave_For(self, node):
            self.loop_depth -= 1

        def visit_While(self, node):
            self.loop_depth += 1

        def leave_While(self, node):
            self.loop_depth -= 1

        def visit_Call(self, node: cst.Call) -> None:
            if self.loop_depth and _layer_of(node) is not None:
                in_loop.add(id(_layer_of(node)))
            if _name(node.func) in MODEL_BUILDERS and node.args and isinstance(node.args[0].value, cst.List):
                items = list(node.args[0].value.elements)
                layers = [(_layer_of(e.value), e) for e in items]
                found.append(_container("list", reader.line(node), layers, node.args[0].value))

        def _block(self, body) -> None:
            adds: dict[str, list] = {}
            chain: list = []
            for statement in body:
                if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
                    continue
                small = statement.body[0]
                if isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
                    call = small.value
                    if (_name(call.func) == "add" and isinstance(call.func, cst.Attribute)
                            and isinstance(call.func.value, cst.Name) and call.args):
                        adds.setdefault(call.func.value.value, []).append((_layer_of(call.args[0].value), statement))
                elif (isinstance(small, cst.Assign) and len(small.targets) == 1
                      and isinstance(small.targets[0].target, cst.Name) and isinstance(small.value, cst.Call)
                      and isinstance(small.value.func, cst.Call) and _layer_of(small.value) is not None):
                    chain.append((_layer_of(small.value), statement))
            for layers in adds.values():
                found.append(_container("add", reader.line(layers[0][1]), layers, body))
            if chain:
                found.append(_container("functional", reader.line(chain[0][1]), chain, body))

        def visit_Module(self, node: cst.Module) -> None:
            self._block(node.body)

        def visit_IndentedBlock(self, node: cst.IndentedBlock) -> None:
            self._block(node.body)

    module.visit(Finder())
    # A model built in a loop cannot be extended by inserting one statement: leave it alone.
    return [c for c in found if not any(id(call) in in_loop for call in c.dense + c.convs)]


def _container(style: str, line: int, layers: list, owner: Any) -> Container:
    calls = [call for call, _ in layers if call is not None]
    return Container(style, line, [c for c in calls if _name(c.func) in DENSE],
                     [c for c in calls if _name(c.func) in CONV], [c for c in calls if _name(c.func) in POOL],
                     items=layers, owner=owner)


def scan(source: str, path: str = "model.py") -> Scan:
    """Every knob of a script, with its line; never raises for a file libcst cannot read (error is set)."""
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError as exc:
        return Scan(path, [], [], [], None, error=f"{path}:{exc.raw_line}: cannot be parsed ({exc.message})")
    wrapper = MetadataWrapper(module)
    positions = wrapper.resolve(PositionProvider)
    reader = _Reader(wrapper.module, path, positions)
    wrapper.module.visit(reader)
    if is_torch(reader.imports) and not reader.imports & KERAS_MODULES:
        _, sites, unresolved = torch_sites(wrapper.module, path, positions)
        sites.sort(key=lambda s: (s.line, SITE_ORDER.index(s.knob)))
        return Scan(path, sites, [], unresolved, "torch", wrapper.module, positions)
    framework = "keras" if reader.imports & KERAS_MODULES else ("sklearn" if "sklearn" in reader.imports else None)
    containers = _containers(wrapper.module, reader) if framework == "keras" else []
    # The output layer's units are the number of classes: never a knob.
    dense_calls = [c for c in reader.layer_calls if _name(c.func) in DENSE]
    outputs = {id(c.dense[-1]) for c in containers if c.dense} | {id(c) for c in dense_calls if _is_output(c)}
    if dense_calls and not containers:
        outputs.add(id(dense_calls[-1]))
    sites = [s for s in reader.sites if not (s.knob == "units" and id(s.call) in outputs)]
    unresolved = [u for u in reader.unresolved if not (u.knob == "units" and id(u.call) in outputs)]
    sites.sort(key=lambda s: (s.line, SITE_ORDER.index(s.knob)))
    return Scan(path, sites, containers, unresolved, framework, wrapper.module, positions, keras_ref=reader.keras_ref)


def _is_output(call: cst.Call) -> bool:
    activation = _arg(call, "activation", 1)
    return (activation is not None and isinstance(activation.value, cst.SimpleString)
            and activation.value.evaluated_value in ("softmax", "sigmoid"))


def scan_file(path: Path) -> Scan:
    try:
        source = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot be read ({exc})", hint="pass a Python file") from None
    return scan(source, str(path))


# ----------------------------------------------------------------------------- writing


def _number(value: Any, like: Any) -> cst.BaseExpression:
    if isinstance(like, int) and not isinstance(like, bool):
        return cst.Integer(str(int(round(value))))
    text = repr(float(value))
    return cst.Float(text) if "e" not in text else cst.parse_expression(text)


def _scaled(old: Any, base: Any, new: Any, knob: str) -> Any:
    if old == base or not base:
        value = new
    else:
        value = old * (new / base)
    if knob in INT_KNOBS:
        value = max(1, int(round(value)))
    if knob == "dropout":
        value = round(min(max(float(value), 0.0), 0.9), 4)
    return value


def _quote(module: cst.Module) -> str:
    code = module.code
    return "'" if code.count("'") > code.count('"') else '"'


def rewrite(source: str, hparams: dict[str, Any], path: str = "model.py", new_path: str | None = None) -> Rewrite:
    """Apply knob values to a script; returns the new source, a unified diff and one line per change."""
    found = scan(source, path)
    if found.error:
        raise UsageError(f"{found.error}; mlci cannot rewrite it", hint="train it unchanged (the baseline)")
    baseline = found.hparams()
    unknown = sorted(set(hparams) - set(baseline) - {"seed"})
    if unknown:
        raise UsageError(f"{path}: no place in the source for hparam(s) {', '.join(unknown)}",
                         hint=f"tunable here: {', '.join(sorted(baseline)) or 'none'} (`mlci tweak --explain {path}`)")
    replace: dict[int, cst.BaseExpression] = {}
    add_keyword: dict[int, list[cst.Arg]] = {}
    changes: list[str] = []
    optimizer = hparams.get("optimizer", baseline.get("optimizer"))
    if optimizer != baseline.get("optimizer") or (
            "learning_rate" in hparams and hparams["learning_rate"] != baseline.get("learning_rate")):
        changes += _rewrite_optimizers(found, optimizer, hparams, baseline, replace, path)
    for knob in SCALAR_KNOBS:
        if knob not in hparams or hparams[knob] == baseline.get(knob):
            continue
        new = hparams[knob]
        if not isinstance(new, (int, float)) or isinstance(new, bool):
            raise UsageError(f"{path}: hparam '{knob}' = {new!r} must be a number", hint="fix hparams.json")
        base = baseline[knob]
        for site in (s for s in found.sites if s.knob == knob and id(s.literal) not in replace
                     and id(s.call) not in replace):
            value = _scaled(site.value, base, new, knob)
            if site.follows is not None:
                value = _scaled(site.follows.value, base, new, knob) * (site.value // site.follows.value)
            like = 1 if knob in INT_KNOBS else 1.0
            expr = _number(value, like)
            if site.shape:
                expr = cst.Tuple([cst.Element(_number(value, 1)) for _ in range(site.shape)])
            if site.template:
                expr = cst.parse_expression(site.template.format(value=repr(value)))
            if site.literal is None:
                add_keyword.setdefault(id(site.call), []).append(
                    cst.Arg(expr, keyword=cst.Name(site.keyword), equal=cst.AssignEqual(
                        whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace(""))))
            elif id(site.literal) not in replace:
                replace[id(site.literal)] = expr
            changes.append(f"line {site.line}: {knob} {site.value!r} -> {value!r}" + (" (added)" if site.literal is None else ""))
    inserts_before: dict[int, list] = {}
    inserts_after: dict[int, list] = {}
    box = found.container
    quote = _quote(found.module)
    for knob in ("dense_layers", "conv_blocks"):
        if knob not in hparams or hparams[knob] == baseline.get(knob):
            continue
        extra = hparams[knob] - baseline[knob] if isinstance(hparams[knob], int) else -1
        if extra < 0:
            raise UsageError(f"{path}: hparam '{knob}' = {hparams[knob]!r}: mlci can add layers, not remove them "
                             f"(the script has {baseline[knob]})", hint="propose a larger value")
        if knob == "dense_layers":
            units = _inserted_units(found, hparams, baseline)
            code = f"{found.module.code_for_node(box.dense[-1].func)}({units}, activation={quote}relu{quote})"
            layers = [code] * extra
            anchor, where = _anchor(box, box.dense[-1]), inserts_before
            changes.append(f"line {found.positions[box.dense[-1]].start.line}: "
                           f"{extra} Dense({units}) layer(s) inserted before the output layer")
        else:
            filters = _inserted_filters(found, hparams, baseline)
            conv = f"{found.module.code_for_node(box.convs[-1].func)}({filters}, (3, 3), padding={quote}same{quote}, activation={quote}relu{quote})"
            last = box.convs[-1]
            block = [conv]
            pools_after = [p for p in box.pools if _order(box, p) > _order(box, last)]
            if box.pools:
                block.append(found.module.code_for_node(box.pools[-1]))
                if pools_after:
                    last = pools_after[0]
            layers = block * extra
            anchor, where = _anchor(box, last), inserts_after
            changes.append(f"line {found.positions[last].start.line}: {extra} Conv2D({filters}) "
                           f"block(s) inserted after the last convolution block")
        where.setdefault(id(anchor), []).extend(_layer_items(box, anchor, layers, where is inserts_before))
    if not changes:
        return Rewrite(source, "", [])
    new_module = found.module.visit(_Writer(replace, add_keyword, inserts_before, inserts_after))
    new_source = new_module.code
    diff = "".join(difflib.unified_diff(source.splitlines(keepends=True), new_source.splitlines(keepends=True),
                                        fromfile=path, tofile=new_path or path))
    return Rewrite(new_source, diff, changes)


def _rewrite_optimizers(found: Scan, optimizer: Any, hparams: dict[str, Any], baseline: dict[str, Any],
                        replace: dict[int, cst.BaseExpression], path: str) -> list[str]:
    """A changed optimizer class: each optimizer the script builds (or names) becomes the new class with the
    trial's learning rate; its other arguments (momentum, ...) belong to the old class and are dropped."""
    sites = [s for s in found.sites if s.knob == "optimizer"]
    if optimizer == baseline.get("optimizer") or not sites:
        return []
    class_name = OPTIMIZER_NAMES.get(str(optimizer).lower())
    if class_name is None:
        raise UsageError(f"{path}: hparam 'optimizer' = {optimizer!r} is not a Keras optimizer",
                         hint=f"use one of {', '.join(sorted(OPTIMIZER_NAMES))}")
    rate = hparams.get("learning_rate", OPTIMIZERS[class_name])
    changes = []
    for site in sites:
        func = site.literal.func if isinstance(site.literal, cst.Call) else None
        if isinstance(func, cst.Attribute):
            prefix = found.module.code_for_node(func.value)  # keras.optimizers.SGD -> keras.optimizers
        else:
            prefix = f"{_keras_ref(found)}.optimizers"
        replace[id(site.literal)] = cst.parse_expression(f"{prefix}.{class_name}(learning_rate={rate!r})")
        changes.append(f"line {site.line}: optimizer {site.value} -> {class_name}(learning_rate={rate!r})")
    return changes


def _keras_ref(found: Scan) -> str:
    """How the rewritten copy names the keras module: as the script does, else an import that always works."""
    return found.keras_ref or '__import__("keras")'


def _order(box: Container, call: cst.Call) -> int:
    return next(i for i, (c, _) in enumerate(box.items) if c is call)


def _anchor(box: Container, call: cst.Call) -> Any:
    return box.items[_order(box, call)][1]


def _inserted_units(found: Scan, hparams: dict[str, Any], baseline: dict[str, Any]) -> int:
    hidden = [s for s in found.sites if s.knob == "units"]
    if hidden:
        last = hidden[-1].value
        return max(8, int(round(_scaled(last, baseline["units"], hparams.get("units", baseline["units"]), "units"))))
    return int(hparams.get("units", 128))


def _inserted_filters(found: Scan, hparams: dict[str, Any], baseline: dict[str, Any]) -> int:
    convs = [s for s in found.sites if s.knob == "filters"]
    if convs:
        return int(_scaled(convs[-1].value, baseline["filters"], hparams.get("filters", baseline["filters"]), "filters"))
    return 64


def _layer_items(box: Container, anchor: Any, layers: list[str], before: bool) -> list:
    """New list elements or statements, shaped like the anchor so the formatting stays the same."""
    made = []
    for code in layers:
        layer = cst.parse_expression(code)
        if box.style == "list":
            # the element before the anchor carries the comma and line break a new element needs
            elements = list(box.owner.elements)
            index = next(i for i, e in enumerate(elements) if e is anchor)
            comma = elements[index - 1].comma if before and index > 0 else anchor.comma
            made.append(anchor.with_changes(value=layer, comma=comma))
        elif box.style == "add":
            call = anchor.body[0].value
            made.append(anchor.with_changes(leading_lines=[], body=[anchor.body[0].with_changes(
                value=call.with_changes(args=[call.args[0].with_changes(value=layer)]))]))
        else:
            # A new step of the chain reads and writes one variable: x = Dense(64, ...)(x)
            assign = anchor.body[0]
            variable = assign.value.args[0].value if before else assign.targets[0].target
            made.append(anchor.with_changes(leading_lines=[], body=[assign.with_changes(
                targets=[assign.targets[0].with_changes(target=variable)],
                value=cst.Call(func=layer, args=[cst.Arg(variable)]))]))
    return made


def _insertable(box: Container) -> bool:
    """Functional chains take a new step only where the output layer reads a plain variable."""
    if box.style != "functional" or not box.dense:
        return bool(box.dense)
    statement = _anchor(box, box.dense[-1])
    call = statement.body[0].value
    return len(call.args) == 1 and isinstance(call.args[0].value, cst.Name)


class _Writer(cst.CSTTransformer):
    def __init__(self, replace, add_keyword, before, after):
        self.replace = replace
        self.add_keyword = add_keyword
        self.before = before
        self.after = after

    def on_leave(self, original, updated):
        if id(original) in self.replace:
            return self.replace[id(original)]
        return super().on_leave(original, updated)

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        extra = self.add_keyword.get(id(original))
        if not extra:
            return updated
        args = list(updated.args)
        if args and not isinstance(args[-1].comma, cst.Comma):
            args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
        return updated.with_changes(args=args + extra)

    def _splice(self, original_items, updated_items):
        result = []
        for original, updated in zip(original_items, updated_items):
            result.extend(self.before.get(id(original), []))
            result.append(updated)
            result.extend(self.after.get(id(original), []))
        return result

    def leave_List(self, original: cst.List, updated: cst.List) -> cst.BaseExpression:
        if not any(id(e) in self.before or id(e) in self.after for e in original.elements):
            return updated
        elements = list(updated.elements)
        spliced = self._splice(original.elements, elements)
        # every element but the last needs a comma; the original last keeps its own (trailing or none)
        fixed = []
        for i, element in enumerate(spliced):
            if i < len(spliced) - 1 and not isinstance(element.comma, cst.Comma):
                comma = next((e.comma for e in elements if isinstance(e.comma, cst.Comma)),
                             cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
                element = element.with_changes(comma=comma)
            fixed.append(element)
        if fixed and elements and not isinstance(elements[-1].comma, cst.Comma):
            fixed[-1] = fixed[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        return updated.with_changes(elements=fixed)

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        return updated.with_changes(body=self._splice(original.body, updated.body))

    def leave_IndentedBlock(self, original: cst.IndentedBlock, updated: cst.IndentedBlock) -> cst.IndentedBlock:
        return updated.with_changes(body=self._splice(original.body, updated.body))
