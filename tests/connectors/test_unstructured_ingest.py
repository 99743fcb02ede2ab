"""The unstructured connector, running unstructured-ingest's own sources: its local source (listing,
versions, lazy fetch, a missing folder), its postgres source against a closed port (an unreachable
source, with a secret in the environment that must never show), secrets refused in the file, and an
ingest through the command line in which changes and deletions reach the index on the next run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from connectors import build_connector
from connectors.uningest import UnstructuredIngestConnector, UnstructuredSettings, _grants
from groundwork.errors import ConfigError, ConnectorError
from groundwork.settings import load_config
from tests.conftest import DEMO, write_config
from tests.connectors.cli_support import cli_ingest, free_port, index_rows

SECRET = "s3cr3t-" + "Uq5nVb8Rt2"


def _connector(folder: Path, name: str = "docs", **indexer: Any) -> UnstructuredIngestConnector:
    settings = UnstructuredSettings(
        connector="unstructured",
        source="local",
        indexer={"input_path": str(folder), "recursive": True, **indexer},
    )
    return UnstructuredIngestConnector(name, settings)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "policies").mkdir(parents=True)
    (root / "a.md").write_bytes(b"# Leave\n\nTwenty-five days.\n")
    (root / "policies" / "b.txt").write_bytes(b"Remote working is allowed.\n")
    (root / "policies" / "c.html").write_bytes(b"<p>Expenses within 30 days.</p>")
    return root


def test_registered_and_configured_from_the_file(tmp_path: Path, folder: Path) -> None:
    source = {
        "name": "docs",
        "connector": "unstructured",
        "source": "local",
        "indexer": {"input_path": str(folder), "recursive": True},
        "residency": "eu",
        "contract": "none",
        "access": ["group:staff"],
    }
    config = load_config(write_config(tmp_path / "g.yaml", {"sources": [source]}))
    connector = build_connector(config.sources[0])
    assert isinstance(connector, UnstructuredIngestConnector)
    assert connector.settings.source == "local" and connector.settings.indexer["recursive"] is True


def test_lists_every_file_with_its_relative_path_and_metadata(folder: Path) -> None:
    refs = {r.source_id: r for r in _connector(folder).list()}
    assert sorted(refs) == ["a.md", "policies/b.txt", "policies/c.html"]
    b = refs["policies/b.txt"]
    assert b.source == "docs" and b.filename == "b.txt" and b.size_bytes == 27
    assert b.uri == (folder / "policies" / "b.txt").resolve().as_uri()
    assert b.version.startswith("modified:") and b.modified_at is not None
    assert b.permissions is None  # the local source reports a file mode, which is no grant
    # Not recursive: only the top level.
    assert [r.source_id for r in _connector(folder, recursive=False).list()] == ["a.md"]


def test_versions_follow_the_files(folder: Path) -> None:
    before = {r.source_id: r.version for r in _connector(folder).list()}
    assert {r.source_id: r.version for r in _connector(folder).list()} == before  # stable re-listing
    target = folder / "policies" / "b.txt"
    target.write_bytes(b"Remote working needs a manager's approval.\n")
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    after = {r.source_id: r.version for r in _connector(folder).list()}
    assert after["policies/b.txt"] != before["policies/b.txt"]
    assert after["a.md"] == before["a.md"] and after["policies/c.html"] == before["policies/c.html"]


def test_fetch_returns_the_bytes_and_leaves_the_source_and_no_temporary_files(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    connector = _connector(folder)
    refs = {r.source_id: r for r in connector.list()}
    assert connector.fetch(refs["policies/c.html"]) == b"<p>Expenses within 30 days.</p>"
    assert (folder / "policies" / "c.html").exists()  # the local downloader points at the original
    assert list(scratch.iterdir()) == []
    (folder / "a.md").unlink()
    with pytest.raises(ConnectorError, match=r"source 'docs' .*'a.md' no longer exists"):
        connector.fetch(refs["a.md"])


def test_a_missing_folder_is_an_error_naming_the_source(tmp_path: Path) -> None:
    with pytest.raises(ConnectorError, match=r"source 'hr' \(unstructured-ingest 'local'\): the folder") as e:
        list(_connector(tmp_path / "gone", name="hr").list())
    assert "listed again on the next run" in str(e.value)


def test_an_unknown_source_or_bad_config_is_a_clear_error(folder: Path) -> None:
    bad = UnstructuredSettings(connector="unstructured", source="nosuch")
    with pytest.raises(ConnectorError, match=r"source 'x' .*has no source of that name; it has .*local"):
        list(UnstructuredIngestConnector("x", bad).list())
    wrong = UnstructuredSettings(connector="unstructured", source="local", indexer={"recursive": True})
    with pytest.raises(ConnectorError, match=r"invalid config: indexer.input_path: Field required"):
        list(UnstructuredIngestConnector("x", wrong).list())


def test_an_unreachable_source_is_a_transient_error_that_never_shows_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """unstructured-ingest's postgres source (psycopg2), pointed at a closed port on 127.0.0.1."""
    settings = UnstructuredSettings(
        connector="unstructured",
        source="postgres",
        connection={"host": "127.0.0.1", "port": free_port(), "database": "x", "username": "u"},
        indexer={"table_name": "docs", "id_column": "id"},
        secrets_env={"password": "GW_TEST_PG_PASSWORD"},
    )
    connector = UnstructuredIngestConnector("db", settings)
    with pytest.raises(ConnectorError, match=r"GW_TEST_PG_PASSWORD named in secrets_env are not set"):
        list(connector.list())
    monkeypatch.setenv("GW_TEST_PG_PASSWORD", SECRET)
    with pytest.raises(ConnectorError) as e:
        list(connector.list())
    message = str(e.value)
    assert message.startswith("source 'db' (unstructured-ingest 'postgres'): cannot list the source")
    assert "SourceConnectionError" in message and "transient failure" in message
    assert "GW_TEST_PG_PASSWORD" in message and SECRET not in message
    unknown = settings.model_copy(update={"secrets_env": {"api_token": "GW_TEST_PG_PASSWORD"}})
    with pytest.raises(ConnectorError, match=r"secrets_env names api_token, which .* it has password"):
        list(UnstructuredIngestConnector("db", unknown).list())


