"""A reproducible int8 ONNX export of a sentence-transformers model, made once and cached.

The model's transformer is exported with torch's TorchScript-based exporter (``dynamo=False``:
optimum's exporters do not work with transformers >= 5), with dynamic batch and sequence axes, and
its weight matrices (the MatMuls with a constant weight, but the feed-forward down-projections; the
attention's activation-by-activation products stay float32 too) are quantised to int8 per output
channel, in 7 bits so that every CPU sums their products exactly, by onnxruntime's dynamic
quantisation. Per-tensor weight scales lose too much (a cosine to float32 as low as 0.91 on short
texts). onnxruntime's quantisation pre-processing is not run: its symbolic shape inference fails on
this graph.

The result is cached under a key: a digest of every file of the model folder, of the torch,
transformers, onnx and onnxruntime versions and of :data:`RECIPE`. The same inputs give the same
bytes (the export is deterministic: no randomness, a fixed tracing input, eval mode), so the cached
file can always be made again from what is installed. It is written to a temporary folder beside its
place and renamed into it, under an exclusive file lock: concurrent processes export it once and
never see a partial file.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

logger = logging.getLogger(__name__)

#: The export recipe; change it whenever the export or the quantisation below changes.
RECIPE = (
    "onnx-int8/3: opset 17, torchscript export, dynamic MatMul int8 per channel in 7 bits,"
    " down-projections float32"
)
OPSET = 17
#: The graph's inputs, in order, and its output (the transformer's last hidden state).
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "last_hidden_state"
#: The packages whose versions shape the exported file.
_TOOLS = ("torch", "transformers", "onnx", "onnxruntime")
INT8_FILE = "model.int8.onnx"
MANIFEST_FILE = "export.json"


def default_cache_dir() -> Path:
    """Where ONNX exports are cached unless ``embedding.cache_dir`` says otherwise."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "groundwork" / "embeddings"


def transformer_dir(model_dir: Path) -> Path:
    """The folder of a sentence-transformers model's transformer module (from ``modules.json``)."""
    modules = model_dir / "modules.json"
    if modules.is_file():
        for module in json.loads(modules.read_text(encoding="utf-8")):
            if str(module.get("type", "")).endswith(".Transformer"):
                return model_dir / str(module.get("path", ""))
    return model_dir


def check_pooling(model_dir: Path) -> None:
    """Refuse a model whose pooling is not the plain mean over tokens (the only one implemented)."""
    modules = model_dir / "modules.json"
    if not modules.is_file():
        return
    for module in json.loads(modules.read_text(encoding="utf-8")):
        if str(module.get("type", "")).endswith(".Pooling"):
            config = json.loads((model_dir / str(module["path"]) / "config.json").read_text(encoding="utf-8"))
            modes = {k for k, v in config.items() if k.startswith("pooling_mode_") and v is True}
            if modes != {"pooling_mode_mean_tokens"}:
                raise ValueError(
                    f"the onnx_int8 backend needs mean pooling; the model at {model_dir} uses {sorted(modes)}"
                )


def tool_versions() -> dict[str, str]:
    """The installed versions of the packages that shape the export."""
    out = {}
    for name in _TOOLS:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def model_digest(model_dir: Path) -> str:
    """SHA-256 over every file of the model folder: relative path, size and contents, in path order."""
    h = hashlib.sha256()
    files = sorted(p for p in model_dir.rglob("*") if p.is_file())
    for path in files:
        h.update(path.relative_to(model_dir).as_posix().encode() + b"\0")
        h.update(str(path.stat().st_size).encode() + b"\0")
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def export_key(model_dir: Path) -> dict[str, Any]:
    """What the cached export is made from; its digest names the cache entry."""
    return {"recipe": RECIPE, "model": model_digest(model_dir), "tools": tool_versions()}


def _digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def export_fp32(model_dir: Path, out: Path) -> None:
    """Export the transformer of the model at ``model_dir`` as float32 ONNX to ``out``.

    Inputs :data:`INPUT_NAMES` (int64, batch x sequence), output :data:`OUTPUT_NAME`
    (batch x sequence x hidden); batch and sequence are dynamic.
    """
    from transformers import AutoModel

    # Eager attention traces to plain ONNX operators; SDPA's mask handling does not trace cleanly.
    model = AutoModel.from_pretrained(
        str(transformer_dir(model_dir)), local_files_only=True, attn_implementation="eager"
    ).eval()
    export_module(model, out, "last_hidden_state", {0: "batch", 1: "sequence"})


def export_module(model: Any, out: Path, output: str, output_axes: dict[int, str]) -> None:
    """Export a Hugging Face BERT-like ``model`` (eager attention, eval mode) taking :data:`INPUT_NAMES`,
    with its output attribute ``output`` as the graph's one output, to float32 ONNX at ``out``."""
    import torch

    class Output(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            result = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return getattr(result, output)

    # A fixed tracing input with padding, so the trace is the same every time.
    ids = torch.tensor([[101, 7592, 2088, 1012, 102], [101, 2023, 102, 0, 0]], dtype=torch.long)
    mask = (ids != 0).long()
    dynamic = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES} | {output: output_axes}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notices
        torch.onnx.export(
            Output(model),
            (ids, mask, torch.zeros_like(ids)),
            str(out),
            dynamo=False,
            input_names=list(INPUT_NAMES),
            output_names=[output],
            dynamic_axes=dynamic,
            opset_version=OPSET,
            do_constant_folding=True,
            external_data=False,
        )


