"""The ingest job under the multiprocess executor: each region's index in a process of its own.

A real Dagster run of the two-region demo: both regions indexed, each by its own step process, the
two steps side by side; the index equals the one-process ingest's row for row; no planted PII in
Dagster's storage (the plan now goes through it); and a move and a rename across regions, carried
out by the target region's step, keep their embeddings and leave no copy behind.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import yaml

from groundwork.settings import load_config
from orchestration.definitions import build_definitions
from orchestration.local import run_all
from orchestration.runner import IngestSummary, run_ingest
from orchestration.services import Services
from pipelines.embedding import Embedder
from pipelines.redact import Redactor
from tests.conftest import copy_demo, demo_config_on, new_database
from tests.test_backfill import _rows
from tests.test_end_to_end import PLANTED, _variants


def _multiprocess(config_path: Path) -> None:
    data = yaml.safe_load(config_path.read_text())
    data["orchestration"] = {"executor": "multiprocess", "max_concurrent": 2}
    config_path.write_text(yaml.safe_dump(data))


def _steps(run_id: str) -> dict[str, dict[str, float | int]]:
    """Per step: its process id and the times of its start and end events."""
    out: dict[str, dict[str, float | int]] = {}
    with dg.DagsterInstance.get() as instance:
        for e in instance.all_logs(run_id):
            if e.dagster_event and e.step_key:
                kind = e.dagster_event.event_type_value
                if kind == "STEP_START":
                    out.setdefault(e.step_key, {}).update(pid=e.dagster_event.pid or 0, start=e.timestamp)
                elif kind == "STEP_SUCCESS":
                    out.setdefault(e.step_key, {})["end"] = e.timestamp
    return out


@pytest.fixture(scope="module")
def ingested(
    tmp_path_factory: pytest.TempPathFactory, pg_server
) -> Iterator[tuple[Path, str, Path, IngestSummary]]:  # type: ignore[no-untyped-def]
    """The demo ingested once by a multiprocess run (the last test of this module changes it)."""
    folder = tmp_path_factory.mktemp("multiprocess")
    home = folder / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    mp = pytest.MonkeyPatch()
    mp.setenv("DAGSTER_HOME", str(home))
    url = new_database(pg_server)
    config_path = copy_demo(folder / "demo")
    demo_config_on(config_path, url)
    _multiprocess(config_path)
    first = run_ingest(config_path, load_config(config_path))
    yield home, url, config_path, first
    mp.undo()


def test_region_steps_are_separate_assets_under_multiprocess(ingested) -> None:  # type: ignore[no-untyped-def]
    _, _, config_path, _ = ingested
    config = load_config(config_path)
    assert config.orchestration.executor == "multiprocess"
    defs = build_definitions(config_path, config)
    dg.Definitions.validate_loadable(defs)
    job = defs.resolve_job_def("ingest")
    assert job.executor_def.name == "multiprocess"
    assets = {
        n
        for n in job.graph.node_dict
        if not n.endswith(
            ("_chunks_are_governed", "_failures_within_limit", "_after_redaction", "_as_policy_says")
        )
    }
    assert assets == {"source_documents", "index_uk", "index_eu"}


def test_a_multiprocess_run_indexes_both_regions_in_parallel_steps(
    ingested, pg_server, tmp_path: Path, redactor: Redactor, embedder: Embedder
) -> None:  # type: ignore[no-untyped-def]
    home, url, _, first = ingested
    assert first.success
    assert first.assets["index/uk"]["documents_written"] == 5
    assert first.assets["index/uk"]["failures"] == 2
    assert first.assets["index/eu"]["documents_written"] == 5
    assert first.checks == {
        "index/uk:chunks_are_governed": True,
        "index/eu:chunks_are_governed": True,
        "index/uk:failures_within_limit": False,  # 2 of 7 failed, past the default 10%: a warning
        "index/eu:failures_within_limit": True,
        "index/uk:no_personal_data_after_redaction": True,
        "index/eu:no_personal_data_after_redaction": True,
        "index/uk:residency_as_policy_says": True,
        "index/eu:residency_as_policy_says": True,
    }
    steps = _steps(first.run_id)
    uk, eu, plan = steps["index_uk"], steps["index_eu"], steps["source_documents"]
    # Each region in a process of its own, both running at once, after the plan.
    assert len({uk["pid"], eu["pid"], plan["pid"]}) == 3
    assert uk["start"] < eu["end"] and eu["start"] < uk["end"]
    assert min(uk["start"], eu["start"]) >= plan["end"]
    # The same index as the one-process ingest of the same corpus.
    reference_url = new_database(pg_server)
    with Services(
        demo_config_on(copy_demo(tmp_path / "ref"), reference_url), redactor=redactor, embedder=embedder
    ) as services:
        run_all(services)
    got, want = _rows(url), _rows(reference_url)
    assert got == want
    assert len(got["uk.documents"]) == 5 and len(got["eu.documents"]) == 5
    # The plan went through Dagster's storage: references only, no planted PII there.
    files = [p for p in home.rglob("*") if p.is_file()]
    assert any("source_documents" in p.parts for p in files)
    for path in files:
        data = path.read_bytes()
        for value in PLANTED:
            for variant in _variants(value):
                assert variant.encode() not in data, f"{value!r} found in {path}"


def _uris(url: str, region: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        return {
            source_id.rsplit("/", 1)[-1]: str(doc)
            for doc, source_id in conn.execute(
                f"SELECT document_id, source_id FROM groundwork_{region}.documents"
            )
        }


def test_moves_and_renames_across_regions_keep_embeddings_and_leave_no_copy(ingested) -> None:  # type: ignore[no-untyped-def]
    _, url, config_path, _ = ingested
    data = yaml.safe_load(config_path.read_text())
    hr = next(s for s in data["sources"] if s["name"] == "hr")
    hr["rules"] = [{"match": "benefits/**", "residency": "eu"}]
    hr["contract"]["residency_commitment"] = ["uk", "eu"]  # the data owner agreed to the EU as well
    config_path.write_text(yaml.safe_dump(data))
    corpus = config_path.parent / "corpus" / "hr"
    shutil.move(corpus / "onboarding" / "new-starters-q4.xlsx", corpus / "benefits" / "new-starters-q4.xlsx")
    with psycopg.connect(url) as conn:
        chunks_before = conn.execute("SELECT count(*) FROM groundwork_uk.chunks").fetchone()
    second = run_ingest(config_path, load_config(config_path))
    assert second.success
    eu = second.assets["index/eu"]
    assert (eu["moved_in_without_reembedding"], eu["renamed_without_reembedding"]) == (1, 1)
    assert second.assets["index/uk"]["embeddings_computed"] == 0
    assert eu["embeddings_computed"] == 0
    uk_docs, eu_docs = _uris(url, "uk"), _uris(url, "eu")
    for name in ("pension-and-health.pdf", "new-starters-q4.xlsx"):
        assert name in eu_docs and name not in uk_docs
    assert (len(uk_docs), len(eu_docs)) == (3, 7)
    with psycopg.connect(url) as conn:
        uk_chunks = conn.execute("SELECT count(*) FROM groundwork_uk.chunks").fetchone()
    assert chunks_before is not None and uk_chunks is not None
    assert uk_chunks[0] < chunks_before[0]
