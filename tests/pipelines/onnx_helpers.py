"""Helpers for the tests of the int8 ONNX files."""

from __future__ import annotations

from pathlib import Path


def int8_weight_range(path: Path) -> tuple[int, int]:
    """The smallest and largest value of the int8 weight matrices in the ONNX file at ``path``."""
    import onnx
    from onnx import numpy_helper

    weights = [
        numpy_helper.to_array(t)
        for t in onnx.load(str(path)).graph.initializer
        if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 2
    ]
    assert weights, f"{path} has no int8 weight matrix"
    return min(int(w.min()) for w in weights), max(int(w.max()) for w in weights)
