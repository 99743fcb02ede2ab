"""Prometheus metrics for the retrieval API: ``GET /metrics`` in the Prometheus text format.

Every app has its own registry (never the process-wide default), so several apps in one process do
not collide. Labels take values only from fixed vocabularies: a route *template* (``other`` for a path
no route matches), an HTTP method from :data:`METHODS` (``other`` for any other), a status code the
app itself set, and the :class:`~groundwork.enums.Decision` and :class:`~groundwork.enums.Reason`
codes. No principal, query, key, chunk text or other request value ever becomes a label, since a
caller controls those and they may be personal data.

With ``api.metrics.token_env`` set, ``/metrics`` answers only a scraper that sends
``Authorization: Bearer <the token in that environment variable>``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from starlette.routing import Match

from groundwork.enums import ActionDecision, Decision, EventKind, GateReason, Reason
from groundwork.errors import ConfigError
from groundwork.settings import GroundworkConfig
from indexes.ledger import CHAIN_ENDS
from indexes.results import SearchOutcome
from indexes.stats import IndexStats

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The path metrics are served on.
METRICS_PATH = "/metrics"

#: The route label of a request that no route matches (the raw path is the caller's text).
OTHER = "other"

#: HTTP methods that become a ``method`` label as they are; any other is counted as ``other``.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

#: Request latency buckets, in seconds: a cached answer takes milliseconds, a cold model seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

#: Confidence buckets: the 0..1 range in tenths.
CONFIDENCE_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))

#: Buckets for a whole chain, first search to the action or handoff (seconds).
CHAIN_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

#: Buckets for the tokens a search returns (the default budget, retrieval.max_context_tokens, is 4000).
TOKEN_BUCKETS = (0, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000)


class Metrics:
    """One app's metrics: a private registry and the collectors the API records into."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.request_duration = Histogram(
            "groundwork_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template, method and status code.",
            ("route", "method", "status"),
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.searches = Counter(
            "groundwork_searches", "Searches answered, by recommended decision.", ("decision",), registry=reg
        )
        self.reasons = Counter(
            "groundwork_search_reasons", "Reasons given with search decisions.", ("reason",), registry=reg
        )
        self.confidence = Histogram(
            "groundwork_search_confidence",
            "Confidence that a search's top result is relevant (0..1).",
            buckets=CONFIDENCE_BUCKETS,
            registry=reg,
        )
        self.context_tokens = Histogram(
            "groundwork_context_tokens",
            "Model tokens in the texts a search returned.",
            buckets=TOKEN_BUCKETS,
            registry=reg,
        )
        self.budget_refusals = Counter(
            "groundwork_context_budget_refusals",
            f"Searches that dropped results to stay within retrieval.max_context_tokens "
            f"(reason {Reason.CONTEXT_BUDGET.value}).",
            registry=reg,
        )
        self.auth_failures = Counter(
            "groundwork_auth_failures",
            "Requests refused for a missing or bad credential (401).",
            registry=reg,
        )
        self.rate_limited = Counter(
            "groundwork_rate_limited", "Requests refused by the rate limit (429).", registry=reg
        )
        self.action_checks = Counter(
            "groundwork_action_checks", "Action gate answers, by decision.", ("decision",), registry=reg
        )
        self.gate_reasons = Counter(
            "groundwork_action_check_reasons",
            "Why the gate did not let an action proceed.",
            ("reason",),
            registry=reg,
        )
        self.agent_events = Counter(
            "groundwork_agent_events", "Steps agents reported, by kind.", ("kind",), registry=reg
        )
        self.step_latency = Histogram(
            "groundwork_agent_step_latency_seconds",
            "Latency agents reported for their steps, by kind.",
            ("kind",),
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.chain_duration = Histogram(
            "groundwork_agent_chain_duration_seconds",
            "Time from a conversation's first search, check or step to the step that ends its chain"
            " (an action executed or failed, a handoff), by that step's kind.",
            ("kind",),
            buckets=CHAIN_BUCKETS,
            registry=reg,
        )
        self.agent_cost = Counter(
            "groundwork_agent_cost", "Cost agents reported (operator's unit).", registry=reg
        )
        self.conversations = Counter(
            "groundwork_agent_conversations", "Conversations that reported their first step.", registry=reg
        )
        # Every label value exists from the start, so rates and shares are 0 rather than absent.
        for action_decision in ActionDecision:
            self.action_checks.labels(decision=action_decision.value)
        for gate_reason in GateReason:
            self.gate_reasons.labels(reason=gate_reason.value)
        for kind in EventKind:
            self.agent_events.labels(kind=kind.value)
            self.step_latency.labels(kind=kind.value)
        for kind in CHAIN_ENDS:
            self.chain_duration.labels(kind=kind.value)
        for decision in Decision:
            self.searches.labels(decision=decision.value)
        for reason in Reason:
            self.reasons.labels(reason=reason.value)
        ProcessCollector(registry=reg)
        PlatformCollector(registry=reg)
        GCCollector(registry=reg)

    def record_search(self, outcome: SearchOutcome) -> None:
        """Count one answered search: its decision, reasons, confidence and context tokens."""
        self.searches.labels(decision=Decision(outcome.decision).value).inc()
        reasons = {Reason(r) for r in outcome.reasons}
        for reason in reasons:
            self.reasons.labels(reason=reason.value).inc()
        if Reason.CONTEXT_BUDGET in reasons:
            self.budget_refusals.inc()
        self.confidence.observe(outcome.confidence)
        self.context_tokens.observe(outcome.context_tokens)

    def record_check(self, decision: ActionDecision, reasons: list[GateReason]) -> None:
        """Count one action-gate answer and its reasons."""
        self.action_checks.labels(decision=decision.value).inc()
        for reason in set(reasons):
            self.gate_reasons.labels(reason=reason.value).inc()

    def record_event(
        self,
        kind: EventKind,
        latency_ms: float | None,
        cost: float | None,
        first: bool,
        chain_seconds: float | None = None,
    ) -> None:
        """Count one reported step (``first``: its conversation's first), its latency and cost, and
        the duration of the chain it ends (``chain_seconds``, for a step that ends one)."""
        self.agent_events.labels(kind=kind.value).inc()
        if chain_seconds is not None:
            self.chain_duration.labels(kind=kind.value).observe(chain_seconds)
        if latency_ms is not None:
            self.step_latency.labels(kind=kind.value).observe(latency_ms / 1000)
        if cost:
            self.agent_cost.inc(cost)
        if first:
            self.conversations.inc()

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Record one HTTP request (``route`` a template or :data:`OTHER`, ``method`` as sent)."""
        method = method if method in METHODS else OTHER
        self.request_duration.labels(route=route, method=method, status=str(status)).observe(seconds)
        if status == 401:
            self.auth_failures.inc()
        elif status == 429:
            self.rate_limited.inc()

    def exposition(self, accept: str) -> tuple[bytes, str]:
        """The registry's samples in the format ``accept`` asks for, and that format's content type."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


def route_template(app: FastAPI, scope: Scope) -> str:
    """The template of the route ``scope`` goes to (``/v1/search``), or :data:`OTHER` when none matches.

    A path that matches a route but not its method (a 405) is labelled with that route.
    """
    partial = OTHER
    for route in app.router.routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return str(getattr(route, "path", OTHER))
        if match is Match.PARTIAL and partial == OTHER:
            partial = str(getattr(route, "path", OTHER))
    return partial


class _TimingMiddleware:
    """ASGI middleware that times every HTTP request into :class:`Metrics`."""

    def __init__(self, app: ASGIApp, owner: FastAPI, metrics: Metrics) -> None:
        self.app = app
        self.owner = owner
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = route_template(self.owner, scope)
        status = 500  # what the server answers when the app raises before it starts a response

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.observe_request(route, scope["method"], status, time.perf_counter() - start)


def _scrape_token(config: GroundworkConfig) -> bytes | None:
    """The SHA-256 of the scrapers' token, or None when /metrics is open; a missing token is an error."""
    name = config.api.metrics.token_env
    if name is None:
        return None
    token = os.environ.get(name, "")
    if not token:
        raise ConfigError(
            f"api.metrics.token_env names the environment variable {name}, which is not set or empty: "
            "set it to the token scrapers send, or remove token_env to serve /metrics without one"
        )
    return hashlib.sha256(token.encode("utf-8")).digest()


def _authorized(header: str | None, expected: bytes) -> bool:
    scheme, _, token = (header or "").partition(" ")
    digest = hashlib.sha256(token.strip().encode("utf-8")).digest()
    # Both sides are digests of equal length: the comparison's time says nothing about the token.
    return hmac.compare_digest(digest, expected) and scheme.lower() == "bearer" and bool(token.strip())


class IndexCollector(Collector):
    """Ingest's results as the live indexes hold them, read when scraped (at most every ``ttl_s``).

    Ingest runs in Dagster's processes, so the API reports what it wrote from the indexes
    themselves: documents, chunks, failed documents and the last write per region, and whether the
    region could be read (``groundwork_index_up``). Counts only; a region that cannot be read
    reports 0 up and no counts, and never fails the scrape.
    """

    def __init__(self, regions: list[str], read: Callable[[str], IndexStats], ttl_s: float = 30.0) -> None:
        self._regions, self._read, self._ttl = regions, read, ttl_s
        self._lock = threading.Lock()
        self._at = -ttl_s
        self._stats: dict[str, IndexStats | None] = {}

    def _current(self) -> dict[str, IndexStats | None]:
        with self._lock:
            if time.monotonic() - self._at >= self._ttl:
                stats: dict[str, IndexStats | None] = {}
                for region in self._regions:
                    try:
                        stats[region] = self._read(region)
                    except Exception as exc:
                        logger.warning("metrics: index %s unreadable (%s)", region, type(exc).__name__)
                        stats[region] = None
                self._stats, self._at = stats, time.monotonic()
            return self._stats

    def collect(self) -> Any:
        """The index gauges, one sample per region."""
        stats = self._current()
        families = {
            "up": GaugeMetricFamily(
                "groundwork_index_up", "1 when the region's index could be read.", labels=["region"]
            ),
            "documents": GaugeMetricFamily(
                "groundwork_index_documents", "Documents in the region's live index.", labels=["region"]
            ),
            "chunks": GaugeMetricFamily(
                "groundwork_index_chunks", "Chunks in the region's live index.", labels=["region"]
            ),
            "failed": GaugeMetricFamily(
                "groundwork_index_failed_documents",
                "Documents recorded as failed in the region.",
                labels=["region"],
            ),
            "last": GaugeMetricFamily(
                "groundwork_index_last_write_timestamp_seconds",
                "When ingest last wrote a document to the region's live index (Unix time).",
                labels=["region"],
            ),
        }
        for region, s in stats.items():
            families["up"].add_metric([region], 0 if s is None else 1)
            if s is None:
                continue
            families["documents"].add_metric([region], s.documents)
            families["chunks"].add_metric([region], s.chunks)
            families["failed"].add_metric([region], s.failed)
            if s.last_ingest is not None:
                families["last"].add_metric([region], s.last_ingest.timestamp())
        yield from families.values()


def install_metrics(
    app: FastAPI, config: GroundworkConfig, index_stats: Callable[[str], IndexStats] | None = None
) -> Metrics:
    """Give ``app`` request timing and ``GET /metrics`` (unless ``api.metrics.enabled`` is false).

    Call it after the app's other middleware is added, so that the timing sees their answers too
    (a 413 from the body limit, say). Returns the :class:`Metrics` the search handler records into,
    also kept as ``app.state.metrics`` for other transports mounted on the app (MCP) to record theirs.
    With ``index_stats`` (a region's numbers), ``/metrics`` also reports the indexes (:class:`IndexCollector`).
    """
    metrics = Metrics()
    app.state.metrics = metrics
    if not config.api.metrics.enabled:
        return metrics
    if index_stats is not None:
        metrics.registry.register(IndexCollector(config.regions, index_stats))
    expected = _scrape_token(config)
    app.add_middleware(_TimingMiddleware, owner=app, metrics=metrics)

    @app.get(METRICS_PATH, include_in_schema=False)
    def metrics_endpoint(request: Request) -> Response:
        """The app's metrics in the Prometheus text format (or OpenMetrics, if the scraper asks)."""
        if expected is not None and not _authorized(request.headers.get("authorization"), expected):
            return JSONResponse(
                status_code=401,
                content={"error": "unauthorized", "message": "send 'Authorization: Bearer <metrics token>'"},
                headers={"WWW-Authenticate": "Bearer"},
            )
        body, content_type = metrics.exposition(request.headers.get("accept", ""))
        return Response(content=body, media_type=content_type)

    return metrics
