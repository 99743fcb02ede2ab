"""The s3 connector against a real S3 API server (moto's server mode, started here on 127.0.0.1):
paginated listing, prefix and globs, ETag versions, lazy fetch, clear errors naming the source, and an
ingest through the command line in which deletions and changes reach the index on the next run."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from connectors import build_connector
from connectors.s3 import S3Connector, S3Settings
from groundwork.errors import ConfigError, ConnectorError
from groundwork.settings import load_config
from tests.conftest import DEMO, write_config
from tests.connectors.cli_support import all_text, cli_ingest, files_under, free_port, index_rows

#: The secret the tests' processes hold in their environment: it must never show up anywhere.
SECRET = "s3cr3t-" + "Zq7xWv4Kp9"
KEY_ID = "AKIAGROUNDWORKTEST"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """A real S3 API server (moto's) on 127.0.0.1 and a free port, for this module."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """Credentials in the environment only (the standard chain), no config files, no metadata service."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    env = {
        "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def _admin(endpoint: str, service: str = "s3") -> Any:
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="admin",
        aws_secret_access_key="admin",  # moto accepts any key while its auth is off
    )


@pytest.fixture
def bucket(endpoint: str) -> str:
    """A new, empty bucket."""
    name = f"gw-{uuid.uuid4().hex[:12]}"
    _admin(endpoint).create_bucket(Bucket=name)
    return name


def _put(endpoint: str, bucket: str, objects: dict[str, bytes]) -> None:
    s3 = _admin(endpoint)
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)


def _connector(endpoint: str, bucket: str, **settings: Any) -> S3Connector:
    model = S3Settings(connector="s3", bucket=bucket, endpoint_url=endpoint, region="us-east-1", **settings)
    return S3Connector("docs", model)


def test_registered_and_configured_from_the_file(tmp_path: Path, endpoint: str) -> None:
    config = load_config(
        write_config(
            tmp_path / "g.yaml",
            {
                "sources": [
                    {
                        "name": "docs",
                        "connector": "s3",
                        "bucket": "reports",
                        "prefix": "hr/",
                        "endpoint_url": endpoint + "/",
                        "region": "eu-west-2",
                        "residency": "uk",
                        "contract": "none",
                        "access": ["group:hr"],
                    }
                ]
            },
        )
    )
    connector = build_connector(config.sources[0])
    assert isinstance(connector, S3Connector)
    assert connector.settings.prefix == "hr/" and connector.settings.endpoint_url == endpoint


def test_lists_every_object_across_pages(aws_env: dict[str, str], endpoint: str, bucket: str) -> None:
    objects = {f"docs/n{i:02d}.txt": f"note {i}".encode() for i in range(7)}
    _put(endpoint, bucket, {**objects, "docs/": b"", "elsewhere.txt": b"x"})
    conn = _connector(endpoint, bucket, prefix="docs/", page_size=2)
    refs = list(conn.list())
    assert [r.source_id for r in refs] == sorted(objects)  # the folder marker and other prefixes left out
    assert conn.pages == 4  # 8 keys under the prefix, 2 per page
    first = refs[0]
    assert first.uri == f"s3://{bucket}/docs/n00.txt"
    assert first.version == "etag:" + hashlib.md5(b"note 0").hexdigest()  # noqa: S324 (S3's own ETag)
    assert first.size_bytes == 6 and first.modified_at is not None and first.source == "docs"
    assert first.permissions is None


def test_prefix_and_globs_select_objects(aws_env: dict[str, str], endpoint: str, bucket: str) -> None:
    _put(
        endpoint,
        bucket,
        {k: b"x" for k in ["hr/a.md", "hr/sub/b.pdf", "hr/sub/c.tmp", "hr2/d.md", "top.md"]},
    )
    assert [r.source_id for r in _connector(endpoint, bucket, prefix="hr/").list()] == [
        "hr/a.md",
        "hr/sub/b.pdf",
        "hr/sub/c.tmp",
    ]
    conn = _connector(endpoint, bucket, include=["**/*.md", "**/*.pdf"], exclude=["hr/sub/**"])
    assert [r.source_id for r in conn.list()] == ["hr/a.md", "hr2/d.md", "top.md"]


