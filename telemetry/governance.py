"""The span processor that decides what may leave: residency, sampling and attribute redaction.

Stock samplers decide when a span *starts*, before anything knows which regions its trace will
touch, so the decision is taken here instead, when a trace's local root span *ends*: the spans of a
trace are held until then, the regions they were tagged with (:data:`ATTR_REGIONS`) are gathered,
and the whole trace is dropped if any of them may not be exported (or is not listed). Otherwise it
is kept when the low 64 bits of its trace id fall under the ratio, the rule of OpenTelemetry's
``TraceIdRatioBased``, so the decision is deterministic and the same in every process. Kept spans
are copied with only allowlisted attributes, no events, links or status description, and passed to
the exporting processor.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import Status
from opentelemetry.util.types import AttributeValue

from groundwork.telemetry_config import ALLOWED_ATTRIBUTES, ATTR_REGIONS, TelemetryConfig

logger = logging.getLogger(__name__)

#: Trace ids are compared on their low 64 bits, as ``TraceIdRatioBased`` does.
_TRACE_ID_LIMIT = (1 << 64) - 1

#: String attribute values and span names that may pass: route templates, methods, region and enum
#: words. An e-mail address, a URL with a query or a sentence does not match.
_TOKEN = re.compile(r"^[A-Za-z0-9_./{}-]{1,120}$")
_SPAN_NAME = re.compile(r"^[A-Za-z0-9_./{}-]{1,60}( /[A-Za-z0-9_./{}-]{0,120})?$")

#: The name a span gets when its own name is not a plain token.
REDACTED_NAME = "span"

#: Spans held for one trace at most; a trace past it is dropped whole (fail closed).
MAX_SPANS_PER_TRACE = 1000


def keeps(trace_id: int, ratio: float) -> bool:
    """Whether a trace is in the sampled ``ratio``, by its trace id alone."""
    return (trace_id & _TRACE_ID_LIMIT) < round(ratio * (_TRACE_ID_LIMIT + 1))


def regions_of(spans: Sequence[ReadableSpan]) -> set[str]:
    """Every residency region the spans were tagged with (a malformed tag counts as a region)."""
    found: set[str] = set()
    for span in spans:
        value = (span.attributes or {}).get(ATTR_REGIONS)
        if value is None:
            continue
        found.update([value] if isinstance(value, str) else (str(v) for v in value))  # type: ignore[union-attr]
    return found


def _clean(value: AttributeValue) -> AttributeValue | None:
    """``value`` if it is a number, a boolean or token-like text (or a sequence of them), else None."""
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if _TOKEN.fullmatch(value) else None
    if not isinstance(value, Sequence):  # a mapping, bytes or None: nothing that can be vetted
        return None
    items = list(value)
    if all(isinstance(v, str) and _TOKEN.fullmatch(v) for v in items):
        return tuple(str(v) for v in items)
    if all(isinstance(v, bool | int | float) for v in items):
        return tuple(items)
    return None


def redact_attributes(attributes: Mapping[str, AttributeValue] | None) -> dict[str, AttributeValue]:
    """Only the allowlisted keys, and only values that can hold no free text."""
    kept: dict[str, AttributeValue] = {}
    for key, value in (attributes or {}).items():
        if key in ALLOWED_ATTRIBUTES and (clean := _clean(value)) is not None:
            kept[key] = clean
    return kept


def redact_span(span: ReadableSpan) -> ReadableSpan:
    """A copy of ``span`` fit to leave: allowlisted attributes; no events, links or status text.

    Events are where exception messages go, and a status description may quote one: both can
    carry document or query text.
    """
    return ReadableSpan(
        name=span.name if _SPAN_NAME.fullmatch(span.name) else REDACTED_NAME,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=redact_attributes(span.attributes),
        events=(),
        links=(),
        kind=span.kind,
        status=Status(span.status.status_code),
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class GovernedSpanProcessor(SpanProcessor):
    """Holds each trace's spans until its local root ends, then drops it or passes it on redacted.

    ``downstream`` is the exporting processor (a ``BatchSpanProcessor`` in production). A span that
    ends after its root was decided follows that decision (the last ``max_pending_traces``
    decisions are remembered; an older one is treated as a drop).
    """

    def __init__(self, config: TelemetryConfig, downstream: SpanProcessor) -> None:
        self._config = config
        self._downstream = downstream
        self._limit = config.max_pending_traces
        self._pending: OrderedDict[int, list[ReadableSpan]] = OrderedDict()
        self._decided: OrderedDict[int, bool] = OrderedDict()
        self._lock = threading.Lock()
        self.dropped_traces = 0
        self.exported_traces = 0

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Nothing to do when a span starts: the decision waits for the trace's regions."""

    def on_end(self, span: ReadableSpan) -> None:
        """Hold ``span``; when it is its trace's local root, decide the trace."""
        if span.context is None:
            return
        trace_id = span.context.trace_id
        root = span.parent is None or span.parent.is_remote
        with self._lock:
            if trace_id in self._decided:
                spans, keep = [span], self._decided[trace_id]
            else:
                held = self._pending.setdefault(trace_id, [])
                held.append(span)
                if len(held) > MAX_SPANS_PER_TRACE:
                    self._remember(trace_id, False)
                    del self._pending[trace_id]
                    self.dropped_traces += 1
                    return
                if not root:
                    self._evict()
                    return
                spans = self._pending.pop(trace_id)
                keep = keeps(trace_id, self._config.ratio_for(regions_of(spans)))
                self._remember(trace_id, keep)
                if keep:
                    self.exported_traces += 1
                else:
                    self.dropped_traces += 1
        if keep:
            for s in spans:
                self._downstream.on_end(redact_span(s))

    def _remember(self, trace_id: int, keep: bool) -> None:
        self._decided[trace_id] = keep
        while len(self._decided) > self._limit:
            self._decided.popitem(last=False)

    def _evict(self) -> None:
        while len(self._pending) > self._limit:
            trace_id, _ = self._pending.popitem(last=False)
            self._remember(trace_id, False)
            self.dropped_traces += 1
            logger.warning("telemetry: a trace whose root span never ended was dropped unexported")

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export what was decided; traces whose root has not ended stay held."""
        return self._downstream.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Drop undecided traces and shut the exporting processor down (it exports what it holds)."""
        with self._lock:
            self.dropped_traces += len(self._pending)
            self._pending.clear()
        self._downstream.shutdown()
