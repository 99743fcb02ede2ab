"""Migrating an index that is already up to date takes no table lock.

Every step of a Dagster run migrates first (in its own process), while other steps of the same run
may be writing: an up-to-date index must be left alone, or the DDL's exclusive locks deadlock with
those writes. ``groundwork migrate`` (``repair``) still runs every statement.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from groundwork.settings import load_config
from orchestration.services import Services
from tests.conftest import new_database, write_config


@pytest.fixture
def services(tmp_path: Path, pg_server) -> Iterator[Services]:
    (tmp_path / "docs").mkdir()
    source = {
        "name": "s",
        "connector": "filesystem",
        "path": "docs",
        "residency": "uk",
        "contract": "none",
        "access": ["group:g"],
    }
    config = load_config(
        write_config(tmp_path / "g.yaml", {"sources": [source], "database": {"url": new_database(pg_server)}})
    )
    with Services(config) as services:
        services.migrate()
        yield services


def _migrate_while_a_reader_holds_chunks(services: Services, *, repair: bool) -> tuple[bool, bool]:
    """(finished while the transaction was open, finished after it ended)."""
    target = services.targets["uk"]
    done = threading.Event()
    errors: list[BaseException] = []

    def migrate() -> None:
        try:
            services.migrate(repair=repair)
        except BaseException as exc:
            errors.append(exc)
        done.set()

    with psycopg.connect(target.owner_dsn) as conn:
        conn.execute(f"SELECT count(*) FROM {target.schema}.chunks").fetchone()  # ACCESS SHARE held
        thread = threading.Thread(target=migrate)
        thread.start()
        during = done.wait(timeout=20 if not repair else 3)
        conn.commit()
    after = done.wait(timeout=60)
    thread.join(timeout=5)
    assert not errors, errors
    return during, after


def test_an_up_to_date_index_is_migrated_without_waiting_for_transactions(services: Services) -> None:
    during, after = _migrate_while_a_reader_holds_chunks(services, repair=False)
    assert during and after


def test_repair_runs_every_statement_and_so_waits_for_them(services: Services) -> None:
    during, after = _migrate_while_a_reader_holds_chunks(services, repair=True)
    assert not during  # its DDL needed the lock the open transaction held
    assert after


def test_repair_recreates_what_was_dropped_by_hand(services: Services) -> None:
    target = services.targets["uk"]
    trigger = "SELECT count(*) FROM pg_trigger WHERE tgname = 'retrieval_audit_no_truncate'"
    with psycopg.connect(target.owner_dsn, autocommit=True) as conn:
        conn.execute(f"DROP TRIGGER retrieval_audit_no_truncate ON {target.schema}.retrieval_audit")
        services.migrate()
        assert conn.execute(trigger).fetchone() == (0,)  # the automatic path trusts its record
        services.migrate(repair=True)
        assert conn.execute(trigger).fetchone() == (1,)
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute(f"TRUNCATE {target.schema}.retrieval_audit")
