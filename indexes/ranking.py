"""Reordering candidate chunks: reciprocal rank fusion of two rankings, and reranking by a reader of
query and passage together (a cross-encoder, handed to the retriever as a :class:`PassageScorer`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from indexes.results import PassageScorer, SearchHit


def fuse(dense: list[SearchHit], lexical: list[SearchHit], rrf_k: int, n: int) -> list[SearchHit]:
    """Dense and full-text hits fused by reciprocal rank (each ranking's best ``n``), best first.

    A chunk found by both keeps the hit that carries its full-text rank.
    """
    dense = sorted(dense, key=lambda h: (-h.score, h.chunk_id))[:n]
    lexical = sorted(lexical, key=lambda h: (-(h.lexical_score or 0.0), h.chunk_id))[:n]
    fused: dict[str, float] = {}
    best: dict[str, SearchHit] = {}
    for ranked in (dense, lexical):
        for rank, hit in enumerate(ranked, 1):
            fused[hit.chunk_id] = fused.get(hit.chunk_id, 0.0) + 1.0 / (rrf_k + rank)
            if hit.chunk_id not in best or hit.lexical_score is not None:
                best[hit.chunk_id] = hit
    ordered = sorted(fused, key=lambda c: (-fused[c], c))
    return [replace(best[c], fused_score=round(fused[c], 6)) for c in ordered]


def rerank(query: str, hits: Sequence[SearchHit], scorer: PassageScorer, depth: int) -> list[SearchHit]:
    """The first ``depth`` hits reordered by the scorer's logit (each hit keeps it as
    ``rerank_score``), then the rest in their order. Ties keep the earlier rank."""
    head = list(hits[:depth])
    logits = scorer.score(query, [h.text for h in head])
    scored = [replace(h, rerank_score=round(s, 4)) for h, s in zip(head, logits, strict=True)]
    order = sorted(range(len(scored)), key=lambda i: (-logits[i], i))
    return [scored[i] for i in order] + list(hits[depth:])
