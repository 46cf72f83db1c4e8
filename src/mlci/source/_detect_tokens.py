"""The token reader of detection's facts: for code no AST can be built from (a syntax error, Python 2)."""
from __future__ import annotations

from collections import defaultdict

from mlci.source._detect_facts import TRAIN_METHODS, Facts, Layer, Model, Trained, display
from mlci.source._detect_source import Token
from mlci.source._detect_vocab import classify
from mlci.source.mode import model_mode


class TokenFacts(Facts):
    """Facts from names and punctuation only: imports, `x = Ctor(...)`, `x.fit(...)`, layer calls."""

    def __init__(self, found: list[Token], text: str):
        super().__init__()
        statements = self._statements(found)
        for statement in statements:
            self._imports(statement)
        for statement in statements:
            words = [t.text for t in statement]
            if len(statement) >= 3 and statement[0].kind == "name" and words[1] == "=":
                self.bound.add(words[0])
        self.module_mode = model_mode(text) == "module"  # the harness's rule (mlci.source.mode)
        assigned: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for statement in statements:
            words = [t.text for t in statement]
            if len(statement) >= 4 and statement[0].kind == "name" and words[1] == "=" \
                    and statement[2].kind == "name" and words[3] == "(":
                assigned[words[0]].append((words[2], statement[2].line))
        for statement in statements:
            for index, token in enumerate(statement):
                if token.kind != "name" or index + 1 >= len(statement) or statement[index + 1].text != "(":
                    continue
                self._call(token, assigned)
        self._training_loops()

    @staticmethod
    def _statements(found: list[Token]) -> list[list[Token]]:
        statements, current, depth = [], [], 0
        for token in found:
            if token.kind == "punct":
                if token.text in "([{":
                    depth += 1
                elif token.text in ")]}":
                    depth = max(0, depth - 1)
                elif token.text == ";" or (token.text == "\n" and depth == 0):
                    if current:
                        statements.append(current)
                    current = []
                    continue
                elif token.text == "\n":
                    continue
            current.append(token)
        if current:
            statements.append(current)
        return statements

    @staticmethod
    def _names(words: list[str]) -> list[tuple[str, str | None]]:
        """`a as b c` (commas are not tokens) -> [(a, b), (c, None)]."""
        names, index = [], 0
        while index < len(words):
            if index + 2 < len(words) and words[index + 1] == "as":
                names.append((words[index], words[index + 2]))
                index += 3
            else:
                names.append((words[index], None))
                index += 1
        return names

    def _imports(self, statement: list[Token]) -> None:
        words = [t.text for t in statement if t.text not in ("(", ")")]
        line = statement[0].line
        if words and words[0] == "import":
            for module, alias in self._names(words[1:]):
                self.add_import(module, alias, line)
        elif len(words) >= 4 and words[0] == "from" and words[2] == "import":
            self.add_import(words[1], None, line, 0, self._names(words[3:]))

    def _type(self, dotted: str, assigned: dict[str, list[tuple[str, int]]], depth: int = 0) -> list[Model]:
        if depth > 6:
            return []
        symbol = classify(self.resolve_dotted(dotted))
        if symbol is not None:
            return [Model(symbol.framework, display(symbol), 0, 0, symbol.arch,
                          "transformer" if symbol.role == "transformer" else "model", self)] \
                if symbol.role in ("model", "transformer", "wrapper") else []
        return [m for callee, _ in assigned.get(dotted, []) for m in self._type(callee, assigned, depth + 1)]

    def _call(self, token: Token, assigned: dict[str, list[tuple[str, int]]]) -> None:
        dotted, line = token.text, token.line
        symbol = classify(self.resolve_dotted(dotted))
        if symbol is not None:
            if symbol.role == "layer" or (symbol.role == "model" and symbol.arch in ("cnn", "rnn")):
                self.layers.append(Layer(symbol, line, 0))
            if symbol.role in ("model", "wrapper"):
                self.constructed.append(Model(symbol.framework, display(symbol), line, 0, symbol.arch, "model", self))
            elif symbol.role == "train":
                self.signals[symbol.framework].append(line)
            return
        receiver, _, method = dotted.rpartition(".")
        if method in TRAIN_METHODS and receiver:
            models = [Model(m.framework, m.name, next((ln for _, ln in assigned.get(receiver, [])), line),
                            0, m.arch, m.role, self) for m in self._type(receiver, assigned)]
            for model in models:
                self.trained.append(Trained(model, line, method))
            if not models:
                self.unresolved_fits.append(line)
        elif method in ("backward", "step") and "torch" in self.imported_frameworks():
            self.signals["torch"].append(line)
        elif method == "apply_gradients":
            self.signals["keras"].append(line)
