"""The sql connector against the tests' real embedded PostgreSQL: a source database with a table of
rows, read by a role that logs in with a password (scram, for this role only). Listing reads ids and
versions only, fetching one row by a bound id; errors name the source and never carry the password;
an unreachable database is a transient failure; through ``groundwork ingest``, an updated row is
re-indexed, a deleted one disappears and untouched ones are not re-embedded."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import make_url

from connectors import build_connector
from connectors.sql import SqlConnector, SqlSettings
from groundwork.enums import FailureReason
from groundwork.errors import ConfigError, ConnectorError, DocumentError
from groundwork.settings import load_config
from indexes.embedded import EmbeddedServer
from pipelines.partition import partition_document
from tests.conftest import new_database, write_config
from tests.connectors.cli_support import all_text, cli_ingest, files_under, free_port, index_rows

#: The reader role's password: it must never show up in an error, a log, a table or Dagster's files.
SECRET = "pw-" + "Hq8rT2mVx6Lk"
ROLE = "gw_sql_reader"
ENV = "GW_TEST_KB_URL"

ROWS = [
    (1, "Annual leave", "Every employee receives 25 days of paid annual leave per year.", "hr,staff"),
    (2, "Expenses", "The daily meal allowance is EUR 45 when travelling on company business.", "staff"),
    (10, "Remote working", "Staff may work from home up to three days a week.", "staff,nobody"),
]
T0 = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def reader_role(pg_server: EmbeddedServer) -> Iterator[str]:
    """A login role that must give its password (scram), on the session's server, for this module."""
    hba = pg_server.data_dir / "pg_hba.conf"
    before = hba.read_text()
    hba.write_text(f"local all {ROLE} scram-sha-256\n" + before)
    with psycopg.connect(pg_server.dsn("postgres"), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone() is None:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(ROLE), sql.Literal(SECRET))
            )
        conn.execute("SELECT pg_reload_conf()")
    yield ROLE
    hba.write_text(before)
    with psycopg.connect(pg_server.dsn("postgres"), autocommit=True) as conn:
        conn.execute("SELECT pg_reload_conf()")


@pytest.fixture
def source_db(pg_server: EmbeddedServer, reader_role: str) -> str:
    """A throwaway source database with ``support.articles`` (readable by the reader role); its DSN."""
    dsn = new_database(pg_server)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE SCHEMA support; CREATE TABLE support.articles (id integer PRIMARY KEY, title text,"
            " body text, notes text, updated_at timestamptz, readers text)"
        )
        for i, (id_, title, body, readers) in enumerate(ROWS):
            conn.execute(
                "INSERT INTO support.articles VALUES (%s, %s, %s, NULL, %s, %s)",
                (id_, title, body, T0 + timedelta(minutes=i), readers),
            )
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA support TO {}").format(sql.Identifier(reader_role)))
        conn.execute(
            sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA support TO {}").format(sql.Identifier(reader_role))
        )
    return dsn


def _role_url(dsn: str, password: str | None = SECRET) -> str:
    """``dsn`` as the reader role, with ``password`` (psycopg 3 through SQLAlchemy)."""
    url = make_url(dsn).set(drivername="postgresql+psycopg", username=ROLE, password=password)
    return url.render_as_string(hide_password=False)


def _connector(monkeypatch: pytest.MonkeyPatch, url: str, **settings: Any) -> SqlConnector:
    monkeypatch.setenv(ENV, url)
    base: dict[str, Any] = {
        "connector": "sql",
        "url_env": ENV,
        "table": "support.articles",
        "id_column": "id",
        "text_columns": ["body"],
        "title_column": "title",
        "updated_at_column": "updated_at",
        "readers_column": "readers",
        "reader_groups": {"hr": ["group:hr"], "staff": ["group:staff", "group:all-staff"]},
    }
    return SqlConnector("kb", SqlSettings.model_validate({**base, **settings}))


def _exec(dsn: str, statement: str, *params: Any) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statement, params)