def test_odd_keys_are_listed_and_fetched_and_a_nul_is_skipped(
    aws_env: dict[str, str], endpoint: str, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    _put(endpoint, bucket, {"a\x00b.txt": b"nul", "ctl\x01\x1b.txt": b"control", "é ü/x.md": b"# accents"})
    conn = _connector(endpoint, bucket)
    refs = list(conn.list())
    assert [r.source_id for r in refs] == ["ctl\x01\x1b.txt", "é ü/x.md"]
    skipped = [r.getMessage() for r in caplog.records if "NUL" in r.getMessage()]
    assert len(skipped) == 1 and "b.txt" not in skipped[0]  # said, but the key is not named
    assert [conn.fetch(r) for r in refs] == [b"control", b"# accents"]


def test_fetch_is_lazy_and_versions_follow_the_object(
    aws_env: dict[str, str], endpoint: str, bucket: str
) -> None:
    _put(endpoint, bucket, {"a.txt": b"first", "b.txt": b"other"})
    conn = _connector(endpoint, bucket)
    before = {r.source_id: r for r in conn.list()}
    assert conn.fetch(before["a.txt"]) == b"first"
    _put(endpoint, bucket, {"b.txt": b"other"})  # written again with the same content
    _put(endpoint, bucket, {"a.txt": b"second"})
    after = {r.source_id: r for r in conn.list()}
    assert after["a.txt"].version != before["a.txt"].version
    assert after["b.txt"].version == before["b.txt"].version
    assert conn.fetch(after["a.txt"]) == b"second"
    # A reference listed before the object changed never returns the new bytes under the old version.
    with pytest.raises(ConnectorError, match=r"source 'docs': 'a.txt' changed since it was listed"):
        conn.fetch(before["a.txt"])
    _admin(endpoint).delete_object(Bucket=bucket, Key="b.txt")
    assert [r.source_id for r in conn.list()] == ["a.txt"]
    with pytest.raises(ConnectorError, match=r"source 'docs': 'b.txt' no longer exists"):
        conn.fetch(after["b.txt"])
    with pytest.raises(ConnectorError, match="outside the source's prefix"):
        _connector(endpoint, bucket, prefix="hr/").fetch(after["a.txt"])


def test_change_token_moves_only_when_an_object_changes(
    aws_env: dict[str, str], endpoint: str, bucket: str
) -> None:
    _put(endpoint, bucket, {"a.txt": b"one", "b.txt": b"two"})
    conn = _connector(endpoint, bucket)
    token = conn.change_token()
    assert token is not None and conn.change_token() == token
    _put(endpoint, bucket, {"b.txt": b"two, changed"})
    assert conn.change_token() not in (None, token)


def test_an_objects_readers_come_from_its_tag_and_a_change_of_tag_is_seen(
    aws_env: dict[str, str], endpoint: str, bucket: str
) -> None:
    _put(endpoint, bucket, {"pay.txt": b"pay", "team.txt": b"team", "untagged.txt": b"none", "odd.txt": b"x"})
    admin = _admin(endpoint)

    def tag(key: str, value: str) -> None:
        admin.put_object_tagging(
            Bucket=bucket, Key=key, Tagging={"TagSet": [{"Key": "readers", "Value": value}]}
        )

    tag("pay.txt", "hr")
    tag("team.txt", "hr+staff")
    tag("odd.txt", "contractors")  # a name reader_groups does not map: grants nothing
    conn = _connector(
        endpoint,
        bucket,
        readers_tag="readers",
        reader_groups={"hr": ["group:hr"], "staff": ["group:staff", "group:all-staff"]},
    )
    listed = {ref.source_id: ref.permissions for ref in conn.list()}
    assert listed == {
        "odd.txt": (),
        "pay.txt": ("group:hr",),
        "team.txt": ("group:all-staff", "group:hr", "group:staff"),
        "untagged.txt": (),  # no tag: the store names no reader, and ingest refuses the object
    }
    token = conn.change_token()
    tag("pay.txt", "hr staff")  # tags change, the ETag does not
    assert conn.change_token() != token
    assert next(r.permissions for r in conn.list() if r.source_id == "pay.txt") == (
        "group:all-staff",
        "group:hr",
        "group:staff",
    )
    assert all(r.permissions is None for r in _connector(endpoint, bucket).list())  # no tag: policy alone
    with pytest.raises(ValueError, match="set readers_tag too"):
        _connector(endpoint, bucket, reader_groups={"hr": ["group:hr"]})


def test_a_missing_bucket_is_a_clear_error_naming_the_source(aws_env: dict[str, str], endpoint: str) -> None:
    conn = _connector(endpoint, "no-such-bucket")
    with pytest.raises(ConnectorError, match=r"source 'docs': .*bucket 'no-such-bucket'.*does not exist"):
        list(conn.list())


def test_bad_or_missing_credentials_are_clear_errors_naming_the_source(
    aws_env: dict[str, str], endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _put(endpoint, bucket, {"a.txt": b"one"})
    iam = _admin(endpoint, "iam")
    user = f"reader-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_user_policy(UserName=user, PolicyName="read", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    _server_auth(endpoint, "0")  # from now on the server checks every request's signature
    try:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        assert [r.source_id for r in _connector(endpoint, bucket).list()] == ["a.txt"]
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)  # the right key id, the wrong secret
        with pytest.raises(ConnectorError) as wrong:
            list(_connector(endpoint, bucket).list())
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)  # a key id the store does not know
        with pytest.raises(ConnectorError) as unknown:
            list(_connector(endpoint, bucket).list())
    finally:
        _server_auth(endpoint, "inf")
    assert "source 'docs'" in str(wrong.value) and "refused the credentials (SignatureDoesNotMatch)" in str(
        wrong.value
    )
    assert "refused the credentials (InvalidAccessKeyId)" in str(unknown.value)
    for shown in (str(wrong.value), str(unknown.value)):
        assert SECRET not in shown and key["SecretAccessKey"] not in shown and KEY_ID not in shown
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ConnectorError, match=r"source 'docs': .*no usable AWS credentials"):
        list(_connector(endpoint, bucket).list())


