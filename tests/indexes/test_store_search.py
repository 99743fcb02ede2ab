"""Index writes and retrieval on a real PostgreSQL + pgvector: access, regions, idempotence."""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
import pytest

from cli.main import main
from groundwork.ids import document_id
from groundwork.settings import RetrievalConfig
from indexes.confidence import Decision, Reason, confidence, decide
from indexes.search import Retriever
from orchestration.local import run_all
from orchestration.services import Services


@pytest.fixture
def ingested(demo_services: Services) -> Services:
    run_all(demo_services)
    return demo_services


def test_documents_land_only_in_their_region(ingested_demo: Services) -> None:
    uk, eu = ingested_demo.index("uk"), ingested_demo.index("eu")
    assert uk.counts().documents == 5
    assert eu.counts().documents == 5
    with uk.pool.connection() as conn:
        assert conn.execute(f"SELECT DISTINCT source, residency FROM {uk.schema}.chunks").fetchall() == [
            ("hr", "uk")
        ]
    with eu.pool.connection() as conn:
        assert conn.execute(f"SELECT DISTINCT source, residency FROM {eu.schema}.chunks").fetchall() == [
            ("handbook", "eu")
        ]


def test_failures_are_recorded_with_reasons(ingested_demo: Services) -> None:
    failures = {f["source_id"]: f for f in ingested_demo.index("uk").failures.all()}
    assert set(failures) == {"broken/corrupt-scan.pdf", "broken/payroll-export.bin"}
    assert failures["broken/payroll-export.bin"]["reason"] == "unsupported_type"
    assert failures["broken/corrupt-scan.pdf"]["reason"] in {"no_text", "parse_error"}
    assert ingested_demo.index("eu").failures.all() == []


def test_same_query_differs_by_principal(demo_reader: Retriever) -> None:
    retriever = demo_reader
    config = demo_reader.config
    query = "What are the salary bands for a senior engineer?"
    alice = retriever.search(config.principal("alice"), query, 5)
    bob = retriever.search(config.principal("bob"), query, 5)
    assert alice.results[0].source == "hr"
    assert alice.decision is Decision.ANSWER
    assert {h.source for h in bob.results} == {"handbook"}
    assert {h.residency for h in bob.results} == {"eu"}
    assert bob.regions_searched == ["eu"]
    assert bob.decision is Decision.HANDOFF
    assert bob.reasons == [Reason.LOW_CONFIDENCE]


def test_off_topic_query_hands_off(demo_reader: Retriever) -> None:
    out = demo_reader.search(demo_reader.config.principal("alice"), "best banana bread recipe", 3)
    assert out.decision is Decision.HANDOFF
    assert Reason.LOW_CONFIDENCE in out.reasons


def test_region_without_grant_is_never_searched(demo_reader: Retriever) -> None:
    retriever = demo_reader
    bob = demo_reader.config.principal("bob")
    for query in ["salary bands", "grievance hearing", "pension contributions", "sickness absence fit note"]:
        out = retriever.search(bob, query, 10)
        assert all(h.residency == "eu" and h.source == "handbook" for h in out.results)


def test_no_authorized_results_hands_off(demo_reader: Retriever) -> None:
    from groundwork.settings import PrincipalConfig

    nobody = PrincipalConfig(name="carol", api_key_sha256="c" * 64, groups=["finance"], regions=["uk", "eu"])
    out = demo_reader.search(nobody, "annual leave", 5)
    assert out.results == []
    assert out.decision is Decision.HANDOFF
    assert out.reasons == [Reason.NO_AUTHORIZED_RESULTS]


def _snapshot(services: Services) -> dict[str, list[tuple]]:
    snap = {}
    for region in services.config.regions:
        index = services.index(region)
        with index.pool.connection() as conn:
            for table in ("documents", "chunks", "ingest_failures"):
                rows = conn.execute(f"SELECT xmin::text, * FROM {index.schema}.{table} ORDER BY 2").fetchall()
                snap[f"{region}.{table}"] = [tuple(map(str, r)) for r in rows]
    return snap


def test_second_ingest_of_unchanged_corpus_writes_nothing(ingested: Services) -> None:
    before = _snapshot(ingested)
    plan, reports = run_all(ingested)
    assert plan.tasks == []
    assert sum(r.documents_written for r in reports) == 0
    assert _snapshot(ingested) == before  # same rows, same xmin: nothing rewritten


def test_changed_document_is_replaced_atomically(ingested: Services, demo_copy: Path) -> None:
    eu = ingested.index("eu")
    path = demo_copy.parent / "corpus/handbook/remote-working.txt"
    path.write_text("Remote working\n\nEmployees may work remotely four days per week.\n")
    plan, _ = run_all(ingested)
    assert [t.ref.source_id for t in plan.tasks] == ["remote-working.txt"]
    assert plan.tasks[0].change == "changed"
    with eu.pool.connection() as conn:
        texts = [
            r[0]
            for r in conn.execute(
                f"SELECT c.text FROM {eu.schema}.chunks c JOIN {eu.schema}.documents d USING (document_id)"
                " WHERE d.source_id = 'remote-working.txt'"
            )
        ]
    assert texts and all("four days" in t for t in texts)
    assert eu.counts().documents == 5


