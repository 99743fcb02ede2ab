"""Conversations, the action gate and chain events, over the API on the ingested demo index.

Each test uses its own conversation and idempotency keys: the ledger is append-only and shared by
the module's app.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from groundwork.agents import ActionRule, AgentsConfig
from indexes.search import Retriever
from serving.api import create_app
from tests.conftest import ALICE_KEY, BOB_KEY

LEAVE = "How many days of annual leave do I get?"
OFF_TOPIC = "What is the best recipe for banana bread?"
BUDGET = 300

RULES = {
    "create_ticket": ActionRule(min_confidence=0.5),
    "refund": ActionRule(enabled=False),
    "escalate": ActionRule(rollout_percent=0),
    "hr_only": ActionRule(sources=["hr"]),
    "flaky": ActionRule(max_failure_rate=0.5, min_outcomes=2),
    "costly": ActionRule(max_daily_cost=1.0),
}


@pytest.fixture(scope="module")
def client(demo_reader: Retriever) -> TestClient:
    base = demo_reader.config
    config = base.model_copy(
        update={
            "api": base.api.model_copy(update={"rate_limit_burst": 10_000}),
            "agents": AgentsConfig(conversation_token_budget=BUDGET, actions=RULES),
        }
    )
    return TestClient(create_app(config, demo_reader), raise_server_exceptions=False)


def _post(client: TestClient, path: str, body: Any, key: str = ALICE_KEY) -> Any:
    return client.post(path, json=body, headers={"Authorization": f"Bearer {key}"})


def _search(client: TestClient, query: str, key: str = ALICE_KEY, **extra: Any) -> dict[str, Any]:
    r = _post(client, "/v1/search", {"query": query, "k": 3, **extra}, key)
    assert r.status_code == 200, r.text
    return r.json()


def _check(client: TestClient, ids: list[str], action: str, key: str | None = None, **extra: Any) -> Any:
    body = {"request_ids": ids, "action": action, "idempotency_key": key or uuid.uuid4().hex, **extra}
    return _post(client, "/v1/actions/check", body)


def test_a_conversation_gets_its_budget_and_no_more(client: TestClient) -> None:
    conversation = uuid.uuid4().hex
    spent, answers = 0, []
    for _ in range(8):
        body = _search(client, LEAVE, conversation_id=conversation)
        spent += body["context_tokens"]
        answers.append(body)
    assert spent <= BUDGET
    assert answers[0]["results"] and answers[0]["decision"] == "answer"
    last = answers[-1]
    assert last["results"] == [] and last["decision"] == "handoff"
    assert last["reasons"] == ["conversation_budget"]
    other = _search(client, LEAVE, conversation_id=uuid.uuid4().hex)  # another conversation is unaffected
    assert other["results"] and other["decision"] == "answer"
    without = _search(client, LEAVE)  # and so is a search outside any conversation
    assert without["results"]


def test_parallel_searches_of_a_conversation_share_its_budget(client: TestClient) -> None:
    """An agent's parallel tool calls in one conversation get the budget once between them."""
    conversation, n = uuid.uuid4().hex, 6
    start = threading.Barrier(n)

    def search(_: int) -> dict[str, Any]:
        start.wait()
        return _search(client, LEAVE, conversation_id=conversation)

    with ThreadPoolExecutor(n) as pool:
        answers = list(pool.map(search, range(n)))
    assert sum(a["context_tokens"] for a in answers) <= BUDGET
    assert any(a["results"] and a["decision"] == "answer" for a in answers)
    assert any(a["reasons"] == ["conversation_budget"] for a in answers)
    later = _search(client, LEAVE, conversation_id=conversation)  # nothing left after them either
    assert later["results"] == [] and later["reasons"] == ["conversation_budget"]
    assert client.app.state.ledgers._turns == {}  # no lock is kept once its searches end


