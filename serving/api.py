"""The retrieval API: ``POST /v1/search`` for agents, ``GET /healthz``, OpenAPI docs at ``/docs``.

Callers authenticate with ``Authorization: Bearer <key or JWT>`` (see :mod:`serving.auth`); each
principal is rate limited, and bodies are bounded in size and must be JSON. Errors are JSON with an ``error`` code
and a ``message``; request values are never echoed back, since a query may hold personal data.
"""

import logging
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import psycopg
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from starlette.exceptions import HTTPException as StarletteHTTPException

from groundwork import __version__
from groundwork.enums import Decision, Reason
from groundwork.errors import AuthError, GroundworkError, IndexError_
from groundwork.settings import GroundworkConfig, RetrievalConfig
from indexes.audit import AuditWriteError
from indexes.results import NO_FILTERS, SearchFilters, SearchOutcome
from indexes.search import Retriever
from serving.auth import Authenticator, Caller
from serving.batching import BatcherClosed, BatchFailed
from serving.limits import BodyLimitMiddleware, RateLimiter, retry_after

logger = logging.getLogger(__name__)


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


class SearchRequest(BaseModel):
    """A search: the query text, how many results to return, optional filters."""

    model_config = ConfigDict(extra="forbid")

    query: NoNul = Field(min_length=1, max_length=100_000, description="What to search for.")
    k: int = Field(
        default=5, ge=1, le=1000, description="How many results, at most (default: retrieval.default_k)."
    )
    filters: Filters | None = None


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
    retriever: Retriever, limits: RetrievalConfig, who: Caller, body: SearchRequest
) -> tuple[SearchOutcome, SearchResponse]:
    """Check ``body`` against this server's limits, search as ``who`` (audited) and shape the answer.

    The one path every transport takes (HTTP here, MCP in :mod:`serving.mcp`), so limits, access
    control and the audit are the same whichever way an agent asks.
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
    outcome = retriever.search(who.principal, body.query, k, auth_method=who.method, filters=filters)
    return outcome, SearchResponse(
        results=[SearchResult.model_validate(h, from_attributes=True) for h in outcome.results],
        confidence=outcome.confidence,
        decision=outcome.decision,
        reasons=outcome.reasons,
        regions_searched=outcome.regions_searched,
        context_tokens=outcome.context_tokens,
        request_id=str(outcome.request_id),
    )


class ErrorResponse(BaseModel):
    """Every error body."""

    error: str
    message: str


def _error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": code, "message": message}, headers=headers)


class RateLimited(GroundworkError):
    """A caller exceeded its request rate."""

    def __init__(self, wait_s: float) -> None:
        super().__init__("rate limit exceeded; retry later")
        self.wait_s = wait_s


def _publish_limits(app: FastAPI, limits: RetrievalConfig) -> None:
    """Make ``app``'s OpenAPI schema state this deployment's ``retrieval`` limits.

    The request model carries the widest bounds any config may set (so requests past the configured
    ones get the handler's clear messages); the published schema says what this server accepts: ``k``
    up to ``max_k`` (``default_k`` when absent), and a query of at most ``max_query_chars`` characters
    that is not blank (:data:`QUERY_PATTERN`).
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = generate()
        if fresh:
            fields = schema["components"]["schemas"]["SearchRequest"]["properties"]
            fields["k"].update(maximum=limits.max_k, default=limits.default_k)
            fields["query"].update(maxLength=limits.max_query_chars, pattern=QUERY_PATTERN)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the schema


def create_app(config: GroundworkConfig, retriever: Retriever, *, config_path: Path | None = None) -> FastAPI:
    """The retrieval API for one config and retriever.

    With ``config_path``, principals, keys and JWT settings reload when the file changes.
    """
    limits = config.retrieval
    auth = Authenticator(config, config_path)
    limiter = RateLimiter(config.api.rate_limit_per_minute, config.api.rate_limit_burst)
    bearer = HTTPBearer(auto_error=False)
    app = FastAPI(
        title="Groundwork retrieval API",
        version=__version__,
        description="Top-k chunks the caller may read, with confidence and an answer/handoff decision.",
    )
    _publish_limits(app, limits)
    app.state.auth, app.state.limiter = auth, limiter  # shared with the MCP route (serving.mcp)

    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=config.api.max_body_bytes,
        timeout_s=config.api.body_timeout_seconds,
        json_routes={("POST", "/v1/search")},
    )

    @app.exception_handler(RateLimited)
    async def _limited(request: Request, exc: RateLimited) -> JSONResponse:
        return _error(429, "rate_limited", str(exc), {"Retry-After": retry_after(exc.wait_s)})

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            if err.get("type") == "extra_forbidden":  # the field's name is the caller's text: not echoed
                problems.append(
                    "unknown field (allowed: query, k, filters.sources, .content_types, .modified_after)"
                )
                continue
            if err.get("type") == "json_invalid":  # its location is a character offset, not a field
                problems.append("the request body is not valid JSON")
                continue
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
            problems.append(f"{loc}: {err.get('msg', 'invalid')}")
        return _error(422, "invalid_request", "; ".join(dict.fromkeys(problems)) or "invalid request body")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI's own refusals (a body that is not UTF-8 or not JSON, JSON nested too deep, an
        # unknown path or method) in the same error shape as every other. Their headers are kept:
        # a 405 must say which methods the path allows (``Allow``, RFC 9110).
        code = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "error"
        )
        if exc.status_code == 400:
            return _error(422, code, "the request body is not valid JSON")
        return _error(exc.status_code, code, str(exc.detail), exc.headers)

    @app.exception_handler(InvalidSearch)
    async def _past_limits(request: Request, exc: InvalidSearch) -> JSONResponse:
        return _error(422, "invalid_request", str(exc))

    @app.exception_handler(AuthError)
    async def _unauthorized(request: Request, exc: AuthError) -> JSONResponse:
        return _error(401, "unauthorized", str(exc), {"WWW-Authenticate": "Bearer"})

    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        logger.error("index unavailable: %s", type(exc).__name__)
        return _error(503, "index_unavailable", "the index is unavailable; try again later")

    for unavailable in (IndexError_, psycopg.OperationalError, PoolTimeout):
        app.add_exception_handler(unavailable, _unavailable)

    @app.exception_handler(AuditWriteError)
    async def _unaudited(request: Request, exc: AuditWriteError) -> JSONResponse:
        # Never answered unrecorded: the results are withheld. The cause is logged where it happened.
        return _error(
            503, "audit_unavailable", "the search could not be recorded in the audit; try again later"
        )

    @app.exception_handler(BatchFailed)
    async def _model_failed(request: Request, exc: BatchFailed) -> JSONResponse:
        logger.error("%s", exc)  # names the batcher and the error type, never a query
        return _error(
            503, "model_unavailable", "the query could not be embedded or redacted; try again later"
        )

    @app.exception_handler(BatcherClosed)
    async def _closing(request: Request, exc: BatcherClosed) -> JSONResponse:
        return _error(503, "shutting_down", "the server is shutting down; try again later")

    @app.exception_handler(GroundworkError)
    async def _refused(request: Request, exc: GroundworkError) -> JSONResponse:
        return _error(400, "bad_request", str(exc))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled %s on %s", type(exc).__name__, request.url.path)
        return _error(500, "internal_error", "internal error")

    def caller(
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Caller:
        if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
            raise AuthError("missing bearer token: send 'Authorization: Bearer <key>'")
        who = auth.authenticate(creds.credentials)
        wait = limiter.acquire(who.principal.name)
        if wait:
            raise RateLimited(wait)
        return who

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, Any]:
        """Liveness: the API process is up."""
        return {"status": "ok", "version": __version__}

    @app.post(
        "/v1/search",
        response_model=SearchResponse,
        tags=["retrieval"],
        responses={code: {"model": ErrorResponse} for code in (401, 413, 415, 422, 429, 503)},
    )
    def search(body: SearchRequest, who: Annotated[Caller, Depends(caller)]) -> Any:
        """Top-k chunks the caller may read, from the caller's regions only."""
        _outcome, response = run_search(retriever, limits, who, body)
        return response

    return app
