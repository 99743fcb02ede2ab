"""The naive dense baseline of ``groundwork eval``: the bar that ranking must clear.

The same embedding model over plain passages of ``PASSAGE_WORDS`` words of each document (no
partitioning, no redaction, no headers), a document ranked by its best passage. Computed in process
on the documents the evaluation ingested, for the answerable queries.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from groundwork.settings import EmbeddingConfig
from pipelines.embedding import Embedder

PASSAGE_WORDS = 200


def passages(text: str, words: int = PASSAGE_WORDS) -> list[str]:
    """``text`` cut into consecutive passages of ``words`` words (the last may be shorter)."""
    tokens = text.split()
    return [" ".join(tokens[i : i + words]) for i in range(0, len(tokens), words)] or [""]


def passage_table(documents: dict[str, str], names: list[str]) -> tuple[npt.NDArray[np.int64], list[str]]:
    """Every passage of the documents ``names`` (in that order), and the index in ``names`` of each
    passage's document."""
    owners: list[int] = []
    texts: list[str] = []
    for i, doc_id in enumerate(names):
        for passage in passages(documents[doc_id]):
            owners.append(i)
            texts.append(passage)
    return np.array(owners, dtype=np.int64), texts


def naive_rankings(
    documents: dict[str, str], queries: dict[str, str], config: EmbeddingConfig
) -> dict[str, list[str]]:
    """Each query's documents, best first (the top 100), ranked by their best passage's cosine."""
    embedder = Embedder(config)
    names = sorted(documents)
    owner_index, texts = passage_table(documents, names)
    corpus = embedder.embed(texts)
    ids = sorted(queries)
    asked = embedder.embed([queries[q] for q in ids])
    out: dict[str, list[str]] = {}
    for qid, vector in zip(ids, asked, strict=True):
        best = np.full(len(names), -np.inf)
        np.maximum.at(best, owner_index, corpus @ vector)
        out[qid] = [names[i] for i in np.argsort(-best, kind="stable")[:100]]
    return out
