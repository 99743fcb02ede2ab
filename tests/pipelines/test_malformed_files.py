"""A small fuzz slice: damaged copies of real files of every supported type are either partitioned
or refused with a reason, never anything else (no other exception, no hang)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from groundwork.enums import FailureReason, Stage
from groundwork.errors import DocumentError
from groundwork.records import DocumentRef
from pipelines.partition import SUPPORTED_TYPES, partition_document
from tests.conftest import DEMO

SAMPLES = sorted(p for p in (DEMO / "corpus").rglob("*") if p.is_file() and p.suffix in SUPPORTED_TYPES)


def _damaged(data: bytes, rng: random.Random) -> list[tuple[str, bytes]]:
    """Four kinds of damage: truncated, bytes flipped, a block zeroed, and the halves swapped."""
    cut = rng.randrange(1, len(data))
    flipped = bytearray(data)
    for i in rng.sample(range(len(data)), max(1, len(data) // 50)):
        flipped[i] ^= 0xFF
    start = rng.randrange(0, len(data))
    zeroed = data[:start] + bytes(min(512, len(data) - start)) + data[start + 512 :]
    return [
        ("truncated", data[:cut]),
        ("flipped", bytes(flipped)),
        ("zeroed", zeroed),
        ("swapped", data[cut:] + data[:cut]),
    ]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_a_damaged_file_is_partitioned_or_refused_with_a_reason(sample: Path) -> None:
    assert {p.suffix for p in SAMPLES} >= {".pdf", ".docx", ".pptx", ".xlsx", ".eml", ".html", ".md", ".txt"}
    rng = random.Random(sample.name)
    for damage, data in _damaged(sample.read_bytes(), rng):
        ref = DocumentRef(
            source="s", source_id=sample.name, uri="file:///x", version="v", size_bytes=len(data)
        )
        refusal: DocumentError | None = None
        try:
            elements, _ = partition_document(ref, data)
        except DocumentError as exc:  # refused, with a reason the run records; anything else fails the test
            refusal, elements = exc, []
        if refusal is not None:
            assert refusal.reason in set(FailureReason) and refusal.stage == Stage.PARTITION, damage
        else:
            assert all(e.text.strip() for e in elements), damage
