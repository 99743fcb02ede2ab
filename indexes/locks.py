"""Ingest run locks: one advisory lock per region, held on its own connection for a whole run.

An ``ingest`` run holds every region's lock exclusively, so a command-line ingest never overlaps a
scheduled one. The shard steps of a backfill hold it shared: they run beside each other (each on
its own source's shard), never beside an ingest.
"""

from __future__ import annotations

import logging

import psycopg

from groundwork.errors import IngestBusy
from indexes.regions import RegionTarget

logger = logging.getLogger(__name__)


def run_lock_key(schema: str) -> str:
    """The advisory lock key of ingest runs over one region's index."""
    return f"groundwork-ingest:{schema}"


class RunLock:
    """Ingest run locks over ``targets``, connecting with ``dsn_of`` each region's target."""

    def __init__(
        self, targets: dict[str, RegionTarget], dsns: dict[str, str], *, shared: bool = False
    ) -> None:
        self.targets = targets
        self.dsns = dsns
        self.shared = shared
        self._held: list[tuple[psycopg.Connection, str]] = []

    def acquire(self) -> None:
        """Take every region's lock, or none: :class:`IngestBusy` when another run holds one."""
        function = "pg_try_advisory_lock_shared" if self.shared else "pg_try_advisory_lock"
        for region in sorted(self.targets):
            key = run_lock_key(self.targets[region].schema)
            conn = psycopg.connect(self.dsns[region], autocommit=True)
            row = conn.execute(f"SELECT {function}(hashtext(%s))", (key,)).fetchone()
            if not (row and row[0]):
                conn.close()
                self.release()
                raise IngestBusy(
                    f"another ingest run is writing region {region!r}; this run stopped before changing "
                    "anything: let that run finish, then run again"
                )
            self._held.append((conn, key))
        logger.debug("ingest run lock taken on %d region(s)", len(self._held))

    def release(self) -> None:
        """Release every lock this run holds, explicitly: a closed connection's server process lets its
        locks go only as it exits, a moment later, so the next run could find them still held."""
        function = "pg_advisory_unlock_shared" if self.shared else "pg_advisory_unlock"
        for conn, key in self._held:
            try:
                conn.execute(f"SELECT {function}(hashtext(%s))", (key,))
            except psycopg.Error:
                pass  # a broken connection: its server process's exit releases the lock
            finally:
                conn.close()
        self._held.clear()

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
