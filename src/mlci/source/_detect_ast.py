"""The AST reader of detection's facts: names resolved through imports, aliases, assignments, function
returns and loops."""
from __future__ import annotations

import ast
from collections import defaultdict

from mlci.source._detect_facts import (KERAS_FIT_KEYWORDS, KNOWN_TOPS, PASS_THROUGH, TRAIN_METHODS, Facts, Layer,
                                       Model, Trained, display)
from mlci.source._detect_vocab import UNSUPPORTED, Symbol, classify
from mlci.source.mode import defines_build_model


class AstFacts(Facts):
    def __init__(self, tree: ast.Module):
        super().__init__()
        self.parent: dict[int, int | None] = {0: None}
        self.kind: dict[int, str] = {0: "module"}
        self.children: dict[int, list[int]] = defaultdict(list)
        self.defs: dict[str, list[int]] = defaultdict(list)
        self.classes: dict[str, list[tuple[int, ast.ClassDef]]] = defaultdict(list)
        self.values: dict[tuple[int, str], list[tuple[ast.expr, int]]] = defaultdict(list)
        self.elements: dict[tuple[int, str], list[tuple[ast.expr, int]]] = defaultdict(list)
        self.loops: dict[tuple[int, str], list[tuple[ast.expr, tuple[int, ...], int]]] = defaultdict(list)
        self.unpacks: dict[tuple[int, str], list[tuple[ast.expr, tuple[int, ...], int]]] = defaultdict(list)
        self.params: dict[int, list[str]] = {}
        self.returns: dict[int, list[ast.expr]] = defaultdict(list)
        self.calls: list[tuple[ast.Call, int]] = []
        self.refs: dict[int, set[str]] = defaultdict(set)
        self.def_names: dict[int, str] = {}
        self._memo: dict[tuple[int, int], frozenset[Model]] = {}
        self._active: set[tuple[int, int]] = set()
        self._by_name: dict[str, list[tuple[ast.Call, int]]] | None = None
        self.module_mode = defines_build_model(tree)  # the harness's rule (mlci.source.mode)
        self._walk(tree)
        self._alias_assignments()
        self._collect()

    # ----- pass 1: scopes, bindings, calls
    def _new_scope(self, parent: int, kind: str, name: str) -> int:
        sid = len(self.parent)
        self.parent[sid] = parent
        self.kind[sid] = kind
        self.children[parent].append(sid)
        self.def_names[sid] = name
        return sid

    def _class_scope(self, scope: int) -> int:
        cursor: int | None = scope
        while cursor is not None:
            if self.kind[cursor] == "class":
                return cursor
            cursor = self.parent[cursor]
        return scope

    def _bind(self, target: ast.expr, value: ast.expr | None, scope: int) -> None:
        if isinstance(target, ast.Name):
            self.bound.add(target.id)
            if value is not None:
                self.values[(scope, target.id)].append((value, scope))
                if isinstance(value, (ast.List, ast.Tuple, ast.Set)):
                    self.elements[(scope, target.id)].extend((elt, scope) for elt in value.elts)
                elif isinstance(value, ast.Dict):
                    self.elements[(scope, target.id)].extend((v, scope) for v in value.values)
        elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) \
                and target.value.id in ("self", "cls") and value is not None:
            self.values[(self._class_scope(scope), f"self.{target.attr}")].append((value, scope))
        elif isinstance(target, (ast.Tuple, ast.List)):
            if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts):
                for sub_target, sub_value in zip(target.elts, value.elts):
                    self._bind(sub_target, sub_value, scope)
            else:  # model, history = train(...): element i of what the call returns
                for index, sub_target in enumerate(target.elts):
                    if isinstance(sub_target, ast.Name) and value is not None:
                        self.bound.add(sub_target.id)
                        self.unpacks[(scope, sub_target.id)].append((value, (index,), scope))
                    else:
                        self._bind(sub_target, None, scope)
        elif isinstance(target, ast.Starred):
            self._bind(target.value, None, scope)

    def _bind_loop(self, target: ast.expr, iterable: ast.expr, scope: int, path: tuple[int, ...] = ()) -> None:
        if isinstance(target, ast.Name):
            self.bound.add(target.id)
            self.loops[(scope, target.id)].append((iterable, path, scope))
        elif isinstance(target, (ast.Tuple, ast.List)):
            for index, sub in enumerate(target.elts):
                self._bind_loop(sub, iterable, scope, path + (index,))

    def _walk(self, tree: ast.Module) -> None:
        stack: list[tuple[ast.AST, int]] = [(tree, 0)]
        while stack:
            node, scope = stack.pop()
            inner = scope
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.bound.add(node.name)
                inner = self._new_scope(scope, "function", node.name)
                self.defs[node.name].append(inner)
                args = node.args
                self.params[inner] = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
                self.bound.update(self.params[inner])
                for child in node.decorator_list + args.defaults + [d for d in args.kw_defaults if d]:
                    stack.append((child, scope))
                stack.extend((child, inner) for child in node.body)
                continue
            if isinstance(node, ast.ClassDef):
                self.bound.add(node.name)
                inner = self._new_scope(scope, "class", node.name)
                self.classes[node.name].append((inner, node))
                stack.extend((child, scope) for child in node.bases + node.decorator_list)
                stack.extend((child, inner) for child in node.body)
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self.add_import(alias.name, alias.asname, node.lineno)
            elif isinstance(node, ast.ImportFrom):
                self.add_import(node.module or "", None, node.lineno, node.level,
                                [(alias.name, alias.asname) for alias in node.names])
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    self._bind(target, node.value, scope)
            elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)):
                self._bind(node.target, node.value, scope)
            elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name) \
                    and isinstance(node.value, (ast.List, ast.Tuple)):
                self.elements[(scope, node.target.id)].extend((elt, scope) for elt in node.value.elts)
            elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
                self._bind_loop(node.target, node.iter, scope)
            elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                self._bind(node.optional_vars, node.context_expr, scope)
            elif isinstance(node, ast.Return) and node.value is not None:
                self.returns[scope].append(node.value)
            elif isinstance(node, ast.Call):
                self.calls.append((node, scope))
                func = node.func
                if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and node.args:
                    if func.attr in ("append", "insert"):
                        self.elements[(scope, func.value.id)].append((node.args[-1], scope))
                    elif func.attr == "extend" and isinstance(node.args[0], (ast.List, ast.Tuple)):
                        self.elements[(scope, func.value.id)].extend((e, scope) for e in node.args[0].elts)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                self.refs[scope].add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id in ("self", "cls"):
                self.refs[scope].add(node.attr)  # self.add_conv_block(model) builds layers too
            stack.extend((child, scope) for child in ast.iter_child_nodes(node))

    def _alias_assignments(self) -> None:
        """`L = tf.keras.layers`, `Dense = layers.Dense`: names that stand for a framework's module."""
        for _ in range(3):
            changed = False
            for (scope, name), values in self.values.items():
                if "." in name or name in self.aliases or len(values) != 1:
                    continue
                value = values[0][0]
                if isinstance(value, (ast.Name, ast.Attribute)):
                    qualified = self.resolve(value)
                    if qualified and qualified.split(".")[0] in KNOWN_TOPS:
                        self.aliases[name] = qualified
                        changed = True
            if not changed:
                break

    # ----- resolution and types
    def resolve(self, expr: ast.AST) -> str | None:
        parts = []
        while isinstance(expr, ast.Attribute):
            parts.append(expr.attr)
            expr = expr.value
        if not isinstance(expr, ast.Name):
            return None
        base = self.resolve_name(expr.id)
        if base is None:
            return None
        return ".".join([base, *reversed(parts)])

    def _chain(self, scope: int):
        cursor: int | None = scope
        while cursor is not None:
            yield cursor
            cursor = self.parent[cursor]

    def _model(self, symbol: Symbol, node: ast.AST, scope: int, role: str = "model") -> Model:
        return Model(symbol.framework, display(symbol), getattr(node, "lineno", 0), scope, symbol.arch, role, self)

    def type_of(self, expr: ast.AST | None, scope: int, depth: int = 0) -> frozenset[Model]:
        if expr is None or depth > 14:
            return frozenset()
        key = (id(expr), scope)
        if key in self._memo:
            return self._memo[key]
        if key in self._active:
            return frozenset()
        self._active.add(key)
        try:
            result = frozenset(self._type_of(expr, scope, depth + 1))
        finally:
            self._active.discard(key)
        self._memo[key] = result
        return result

    def _returns_of(self, name: str, depth: int) -> set[Model]:
        found: set[Model] = set()
        for sid in self.defs.get(name, []):
            for value in self.returns.get(sid, []):
                found |= self.type_of(value, sid, depth)
        return found

    def class_type(self, name: str, depth: int = 0) -> set[Model]:
        found: set[Model] = set()
        if depth > 8:
            return found
        for sid, node in self.classes.get(name, []):
            for base in node.bases:
                symbol = classify(self.resolve(base))
                if symbol is not None and symbol.role == "model":
                    found.add(Model(symbol.framework, f"{node.name} [{display(symbol)} subclass]", node.lineno,
                                    sid, None, "model", self))
                elif symbol is not None and symbol.framework == "sklearn" and symbol.role == "util" \
                        and symbol.name.endswith(("BaseEstimator", "ClassifierMixin", "RegressorMixin")):
                    found.add(Model("sklearn", f"{node.name} [scikit-learn estimator]", node.lineno, sid,
                                    "classical", "model", self))
                elif isinstance(base, ast.Name) and base.id in self.classes and base.id != name:
                    for model in self.class_type(base.id, depth + 1):
                        found.add(Model(model.framework, f"{node.name} [{model.name.split(' [')[0]} subclass]",
                                        node.lineno, sid, model.arch, "model", self))
        return found

    def _wrapped(self, call: ast.Call, scope: int, depth: int, last_only: bool) -> set[Model]:
        candidates: list[ast.expr] = list(call.args) + [kw.value for kw in call.keywords]
        if last_only and call.args:
            candidates = [call.args[-1]]
        found: set[Model] = set()
        for candidate in candidates:
            items = [candidate]
            if isinstance(candidate, (ast.List, ast.Tuple)):
                items = candidate.elts[-1:] if last_only else list(candidate.elts)
            for item in items:
                if isinstance(item, ast.Tuple) and item.elts:
                    item = item.elts[-1]
                found |= self.type_of(item, scope, depth)
        return found

    def _type_of(self, expr: ast.AST, scope: int, depth: int) -> set[Model]:
        if isinstance(expr, ast.Call):
            return self._call_type(expr, scope, depth)
        if isinstance(expr, ast.Name):
            return self._name_type(expr.id, scope, depth)
        if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name) and expr.value.id in ("self", "cls"):
            found: set[Model] = set()
            for value, value_scope in self.values.get((self._class_scope(scope), f"self.{expr.attr}"), []):
                found |= self.type_of(value, value_scope, depth)
            return found
        if isinstance(expr, ast.Subscript):
            return {m for item, item_scope in self.elements_of(expr.value, scope)
                    for m in self.type_of(item, item_scope, depth)}
        if isinstance(expr, ast.IfExp):
            return set(self.type_of(expr.body, scope, depth)) | self.type_of(expr.orelse, scope, depth)
        if isinstance(expr, ast.BoolOp):
            return {m for value in expr.values for m in self.type_of(value, scope, depth)}
        if isinstance(expr, (ast.NamedExpr, ast.Await)):
            return set(self.type_of(expr.value, scope, depth))
        if isinstance(expr, ast.Lambda):
            return set(self.type_of(expr.body, scope, depth))
        return set()

    def _call_type(self, call: ast.Call, scope: int, depth: int) -> set[Model]:
        func = call.func
        symbol = classify(self.resolve(func))
        if symbol is not None:
            if symbol.role == "model":
                return {self._model(symbol, call, scope)}
            if symbol.role == "transformer":
                return {self._model(symbol, call, scope, "transformer")}
            if symbol.role == "wrapper":
                last = symbol.name.endswith(("Pipeline", "make_pipeline"))
                inner = {m for m in self._wrapped(call, scope, depth, last) if m.role == "model"}
                if inner and (symbol.name.rsplit(".", 1)[-1] in ("GridSearchCV", "RandomizedSearchCV",
                                                                  "HalvingGridSearchCV", "HalvingRandomSearchCV")
                              or last or symbol.framework != "sklearn"):
                    return inner
                if last and not inner:  # a Pipeline of scalers and encoders only: preprocessing
                    return {self._model(symbol, call, scope, "transformer")}
                return inner | {self._model(symbol, call, scope)}
            return set()
        if isinstance(func, ast.Name):
            if func.id in self.classes:
                return self.class_type(func.id)
            if func.id in self.defs:
                return self._returns_of(func.id, depth)
            return set()
        if isinstance(func, ast.Attribute):
            if func.attr in PASS_THROUGH:
                return set(self.type_of(func.value, scope, depth))
            if isinstance(func.value, ast.Name) and func.value.id in ("self", "cls") and func.attr in self.defs:
                return self._returns_of(func.attr, depth)
            if len(self.defs.get(func.attr, ())) == 1:  # LeNet.build(...), builder.get_model(): one such def here
                return self._returns_of(func.attr, depth)
        return set()

    def _name_type(self, name: str, scope: int, depth: int) -> set[Model]:
        found: set[Model] = set()
        for sid in self._chain(scope):
            bindings = self.values.get((sid, name))
            loops = self.loops.get((sid, name))
            unpacks = self.unpacks.get((sid, name))
            if bindings or loops or unpacks:
                for value, value_scope in bindings or []:
                    found |= self.type_of(value, value_scope, depth)
                for iterable, path, loop_scope in loops or []:
                    for item, item_scope in self._loop_items(iterable, path, loop_scope):
                        found |= self.type_of(item, item_scope, depth)
                for value, path, value_scope in unpacks or []:
                    for item, item_scope in self._pick(self._results_of(value, value_scope), path):
                        found |= self.type_of(item, item_scope, depth)
                return found
            if name in self.params.get(sid, []):
                return self._argument_types(sid, name, depth)
        if name in self.classes:
            return self.class_type(name)
        if name in self.defs:  # a function passed as a value: build_fn=create_model
            return self._returns_of(name, depth)
        return found

    def _argument_types(self, function_scope: int, name: str, depth: int) -> set[Model]:
        """The types passed for parameter `name` at every call of the function."""
        function = self.def_names.get(function_scope)
        parent = self.parent[function_scope] or 0
        if function == "__init__" and self.kind[parent] == "class":
            function = self.def_names[parent]  # Agent(model) calls Agent.__init__(self, model)
        params = self.params[function_scope]
        index = params.index(name)
        if params and params[0] in ("self", "cls") and self.kind[self.parent[function_scope] or 0] == "class":
            index -= 1
        found: set[Model] = set()
        for call, call_scope in self._calls_by_name().get(function, []):
            for keyword in call.keywords:
                if keyword.arg == name:
                    found |= self.type_of(keyword.value, call_scope, depth)
            if 0 <= index < len(call.args) and not isinstance(call.args[index], ast.Starred):
                found |= self.type_of(call.args[index], call_scope, depth)
        return found

    def _results_of(self, expr: ast.expr, scope: int) -> list[tuple[ast.expr, int]]:
        """What an expression evaluates to, as code: a local function's return expressions, else itself."""
        if isinstance(expr, ast.Call):
            func = expr.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name in self.defs and (isinstance(func, ast.Name) or len(self.defs[name]) == 1):
                return [(value, sid) for sid in self.defs[name] for value in self.returns.get(sid, [])]
        return [(expr, scope)]

    def _calls_by_name(self) -> dict[str, list[tuple[ast.Call, int]]]:
        if self._by_name is None:
            self._by_name = defaultdict(list)
            for call, scope in self.calls:
                func = call.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
                if name:
                    self._by_name[name].append((call, scope))
        return self._by_name

    def elements_of(self, expr: ast.AST, scope: int) -> list[tuple[ast.expr, int]]:
        if isinstance(expr, (ast.List, ast.Tuple, ast.Set)):
            return [(elt, scope) for elt in expr.elts]
        if isinstance(expr, ast.Dict):
            return [(value, scope) for value in expr.values]
        if isinstance(expr, ast.Name):
            for sid in self._chain(scope):
                if (sid, expr.id) in self.elements:
                    return self.elements[(sid, expr.id)]
            return []
        if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name) and expr.value.id == "self":
            found = []
            for value, value_scope in self.values.get((self._class_scope(scope), f"self.{expr.attr}"), []):
                found.extend(self.elements_of(value, value_scope))
            return found
        return []

    def _loop_items(self, iterable: ast.expr, path: tuple[int, ...], scope: int) -> list[tuple[ast.expr, int]]:
        if isinstance(iterable, ast.Call):
            func, args = iterable.func, iterable.args
            if isinstance(func, ast.Attribute) and func.attr == "items" and path[:1] == (1,):
                return self._pick(self.elements_of(func.value, scope), path[1:])
            if isinstance(func, ast.Attribute) and func.attr == "values":
                return self._pick(self.elements_of(func.value, scope), path)
            if isinstance(func, ast.Name) and func.id == "zip" and path and path[0] < len(args):
                return self._pick(self.elements_of(args[path[0]], scope), path[1:])
            if isinstance(func, ast.Name) and func.id == "enumerate" and path[:1] == (1,) and args:
                return self._pick(self.elements_of(args[0], scope), path[1:])
            return []
        return self._pick(self.elements_of(iterable, scope), path)

    @staticmethod
    def _pick(items: list[tuple[ast.expr, int]], path: tuple[int, ...]) -> list[tuple[ast.expr, int]]:
        picked = []
        for item, scope in items:
            for index in path:
                if isinstance(item, (ast.Tuple, ast.List)) and index < len(item.elts):
                    item = item.elts[index]
                else:
                    item = None
                    break
            if item is not None:
                picked.append((item, scope))
        return picked

    # ----- pass 2: what is built, trained, and with which layers
    def _collect(self) -> None:
        tops = set(self.imported_frameworks())
        if any("torch" in names for names in self.refs.values()) and "torch" not in self.bound:
            tops.add("torch")  # `torch.device(...)` with the import hidden in a star import of a helper
        called = {call.func.id for call, _ in self.calls if isinstance(call.func, ast.Name)}
        for name in self.classes:
            models = self.class_type(name)
            self.constructed.extend(models)
            if name not in called:
                self.never_instantiated.update(models)
        for call, scope in self.calls:
            func = call.func
            qualified = self.resolve(func)
            symbol = classify(qualified)
            line = call.lineno
            if symbol is not None:
                if symbol.role == "layer" or (symbol.role == "model" and symbol.arch in ("cnn", "rnn")
                                              and symbol.framework in ("keras", "torch")):
                    self.layers.append(Layer(symbol, line, scope))
                if symbol.role in ("model", "wrapper", "transformer"):
                    self.constructed.extend(m for m in self.type_of(call, scope) if m.role == "model")
                elif symbol.role == "train":
                    if symbol.name.rsplit(".", 1)[-1] in ("cross_val_score", "cross_validate", "cross_val_predict",
                                                          "learning_curve", "validation_curve",
                                                          "permutation_test_score"):
                        estimator = call.args[0] if call.args else next(
                            (kw.value for kw in call.keywords if kw.arg == "estimator"), None)
                        for model in self.type_of(estimator, scope):
                            self.trained.append(Trained(model, line, symbol.name.rsplit(".", 1)[-1]))
                    else:
                        self.signals[symbol.framework].append(line)
                if symbol.role == "model" and symbol.framework in UNSUPPORTED and \
                        symbol.name.rsplit(".", 1)[-1] in ("train", "cv", "fit"):
                    self.trained.append(Trained(self._model(symbol, call, scope), line, symbol.name))
                continue
            if not isinstance(func, ast.Attribute):
                continue
            method = func.attr
            if method in TRAIN_METHODS or method == "train":
                models = self.type_of(func.value, scope)
                handed = call.args[:1] + [kw.value for kw in call.keywords if kw.arg == "model"]
                if not models and method != "train" and handed:
                    models = frozenset(m for m in self.type_of(handed[0], scope)
                                       if m.framework in ("torch", "keras"))  # trainer.fit(model, data)
                if method == "train":
                    models = frozenset(m for m in models if m.framework == "torch")
                for model in models:
                    self.trained.append(Trained(model, line, method))
                if not models and method in TRAIN_METHODS and method not in ("fit_transform", "fit_resample"):
                    self.unresolved_fits.append(line)
                    if method in ("fit_generator", "train_on_batch") or any(
                            kw.arg in KERAS_FIT_KEYWORDS for kw in call.keywords):
                        self.keras_style_fits.append(line)
            elif method == "backward" and "torch" in tops:
                self.signals["torch"].append(line)
            elif method == "step" and "torch" in tops and isinstance(func.value, ast.Name) \
                    and "optim" in func.value.id.lower():
                self.signals["torch"].append(line)
            elif method in ("apply_gradients", "minimize") and tops & {"tensorflow", "keras"}:
                self.signals["keras"].append(line)
        if self.module_mode:
            for sid in self.defs.get("build_model", []):
                if self.parent[sid] == 0:
                    for value in self.returns.get(sid, []):
                        for model in self.type_of(value, sid):
                            self.trained.append(Trained(model, value.lineno, "build_model returns it"))
        self._training_loops()

    def layers_for(self, models: list[Model]) -> list[Layer]:
        """Layers in the scopes that build `models`: their own, the functions and classes they use."""
        reach: set[int] = set()
        todo = [m.scope for m in models]
        while todo:
            sid = todo.pop()
            if sid in reach:
                continue
            reach.add(sid)
            if self.kind.get(sid) == "class":
                todo.extend(self._descendants(sid))
            for name in self.refs.get(sid, ()):  # functions and classes by name, nested ones too
                todo.extend(self.defs.get(name, []))
                todo.extend(s for s, _ in self.classes.get(name, []))
        return [layer for layer in self.layers if layer.scope in reach]

    def _descendants(self, sid: int) -> list[int]:
        found, todo = [], list(self.children.get(sid, []))
        while todo:
            child = todo.pop()
            found.append(child)
            todo.extend(self.children.get(child, []))
        return found
