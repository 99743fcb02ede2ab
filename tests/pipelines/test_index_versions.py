"""A model or chunking change builds a new index version beside the live one and switches atomically."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest

from groundwork.settings import DEFAULT_MODEL_NAME, GroundworkConfig, PrincipalConfig, load_config
from indexes.schema import build_schema_name, version_lock_key
from orchestration.local import run_all
from orchestration.services import Services
from pipelines.embedding import Embedder, default_model_path
from pipelines.redact import Redactor
from tests.conftest import make_reader, write_config
from tests.pipelines.test_policy import CountingEmbedder

FILES = {
    "a.txt": "Alpha\n\nThe alpha procedure covers onboarding of new starters.",
    "b.txt": "Bravo\n\nThe bravo policy covers travel and expenses.",
    "c.txt": "Charlie\n\nThe charlie guide covers laptops and security.",
}
STAFF = PrincipalConfig(name="sam", api_key_sha256="5" * 64, groups=["staff"], regions=["uk"])


class FailingOn(CountingEmbedder):
    """The real embedder under another model name, failing on texts that contain ``poison``."""

    def __init__(self, inner: Embedder, model_path: Path | None, poison: str | None = None) -> None:
        super().__init__(inner)
        self.config = inner.config.model_copy(update={"model_path": model_path})
        self.poison = poison

    def embed(self, texts: list[str]):  # type: ignore[no-untyped-def]
        if self.poison and any(self.poison in t for t in texts):
            raise RuntimeError("embedding failed")
        return super().embed(texts)


class Versions:
    """A three-document source indexed with the default model, then re-run under new settings."""

    def __init__(self, folder: Path, url: str, redactor: Redactor, embedder: Embedder) -> None:
        self.folder = folder
        (folder / "share").mkdir()
        for name, text in FILES.items():
            (folder / "share" / name).write_text(text)
        # The same weights under another path: to the index, another model.
        self.other_model = folder / "other-model"
        self.other_model.symlink_to(default_model_path())
        self.url = url
        self.redactor = redactor
        self.base = embedder
        self.access = ["group:staff"]

    def config(
        self, *, model_path: Path | None = None, max_characters: int = 1200, redaction: dict | None = None
    ) -> GroundworkConfig:
        data = {
            "sources": [
                {
                    "name": "s",
                    "connector": "filesystem",
                    "path": "share",
                    "residency": "uk",
                    "contract": "none",
                    "access": self.access,
                }
            ],
            "database": {"url": self.url},
            "embedding": {"model_path": str(model_path)} if model_path else {},
            "chunking": {"max_characters": max_characters, "new_after_n_chars": min(900, max_characters)},
            "redaction": redaction or {},
        }
        return load_config(write_config(self.folder / "g.yaml", data))

    def run(self, config: GroundworkConfig, embedder: Embedder) -> tuple[Services, int]:
        counting = embedder if isinstance(embedder, CountingEmbedder) else CountingEmbedder(embedder)
        before = counting.embedded
        services = Services(config, redactor=self.redactor, embedder=counting)
        run_all(services)
        return services, counting.embedded - before

    def schemas(self) -> set[str]:
        with psycopg.connect(self.url) as conn:
            rows = conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'groundwork%'"
            ).fetchall()
        return {r[0] for r in rows}

    def meta(self, services: Services) -> dict[str, str]:
        with psycopg.connect(self.url) as conn:
            schema = services.index("uk").schema
            return dict(conn.execute(f"SELECT key, value FROM {schema}.index_meta").fetchall())

    def live_docs(self, services: Services) -> dict[str, list[str]]:
        with psycopg.connect(self.url) as conn:
            schema = services.index("uk").schema
            rows = conn.execute(
                f"SELECT source_id, access FROM {schema}.documents ORDER BY source_id"
            ).fetchall()
        return {source_id: access for source_id, access in rows}


@pytest.fixture
def versions(tmp_path: Path, database_url: str, redactor: Redactor, embedder: Embedder) -> Versions:
    v = Versions(tmp_path, database_url, redactor, embedder)
    services, embedded = v.run(v.config(), embedder)
    services.close()
    assert embedded == 3
    return v


def search(
    config: GroundworkConfig, versions: Versions, embedder: Embedder, query: str
) -> list[tuple[str, float]]:
    with make_reader(config, versions.redactor, embedder) as reader:
        hits = reader.search(STAFF, query, 3).results
    return [(h.source_uri.rsplit("/", 1)[-1], h.score) for h in hits]


def test_a_redaction_policy_change_re_redacts_every_document_into_a_new_version(
    versions: Versions, embedder: Embedder
) -> None:
    before = Services(versions.config(), redactor=versions.redactor).index_settings()["redaction"]
    # Stricter redaction: a new policy version, so every document is redacted and embedded again.
    config = versions.config(redaction={"score_threshold": 0.5})
    services, embedded = versions.run(config, embedder)
    try:
        assert services.index_settings()["redaction"] != before
        assert embedded == 3
        assert versions.meta(services)["redaction"] == services.index_settings()["redaction"]
        assert services.index("uk").build_schema is None  # complete, so switched
        _, again = versions.run(config, embedder)
        assert again == 0
    finally:
        services.close()


def test_an_index_that_never_recorded_its_redaction_is_redacted_again(
    versions: Versions, embedder: Embedder
) -> None:
    with psycopg.connect(versions.url, autocommit=True) as conn:
        conn.execute("DELETE FROM groundwork_uk.index_meta WHERE key = 'redaction'")
    services, embedded = versions.run(versions.config(), embedder)
    try:
        assert embedded == 3
        assert "redaction" in versions.meta(services)
    finally:
        services.close()


def test_chunking_change_rebuilds_every_document_and_switches(versions: Versions, embedder: Embedder) -> None:
    config = versions.config(max_characters=300)
    services, embedded = versions.run(config, embedder)
    try:
        assert embedded == 3  # every document again, under the new chunking
        assert versions.meta(services)["chunking"] == services.index_settings()["chunking"]
        assert services.index("uk").build_schema is None
        assert set(versions.live_docs(services)) == set(FILES)
        # The old version was dropped: no build or old schema is left behind.
        assert versions.schemas() == {services.index("uk").schema}
        _, again = versions.run(config, embedder)
        assert again == 0
    finally:
        services.close()


def test_an_incomplete_build_leaves_the_live_version_serving(versions: Versions, embedder: Embedder) -> None:
    old = versions.config()
    before = search(old, versions, embedder, "travel expenses")
    new = versions.config(model_path=versions.other_model)
    services, embedded = versions.run(new, FailingOn(embedder, versions.other_model, poison="charlie"))
    try:
        assert embedded == 2  # a and b; c failed in the new version
        uk = services.index("uk")
        assert uk.build_schema == build_schema_name(uk.schema)
        assert uk.build_missing() == 1
        meta = versions.meta(services)
        assert meta["model"] == DEFAULT_MODEL_NAME
        assert meta["build.model"] == new.embedding.model_name
        # Search, configured for the new model, still reads the live version with its own model.
        assert search(new, versions, embedder, "travel expenses") == before
        with make_reader(new, versions.redactor, embedder) as reader:
            assert reader.live_model("uk") == (DEFAULT_MODEL_NAME, 384)
        # The reader role cannot read the version being built.
        with make_reader(new, versions.redactor, embedder) as reader:
            pool = reader.catalog.index("uk").pool
            with pool.connection() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT count(*) FROM {uk.build_schema}.chunks")
    finally:
        services.close()


def test_deletions_and_access_changes_reach_the_live_version_during_a_build(
    versions: Versions, embedder: Embedder
) -> None:
    new = versions.config(model_path=versions.other_model)
    versions.run(new, FailingOn(embedder, versions.other_model, poison="charlie"))[0].close()
    (versions.folder / "share" / "b.txt").unlink()
    versions.access = ["group:managers"]
    new = versions.config(model_path=versions.other_model)
    services, _ = versions.run(new, FailingOn(embedder, versions.other_model, poison="charlie"))
    try:
        assert services.index("uk").build_schema is not None  # c still fails: no switch
        # b left the live version at once; c, only in the live version, has its new access.
        assert versions.live_docs(services) == {"a.txt": ["group:managers"], "c.txt": ["group:managers"]}
        assert search(new, versions, embedder, "laptops and security") == []  # staff may no longer read it
    finally:
        services.close()


def test_a_completed_build_switches_and_search_follows(versions: Versions, embedder: Embedder) -> None:
    new = versions.config(model_path=versions.other_model)
    with make_reader(new, versions.redactor, embedder) as reader:
        retriever = reader
        assert retriever.search(STAFF, "travel expenses", 3).results  # live model read and cached
        first, embedded = versions.run(new, FailingOn(embedder, versions.other_model, poison="charlie"))
        first.close()
        assert embedded == 2
        services, embedded = versions.run(new, FailingOn(embedder, versions.other_model))
        try:
            assert embedded == 1  # only c: a and b are already in the new version
            assert services.index("uk").build_schema is None
            assert versions.meta(services)["model"] == new.embedding.model_name
            assert not any(k.startswith("build.") for k in versions.meta(services))
            assert versions.schemas() == {services.index("uk").schema}
            # The retriever made before the switch notices it and embeds with the new live model.
            after = retriever.search(STAFF, "travel expenses", 3).results
            assert retriever.live_model("uk")[0] == new.embedding.model_name
            assert after[0].source_uri.endswith("/b.txt")
        finally:
            services.close()


def test_the_switch_waits_for_searches_in_flight(versions: Versions, embedder: Embedder) -> None:
    new = versions.config(model_path=versions.other_model)
    first, _ = versions.run(new, FailingOn(embedder, versions.other_model, poison="charlie"))
    first.close()
    services = Services(new, redactor=versions.redactor, embedder=FailingOn(embedder, versions.other_model))
    try:
        schema = services.index("uk").schema
        done = threading.Event()
        with psycopg.connect(versions.url) as search_conn:
            # What a search transaction holds while it reads.
            search_conn.execute(
                "SELECT pg_advisory_xact_lock_shared(hashtext(%s))", (version_lock_key(schema),)
            )
            worker = threading.Thread(target=lambda: (run_all(services), done.set()))
            worker.start()
            time.sleep(3)
            assert not done.is_set()  # the switch waits for the search
            assert versions.meta(services)["model"] == DEFAULT_MODEL_NAME
            search_conn.commit()
        worker.join(timeout=60)
        assert done.is_set()
        assert versions.meta(services)["model"] == new.embedding.model_name
    finally:
        services.close()


def test_forget_during_a_build_erases_both_versions(versions: Versions, embedder: Embedder) -> None:
    from indexes.erasure import forget

    new = versions.config(model_path=versions.other_model)
    services, _ = versions.run(new, FailingOn(embedder, versions.other_model, poison="charlie"))
    try:
        uk = services.index("uk")
        assert uk.build_schema is not None
        report = forget(
            services.catalog,
            by="steward",
            source_uri=(versions.folder / "share" / "a.txt").resolve().as_uri(),
        )
        assert report.total == 1
        with psycopg.connect(versions.url) as conn:
            for schema in (uk.schema, uk.build_schema):
                texts = conn.execute(f"SELECT text FROM {schema}.chunks").fetchall()
                assert texts and not any("alpha" in t.lower() for (t,) in texts)
    finally:
        services.close()
