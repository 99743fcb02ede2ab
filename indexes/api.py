"""The retrieval API: ``POST /v1/search`` for agents, ``GET /healthz``, OpenAPI docs at ``/docs``.

Callers authenticate with ``Authorization: Bearer <key>``; only the SHA-256 of each key is
configured, and look-ups compare digests in constant time. Errors are JSON with an ``error`` code
and a ``message``; request values are never echoed back, since a query may hold personal data.
"""

import hashlib
import hmac
import logging
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from groundwork import __version__
from groundwork.config import GroundworkConfig, PrincipalConfig
from groundwork.errors import AuthError, GroundworkError, IndexError_
from indexes.confidence import Decision, Reason
from indexes.search import Retriever

logger = logging.getLogger(__name__)


class SearchRequest(BaseModel):
    """A search: the query text and how many results to return."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=100_000, description="What to search for.")
    k: int = Field(default=5, ge=1, le=1000, description="How many results, at most.")


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
    redactions: dict[str, int] = Field(description="PII placeholders in the document, by entity type.")


class SearchResponse(BaseModel):
    """Results with the confidence and recommended decision for a downstream guardrail."""

    results: list[SearchResult]
    confidence: float = Field(ge=0.0, le=1.0, description="Confidence that the top result is relevant.")
    decision: Decision
    reasons: list[Reason]
    regions_searched: list[str]


class ErrorResponse(BaseModel):
    """Every error body."""

    error: str
    message: str


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": code, "message": message}, headers=headers)


class KeyRing:
    """Principals by API key digest; every look-up compares against every digest."""

    def __init__(self, principals: list[PrincipalConfig]) -> None:
        self._entries = [(bytes.fromhex(p.api_key_sha256), p) for p in principals]

    def authenticate(self, key: str) -> PrincipalConfig:
        """The principal holding ``key``; raises :class:`AuthError` when none does."""
        digest = hashlib.sha256(key.encode("utf-8")).digest()
        found: PrincipalConfig | None = None
        for expected, principal in self._entries:
            if hmac.compare_digest(digest, expected) and found is None:
                found = principal
        if found is None:
            raise AuthError("unknown API key")
        return found


def create_app(config: GroundworkConfig, retriever: Retriever) -> FastAPI:
    """The retrieval API for one config and retriever."""
    limits = config.retrieval
    keys = KeyRing(list(config.principals))
    bearer = HTTPBearer(auto_error=False)
    app = FastAPI(
        title="Groundwork retrieval API",
        version=__version__,
        description="Top-k chunks the caller may read, with confidence and an answer/handoff decision.",
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
            problems.append(f"{loc}: {err.get('msg', 'invalid')}")
        return _error(422, "invalid_request", "; ".join(problems) or "invalid request body")

    @app.exception_handler(AuthError)
    async def _unauthorized(request: Request, exc: AuthError) -> JSONResponse:
        return _error(401, "unauthorized", str(exc), {"WWW-Authenticate": "Bearer"})

    @app.exception_handler(IndexError_)
    async def _unavailable(request: Request, exc: IndexError_) -> JSONResponse:
        logger.error("index unavailable: %s", exc)
        return _error(503, "index_unavailable", "the index is unavailable; try again later")

    @app.exception_handler(GroundworkError)
    async def _refused(request: Request, exc: GroundworkError) -> JSONResponse:
        return _error(400, "bad_request", str(exc))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled %s on %s", type(exc).__name__, request.url.path)
        return _error(500, "internal_error", "internal error")

    def principal(
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> PrincipalConfig:
        if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
            raise AuthError("missing bearer token: send 'Authorization: Bearer <key>'")
        return keys.authenticate(creds.credentials)

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, Any]:
        """Liveness: the API process is up."""
        return {"status": "ok", "version": __version__}

    @app.post(
        "/v1/search",
        response_model=SearchResponse,
        tags=["retrieval"],
        responses={
            401: {"model": ErrorResponse},
            422: {"model": ErrorResponse},
            503: {"model": ErrorResponse},
        },
    )
    def search(body: SearchRequest, caller: Annotated[PrincipalConfig, Depends(principal)]) -> Any:
        """Top-k chunks the caller may read, from the caller's regions only."""
        if len(body.query) > limits.max_query_chars:
            return _error(422, "invalid_request", f"query: at most {limits.max_query_chars} characters")
        if body.k > limits.max_k:
            return _error(422, "invalid_request", f"k: at most {limits.max_k}")
        if not body.query.strip():
            return _error(422, "invalid_request", "query: must not be blank")
        outcome = retriever.search(caller, body.query, body.k)
        return SearchResponse(
            results=[SearchResult.model_validate(h, from_attributes=True) for h in outcome.results],
            confidence=outcome.confidence,
            decision=outcome.decision,
            reasons=outcome.reasons,
            regions_searched=outcome.regions_searched,
        )

    return app
