"""Parser processes: every supported type parses in a worker that never loads torch, a worker is
replaced after its quota of documents or once it keeps too much memory, and the heap memory a
process freed goes back to the system."""

from __future__ import annotations

import ctypes
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from groundwork.records import DocumentRef
from pipelines.partition_pool import PartitionPool, outcome, release_free_memory
from tests.conftest import DEMO, PROJECT
from tests.pipelines import pool_helpers

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and glibc")


def _workers(before: set[int]) -> list[psutil.Process]:
    """This process's spawned children started since ``before`` (the resource tracker is not one)."""
    return [
        p
        for p in psutil.Process().children()
        if p.pid not in before and "--multiprocessing-fork" in " ".join(p.cmdline())
    ]


@linux_only
def test_every_supported_type_parses_in_a_worker_without_torch() -> None:
    files = sorted(p for p in (DEMO / "corpus").rglob("*.*") if "broken" not in p.parts)
    assert {p.suffix for p in files} >= {".txt", ".md", ".html", ".eml", ".pdf", ".docx", ".pptx", ".xlsx"}
    before = {p.pid for p in psutil.Process().children()}
    pool = PartitionPool(1)
    try:
        for path in files:
            data = path.read_bytes()
            ref = DocumentRef("demo", path.name, str(path), "1", len(data))
            elements, _ = outcome(pool.submit(ref, data, pdf_strategy="fast", timeout_s=120), 120)
            assert any(e.text.strip() for e in elements), path.name
        [worker] = _workers(before)
        # torch is installed (the ingest process embeds with it); the parser must not have loaded it.
        assert "libtorch" not in Path(f"/proc/{worker.pid}/maps").read_text()
    finally:
        pool.close()


def test_a_worker_is_replaced_after_its_quota_and_parsing_goes_on() -> None:
    before = {p.pid for p in psutil.Process().children()}
    pool = PartitionPool(1, tasks_per_worker=2)
    seen: set[int] = set()
    try:
        for n in range(5):
            data = f"Note {n}: the office closes early on Friday.".encode()
            ref = DocumentRef("notes", f"note-{n}.txt", f"note-{n}.txt", "1", len(data))
            elements, _ = outcome(pool.submit(ref, data, pdf_strategy="fast", timeout_s=120), 120)
            assert [e.text for e in elements] == [data.decode()]
            seen |= {p.pid for p in _workers(before)}
    finally:
        pool.close()
    assert len(seen) >= 2, "five documents at two per worker need at least three workers"


def _kept_pids(pool: PartitionPool, kept_mb: list[int]) -> list[int]:
    """The worker's pid after each "document" that keeps that many MiB, then after a real document."""
    pids = [pool._pool.schedule(pool_helpers.hold_memory_then_check, args=(mb,)).result(60) for mb in kept_mb]
    data = b"The office closes early on Friday."
    ref = DocumentRef("notes", "note.txt", "note.txt", "1", len(data))
    elements, _ = outcome(pool.submit(ref, data, pdf_strategy="fast", timeout_s=120), 120)
    assert [e.text for e in elements] == [data.decode()]  # nothing lost across a replacement
    return [*pids, pool._pool.schedule(pool_helpers.worker_pid).result(60)]


@linux_only
def test_a_worker_that_keeps_memory_is_replaced_before_its_next_document_and_nothing_is_lost() -> None:
    pool = PartitionPool(1, retire_growth_mb=64, retire_min_documents=2)
    try:
        # 4 + 4 MiB kept: under the limit, the worker stays; 96 more: past it, the next document
        # (and everything after) goes to a fresh worker.
        first, second, third, after = _kept_pids(pool, [4, 4, 96])
        assert first == second == third != after
    finally:
        pool.close()
    pool = PartitionPool(1, retire_growth_mb=64, retire_min_documents=2)
    try:
        # Past the limit on its first document, a worker still parses up to retire_min_documents.
        first, second, after = _kept_pids(pool, [96, 0])
        assert first == second != after
    finally:
        pool.close()


def _rss() -> int:
    return psutil.Process().memory_info().rss


@linux_only
def test_freed_heap_memory_goes_back_to_the_system() -> None:
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    size, count = 64 * 1024, 3200  # 200 MiB in blocks under the mmap threshold: on the heap
    blocks = [libc.malloc(size) for _ in range(count)]
    for block in blocks:
        ctypes.memset(block, 1, size)
    # All but the last: that one pins the top of the heap, so free() alone gives nothing back.
    for block in blocks[:-1]:
        libc.free(block)
    held = _rss()
    try:
        assert release_free_memory()
        assert held - _rss() > 150 * 1024 * 1024
    finally:
        libc.free(blocks[-1])


_LARGE_BLOCKS = """
import ctypes, sys
from pipelines.partition_pool import map_large_allocations
if sys.argv[1] == "mapped":
    assert map_large_allocations()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.free(libc.malloc(16 << 20))  # glibc's threshold now rises to 16 MiB: 2 MiB blocks go to the heap
blocks = [libc.malloc(2 << 20) for _ in range(100)]
for block in blocks:
    ctypes.memset(block, 1, 2 << 20)
for block in blocks[:-1]:
    libc.free(block)
print(int(open("/proc/self/statm").read().split()[1]) * 4096)
"""


@linux_only
def test_large_allocations_go_back_to_the_system_when_freed() -> None:
    def rss_after_free(mode: str) -> int:
        run = [sys.executable, "-c", _LARGE_BLOCKS, mode]
        return int(subprocess.run(run, cwd=PROJECT, capture_output=True, text=True, check=True).stdout)

    # 200 MiB written then freed: kept by the heap by default, given back when mapped on their own.
    assert rss_after_free("default") - rss_after_free("mapped") > 150 * 1024 * 1024