def _server_auth(endpoint: str, requests_before_auth: str) -> None:
    """Switch the moto server's signature and IAM checks on ("0") or off ("inf")."""
    request = urllib.request.Request(  # noqa: S310 (a fixed http URL on 127.0.0.1)
        f"{endpoint}/moto-api/reset-auth",
        data=requests_before_auth.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(request) as response:  # noqa: S310
        assert response.status == 200


def test_an_unreachable_store_is_a_transient_error(aws_env: dict[str, str]) -> None:
    conn = _connector(f"http://127.0.0.1:{free_port()}", "any-bucket", max_attempts=2)
    with pytest.raises(ConnectorError, match=r"source 'docs': .*unreachable after 2 attempts.*transient"):
        list(conn.list())
    assert conn.change_token() is None  # unknown: a sensor starts a run, which reports the error


#: A real ListObjectsV2 answer: one object, and more to come (a second page).
FIRST_PAGE = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>busy-bucket</Name>'
    b"<Prefix></Prefix><KeyCount>1</KeyCount><MaxKeys>1</MaxKeys><IsTruncated>true</IsTruncated>"
    b"<NextContinuationToken>page-2</NextContinuationToken><Contents><Key>a.txt</Key>"
    b"<LastModified>2026-11-28T00:00:00.000Z</LastModified><ETag>&quot;0cc175b9c0f1b6a831c399e269772661&quot;"
    b"</ETag><Size>1</Size><StorageClass>STANDARD</StorageClass></Contents></ListBucketResult>"
)