def down_projections(fp32: Path) -> list[str]:
    """The MatMuls whose constant weight narrows (more input than output features): the feed-forward
    blocks' down-projections, fed by the GELU output."""
    import onnx

    graph = onnx.load(str(fp32)).graph
    shapes = {t.name: list(t.dims) for t in graph.initializer}
    return [
        n.name
        for n in graph.node
        if n.op_type == "MatMul"
        and len(shapes.get(n.input[1], [])) == 2
        and shapes[n.input[1]][0] > shapes[n.input[1]][1]
    ]


#: How the quantised weights are stored. ``int7``: signed, in 7 bits (-64..64); ``uint8``: unsigned,
#: the full 8 bits, with a zero point a channel. Both compute the same on every CPU (see below).
WeightType = Literal["int7", "uint8"]


def quantize_int8(
    fp32: Path, out: Path, *, float_down_projections: bool = True, weights: WeightType = "int7"
) -> None:
    """Quantise ``fp32``'s weight matrices to 8-bit integers (``weights``), one scale per output
    channel, into ``out`` (the feed-forward down-projections left in float32 unless
    ``float_down_projections`` is false).

    Every MatMul with a constant weight is quantised (30 of 48 in MiniLM-L6) but the feed-forward
    down-projections (6): their input, the GELU output, is long-tailed, and one dynamic uint8 scale
    for it lost the most. Measured on the five retrieval sets' passages: quantising all 36 gave a
    mean cosine to float32 of 0.994-0.995, a top-10 overlap of 0.92 and nDCG@10 -0.012 over all
    queries; keeping these 6 in float32 gives 0.998, 0.94 and -0.003, at 2.1-2.5 times the float32
    throughput instead of 2.6-4.1 (2 shared cores).

    Never full-range signed int8 weights: x86 CPUs without VNNI (AVX2 only) add pairs of uint8 x int8
    products in 16 bits, which they overflow (255 x 127 x 2 > 32,767), so one file computed other
    numbers on such a CPU (the embedder's vectors fell to a cosine of 0.976 to float32 on 120-word
    passages). Signed weights in 7 bits never overflow (255 x 64 x 2 = 32,640); unsigned weights go
    through kernels that widen to 16 bits first. The embedder uses ``int7``: as exact as ``uint8``
    there (0.994 against 0.995 at worst) and 7-17% faster on an AVX2 CPU. The tagger uses ``uint8``
    (:mod:`pipelines.tagger_int8` says why).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if weights not in ("int7", "uint8"):
        raise ValueError(f"weights must be int7 or uint8, not {weights!r}")
    excluded = down_projections(fp32) if float_down_projections else []
    # The quantiser logs every tensor it visits to the root logger: silence it for the one export.
    before = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        quantize_dynamic(
            fp32,
            out,
            op_types_to_quantize=["MatMul"],  # only those with a constant weight are quantised
            nodes_to_exclude=excluded,
            per_channel=True,
            weight_type=QuantType.QInt8 if weights == "int7" else QuantType.QUInt8,
            reduce_range=weights == "int7",
        )
    finally:
        logging.disable(before)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def cached_int8_model(model_dir: Path, cache_dir: Path, *, keep_fp32: bool = False) -> Path:
    """The int8 ONNX export of the model at ``model_dir``, made into ``cache_dir`` if not there yet.

    The entry is ``cache_dir/<folder name>-<key digest>/`` with :data:`INT8_FILE` and
    :data:`MANIFEST_FILE` (what it was made from, and the file's SHA-256). ``keep_fp32`` keeps the
    float32 export beside it as ``model.fp32.onnx`` (for checking the export against torch).
    """
    return cached_int8(
        cache_dir, model_dir.name, export_key(model_dir), partial(export_fp32, model_dir), keep_fp32=keep_fp32
    )


def cached_int8(
    cache_dir: Path,
    name: str,
    key: dict[str, Any],
    make_fp32: Callable[[Path], None],
    *,
    keep_fp32: bool = False,
    float_down_projections: bool = True,
    weights: WeightType = "int7",
) -> Path:
    """The int8 quantisation (:func:`quantize_int8`) of what ``make_fp32`` exports, cached under
    ``name`` and ``key``'s digest.

    Made once, under an exclusive file lock, in a temporary folder renamed into place: concurrent
    processes export once and never see a partial file.
    """
    entry = cache_dir / f"{name}-{_digest(key)[:24]}"
    target = entry / INT8_FILE
    if target.is_file() and (not keep_fp32 or (entry / "model.fp32.onnx").is_file()):
        return target
    entry.mkdir(parents=True, exist_ok=True)
    with _locked(entry / ".lock"):
        if target.is_file() and (not keep_fp32 or (entry / "model.fp32.onnx").is_file()):
            return target  # another process made it while this one waited
        for stale in entry.glob(".export-*"):  # left by an export that was killed (the lock is ours)
            shutil.rmtree(stale, ignore_errors=True)
        logger.info("exporting %s to int8 ONNX in %s", name, entry)
        with tempfile.TemporaryDirectory(dir=entry, prefix=".export-") as tmp:
            fp32, int8 = Path(tmp) / "model.fp32.onnx", Path(tmp) / INT8_FILE
            make_fp32(fp32)
            quantize_int8(fp32, int8, float_down_projections=float_down_projections, weights=weights)
            manifest = {**key, "sha256": hashlib.sha256(int8.read_bytes()).hexdigest()}
            (Path(tmp) / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            if keep_fp32:
                os.replace(fp32, entry / "model.fp32.onnx")
            os.replace(Path(tmp) / MANIFEST_FILE, entry / MANIFEST_FILE)
            os.replace(int8, target)  # last: its presence means the entry is complete
    return target
