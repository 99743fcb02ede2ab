"""Functions the partition pool's tests run inside a worker process (importable there: no test
fixtures, nothing heavy)."""

from __future__ import annotations

import os

from pipelines import partition_pool

_held: list[bytes] = []


def worker_pid() -> int:
    """The worker's process id."""
    return os.getpid()


def hold_memory_then_check(mb: int) -> int:
    """Keep ``mb`` MiB alive in the worker (written, so resident), then run the check a worker runs
    after each document; returns the worker's process id."""
    _held.append(b"x" * (mb * 1024 * 1024))
    partition_pool._note_growth()
    return os.getpid()
