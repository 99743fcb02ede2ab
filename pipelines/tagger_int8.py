"""An int8 form of the Rampart tagger's model, made once from the 4-bit model that ships and cached.

The shipped ``model_q4.onnx`` keeps its weight matrices in 4 bits (``MatMulNBits``: 32 weights a
block, one float32 scale a block, zero point 8), which onnxruntime reads back to float32 at every
call. Here each of those matrices is read back once, exactly (the same float32 values onnxruntime
computes with: the float32 graph gives the 4-bit graph's outputs), into a plain ``MatMul``, and every
MatMul with a constant weight is then quantised to unsigned 8-bit integers (a zero point and a scale
per output channel) by onnxruntime's dynamic quantisation, as the embedder's int8 export is
(:mod:`pipelines.onnx_export`). Unsigned weights compute the same on every CPU: full-range signed
weights overflow the 16-bit pair sums of x86 CPUs without VNNI, and signed weights in 7 bits (the
embedder's) lost a little recall here: against the full-range file on an AVX2 CPU, recall on 7 of 12
development files fell, by up to 0.013, with 7-bit weights; with uint8 weights on 3, by up to 0.006
(and rose on one).
Dynamic quantisation scales each activation over its whole batch, padding included, so the tagger
runs this model one window at a time: a window's labels never depend on its batch-mates. So run, on 2
cores, it reads windows faster than the 4-bit model does in batches of 16 (1.8 times with full-range
weights, on the machine where that was measured); the README has the figures.

The file is cached under a digest of the 4-bit model's bytes, the onnx and onnxruntime versions and
:data:`RECIPE`; the same inputs give the same bytes, so it can always be made again from what is
installed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

#: The recipe; change it whenever the conversion or the quantisation below changes.
RECIPE = (
    "rampart-int8/2: MatMulNBits 4-bit read back to float32 MatMul, every constant-weight MatMul"
    " uint8 per channel"
)
#: The name of the cache entry (its folder is this name and the key's digest).
NAME = "rampart-tagger"


def cache_key(q4_model: Path) -> dict[str, Any]:
    """What the int8 file is made from: the 4-bit model's SHA-256, the tools' versions, the recipe."""
    from importlib.metadata import version

    return {
        "recipe": RECIPE,
        "model_sha256": hashlib.sha256(q4_model.read_bytes()).hexdigest(),
        "tools": {package: version(package) for package in ("onnx", "onnxruntime")},
    }


def dequantize(q4_model: Path, out: Path) -> None:
    """Write ``q4_model`` with every 4-bit ``MatMulNBits`` replaced by a float32 ``MatMul`` of the
    same weights, read back exactly: ``(q - zero point) * block scale``."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(q4_model))
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    nodes: list[Any] = []
    replaced: set[str] = set()
    for node in graph.node:
        if node.op_type != "MatMulNBits":
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        k, n, block = int(attrs["K"]), int(attrs["N"]), int(attrs["block_size"])
        if int(attrs.get("bits", 4)) != 4 or len(node.input) > 4 or int(attrs.get("accuracy_level", 0)) > 1:
            raise ValueError(f"{q4_model}: {node.name} is not a 4-bit MatMulNBits this conversion reads")
        packed = numpy_helper.to_array(initializers[node.input[1]])  # (N, blocks, block / 2) uint8
        scales = numpy_helper.to_array(initializers[node.input[2]]).astype(np.float32).reshape(n, -1)
        # Two weights a byte, the first in the low four bits.
        q = np.stack([packed & 0x0F, packed >> 4], axis=-1).reshape(n, packed.shape[1], block)
        zero = np.full((n, packed.shape[1]), 8, dtype=np.float32)
        if len(node.input) > 3 and node.input[3]:
            zp = numpy_helper.to_array(initializers[node.input[3]])
            zero = (
                np.stack([zp & 0x0F, zp >> 4], axis=-1)
                .reshape(n, -1)[:, : packed.shape[1]]
                .astype(np.float32)
            )
        weights = ((q.astype(np.float32) - zero[:, :, None]) * scales[:, :, None]).reshape(n, -1)[:, :k]
        name = f"{node.input[1]}_float32"
        graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(weights.T), name))
        replaced.update(i for i in node.input[1:] if i)
        nodes.append(helper.make_node("MatMul", [node.input[0], name], list(node.output), name=node.name))
    if not replaced:
        raise ValueError(f"{q4_model} has no 4-bit MatMulNBits to read back")
    kept = [t for t in graph.initializer if t.name not in replaced]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    onnx.save(model, str(out))


def cached_int8_tagger(q4_model: Path, cache_dir: Path) -> Path:
    """The int8 model made from ``q4_model``, made into ``cache_dir`` if it is not there yet (once,
    under a lock; concurrent processes never see a partial file)."""
    from pipelines.onnx_export import cached_int8

    # Unlike the embedder's export, the feed-forward down-projections are quantised too: keeping them
    # in float32 agreed no better with the 4-bit labels (99.2% against 99.3%) and ran slower.
    return cached_int8(
        cache_dir,
        NAME,
        cache_key(q4_model),
        lambda fp32: dequantize(q4_model, fp32),
        float_down_projections=False,
        weights="uint8",
    )
