"""Traces of the retrieval API: the FastAPI instrumentation, under the residency rules of ``telemetry:``.

Each app has its own tracer provider (:class:`telemetry.Telemetry`), shut down (its spans exported)
when the app stops. The instrumentation never records a request or response body; ``/metrics``
and ``/healthz`` are not traced; and of what it records only the method, the route template and
the status code leave the process (:mod:`telemetry.governance`). Every authenticated request's span is
tagged with the regions its caller may read (:func:`tag_caller`), so its trace follows their export
rules; a search span adds the decision, ``k``, the number of results, the confidence and the
latency; never the query. The MCP route's requests are not traced; its tools open their own spans,
tagged the same way once the caller is known (:func:`caller_span`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.trace import Span, StatusCode, Tracer

from groundwork.settings import GroundworkConfig
from groundwork.telemetry_config import (
    ATTR_CONFIDENCE,
    ATTR_DECISION,
    ATTR_K,
    ATTR_LATENCY_MS,
    ATTR_REGIONS,
    ATTR_RESULTS,
)
from indexes.results import SearchOutcome
from serving.auth import Caller
from serving.metrics import METRICS_PATH
from telemetry import Telemetry

#: Paths whose HTTP requests are never traced: scrapes and liveness probes would drown the traces,
#: and the MCP route (``serving.mcp.MCP_PATH``) authenticates in its own wrapper, where no request
#: span learns the caller's regions, so its requests are left out rather than exported untagged
#: (fail closed). Its searches are traced by the tool itself, once the caller is known.
UNTRACED_PATHS = (METRICS_PATH, "/healthz", "/mcp")


def install_tracing(app: FastAPI, config: GroundworkConfig) -> Tracer:
    """Instrument ``app`` when ``telemetry.enabled``; returns the tracer its handlers use (a no-op one
    when telemetry is off). The provider is kept on ``app.state.telemetry``."""
    telemetry = Telemetry(config.telemetry)
    app.state.telemetry = telemetry
    if not telemetry.enabled:
        return telemetry.tracer(__name__)
    # The instrumentation matches these against scheme://host/path (never the query).
    untraced = ",".join(rf"^[a-z]+://[^/]+{path}/?$" for path in UNTRACED_PATHS)
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=telemetry.provider,
        meter_provider=NoOpMeterProvider(),  # the API's metrics are Prometheus's (serving.metrics)
        excluded_urls=untraced,
        exclude_spans=["receive", "send"],
    )
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        try:
            async with inner(a) as state:
                yield state
        finally:
            telemetry.shutdown()  # exports what was decided

    app.router.lifespan_context = lifespan
    return telemetry.tracer(__name__)


def tag_caller(who: Caller) -> None:
    """Tag the current request's span with every region ``who`` may read, once authenticated.

    Every authenticated route (searches, the action gate, events, conversations) touches data or
    ledger rows in those regions, so its trace follows their export rules, whatever it did.
    """
    trace.get_current_span().set_attribute(ATTR_REGIONS, sorted(who.principal.regions))


class SearchSpan:
    """What a search span records once the search has answered."""

    def __init__(self, span: Span, regions: list[str]) -> None:
        self._span = span
        self._regions = regions

    def record(self, outcome: SearchOutcome) -> None:
        """The search's regions, decision, results and confidence (numbers and enum words only)."""
        self._span.set_attributes(
            {
                ATTR_REGIONS: sorted(set(self._regions) | set(outcome.regions_searched)),
                ATTR_DECISION: str(outcome.decision),
                ATTR_RESULTS: len(outcome.results),
                ATTR_CONFIDENCE: float(outcome.confidence),
            }
        )


@contextmanager
def caller_span(
    tracer: Tracer, name: str, who: Caller, attributes: dict[str, str | int] | None = None
) -> Iterator[Span]:
    """A span around one request by ``who`` where no HTTP request span is tagged (an MCP tool, a
    search), tagged at once with every region ``who`` may read: its trace follows their export
    rules whatever the request did. Records its latency; an exception only as an error status."""
    started = time.monotonic()
    with tracer.start_as_current_span(
        name,
        attributes={ATTR_REGIONS: sorted(who.principal.regions), **(attributes or {})},
        record_exception=False,  # an exception's message may quote the query
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except BaseException:
            span.set_status(StatusCode.ERROR)
            raise
        finally:
            span.set_attribute(ATTR_LATENCY_MS, round((time.monotonic() - started) * 1000.0, 3))


@contextmanager
def search_span(tracer: Tracer, who: Caller, k: int) -> Iterator[SearchSpan]:
    """A span around one search by ``who``, tagged at once with every region ``who`` may search."""
    with caller_span(tracer, "groundwork.search", who, {ATTR_K: k}) as span:
        yield SearchSpan(span, sorted(who.principal.regions))
