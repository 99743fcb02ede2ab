"""Streaming ingest: micro-batches committed as they complete, and per-document limits on parsing and
redaction that fail the document, never its batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import psycopg
import pytest
import yaml

from groundwork.enums import FailureReason
from groundwork.errors import DocumentError, IndexError_, IndexUnavailable
from groundwork.records import ParsedElement
from groundwork.settings import RedactionConfig, load_config
from orchestration.local import run_all
from orchestration.services import Services
from pipelines.embedding import Embedder
from pipelines.redact import Redactor
from tests.conftest import copy_demo, demo_config_on, new_database, write_config


def _config(folder: Path, url: str, **sections: dict[str, object]):  # type: ignore[no-untyped-def]
    path = copy_demo(folder)
    config = demo_config_on(path, url)
    data = yaml.safe_load(path.read_text())
    data.update(sections)
    path.write_text(yaml.safe_dump(data))
    return demo_config_on(path, url) if sections else config


def _rows(url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return [
            row
            for schema in ("groundwork_uk", "groundwork_eu")
            for row in conn.execute(query.format(s=schema)).fetchall()
        ]


class FailingAfter:
    """The real embedder, until the database "goes away" on its ``calls``-th call."""

    def __init__(self, embedder: Embedder, calls: int) -> None:
        self.embedder, self.calls, self.seen = embedder, calls, 0
        self.model_name = embedder.model_name

    def embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        self.seen += 1
        if self.seen >= self.calls:
            raise IndexUnavailable("connection lost")
        return self.embedder.embed(texts)


def test_each_micro_batch_is_committed_as_it_completes(
    tmp_path: Path, pg_server, redactor: Redactor, embedder: Embedder
) -> None:  # type: ignore[no-untyped-def]
    url = new_database(pg_server)
    config = _config(tmp_path / "demo", url, ingest={"batch_documents": 2})
    services = Services(config, redactor=redactor, embedder=FailingAfter(embedder, calls=3))  # type: ignore[arg-type]
    try:
        with pytest.raises(IndexError_, match="unavailable"):
            run_all(services)
    finally:
        services.close()
    # Two batches of two documents went through before the run failed: they are in the index.
    kept = _rows(url, "SELECT source_id FROM {s}.documents") + _rows(
        url, "SELECT source_id FROM {s}.ingest_failures"
    )
    assert 2 <= len(kept) <= 4
    services = Services(config, redactor=redactor, embedder=embedder)
    try:
        plan, _ = run_all(services)
    finally:
        services.close()
    assert len(plan.tasks) == 12 - len(kept), "the rerun plans only what the failed run left"
    assert len(_rows(url, "SELECT source_id FROM {s}.documents")) == 10
    assert len(_rows(url, "SELECT source_id FROM {s}.ingest_failures")) == 2


def _ingest_beside_notes(
    tmp_path: Path,
    pg_server,
    redactor: Redactor,
    embedder: Embedder,
    first: tuple[str, str],
    partitioning: dict,
) -> list:  # type: ignore[no-untyped-def]
    """Ingest one heavy file (``first``: name, text) sorted before three small notes, with these
    ``partitioning`` settings; returns the run's index reports."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / first[0]).write_text(first[1])
    for n in range(3):
        (folder / f"note-{n}.txt").write_text(f"Note {n}: the office closes early on Friday.\n")
    config = write_config(
        tmp_path / "groundwork.yaml",
        {
            "sources": [
                {
                    "name": "notes",
                    "connector": "filesystem",
                    "path": str(folder),
                    "residency": "uk",
                    "contract": "none",
                    "access": ["group:staff"],
                }
            ],
            "database": {"url": new_database(pg_server)},
            "partitioning": partitioning,
            # Were it parsed after all, redaction refuses it at once rather than reading it.
            "redaction": {"max_document_chars": 1_000_000},
        },
    )
    services = Services(load_config(config), redactor=redactor, embedder=embedder)
    try:
        _, reports = run_all(services)
    finally:
        services.close()
    return reports


