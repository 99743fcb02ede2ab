"""One ingest at a time per region: a second run (command line beside a scheduled one) stops with a
clear message before changing anything; backfill shard steps share the lock among themselves."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from cli.main import main
from groundwork.errors import IngestBusy
from indexes.locks import run_lock_key
from orchestration.local import run_all
from orchestration.services import Services
from pipelines.embedding import Embedder
from pipelines.redact import Redactor
from tests.conftest import demo_config_on


def test_a_second_ingest_stops_while_one_holds_a_region(
    demo_copy: Path,
    database_url: str,
    redactor: Redactor,
    embedder: Embedder,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = demo_config_on(demo_copy, database_url)
    with Services(config, redactor=redactor, embedder=embedder) as services:
        services.migrate()
        uk = services.targets["uk"]
        # Another ingest run holds the UK region.
        with psycopg.connect(uk.writer_dsn, autocommit=True) as other:
            other.execute("SELECT pg_advisory_lock(hashtext(%s))", (run_lock_key(uk.schema),))
            with pytest.raises(IngestBusy, match="another ingest run is writing region 'uk'"):
                run_all(services)
            assert main(["ingest", "--config", str(demo_copy)]) == 2
            assert "another ingest run is writing region 'uk'" in capsys.readouterr().err
            assert services.index("uk").counts().documents == 0
            assert services.index("eu").counts().documents == 0  # all regions or none
        plan, reports = run_all(services)  # the other run finished: this one proceeds
    written = sum(r.documents_written for r in reports)
    failed = sum(len(r.failures) for r in reports)
    assert written > 0 and written + failed == len(plan.tasks)


def test_backfill_steps_share_the_lock_but_exclude_an_ingest(demo_services: Services) -> None:
    demo_services.migrate()
    catalog = demo_services.catalog
    with catalog.run_lock(shared=True), catalog.run_lock(shared=True), pytest.raises(IngestBusy):
        catalog.run_lock().acquire()
    with catalog.run_lock(), pytest.raises(IngestBusy):
        catalog.run_lock(shared=True).acquire()


def test_a_released_lock_can_be_taken_again_at_once(demo_services: Services) -> None:
    # Released by closing its connection, a lock stayed held until the server process exited: a run
    # right after another (a test, a schedule) could stop as busy. Released explicitly, it never does.
    # (The race shows under load, as in a full CI run; on an idle machine the old release passed too.)
    demo_services.migrate()
    catalog = demo_services.catalog
    for _ in range(40):
        with catalog.run_lock():
            pass
        with catalog.run_lock(shared=True):
            pass