def test_a_source_that_lists_batches_of_records_is_refused(tmp_path: Path) -> None:
    """unstructured-ingest's sqlite source yields batches of rows, not documents."""
    import sqlite3

    with sqlite3.connect(tmp_path / "t.db") as db:
        db.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, text TEXT)")
        db.execute("INSERT INTO docs VALUES (1, 'a'), (2, 'b')")
    settings = UnstructuredSettings(
        connector="unstructured",
        source="sqlite",
        connection={"database_path": str(tmp_path / "t.db")},
        indexer={"table_name": "docs", "id_column": "id"},
    )
    with pytest.raises(ConnectorError, match=r"source 'db' .*lists batches of records.*sql connector"):
        list(UnstructuredIngestConnector("db", settings).list())


@pytest.mark.parametrize(
    ("part", "entry"),
    [
        ("connection.password", {"connection": {"password": SECRET}}),
        ("indexer.api_token", {"indexer": {"input_path": "/x", "api_token": SECRET}}),
        ("downloader.auth.client_secret", {"downloader": {"auth": {"client_secret": SECRET}}}),
        ("connection.key", {"connection": {"key": SECRET}}),
    ],
)
def test_secrets_in_the_file_are_refused_without_echoing_them(
    tmp_path: Path, part: str, entry: dict[str, Any]
) -> None:
    source = {
        "name": "docs",
        "connector": "unstructured",
        "source": "local",
        "residency": "eu",
        "contract": "none",
        **entry,
    }
    path = write_config(tmp_path / "g.yaml", {"sources": [{**source, "access": ["public"]}]})
    with pytest.raises(
        ConfigError, match=rf"secrets never go in the configuration file \(found {part}\)"
    ) as e:
        load_config(path)
    assert SECRET not in str(e.value)


