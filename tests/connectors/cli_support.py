"""What the connectors' command-line tests share: running `groundwork ingest` in a child process,
reading back what a region's index holds, and free ports on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli_ingest(folder: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`groundwork ingest` on ``folder/groundwork.yaml`` with its own Dagster home in ``folder``."""
    full = {**os.environ, **(env or {}), "DAGSTER_HOME": str(folder / "dagster_home")}
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "ingest", "--config", str(folder / "groundwork.yaml")],
        env=full,
        capture_output=True,
        text=True,
        timeout=600,
    )


def index_rows(database_url: str) -> dict[str, tuple[str, str, list[str], list[str]]]:
    """The eu index: source id -> (version, the document row's xmin, its chunks' xmins, their texts).

    A row's xmin changes whenever it is written, so equal xmins show a document was left untouched.
    """
    out: dict[str, tuple[str, str, list[str], list[str]]] = {}
    with psycopg.connect(database_url) as conn:
        docs = conn.execute(
            "SELECT document_id, source_id, version, xmin::text FROM groundwork_eu.documents"
        ).fetchall()
        for doc_id, source_id, version, xmin in docs:
            chunks = conn.execute(
                "SELECT xmin::text, text FROM groundwork_eu.chunks WHERE document_id = %s ORDER BY seq",
                (doc_id,),
            ).fetchall()
            out[source_id] = (version, xmin, [c[0] for c in chunks], [c[1] for c in chunks])
    return out


def all_text(database_url: str) -> str:
    """Every row of every Groundwork table of the test database, as text."""
    with psycopg.connect(database_url) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
            " AND table_schema LIKE 'groundwork%'"
        ).fetchall()
        return "\n".join(
            str(row)
            for schema, table in tables
            for row in conn.execute(
                sql.SQL("SELECT t::text FROM {}.{} t").format(sql.Identifier(schema), sql.Identifier(table))
            )
        )


def files_under(folder: Path) -> Iterator[Path]:
    """Every file below ``folder`` (a Dagster home, to search for secrets)."""
    return (p for p in folder.rglob("*") if p.is_file())
