"""A small typed client for Groundwork's retrieval API (``POST /v1/search``), over HTTP only.

It imports nothing of the server: an agent's process needs only this package, httpx and pydantic.
The API key travels in the ``Authorization`` header and the query in the JSON body; neither ever
appears in an exception message or a log line of ours.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from clients.errors import GroundworkAPIError, GroundworkConnectionError, GroundworkResponseError
from groundwork import __version__
from groundwork.enums import Decision

logger = logging.getLogger(__name__)

#: The retrieval endpoint, under the base URL.
SEARCH_PATH = "/v1/search"


class SearchResult(BaseModel):
    """One chunk the caller may read, as the API returns it (fields the server adds later are ignored)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    chunk_id: str
    document_id: str
    text: str
    score: float
    source: str
    source_uri: str
    residency: str
    seq: int
    page_number: int | None = None
    version: str
    redactions: dict[str, int] = {}
    lexical_score: float | None = None
    fused_score: float | None = None
    rerank_score: float | None = None
    tokens: int | None = None


class SearchResponse(BaseModel):
    """A search's results with the confidence (0..1) and the recommended ``answer``/``handoff`` decision."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    results: tuple[SearchResult, ...]
    confidence: float
    decision: Decision
    reasons: tuple[str, ...] = ()
    regions_searched: tuple[str, ...] = ()
    context_tokens: int = 0
    request_id: str

    @property
    def handoff(self) -> bool:
        """Whether the index recommends handing the question to a person rather than answering."""
        return self.decision is not Decision.ANSWER


@dataclass(frozen=True)
class SearchFilters:
    """Optional narrowing of a search; access and residency are enforced by the server whatever is asked.

    ``modified_after`` must carry a UTC offset (the API takes RFC 3339 date-times with one).
    """

    sources: tuple[str, ...] | None = None
    content_types: tuple[str, ...] | None = None
    modified_after: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``filters`` object of the request body (fields left ``None`` are left out)."""
        body: dict[str, Any] = {}
        if self.sources is not None:
            body["sources"] = list(self.sources)
        if self.content_types is not None:
            body["content_types"] = list(self.content_types)
        if self.modified_after is not None:
            body["modified_after"] = _rfc3339(self.modified_after)
        return body