def test_a_secret_given_as_a_variable_name_is_refused_without_echo(tmp_path: Path) -> None:
    source = {"name": "docs", "connector": "unstructured", "source": "s3", "residency": "eu"}
    source |= {"access": ["public"], "secrets_env": {"secret": SECRET}}
    with pytest.raises(
        ConfigError, match="secrets_env maps access-config fields to environment variable"
    ) as e:
        load_config(write_config(tmp_path / "g.yaml", {"sources": [source]}))
    assert SECRET not in str(e.value)


def test_read_permissions_become_grants() -> None:
    """The normalised shape unstructured-ingest's SharePoint, OneDrive, Drive and Confluence report."""
    data = [
        {"read": {"users": ["u-2", "u-1"], "groups": ["g-1"]}},
        {"update": {"users": ["u-1"], "groups": []}},
        {"delete": {"users": [], "groups": []}},
    ]
    assert _grants(data) == ("group:g-1", "principal:u-1", "principal:u-2")
    assert _grants([{"read": {"users": [], "groups": []}}]) == ()
    assert _grants([{"mode": 33188}]) is None and _grants(None) is None


def test_the_module_needs_no_unstructured_ingest_to_import() -> None:
    code = "import sys, connectors.uningest; assert 'unstructured_ingest' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


# --- The command line: ingest, then changes and deletions in the folder reach the index --------------

DOCS = ["annual-leave.md", "remote-working.txt", "expenses.html"]


def test_cli_ingest_follows_changes_and_deletions_in_the_folder(database_url: str, tmp_path: Path) -> None:
    corpus = DEMO / "corpus" / "handbook"
    root = tmp_path / "share" / "handbook"
    root.mkdir(parents=True)
    for name in DOCS:
        shutil.copyfile(corpus / name, root / name)
    (tmp_path / "dagster_home").mkdir()
    (tmp_path / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    source = {
        "name": "docs",
        "connector": "unstructured",
        "source": "local",
        "indexer": {"input_path": str(root), "recursive": True},
        "residency": "eu",
        "contract": "none",
        "access": ["group:staff"],
    }
    config = {"sources": [source], "database": {"url": database_url}, "state_dir": str(tmp_path / "state")}
    write_config(tmp_path / "groundwork.yaml", config)

    first = cli_ingest(tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "listed: new=3 changed=0 unchanged=0" in first.stdout
    assert "index/eu: wrote 3 documents" in first.stdout
    before = index_rows(database_url)
    assert sorted(before) == sorted(DOCS)

    # One file deleted, one changed (a later modification time), one left alone.
    (root / "expenses.html").unlink()
    changed = root / "remote-working.txt"
    changed.write_bytes(
        (corpus / "remote-working.txt").read_bytes() + b"\n\nHot desks are booked a week ahead.\n"
    )
    stat = changed.stat()
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))

    second = cli_ingest(tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "listed: new=0 changed=1 unchanged=1 retag=0 move=0 rename=0 deleted=1" in second.stdout
    after = index_rows(database_url)
    assert sorted(after) == ["annual-leave.md", "remote-working.txt"]
    remote = after["remote-working.txt"]
    assert remote[0] == f"modified:{changed.stat().st_mtime}"
    assert any("Hot desks are booked a week ahead." in text for text in remote[3])
    # Only the changed document was embedded again; the untouched one's rows were not even rewritten.
    assert f"embeddings computed: {len(remote[2])}\n" in second.stdout
    assert after["annual-leave.md"] == before["annual-leave.md"]

    # The folder goes away: the run reports the source, and nothing is deleted.
    shutil.move(root, tmp_path / "elsewhere")
    third = cli_ingest(tmp_path)
    assert third.returncode == 3, third.stderr[-3000:]  # the run succeeded; a source was not listed
    assert "source docs could not be listed" in third.stderr and "does not exist" in third.stderr
    assert "source docs NOT LISTED (nothing of it changed)" in third.stdout
    assert "deleted=0" in third.stdout
    assert index_rows(database_url) == after
