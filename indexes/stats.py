"""What a region's live index holds, in numbers, for the API's ``/metrics``: documents, chunks,
failed documents and the time of the last write, read through one SECURITY DEFINER function
(``index_stats()``) that the reader role may call: counts only, never a row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg import sql

from indexes.catalog import IndexCatalog
from indexes.pooling import connection


@dataclass(frozen=True, slots=True)
class IndexStats:
    """One region's live index in numbers."""

    documents: int
    chunks: int
    failed: int
    last_ingest: datetime | None


def index_stats(catalog: IndexCatalog, region: str) -> IndexStats:
    """The numbers of ``region``'s live index (raises what the connection raises when it is down)."""
    index = catalog.index(region)
    with connection(index.pool) as conn:
        row = conn.execute(
            sql.SQL("SELECT documents, chunks, failed, last_ingest FROM {}.index_stats()").format(
                sql.Identifier(index.schema)
            )
        ).fetchone()
    assert row is not None  # a function with OUT parameters returns one row
    return IndexStats(int(row[0]), int(row[1]), int(row[2]), row[3])