def _rfc3339(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("filters.modified_after: a datetime with a UTC offset is required")
    return value.isoformat()


def _filters_json(filters: SearchFilters | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(filters, SearchFilters):
        return filters.to_json()
    if not isinstance(filters, Mapping):
        raise TypeError(f"filters: expected SearchFilters or a mapping, got {type(filters).__name__}")
    # The server validates the fields (a 422 names the bad one); here only datetimes need converting.
    return {key: _rfc3339(value) if isinstance(value, datetime) else value for key, value in filters.items()}


def _check_key(api_key: str | SecretStr) -> SecretStr:
    """``api_key`` as a secret, refused (without echoing it) if it cannot be a bearer token.

    httpx would otherwise refuse a header with a control character in a message that quotes the value.
    """
    secret = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
    raw = secret.get_secret_value()
    if not isinstance(raw, str) or not raw or any(not 33 <= ord(c) <= 126 for c in raw):
        raise ValueError("api_key: must be a non-empty token of printable ASCII characters without spaces")
    return secret


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: delay-seconds or an HTTP-date (RFC 9110); ``None`` if absent."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, math.ceil((when - datetime.now(UTC)).total_seconds()))


def _error_from(response: httpx.Response) -> GroundworkAPIError | GroundworkResponseError:
    """The exception for a non-2xx response: the API's own ``{"error", "message"}`` body when it is one."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if not (isinstance(body, dict) and isinstance(body.get("error"), str)):
        # Not the API's error shape (a proxy's page, say): its text is not repeated, it could be anything.
        return GroundworkResponseError(
            f"error response without a Groundwork error body ({response.reason_phrase or 'no reason'})",
            status=status,
        )
    message = body.get("message")
    return GroundworkAPIError(
        status,
        body["error"],
        message if isinstance(message, str) else "",
        retry_after=_retry_after(response.headers.get("Retry-After")),
    )


def _parse(response: httpx.Response) -> SearchResponse:
    if not response.is_success:
        raise _error_from(response)
    try:
        return SearchResponse.model_validate_json(response.content)
    except ValidationError as exc:
        # Field locations only: pydantic's own text would quote the values, which include chunk text.
        where = sorted({".".join(str(p) for p in e["loc"]) or "body" for e in exc.errors()})
        raise GroundworkResponseError(
            f"the search response does not match the documented shape (at: {', '.join(where[:5])})",
            status=response.status_code,
        ) from None


class GroundworkClient:
    """A client of one Groundwork retrieval API, authenticated as one principal (an API key or a JWT).

    ``transport`` (and ``async_transport`` for :meth:`asearch`) let a caller add TLS client
    certificates, proxies or retries through httpx's own transports. Use it as a context manager, or
    call :meth:`close`, to release its connections.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | SecretStr,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url: must start with http:// or https://")
        self.base_url = base_url.rstrip("/")
        self._key = _check_key(api_key)
        self._timeout = httpx.Timeout(timeout)
        self._async_transport = async_transport
        self._http = httpx.Client(
            base_url=self.base_url, headers=self._headers(), timeout=self._timeout, transport=transport
        )

    def __repr__(self) -> str:
        return f"GroundworkClient(base_url={self.base_url!r})"

    def __enter__(self) -> GroundworkClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections of :meth:`search`."""
        self._http.close()

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._key.get_secret_value()}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"groundwork-client/{__version__}",
        }

    @staticmethod
    def _body(
        query: str,
        k: int | None,
        filters: SearchFilters | Mapping[str, Any] | None,
        conversation_id: str | None = None,
    ) -> bytes:
        if not isinstance(query, str):
            raise TypeError(f"query: expected str, got {type(query).__name__}")
        payload: dict[str, Any] = {"query": query}
        if k is not None:
            if isinstance(k, bool) or not isinstance(k, int):
                raise TypeError(f"k: expected int, got {type(k).__name__}")
            payload["k"] = k
        if filters is not None:
            payload["filters"] = _filters_json(filters)
        if conversation_id is not None:
            payload["conversation_id"] = conversation_id
        # ASCII JSON: a lone surrogate in a query becomes an escape instead of an encoding error.
        return json.dumps(payload, ensure_ascii=True).encode("ascii")

    def search(
        self,
        query: str,
        k: int | None = None,
        filters: SearchFilters | Mapping[str, Any] | None = None,
        conversation_id: str | None = None,
    ) -> SearchResponse:
        """Search as this client's principal; ``k`` defaults to the server's ``retrieval.default_k``.

        ``conversation_id`` makes the search count against that conversation's token budget.

        Raises :class:`GroundworkAPIError` when the API refuses (401, 413, 415, 422, 429, 503, ...),
        :class:`GroundworkConnectionError` when it cannot be reached in time, and
        :class:`GroundworkResponseError` when it answers with something undocumented.
        """
        content = self._body(query, k, filters, conversation_id)
        try:
            response = self._http.post(SEARCH_PATH, content=content)
        except httpx.TransportError as exc:
            raise GroundworkConnectionError(
                f"{SEARCH_PATH} on {self.base_url}: {type(exc).__name__}"
            ) from exc
        return self._finish(response)

    async def asearch(
        self,
        query: str,
        k: int | None = None,
        filters: SearchFilters | Mapping[str, Any] | None = None,
        conversation_id: str | None = None,
    ) -> SearchResponse:
        """:meth:`search` with ``httpx.AsyncClient``, for event loops.

        Each call opens its own connection, so the client may be used from any event loop.
        """
        content = self._body(query, k, filters, conversation_id)
        try:
            async with httpx.AsyncClient(
                base_url=self.base_url,
                headers=self._headers(),
                timeout=self._timeout,
                transport=self._async_transport,
            ) as http:
                response = await http.post(SEARCH_PATH, content=content)
        except httpx.TransportError as exc:
            raise GroundworkConnectionError(
                f"{SEARCH_PATH} on {self.base_url}: {type(exc).__name__}"
            ) from exc
        return self._finish(response)

    def _finish(self, response: httpx.Response) -> SearchResponse:
        outcome = _parse(response)
        logger.debug(
            "search %s: %d results, decision %s, confidence %.3f",
            outcome.request_id,
            len(outcome.results),
            outcome.decision.value,
            outcome.confidence,
        )
        return outcome
