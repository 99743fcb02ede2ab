"""Micro-batching for the query path: concurrent requests' small jobs, done together.

A :class:`MicroBatcher` owns a worker thread (or several). Requests hand it an item (a query to
embed, a query to redact, an audit row to commit) and wait on a future; a worker takes the first item,
then whatever else is queued, waiting at most ``max_wait_s`` after the first for more, up to
``max_size`` items, and makes one call of its batch function for all of them. Under load batches
fill while the previous one runs, so they form without waiting; alone, a request waits at most
``max_wait_s``.

A batch function returns one result per item, in order; a result that is an exception fails that
item alone. If the function raises, every item of that batch fails with :class:`BatchFailed` (the
cause chained), and the worker goes on with the next batch. :meth:`MicroBatcher.close` finishes
what was submitted before it, then stops the thread; a submission after it raises
:class:`BatcherClosed`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: What the worker finds in the queue after the last item when the batcher closes.
_STOP = object()


class BatchFailed(RuntimeError):
    """A batch function failed: every request of that batch gets this, with the cause chained.

    The message names the batcher and the error type, never an item (items may hold a query).
    """


class BatcherClosed(RuntimeError):
    """The batcher was closed: it takes no more work."""


class MicroBatcher(Generic[T, R]):
    """Gathers items submitted by concurrent callers into batches for one function, on one thread.

    ``process`` takes a list of items and returns one result per item, in order (an exception
    instance among them fails that item only). ``workers`` threads each form and run batches (more
    than one only when ``process`` hands its work elsewhere, e.g. to several processes). They start
    on the first submission, so a batcher nobody uses costs nothing.
    """

    def __init__(
        self,
        name: str,
        process: Callable[[list[T]], Sequence[R | BaseException]],
        *,
        max_size: int,
        max_wait_s: float,
        workers: int = 1,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, not {max_size}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must not be negative, not {max_wait_s}")
        self.name = name
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        self.workers = workers
        self._process = process
        self._queue: queue.SimpleQueue[tuple[T, Future[R]] | object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._closed = False
        #: Sizes of the batches run so far (kept for the last 1,000; read by tests and benchmarks).
        self.batch_sizes: list[int] = []

    def submit(self, item: T) -> Future[R]:
        """Queue ``item``; the future holds its result once its batch has run."""
        future: Future[R] = Future()
        with self._lock:
            if self._closed:
                raise BatcherClosed(f"{self.name}: closed, no more work is taken")
            if not self._threads:
                self._threads = [
                    threading.Thread(target=self._run, name=f"batch-{self.name}", daemon=True)
                    for _ in range(self.workers)
                ]
                for thread in self._threads:
                    thread.start()
            self._queue.put((item, future))
        return future

    def __call__(self, item: T) -> R:
        """Submit ``item`` and wait for its result (or its batch's error)."""
        return self.submit(item).result()

    @property
    def threads(self) -> list[threading.Thread]:
        """The worker threads (none before the first submission)."""
        return list(self._threads)

    def close(self, timeout: float = 30.0) -> None:
        """Finish the items already submitted, then stop the threads. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for _ in self._threads:
                self._queue.put(_STOP)
        for thread in self._threads:
            thread.join(timeout)
            if thread.is_alive():
                logger.error("%s: a batch thread did not stop within %s s", self.name, timeout)

    def __enter__(self) -> MicroBatcher[T, R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException:
            # A worker that dies unexpectedly closes the batcher: nothing may wait forever on it.
            logger.exception("%s: a batch thread failed; the batcher is closed", self.name)
            with self._lock:
                self._closed = True
            stops = 0
            while True:
                try:
                    entry = self._queue.get_nowait()
                except queue.Empty:
                    break
                if entry is _STOP:
                    stops += 1  # another worker's: put back below
                elif isinstance(entry, tuple) and entry[1].set_running_or_notify_cancel():
                    entry[1].set_exception(BatcherClosed(f"{self.name}: closed before this item ran"))
            for _ in range(stops):
                self._queue.put(_STOP)
            raise

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stopping = False
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_size:
                try:
                    entry = self._queue.get_nowait()
                except queue.Empty:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        entry = self._queue.get(timeout=remaining)
                    except queue.Empty:
                        break
                if entry is _STOP:
                    stopping = True
                    break
                batch.append(entry)
            self._run_batch(batch)  # type: ignore[arg-type]  # everything but _STOP is an (item, future)
            if stopping:
                return

    def _run_batch(self, batch: list[tuple[T, Future[R]]]) -> None:
        live = [(item, f) for item, f in batch if f.set_running_or_notify_cancel()]
        if not live:
            return
        self.batch_sizes = [*self.batch_sizes[-999:], len(live)]
        try:
            results = list(self._process([item for item, _ in live]))
            if len(results) != len(live):
                raise ValueError(f"returned {len(results)} results for {len(live)} items")
        except Exception as exc:
            logger.error("%s: a batch of %d failed: %s", self.name, len(live), type(exc).__name__)
            for _, future in live:
                failed = BatchFailed(f"{self.name}: the batch of {len(live)} failed ({type(exc).__name__})")
                failed.__cause__ = exc
                future.set_exception(failed)
            return
        for (_, future), result in zip(live, results, strict=True):
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
