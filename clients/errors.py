"""What the clients raise: a small hierarchy under the kernel's :class:`GroundworkError`.

No message carries the caller's credential or query text: an exception may be logged or shown to an
agent's user, and a query may hold personal data.
"""

from __future__ import annotations

from groundwork.errors import GroundworkError


class GroundworkClientError(GroundworkError):
    """Base class of every error a Groundwork client raises."""


class GroundworkConnectionError(GroundworkClientError):
    """The API could not be reached, or did not answer within the client's timeout."""


class GroundworkResponseError(GroundworkClientError):
    """The API answered with something that is not the documented response (a client/server mismatch?)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class GroundworkAPIError(GroundworkClientError):
    """The API refused the request: ``status`` is the HTTP status, ``code`` and ``message`` its error body.

    ``retry_after`` is the number of seconds the server asked the caller to wait (its ``Retry-After``
    header), set on a 429 ``rate_limited`` and on any 503 that carries one; otherwise ``None``.
    """

    def __init__(self, status: int, code: str, message: str, *, retry_after: float | None = None) -> None:
        text = f"HTTP {status} {code}: {message}"
        if retry_after is not None:
            text += f" (retry after {retry_after:g} s)"
        super().__init__(text)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


class HandoffRequired(GroundworkClientError):
    """The index recommends a handoff: no result is confident enough for an agent to answer from.

    Carries the search's ``confidence`` (0..1), the ``reasons`` (``groundwork.enums.Reason`` values:
    ``low_confidence``, ``no_authorized_results``, ...) and the ``request_id`` that names the search in
    the audit, so a guardrail can route the question to a person and quote the id.
    """

    def __init__(self, confidence: float, reasons: tuple[str, ...], request_id: str) -> None:
        why = ", ".join(reasons) or "unspecified"
        super().__init__(
            f"the retrieval API recommends a handoff (confidence {confidence:.3f}; reasons: {why}; "
            f"request_id {request_id})"
        )
        self.confidence = confidence
        self.reasons = reasons
        self.request_id = request_id
