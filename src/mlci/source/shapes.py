"""Will a rewritten script's model build? An analytic check of its convolution stack, before a trial is spent.

Each Conv2D shrinks the feature map by kernel-1 ("valid" padding) and each pooling layer divides it;
a map smaller than a kernel or a pool window makes Keras raise at build time, after the trial has started.
"""
from __future__ import annotations

import re

import libcst as cst

from mlci.source._cst_sites import _arg, _literal, _name
from mlci.source.rewrite import CONV, POOL, scan

# When the script never writes its input shape, the data set it loads tells the side of its images.
KNOWN_SIDES = (("load_digits", 8), ("mnist", 28), ("fashion", 28), ("cifar", 32))


def _side(source: str, found) -> int | None:
    """The input images' side: input_shape=(28, 28, 1) / Input(shape=...) / Reshape((8, 8, 1)), else the data set."""
    for call in found.container.items if found.container else []:
        layer = call[0]
        if layer is None:
            continue
        arg = _arg(layer, "input_shape", None)
        if arg is not None:
            ok, value = _literal(arg.value)
            if ok and isinstance(value, tuple) and value and isinstance(value[0], int):
                return value[0]
    match = re.search(r"(?:Input\(\s*(?:shape\s*=\s*)?|Reshape\(\s*(?:target_shape\s*=\s*)?)\(\s*(\d+)\s*,\s*\d+", source)
    if match:
        return int(match.group(1))
    lowered = source.lower()
    return next((side for name, side in KNOWN_SIDES if name in lowered), None)


def _int_of(call: cst.Call, keyword: str, position: int | None, default: int) -> int:
    arg = _arg(call, keyword, position)
    if arg is None:
        return default
    ok, value = _literal(arg.value)
    if ok and isinstance(value, tuple) and value:
        value = value[0]
    return value if ok and isinstance(value, int) and not isinstance(value, bool) else default


def _padding(call: cst.Call) -> str:
    arg = _arg(call, "padding", None)
    return str(arg.value.evaluated_value) if arg is not None and isinstance(arg.value, cst.SimpleString) else "valid"


def build_problem(source: str, path: str = "model.py") -> str | None:
    """Why the script's Conv2D stack cannot build (one line), or None when it can (or cannot be told)."""
    found = scan(source, path)
    box = found.container
    if found.error or box is None or not box.convs:
        return None
    side = _side(source, found)
    if side is None:
        return None
    for layer, _ in box.items:
        if layer is None or _name(layer.func) not in CONV | POOL:
            continue
        if _name(layer.func) in CONV:
            what, window = "convolution", _int_of(layer, "kernel_size", 1, 3)
            strides = _int_of(layer, "strides", None, 1)
        else:
            what, window = "pooling", _int_of(layer, "pool_size", 0, 2)
            strides = _int_of(layer, "strides", None, window)
        strides = max(1, strides)
        if _padding(layer) == "same":
            side = -(-side // strides)
        elif side < window:
            return (f"{path}:{found.positions[layer].start.line}: a {window}x{window} {what} would meet a "
                    f"{side}x{side} feature map (the model would not build)")
        else:
            side = (side - window) // strides + 1
    return None
