"""A cross-encoder that reads a query and a passage together and scores how well the passage answers it.

A reranker is a folder (``pipelines/reranker_weights/`` unless ``retrieval.reranker_weights`` names
another) made by ``scripts/reranker/train.py`` from the shipped all-MiniLM-L6-v2 (see the README's
*Reranker*; none ships yet). Training leaves the word embeddings frozen, so the folder's file carries
every tensor but them, in float16, and they are taken at load time from the registry package the
embedding model comes from; ``meta.json`` records that package's weights digest, and a different one
is refused rather than silently mixed.

``meta.json`` also holds a Platt calibration of the top logit (fitted on scores the model gave to
domains it was not trained on), which turns a query's best logit into the probability that the best
passage answers it: the confidence the retrieval API reports when it reranks.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.embedding import available_cpus, default_cache_dir, default_model_path

logger = logging.getLogger(__name__)

#: Where the trained weights ship.
WEIGHTS_DIR = Path(__file__).with_name("reranker_weights")
#: The tensor a reranker's file leaves out (frozen in training, loaded from the base model).
WORD_EMBEDDINGS = "bert.embeddings.word_embeddings.weight"
_BASE_KEY = "embeddings.word_embeddings.weight"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_weights(model: Any, folder: Path, meta: dict[str, Any], base_dir: Path | None = None) -> None:
    """Write a trained ``BertForSequenceClassification`` (one label) in the format :class:`Reranker`
    loads: ``model.safetensors`` (every tensor but the word embeddings, float16), ``config.json``, and
    ``meta.json`` (``meta`` plus the base model's weights digest). The word embeddings must be the
    base model's, unchanged (frozen in training): that is checked, not assumed."""
    import torch
    from safetensors.torch import load_file, save_file

    base_file = (base_dir or default_model_path()) / "model.safetensors"
    state = model.state_dict()
    if not torch.equal(state[WORD_EMBEDDINGS].float(), load_file(str(base_file))[_BASE_KEY].float()):
        raise ValueError("the word embeddings changed in training: freeze them (they are not saved)")
    kept = {
        k: v.detach().to(torch.float16).contiguous()
        for k, v in state.items()
        if k != WORD_EMBEDDINGS and not k.endswith("position_ids")
    }
    folder.mkdir(parents=True, exist_ok=True)
    save_file(kept, str(folder / "model.safetensors"), metadata={"format": "pt"})
    model.config.to_json_file(str(folder / "config.json"))
    full = {**meta, "base_model_sha256": file_digest(base_file)}
    (folder / "meta.json").write_text(json.dumps(full, indent=2, sort_keys=True) + "\n")


@dataclass(frozen=True, slots=True)
class Platt:
    """``P(answer) = 1 / (1 + exp(-(coef * logit + intercept)))``."""

    coef: float
    intercept: float

    def probability(self, logit: float) -> float:
        """The calibrated probability of one logit."""
        z = self.coef * logit + self.intercept
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


@functools.cache
def cached_reranker(
    backend: str = "onnx_int8", cache_dir: Path | None = None, weights_dir: Path | None = None
) -> Reranker:
    """The reranker in ``weights_dir`` (default :data:`WEIGHTS_DIR`) with this backend, loaded once per
    process (it is thread-safe)."""
    return Reranker(weights_dir or WEIGHTS_DIR, backend=backend, cache_dir=cache_dir)


class RerankerUnavailable(RuntimeError):
    """A reranker cannot be loaded here (missing files, another base model)."""


class Reranker:
    """Scores (query, passage) pairs with a trained cross-encoder on the CPU.

    ``backend`` ``onnx_int8`` (the default) runs an int8 ONNX export of the model with onnxruntime,
    made on first use into ``cache_dir`` exactly as the embedding model's (:mod:`pipelines.onnx_export`:
    weight matrices int8 per output channel, the feed-forward down-projections float32); ``torch``
    runs it in float32. ``score`` returns raw logits (higher: more likely the passage answers the
    query), ``probability`` maps a logit through the folder's calibration. Calls are serialised by a
    lock; the query and a passage are truncated together to ``max_length`` tokens. The int8 model
    reads one pair per run, so a passage's logit never depends on the others scored with it.
    """

    def __init__(
        self,
        weights_dir: Path = WEIGHTS_DIR,
        base_dir: Path | None = None,
        *,
        backend: str = "onnx_int8",
        cache_dir: Path | None = None,
        max_length: int | None = None,
    ) -> None:
        meta_file = weights_dir / "meta.json"
        self._tensors_file = weights_dir / "model.safetensors"
        if not meta_file.is_file() or not self._tensors_file.is_file():
            raise RerankerUnavailable(
                f"no reranker weights in {weights_dir}: make them with scripts/reranker/train.py and name"
                " the folder in retrieval.reranker_weights"
            )
        if backend not in ("onnx_int8", "torch"):
            raise ValueError(f"unknown reranker backend {backend!r} (onnx_int8 or torch)")
        self.meta: dict[str, Any] = json.loads(meta_file.read_text())
        self._weights_dir = weights_dir
        self._base_dir = base_dir or default_model_path()
        self._base_file = self._base_dir / "model.safetensors"
        base_digest = file_digest(self._base_file)
        expected = self.meta.get("base_model_sha256")
        if expected and base_digest != expected:
            raise RerankerUnavailable(
                f"the reranker was trained on another base model than {self._base_file} (weights digest differs)"
            )
        cal = self.meta.get("calibration") or {}
        self.calibration = Platt(float(cal.get("coef", 1.0)), float(cal.get("intercept", 0.0)))
        self.max_length = max_length or int(self.meta.get("max_length", 256))
        self.backend = backend
        self._lock = threading.Lock()
        from transformers import AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(str(self._base_dir))
        self._model: Any = None
        self._session: Any = None
        if backend == "torch":
            self._model = self.torch_model()
        else:
            self._session = self._onnx_session(cache_dir or default_cache_dir(), base_digest)

    def torch_model(self) -> Any:
        """The float32 model: the folder's tensors plus the base model's word embeddings."""
        import torch
        from safetensors.torch import load_file
        from transformers import BertConfig, BertForSequenceClassification

        config = BertConfig.from_json_file(str(self._weights_dir / "config.json"))
        config._attn_implementation = "eager"  # traces to plain ONNX operators
        model = BertForSequenceClassification(config)
        state = {k: v.to(torch.float32) for k, v in load_file(str(self._tensors_file)).items()}
        if WORD_EMBEDDINGS in state:
            raise RerankerUnavailable("a reranker's file must not carry its word embeddings")
        state[WORD_EMBEDDINGS] = load_file(str(self._base_file))[_BASE_KEY].to(torch.float32)
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("position_ids")]
        if missing or unexpected:
            raise RerankerUnavailable(f"reranker weights do not fit its config: {missing or unexpected}")
        return model.eval()

    def _onnx_session(self, cache_dir: Path, base_digest: str) -> Any:
        import onnxruntime as ort

        from pipelines.onnx_export import RECIPE, cached_int8, export_module, tool_versions

        key = {
            "recipe": RECIPE,
            "reranker": file_digest(self._tensors_file),
            "config": file_digest(self._weights_dir / "config.json"),
            "base": base_digest,
            "tools": tool_versions(),
        }

        def export(out: Path) -> None:
            export_module(self.torch_model(), out, "logits", {0: "batch"})

        path = cached_int8(cache_dir, "reranker", key, export)
        options = ort.SessionOptions()
        options.intra_op_num_threads = available_cpus()
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        """One logit per passage, in the given order."""
        if not passages:
            return []
        with self._lock:
            if self._session is not None:
                # One pair per run: activations are quantised per run, so a batch's logits would
                # depend on their batch-mates (as the int8 embedding model's vectors would).
                runs = [self._session.run(None, self._encode(query, [p]))[0] for p in passages]
                return [float(np.asarray(r).reshape(-1)[0]) for r in runs]
            import torch

            with torch.inference_mode():
                feed = {k: torch.from_numpy(v) for k, v in self._encode(query, list(passages)).items()}
                return [float(x) for x in self._model(**feed).logits.reshape(-1)]

    def _encode(self, query: str, passages: list[str]) -> dict[str, Any]:
        enc = self._tokenizer(
            [query] * len(passages),
            passages,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="np",
        )
        return {name: enc[name].astype(np.int64) for name in INPUTS}

    def probability(self, logit: float) -> float:
        """The calibrated probability that a passage with this logit answers its query."""
        return self.calibration.probability(logit)