def test_a_strong_search_lets_the_action_proceed_once(client: TestClient) -> None:
    conversation = uuid.uuid4().hex
    found = _search(client, LEAVE, conversation_id=conversation)
    key = uuid.uuid4().hex
    first = _check(client, [found["request_id"]], "create_ticket", key, conversation_id=conversation)
    assert first.status_code == 200, first.text
    assert first.json() == {
        "allowed": True,
        "decision": "proceed",
        "reasons": [],
        "idempotency_key": key,
        "replayed": False,
        "executed": False,
    }
    again = _check(client, [found["request_id"]], "create_ticket", key, conversation_id=conversation).json()
    assert again["allowed"] and again["replayed"] and not again["executed"]
    event = {"conversation_id": conversation, "kind": "action_executed", "action": "create_ticket"}
    r = _post(client, "/v1/events", event | {"idempotency_key": key, "latency_ms": 120.0, "cost": 0.02})
    assert r.status_code == 201, r.text
    retry = _check(client, [found["request_id"]], "create_ticket", key, conversation_id=conversation).json()
    assert retry["allowed"] is False and retry["executed"] is True
    assert retry["decision"] == "already_executed" and retry["reasons"] == ["already_executed"]


def test_the_same_key_with_other_inputs_is_a_conflict(client: TestClient) -> None:
    a, b = _search(client, LEAVE)["request_id"], _search(client, LEAVE)["request_id"]
    key = uuid.uuid4().hex
    assert _check(client, [a], "create_ticket", key).status_code == 200
    r = _check(client, [b], "create_ticket", key)
    assert r.status_code == 409
    assert r.json()["error"] == "idempotency_conflict" and b not in r.text


@pytest.mark.parametrize(
    ("query", "action", "reasons"),
    [
        (OFF_TOPIC, "create_ticket", {"low_confidence", "decision"}),
        (LEAVE, "no_such_action", {"no_rule"}),
        (LEAVE, "refund", {"disabled"}),
        (LEAVE, "escalate", {"not_in_rollout"}),
        (LEAVE, "hr_only", {"source_not_allowed"}),  # the leave answer comes from the handbook
    ],
)
def test_the_gate_stays_closed_and_says_why(
    client: TestClient, query: str, action: str, reasons: set[str]
) -> None:
    found = _search(client, query)
    answer = _check(client, [found["request_id"]], action).json()
    assert answer["allowed"] is False and answer["decision"] == "handoff"
    assert set(answer["reasons"]) >= reasons


def test_searches_the_caller_did_not_make_are_unknown(client: TestClient) -> None:
    bobs = _search(client, LEAVE, key=BOB_KEY)["request_id"]
    for ids in ([bobs], [str(uuid.uuid4())]):
        answer = _check(client, ids, "create_ticket").json()
        assert answer["allowed"] is False and "unknown_request" in answer["reasons"]


def test_the_brakes_close_an_action_for_everyone(client: TestClient) -> None:
    conversation = uuid.uuid4().hex
    for n in range(2):  # bob's failures close the action for alice too
        event = {
            "conversation_id": conversation,
            "kind": "action_failed",
            "action": "flaky",
            "idempotency_key": f"bob-flaky-{n}",
        }
        assert _post(client, "/v1/events", event, BOB_KEY).status_code == 201
    spend = {
        "conversation_id": conversation,
        "kind": "action_executed",
        "action": "costly",
        "idempotency_key": "bob-costly-1",
        "cost": 1.5,
    }
    assert _post(client, "/v1/events", spend, BOB_KEY).status_code == 201
    found = _search(client, LEAVE)["request_id"]
    assert "failure_brake" in _check(client, [found], "flaky").json()["reasons"]
    assert "cost_brake" in _check(client, [found], "costly").json()["reasons"]


