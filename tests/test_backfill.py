"""The backfill job: one run per source, shards processed in parallel processes, same index as ingest."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import psycopg
import pytest

from orchestration.local import run_all
from orchestration.runner import run_backfill
from orchestration.services import Services
from pipelines.embedding import Embedder
from pipelines.planning import plan_run
from pipelines.redact import Redactor
from tests.conftest import copy_demo, demo_config_on, new_database
from tests.test_end_to_end import PLANTED, _variants


def _rows(url: str) -> dict[str, set[tuple[str, ...]]]:
    out: dict[str, set[tuple[str, ...]]] = {}
    with psycopg.connect(url) as conn:
        for region in ("uk", "eu"):
            schema = f"groundwork_{region}"
            out[f"{region}.documents"] = {
                tuple(map(str, r))
                for r in conn.execute(
                    f"SELECT document_id, version, access, residency FROM {schema}.documents"
                )
            }
            out[f"{region}.chunks"] = {
                tuple(map(str, r))
                for r in conn.execute(f"SELECT chunk_id, document_id, text FROM {schema}.chunks")
            }
            out[f"{region}.failures"] = {
                tuple(map(str, r))
                for r in conn.execute(f"SELECT source_id, reason FROM {schema}.ingest_failures")
            }
    return out


def test_shards_split_every_source_without_overlap(demo_services: Services) -> None:
    config = demo_services.config
    indexes = demo_services.indexes()
    whole = plan_run(config, demo_services.connectors, indexes)
    seen: list[str] = []
    for source in config.sources:
        for i in range(3):
            part = plan_run(config, demo_services.connectors, indexes, sources={source.name}, shard=(i, 3))
            seen += [t.document_id for t in part.tasks] + [f.task.document_id for f in part.failures]
    assert sorted(seen) == sorted(
        [t.document_id for t in whole.tasks] + [f.task.document_id for f in whole.failures]
    )
    assert len(seen) == len(set(seen))


@pytest.fixture
def backfilled(tmp_path: Path, pg_server, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str, list, Path]:  # type: ignore[no-untyped-def]
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        (Path(__file__).parents[1] / "dagster_home" / "dagster.yaml").read_text()
    )
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    url = new_database(pg_server)
    config_path = copy_demo(tmp_path / "demo")
    config = demo_config_on(config_path, url)
    summaries = run_backfill(config_path, config, [s.name for s in config.sources])
    return home, url, summaries, config_path


def test_backfill_runs_shards_in_parallel_processes_and_matches_the_ingest_job(
    backfilled: tuple[Path, str, list, Path],
    pg_server,
    tmp_path: Path,
    redactor: Redactor,
    embedder: Embedder,
) -> None:  # type: ignore[no-untyped-def]
    home, url, summaries, _ = backfilled
    assert [s.success for s in summaries] == [True, True]
    assert {src: totals["shards"] for s in summaries for src, totals in s.assets.items()} == {
        "hr": 4,
        "handbook": 4,
    }
    # Every shard step ran in a process of its own.
    with dg.DagsterInstance.get() as instance:
        for summary in summaries:
            pids = {
                e.dagster_event.pid
                for e in instance.all_logs(summary.run_id)
                if e.dagster_event
                and e.dagster_event.event_type_value == "STEP_START"
                and e.step_key
                and e.step_key.startswith("ingest_shard[")
            }
            assert len(pids) == 4
    # The same index as the one-process ingest of the same corpus.
    reference_url = new_database(pg_server)
    ref_config = demo_config_on(copy_demo(tmp_path / "ref"), reference_url)
    with Services(ref_config, redactor=redactor, embedder=embedder) as services:
        run_all(services)
    got, want = _rows(url), _rows(reference_url)
    for key in want:
        if key.endswith(".documents"):  # versions and tags equal; the URIs differ by folder
            assert got[key] == want[key], key
        elif key.endswith(".chunks"):
            assert {(c, d) for c, d, _ in got[key]} == {(c, d) for c, d, _ in want[key]}, key
            assert got[key] == want[key], key
        else:
            assert got[key] == want[key], key
    # Only shard numbers and counts went through Dagster's storage: no planted PII there.
    for path in (p for p in home.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for value in PLANTED:
            for variant in _variants(value):
                assert variant.encode() not in data, f"{value!r} found in {path}"


def test_planted_pii_is_in_no_table_after_a_backfill(backfilled: tuple[Path, str, list, Path]) -> None:
    _home, url, _, _ = backfilled
    for key, rows in _rows(url).items():
        text = "\n".join("\t".join(r) for r in rows)
        for value in PLANTED:
            for variant in _variants(value):
                assert variant not in text, f"{value!r} found in {key}"


def test_a_second_backfill_computes_no_embeddings(backfilled: tuple[Path, str, list, Path]) -> None:
    _home, url, _, config_path = backfilled
    from groundwork.settings import load_config

    before = _rows(url)
    config = load_config(config_path)
    again = run_backfill(config_path, config, [s.name for s in config.sources])
    assert all(s.success for s in again)
    assert sum(t["embeddings_computed"] for s in again for t in s.assets.values()) == 0
    assert _rows(url) == before
