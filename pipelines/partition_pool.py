"""Parsers in their own processes: a time limit that can stop any parser, and a crash that stays small.

A parser that hangs on a hostile file cannot be stopped from a thread, and one that exhausts memory
or crashes takes its process down. So documents are partitioned in worker processes (pebble's
``ProcessPool``): a parse past ``partitioning.timeout_seconds`` has its worker killed and is
recorded as ``time_limit``; a worker that dies is recorded as ``parser_crashed``; the pool starts a
new worker either way and the batch goes on. While the ingest process redacts and embeds one batch,
the workers already partition the next.

Each worker is a fresh interpreter (``spawn``) that imports unstructured's partitioners and warms up
before its first task, so no document's time limit pays for loading the parser (a replacement is
ready in a few seconds). It keeps torch out: nothing a parser runs needs it, but spaCy imports it
when installed (about 180 MiB a process). After each document a worker hands the memory the parse
freed back to the system, so one large document does not leave the worker at its peak. A worker
that still holds more than ``RETIRE_GROWTH_MB`` above its loaded size after that (what Python's
allocator keeps after unusual parses: it cannot hand back a page with one live object on it) is
replaced before its next document, once it has parsed ``RETIRE_MIN_DOCUMENTS``; any worker is
replaced after ``TASKS_PER_WORKER`` documents. A replacement takes seconds to load, and parsing
waits for it, so workers are replaced when their memory says so rather than after a fixed, small
number of documents. (Workers forked from a
preloaded server shared little: Python's reference counts soon copy the pages, and the server
itself held about 590 MiB.)
Raw text crosses from a worker to the ingest process through a pipe, never disk.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import importlib
import itertools
import multiprocessing
import multiprocessing.util
import os
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future, TimeoutError
from dataclasses import dataclass
from typing import Any, Literal

from groundwork.enums import FailureReason, Stage
from groundwork.errors import DocumentError
from groundwork.offline import configure_offline
from groundwork.records import DocumentRef, ParsedElement

Parsed = tuple[list[ParsedElement], str]
_Outcome = tuple[Parsed | None, tuple[str, str, str] | None]

#: Modules every worker imports before its first task (a timing hook may add its own).
_PRELOAD = [
    "pipelines.partition",
    *(
        f"unstructured.partition.{kind}"
        for kind in ("auto", "text", "md", "html", "email", "docx", "pptx", "xlsx", "pdf")
    ),
]


#: From this size an allocation gets a mapping of its own (see :func:`map_large_allocations`).
LARGE_ALLOCATION_BYTES = 1024 * 1024
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h


#: A worker is replaced before its next document once its resident memory, after a document and after
#: handing freed memory back, is this many MiB above its size once loaded (its first PDF alone adds
#: about 45 MiB: libraries loaded on first use) ...
RETIRE_GROWTH_MB = 128

#: ... and it has parsed at least this many documents, so a corpus whose parses keep more memory than
#: that cannot make the pool replace workers more often than every this many documents.
RETIRE_MIN_DOCUMENTS = 100

#: A worker is replaced after this many documents whatever its memory.
TASKS_PER_WORKER = 5000


@dataclass(slots=True)
class _Retirement:
    """A worker's memory retirement (set by :func:`_warm_up`): its resident size once loaded, the
    growth that retires it (0: never), after how many documents, how many it has parsed, and whether
    it has retired (it takes no further task; the pool starts a replacement)."""

    loaded_kb: int = 0
    growth_kb: int = 0
    min_documents: int = 0
    documents: int = 0
    retired: bool = False


_retirement = _Retirement()

_TOO_MUCH_MEMORY = (
    "the parser needed more memory than its limit (partitioning.memory_headroom_mb)",
    Stage.PARTITION.value,
    FailureReason.TOO_LARGE.value,
)


def _warm_up(
    memory_headroom_mb: int = 0,
    preload: tuple[str, ...] = (),
    retire_growth_mb: int = RETIRE_GROWTH_MB,
    retire_min_documents: int = RETIRE_MIN_DOCUMENTS,
) -> None:
    """Runs in each new worker before its first task: the imports and the first parse (which loads
    tokenizers and data files) take seconds that must not count against a document's time limit.
    Then the worker's memory is capped at its loaded size plus ``memory_headroom_mb`` (0: no cap), and
    its loaded resident size is noted: past it by ``retire_growth_mb`` (0: never) after at least
    ``retire_min_documents`` documents, it retires."""
    # None in sys.modules makes ``import torch`` fail, as if it were not installed: spaCy (thinc)
    # and transformers then go without it, and a parser never needs it.
    sys.modules.setdefault("torch", None)  # type: ignore[arg-type]  # the import system's "absent" mark
    configure_offline()
    for name in preload:
        importlib.import_module(name)
    from pipelines.partition import partition_document

    ref = DocumentRef("warm-up", "warm-up.txt", "warm-up.txt", "0", 32)
    partition_document(ref, b"A first sentence to warm up the parser.")
    map_large_allocations()
    release_free_memory()
    if memory_headroom_mb:
        cap_memory(memory_headroom_mb)
    loaded = resident_kb()
    if retire_growth_mb and loaded is not None:
        _retirement.loaded_kb = loaded
        _retirement.growth_kb = retire_growth_mb * 1024
        _retirement.min_documents = retire_min_documents
        _retire_between_tasks()


def resident_kb() -> int | None:
    """This process's resident memory in KiB (``VmRSS``), or None where it cannot be read (not Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    except (OSError, StopIteration, ValueError):
        return None


