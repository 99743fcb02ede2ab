"""The imap connector: the messages of one or more mailboxes of an IMAP account, each as an ``.eml``.

Python's own ``imaplib`` speaks to the server, over TLS unless told otherwise. The password comes
from an environment variable the source entry names (``password_env``), never from the file, and is
read only to log in: no log line, error, record or metadata carries it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import imaplib
import logging
import os
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar
from urllib.parse import quote

from pydantic import Field, StringConstraints, field_validator, model_validator

from connectors.base import Known, secret_keys
from groundwork.errors import ConnectorError
from groundwork.records import DocumentRef
from groundwork.sections import AccessGrant
from groundwork.settings import ConnectorSettings, resolve_path

logger = logging.getLogger(__name__)

T = TypeVar("T")
#: imaplib's answer to a command (the connector's ``list`` method hides the builtin in the class).
Lines = list[Any]

#: Source-entry keys that look like secrets: refused, so a password never sits in the file.
_SECRET_KEY = re.compile(r"secret|password|passwd|token|credential", re.I)
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
_LEFT_AS_IS = "the source is left as it is and listed again on the next run"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
#: A mailbox as the mail client shows it: no control characters (a name given twice is read once).
Mailbox = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]{1,1000}$")]
_DATE = re.compile(rb'INTERNALDATE "\s?(\d{1,2})-(\w{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-]\d{4})"')


class ImapSettings(ConnectorSettings):
    """One IMAP account: where it is, who logs in, and which mailboxes to read.

    ``tls`` is ``implicit`` (IMAPS, port 993 by default), ``starttls`` (port 143) or ``none`` (a
    loopback host only: the password would cross the network in the clear). ``ca_file`` trusts a
    private certificate authority. ``mailboxes`` are named as the mail client shows them
    (``Archive/2026``, ``Envoyé``). ``readers`` are the grants the source reports for every message;
    by default the account's owner, ``principal:<username>``.
    """

    connector: Literal["imap"]
    host: str = Field(pattern=r"^[A-Za-z0-9._:-]{1,253}$")
    port: int | None = Field(default=None, ge=1, le=65535)
    tls: Literal["implicit", "starttls", "none"] = "implicit"
    ca_file: Path | None = None
    username: str = Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")
    password_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
    mailboxes: list[Mailbox] = Field(default_factory=lambda: ["INBOX"], min_length=1)
    readers: list[AccessGrant] | None = None
    max_attempts: int = Field(default=4, ge=1, le=20)
    backoff_seconds: float = Field(default=0.5, ge=0, le=60)
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)

    _resolve = field_validator("ca_file")(resolve_path)

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, data: Any) -> Any:
        """Refuse a password in the file, naming the key but never echoing its value."""
        if isinstance(data, dict):
            found = sorted(secret_keys(data, _SECRET_KEY, nested=False))
            if found:
                raise ValueError(
                    f"secrets never go in the configuration file (found {', '.join(found)}); the imap "
                    "connector reads the password from the environment variable named by password_env"
                )
        return data

    @model_validator(mode="after")
    def _tls_off_only_on_loopback(self) -> ImapSettings:
        """``tls: none`` only where the password cannot cross a network."""
        if self.tls == "none" and self.host.lower().strip("[]") not in _LOOPBACK:
            raise ValueError(
                "tls: none sends the password in the clear and is allowed only for a loopback host "
                "(127.0.0.1, ::1, localhost); use tls: implicit or starttls"
            )
        return self


class ImapConnector:
    """Lists the messages of each configured mailbox (no bodies) and fetches one message at a time.

    The source id is ``<mailbox>/<UIDVALIDITY>/<UID>`` with the mailbox as the server names it
    (modified UTF-7): IMAP gives a message that (mailbox, UIDVALIDITY, UID) for its whole life, and a
    new UIDVALIDITY means every UID of the mailbox is new. Messages never change in IMAP, so the
    version only has to tell content apart: the server's EMAILID (RFC 8474) where it has one, the
    same for a message moved or copied to another mailbox (a move is then a rename, not embedded
    again), else ``uid:<UIDVALIDITY>:<UID>``. Mailboxes are opened read-only (EXAMINE) and bodies
    read with ``BODY.PEEK[]``, so nothing is marked read. Connection failures are retried with
    exponential backoff; a listing that still fails raises :class:`ConnectorError` naming the source,
    and the planner then leaves the source as it is (nothing is deleted).
    """

    settings_model: ClassVar[type[ConnectorSettings]] = ImapSettings

    def __init__(self, name: str, settings: ImapSettings) -> None:
        self.name = name
        self.settings = settings
        self._mailboxes = {encode_mailbox(m): m for m in settings.mailboxes}
        self._conn: imaplib.IMAP4 | None = None
        self._objectid = False
        self._examined: tuple[str, str] | None = None  # (raw mailbox, UIDVALIDITY) now open
        self._lock = threading.RLock()
        #: Connections opened (logins) since this connector was made.
        self.logins = 0

    @classmethod
    def from_settings(cls, name: str, settings: ConnectorSettings) -> ImapConnector:
        """The connector for a source's validated settings."""
        assert isinstance(settings, ImapSettings)
        return cls(name, settings)

    @property
    def port(self) -> int:
        """The configured port, else the standard one for the TLS mode."""
        s = self.settings
        return s.port or (993 if s.tls == "implicit" else 143)

    @property
    def where(self) -> str:
        """The account and server, as errors name them (never a secret)."""
        return f"IMAP account {self.settings.username!r} at {self.settings.host}:{self.port}"

    @property
    def permissions(self) -> tuple[str, ...]:
        """The grants reported for every message: ``readers``, else the account's owner."""
        readers = self.settings.readers
        return tuple(readers) if readers is not None else (f"principal:{self.settings.username}",)

    def list(self, known: Known | None = None) -> Iterator[DocumentRef]:
        """Yield a reference for every message of every configured mailbox (by mailbox, then UID).

        A mailbox is listed whole before any of it is yielded, so a failure never ends a listing
        short. ``known`` is not needed: the server reports each message's identity itself.
        """
        for raw, shown in self._mailboxes.items():
            yield from self._call(f"list mailbox {shown!r} of", partial(self._list_mailbox, raw))

    def _list_mailbox(self, raw: str, conn: imaplib.IMAP4) -> Iterator[DocumentRef]:
        validity, exists = self._examine(conn, raw)
        if exists == 0:
            return iter(())
        shown = self._mailboxes[raw]
        items = "UID RFC822.SIZE INTERNALDATE" + (" EMAILID" if self._objectid else "")
        data = self._ok(conn.uid("FETCH", "1:*", f"({items})"), f"list mailbox {shown!r} of")
        refs: dict[int, DocumentRef] = {}
        base = f"imap://{self.settings.host}:{self.port}"
        for item in data:
            line: bytes = (item[0] if isinstance(item, tuple) else item) or b""
            uid = re.search(rb"\bUID (\d+)", line)
            if uid is None:
                continue  # an unsolicited FLAGS update, not a message of this fetch
            size = re.search(rb"\bRFC822\.SIZE (\d+)", line)
            email_id = re.search(rb"\bEMAILID \(([!-~]+?)\)", line)
            n = int(uid.group(1))
            version = f"emailid:{email_id.group(1).decode()}" if email_id else f"uid:{validity}:{n}"
            refs[n] = DocumentRef(
                source=self.name,
                source_id=f"{raw}/{validity}/{n}",
                uri=f"{base}/{quote(shown)};UIDVALIDITY={validity}/;UID={n}",
                version=version,
                size_bytes=int(size.group(1)) if size else 0,
                modified_at=_internaldate(line),
                permissions=self.permissions,
                extra={"filename": f"{n}.eml"},
            )
        return iter([refs[n] for n in sorted(refs)])

    def change_token(self) -> str | None:
        """A digest of each mailbox's UIDVALIDITY, UIDNEXT and message count (STATUS): no message read.

        An arrival moves UIDNEXT, an expunge the count. On a server that cannot be reached it is
        None (unknown), so a sensor starts a run, whose listing reports the error.
        """
        h = hashlib.sha256()
        try:
            for raw, shown in self._mailboxes.items():
                status = self._call(f"read the status of mailbox {shown!r} of", partial(self._status, raw))
                found = re.findall(rb"\b(MESSAGES|UIDNEXT|UIDVALIDITY) (\d+)", repr(status).encode())
                h.update(f"{raw}\x00{sorted(found)}\n".encode())
        except ConnectorError as exc:
            logger.warning("%s", exc)
            return None
        finally:
            self.close()
        return h.hexdigest()

    def _status(self, raw: str, conn: imaplib.IMAP4) -> Lines:
        return self._ok(conn.status(_quoted(raw), "(MESSAGES UIDNEXT UIDVALIDITY)"), "read the status of")

    def fetch(self, ref: DocumentRef) -> bytes:
        """The whole message behind ``ref`` (attachments included), without marking it read."""
        parts = re.fullmatch(r"(.+)/(\d+)/(\d+)", ref.source_id)
        if parts is None or parts[1] not in self._mailboxes:
            raise ConnectorError(f"source {self.name!r}: {ref.source_id!r} is no message of its mailboxes")
        raw, validity, uid = parts.groups()

        def read(conn: imaplib.IMAP4) -> bytes:
            if self._examined is not None and self._examined[0] == raw:
                current = self._examined[1]  # still open from the last fetch or the listing
            else:
                current, _ = self._examine(conn, raw)
            if current != validity:
                raise ConnectorError(
                    f"source {self.name!r}: mailbox {self._mailboxes[raw]!r} was renumbered "
                    f"(UIDVALIDITY) since {ref.source_id!r} was listed; it is read again on the next run"
                )
            data = self._ok(conn.uid("FETCH", uid, "(BODY.PEEK[])"), f"read {ref.source_id!r} from")
            for item in data:
                if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
                    return item[1]
            raise ConnectorError(f"source {self.name!r}: {ref.source_id!r} no longer exists in {self.where}")

        return self._call(f"read {ref.source_id!r} from", read)

    def close(self) -> None:
        """Log out and close the connection, if one is open."""
        with self._lock:
            conn, self._conn, self._examined = self._conn, None, None
            if conn is not None:
                with contextlib.suppress(OSError, imaplib.IMAP4.error):  # a link already broken
                    conn.logout()

    # --- the connection -------------------------------------------------------------------------

    def _call(self, doing: str, action: Callable[[imaplib.IMAP4], T]) -> T:
        """Run ``action`` on a logged-in connection, reconnecting with backoff when the link fails."""
        s = self.settings
        head = f"source {self.name!r}: cannot {doing} {self.where}"
        with self._lock:
            for attempt in range(1, s.max_attempts + 1):
                try:
                    try:
                        conn = self._connection()
                    except ssl.SSLCertVerificationError as exc:  # none of these heals by itself
                        raise ConnectorError(
                            f"{head}: its TLS certificate is not trusted ({exc.verify_message}); set "
                            "ca_file to the authority that signed it"
                        ) from None
                    except ssl.SSLError as exc:
                        raise ConnectorError(
                            f"{head}: the TLS handshake failed ({exc.reason}); check tls (implicit is "
                            "usually port 993, starttls 143)"
                        ) from None
                    return action(conn)
                except (OSError, imaplib.IMAP4.abort) as exc:
                    self._drop()
                    if attempt == s.max_attempts:
                        raise ConnectorError(
                            f"{head}: the server is unreachable after {s.max_attempts} attempts "
                            f"({type(exc).__name__}), a transient failure; {_LEFT_AS_IS}"
                        ) from None
                    delay = s.backoff_seconds * 2 ** (attempt - 1)
                    logger.warning("%s (%s); retrying in %.1f s", head, type(exc).__name__, delay)
                    time.sleep(delay)
                except imaplib.IMAP4.error as exc:
                    self._drop()
                    raise ConnectorError(f"{head}: {_code(exc)}") from None
        raise AssertionError("unreachable")  # pragma: no cover (the loop returns or raises)

    def _connection(self) -> imaplib.IMAP4:
        """The open connection, else a new one, logged in (raises OSError, ssl or imaplib errors)."""
        if self._conn is not None:
            return self._conn
        s = self.settings
        password = os.environ.get(s.password_env)
        if not password:
            raise ConnectorError(
                f"source {self.name!r}: the environment variable {s.password_env} (password_env) is "
                f"not set or empty; it must hold the password of {self.where}"
            )
        context = ssl.create_default_context(cafile=str(s.ca_file) if s.ca_file else None)
        if s.tls == "implicit":
            conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                s.host, self.port, ssl_context=context, timeout=s.timeout_seconds
            )
        else:
            conn = imaplib.IMAP4(s.host, self.port, timeout=s.timeout_seconds)
        try:
            if s.tls == "starttls":
                if "STARTTLS" not in conn.capabilities:
                    raise ConnectorError(f"source {self.name!r}: {self.where} does not offer STARTTLS")
                conn.starttls(ssl_context=context)
            if "LOGINDISABLED" in conn.capabilities:
                raise ConnectorError(f"source {self.name!r}: {self.where} refuses to log in without TLS")
            try:
                if (s.username + password).isascii():
                    conn.login(s.username, password)
                else:  # LOGIN is ASCII only; SASL PLAIN carries UTF-8 (RFC 4616)
                    conn.authenticate("PLAIN", lambda _: f"\x00{s.username}\x00{password}".encode())
            except imaplib.IMAP4.abort:
                raise
            except imaplib.IMAP4.error as exc:
                raise ConnectorError(
                    f"source {self.name!r}: {self.where} refused the login ({_code(exc)}); check the "
                    f"username and the password in the environment variable {s.password_env}"
                ) from None
            capabilities = self._ok(conn.capability(), "read the capabilities of")
        except BaseException:
            with contextlib.suppress(OSError):
                conn.shutdown()
            raise
        self.logins += 1
        self._objectid = b"OBJECTID" in b" ".join(c for c in capabilities if c).upper().split()
        self._conn = conn
        return conn

    def _drop(self) -> None:
        conn, self._conn, self._examined = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.shutdown()

    def _examine(self, conn: imaplib.IMAP4, raw: str) -> tuple[str, int]:
        """Open ``raw`` read-only; returns its UIDVALIDITY and message count."""
        shown, self._examined = self._mailboxes[raw], None
        typ, data = conn.select(_quoted(raw), readonly=True)
        if typ != "OK":
            raise ConnectorError(
                f"source {self.name!r}: mailbox {shown!r} does not exist or cannot be opened in "
                f"{self.where} ({_code(data)}); {_LEFT_AS_IS}"
            )
        validity = (conn.response("UIDVALIDITY")[1] or [None])[0]
        if not isinstance(validity, bytes) or not validity.isdigit():
            raise ConnectorError(f"source {self.name!r}: {self.where} gave {shown!r} no UIDVALIDITY")
        self._examined = (raw, validity.decode())
        exists = data[0] if data and isinstance(data[0], bytes) and data[0].isdigit() else b"1"
        return validity.decode(), int(exists)

    def _ok(self, response: tuple[str, Lines], doing: str) -> Lines:
        if response[0] != "OK":
            raise ConnectorError(f"source {self.name!r}: cannot {doing} {self.where}: {_code(response[1])}")
        return response[1]