def test_fixed_file_is_retried_and_indexed(ingested: Services, demo_copy: Path) -> None:
    broken = demo_copy.parent / "corpus/hr/broken/corrupt-scan.pdf"
    broken.write_bytes((demo_copy.parent / "corpus/handbook/code-of-conduct.pdf").read_bytes())
    plan, _ = run_all(ingested)
    assert [t.ref.source_id for t in plan.tasks] == ["broken/corrupt-scan.pdf"]
    uk = ingested.index("uk")
    assert {f["source_id"] for f in uk.failures.all()} == {"broken/payroll-export.bin"}
    assert uk.counts().documents == 6


def test_log_lines_name_a_failed_document_by_id_never_by_its_path(
    demo_services: Services,
    demo_copy: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A file name can hold a person's name: the ingest's log names the document by id, and
    ``groundwork failures`` (reading the index, where ``forget`` erases) maps the id back."""
    source_id = "broken/Ottoline Wrexham-Pryce payroll.bin"
    (demo_copy.parent / "corpus/hr" / source_id).write_bytes(b"\x00\x01 not a document")
    caplog.set_level(logging.DEBUG)
    run_all(demo_services)
    logged = "\n".join(r.getMessage() for r in caplog.records) + "\n".join(capfd.readouterr())
    assert "Ottoline" not in logged and "Wrexham" not in logged
    failed = document_id("hr", source_id)
    assert f"hr document {failed} failed at partition: unsupported_type" in logged

    assert main(["failures", "--config", str(demo_copy)]) == 0
    listed = capfd.readouterr().out
    assert f"[uk] hr/{source_id} (document {failed}): partition:unsupported_type" in listed


def test_every_chunk_is_governed(ingested_demo: Services) -> None:
    for region in ingested_demo.config.regions:
        assert ingested_demo.index(region).ungoverned_chunks() == 0
    uk = ingested_demo.index("uk")
    with uk.pool.connection() as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(f"UPDATE {uk.schema}.chunks SET access = '{{}}'")


def test_confidence_mapping_is_monotonic_and_bounded() -> None:
    cfg = RetrievalConfig()
    assert confidence([], cfg) == 0.0
    assert confidence([cfg.score_floor - 0.1], cfg) == 0.0
    assert confidence([cfg.score_ceiling + 0.1], cfg) == 1.0
    values = [confidence([s / 100], cfg) for s in range(-100, 101)]
    assert values == sorted(values)
    assert decide([0.9], cfg)[1] is Decision.ANSWER
    assert decide([0.1], cfg)[1:] == (Decision.HANDOFF, [Reason.LOW_CONFIDENCE])


def test_calibration_round_trip_and_model_guard(tmp_path) -> None:
    from indexes.confidence import FEATURES, Calibration, features, load_calibration

    cal = Calibration("dense", "model-a", (8.0, 2.0, 1.0, 1.0, 3.0), -6.0, "test")
    assert len(cal.coef) == len(FEATURES)
    cal.save(tmp_path / "dense.json")
    assert load_calibration("dense", "model-a", tmp_path) == cal
    assert load_calibration("dense", "model-b", tmp_path) is None  # fitted for another model: unused
    assert load_calibration("hybrid", "model-a", tmp_path) is None
    low = cal.probability(features([0.1, 0.09], [None, None], "vacuum", ["about indexes", "other"]))
    high = cal.probability(features([0.8, 0.3], [2.0, 1.0], "vacuum", ["how to vacuum", "other"]))
    assert 0.0 < low < 0.5 < high < 1.0
    cfg = RetrievalConfig()
    assert decide([0.1, 0.09], cfg, calibration=cal)[1] is Decision.HANDOFF
    assert (
        decide(
            [0.8, 0.3], cfg, query="vacuum", lexical=[2.0, 1.0], texts=["how to vacuum", "x"], calibration=cal
        )[1]
        is Decision.ANSWER
    )


def test_query_coverage_counts_the_query_words_the_best_result_contains() -> None:
    from indexes.confidence import query_coverage

    assert (
        query_coverage("What is the ALTER TEXT SEARCH configuration?", ["alter text search template"]) == 0.75
    )
    assert query_coverage("PQtrace", ["libpq fast path", "PQtrace enables tracing"]) == 1.0
    assert query_coverage("PQtrace", []) == 0.0
    assert query_coverage("the of", ["the of"]) == 0.0  # stop words only: nothing to match
