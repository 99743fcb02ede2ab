"""Trying to break the API: JWT forgeries, reloads, rate limits, size and type limits, injection."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import jwt
import psycopg
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from groundwork.settings import load_config
from indexes.search import Retriever
from serving.api import create_app
from tests.conftest import ALICE_KEY, BOB_KEY

SECRET = "s" * 40
ISS = "https://idp.example.test"
AUD = "groundwork"


def _keypair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


PRIVATE, PUBLIC = _keypair()
OTHER_PRIVATE, _ = _keypair()


@pytest.fixture(scope="module")
def config_path(demo_reader: Retriever, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("apisec")
    (folder / "idp.pem").write_text(PUBLIC)
    data = yaml.safe_load(
        (Path(demo_reader.config.sources[0].settings.path).parents[1] / "groundwork.yaml").read_text()
    )
    data["sources"] = [
        {**s, "path": str(src.settings.path)}
        for s, src in zip(data["sources"], demo_reader.config.sources, strict=True)
    ]
    data["auth"] = {
        "jwt": {
            "algorithms": ["HS256", "RS256"],
            "secret": SECRET,
            "public_key_file": "idp.pem",
            "issuer": ISS,
            "audience": AUD,
        }
    }
    data["api"] = {"rate_limit_per_minute": 6000, "rate_limit_burst": 1000, "max_body_bytes": 4096}
    path = folder / "groundwork.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def client(demo_reader: Retriever, config_path: Path) -> TestClient:
    app = create_app(load_config(config_path), demo_reader, config_path=config_path)
    return TestClient(app, raise_server_exceptions=False)


def token(alg: str = "HS256", key: str = SECRET, **claims: object) -> str:
    now = int(time.time())
    # Tokens of parametrized cases are made when tests are collected, long before a slow run uses them.
    body = {"sub": "dana", "groups": ["hr"], "regions": ["uk"], "iss": ISS, "aud": AUD, "exp": now + 86_400}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, key, algorithm=alg)


def post(client: TestClient, credential: str | None, body: object = None, **kw: object):
    headers = {"Authorization": f"Bearer {credential}"} if credential else {}
    headers.update(kw.pop("headers", {}))  # type: ignore[arg-type]
    return client.post(
        "/v1/search", json=body or {"query": "grievance hearing", "k": 5}, headers=headers, **kw
    )


def test_valid_hs256_and_rs256_tokens_are_accepted(client: TestClient) -> None:
    for credential in (token(), token("RS256", PRIVATE)):
        r = post(client, credential)
        assert r.status_code == 200, r.text
        assert r.json()["regions_searched"] == ["uk"]
        assert {res["residency"] for res in r.json()["results"]} == {"uk"}


@pytest.mark.parametrize(
    ("credential", "message"),
    [
        (token(exp=int(time.time()) - 3600), "expired"),
        (token(aud="someone-else"), "audience"),
        (token(iss="https://evil.example"), "issuer"),
        (token(key="x" * 40), "invalid token"),
        (token("RS256", OTHER_PRIVATE), "invalid token"),
        (token(exp=None), "invalid token"),
        (token(sub="robert'); DROP TABLE chunks;--"), "claims"),
        (token(regions="uk"), "claims"),
        (
            jwt.encode(
                {"sub": "dana", "iss": ISS, "aud": AUD, "exp": int(time.time()) + 86_400},
                None,
                algorithm="none",
            ),
            "algorithm",
        ),
        (
            jwt.encode(
                {"sub": "dana", "iss": ISS, "aud": AUD, "exp": int(time.time()) + 86_400},
                SECRET,
                algorithm="HS512",
            ),
            "algorithm",
        ),
        ("not.a.jwt", "malformed"),
    ],
)
def test_forged_expired_or_malformed_tokens_get_401(
    client: TestClient, credential: str, message: str
) -> None:
    r = post(client, credential)
    assert r.status_code == 401
    assert message in r.json()["message"]
    assert "results" not in r.json()


def test_public_key_used_as_hmac_secret_is_refused(
    demo_reader: Retriever, config_path: Path, tmp_path: Path
) -> None:
    # The classic algorithm-confusion forgery: sign HS256 with the RS256 public key.
    data = yaml.safe_load(config_path.read_text())
    data["auth"]["jwt"] = {**data["auth"]["jwt"], "algorithms": ["RS256"], "secret": None}
    data["auth"]["jwt"]["public_key_file"] = str(config_path.parent / "idp.pem")
    path = tmp_path / "rs-only.yaml"
    path.write_text(yaml.safe_dump(data))
    app = create_app(load_config(path), demo_reader)
    forged = jwt.encode(
        {
            "sub": "dana",
            "groups": ["hr"],
            "regions": ["uk"],
            "iss": ISS,
            "aud": AUD,
            "exp": int(time.time()) + 86_400,
        },
        "x" * 40,
        algorithm="HS256",
    )
    r = post(TestClient(app), forged)
    assert r.status_code == 401


def test_identity_comes_from_the_credential_not_the_request(client: TestClient) -> None:
    r = post(client, BOB_KEY, {"query": "grievance hearing", "k": 5, "principal": "alice"})
    assert r.status_code == 422
    assert r.json()["message"].startswith("unknown field") and "alice" not in r.text
    r = post(client, BOB_KEY, headers={"X-Principal": "alice", "X-Groups": "hr"})
    assert r.status_code == 200
    assert {res["residency"] for res in r.json()["results"]} == {"eu"}
    assert post(client, f"{BOB_KEY} alice").status_code == 401
    assert post(client, ALICE_KEY[:-1] + "b").status_code == 401


@pytest.mark.parametrize(
    "field",
    ["source", "filter", "where", "residency", "regions", "groups", "access"],
)
def test_filter_fields_are_refused_not_interpreted(client: TestClient, field: str) -> None:
    r = post(client, BOB_KEY, {"query": "annual leave", "k": 5, field: "' OR 1=1 --"})
    assert r.status_code == 422
    # The message is the same whatever the field: neither its name nor its value is echoed.
    assert r.json()["message"] == post(client, BOB_KEY, {"query": "x", "zz_other": 1}).json()["message"]
    assert r.json()["message"].startswith("unknown field") and "OR 1=1" not in r.text


@pytest.mark.parametrize(
    "query",
    [
        "' OR '1'='1",
        "x'); DELETE FROM groundwork.chunks; --",
        "%' UNION SELECT text FROM groundwork.chunks --",
        "\\x00",
    ],
)
def test_sql_injection_in_the_query_is_inert(client: TestClient, query: str) -> None:
    r = post(client, BOB_KEY, {"query": query, "k": 50})
    assert r.status_code == 200
    assert all(res["residency"] == "eu" and res["source"] == "handbook" for res in r.json()["results"])
    assert post(client, ALICE_KEY, {"query": "salary bands", "k": 1}).json()["results"]


def test_size_and_content_type_limits(client: TestClient) -> None:
    auth = {"Authorization": f"Bearer {BOB_KEY}"}
    big = client.post("/v1/search", json={"query": "x" * 5000, "k": 1}, headers=auth)
    assert big.status_code == 413
    assert big.json()["error"] == "body_too_large"
    text = client.post("/v1/search", content=b"query=x", headers={**auth, "Content-Type": "text/plain"})
    assert text.status_code == 415
    form = client.post("/v1/search", data={"query": "x"}, headers=auth)
    assert form.status_code == 415
    assert post(client, BOB_KEY, {"query": "x", "k": 10**9}).status_code == 422
    assert (
        client.post(
            "/v1/search", content=b"{", headers={**auth, "Content-Type": "application/json"}
        ).status_code
        == 422
    )


def test_rate_limit_answers_429_per_principal(demo_reader: Retriever) -> None:
    config = demo_reader.config.model_copy(
        update={
            "api": demo_reader.config.api.model_copy(
                update={"rate_limit_per_minute": 1, "rate_limit_burst": 2}
            )
        }
    )
    c = TestClient(create_app(config, demo_reader))
    codes = [post(c, BOB_KEY).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    limited = post(c, BOB_KEY)
    assert int(limited.headers["retry-after"]) >= 1
    assert post(c, ALICE_KEY).status_code == 200  # another principal has its own bucket


def test_principals_and_keys_reload_without_restart(
    demo_reader: Retriever, config_path: Path, tmp_path: Path
) -> None:
    path = tmp_path / "live.yaml"
    data = yaml.safe_load(config_path.read_text())
    data["auth"]["jwt"]["public_key_file"] = str(config_path.parent / "idp.pem")
    path.write_text(yaml.safe_dump(data))
    c = TestClient(create_app(load_config(path), demo_reader, config_path=path))
    new_key = "rotated-key-for-erin"
    assert post(c, new_key).status_code == 401
    data = yaml.safe_load(path.read_text())
    data["principals"].append(
        {
            "name": "erin",
            "api_key_sha256": hashlib.sha256(new_key.encode()).hexdigest(),
            "groups": ["staff"],
            "regions": ["eu"],
        }
    )
    data["principals"] = [p for p in data["principals"] if p["name"] != "bob"]
    path.write_text(yaml.safe_dump(data))
    os.utime(path, (time.time() + 5, time.time() + 5))
    time.sleep(1.1)
    assert post(c, new_key).status_code == 200
    assert post(c, BOB_KEY).status_code == 401
    path.write_text("sources: [broken")  # an invalid edit keeps the last good principals
    os.utime(path, (time.time() + 10, time.time() + 10))
    time.sleep(1.1)
    assert post(c, new_key).status_code == 200


def test_jwt_search_is_audited_as_jwt(client: TestClient, demo_reader: Retriever) -> None:
    import psycopg

    assert post(client, token(sub="auditee")).status_code == 200
    uk = demo_reader.catalog.targets["uk"]
    with psycopg.connect(uk.dsn) as conn:
        row = conn.execute(
            f"SELECT principal, auth_method FROM {uk.schema}.retrieval_audit ORDER BY audit_id DESC LIMIT 1"
        ).fetchone()
    assert row == ("auditee", "jwt")


@pytest.mark.parametrize(
    "body",
    [
        {"query": "annual\u0000leave"},
        {"query": "annual leave", "filters": {"sources": ["hand\u0000book"]}},
        {"query": "annual leave", "filters": {"content_types": ["text/\u0000plain"]}},
    ],
)
def test_a_nul_character_is_a_422_not_a_500(client: TestClient, body: dict[str, object]) -> None:
    r = client.post("/v1/search", json=body, headers={"Authorization": f"Bearer {ALICE_KEY}"})
    assert r.status_code == 422
    assert set(r.json()) == {"error", "message"} and r.json()["error"] == "invalid_request"
    assert "\u0000" not in r.text


def test_the_audit_keeps_no_identifier_shaped_value(client: TestClient, demo_reader: Retriever) -> None:
    query = "My NI number is QQ 12 34 56 C, SSN 123-45-6789, account 41234567: what is my leave?"
    r = client.post("/v1/search", json={"query": query}, headers={"Authorization": f"Bearer {ALICE_KEY}"})
    assert r.status_code == 200
    uk = demo_reader.catalog.targets["uk"]
    with psycopg.connect(uk.owner_dsn) as conn:
        row = conn.execute(
            f"SELECT query_redacted FROM {uk.schema}.retrieval_audit ORDER BY audit_id DESC LIMIT 1"
        ).fetchone()
    assert row is not None
    stored = row[0]
    assert "QQ 12 34 56 C" not in stored and "123-45-6789" not in stored and "41234567" not in stored
    assert "what is my leave" in stored


@pytest.mark.parametrize(
    "content",
    [
        b'{"query": "caf\xe9"}',  # not UTF-8
        b"[" * 1000 + b"]" * 1000,  # nested 1,000 deep
        b'{"query": ',  # cut short
    ],
)
def test_malformed_bodies_get_a_422_in_the_error_shape(client: TestClient, content: bytes) -> None:
    r = client.post(
        "/v1/search",
        content=content,
        headers={"Authorization": f"Bearer {ALICE_KEY}", "Content-Type": "application/json"},
    )
    assert r.status_code == 422
    assert set(r.json()) == {"error", "message"}


def test_a_chunked_body_over_the_limit_gets_413(client: TestClient) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(10 * 1024):
            yield b" " * 1024  # 10 MB, no Content-Length

    r = client.post(
        "/v1/search",
        content=chunks(),
        headers={"Authorization": f"Bearer {ALICE_KEY}", "Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert r.json()["error"] == "body_too_large"


def test_a_body_that_does_not_arrive_in_time_gets_408() -> None:
    import asyncio

    from serving.limits import BodyLimitMiddleware

    sent: list[dict[str, object]] = []

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        raise AssertionError("the app must not be called")

    async def trickle():  # type: ignore[no-untyped-def]
        await asyncio.sleep(5)  # one byte, far too late
        return {"type": "http.request", "body": b"{", "more_body": True}

    async def send(message):  # type: ignore[no-untyped-def]
        sent.append(message)

    scope = {"type": "http", "method": "POST", "headers": [(b"content-type", b"application/json")]}
    middleware = BodyLimitMiddleware(app, max_bytes=1024, timeout_s=0.2)
    asyncio.run(asyncio.wait_for(middleware(scope, trickle, send), timeout=3))
    assert sent[0]["status"] == 408
