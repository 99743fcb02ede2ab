"""SIGKILL at deterministic points of an ingest, mid-write included: the next run ends identical to an
uninterrupted one, with no orphan or duplicate rows.

The killed run is an incremental one (a changed file, new files, a bad file, a deleted file and a
renamed one), in micro-batches of two documents, so every kind of write is under way at some point.
``make test`` kills at two points; ``GROUNDWORK_CRASH_POINTS=all`` (``make fuzz``) at all ten.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import yaml

from groundwork.faults import FAULT_ENV
from groundwork.settings import GroundworkConfig, load_config
from indexes.embedded import EmbeddedServer
from indexes.regions import embedded_data_dir
from tests.conftest import copy_demo
from tests.test_resilience import assert_same_index, snapshot

#: Every point, as ``<fault point>:<pass>``; the run has 6 documents to process, 5 of them good.
ALL_POINTS = [
    "plan_failures_recorded:1",
    "document_mid_write:1",
    "document_mid_write:4",
    "document_written:1",
    "document_written:5",
    "batch_committed:1",
    "batch_committed:2",
    "change_applied:1",
    "purge_deleted:1",
    "purge_deleted:2",
]
QUICK_POINTS = ["document_mid_write:4", "purge_deleted:1"]
POINTS = ALL_POINTS if os.environ.get("GROUNDWORK_CRASH_POINTS") == "all" else QUICK_POINTS


def _ingest(folder: Path, fault: str | None = None) -> int:
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    env["DAGSTER_HOME"] = str(folder / "dagster_home")
    if fault:
        env[FAULT_ENV] = fault
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "ingest", "--config", str(folder / "groundwork.yaml")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=300,
    )
    return done.returncode


def _first_run(folder: Path) -> GroundworkConfig:
    """The demo corpus indexed once, in micro-batches of two documents."""
    path = copy_demo(folder)
    data = yaml.safe_load(path.read_text())
    data["ingest"] = {"batch_documents": 2}
    data["database"] = {"timeout_seconds": 5}
    path.write_text(yaml.safe_dump(data))
    (folder / "dagster_home").mkdir()
    (folder / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    assert _ingest(folder) == 0
    return load_config(path)


def _change_corpus(folder: Path) -> None:
    """One changed file, four new ones, one bad one, one deleted and one renamed."""
    corpus = folder / "corpus"
    with (corpus / "hr/policies/sickness-absence.md").open("a") as f:
        f.write("\n\n## Phased returns\n\nA phased return is agreed with occupational health.\n")
    for n, (source, text) in enumerate(
        [
            ("hr", "Case note: Priya Raman asked about flexible hours on 3 March."),
            ("hr", "Payroll cut-off moves to the 20th of each month from April."),
            ("handbook", "Desks are booked through the office app a week ahead."),
            ("handbook", "Visitors sign in at reception and wear a badge at all times."),
        ]
    ):
        (corpus / source / f"new-{n}.txt").write_text(text + "\n")
    (corpus / "hr/broken/garbage.pdf").write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 8)
    (corpus / "handbook/expenses.html").unlink()
    (corpus / "handbook/remote").mkdir()
    (corpus / "handbook/remote-working.txt").rename(corpus / "handbook/remote/remote-working.txt")


def _copy(source: Path, target: Path) -> None:
    """Copy a stopped deployment, its database files with their owner (the embedded server's user)."""
    subprocess.run(["cp", "-a", str(source), str(target)], check=True)


def _stop(config: GroundworkConfig) -> None:
    EmbeddedServer(embedded_data_dir(config)).stop()


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("crash") / "base"
    config = _first_run(folder)
    _stop(config)  # its data folder is copied for every case
    _change_corpus(folder)
    return folder


@pytest.fixture(scope="module")
def reference(first_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("crash") / "reference"
    _copy(first_run, folder)
    config = load_config(folder / "groundwork.yaml")
    try:
        assert _ingest(folder) == 0
        return snapshot(config)
    finally:
        _stop(config)


def _orphans_and_duplicates(config: GroundworkConfig) -> dict[str, int]:
    server = EmbeddedServer(embedded_data_dir(config))
    found: dict[str, int] = {}
    for region in config.regions:
        with psycopg.connect(server.dsn(f"groundwork_{region}")) as conn:
            for name, query in {
                "orphan_chunks": "SELECT count(*) FROM groundwork.chunks c"
                " WHERE NOT EXISTS (SELECT 1 FROM groundwork.documents d WHERE d.document_id = c.document_id)",
                "wrong_chunk_counts": "SELECT count(*) FROM groundwork.documents d WHERE d.chunk_count <>"
                " (SELECT count(*) FROM groundwork.chunks c WHERE c.document_id = d.document_id)",
                "duplicate_seqs": "SELECT count(*) FROM (SELECT document_id, seq FROM groundwork.chunks"
                " GROUP BY 1, 2 HAVING count(*) > 1) x",
                "duplicate_sources": "SELECT count(*) FROM (SELECT source, source_id FROM groundwork.documents"
                " GROUP BY 1, 2 HAVING count(*) > 1) x",
            }.items():
                row = conn.execute(query).fetchone()
                found[f"{region}.{name}"] = int(row[0]) if row else -1
    return found


@pytest.mark.parametrize("point", POINTS)
def test_sigkill_at_a_fault_point_then_rerun_equals_an_uninterrupted_run(
    point: str, first_run: Path, reference: dict[str, object], tmp_path: Path
) -> None:
    folder = tmp_path / "case"
    _copy(first_run, folder)
    config = load_config(folder / "groundwork.yaml")
    try:
        assert _ingest(folder, fault=point) == -9, f"the run did not reach {point}"
        assert _ingest(folder) == 0
        assert_same_index(snapshot(config), reference)
        assert not any(_orphans_and_duplicates(config).values())
    finally:
        _stop(config)
