"""What the framework retrievers share: each result's metadata, and what a handoff decision does."""

from __future__ import annotations

from typing import Any, Literal

from clients.errors import HandoffRequired
from clients.http import SearchResponse, SearchResult

#: What a retriever does when the API recommends a handoff: raise :class:`HandoffRequired`, or
#: return no results (so a chain answers from nothing and its prompt can say "I don't know").
OnHandoff = Literal["raise", "empty"]

#: Metadata a language model may usefully read beside the text (where it came from); the rest is for
#: guardrails and audit, and LlamaIndex is told to keep it out of prompts and embeddings.
CITATION_KEYS = ("source", "source_uri", "page_number")


def kept_results(response: SearchResponse, on_handoff: OnHandoff) -> tuple[SearchResult, ...]:
    """The results a retriever hands on: all of them on ``answer``; on ``handoff``, raise or none."""
    if not response.handoff:
        return response.results
    if on_handoff == "raise":
        raise HandoffRequired(response.confidence, response.reasons, response.request_id)
    return ()


def metadata(response: SearchResponse, result: SearchResult, rank: int) -> dict[str, Any]:
    """One result's metadata: the chunk's own fields and the search's confidence, decision and audit id."""
    return {
        "chunk_id": result.chunk_id,
        "document_id": result.document_id,
        "source": result.source,
        "source_uri": result.source_uri,
        "residency": result.residency,
        "seq": result.seq,
        "page_number": result.page_number,
        "version": result.version,
        "redactions": dict(result.redactions),
        "tokens": result.tokens,
        "score": result.score,
        "lexical_score": result.lexical_score,
        "fused_score": result.fused_score,
        "rerank_score": result.rerank_score,
        "rank": rank,
        "confidence": response.confidence,
        "decision": response.decision.value,
        "reasons": list(response.reasons),
        "regions_searched": list(response.regions_searched),
        "context_tokens": response.context_tokens,
        "request_id": response.request_id,
    }
