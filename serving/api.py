"""The retrieval API: ``POST /v1/search`` for agents, ``GET /healthz``, OpenAPI docs at ``/docs``.

Callers authenticate with ``Authorization: Bearer <key or JWT>`` (see :mod:`serving.auth`); each
principal is rate limited, and bodies are bounded in size and must be JSON. Errors are JSON with an ``error`` code
and a ``message``; request values are never echoed back, since a query may hold personal data.
"""

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import psycopg
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import PoolTimeout
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from groundwork import __version__
from groundwork.errors import AuthError, GroundworkError, IndexError_
from groundwork.settings import GroundworkConfig, RetrievalConfig
from indexes.audit import AuditWriteError
from indexes.ledger import IdempotencyConflict
from indexes.search import Retriever
from indexes.stats import index_stats
from serving.actions import AgentLedgers, InvalidAgentRequest, NotFound, agent_router
from serving.auth import Authenticator, Caller
from serving.batching import BatcherClosed, BatchFailed
from serving.limits import BodyLimitMiddleware, RateLimiter, retry_after
from serving.lineage import Forbidden, lineage_router
from serving.metrics import install_metrics
from serving.searching import (
    QUERY_PATTERN,
    InvalidSearch,
    SearchRequest,
    SearchResponse,
    run_search,
)
from serving.telemetry import install_tracing, search_span, tag_caller

logger = logging.getLogger(__name__)


#: Each body's fields, for the message refusing an unknown one (whose name is never echoed).
_FIELDS = {
    "/v1/search": "query, k, filters.sources, .content_types, .modified_after, conversation_id",
    "/v1/actions/check": "request_ids, action, idempotency_key, conversation_id",
    "/v1/events": "conversation_id, kind, action, idempotency_key, latency_ms, cost, detail",
}


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


def _publish_limits(app: FastAPI, limits: RetrievalConfig, max_request_ids: int) -> None:
    """Make ``app``'s OpenAPI schema state this deployment's ``retrieval`` limits.

    The request model carries the widest bounds any config may set (so requests past the configured
    ones get the handler's clear messages); the published schema says what this server accepts: ``k``
    up to ``max_k`` (``default_k`` when absent), and a query of at most ``max_query_chars`` characters
    that is not blank (:data:`QUERY_PATTERN`); an action check quotes at most ``agents.max_request_ids``.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = generate()
        if fresh:
            fields = schema["components"]["schemas"]["SearchRequest"]["properties"]
            fields["k"].update(maximum=limits.max_k, default=limits.default_k)
            fields["query"].update(maxLength=limits.max_query_chars, pattern=QUERY_PATTERN)
            check = schema["components"]["schemas"]["ActionCheckRequest"]["properties"]
            check["request_ids"].update(maxItems=max_request_ids)
        return schema

    app.openapi = openapi  # type: ignore[method-assign, unused-ignore]  # FastAPI's documented way to extend the schema


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
    _publish_limits(app, limits, config.agents.max_request_ids)
    ledgers = AgentLedgers(config, retriever)
    # shared with the MCP route (serving.mcp)
    app.state.auth, app.state.limiter, app.state.ledgers = auth, limiter, ledgers

    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=config.api.max_body_bytes,
        timeout_s=config.api.body_timeout_seconds,
        json_routes={("POST", "/v1/search"), ("POST", "/v1/actions/check"), ("POST", "/v1/events")},
    )
    # After the other middleware: it times their answers too. The indexes are read when scraped.
    metrics = install_metrics(app, config, index_stats=lambda region: index_stats(retriever.catalog, region))
    tracer = install_tracing(app, config)  # a no-op tracer unless telemetry.enabled
    app.state.tracer = tracer  # the MCP route traces its searches with it (serving.mcp)

    @app.exception_handler(RateLimited)
    async def _limited(request: Request, exc: RateLimited) -> JSONResponse:
        return _error(429, "rate_limited", str(exc), {"Retry-After": retry_after(exc.wait_s)})

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            if err.get("type") == "extra_forbidden":  # the field's name is the caller's text: not echoed
                allowed = _FIELDS.get(request.url.path, "see the schema at /docs")
                problems.append(f"unknown field (allowed: {allowed})")
                continue
            if err.get("type") == "json_invalid":  # its location is a character offset, not a field
                problems.append("the request body is not valid JSON")
                continue
            if err.get("loc", ("",))[0] == "path":  # pydantic's message may quote the value: not echoed
                problems.append(
                    f"{err['loc'][-1]}: not a valid {'UUID' if 'uuid' in err.get('type', '') else 'value'}"
                )
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
    @app.exception_handler(InvalidAgentRequest)
    async def _past_limits(request: Request, exc: GroundworkError) -> JSONResponse:
        return _error(422, "invalid_request", str(exc))

    @app.exception_handler(IdempotencyConflict)
    async def _conflict(request: Request, exc: IdempotencyConflict) -> JSONResponse:
        return _error(409, "idempotency_conflict", str(exc))

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> JSONResponse:
        return _error(404, "not_found", str(exc))

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> JSONResponse:
        return _error(403, "forbidden", str(exc))

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
        tag_caller(who)  # its trace follows the export rules of the caller's regions
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
        with search_span(tracer, who, body.k if "k" in body.model_fields_set else limits.default_k) as span:
            outcome, response = run_search(retriever, limits, who, body, ledgers)
            span.record(outcome)
        metrics.record_search(outcome)
        return response

    refusals: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorResponse} for code in (401, 404, 409, 413, 415, 422, 429, 503)
    }
    app.include_router(agent_router(config, retriever, ledgers, caller, refusals, metrics))
    steward: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorResponse} for code in (401, 403, 404, 422, 429, 503)
    }
    app.include_router(lineage_router(retriever, caller, steward))
    return app