def test_a_parser_past_its_time_limit_is_stopped_and_the_rest_goes_on(
    tmp_path: Path, pg_server, redactor: Redactor, embedder: Embedder
) -> None:  # type: ignore[no-untyped-def]
    # About eight million characters of short paragraphs: many seconds for the text partitioner.
    slow = ("a-slow.txt", ("A sentence of a long log. " * 20 + "\n\n") * 16000)
    reports = _ingest_beside_notes(tmp_path, pg_server, redactor, embedder, slow, {"timeout_seconds": 0.5})
    [failure] = [f for r in reports for f in r.failures]
    assert failure.task.ref.source_id == "a-slow.txt" and failure.reason == FailureReason.TIME_LIMIT
    assert "partitioning.timeout_seconds" in failure.message
    # The parser's process was replaced: the documents after it were parsed and written.
    assert sum(r.documents_written for r in reports) == 3


def test_a_parser_past_its_memory_cap_fails_the_document_and_the_rest_goes_on(
    tmp_path: Path, pg_server, redactor: Redactor, embedder: Embedder
) -> None:  # type: ignore[no-untyped-def]
    # About four million characters of short paragraphs: far more than 32 MiB of parsed elements.
    big = ("a-big.txt", ("A sentence of a long log. " * 20 + "\n\n") * 8000)
    reports = _ingest_beside_notes(tmp_path, pg_server, redactor, embedder, big, {"memory_headroom_mb": 32})
    [failure] = [f for r in reports for f in r.failures]
    assert failure.task.ref.source_id == "a-big.txt" and failure.reason == FailureReason.TOO_LARGE
    assert "partitioning.memory_headroom_mb" in failure.message
    assert sum(r.documents_written for r in reports) == 3


def _doc(text: str) -> list[ParsedElement]:
    return [ParsedElement("NarrativeText", text)]


def test_a_document_over_the_redaction_size_limit_fails_alone(redactor: Redactor) -> None:
    limited = Redactor(RedactionConfig(max_document_chars=1_000), detector=redactor.detector)
    small = _doc("Please call Margaret Thornton on 07700 900123.")
    results = limited.redact_batch([small, _doc("word " * 400), small])
    assert isinstance(results[1], DocumentError) and results[1].reason == FailureReason.TOO_LARGE
    assert "redaction.max_document_chars" in str(results[1])
    for result in (results[0], results[2]):
        assert not isinstance(result, DocumentError)
        elements, counts = result
        assert "Margaret" not in elements[0].text and counts["PERSON"] >= 1
    # The detection time charged to each document (what the time limit is compared with).
    seconds = limited.document_seconds
    assert len(seconds) == 3 and seconds[1] == 0.0 and seconds[0] > 0 and seconds[2] > 0


def test_a_document_past_the_redaction_time_limit_fails_and_says_which_limit(redactor: Redactor) -> None:
    hurried = Redactor(RedactionConfig(timeout_seconds=1e-9), detector=redactor.detector)
    results = hurried.redact_batch([_doc("Dear Margaret Thornton, " * 3000), _doc("Hello there.")])
    for result in results:
        assert isinstance(result, DocumentError) and result.reason == FailureReason.TIME_LIMIT
        assert "redaction.timeout_seconds" in str(result)


class _MeteredDetector:
    """A detector that finds nothing and moves a clock one second per 1,000 characters it reads."""

    def __init__(self) -> None:
        self.now = 0.0

    def detect(self, texts: list[str]) -> list[list[object]]:
        self.now += sum(len(t) for t in texts) / 1000
        return [[] for _ in texts]


def test_a_document_stops_before_a_window_that_would_take_it_past_its_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 60,000-character text is read in three windows of about 20 seconds each on this clock: with a
    50-second limit the third is not started (it would end near 61 s), so the document is charged no
    more than its limit."""
    import pipelines.redact

    detector = _MeteredDetector()
    monkeypatch.setattr(pipelines.redact.time, "monotonic", lambda: detector.now)
    timed = Redactor(RedactionConfig(timeout_seconds=50), detector=detector)  # type: ignore[arg-type]
    [result] = timed.redact_batch([_doc("word " * 12_000)])
    assert isinstance(result, DocumentError) and result.reason == FailureReason.TIME_LIMIT
    assert 0 < timed.document_seconds[0] <= 50
