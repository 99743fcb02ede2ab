"""Helpers for the tests of the int8 ONNX files."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def quantised_weights(path: Path) -> list[Any]:
    """The 8-bit integer weight matrices (int8 or uint8 initializers of two dimensions) of the ONNX
    file at ``path``."""
    import onnx
    from onnx import numpy_helper

    kinds = (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
    weights = [
        numpy_helper.to_array(t)
        for t in onnx.load(str(path)).graph.initializer
        if t.data_type in kinds and len(t.dims) == 2
    ]
    assert weights, f"{path} has no 8-bit weight matrix"
    return weights
