"""Connections from a pool, with transient failures reported as :class:`IndexUnavailable`.

Callers above the index layer (the stages, the API) need not know psycopg: a lost connection or a
pool that found no connection in time is the kernel's ``IndexUnavailable``, which they may retry.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from groundwork.errors import IndexUnavailable


@contextmanager
def connection(pool: ConnectionPool) -> Iterator[psycopg.Connection]:
    """A connection from ``pool``; a connection-level failure becomes ``IndexUnavailable``."""
    try:
        with pool.connection() as conn:
            yield conn
    except (psycopg.OperationalError, PoolTimeout) as exc:
        raise IndexUnavailable(f"index database unavailable ({type(exc).__name__})") from exc
