"""Failures mid-run: a database outage and SIGKILLed ingests leave nothing half-done.

Each test runs its own embedded server so it can be stopped; the final index is compared with the
index of an uninterrupted run of the same corpus.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psycopg
import pytest
import yaml
from pgvector.psycopg import register_vector

from groundwork.errors import IndexError_
from groundwork.settings import GroundworkConfig, load_config
from indexes.embedded import EmbeddedServer
from indexes.regions import embedded_data_dir
from indexes.store import RegionIndex
from orchestration.local import run_all
from orchestration.services import Services
from tests.conftest import copy_demo


def _config(folder: Path, name: str) -> GroundworkConfig:
    path = copy_demo(folder / name)
    data = yaml.safe_load(path.read_text())
    data["database"] = {"timeout_seconds": 2}
    path.write_text(yaml.safe_dump(data))
    return load_config(path)


def snapshot(config: GroundworkConfig) -> dict[str, object]:
    """The index content that matters: documents, chunks (text, embedding), failures; no timestamps."""
    server = EmbeddedServer(embedded_data_dir(config))
    out: dict[str, object] = {}
    for region in config.regions:
        with psycopg.connect(server.dsn(f"groundwork_{region}")) as conn:
            register_vector(conn)
            out[f"{region}.documents"] = conn.execute(
                "SELECT document_id::text, source, source_id, version, access, chunk_count FROM groundwork.documents"
                " ORDER BY 1"
            ).fetchall()
            chunks = conn.execute(
                "SELECT chunk_id::text, document_id::text, seq, text, embedding FROM groundwork.chunks ORDER BY 1"
            ).fetchall()
            out[f"{region}.chunks"] = [c[:4] for c in chunks]
            out[f"{region}.vectors"] = (
                np.array([np.asarray(c[4].to_numpy()) for c in chunks]) if chunks else np.zeros((0, 384))
            )
            out[f"{region}.failures"] = conn.execute(
                "SELECT source, source_id, version, stage, reason FROM groundwork.ingest_failures ORDER BY 1, 2"
            ).fetchall()
    return out


def assert_same_index(got: dict[str, object], want: dict[str, object]) -> None:
    assert got.keys() == want.keys()
    for key in want:
        if key.endswith(".vectors"):
            a, b = np.asarray(got[key]), np.asarray(want[key])
            assert a.shape == b.shape
            assert float(np.abs(a - b).max(initial=0.0)) < 1e-4  # batch composition may differ
        else:
            assert got[key] == want[key], key


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, redactor, embedder):
    config = _config(tmp_path_factory.mktemp("ref"), "ref")
    services = Services(config, redactor=redactor, embedder=embedder)
    try:
        run_all(services)
        yield snapshot(config)
    finally:
        services.close()
        EmbeddedServer(embedded_data_dir(config)).stop()


def test_database_outage_fails_the_run_cleanly_and_the_next_run_completes(
    tmp_path: Path, reference, redactor, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path, "outage")
    server = EmbeddedServer(embedded_data_dir(config))
    writes = {"n": 0}
    real_write = RegionIndex.write_document

    def write_then_fail(self: RegionIndex, doc):  # type: ignore[no-untyped-def]
        writes["n"] += 1
        if writes["n"] == 4:
            server.stop()  # a real outage: the server goes away mid-run
        return real_write(self, doc)

    monkeypatch.setattr(RegionIndex, "write_document", write_then_fail)
    services = Services(config, redactor=redactor, embedder=embedder)
    try:
        with pytest.raises(IndexError_, match="unavailable"):
            run_all(services)
    finally:
        services.close()
    monkeypatch.setattr(RegionIndex, "write_document", real_write)
    services = Services(config, redactor=redactor, embedder=embedder)  # starts the server again
    try:
        plan, _ = run_all(services)
        assert plan.tasks, "the second run had work left"
    finally:
        services.close()
    try:
        assert_same_index(snapshot(config), reference)
    finally:
        server.stop()


def _ingest_process(config_path: Path, home: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "ingest", "--config", str(config_path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


class DocumentCounter:
    """Counts committed documents in every region, on open connections (fast enough to poll)."""

    def __init__(self, config: GroundworkConfig) -> None:
        self.config = config
        self.conns: dict[str, psycopg.Connection] = {}

    def __call__(self) -> int:
        server = EmbeddedServer(embedded_data_dir(self.config))
        total = 0
        for region in self.config.regions:
            try:
                if region not in self.conns:
                    self.conns[region] = psycopg.connect(server.dsn(f"groundwork_{region}"), autocommit=True)
                row = self.conns[region].execute("SELECT count(*) FROM groundwork.documents").fetchone()
                total += int(row[0]) if row else 0
            except psycopg.Error:
                self.conns.pop(region, None)  # database or table not created yet
        return total

    def close(self) -> None:
        for conn in self.conns.values():
            conn.close()


def test_sigkill_at_several_points_then_rerun_equals_an_uninterrupted_run(tmp_path: Path, reference) -> None:
    config = _config(tmp_path, "crash")
    config_path = tmp_path / "crash" / "groundwork.yaml"
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    EmbeddedServer(embedded_data_dir(config)).start()
    try:
        # Kill points: while loading, after the first documents are committed, later in the run.
        count = DocumentCounter(config)
        killed = 0
        # Kill points: while loading models, right after the first commit, then mid-way through the writes.
        for kill_after in (None, 1, 2):
            start = count()
            proc = _ingest_process(config_path, home)
            started = time.monotonic()
            while proc.poll() is None and time.monotonic() - started < 240:
                if kill_after is None and time.monotonic() - started > 5:
                    break
                if kill_after is not None and count() >= start + kill_after:
                    break
                time.sleep(0.002)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                killed += 1
            proc.wait(timeout=30)
        interrupted = count()
        count.close()
        assert killed == 3, "an ingest finished before it could be killed"
        assert interrupted < 10, "the killed runs should not have completed the index"
        final = _ingest_process(config_path, home)
        assert final.wait(timeout=300) == 0
        assert_same_index(snapshot(config), reference)
    finally:
        EmbeddedServer(embedded_data_dir(config)).stop()