def _id_digest(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()[:16]


def test_registered_and_configured_from_the_file(tmp_path: Path) -> None:
    source = {
        "name": "kb",
        "connector": "sql",
        "url": "postgresql+psycopg://reader@db.internal:5432/crm",
        "password_env": "CRM_DB_PASSWORD",
        "query": "SELECT id, subject, body, changed FROM tickets WHERE NOT draft;",
        "id_column": "id",
        "text_columns": ["subject", "body"],
        "updated_at_column": "changed",
        "residency": "uk",
        "contract": "none",
        "access": ["group:support"],
    }
    config = load_config(write_config(tmp_path / "g.yaml", {"sources": [source]}))
    connector = build_connector(config.sources[0])
    assert isinstance(connector, SqlConnector)
    assert connector.settings.query == "SELECT id, subject, body, changed FROM tickets WHERE NOT draft"
    assert config.sources[0].access == ["group:support"]  # the policy stays apart from the connector


def test_listing_reads_ids_versions_and_readers_only(
    source_db: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # body is computed by a division by zero for every row: reading it at all fails the statement.
    query = "SELECT id, title, (1 / (id - id))::text AS body, updated_at, readers FROM support.articles"
    conn = _connector(monkeypatch, _role_url(source_db), table=None, query=query)
    refs = list(conn.list())
    assert [r.source_id for r in refs] == ["1", "2", "10"]  # in id order, integers as their digits
    first = refs[0]
    assert first.version == f"updated_at:2026-11-01T09:30:00+00:00@{_id_digest('1')}"
    assert first.modified_at == T0 and first.uri == "sql://kb/1" and first.source == "kb"
    assert first.filename == "1.md" and first.extra["id_type"] == "int"
    assert [r.permissions for r in refs] == [
        ("group:all-staff", "group:hr", "group:staff"),
        ("group:all-staff", "group:staff"),
        ("group:all-staff", "group:staff"),  # "nobody" has no reader_groups entry: no grant
    ]
    assert "1 reader names have no reader_groups entry" in caplog.text
    with pytest.raises(ConnectorError, match=r"source 'kb': cannot read row '1' from .*division by zero"):
        conn.fetch(first)


def test_fetch_reads_one_row_as_markdown(source_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = _connector(monkeypatch, _role_url(source_db))
    refs = {r.source_id: r for r in conn.list()}
    assert conn.fetch(refs["2"]) == (
        b"# Expenses\n\nThe daily meal allowance is EUR 45 when travelling on company business.\n"
    )
    two = _connector(monkeypatch, _role_url(source_db), text_columns=["body", "notes"])
    _exec(source_db, "UPDATE support.articles SET notes = 'Keep receipts.' WHERE id = 1")
    ref = next(iter(two.list()))
    text = two.fetch(ref).decode()
    assert text == (
        "# Annual leave\n\n## body\n\nEvery employee receives 25 days of paid annual leave per year.\n\n"
        "## notes\n\nKeep receipts.\n"
    )
    elements, _ = partition_document(ref, text.encode())
    assert [e.text for e in elements][:2] == ["Annual leave", "body"]


def test_changed_and_deleted_rows_follow_in_versions_and_fetches(
    source_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = _connector(monkeypatch, _role_url(source_db))
    before = {r.source_id: r for r in conn.list()}
    _exec(
        source_db,
        "UPDATE support.articles SET body = 'Meals: EUR 50 a day.', updated_at = %s WHERE id = 2",
        T0.replace(hour=12),
    )
    _exec(source_db, "DELETE FROM support.articles WHERE id = 10")
    after = {r.source_id: r for r in conn.list()}
    assert sorted(after) == ["1", "2"]
    assert after["1"].version == before["1"].version
    assert after["2"].version == f"updated_at:2026-11-01T12:30:00+00:00@{_id_digest('2')}"
    assert conn.fetch(after["2"]) == b"# Expenses\n\nMeals: EUR 50 a day.\n"
    # A reference listed before the row changed never returns the new text under the old version.
    with pytest.raises(ConnectorError, match=r"source 'kb': row '2' changed since it was listed"):
        conn.fetch(before["2"])
    with pytest.raises(ConnectorError, match=r"source 'kb': row '10' no longer exists in postgresql"):
        conn.fetch(before["10"])


def test_without_updated_at_the_version_is_a_digest_of_the_row(
    source_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = _connector(monkeypatch, _role_url(source_db), updated_at_column=None)
    before = {r.source_id: r for r in conn.list()}
    data = conn.fetch(before["1"])
    assert before["1"].version == "sha256:" + hashlib.sha256(data).hexdigest()
    assert before["1"].size_bytes == len(data) and before["1"].modified_at is None
    _exec(source_db, "UPDATE support.articles SET body = body || ' Unused days lapse.' WHERE id = 1")
    _exec(source_db, "UPDATE support.articles SET updated_at = now() WHERE id = 2")  # text unchanged
    after = {r.source_id: r for r in conn.list()}
    assert after["1"].version != before["1"].version
    assert after["2"].version == before["2"].version
    with pytest.raises(ConnectorError, match="changed since it was listed"):
        conn.fetch(before["1"])


def test_a_row_without_updated_at_gets_a_digest_of_its_text(
    source_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _exec(source_db, "UPDATE support.articles SET updated_at = NULL WHERE id = 2")
    conn = _connector(monkeypatch, _role_url(source_db))
    refs = {r.source_id: r for r in conn.list()}
    data = conn.fetch(refs["2"])
    assert (
        data.startswith(b"# Expenses") and refs["2"].version == "sha256:" + hashlib.sha256(data).hexdigest()
    )
    assert refs["1"].version.startswith("updated_at:") and refs["2"].modified_at is None
    _exec(source_db, "UPDATE support.articles SET body = 'Meals: EUR 50.' WHERE id = 2")
    assert {r.source_id: r for r in conn.list()}["2"].version != refs["2"].version


def test_uuid_and_text_ids_are_rendered_stably_and_fetched_by_a_bound_value(
    source_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = uuid.UUID("7d3f1b0e-8a6c-4c1e-9f2a-0b5d6e7f8a9b")
    _exec(
        source_db,
        "CREATE TABLE support.notes (id uuid PRIMARY KEY, slug text UNIQUE, body text, at timestamptz);"
        " GRANT SELECT ON support.notes TO gw_sql_reader",
    )
    hostile = "x'); DELETE FROM support.notes; --"
    _exec(source_db, "INSERT INTO support.notes VALUES (%s, %s, 'Hello.', %s)", key, hostile, T0)
    by_uuid = _connector(
        monkeypatch, _role_url(source_db), table="support.notes", text_columns=["body"],
        title_column=None, updated_at_column="at", readers_column=None, reader_groups={},
    )  # fmt: skip
    [ref] = by_uuid.list()
    assert ref.source_id == str(key) and ref.extra["id_type"] == "uuid" and ref.permissions is None
    assert by_uuid.fetch(ref) == b"Hello.\n"
    by_slug = _connector(
        monkeypatch, _role_url(source_db), table="support.notes", id_column="slug", text_columns=["body"],
        title_column=None, updated_at_column="at", readers_column=None, reader_groups={},
    )  # fmt: skip
    [ref] = by_slug.list()
    assert ref.source_id == hostile and ref.filename.endswith(".md") and "/" not in ref.filename
    assert by_slug.fetch(ref) == b"Hello.\n"
    assert len(list(by_uuid.list())) == 1  # the id went in as a value, never as SQL


def test_a_row_with_empty_text_is_refused_by_partitioning(
    source_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _exec(source_db, "INSERT INTO support.articles VALUES (5, 'Blank', '  ', NULL, %s, NULL)", T0)
    conn = _connector(monkeypatch, _role_url(source_db), text_columns=["body", "notes"])
    ref = {r.source_id: r for r in conn.list()}["5"]
    assert ref.permissions == ()  # NULL readers: the source names nobody
    assert conn.fetch(ref) == b""  # a title alone is no text
    with pytest.raises(DocumentError) as refused:
        partition_document(ref, conn.fetch(ref))
    assert refused.value.reason == FailureReason.EMPTY


def test_a_wrong_password_is_a_clear_error_without_the_password(
    source_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = SECRET + "-wrong"
    conn = _connector(monkeypatch, _role_url(source_db, password=wrong), max_attempts=3)
    with pytest.raises(ConnectorError) as refused:
        list(conn.list())
    shown = str(refused.value)
    assert shown.startswith("source 'kb': cannot list postgresql database 't_")
    assert f'the database refused the credentials (password authentication failed for user "{ROLE}")' in shown
    assert wrong not in shown and SECRET not in shown
    # The password may come from its own variable, beside a URL without one.
    monkeypatch.setenv("GW_TEST_KB_PASSWORD", SECRET)
    split = _connector(monkeypatch, _role_url(source_db, password=None), password_env="GW_TEST_KB_PASSWORD")
    assert len(list(split.list())) == 3
    monkeypatch.delenv("GW_TEST_KB_PASSWORD")
    with pytest.raises(ConnectorError, match=r"variable GW_TEST_KB_PASSWORD \(named in the source\)"):
        list(_connector(monkeypatch, _role_url(source_db, None), password_env="GW_TEST_KB_PASSWORD").list())


class _Hangup:
    """A TCP server on 127.0.0.1 that accepts connections and closes them at once, counting them."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                peer, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            peer.close()


def test_an_unreachable_database_is_a_transient_error_after_every_attempt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refused = f"postgresql+psycopg://{ROLE}:{SECRET}@127.0.0.1:{free_port()}/kb"
    conn = _connector(monkeypatch, refused, max_attempts=2, backoff_seconds=0)
    with pytest.raises(
        ConnectorError,
        match=r"source 'kb': cannot list postgresql database 'kb' at 127.0.0.1:\d+: unreachable after 2 "
        r"attempts \(Connection refused\), a transient failure; the source is left as it is",
    ) as e:
        list(conn.list())
    assert SECRET not in str(e.value)
    assert conn.change_token() is None  # unknown: a sensor starts a run, which reports the error
    server = _Hangup()
    try:
        url = f"postgresql+psycopg://{ROLE}:{SECRET}@127.0.0.1:{server.port}/kb?sslmode=disable&gssencmode=disable"
        hung = _connector(monkeypatch, url, max_attempts=3, backoff_seconds=0.01)
        with pytest.raises(ConnectorError, match=r"unreachable after 3 attempts .*transient") as e:
            list(hung.list())
    finally:
        server.sock.close()
    assert server.accepted == 3 and SECRET not in str(e.value)


def test_statements_are_read_only_and_time_limited(source_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _exec(source_db, f"CREATE SEQUENCE support.hits; GRANT USAGE ON support.hits TO {ROLE}")
    writes = "SELECT id, body, updated_at FROM support.articles WHERE nextval('support.hits') > 0"
    conn = _connector(monkeypatch, _role_url(source_db), table=None, query=writes, title_column=None,
                      readers_column=None, reader_groups={})  # fmt: skip
    with pytest.raises(
        ConnectorError, match=r"cannot execute nextval\(\) in a read-only transaction \[25006\]"
    ):
        list(conn.list())
    slow = "SELECT id, body, updated_at FROM support.articles, pg_sleep(3)"
    conn = _connector(monkeypatch, _role_url(source_db), table=None, query=slow, title_column=None,
                      readers_column=None, reader_groups={}, timeout_seconds=1)  # fmt: skip
    with pytest.raises(ConnectorError, match=r"canceling statement due to statement timeout \[57014\]"):
        list(conn.list())
    with psycopg.connect(source_db) as c:
        assert c.execute("SELECT is_called FROM support.hits").fetchone() == (False,)


def test_a_repeated_id_is_an_error_not_a_guess(source_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    query = "SELECT 1 AS id, body, updated_at FROM support.articles"
    conn = _connector(monkeypatch, _role_url(source_db), table=None, query=query, title_column=None,
                      readers_column=None, reader_groups={})  # fmt: skip
    with pytest.raises(ConnectorError, match=r"id_column 'id' is not unique: '1' twice"):
        list(conn.list())


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"password": SECRET}, r"secrets never go in the configuration file \(found password\)"),
        ({"db_secret": SECRET}, r"secrets never go in the configuration file \(found db_secret\)"),
        ({"url": f"postgresql://reader:{SECRET}@db/crm", "url_env": None}, "must not hold a password"),
        (
            {"url": f"postgresql://reader@db/crm?password={SECRET}", "url_env": None},
            "must not hold a password",
        ),
        ({"url_env": None}, "give exactly one of url"),
        ({"query": "DELETE FROM support.articles", "table": None}, "must be a SELECT"),
        ({"query": "SELECT id, body FROM t WHERE at > :since", "table": None}, "holds a bind parameter"),
    ],
)
def test_bad_settings_are_refused_without_echoing_secrets(
    tmp_path: Path, entry: dict[str, Any], message: str
) -> None:
    source = {
        "name": "kb",
        "connector": "sql",
        "url_env": ENV,
        "table": "support.articles",
        "id_column": "id",
        "text_columns": ["body"],
        "residency": "uk",
        "contract": "none",
        "access": ["public"],
    }
    data = {k: v for k, v in {**source, **entry}.items() if v is not None}
    with pytest.raises(ConfigError, match=message) as e:
        load_config(write_config(tmp_path / "g.yaml", {"sources": [data]}))
    assert SECRET not in str(e.value)


def test_any_sqlalchemy_url_serves_here_sqlite(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "notes.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (id integer PRIMARY KEY, body text, at text)")
        db.execute("INSERT INTO notes VALUES (1, 'Hello.', '2026-11-01 10:00:00'), (2, 'World.', NULL)")
    settings = SqlSettings(
        connector="sql", url=f"sqlite:///{path}", table="notes", id_column="id", text_columns=["body"],
        updated_at_column="at",
    )  # fmt: skip
    conn = SqlConnector("notes", settings)
    one, two = conn.list()
    assert one.version == f"updated_at:2026-11-01 10:00:00@{_id_digest('1')}"
    assert two.version == "sha256:" + hashlib.sha256(b"World.\n").hexdigest()
    assert [conn.fetch(one), conn.fetch(two)] == [b"Hello.\n", b"World.\n"]


# --- The command line: ingest, then an update and a deletion in the table reach the index ----------


def test_cli_ingest_follows_updates_and_deletions_in_the_table(
    source_db: str, database_url: str, tmp_path: Path
) -> None:
    _exec(source_db, "INSERT INTO support.articles VALUES (7, 'Blank', '', NULL, %s, 'staff')", T0)
    (tmp_path / "dagster_home").mkdir()
    (tmp_path / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    source = {
        "name": "kb",
        "connector": "sql",
        "url_env": ENV,
        "table": "support.articles",
        "id_column": "id",
        "text_columns": ["body"],
        "title_column": "title",
        "updated_at_column": "updated_at",
        "readers_column": "readers",
        "reader_groups": {"staff": ["group:staff"]},
        "residency": "eu",
        "contract": "none",
        "access": ["group:staff"],
    }
    config = {"sources": [source], "database": {"url": database_url}, "state_dir": str(tmp_path / "state")}
    write_config(tmp_path / "groundwork.yaml", config)
    env = {ENV: _role_url(source_db)}

    first = cli_ingest(tmp_path, env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "listed: new=4 changed=0 unchanged=0" in first.stdout
    assert "index/eu: wrote 3 documents" in first.stdout
    before = index_rows(database_url)
    assert sorted(before) == ["1", "10", "2"]
    with psycopg.connect(database_url) as conn:
        failed = conn.execute("SELECT source_id, reason FROM groundwork_eu.ingest_failures").fetchall()
    assert failed == [("7", "empty")]  # recorded, not indexed

    # One row updated, one deleted, one left alone (and the empty one still empty).
    _exec(
        source_db,
        "UPDATE support.articles SET body = body || ' Hot desks are booked a week ahead.', updated_at = %s"
        " WHERE id = 10",
        T0.replace(day=2),
    )
    _exec(source_db, "DELETE FROM support.articles WHERE id = 2")

    second = cli_ingest(tmp_path, env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert (
        "listed: new=0 changed=1 unchanged=1 retag=0 move=0 rename=0 deleted=1 failed_before=1"
        in second.stdout
    )
    after = index_rows(database_url)
    assert sorted(after) == ["1", "10"]
    remote = after["10"]
    assert remote[0] == f"updated_at:2026-11-02T09:30:00+00:00@{_id_digest('10')}"
    assert any("Hot desks are booked a week ahead." in text for text in remote[3])
    # Only the updated row was embedded again; the untouched one's rows were not even rewritten.
    assert f"embeddings computed: {len(remote[2])}\n" in second.stdout
    assert after["1"] == before["1"]

    # The database goes away: the run reports the source, and nothing is deleted.
    unreachable = f"postgresql+psycopg://{ROLE}:{SECRET}@127.0.0.1:{free_port()}/kb"
    write_config(tmp_path / "groundwork.yaml", {**config, "sources": [{**source, "max_attempts": 2}]})
    third = cli_ingest(tmp_path, {ENV: unreachable})
    assert third.returncode == 3, third.stderr[-3000:]  # the run succeeded; a source was not listed
    assert "source kb could not be listed" in third.stderr and "unreachable after 2 attempts" in third.stderr
    assert "source kb NOT LISTED (nothing of it changed)" in third.stdout
    assert "deleted=0" in third.stdout
    assert index_rows(database_url) == after

    for run in (first, second, third):
        assert SECRET not in run.stdout + run.stderr
    assert SECRET not in all_text(database_url)
    assert not any(SECRET in p.read_text(errors="replace") for p in files_under(tmp_path / "dagster_home"))


def test_the_module_needs_no_sqlalchemy_to_import() -> None:
    code = "import sys, connectors.sql; assert 'sqlalchemy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
