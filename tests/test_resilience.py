"""Failures mid-run: a database outage leaves nothing half-done (SIGKILLs: ``test_crash_points.py``).

Each test runs its own embedded server so it can be stopped; the final index is compared with the
index of an uninterrupted run of the same corpus.
"""

from __future__ import annotations

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

    def write_then_fail(self: RegionIndex, doc, **kw):  # type: ignore[no-untyped-def]
        writes["n"] += 1
        if writes["n"] == 4:
            server.stop()  # a real outage: the server goes away mid-run
        return real_write(self, doc, **kw)

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
