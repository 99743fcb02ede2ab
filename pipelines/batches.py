"""The batch stages: redact, chunk and embed the documents of one micro-batch.

Each stage takes the previous stage's :class:`~groundwork.records.Batch`, passes its failures on,
and turns a :class:`~groundwork.errors.DocumentError` (or an unexpected error) in one document into
a recorded failure so the rest of the batch goes on.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from groundwork.enums import FailureReason, Stage
from groundwork.errors import ConfigError, DocumentError, IndexError_, IndexUnavailable
from groundwork.records import (
    Batch,
    ChunkedDocument,
    DocumentTask,
    EmbeddedDocument,
    Failure,
    ParsedDocument,
    ParsedElement,
    RedactedDocument,
)
from groundwork.settings import GroundworkConfig
from pipelines.chunking import chunk_document
from pipelines.embedding import Embedder
from pipelines.redact import Redactor

logger = logging.getLogger(__name__)

A = TypeVar("A")
B = TypeVar("B")

_PROGRESS_EVERY_S = 5.0


#: Errors that a retry may cure: the index layer reports a lost connection, or a pool that found no
#: connection in time, as :class:`~groundwork.errors.IndexUnavailable`.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (IndexUnavailable,)
RETRY_DELAYS_S = (0.5, 1.0, 2.0)


def with_retries(work: Callable[[A], B], item: A, delays: Sequence[float] = RETRY_DELAYS_S) -> B:
    """``work(item)``, retried with backoff on a transient database error."""
    for delay in delays:
        try:
            return work(item)
        except TRANSIENT_ERRORS as exc:
            logger.warning("transient %s; retrying in %.1fs", type(exc).__name__, delay)
            time.sleep(delay)
    return work(item)


def each(
    stage: Stage,
    items: Iterable[A],
    task_of: Callable[[A], DocumentTask],
    work: Callable[[A], B],
    previous: Batch[object] | None = None,
) -> Batch[B]:
    """Run ``work`` on every item, turning a per-document error into a recorded failure."""
    out: Batch[B] = Batch(failures=list(previous.failures) if previous else [])
    items = list(items)
    last_log = time.monotonic()
    for i, item in enumerate(items, 1):
        task = task_of(item)
        try:
            out.items.append(with_retries(work, item))
        except TRANSIENT_ERRORS as exc:
            # Still failing after retries: the database is down. That is the run's failure, not the
            # document's; the next run picks up where this one stopped.
            raise IndexError_(f"index database unavailable during {stage}: {type(exc).__name__}") from exc
        except ConfigError:
            raise  # a wrong setting fails every document alike: it is the run's error, said once
        except DocumentError as exc:
            out.failures.append(Failure(task, stage, exc.reason, str(exc)))
            logger.warning("%s failed at %s: %s", task.log_name, stage, exc.reason)
        except Exception as exc:  # one bad document must never stop the batch
            out.failures.append(
                Failure(task, stage, FailureReason.INTERNAL_ERROR, f"unexpected {type(exc).__name__}")
            )
            # The exception's message may quote document content: the class name goes to the log,
            # the traceback only at debug level.
            logger.error("%s failed at %s: unexpected %s", task.log_name, stage, type(exc).__name__)
            logger.debug("traceback", exc_info=True)
        if time.monotonic() - last_log > _PROGRESS_EVERY_S:
            logger.info("%s: %d/%d documents", stage, i, len(items))
            last_log = time.monotonic()
    return out


def redact_all(batch: Batch[ParsedDocument], redactor: Redactor) -> Batch[RedactedDocument]:
    """Redact PII from every element of every document, the batch together (names found in one
    document are redacted in all); a document over a redaction limit fails alone. If the batch
    fails otherwise, document by document, so one bad input is isolated."""

    def build(doc: ParsedDocument, result: tuple[list[ParsedElement], Counter[str]]) -> RedactedDocument:
        elements, counts = result
        return RedactedDocument(doc.task, elements, doc.content_type, dict(counts))

    try:
        results = redactor.redact_batch(
            [d.elements for d in batch.items], [d.task.governance.residency for d in batch.items]
        )
    except ConfigError:
        raise
    except Exception as exc:
        logger.error("batch redaction failed (%s); redacting document by document", type(exc).__name__)
        return each(
            Stage.REDACT,
            batch.items,
            lambda d: d.task,
            lambda d: build(d, redactor.redact_documents([d.elements], [d.task.governance.residency])[0]),
            batch,  # type: ignore[arg-type]
        )
    out: Batch[RedactedDocument] = Batch(failures=list(batch.failures))
    for doc, result in zip(batch.items, results, strict=True):
        if isinstance(result, DocumentError):
            out.failures.append(Failure(doc.task, Stage.REDACT, result.reason, str(result)))
            logger.warning("%s failed at %s: %s", doc.task.log_name, Stage.REDACT, result.reason)
        else:
            out.items.append(build(doc, result))
    return out


def chunk_all(batch: Batch[RedactedDocument], config: GroundworkConfig) -> Batch[ChunkedDocument]:
    """Chunk every redacted document by title/section."""

    def work(doc: RedactedDocument) -> ChunkedDocument:
        chunked = chunk_document(doc, config.chunking)
        if not chunked.chunks:
            raise DocumentError(
                "no text left to index after redaction", stage=Stage.CHUNK, reason=FailureReason.NO_TEXT
            )
        return chunked

    return each(Stage.CHUNK, batch.items, lambda d: d.task, work, batch)  # type: ignore[arg-type]


def embed_all(batch: Batch[ChunkedDocument], embedder: Embedder) -> Batch[EmbeddedDocument]:
    """Embed every chunk; all documents' chunks go through the model together for throughput."""
    texts = [c.text for doc in batch.items for c in doc.chunks]
    try:
        vectors = embedder.embed(texts)
    except Exception as exc:
        logger.error("batch embedding failed (%s); embedding document by document", type(exc).__name__)
        return each(
            Stage.EMBED,
            batch.items,
            lambda d: d.document.task,
            lambda d: EmbeddedDocument(d, embedder.embed([c.text for c in d.chunks])),
            batch,  # type: ignore[arg-type]
        )
    out: Batch[EmbeddedDocument] = Batch(failures=list(batch.failures))
    start = 0
    for doc in batch.items:
        end = start + len(doc.chunks)
        out.items.append(EmbeddedDocument(doc, vectors[start:end]))
        start = end
    return out
