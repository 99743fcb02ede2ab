"""The imap connector against a real IMAP server (pymap, started here on 127.0.0.1): listing several
mailboxes without reading bodies, fetching whole messages without marking them read, UIDVALIDITY and
UID as identity, deletions and moves, TLS, clear errors that name the source and never the password,
and an ingest through the command line in which a deleted message leaves the index."""

from __future__ import annotations

import datetime
import imaplib
import ipaddress
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

import pytest

from connectors import build_connector
from connectors.imap import ImapConnector, ImapSettings, encode_mailbox
from groundwork.errors import ConfigError, ConnectorError
from groundwork.settings import load_config
from tests.conftest import DEMO, write_config
from tests.connectors.cli_support import all_text, cli_ingest, free_port, index_rows

USER = "alice"
#: The account's password: the tests' processes hold it in their environment only.
PASSWORD = "imap-" + "Pw7qXv3Lm9"
ENV = "GW_TEST_IMAP_PASSWORD"
PYMAP = Path(sys.executable).with_name("pymap")


def _start_pymap(port: int, *tls: str) -> subprocess.Popen[bytes]:
    """pymap's in-memory server with one account, on 127.0.0.1; ``tls``: ``--cert C --key K``."""
    args = [str(PYMAP), "--host", "127.0.0.1", "--port", str(port), *(tls or ["--no-tls"])]
    process = subprocess.Popen(
        [*args, "dict", "--demo-user", USER, "--demo-password", PASSWORD],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("pymap did not start") from None
            time.sleep(0.05)


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    """A real IMAP server (pymap, plain IMAP on loopback) for this module; yields its port."""
    port = free_port()
    process = _start_pymap(port)
    yield port
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def admin(port: int) -> Iterator[imaplib.IMAP4]:
    """The mail client's side: a logged-in connection that creates, fills and empties mailboxes."""
    conn = imaplib.IMAP4("127.0.0.1", port, timeout=10)
    conn.login(USER, PASSWORD)
    yield conn
    conn.logout()


@pytest.fixture
def prefix() -> str:
    """A mailbox name prefix of this test's own."""
    return f"T{uuid.uuid4().hex[:10]}-"


@pytest.fixture
def password(monkeypatch: pytest.MonkeyPatch) -> str:
    """The password in the environment variable the sources name."""
    monkeypatch.setenv(ENV, PASSWORD)
    return PASSWORD


def _message(subject: str, body: str, *attachments: tuple[str, bytes]) -> bytes:
    m = EmailMessage(policy=SMTP)
    m["From"], m["To"], m["Subject"] = "hr@example.com", "staff@example.com", subject
    m["Date"] = "Sat, 28 Nov 2026 10:00:00 +0000"
    m.set_content(body)
    for name, data in attachments:
        maintype, subtype = ("application", "pdf") if name.endswith(".pdf") else ("text", "plain")
        if maintype == "text":
            m.add_attachment(data.decode(), subtype=subtype, filename=name)
        else:
            m.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return m.as_bytes()


def _fill(admin: imaplib.IMAP4, mailbox: str, *messages: bytes) -> None:
    raw = '"' + encode_mailbox(mailbox) + '"'
    admin.create(raw)
    for message in messages:
        assert admin.append(raw, None, None, message)[0] == "OK"


def _delete(admin: imaplib.IMAP4, mailbox: str, uid: str) -> None:
    admin.select('"' + encode_mailbox(mailbox) + '"')
    admin.uid("STORE", uid, "+FLAGS", r"(\Deleted)")
    admin.expunge()
    admin.close()


def _flags(admin: imaplib.IMAP4, mailbox: str) -> list[bytes]:
    admin.select('"' + encode_mailbox(mailbox) + '"', readonly=True)
    data = admin.uid("FETCH", "1:*", "(FLAGS)")[1]
    admin.close()
    return [d for d in data if isinstance(d, bytes)]


def _connector(port: int, *mailboxes: str, **settings: Any) -> ImapConnector:
    model = ImapSettings(
        connector="imap",
        host="127.0.0.1",
        port=port,
        tls=settings.pop("tls", "none"),
        username=USER,
        password_env=ENV,
        mailboxes=list(mailboxes),
        **settings,
    )
    return ImapConnector("mail", model)


def test_registered_and_configured_from_the_file(tmp_path: Path) -> None:
    source = {
        "name": "mail",
        "connector": "imap",
        "host": "imap.example.com",
        "tls": "starttls",
        "ca_file": "certs/ca.pem",
        "username": "alice@example.com",
        "password_env": "HR_IMAP_PASSWORD",
        "mailboxes": ["INBOX", "Archive/2026"],
        "residency": "uk",
        "contract": "none",
        "access": ["group:hr"],
    }
    connector = build_connector(
        load_config(write_config(tmp_path / "g.yaml", {"sources": [source]})).sources[0]
    )
    assert isinstance(connector, ImapConnector)
    assert connector.port == 143 and connector.settings.ca_file == tmp_path / "certs" / "ca.pem"
    assert connector.permissions == ("principal:alice@example.com",)
    implicit = ImapSettings(connector="imap", host="imap.example.com", username="a", password_env="P")
    assert implicit.tls == "implicit" and ImapConnector("m", implicit).port == 993
    assert implicit.mailboxes == ["INBOX"]


@pytest.mark.parametrize("key", ["password", "imap_password", "secret", "token"])
def test_a_password_in_the_file_is_refused_without_echoing_it(tmp_path: Path, key: str) -> None:
    source = {
        "name": "mail",
        "connector": "imap",
        "host": "imap.example.com",
        "username": USER,
        "password_env": ENV,
        "residency": "uk",
        "contract": "none",
        "access": ["public"],
    }
    path = write_config(tmp_path / "g.yaml", {"sources": [{**source, key: PASSWORD}]})
    with pytest.raises(
        ConfigError, match=rf"secrets never go in the configuration file \(found {key}\)"
    ) as e:
        load_config(path)
    assert PASSWORD not in str(e.value)
    plain = write_config(tmp_path / "h.yaml", {"sources": [{**source, "tls": "none"}]})
    with pytest.raises(ConfigError, match="tls: none sends the password in the clear"):
        load_config(plain)


def test_mailbox_names_are_encoded_as_imap_modified_utf7() -> None:
    assert encode_mailbox("INBOX") == "INBOX"
    assert encode_mailbox("Café") == "Caf&AOk-"
    assert encode_mailbox("R&D") == "R&-D"
    assert encode_mailbox("~peter/mail/台北/日本語") == "~peter/mail/&U,BTFw-/&ZeVnLIqe-"  # RFC 3501's


def test_lists_several_mailboxes_with_their_identity(
    port: int, admin: imaplib.IMAP4, prefix: str, password: str
) -> None:
    one, two, three = (_message(f"Note {i}", f"Body {i}") for i in range(3))
    _fill(admin, prefix + "Inbox", one, two)
    _fill(admin, prefix + "Café", three)
    _fill(admin, prefix + "Other", _message("Elsewhere", "not configured"))
    conn = _connector(port, prefix + "Inbox", prefix + "Café")
    refs = list(conn.list())
    assert [r.source_id.rsplit("/", 2)[0] for r in refs] == [prefix + "Inbox"] * 2 + [prefix + "Caf&AOk-"]
    first = refs[0]
    mailbox, validity, uid = first.source_id.rsplit("/", 2)
    assert validity.isdigit() and int(uid) < int(refs[1].source_id.rsplit("/", 1)[1])
    assert first.version.startswith("emailid:")  # pymap has OBJECTID (RFC 8474)
    assert first.size_bytes == len(one) and first.modified_at is not None
    assert first.modified_at.tzinfo is not None
    assert first.filename == f"{uid}.eml" and first.permissions == ("principal:alice",)
    assert first.uri == f"imap://127.0.0.1:{port}/{mailbox};UIDVALIDITY={validity}/;UID={uid}"
    assert refs[2].uri.startswith(f"imap://127.0.0.1:{port}/{prefix}Caf%C3%A9;UIDVALIDITY=")
    readers = _connector(port, prefix + "Café", readers=["group:hr", "principal:bob"])
    assert [r.permissions for r in readers.list()] == [("group:hr", "principal:bob")]
    assert conn.logins == 1  # one connection for both mailboxes
    assert all(b"\\Seen" not in f for f in _flags(admin, prefix + "Inbox"))


def test_fetch_returns_the_whole_message_and_marks_nothing_read(
    port: int, admin: imaplib.IMAP4, prefix: str, password: str
) -> None:
    pdf = (DEMO / "corpus" / "handbook" / "code-of-conduct.pdf").read_bytes()
    with_pdf = _message("Conduct", "Please read the attached policy.", ("code-of-conduct.pdf", pdf))
    plain = _message("Plain", "Nothing attached.")
    _fill(admin, prefix + "Inbox", with_pdf, plain)
    conn = _connector(port, prefix + "Inbox")
    refs = list(conn.list())
    assert [conn.fetch(r) for r in refs] == [with_pdf, plain]
    assert conn.logins == 1  # the listing's connection serves the fetches
    flags = _flags(admin, prefix + "Inbox")
    assert len(flags) == 2 and all(b"\\Seen" not in f for f in flags)
    with pytest.raises(ConnectorError, match="is no message of its mailboxes"):
        _connector(port, prefix + "Other").fetch(refs[0])


def test_deleted_and_moved_messages_and_a_new_uidvalidity(
    port: int, admin: imaplib.IMAP4, prefix: str, password: str
) -> None:
    _fill(admin, prefix + "Inbox", *(_message(f"Note {i}", f"Body {i}") for i in range(3)))
    admin.create(prefix + "Archive")
    conn = _connector(port, prefix + "Inbox", prefix + "Archive")
    before = list(conn.list())
    token = conn.change_token()
    assert token is not None and conn.change_token() == token
    _delete(admin, prefix + "Inbox", before[0].source_id.rsplit("/", 1)[1])
    assert conn.change_token() not in (None, token)
    after = list(conn.list())
    assert [r.source_id for r in after] == [r.source_id for r in before[1:]]
    with pytest.raises(ConnectorError, match=rf"source 'mail': '{before[0].source_id}' no longer exists"):
        conn.fetch(before[0])
    # A message moved to another mailbox gets a new identity but keeps its version (EMAILID): the
    # planner takes it for a rename and does not embed it again.
    admin.select(prefix + "Inbox")
    assert admin.uid("MOVE", before[1].source_id.rsplit("/", 1)[1], prefix + "Archive")[0] == "OK"
    admin.close()
    moved = list(conn.list())
    assert [r.source_id.rsplit("/", 2)[0] for r in moved] == [prefix + "Inbox", prefix + "Archive"]
    assert moved[1].version == before[1].version and moved[1].source_id != before[1].source_id
    # A mailbox made anew has a new UIDVALIDITY: every message in it is new, and a reference listed
    # before is never fetched under it.
    assert admin.delete(prefix + "Archive")[0] == "OK"
    _fill(admin, prefix + "Archive", _message("Note 1", "Body 1"))
    renewed = list(conn.list())
    assert renewed[1].source_id.rsplit("/", 2)[1] != moved[1].source_id.rsplit("/", 2)[1]
    with pytest.raises(ConnectorError, match=r"was renumbered \(UIDVALIDITY\) since"):
        conn.fetch(moved[1])


def test_a_missing_mailbox_fails_the_listing(port: int, prefix: str, password: str) -> None:
    with pytest.raises(
        ConnectorError, match=rf"source 'mail': mailbox '{prefix}Gone' does not exist.*left as it is"
    ):
        list(_connector(port, "INBOX", prefix + "Gone").list())


def test_a_wrong_or_missing_password_is_a_clear_error_naming_the_source(
    port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "not-" + PASSWORD
    monkeypatch.setenv(ENV, wrong)
    with pytest.raises(ConnectorError) as e:
        list(_connector(port, "INBOX").list())
    assert str(e.value) == (
        f"source 'mail': IMAP account 'alice' at 127.0.0.1:{port} refused the login "
        f"([AUTHENTICATIONFAILED]); check the username and the password in the environment variable {ENV}"
    )
    assert wrong not in repr(e.value) and PASSWORD not in repr(e.value)
    monkeypatch.delenv(ENV)
    with pytest.raises(
        ConnectorError, match=rf"source 'mail': the environment variable {ENV} \(password_env\)"
    ):
        list(_connector(port, "INBOX").list())


def test_an_unreachable_server_is_a_transient_error(password: str) -> None:
    conn = _connector(free_port(), "INBOX", max_attempts=2, backoff_seconds=0)
    with pytest.raises(ConnectorError, match=r"source 'mail': .*unreachable after 2 attempts.*transient"):
        list(conn.list())
    assert conn.change_token() is None  # unknown: a sensor starts a run, which reports the error


def test_dropped_connections_are_retried_with_backoff(password: str) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[float] = []

    def drop_every_connection() -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            accepted.append(time.monotonic())
            client.close()  # before the greeting

    threading.Thread(target=drop_every_connection, daemon=True).start()
    try:
        conn = _connector(server.getsockname()[1], "INBOX", max_attempts=3, backoff_seconds=0.2)
        with pytest.raises(ConnectorError, match=r"unreachable after 3 attempts \(abort\), a transient"):
            list(conn.list())
    finally:
        server.close()
    assert len(accepted) == 3
    assert accepted[1] - accepted[0] >= 0.2 and accepted[2] - accepted[1] >= 0.4  # 0.2 s, then 0.4 s


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """pymap offering STARTTLS with a self-signed certificate for 127.0.0.1; yields (port, cert)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (folder / "key.pem").write_bytes(pem)
    port = free_port()
    process = _start_pymap(port, "--cert", str(folder / "cert.pem"), "--key", str(folder / "key.pem"))
    yield port, folder / "cert.pem"
    process.terminate()
    process.wait(timeout=10)


def test_starttls_verifies_the_server_certificate(tls_server: tuple[int, Path], password: str) -> None:
    port, cert = tls_server
    assert list(_connector(port, "INBOX", tls="starttls", ca_file=cert).list()) == []
    with pytest.raises(ConnectorError, match=r"TLS certificate is not trusted \(self-signed.*set ca_file"):
        list(_connector(port, "INBOX", tls="starttls").list())
    with pytest.raises(ConnectorError, match=r"the TLS handshake failed \(WRONG_VERSION_NUMBER\)"):
        list(_connector(port, "INBOX", tls="implicit", ca_file=cert).list())


# --- The command line: ingest a mailbox, then a deletion and a move reach the index ----------------


def test_cli_ingest_follows_deletions_and_moves_in_the_mailboxes(
    port: int, admin: imaplib.IMAP4, prefix: str, database_url: str, tmp_path: Path
) -> None:
    pdf = (DEMO / "corpus" / "handbook" / "code-of-conduct.pdf").read_bytes()
    note = b"The quarterly offsite agenda covers the product roadmap and the hiring plan.\n"
    inbox, archive = prefix + "Inbox", prefix + "Archive"
    _fill(
        admin,
        inbox,
        _message("Annual leave", "Every employee receives 25 days of paid annual leave per year."),
        _message("Conduct", "Please read the attached code of conduct.", ("code-of-conduct.pdf", pdf)),
        _message("Offsite", "The agenda is attached.", ("agenda.txt", note)),
    )
    admin.create(archive)
    (tmp_path / "dagster_home").mkdir()
    (tmp_path / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    source: dict[str, object] = {
        "name": "mail",
        "connector": "imap",
        "host": "127.0.0.1",
        "port": port,
        "tls": "none",
        "username": USER,
        "password_env": ENV,
        "mailboxes": [inbox, archive],
        "residency": "eu",
        "contract": "none",
        "access": ["group:staff"],
    }
    config: dict[str, object] = {
        "sources": [source],
        "database": {"url": database_url},
        "state_dir": str(tmp_path / "state"),
    }
    write_config(tmp_path / "groundwork.yaml", config)
    env = {ENV: PASSWORD}

    first = cli_ingest(tmp_path, env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "listed: new=3 changed=0 unchanged=0" in first.stdout
    assert "index/eu: wrote 3 documents" in first.stdout
    before = index_rows(database_url)
    leave, conduct, offsite = sorted(before, key=lambda i: int(i.rsplit("/", 1)[1]))
    texts = {i: "\n".join(before[i][3]) for i in before}
    assert "partners with respect" in texts[conduct]  # from the attached PDF
    assert "product roadmap and the hiring plan" in texts[offsite]  # from the attached text file

    # One message deleted, one moved to the archive, one left alone; and one new message arrives.
    _delete(admin, inbox, leave.rsplit("/", 1)[1])
    admin.select(inbox)
    assert admin.uid("MOVE", offsite.rsplit("/", 1)[1], archive)[0] == "OK"
    admin.close()
    assert (
        admin.append(inbox, None, None, _message("Expenses", "Meals are refunded up to EUR 45."))[0] == "OK"
    )

    second = cli_ingest(tmp_path, env)
    assert second.returncode == 0, second.stderr[-3000:]
    # One message expunged, one moved to another mailbox (a rename: same content id).
    assert "listed: new=1 changed=0 unchanged=1 retag=0 move=0 rename=1 deleted=1" in second.stdout
    after = index_rows(database_url)
    assert leave not in after and offsite not in after and conduct in after
    (new,) = (i for i in after if i.startswith(inbox + "/") and i != conduct)
    (moved,) = (i for i in after if i.startswith(archive + "/"))
    assert after[moved][3] == before[offsite][3]  # moved with its chunks
    # Only the new message was embedded; the untouched one's rows were not even rewritten.
    assert f"embeddings computed: {len(after[new][2])}\n" in second.stdout
    assert after[conduct] == before[conduct]

    # The server goes away: the run reports the source, and nothing is deleted.
    gone = {**source, "port": free_port(), "max_attempts": 2, "backoff_seconds": 0.1}
    write_config(tmp_path / "groundwork.yaml", {**config, "sources": [gone]})
    third = cli_ingest(tmp_path, env)
    assert third.returncode == 3, third.stderr[-3000:]  # the run succeeded; a source was not listed
    assert (
        "source mail could not be listed" in third.stderr and "unreachable after 2 attempts" in third.stderr
    )
    assert "source mail NOT LISTED (nothing of it changed)" in third.stdout
    assert "deleted=0" in third.stdout
    assert index_rows(database_url) == after

    for run in (first, second, third):
        assert PASSWORD not in run.stdout + run.stderr
    assert PASSWORD not in all_text(database_url)
    home = tmp_path / "dagster_home"
    assert not any(PASSWORD in p.read_text(errors="replace") for p in home.rglob("*") if p.is_file())


def test_the_module_imports_nothing_heavy() -> None:
    code = (
        "import sys, connectors.imap; assert 'pymap' not in sys.modules and 'unstructured' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