def test_the_chain_shows_every_step_with_details_redacted(client: TestClient) -> None:
    conversation = uuid.uuid4().hex
    found = _search(client, LEAVE, conversation_id=conversation)
    key = uuid.uuid4().hex
    _check(client, [found["request_id"]], "create_ticket", key, conversation_id=conversation)
    detail = "Drafted a reply to Priya Raman <priya.raman@example.co.uk> about leave"
    r = _post(client, "/v1/events", {"conversation_id": conversation, "kind": "draft", "detail": detail})
    assert r.status_code == 201
    chain = client.get(f"/v1/conversations/{conversation}", headers={"Authorization": f"Bearer {ALICE_KEY}"})
    assert chain.status_code == 200, chain.text
    steps = chain.json()["steps"]
    assert [s["type"] for s in steps] == ["search", "action_check", "event"]
    assert steps[0]["request_id"] == found["request_id"]
    assert steps[1]["idempotency_key"] == key and steps[1]["allowed"] is True
    assert "priya.raman@example.co.uk" not in chain.text and "Priya" not in chain.text
    assert "<EMAIL_ADDRESS>" in steps[2]["detail"]
    hidden = client.get(f"/v1/conversations/{conversation}", headers={"Authorization": f"Bearer {BOB_KEY}"})
    assert hidden.status_code == 404  # bob cannot read alice's conversation


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/events", {"conversation_id": "c", "kind": "action_executed", "action": "create_ticket"}),
        ("/v1/events", {"conversation_id": "c", "kind": "lunch"}),
        ("/v1/events", {"conversation_id": "c d", "kind": "draft"}),
        ("/v1/events", {"conversation_id": "c", "kind": "draft", "cost": -1}),
        ("/v1/actions/check", {"request_ids": ["not-a-uuid"], "action": "a", "idempotency_key": "k" * 8}),
        ("/v1/actions/check", {"request_ids": [], "action": "a", "idempotency_key": "k" * 8}),
        (
            "/v1/actions/check",
            {"request_ids": [str(uuid.uuid4())] * 21, "action": "a", "idempotency_key": "k" * 8},
        ),
        (
            "/v1/actions/check",
            {"request_ids": [str(uuid.uuid4())], "action": "a", "idempotency_key": "short"},
        ),
    ],
)
def test_bad_agent_requests_are_422_and_echo_nothing(
    client: TestClient, path: str, body: dict[str, Any]
) -> None:
    r = _post(client, path, body)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_request"
    assert "not-a-uuid" not in r.text and "lunch" not in r.text


def test_the_ledger_is_append_only_and_private_to_each_caller(
    client: TestClient, demo_reader: Retriever
) -> None:
    _search(client, LEAVE)  # alice's own row: the test does not lean on the module's earlier tests
    _search(client, LEAVE, key=BOB_KEY)
    target = demo_reader.catalog.targets["eu"]  # alice's and bob's first region
    with psycopg.connect(target.owner_dsn, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute(f"UPDATE {target.schema}.agent_searches SET confidence = 1")
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute(f"DELETE FROM {target.schema}.agent_searches")  # a recent row: refused
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute(f"TRUNCATE {target.schema}.action_checks")
    assert target.reader_dsn is not None
    with psycopg.connect(target.reader_dsn) as conn:  # the API's reader role, as alice
        conn.execute("SELECT set_config('groundwork.principal', 'alice', true)")
        rows = conn.execute(f"SELECT DISTINCT principal FROM {target.schema}.agent_searches").fetchall()
        assert rows == [("alice",)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                f"INSERT INTO {target.schema}.agent_events (principal, conversation_id, kind)"
                " VALUES ('bob', 'c', 'draft')"
            )


def test_gate_answers_and_reported_steps_are_counted_in_metrics(client: TestClient) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = client.get("/metrics").text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    before = scrape()
    found = _search(client, OFF_TOPIC)["request_id"]
    _check(client, [found], "create_ticket")
    conversation = uuid.uuid4().hex
    for kind in ("draft", "handed_off"):
        event = {"conversation_id": conversation, "kind": kind, "latency_ms": 250.0, "cost": 0.5}
        assert _post(client, "/v1/events", event).status_code == 201
    after = scrape()

    def moved(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert moved("groundwork_action_checks_total", decision="handoff") == 1
    assert moved("groundwork_action_check_reasons_total", reason="low_confidence") == 1
    assert moved("groundwork_agent_events_total", kind="handed_off") == 1
    assert moved("groundwork_agent_conversations_total") == 1  # two steps, one conversation
    assert moved("groundwork_agent_cost_total") == pytest.approx(1.0)
    assert moved("groundwork_agent_step_latency_seconds_count", kind="draft") == 1


def test_the_kill_switch_overrides_a_stored_answer(client: TestClient, demo_reader: Retriever) -> None:
    found = _search(client, LEAVE)["request_id"]
    key = uuid.uuid4().hex
    assert _check(client, [found], "create_ticket", key).json()["allowed"] is True
    base = demo_reader.config
    switched = base.model_copy(
        update={"agents": AgentsConfig(actions={"create_ticket": ActionRule(enabled=False)})}
    )
    other = TestClient(create_app(switched, demo_reader), raise_server_exceptions=False)
    retry = _check(other, [found], "create_ticket", key).json()  # a replica whose config turned it off
    assert retry["allowed"] is False and retry["replayed"] is True
    assert retry["reasons"] == ["disabled"]
