"""The script rewriter's PyTorch rules: where a plain PyTorch script keeps its knobs.

epochs: the stop of the epoch loop's `range(...)` (or Lightning's `Trainer(max_epochs=...)`); learning_rate:
`lr` of a torch.optim optimizer; batch_size: `DataLoader(batch_size=...)`; dropout: `nn.Dropout(p)`; units and
filters: the hidden widths of `nn.Linear` / `nn.Conv2d`. A width is a knob only where the next layer's input is
written to match it (`nn.Linear(128, 64)` after `nn.Linear(784, 128)`; `nn.Linear(32 * 7 * 7, 10)` after
`nn.Conv2d(16, 32, 3)`): that input, and a BatchNorm's width between them, then follow it, so a rewritten
network still fits together. The output layer's width (the classes) is never one.
"""
from __future__ import annotations

import libcst as cst

from mlci.source._cst_sites import Site, SiteReader, Unresolved, _arg, _literal, _name

TORCH_MODULES = {"torch", "torchvision", "pytorch_lightning", "lightning"}
LINEAR = {"Linear"}
CONV = {"Conv1d", "Conv2d", "Conv3d"}
NORMS = {"BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "InstanceNorm1d", "InstanceNorm2d", "LayerNorm", "GroupNorm"}
DROPOUT = {"Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout"}
# torch.optim classes and their default learning rates (used when the call leaves lr out)
OPTIMIZERS = {"Adam": 1e-3, "AdamW": 1e-3, "SGD": 1e-3, "RMSprop": 1e-2, "Adagrad": 1e-2, "Adadelta": 1.0,
              "Adamax": 2e-3, "NAdam": 2e-3, "RAdam": 1e-3}
# (keyword, position) of a layer's input and output width
WIDTHS = {**{n: (("in_features", 0), ("out_features", 1)) for n in LINEAR},
          **{n: (("in_channels", 0), ("out_channels", 1)) for n in CONV}}


def is_torch(imports: set[str]) -> bool:
    return bool(imports & TORCH_MODULES)


class TorchReader(SiteReader):
    def __init__(self, module: cst.Module, path: str, positions):
        super().__init__(module, path, positions)
        self.layers: list[cst.Call] = []  # Linear, Conv and norm layers in source order
        self.epoch_loops: list[cst.For] = []  # the epoch loops we are inside (the outermost decides)

    def visit_Call(self, node: cst.Call) -> None:
        name = _name(node.func)
        if name in WIDTHS or name in NORMS:
            self.layers.append(node)
        elif name in DROPOUT:
            self.knob(node, "dropout", "p", 0)
        elif name in OPTIMIZERS:
            self.knob(node, "learning_rate", "lr", 1, default=OPTIMIZERS[name], insert=True)
        elif name == "DataLoader":
            self.knob(node, "batch_size", "batch_size", 1)
        elif name == "Trainer":  # PyTorch Lightning
            self.knob(node, "epochs", "max_epochs", None)

    def visit_For(self, node: cst.For) -> None:
        super().visit_For(node)
        if self.epoch_loops:
            self._batches(node)
        elif _is_epoch_loop(node):
            self.epoch_loops.append(node)
            self._epochs(node.iter)

    def leave_For(self, original_node: cst.For) -> None:
        if self.epoch_loops and self.epoch_loops[-1] is original_node:
            self.epoch_loops.pop()

    def _batches(self, node: cst.For) -> None:
        """`for i in range(0, n, BATCH)` inside the epoch loop: the step is the batch size when it is a
        module-level constant (a literal step is repeated in the slices it cuts, so it is left alone)."""
        if not (isinstance(node.iter, cst.Call) and _name(node.iter.func) == "range"):
            return
        args = [a for a in node.iter.args if a.keyword is None and not a.star]
        if len(args) == 3 and isinstance(args[2].value, cst.Name):
            self.knob(node.iter, "batch_size", "step", None, expr=args[2].value)

    def _epochs(self, call: cst.Call) -> None:
        """range(N), range(0, N) and range(1, N + 1) train N epochs; N is the site."""
        args = [a for a in call.args if a.keyword is None and not a.star]
        start = _literal(args[0].value)[1] if len(args) == 2 else 0
        stop = args[-1].value if len(args) in (1, 2) else None
        if start == 1 and isinstance(stop, cst.BinaryOperation) and isinstance(stop.operator, cst.Add) \
                and _literal(stop.right) == (True, 1):
            start, stop = 0, stop.left
        if stop is None or start != 0:
            self.unresolved.append(Unresolved("epochs", self.line(call), self.text(call),
                                              "the epoch loop is not range(N), range(0, N) or range(1, N + 1)", call))
            return
        self.knob(call, "epochs", "stop", None, expr=stop)

    def link_widths(self) -> None:
        """Each hidden width whose next layer is written to match it becomes a site, the matching inputs followers."""
        previous: tuple[cst.Call, tuple] | None = None  # the last Linear/Conv and its resolved output
        norms: list[cst.Call] = []  # norm layers since it
        for layer in self.layers:
            name = _name(layer.func)
            if name in NORMS:
                norms.append(layer)
                continue
            (in_key, in_pos), (out_key, out_pos) = WIDTHS[name]
            if previous is not None:
                self._link(previous, norms, layer, _arg(layer, in_key, in_pos), name in LINEAR)
            out = _arg(layer, out_key, out_pos)
            found = self.value_of(out.value, out_key) if out is not None else "no output width"
            previous = (layer, found) if not isinstance(found, str) and isinstance(found[1], int) else None
            norms = []

    def _link(self, previous: tuple[cst.Call, tuple], norms: list[cst.Call], layer: cst.Call, arg: cst.Arg | None,
              linear: bool) -> None:
        producer, (out_node, width, via) = previous
        produced = _name(producer.func)
        if arg is None:
            return
        follower = self._follower(arg.value, width, flatten=linear and produced in CONV)
        if follower is None:
            return
        knob = "units" if produced in LINEAR else "filters"
        leader = Site(knob, self.line(producer), width, self.text(producer), out_node, producer,
                      WIDTHS[produced][1][0], via)
        self.sites.append(leader)
        node, value = follower
        if node is not out_node:  # a shared constant (HIDDEN) is rewritten once, with the leader
            self.sites.append(Site(knob, self.line(layer), value, self.text(layer), node, layer, None, follows=leader))
        for norm in norms:
            first = _arg(norm, ("num_features", "normalized_shape", "num_channels"), 1 if _name(norm.func) == "GroupNorm" else 0)
            matched = self._follower(first.value, width, flatten=False) if first is not None else None
            if matched is not None and matched[0] is not out_node:
                self.sites.append(Site(knob, self.line(norm), matched[1], self.text(norm), matched[0], norm, None,
                                       follows=leader))

    def _follower(self, expr: cst.BaseExpression, width: int, *, flatten: bool) -> tuple[cst.BaseExpression, int] | None:
        """The literal of an input written to match `width`: equal to it, or after a flatten channels * h * w
        (a product whose first factor is the width, or a whole number the width divides)."""
        if flatten and isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Multiply):
            first = expr
            while isinstance(first, cst.BinaryOperation) and isinstance(first.operator, cst.Multiply):
                first = first.left
            expr, flatten = first, False
        found = self.value_of(expr, "in")
        if isinstance(found, str) or not isinstance(found[1], int) or isinstance(found[1], bool):
            return None
        node, value, _ = found
        if value == width or (flatten and value % width == 0 and value > width):
            return node, value
        return None


def _is_epoch_loop(node: cst.For) -> bool:
    """`for epoch in range(...)`, or a range loop around a batch loop and a backward pass (or a train call)."""
    if not (isinstance(node.iter, cst.Call) and _name(node.iter.func) == "range"):
        return False
    if isinstance(node.target, cst.Name) and "epoch" in node.target.value.lower():
        return True
    seen = {"for": False, "backward": False, "train": False}

    class Look(cst.CSTVisitor):
        def visit_For(self, inner: cst.For) -> None:
            seen["for"] = True

        def visit_Call(self, call: cst.Call) -> None:
            name = _name(call.func)
            seen["backward"] |= name == "backward"
            seen["train"] |= "train" in name.lower()

    node.body.visit(Look())
    return (seen["for"] and seen["backward"]) or seen["train"]


def torch_sites(module: cst.Module, path: str, positions) -> tuple[TorchReader, list[Site], list[Unresolved]]:
    """Read a PyTorch script: the reader (imports, constants) and the knobs' sites."""
    reader = TorchReader(module, path, positions)
    module.visit(reader)
    reader.link_widths()
    return reader, reader.sites, reader.unresolved