def _note_growth() -> None:
    """After a document (its freed memory handed back): retire this worker if it holds too much."""
    _retirement.documents += 1
    if not _retirement.growth_kb or _retirement.documents < _retirement.min_documents:
        return
    now = resident_kb()
    if now is not None and now - _retirement.loaded_kb > _retirement.growth_kb:
        _retirement.retired = True


def _retire_between_tasks() -> None:
    """Make this worker's task loop (pebble's) end before the next task once the worker has retired.

    pebble replaces a worker whose loop ends, as it does after ``max_tasks``; the loop asks for the
    next task only after the last one's result was sent, so no task is lost. Where this pebble has no
    such loop function, workers are replaced by count alone."""
    from pebble.pool import process as pebble_process

    fetch_task = getattr(pebble_process, "fetch_task", None)
    if fetch_task is None or not hasattr(pebble_process, "worker_get_next_task"):
        return

    def tasks(channel: Any, max_tasks: int) -> Iterator[Any]:
        done = itertools.count()
        while not _retirement.retired and (max_tasks == 0 or next(done) < max_tasks):
            yield fetch_task(channel)

    pebble_process.worker_get_next_task = tasks


def release_free_memory() -> bool:
    """Hand the heap's free pages back to the system (glibc keeps them after a large allocation is
    freed, so a process stays at its peak). Returns False where the C library is not glibc."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def map_large_allocations(threshold_bytes: int = LARGE_ALLOCATION_BYTES) -> bool:
    """Serve allocations from ``threshold_bytes`` up by their own mappings, which go back to the
    system when freed. glibc's default threshold rises after each large free (up to 32 MiB), so a
    model's activations and a parse's buffers end up in the heap, which does not shrink. Returns
    False where the C library is not glibc."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold_bytes))


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim, libc.mallopt  # noqa: B018  # both exist in glibc only
    except (OSError, AttributeError):
        return None
    return libc


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
    finally:
        release_free_memory()
        _note_growth()


class PartitionPool:
    """Worker processes that partition documents, each parse under a time limit; a worker is
    replaced once it holds ``retire_growth_mb`` more than when loaded (0: never) after at least
    ``retire_min_documents`` documents, or after ``tasks_per_worker`` documents (0: never).

    The workers start loading at once, so they get ready while the ingest process loads its models.
    """

    def __init__(
        self,
        workers: int,
        memory_headroom_mb: int = 0,
        tasks_per_worker: int = TASKS_PER_WORKER,
        retire_growth_mb: int = RETIRE_GROWTH_MB,
        retire_min_documents: int = RETIRE_MIN_DOCUMENTS,
    ) -> None:
        from pebble import ProcessPool

        self.workers = workers
        self._pool = ProcessPool(
            max_workers=workers,
            max_tasks=tasks_per_worker,
            initializer=_warm_up,
            initargs=(memory_headroom_mb, tuple(_PRELOAD), retire_growth_mb, retire_min_documents),
            context=multiprocessing.get_context("spawn"),
        )
        #: Done once a worker has loaded (scheduling a task starts the workers now).
        self.ready: Future[int | None] = self._pool.schedule(resident_kb)

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
