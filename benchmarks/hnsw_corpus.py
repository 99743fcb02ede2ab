"""The synthetic collection the HNSW recall benchmark indexes: clustered 384-d vectors like sentence embeddings.

Chunks belong to documents (ten each), documents to topics; a share of the documents is readable
by the benchmark's principal. Everything is drawn from fixed seeds, so a run writes the same rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

DIM = 384
CHUNKS_PER_DOC = 10
#: The synthetic vectors' spectrum and shared direction (see :class:`Corpus`).
ALPHA = 0.8
MEAN = 0.8

Vectors = npt.NDArray[np.float32]


def vectors(rng: np.random.Generator, centres: Vectors, scale: Vectors) -> Vectors:
    """Unit vectors around ``centres``: each chunk adds its own noise, shaped by ``scale``."""
    out = centres + rng.standard_normal(centres.shape, dtype=np.float32) * scale
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


@dataclass
class Corpus:
    """The synthetic collection of one size: which document each chunk belongs to and who may read it.

    A chunk is its topic's centre + its document's offset + its own noise, all three drawn with
    per-dimension variances falling as a power law (``alpha``), plus a mean direction shared by all
    (``mean``). Calibrated on 3,000 all-MiniLM-L6-v2 vectors of PostgreSQL documentation passages
    (mean cosine 0.17, participation-ratio dimension 70, a nearest neighbour at cosine 0.70; these
    settings give 0.18, 65 and 0.61):
    isotropic noise (alpha 0) gives a dimension of 245, which makes HNSW look worse than it is on
    real embeddings.
    """

    rows: int
    share: float
    seed: int = 7
    alpha: float = ALPHA
    mean: float = MEAN

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        self.n_docs = max(1, self.rows // CHUNKS_PER_DOC)
        n_topics = max(20, self.rows // 1000)
        scale = np.arange(1, DIM + 1, dtype=np.float32) ** (-self.alpha / 2)
        self.scale = (scale * np.sqrt(DIM / np.sum(scale**2))).astype(np.float32)
        direction = rng.standard_normal(DIM, dtype=np.float32)
        shared = self.mean * np.sqrt(DIM) * direction / np.linalg.norm(direction)
        self.topics = shared + rng.standard_normal((n_topics, DIM), dtype=np.float32) * self.scale
        self.doc_topic = rng.integers(0, n_topics, self.n_docs)
        self.doc_offset = rng.standard_normal((self.n_docs, DIM), dtype=np.float32) * self.scale
        n_target = max(1, round(self.n_docs * self.share))
        self.target_docs = np.sort(rng.choice(self.n_docs, n_target, replace=False))

    def blocks(self, size: int = 20_000) -> Iterator[tuple[int, Vectors]]:
        """(first row, vectors) in blocks; chunk i belongs to document i // CHUNKS_PER_DOC."""
        rng = np.random.default_rng(self.seed + 1)
        for start in range(0, self.rows, size):
            rows = np.arange(start, min(start + size, self.rows))
            docs = np.minimum(rows // CHUNKS_PER_DOC, self.n_docs - 1)
            yield start, vectors(rng, self.centres(docs), self.scale)

    def queries(self, n: int) -> Vectors:
        """Half near a readable document (a user asking about their own papers), half about any topic."""
        rng = np.random.default_rng(self.seed + 2)
        near = rng.choice(self.target_docs, n // 2)
        anywhere = rng.integers(0, self.n_docs, n - n // 2)
        return vectors(rng, self.centres(np.concatenate([near, anywhere])), self.scale)

    def centres(self, docs: np.ndarray) -> Vectors:
        """Each document's centre: its topic's plus its own offset."""
        return self.topics[self.doc_topic[docs]] + self.doc_offset[docs]


def doc_id(d: int) -> uuid.UUID:
    """Document ids are fixed by number, so every run writes the same rows."""
    return uuid.UUID(int=(1 << 64) + d)


def chunk_id(i: int) -> uuid.UUID:
    """Chunk ids are fixed by number."""
    return uuid.UUID(int=i + 1)
