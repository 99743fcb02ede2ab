"""The MCP server, driven by the official SDK's client: over streamable HTTP under a live server, and
over stdio as the ``groundwork mcp`` subprocess an agent host launches.

Searches through MCP are the API's searches: same access control, same fields, same audit row.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import psycopg
import pytest
import yaml
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from indexes.search import Retriever
from serving.api import create_app
from serving.mcp import MCP_PATH, mount_mcp
from tests.conftest import ALICE_KEY, BOB_KEY, serve

LEAVE = "How many days of annual leave do I get?"
SECRET_QUERY = "ssn 123-45-6789 of Jane Q. Public"


@pytest.fixture(scope="module")
def live(demo_reader: Retriever) -> Iterator[str]:
    """``groundwork serve``'s app (API and MCP) on a real uvicorn server; yields its base URL."""
    config = demo_reader.config.model_copy(
        update={"api": demo_reader.config.api.model_copy(update={"rate_limit_burst": 10_000})}
    )
    app = create_app(config, demo_reader)
    mount_mcp(app, config, demo_reader, host="127.0.0.1")
    with serve(app) as url:
        yield url


def _call(base: str, key: str, name: str, arguments: dict[str, Any]) -> Any:
    async def go() -> Any:
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60) as http,
            Client(streamable_http_client(base + MCP_PATH, http_client=http)) as client,
        ):
            return await client.call_tool(name, arguments)

    return asyncio.run(go())


def _text(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


def test_the_search_tool_answers_what_the_api_answers(live: str) -> None:
    result = _call(live, ALICE_KEY, "search", {"query": LEAVE, "k": 3})
    assert not result.is_error, _text(result)
    found = result.structured_content
    assert found["decision"] == "answer"
    assert 0.0 <= found["confidence"] <= 1.0
    assert len(found["results"]) == 3
    assert "25 days" in found["results"][0]["text"]
    http = httpx.post(
        live + "/v1/search",
        json={"query": LEAVE, "k": 3},
        headers={"Authorization": f"Bearer {ALICE_KEY}"},
    ).json()
    assert [r["chunk_id"] for r in found["results"]] == [r["chunk_id"] for r in http["results"]]
    assert found["confidence"] == pytest.approx(http["confidence"])


def test_each_principal_sees_only_its_own_documents(live: str) -> None:
    query = {"query": "grievance hearing arrangements", "k": 10}
    alice = _call(live, ALICE_KEY, "search", query).structured_content
    bob = _call(live, BOB_KEY, "search", query).structured_content
    assert {r["residency"] for r in bob["results"]} <= set(bob["regions_searched"])
    assert {r["chunk_id"] for r in alice["results"]} != {r["chunk_id"] for r in bob["results"]}


def test_an_mcp_search_is_audited(live: str, demo_reader: Retriever) -> None:
    found = _call(live, ALICE_KEY, "search", {"query": LEAVE, "k": 2}).structured_content
    region = found["regions_searched"][0]
    target = demo_reader.catalog.targets[region]
    with psycopg.connect(target.dsn) as conn:
        row = conn.execute(
            f"SELECT principal, k FROM {target.schema}.retrieval_audit WHERE request_id = %s",
            (uuid.UUID(found["request_id"]),),
        ).fetchone()
    assert row == ("alice", 2)


@pytest.mark.parametrize("key", ["", "not-a-key"])
def test_without_a_valid_credential_the_endpoint_answers_401(live: str, key: str) -> None:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    headers |= {"Accept": "application/json, text/event-stream"}
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    r = httpx.post(live + MCP_PATH, json=initialize, headers=headers)
    assert r.status_code == 401
    assert r.json()["error"] == "unauthorized"
    assert r.headers["www-authenticate"] == "Bearer"
    assert "not-a-key" not in r.text


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ({"query": ""}, "query"),
        ({"query": "   "}, "must not be blank"),
        ({"query": LEAVE, "k": 0}, "k"),
        ({"query": LEAVE, "k": 100_000}, "k"),
        ({"query": {"ssn": SECRET_QUERY}}, "query"),
        ({"query": LEAVE, SECRET_QUERY: 1}, "unknown argument"),
        ({"k": 3}, "query"),
    ],
)
def test_bad_arguments_are_a_tool_error_that_echoes_nothing(
    live: str, arguments: dict[str, Any], fragment: str
) -> None:
    result = _call(live, ALICE_KEY, "search", arguments)
    assert result.is_error
    text = _text(result)
    assert fragment in text
    assert SECRET_QUERY not in text and "123-45-6789" not in text


