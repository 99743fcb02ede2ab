"""Spans of the ingest stages: one trace per micro-batch, one span per stage, counts only.

Only ``opentelemetry-api`` is used here: the tracer is handed in (``Parts.tracer``) and is a no-op
unless telemetry is on (the SDK is set up by the :mod:`telemetry` package). Spans carry the stage,
the batch's number, the residency regions of its documents and counts; never a document id, a
path, text or an error message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.trace import Span, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from groundwork.records import Batch, ChunkedDocument, EmbeddedDocument, ParsedDocument, RedactedDocument
from groundwork.telemetry_config import (
    ATTR_BATCH,
    ATTR_CHUNKS,
    ATTR_DOCUMENTS,
    ATTR_EMBEDDINGS,
    ATTR_FAILED,
    ATTR_REDACTIONS,
    ATTR_REGIONS,
    ATTR_STAGE,
)

T = TypeVar("T")

#: The tracer of an ingest without telemetry.
NO_TRACER: Tracer = trace.NoOpTracer()


def timed(batches: Iterable[T]) -> Iterator[tuple[int, T]]:
    """Each item with the time (ns since the epoch) its production began: the partition stage's start."""
    it = iter(batches)
    try:
        while True:
            started = time.time_ns()
            try:
                item = next(it)
            except StopIteration:
                return
            yield started, item
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()  # a run that stops early leaves no parsing behind it


def counts(batch: Batch[Any]) -> dict[str, int]:
    """What a stage's output batch holds, in numbers."""
    out = {ATTR_DOCUMENTS: len(batch.items), ATTR_FAILED: len(batch.failures)}
    for doc in batch.items:
        if isinstance(doc, RedactedDocument):
            out[ATTR_REDACTIONS] = out.get(ATTR_REDACTIONS, 0) + sum(doc.redactions.values())
        elif isinstance(doc, ChunkedDocument):
            out[ATTR_CHUNKS] = out.get(ATTR_CHUNKS, 0) + len(doc.chunks)
        elif isinstance(doc, EmbeddedDocument):
            out[ATTR_EMBEDDINGS] = out.get(ATTR_EMBEDDINGS, 0) + len(doc.vectors)
    return out


class BatchTrace:
    """The trace of one micro-batch: a root span, the partition span, then a span per :meth:`run`.

    The root ends with :meth:`end`, or when a stage raises (the stage's span is marked as an error,
    without the exception's message).
    """

    def __init__(self, tracer: Tracer, number: int, parsed: Batch[ParsedDocument], started_ns: int) -> None:
        tasks = [d.task for d in parsed.items] + [f.task for f in parsed.failures]
        self._tracer = tracer
        self._base: dict[str, AttributeValue] = {
            ATTR_REGIONS: sorted({t.governance.residency for t in tasks}),
            ATTR_BATCH: number,
        }
        self._root = self._start("ingest.batch", None, started_ns)
        self._context = trace.set_span_in_context(self._root)
        self._ended = False
        partition = self._start("ingest.partition", "partition", started_ns)
        partition.set_attributes(counts(parsed))
        partition.end()

    def _start(self, name: str, stage: str | None, start_time: int | None = None) -> Span:
        attributes = {**self._base, **({ATTR_STAGE: stage} if stage else {})}
        return self._tracer.start_span(
            name,
            context=getattr(self, "_context", None),
            attributes=attributes,
            start_time=start_time,
            record_exception=False,  # an exception's message may quote document text
            set_status_on_exception=False,
        )

    def run(self, stage: str, work: Callable[..., T], batch: Batch[Any], *args: Any, **kwargs: Any) -> T:
        """``work(batch, *args, **kwargs)`` inside the stage's span, which records the output's counts
        (the input's, for a stage that returns nothing)."""
        span = self._start(f"ingest.{stage}", stage)
        try:
            out = work(batch, *args, **kwargs)
        except BaseException:
            span.set_status(StatusCode.ERROR)
            span.end()
            self._root.set_status(StatusCode.ERROR)
            self.end()
            raise
        span.set_attributes(counts(out if isinstance(out, Batch) else batch))
        span.end()
        return out

    def end(self) -> None:
        """End the batch's root span (once)."""
        if not self._ended:
            self._ended = True
            self._root.end()
