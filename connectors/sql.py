"""The sql connector: the rows of a table or query of any database SQLAlchemy reaches, one document each.

Passwords come only from the environment (``url_env``, ``password_env``) and reach no log, error or
record. SQLAlchemy is imported on first use, so registering the connector costs nothing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import Field, StringConstraints, field_validator, model_validator

from connectors.base import Known, secret_keys
from groundwork.errors import ConnectorError
from groundwork.records import DocumentRef
from groundwork.sections import AccessGrant
from groundwork.settings import ConnectorSettings

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

logger = logging.getLogger(__name__)
T = TypeVar("T")
Ref = DocumentRef
Refs = list[DocumentRef]  # the class's own ``list`` hides the builtin inside it

#: Source-entry keys that look like secrets: refused (a ``*_env`` key names a variable, holds none).
_SECRET_KEY = re.compile(r"secret|password|passwd|token|credential", re.I)
_LEFT_AS_IS = "the source is left as it is and listed again on the next run"
Column = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]{1,63}$")]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
#: A refused login (SQLSTATE, else libpq's or MySQL's words); "cannot serve now" (retried, as is 08*).
_AUTH_STATES = frozenset({"28P01", "28000"})
_AUTH_WORDS = ("password authentication failed", "authentication failed", "access denied for user")
_BUSY_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})


class SqlSettings(ConnectorSettings):
    """Rows of ``table`` (``name`` or ``schema.name``) or of ``query`` (a SELECT), one document each.

    ``updated_at_column`` gives the version; ``readers_column`` (an array or comma-separated text)
    names readers, mapped to grants by ``reader_groups``. ``timeout_seconds`` bounds a connection and
    each statement; ``max_attempts`` counts every try, the first included.
    """

    connector: Literal["sql"]
    url: str | None = None
    url_env: EnvName | None = None
    password_env: EnvName | None = None
    query: str | None = Field(default=None, min_length=1, max_length=100_000)
    table: str | None = Field(default=None, pattern=r"^[^\x00-\x1f\x7f.]{1,63}(\.[^\x00-\x1f\x7f.]{1,63})?$")
    id_column: Column
    text_columns: list[Column] = Field(min_length=1)
    title_column: Column | None = None
    updated_at_column: Column | None = None
    readers_column: Column | None = None
    reader_groups: dict[str, list[AccessGrant]] = Field(default_factory=dict)
    max_attempts: int = Field(default=4, ge=1, le=20)
    backoff_seconds: float = Field(default=0.5, ge=0, le=60)
    timeout_seconds: float = Field(default=30.0, ge=1, le=3600)

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, data: Any) -> Any:
        """Refuse a secret in the file, naming the key but never echoing its value."""
        if isinstance(data, dict):
            found = sorted(secret_keys(data, _SECRET_KEY, nested=False))
            if found:
                msg = f"secrets never go in the configuration file (found {', '.join(found)}); "
                raise ValueError(msg + "name the environment variables in url_env or password_env")
        return data

    @field_validator("url")
    @classmethod
    def _no_password_in_url(cls, value: str | None) -> str | None:
        """A URL SQLAlchemy can parse, holding no password (the error never echoes it)."""
        if value is not None:
            from sqlalchemy.engine import make_url
            from sqlalchemy.exc import ArgumentError

            try:
                url = make_url(value)
            except ArgumentError:
                raise ValueError("is not a database URL (dialect+driver://user@host/database)") from None
            if url.password or any(_SECRET_KEY.search(k) for k in url.query):
                raise ValueError("must not hold a password: name the variable holding it in password_env")
        return value

    @field_validator("query")
    @classmethod
    def _select(cls, value: str | None) -> str | None:
        """One SELECT (or WITH ... SELECT) with no bind parameters; a trailing ';' is dropped."""
        if value is not None:
            from sqlalchemy import text

            value = value.strip().rstrip(";").rstrip()
            if not re.match(r"(?is)^\(?\s*(select|with)\b", value):
                raise ValueError("must be a SELECT (or WITH ... SELECT) query")
            if text(value).compile().params:
                raise ValueError("holds a bind parameter (:name); write a literal colon as \\: ('10\\:30')")
        return value

    @model_validator(mode="after")
    def _one_of_each(self) -> SqlSettings:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url (without a password) and url_env")
        if (self.query is None) == (self.table is None):
            raise ValueError("give exactly one of query and table")
        return self


class SqlConnector:
    """Lists the rows of a table or query (ids and versions only) and fetches one row at a time.

    The source id is the id as text; the version is the updated-at value (ISO 8601) with a digest
    of the id (two rows saved in one instant are no rename), else the SHA-256 of the rendered row.
    Statements run read-only with a timeout, values bound; a fetch returns a row only at its listed
    version. Connection failures are retried with backoff; a listing that still fails raises
    :class:`ConnectorError` naming the source, and the planner then deletes nothing of it.
    """

    settings_model: ClassVar[type[ConnectorSettings]] = SqlSettings

    def __init__(self, name: str, settings: SqlSettings) -> None:
        self.name = name
        self.settings = settings
        self._engine: Engine | None = None
        self._where = "the database"
        self._password: str | None = None  # kept only to scrub it from a driver's message

    @classmethod
    def from_settings(cls, name: str, settings: ConnectorSettings) -> SqlConnector:
        """The connector for a source's validated settings."""
        assert isinstance(settings, SqlSettings)
        return cls(name, settings)

    def _fail(self, what: str) -> ConnectorError:
        return ConnectorError(f"source {self.name!r}: {what}")

    def engine(self) -> Engine:
        """The SQLAlchemy engine, made on first use with the password from its variable (errors name
        the variables, never a value; bound values never appear in SQLAlchemy's errors)."""
        if self._engine is None:
            from sqlalchemy import create_engine, make_url
            from sqlalchemy.exc import ArgumentError, NoSuchModuleError

            s = self.settings
            missing = [v for v in (s.url_env, s.password_env) if v and not os.environ.get(v)]
            if missing:
                raise self._fail(f"the environment variable {missing[0]} (named in the source) is not set")
            try:
                url = make_url(os.environ[s.url_env] if s.url_env else str(s.url))
                if url.drivername == "postgresql":  # SQLAlchemy's default is psycopg2; psycopg 3 is here
                    url = url.set(drivername="postgresql+psycopg")
                if s.password_env:
                    url = url.set(password=os.environ[s.password_env])
                postgres = url.get_backend_name() == "postgresql"
                args = {"connect_timeout": max(1, int(s.timeout_seconds))} if postgres else {}
                self._engine = create_engine(url, connect_args=args, hide_parameters=True, pool_pre_ping=True)
            except (ArgumentError, NoSuchModuleError, ImportError) as exc:
                raise self._fail(f"cannot use the database URL ({type(exc).__name__})") from None
            host = url.host or url.query.get("host") or "a local socket"
            port = f":{url.port}" if url.port else ""
            self._where = f"{url.get_backend_name()} database {url.database or ''!r} at {host}{port}"
            self._password = url.password if isinstance(url.password, str) else None
        return self._engine

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """A connection in a read-only transaction with a statement timeout, where the database has them."""
        from sqlalchemy import text

        with self.engine().connect() as conn, conn.begin():
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                ms = str(int(self.settings.timeout_seconds * 1000))
                conn.execute(text("SELECT set_config('statement_timeout', :ms, true)"), {"ms": ms})
            elif conn.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA query_only = ON")
            yield conn

    def _retrying(self, doing: str, work: Callable[[], T]) -> T:
        """``work()``, tried again with exponential backoff while the database cannot be reached."""
        from sqlalchemy.exc import DBAPIError, SQLAlchemyError

        for attempt in range(1, self.settings.max_attempts + 1):
            try:
                return work()
            except DBAPIError as exc:
                if _kind(exc) != "transient" or attempt == self.settings.max_attempts:
                    raise self._error(exc, doing) from None
                logger.warning("source %s: cannot %s %s (try %d)", self.name, doing, self._where, attempt)
                time.sleep(min(self.settings.backoff_seconds * 2 ** (attempt - 1), 30.0))
            except SQLAlchemyError as exc:
                raise self._fail(f"cannot {doing} {self._where}: {type(exc).__name__}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _error(self, exc: Any, doing: str) -> ConnectorError:
        """A :class:`ConnectorError` naming the source, the database and the server's reason."""
        head, reason = f"cannot {doing} {self._where}", _reason(exc)
        if self._password:
            reason = reason.replace(self._password, "***")
        if _kind(exc) == "credentials":
            return self._fail(f"{head}: the database refused the credentials ({reason})")
        if _kind(exc) == "transient":
            tries = f"unreachable after {self.settings.max_attempts} attempts ({reason})"
            return self._fail(f"{head}: {tries}, a transient failure; {_LEFT_AS_IS}")
        return self._fail(f"{head}: {reason}")

    def _source(self, *names: str | None) -> Any:
        """The table, or the query as a subquery, exposing the named columns (quoted by the dialect)."""
        from sqlalchemy import column, table, text

        cols: list[Any] = [column(n) for n in dict.fromkeys(filter(None, names))]
        if self.settings.table is not None:
            schema, _, name = self.settings.table.rpartition(".")
            return table(name, *cols, schema=schema or None)
        return text(self.settings.query or "").columns(*cols).subquery("src")

    def list(self, known: Known | None = None) -> Iterator[DocumentRef]:
        """Yield a reference for every row, in id order (``known`` is not needed). The listing is read
        whole, in one read-only transaction, before anything is yielded: a failure never ends it short."""
        yield from self._retrying("list", self._listing)

    def _listing(self) -> Refs:
        from sqlalchemy import select

        s = self.settings
        by_content = s.updated_at_column is None
        wanted = [s.id_column, s.updated_at_column, s.readers_column]
        wanted += [*s.text_columns, s.title_column] if by_content else []
        names = list(dict.fromkeys(n for n in wanted if n))
        src = self._source(*names)
        stmt = select(*(src.c[n] for n in names)).order_by(src.c[s.id_column])
        refs: Refs = []
        unmapped: set[str] = set()
        previous: object = None
        with self._transaction() as conn:
            for row in conn.execution_options(stream_results=True, yield_per=1000).execute(stmt):
                values = dict(zip(names, row, strict=True))
                raw = values[s.id_column]
                if raw is None or "\x00" in str(raw):
                    logger.warning("source %s: skipped a row whose id is NULL or holds a NUL", self.name)
                    continue
                if raw == previous:
                    raise self._fail(f"id_column {s.id_column!r} is not unique: {str(raw)!r} twice")
                previous = raw
                updated = values.get(s.updated_at_column) if s.updated_at_column else None
                data = self._render(values) if by_content else None
                if data is None and updated is None:  # a NULL updated-at: version from the content
                    data = self._render(self._row(conn, raw))
                readers = values.get(s.readers_column) if s.readers_column else None
                refs.append(self._ref(raw, updated, data, readers, unmapped))
        if unmapped:
            logger.warning("source %s: %d reader names have no reader_groups entry", self.name, len(unmapped))
        return refs

    def _ref(self, raw: Any, updated: Any, data: bytes | None, readers: Any, unmapped: set[str]) -> Ref:
        sid = str(raw)
        return DocumentRef(
            source=self.name,
            source_id=sid,
            uri=f"sql://{self.name}/{sid}",
            version=_version(sid, updated, data),
            size_bytes=len(data) if data is not None else 0,
            modified_at=_moment(updated),
            permissions=self._permissions(readers, unmapped) if self.settings.readers_column else None,
            extra={"filename": re.sub(r"[^A-Za-z0-9_.-]", "_", sid)[:100] + ".md", "id_type": _id_type(raw)},
        )

    def _permissions(self, readers: Any, unmapped: set[str]) -> tuple[str, ...]:
        """The grants of a row's readers through ``reader_groups``; a name not mapped grants nothing."""
        names = [] if readers is None else readers.split(",") if isinstance(readers, str) else readers
        grants: set[str] = set()
        for name in filter(None, (str(n).strip() for n in names)):
            mapped = self.settings.reader_groups.get(name)
            grants.update(mapped or ())
            if mapped is None:
                unmapped.add(name)
        return tuple(sorted(grants))

    def change_token(self) -> str | None:
        """A digest of the listing (ids, versions, readers; no text read); None without an updated-at
        column (listing would read every row's text) or when listing fails."""
        if not self.settings.updated_at_column:
            return None
        try:
            lines = [f"{r.source_id}\x00{r.version}\x00{r.permissions}\n" for r in self.list()]
        except ConnectorError as exc:
            logger.warning("%s", exc)
            return None
        return hashlib.sha256("".join(lines).encode()).hexdigest()

    def _row(self, conn: Connection, raw: Any) -> dict[str, Any]:
        """One row's text, title and updated-at by id (a bound parameter); empty when it is gone."""
        from sqlalchemy import bindparam, select

        s = self.settings
        names = list(dict.fromkeys(n for n in (*s.text_columns, s.title_column, s.updated_at_column) if n))
        src = self._source(s.id_column, *names)
        stmt = select(*(src.c[n] for n in names)).where(src.c[s.id_column] == bindparam("row_id"))
        rows = conn.execute(stmt, {"row_id": raw}).fetchmany(2)
        if len(rows) > 1:
            raise self._fail(f"id_column {s.id_column!r} is not unique: id {str(raw)!r} has several rows")
        return dict(zip(names, rows[0], strict=True)) if rows else {}

    def fetch(self, ref: DocumentRef) -> bytes:
        """The rendered row behind ``ref``, at the version it was listed with."""
        raw = _ID_TYPES[ref.extra.get("id_type", "str")](ref.source_id)

        def read() -> dict[str, Any]:
            with self._transaction() as conn:
                return self._row(conn, raw)

        values = self._retrying(f"read row {ref.source_id!r} from", read)
        if not values:
            raise self._fail(f"row {ref.source_id!r} no longer exists in {self._where}")
        data = self._render(values)
        column = self.settings.updated_at_column
        if _version(ref.source_id, values.get(column) if column else None, data) != ref.version:
            raise self._fail(f"row {ref.source_id!r} changed since it was listed; it is read again next run")
        return data

    def _render(self, values: dict[str, Any]) -> bytes:
        """A row as Markdown: its title as the heading, then each text column (under its name when
        there are several). Empty when every text column is empty, so the row is recorded as failed."""
        s = self.settings
        parts = [(c, v) for c in s.text_columns if (v := _text(values.get(c)).strip())]
        if not parts:
            return b""
        title = " ".join(_text(values.get(s.title_column)).split()) if s.title_column else ""
        lines = [f"# {title}", ""] if title else []
        for col, value in parts:
            lines += [f"## {col}", "", value, ""] if len(s.text_columns) > 1 else [value, ""]
        return "\n".join(lines).encode("utf-8")


#: How an id's text turns back into the value its column holds (integers and UUIDs keep their type).
_ID_TYPES: dict[str, Callable[[str], Any]] = {"int": int, "uuid": uuid.UUID, "str": str}


def _id_type(raw: Any) -> str:
    return "int" if type(raw) is int else "uuid" if isinstance(raw, uuid.UUID) else "str"


def _text(value: Any) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return "" if text is None else str(text)


def _version(sid: str, updated: Any, data: bytes | None) -> str:
    """``updated_at:<ISO>@<id digest>``, else ``sha256:<digest of the rendered row>``."""
    if isinstance(updated, datetime) and updated.tzinfo:  # the session's time zone must not matter
        updated = updated.astimezone(UTC)
    if updated is not None:
        iso = updated.isoformat() if isinstance(updated, datetime | date) else str(updated)
        return f"updated_at:{iso}@{hashlib.sha256(sid.encode()).hexdigest()[:16]}"
    return "sha256:" + hashlib.sha256(data or b"").hexdigest()


def _moment(value: Any) -> datetime | None:
    """An updated-at value as an aware datetime (a naive one taken as UTC), for retention."""
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    return (value if value.tzinfo else value.replace(tzinfo=UTC)) if isinstance(value, datetime) else None


def _kind(exc: Any) -> str:
    """``credentials`` for a refused login, ``transient`` when the database cannot serve now, else ''."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    state = getattr(exc.orig, "sqlstate", None)
    if state in _AUTH_STATES or any(w in str(exc.orig).lower() for w in _AUTH_WORDS):
        return "credentials"
    if state:  # the server answered: only "cannot serve now" and a lost connection are retried
        return "transient" if str(state).startswith("08") or state in _BUSY_STATES else ""
    lost = exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
    return "transient" if lost else ""


def _reason(exc: Any) -> str:
    """The server's reason (its primary message and SQLSTATE, or libpq's FATAL line), else the class."""
    orig, lines = exc.orig, str(exc.orig).strip().splitlines()
    primary = getattr(getattr(orig, "diag", None), "message_primary", None)
    if primary:
        return f"{primary} [{orig.sqlstate}]" if getattr(orig, "sqlstate", None) else str(primary)
    fatal = [ln.rpartition("FATAL:")[2].strip() for ln in lines if "FATAL:" in ln]
    failed = [ln.rpartition("failed:")[2].strip() for ln in lines if "failed:" in ln]
    return next((r for r in (*fatal[-1:], *failed) if r), type(orig).__name__)
