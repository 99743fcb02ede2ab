"""Property: no endpoint ever returns a chunk outside (caller's access ∩ caller's regions).

Hypothesis generates principals (groups, regions), documents (residency, access grants) and k; the
documents are written through the ingest writer, and every principal searches through the API. Each
result must be permitted, and as many permitted chunks come back as exist, up to k.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from groundwork.ids import chunk_id, document_id
from groundwork.records import (
    Chunk,
    ChunkedDocument,
    DocumentRef,
    DocumentTask,
    EmbeddedDocument,
    Governance,
    RedactedDocument,
)
from groundwork.settings import GroundworkConfig, load_config
from orchestration.services import Services
from serving.api import create_app
from tests.conftest import drop_database, make_reader, new_database, write_config

REGIONS = ["uk", "eu", "us"]
GROUPS = ["a", "b", "c", "d"]
NAMES = ["p0", "p1", "p2"]
GRANTS = ["public", *(f"group:{g}" for g in GROUPS), *(f"principal:{n}" for n in NAMES)]
QUERIES = ["quarterly report", "holiday policy", "security training", "x' OR 1=1 --"]


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, pg_server, redactor, embedder
) -> Iterator[tuple[Services, Services]]:
    folder: Path = tmp_path_factory.mktemp("prop")
    sources = []
    for region in REGIONS:
        (folder / region).mkdir()
        sources.append(
            {
                "name": f"s_{region}",
                "connector": "filesystem",
                "path": region,
                "residency": region,
                "contract": "none",
                "access": ["public"],
            }
        )
    url = new_database(pg_server)
    config: GroundworkConfig = load_config(
        write_config(folder / "g.yaml", {"sources": sources, "database": {"url": url}})
    )
    writer = Services(config, redactor=redactor, embedder=embedder)
    writer.migrate()
    reader = make_reader(config, redactor, embedder)
    yield writer, reader
    reader.close()
    writer.close()
    drop_database(pg_server, url)


documents = st.lists(
    st.tuples(
        st.sampled_from(REGIONS),
        st.sets(st.sampled_from(GRANTS), min_size=1, max_size=3),
        st.integers(min_value=1, max_value=3),  # chunks
        st.integers(min_value=0, max_value=2**31),  # vector seed
    ),
    min_size=0,
    max_size=12,
)
principals = st.lists(
    st.tuples(
        st.sets(st.sampled_from(GROUPS), max_size=3),
        st.sets(st.sampled_from(REGIONS), min_size=1, max_size=3),
    ),
    min_size=1,
    max_size=3,
)


def _store(writer: Services, docs: list[tuple[str, set[str], int, int]]) -> None:
    for region in REGIONS:
        target = writer.targets[region]
        writer.index(region)
        with psycopg.connect(target.dsn) as conn:
            conn.execute(f"TRUNCATE {target.schema}.documents, {target.schema}.chunks")
    for i, (region, grants, n_chunks, seed) in enumerate(docs):
        ref = DocumentRef(f"s_{region}", f"doc{i}.txt", f"file:///doc{i}.txt", f"v{seed}", 10)
        doc_id = document_id(ref.source, ref.source_id)
        task = DocumentTask(ref, doc_id, Governance(region, tuple(sorted(grants))), "new")
        red = RedactedDocument(task, [], "text/plain", {})
        chunks = [Chunk(chunk_id(doc_id, s), s, f"doc {i} chunk {s}", None) for s in range(n_chunks)]
        vectors = np.random.default_rng(seed).normal(size=(n_chunks, 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        writer.index(region).write_document(EmbeddedDocument(ChunkedDocument(red, chunks), vectors))


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    docs=documents,
    people=principals,
    k=st.integers(min_value=1, max_value=10),
    query=st.sampled_from(QUERIES),
)
def test_no_result_outside_access_and_regions(
    world: tuple[Services, Services], docs: list, people: list, k: int, query: str
) -> None:
    writer, reader = world
    _store(writer, docs)
    principal_cfgs = [
        {
            "name": NAMES[i],
            "api_key_sha256": hashlib.sha256(f"key-{i}".encode()).hexdigest(),
            "groups": sorted(groups),
            "regions": sorted(regions),
        }
        for i, (groups, regions) in enumerate(people)
    ]
    config = reader.config.model_validate(
        {
            **reader.config.model_dump(mode="json", exclude={"principals", "database"}),
            "principals": principal_cfgs,
        }
    )
    config = config.model_copy(update={"api": config.api.model_copy(update={"rate_limit_burst": 10_000})})
    client = TestClient(create_app(config, reader))
    for i, p in enumerate(config.principals):
        held = set(p.grants())
        allowed = {
            chunk_id(document_id(f"s_{region}", f"doc{j}.txt"), s)
            for j, (region, grants, n_chunks, _) in enumerate(docs)
            if region in p.regions and grants & held
            for s in range(n_chunks)
        }
        r = client.post(
            "/v1/search", json={"query": query, "k": k}, headers={"Authorization": f"Bearer key-{i}"}
        )
        assert r.status_code == 200, r.text
        got = [res["chunk_id"] for res in r.json()["results"]]
        assert set(got) <= allowed, f"{p.name} received chunks outside its access and regions"
        assert all(res["residency"] in p.regions for res in r.json()["results"])
        assert len(got) == min(k, len(allowed))
