"""Parsers in their own processes: a time limit that can stop any parser, and a crash that stays small.

A parser that hangs on a hostile file cannot be stopped from a thread, and one that exhausts memory
or crashes takes its process down. So documents are partitioned in worker processes (pebble's
``ProcessPool``): a parse past ``partitioning.timeout_seconds`` has its worker killed and is
recorded as ``time_limit``; a worker that dies is recorded as ``parser_crashed``; the pool starts a
new worker either way and the batch goes on. While the ingest process redacts and embeds one batch,
the workers already partition the next.

Workers fork from a server process that has imported unstructured's partitioners once, and warm up
before their first task, so a replacement worker is ready within seconds and no document's time
limit pays for loading the parser. Raw text crosses from a worker to the ingest process through a pipe, never disk.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.util
import os
import threading
from concurrent.futures import Future, TimeoutError
from typing import Literal

from groundwork.enums import FailureReason, Stage
from groundwork.errors import DocumentError
from groundwork.offline import configure_offline
from groundwork.records import DocumentRef, ParsedElement

Parsed = tuple[list[ParsedElement], str]
_Outcome = tuple[Parsed | None, tuple[str, str, str] | None]

#: Modules the fork server imports once, so that every worker (and its replacements) starts warm.
_PRELOAD = [
    "pipelines.partition",
    *(
        f"unstructured.partition.{kind}"
        for kind in ("auto", "text", "md", "html", "email", "docx", "pptx", "xlsx", "pdf")
    ),
]


_TOO_MUCH_MEMORY = (
    "the parser needed more memory than its limit (partitioning.memory_headroom_mb)",
    Stage.PARTITION.value,
    FailureReason.TOO_LARGE.value,
)


def _warm_up(memory_headroom_mb: int = 0) -> None:
    """Runs in each new worker before its first task: the first parse loads tokenizers and data
    files for seconds, which must not count against a document's time limit. Then the worker's
    memory is capped at its loaded size plus ``memory_headroom_mb`` (0: no cap)."""
    configure_offline()
    from pipelines.partition import partition_document

    ref = DocumentRef("warm-up", "warm-up.txt", "warm-up.txt", "0", 32)
    partition_document(ref, b"A first sentence to warm up the parser.")
    if memory_headroom_mb:
        cap_memory(memory_headroom_mb)


def cap_memory(headroom_mb: int) -> int | None:
    """Limit this process's data segment (heap and private mappings: what a parse allocates) to its
    current size plus ``headroom_mb``; past it, allocations fail with ``MemoryError``. Returns the
    limit in bytes, or None where the current size cannot be read (not Linux): no cap then."""
    import resource

    try:
        with open("/proc/self/status", encoding="ascii") as status:
            data_kb = next(int(line.split()[1]) for line in status if line.startswith("VmData:"))
    except (OSError, StopIteration, ValueError):
        return None
    limit = data_kb * 1024 + headroom_mb * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    return limit


def _partition_in_worker(
    ref: DocumentRef, data: bytes, pdf_strategy: Literal["fast", "ocr_only"]
) -> _Outcome:
    """Runs in a worker: the parsed document, or a DocumentError's parts (it does not pickle)."""
    from pipelines.partition import partition_document

    try:
        return partition_document(ref, data, pdf_strategy=pdf_strategy), None
    except DocumentError as exc:
        return None, (str(exc), exc.stage, exc.reason)
    except MemoryError:  # past the worker's cap: the parse's memory is released as it unwinds
        return None, _TOO_MUCH_MEMORY


class PartitionPool:
    """Worker processes that partition documents, each parse under a time limit."""

    def __init__(self, workers: int, memory_headroom_mb: int = 0) -> None:
        from pebble import ProcessPool

        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)
        self.workers = workers
        self._pool = ProcessPool(
            max_workers=workers, initializer=_warm_up, initargs=(memory_headroom_mb,), context=context
        )

    def submit(
        self, ref: DocumentRef, data: bytes, *, pdf_strategy: Literal["fast", "ocr_only"], timeout_s: float
    ) -> Future[_Outcome]:
        """Start partitioning one document; :func:`outcome` waits for it."""
        return self._pool.submit(_partition_in_worker, timeout_s, ref, data, pdf_strategy)

    def close(self) -> None:
        """Stop the workers."""
        self._pool.stop()
        self._pool.join()


def outcome(future: Future[_Outcome], timeout_s: float) -> Parsed:
    """The elements and content type of a submitted document, or the :class:`DocumentError` it earned."""
    from pebble import ProcessExpired

    try:
        parsed, error = future.result()
    except TimeoutError:
        raise DocumentError(
            f"partitioning stopped after the {timeout_s:g}-second limit (partitioning.timeout_seconds)",
            stage=Stage.PARTITION,
            reason=FailureReason.TIME_LIMIT,
        ) from None
    except ProcessExpired as exc:
        raise DocumentError(
            f"the parser's process died (exit code {exc.exitcode}): out of memory or a crash in the parser",
            stage=Stage.PARTITION,
            reason=FailureReason.PARSER_CRASHED,
        ) from None
    if error is not None:
        message, stage, reason = error
        raise DocumentError(message, stage=Stage(stage), reason=FailureReason(reason))
    assert parsed is not None
    return parsed


_pools: dict[tuple[int, int, int], PartitionPool] = {}
_lock = threading.Lock()


def shared_pool(workers: int, memory_headroom_mb: int = 0) -> PartitionPool:
    """This process's pool of ``workers`` parser processes (each capped at its loaded size plus
    ``memory_headroom_mb``), started on first use and kept for later runs."""
    key = (os.getpid(), workers, memory_headroom_mb)
    with _lock:
        if key not in _pools:
            _pools[key] = PartitionPool(workers, memory_headroom_mb)
        return _pools[key]


def _close_pools() -> None:
    for (pid, _, _), pool in list(_pools.items()):
        if pid == os.getpid():
            pool.close()
    _pools.clear()


# At exit, the workers stop before multiprocessing waits for its child processes: a process that is
# itself a multiprocessing child (a Dagster step) would otherwise wait for them forever.
multiprocessing.util.Finalize(None, _close_pools, exitpriority=100)
