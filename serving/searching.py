"""The search every transport answers: its request and response, and the one path it takes.

``POST /v1/search`` (:mod:`serving.api`) and the MCP ``search`` tool (:mod:`serving.mcp`) both call
:func:`run_search`, so limits, access control, the conversation budget and the audit are the same
whichever way an agent asks.
"""

import re
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from groundwork.enums import Decision, Reason
from groundwork.errors import GroundworkError
from groundwork.settings import RetrievalConfig
from indexes.results import NO_FILTERS, SearchFilters, SearchOutcome
from indexes.search import Retriever
from serving.actions import AgentLedgers, ConversationId, summary
from serving.auth import Caller

#: Text without NUL characters (PostgreSQL text cannot hold one: a query with one is refused with a 422).
NoNul = Annotated[str, StringConstraints(pattern=r"^[^\x00]*$")]

#: The characters ``str.strip()`` removes (``str.isspace``), as the body of a regular-expression class.
SPACE_CLASS = r"\x09-\x0d\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"

#: A query the handler accepts, as the published schema states it: no NUL character and not blank.
QUERY_PATTERN = rf"^[^\x00]*[^\x00{SPACE_CLASS}][^\x00]*$"

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII)


def _rfc3339(value: object) -> object:
    """``value`` if it is an RFC 3339 date-time string (what the schema's ``date-time`` format says).

    Checked before pydantic's lax parsing, which would read ``0`` or ``"0"`` as 1970-01-01 and a
    date-time without an offset as local time.
    """
    if isinstance(value, str) and _RFC3339.fullmatch(value):
        return value
    raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2026-01-01T00:00:00Z")


#: A date-time as the API accepts it: an RFC 3339 string with a UTC offset.
DateTime = Annotated[datetime, BeforeValidator(_rfc3339)]


class Filters(BaseModel):
    """Optional narrowing of a search. Access and residency are enforced whatever is asked here."""

    model_config = ConfigDict(extra="forbid")

    sources: list[Annotated[NoNul, StringConstraints(max_length=64)]] | None = Field(
        default=None, max_length=50
    )
    content_types: list[Annotated[NoNul, StringConstraints(max_length=200)]] | None = Field(
        default=None, max_length=20, description="e.g. application/pdf, text/markdown"
    )
    modified_after: DateTime | None = Field(
        default=None, description="Only documents modified after this (RFC 3339, with an offset)."
    )


def _json_integer(value: object) -> object:
    """A JSON integer as JSON Schema means it (``4`` or ``4.0``), never ``true`` or ``"4"``."""
    if isinstance(value, bool | str | bytes):
        raise ValueError("must be a JSON integer")
    return value


#: ``k``: an integer; JSON ``true`` is not 1 and ``"3"`` is not 3 (a float with no fraction is).
JsonInt = Annotated[int, BeforeValidator(_json_integer)]


class SearchRequest(BaseModel):
    """A search: the query text, how many results to return, optional filters."""

    model_config = ConfigDict(extra="forbid")

    query: NoNul = Field(min_length=1, max_length=100_000, description="What to search for.")
    k: JsonInt = Field(
        default=5, ge=1, le=1000, description="How many results, at most (default: retrieval.default_k)."
    )
    filters: Filters | None = None
    conversation_id: ConversationId | None = Field(
        default=None,
        description="The agent's conversation: its searches share agents.conversation_token_budget.",
    )


class SearchResult(BaseModel):
    """One chunk the caller may read."""

    chunk_id: str
    document_id: str
    text: str = Field(description="Redacted chunk text.")
    score: float = Field(description="Cosine similarity to the query, -1..1 (higher is closer).")
    source: str
    source_uri: str
    residency: str
    seq: int
    page_number: int | None
    version: str
    redactions: dict[str, int] = Field(description="PII placeholders in this chunk's text, by entity type.")
    lexical_score: float | None = Field(default=None, description="Full-text rank (hybrid mode), if matched.")
    fused_score: float | None = Field(default=None, description="Reciprocal-rank-fusion score (hybrid mode).")
    rerank_score: float | None = Field(
        default=None, description="The reranker's logit, for results among the candidates it read."
    )
    tokens: int = Field(description="Model tokens in the text (counted against max_context_tokens).")


class SearchResponse(BaseModel):
    """Results with the confidence and recommended decision for a downstream guardrail."""

    results: list[SearchResult]
    confidence: float = Field(ge=0.0, le=1.0, description="Confidence that the top result is relevant.")
    decision: Decision
    reasons: list[Reason]
    regions_searched: list[str]
    context_tokens: int = Field(
        description="Tokens in all returned texts, at most retrieval.max_context_tokens."
    )
    request_id: str = Field(description="This search's id in the audit: quote it when checking an action.")


class InvalidSearch(GroundworkError):
    """A search past this server's configured limits (answered 422 ``invalid_request``)."""


def run_search(
    retriever: Retriever,
    limits: RetrievalConfig,
    who: Caller,
    body: SearchRequest,
    ledgers: AgentLedgers | None = None,
) -> tuple[SearchOutcome, SearchResponse]:
    """Check ``body`` against this server's limits, search as ``who`` (audited) and shape the answer.

    The one path every transport takes (HTTP here, MCP in :mod:`serving.mcp`), so limits, access
    control and the audit are the same whichever way an agent asks. With ``ledgers``, the search's
    summary goes to the caller's ledger (for the action gate), and a search in a conversation gets
    only what the conversation's earlier searches left of its token budget: a conversation's searches
    in this process take turns (:meth:`serving.actions.AgentLedgers.conversation_turn`), so parallel
    ones stay within the budget together. (Across serving processes they do not wait on each other.)
    """
    if len(body.query) > limits.max_query_chars:
        raise InvalidSearch(f"query: at most {limits.max_query_chars} characters")
    k = body.k if "k" in body.model_fields_set else limits.default_k
    if k > limits.max_k:
        raise InvalidSearch(f"k: at most {limits.max_k}")
    if not body.query.strip():
        raise InvalidSearch("query: must not be blank")
    f = body.filters
    filters = (
        SearchFilters(
            sources=tuple(f.sources) if f.sources is not None else None,
            content_types=tuple(f.content_types) if f.content_types is not None else None,
            modified_after=f.modified_after,
        )
        if f is not None
        else NO_FILTERS
    )
    ledger = ledgers.of(who.principal) if ledgers is not None else None
    name, cid = who.principal.name, body.conversation_id

    def search_and_record(left: int | None) -> SearchOutcome:
        outcome = retriever.search(
            who.principal,
            body.query,
            k,
            auth_method=who.method,
            filters=filters,
            conversation_tokens_left=left,
        )
        if ledger is not None:
            ledger.record_search(name, summary(outcome, cid))
        return outcome

    if ledgers is not None and ledger is not None and cid is not None:
        with ledgers.conversation_turn(name, cid):
            spent = ledger.conversation_tokens(name, cid)
            outcome = search_and_record(ledgers.config.agents.conversation_token_budget - spent)
    else:
        outcome = search_and_record(None)
    return outcome, SearchResponse(
        results=[SearchResult.model_validate(h, from_attributes=True) for h in outcome.results],
        confidence=outcome.confidence,
        decision=outcome.decision,
        reasons=outcome.reasons,
        regions_searched=outcome.regions_searched,
        context_tokens=outcome.context_tokens,
        request_id=str(outcome.request_id),
    )
