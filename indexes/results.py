"""What a search takes and gives: query encoders, filters, hits and the outcome with its decision."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np
import numpy.typing as npt

from groundwork.enums import Decision, Reason


class QueryEncoder(Protocol):
    """Embeds queries with one model and counts its tokens (a sentence-transformers embedder fits)."""

    @property
    def model_name(self) -> str:
        """The model's name as recorded in an index."""
        ...

    def embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """Unit-length vectors, one per text."""
        ...

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Model tokens per text."""
        ...


#: Makes the encoder of an index built with another model: (model name, dimensions) -> encoder.
EncoderFactory = Callable[[str, int], QueryEncoder]


class PassageScorer(Protocol):
    """Reads a query and passages together (a cross-encoder fits): a logit per passage, and the
    calibrated probability that a passage with a given logit answers the query."""

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        """One logit per passage, in order (higher: more likely an answer)."""
        ...

    def probability(self, logit: float) -> float:
        """P(the passage answers the query) for one logit."""
        ...


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One retrieved chunk. ``score`` is the cosine similarity to the query (higher is closer);
    ``rerank_score`` the reranker's logit when the chunk was among those it read."""

    chunk_id: str
    document_id: str
    text: str
    score: float
    source: str
    source_uri: str
    residency: str
    seq: int
    page_number: int | None
    version: str
    redactions: dict[str, int]
    lexical_score: float | None = None
    fused_score: float | None = None
    rerank_score: float | None = None
    tokens: int = 0


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """Optional narrowing of a search; access and residency are enforced regardless."""

    sources: tuple[str, ...] | None = None
    content_types: tuple[str, ...] | None = None
    modified_after: datetime | None = None


NO_FILTERS = SearchFilters()


@dataclass(frozen=True, slots=True)
class SearchOutcome:
    """Results, confidence, decision and reasons for one query."""

    results: list[SearchHit]
    confidence: float
    decision: Decision
    reasons: list[Reason]
    regions_searched: list[str] = field(default_factory=list)
    context_tokens: int = 0
    #: Names this search in the audit (and in an action check or a conversation's chain).
    request_id: uuid.UUID = field(default_factory=uuid.uuid4)