def encode_mailbox(name: str) -> str:
    """A mailbox name in IMAP's modified UTF-7 (RFC 3501, 5.1.3), as the server knows it."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            packed = base64.b64encode("".join(pending).encode("utf-16-be")).decode()
            out.append("&" + packed.rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def _quoted(raw: str) -> str:
    """A mailbox name as an IMAP quoted string."""
    return '"' + raw.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _code(data: Any) -> str:
    """The response code of a server's refusal (``[AUTHENTICATIONFAILED]``), never its free text,
    which could echo what was sent."""
    items = data if isinstance(data, list) else [data]
    text = " ".join(d.decode(errors="replace") if isinstance(d, bytes) else str(d) for d in items)
    found = re.search(r"\[([A-Z][A-Z0-9-]*)", text)
    return f"[{found.group(1)}]" if found else "no reason code given"


def _internaldate(line: bytes) -> datetime | None:
    """A message's INTERNALDATE (when the server received it), timezone-aware."""
    found = _DATE.search(line)
    if found is None or found.group(2).decode() not in _MONTHS:
        return None
    day, month, year, hh, mm, ss, zone = (g.decode() for g in found.groups())
    stamp = f"{year}-{_MONTHS.index(month) + 1:02d}-{int(day):02d} {hh}:{mm}:{ss} {zone}"
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S %z")