class _FailingStore(http.server.BaseHTTPRequestHandler):
    """A store that is always busy (503 SlowDown) or drops every connection, counting the requests;
    with ``first_page``, it answers the first listing request before failing."""

    drop = False
    first_page = False
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        if self.first_page and len(self.requests) == 1:
            self.send_response(200)
            self.send_header("Content-Length", str(len(FIRST_PAGE)))
            self.end_headers()
            self.wfile.write(FIRST_PAGE)
            return
        if self.drop:
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
        self.send_response(503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize(("drop", "expected"), [(False, "unavailable"), (True, "unreachable")])
def test_transient_failures_are_retried_then_reported(
    aws_env: dict[str, str], drop: bool, expected: str
) -> None:
    handler = type("Handler", (_FailingStore,), {"drop": drop, "requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        conn = _connector(f"http://127.0.0.1:{server.server_address[1]}", "busy-bucket", max_attempts=3)
        with pytest.raises(ConnectorError, match=rf"source 'docs': .*{expected} after 3 attempts.*transient"):
            list(conn.list())
    finally:
        server.shutdown()
        server.server_close()
    assert len(handler.requests) == 3  # the first try and two retries (botocore's backoff between them)


def test_a_listing_that_fails_after_its_first_page_raises_and_never_ends_short(
    aws_env: dict[str, str],
) -> None:
    handler = type("Handler", (_FailingStore,), {"first_page": True, "requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    listed = []
    try:
        conn = _connector(f"http://127.0.0.1:{server.server_address[1]}", "busy-bucket", max_attempts=2)
        with pytest.raises(ConnectorError, match=r"unavailable after 2 attempts.*left as it is"):
            listed.extend(r.source_id for r in conn.list())
    finally:
        server.shutdown()
        server.server_close()
    # The planner consumes the whole listing before deciding anything: a partial one is an error,
    # so the objects on the unread pages are not taken for deleted.
    assert listed == ["a.txt"]
    assert "continuation-token=page-2" in handler.requests[1] and len(handler.requests) == 3


@pytest.mark.parametrize("key", ["aws_secret_access_key", "aws_access_key_id", "session_token", "password"])
def test_credentials_in_the_config_file_are_refused_without_echoing_them(tmp_path: Path, key: str) -> None:
    source = {
        "name": "docs",
        "connector": "s3",
        "bucket": "reports",
        "residency": "uk",
        "contract": "none",
        "access": ["public"],
    }
    path = write_config(tmp_path / "g.yaml", {"sources": [{**source, key: SECRET}]})
    with pytest.raises(
        ConfigError, match=rf"credentials never go in the configuration file \(found {key}\)"
    ) as e:
        load_config(path)
    assert SECRET not in str(e.value)
    path = write_config(
        tmp_path / "h.yaml", {"sources": [{**source, "endpoint_url": f"https://me:{SECRET}@minio.local"}]}
    )
    with pytest.raises(ConfigError, match="must not hold a user or password") as e:
        load_config(path)
    assert SECRET not in str(e.value)


# --- The command line: ingest, then deletions and changes in the bucket reach the index -------------

DOCS = ["annual-leave.md", "remote-working.txt", "expenses.html"]


def test_cli_ingest_follows_deletions_and_changes_in_the_bucket(
    aws_env: dict[str, str], endpoint: str, bucket: str, database_url: str, tmp_path: Path
) -> None:
    corpus = DEMO / "corpus" / "handbook"
    _put(endpoint, bucket, {f"handbook/{name}": (corpus / name).read_bytes() for name in DOCS})
    _put(endpoint, bucket, {"other/ignored.md": b"# Not under the prefix"})
    (tmp_path / "dagster_home").mkdir()
    (tmp_path / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    source = {
        "name": "docs",
        "connector": "s3",
        "bucket": bucket,
        "prefix": "handbook/",
        "endpoint_url": endpoint,
        "region": "us-east-1",
        "residency": "eu",
        "contract": "none",
        "access": ["group:staff"],
    }
    config = {"sources": [source], "database": {"url": database_url}, "state_dir": str(tmp_path / "state")}
    write_config(tmp_path / "groundwork.yaml", config)

    first = cli_ingest(tmp_path, aws_env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "listed: new=3 changed=0 unchanged=0" in first.stdout
    assert "index/eu: wrote 3 documents" in first.stdout
    before = index_rows(database_url)
    assert sorted(before) == [f"handbook/{n}" for n in sorted(DOCS)]

    # One object deleted, one changed, one left alone.
    s3 = _admin(endpoint)
    s3.delete_object(Bucket=bucket, Key="handbook/expenses.html")
    changed = (corpus / "remote-working.txt").read_bytes() + b"\n\nHot desks are booked a week ahead.\n"
    s3.put_object(Bucket=bucket, Key="handbook/remote-working.txt", Body=changed)

    second = cli_ingest(tmp_path, aws_env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "listed: new=0 changed=1 unchanged=1 retag=0 move=0 rename=0 deleted=1" in second.stdout
    after = index_rows(database_url)
    assert sorted(after) == ["handbook/annual-leave.md", "handbook/remote-working.txt"]
    remote = after["handbook/remote-working.txt"]
    assert remote[0] == "etag:" + hashlib.md5(changed).hexdigest()  # noqa: S324 (S3's own ETag)
    assert any("Hot desks are booked a week ahead." in text for text in remote[3])
    # Only the changed document was embedded again; the untouched one's rows were not even rewritten.
    assert f"embeddings computed: {len(remote[2])}\n" in second.stdout
    assert after["handbook/annual-leave.md"] == before["handbook/annual-leave.md"]

    # The store goes away: the run reports the source, and nothing is deleted.
    write_config(
        tmp_path / "groundwork.yaml",
        {
            **config,
            "sources": [{**source, "endpoint_url": f"http://127.0.0.1:{free_port()}", "max_attempts": 2}],
        },
    )
    third = cli_ingest(tmp_path, aws_env)
    assert third.returncode == 3, third.stderr[-3000:]  # the run succeeded; a source was not listed
    assert (
        "source docs could not be listed" in third.stderr and "unreachable after 2 attempts" in third.stderr
    )
    assert "source docs NOT LISTED (nothing of it changed)" in third.stdout
    assert "deleted=0" in third.stdout
    assert index_rows(database_url) == after

    for run in (first, second, third):
        assert SECRET not in run.stdout + run.stderr
    assert SECRET not in all_text(database_url)
    assert not any(SECRET in p.read_text(errors="replace") for p in files_under(tmp_path / "dagster_home"))


def test_the_module_needs_no_boto3_to_import() -> None:
    code = "import sys, connectors.s3; assert 'boto3' not in sys.modules and 'botocore' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