def test_the_tool_is_listed_with_its_schema(live: str) -> None:
    async def go() -> Any:
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {ALICE_KEY}"}) as http,
            Client(streamable_http_client(live + MCP_PATH, http_client=http)) as client,
        ):
            return await client.list_tools()

    tools = {t.name: t for t in asyncio.run(go()).tools}
    assert set(tools) == {"search", "check_action"}
    assert tools["search"].input_schema["required"] == ["query"]
    assert "handoff" in (tools["search"].description or "")
    assert set(tools["check_action"].input_schema["required"]) == {"request_ids", "action", "idempotency_key"}


def _stdio(config: Path, key: str | None) -> StdioServerParameters:
    env = {k: v for k, v in os.environ.items() if k != "GROUNDWORK_API_KEY"}
    if key is not None:
        env["GROUNDWORK_API_KEY"] = key
    exe = Path(sys.executable).with_name("groundwork")
    return StdioServerParameters(command=str(exe), args=["mcp", "--config", str(config)], env=env)


@pytest.fixture(scope="module")
def demo_config_file(demo_reader: Retriever, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ingested demo index's config as a file, for the ``groundwork mcp`` subprocess."""
    path = tmp_path_factory.mktemp("mcp") / "groundwork.yaml"
    config = demo_reader.config
    data = config.model_dump(mode="json", exclude_none=True, exclude={"database"})
    data["database"] = {"url": config.database.url.get_secret_value()} if config.database.url else {}
    path.write_text(yaml.safe_dump(data))
    return path


def test_stdio_server_searches_as_the_principal_in_its_environment(demo_config_file: Path) -> None:
    async def go() -> Any:
        async with Client(_stdio(demo_config_file, BOB_KEY), read_timeout_seconds=120) as client:
            return await client.call_tool("search", {"query": "grievance hearing arrangements", "k": 5})

    bob = asyncio.run(go())  # bob reads the staff handbook (EU), never the HR folder (UK)
    assert not bob.is_error, _text(bob)
    assert bob.structured_content["results"]
    assert {r["source"] for r in bob.structured_content["results"]} == {"handbook"}
    assert bob.structured_content["regions_searched"] == ["eu"]


@pytest.mark.parametrize("key", [None, "not-a-key"])
def test_stdio_server_refuses_to_start_without_a_valid_key(demo_config_file: Path, key: str | None) -> None:
    import subprocess

    env = _stdio(demo_config_file, key).env
    done = subprocess.run(
        [str(Path(sys.executable).with_name("groundwork")), "mcp", "--config", str(demo_config_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode != 0
    assert "GROUNDWORK_API_KEY" in done.stderr or "unknown" in done.stderr.lower()
    assert "not-a-key" not in done.stderr
    assert done.stdout == ""


def test_check_action_over_mcp_is_the_action_gate(live: str) -> None:
    found = _call(live, ALICE_KEY, "search", {"query": LEAVE, "k": 3}).structured_content
    key = uuid.uuid4().hex
    arguments = {"request_ids": [found["request_id"]], "action": "create_ticket", "idempotency_key": key}
    first = _call(live, ALICE_KEY, "check_action", arguments)
    assert not first.is_error, _text(first)
    assert first.structured_content["allowed"] is True  # the demo config's rule for create_ticket
    again = _call(live, ALICE_KEY, "check_action", arguments).structured_content
    assert again["replayed"] is True and again["allowed"] is True
    bobs = _call(live, BOB_KEY, "check_action", arguments | {"idempotency_key": uuid.uuid4().hex})
    assert bobs.structured_content["allowed"] is False  # alice's search is unknown to bob
    assert "unknown_request" in bobs.structured_content["reasons"]
    bad = _call(live, ALICE_KEY, "check_action", arguments | {"request_ids": [SECRET_QUERY]})
    assert bad.is_error and "request_ids" in _text(bad) and SECRET_QUERY not in _text(bad)
