"""``GET /metrics`` of the retrieval API: counters that move by exactly what was asked, labels from
fixed vocabularies only (never a path, query, key or principal), the scraper token, and the Grafana
dashboard and Prometheus alert rules in deploy/ asking only for series the app exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid
from collections import Counter
from typing import Any

import psycopg
import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from groundwork.enums import Reason
from groundwork.errors import ConfigError
from groundwork.settings import GroundworkConfig
from indexes.search import Retriever
from indexes.stats import IndexStats
from orchestration.services import Services
from serving.api import create_app
from tests.conftest import ALICE_KEY, BOB_KEY, PROJECT

DASHBOARD = PROJECT / "deploy" / "grafana" / "groundwork-dashboard.json"
ALERTS = PROJECT / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = PROJECT / "deploy" / "prometheus" / "alerts_test.yml"

ANSWER_QUERY = "How many days of annual leave do I get?"
HANDOFF_QUERY = "What is the best recipe for banana bread?"
H = "groundwork_http_request_duration_seconds"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _config(reader: Retriever, **api: Any) -> GroundworkConfig:
    base = reader.config
    return base.model_copy(update={"api": base.api.model_copy(update={"rate_limit_burst": 10_000, **api})})


def _metrics_config(reader: Retriever, **metrics: Any) -> GroundworkConfig:
    config = _config(reader)
    api = config.api.model_copy(update={"metrics": config.api.metrics.model_copy(update=metrics)})
    return config.model_copy(update={"api": api})


def _client(config: GroundworkConfig, reader: Retriever) -> TestClient:
    return TestClient(create_app(config, reader), raise_server_exceptions=False)


def _search(client: TestClient, key: str, body: object) -> Any:
    return client.post("/v1/search", json=body, headers={"Authorization": f"Bearer {key}"})


def _scrape(client: TestClient, headers: dict[str, str] | None = None) -> tuple[str, Samples]:
    r = client.get("/metrics", headers=headers or {})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return r.text, samples


def _get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return _get(after, name, **labels) - _get(before, name, **labels)


def test_counters_move_by_exactly_the_requests_made(demo_reader: Retriever) -> None:
    client = _client(_config(demo_reader), demo_reader)
    _, before = _scrape(client)
    answer = _search(client, ALICE_KEY, {"query": ANSWER_QUERY, "k": 3})
    handoff = _search(client, ALICE_KEY, {"query": HANDOFF_QUERY, "k": 3})
    unauthorized = _search(client, "wrong-key-" + ALICE_KEY, {"query": ANSWER_QUERY})
    invalid = _search(client, ALICE_KEY, {"query": ANSWER_QUERY, "k": 0})
    random_path = f"/no-such-{uuid.uuid4().hex}"
    missing = client.get(random_path)
    assert [answer.status_code, handoff.status_code, unauthorized.status_code] == [200, 200, 401]
    assert [invalid.status_code, missing.status_code] == [422, 404]
    bodies = [answer.json(), handoff.json()]
    assert [b["decision"] for b in bodies] == ["answer", "handoff"]
    assert "low_confidence" in bodies[1]["reasons"]
    text, after = _scrape(client)

    assert _moved(before, after, "groundwork_searches_total", decision="answer") == 1
    assert _moved(before, after, "groundwork_searches_total", decision="handoff") == 1
    reasons = Counter(r for b in bodies for r in b["reasons"])
    for reason in Reason:
        assert (
            _moved(before, after, "groundwork_search_reasons_total", reason=reason.value) == reasons[reason]
        )
    assert _moved(before, after, "groundwork_context_budget_refusals_total") == reasons["context_budget"]
    assert _moved(before, after, "groundwork_search_confidence_count") == 2
    assert _moved(before, after, "groundwork_search_confidence_sum") == pytest.approx(
        sum(b["confidence"] for b in bodies)
    )
    assert _moved(before, after, "groundwork_context_tokens_count") == 2
    assert _moved(before, after, "groundwork_context_tokens_sum") == sum(b["context_tokens"] for b in bodies)
    assert sum(b["context_tokens"] for b in bodies) > 0
    assert _moved(before, after, "groundwork_auth_failures_total") == 1
    assert _moved(before, after, "groundwork_rate_limited_total") == 0

    count = f"{H}_count"
    assert _moved(before, after, count, route="/v1/search", method="POST", status="200") == 2
    assert _moved(before, after, count, route="/v1/search", method="POST", status="401") == 1
    assert _moved(before, after, count, route="/v1/search", method="POST", status="422") == 1
    assert _moved(before, after, count, route="other", method="GET", status="404") == 1
    # The first scrape is counted once its answer is sent: under its route, never as a path.
    assert _get(after, count, route="/metrics", method="GET", status="200") == 1
    routes = {dict(labels).get("route") for (name, labels) in after if name.startswith(H)}
    assert routes == {"/v1/search", "other", "/metrics"}

    # Nothing a caller sent reaches a label or a value: not the path, query, key or principal.
    lowered = text.lower()
    for secret in (random_path, "no-such", "annual leave", "banana", ALICE_KEY, "wrong-key", "alice", "bob"):
        assert secret.lower() not in lowered, secret


def test_the_indexes_are_reported_as_ingest_left_them(
    demo_reader: Retriever, ingested_demo: Services
) -> None:
    _, samples = _scrape(_client(_config(demo_reader), demo_reader))
    for region in ("uk", "eu"):
        counts = ingested_demo.index(region).counts()
        assert _get(samples, "groundwork_index_up", region=region) == 1
        assert _get(samples, "groundwork_index_documents", region=region) == counts.documents
        assert _get(samples, "groundwork_index_chunks", region=region) == counts.chunks
        assert _get(samples, "groundwork_index_failed_documents", region=region) == counts.failures
        written = _get(samples, "groundwork_index_last_write_timestamp_seconds", region=region)
        assert 0 < time.time() - written < 24 * 3600
    assert _get(samples, "groundwork_index_failed_documents", region="uk") == 2  # the demo's two broken files


def test_a_region_that_cannot_be_read_is_down_and_the_scrape_still_answers(demo_reader: Retriever) -> None:
    from serving.metrics import install_metrics

    def unreadable(region: str) -> IndexStats:
        raise psycopg.OperationalError("connection refused")

    app = FastAPI()
    install_metrics(app, _config(demo_reader), index_stats=unreadable)
    _, samples = _scrape(TestClient(app))
    assert _get(samples, "groundwork_index_up", region="uk") == 0
    assert ("groundwork_index_documents", frozenset({("region", "uk")})) not in samples


def test_a_chain_end_records_the_chains_duration(demo_reader: Retriever) -> None:
    client = _client(_config(demo_reader), demo_reader)
    conversation = f"metrics-{uuid.uuid4().hex[:8]}"
    auth = {"Authorization": f"Bearer {ALICE_KEY}"}
    _, before = _scrape(client)
    assert (
        _search(client, ALICE_KEY, {"query": HANDOFF_QUERY, "conversation_id": conversation}).status_code
        == 200
    )
    draft = client.post("/v1/events", json={"conversation_id": conversation, "kind": "draft"}, headers=auth)
    assert draft.status_code == 201
    _, middle = _scrape(client)
    assert _moved(before, middle, "groundwork_agent_chain_duration_seconds_count", kind="handed_off") == 0
    end = client.post(
        "/v1/events", json={"conversation_id": conversation, "kind": "handed_off"}, headers=auth
    )
    assert end.status_code == 201
    _, after = _scrape(client)
    assert _moved(middle, after, "groundwork_agent_chain_duration_seconds_count", kind="handed_off") == 1
    took = _moved(middle, after, "groundwork_agent_chain_duration_seconds_sum", kind="handed_off")
    assert 0 < took < 60  # from the search to the handoff, measured by the database


def test_a_method_outside_the_vocabulary_is_labelled_other(demo_reader: Retriever) -> None:
    client = _client(_config(demo_reader), demo_reader)
    assert client.request("BREW", "/healthz").status_code == 405
    text, samples = _scrape(client)
    assert _get(samples, f"{H}_count", route="/healthz", method="other", status="405") == 1
    assert "BREW" not in text


def test_a_route_added_later_is_labelled_by_its_template(demo_reader: Retriever) -> None:
    # groundwork serve appends /mcp after create_app: routes are matched when the request comes.
    app = create_app(_config(demo_reader), demo_reader)
    app.router.routes.append(Route("/extra/{name}", lambda request: PlainTextResponse("ok")))
    client = TestClient(app, raise_server_exceptions=False)
    assert client.get("/extra/someones-name").status_code == 200
    text, samples = _scrape(client)
    assert _get(samples, f"{H}_count", route="/extra/{name}", method="GET", status="200") == 1
    assert "someones-name" not in text


def test_rate_limited_requests_are_counted(demo_reader: Retriever) -> None:
    client = _client(_config(demo_reader, rate_limit_per_minute=1, rate_limit_burst=1), demo_reader)
    statuses = [_search(client, BOB_KEY, {"query": ANSWER_QUERY, "k": 0}).status_code for _ in range(3)]
    assert statuses == [422, 429, 429]
    _, samples = _scrape(client)
    assert _get(samples, "groundwork_rate_limited_total") == 2
    assert _get(samples, f"{H}_count", route="/v1/search", method="POST", status="429") == 2
    assert _get(samples, "groundwork_searches_total", decision="answer") == 0


def test_each_app_has_its_own_registry(demo_reader: Retriever) -> None:
    first = _client(_config(demo_reader), demo_reader)
    second = _client(_config(demo_reader), demo_reader)
    assert first.get("/healthz").status_code == 200
    _, samples = _scrape(second)
    assert _get(samples, f"{H}_count", route="/healthz", method="GET", status="200") == 0
    _, samples = _scrape(first)
    assert _get(samples, f"{H}_count", route="/healthz", method="GET", status="200") == 1


def test_process_collectors_are_exposed(demo_reader: Retriever) -> None:
    _, samples = _scrape(_client(_config(demo_reader), demo_reader))
    names = {name for name, _ in samples}
    assert {"process_resident_memory_bytes", "python_info"} <= names


def test_metrics_is_not_in_the_openapi_schema(demo_reader: Retriever) -> None:
    app = create_app(_config(demo_reader), demo_reader)
    assert "/metrics" not in app.openapi()["paths"]
    assert "/v1/search" in app.openapi()["paths"]


def test_metrics_can_be_turned_off(demo_reader: Retriever) -> None:
    client = _client(_metrics_config(demo_reader, enabled=False), demo_reader)
    r = client.get("/metrics")
    assert r.status_code == 404
    assert r.json()["error"] == "not_found"


def test_a_token_protects_metrics(demo_reader: Retriever, monkeypatch: pytest.MonkeyPatch) -> None:
    token = "scrape-" + uuid.uuid4().hex
    monkeypatch.setenv("GW_TEST_METRICS_TOKEN", token)
    client = _client(_metrics_config(demo_reader, token_env="GW_TEST_METRICS_TOKEN"), demo_reader)
    refused = [
        client.get("/metrics"),
        client.get("/metrics", headers={"Authorization": f"Bearer {token}x"}),
        client.get("/metrics", headers={"Authorization": f"Basic {token}"}),
        client.get("/metrics", headers={"Authorization": f"Bearer {ALICE_KEY}"}),
        client.get("/metrics", headers={"Authorization": "Bearer"}),
    ]
    for r in refused:
        assert r.status_code == 401
        assert r.json() == {
            "error": "unauthorized",
            "message": "send 'Authorization: Bearer <metrics token>'",
        }
        assert r.headers["www-authenticate"] == "Bearer"
        assert token not in r.text
    text, samples = _scrape(client, {"Authorization": f"Bearer {token}"})
    assert _get(samples, "groundwork_auth_failures_total") == len(refused)
    assert _get(samples, f"{H}_count", route="/metrics", method="GET", status="401") == len(refused)
    assert token not in text


def test_a_token_variable_that_is_not_set_is_refused(
    demo_reader: Retriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GW_TEST_METRICS_TOKEN_UNSET", raising=False)
    with pytest.raises(ConfigError, match="GW_TEST_METRICS_TOKEN_UNSET"):
        create_app(_metrics_config(demo_reader, token_env="GW_TEST_METRICS_TOKEN_UNSET"), demo_reader)


# -- deploy/: the dashboard and the alert rules -------------------------------------------------------

#: PromQL words that are not metric names (functions are recognised by the parenthesis after them).
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "inf", "nan"}


def promql_metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (a small reader, enough for this repository's rules)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values and strings
    s = re.sub(r"\{[^}]*\}", " ", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)  # range selectors
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)  # label lists
    s = re.sub(r"(?<![\w.])\d[\w.+-]*", " ", s)  # numbers and durations
    idents = re.finditer(r"(?<![\w$])[A-Za-z_:][A-Za-z0-9_:]*+(?!\s*\()", s)
    return {m.group() for m in idents} - _KEYWORDS


def test_the_promql_reader_finds_metric_names() -> None:
    expr = 'sum by (route, le) (rate(x_bucket{job=~"$job", a="b c"}[5m])) / on (job) y_total > 0.5e1'
    assert promql_metric_names(expr) == {"x_bucket", "y_total"}
    assert promql_metric_names("histogram_quantile(0.95, sum(rate(groundwork_nope[1m])))") == {
        "groundwork_nope"
    }


def _dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            m = re.fullmatch(r"label_values\((\w+),\s*\w+\)", var["query"]["query"])
            assert m is not None, var["query"]
            exprs.append(m.group(1))
    return [e.replace("$__rate_interval", "5m") for e in exprs]


@pytest.fixture(scope="module")
def exposed(demo_reader: Retriever) -> set[str]:
    """Every sample name a test app exposes once it has answered, refused and timed requests."""
    client = _client(_config(demo_reader), demo_reader)
    assert _search(client, BOB_KEY, {"query": ANSWER_QUERY, "k": 2}).status_code == 200
    assert _search(client, "wrong", {"query": ANSWER_QUERY}).status_code == 401
    _, samples = _scrape(client)
    return {name for name, _ in samples}


def test_the_dashboard_asks_only_for_exposed_series(exposed: set[str]) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 30
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    exprs = _dashboard_exprs(dashboard)
    used = set().union(*(promql_metric_names(e) for e in exprs))
    assert used <= exposed, used - exposed
    wanted = {
        f"{H}_count",
        f"{H}_bucket",
        "groundwork_searches_total",
        "groundwork_search_reasons_total",
        "groundwork_search_confidence_bucket",
        "groundwork_context_tokens_bucket",
        "groundwork_context_budget_refusals_total",
        "groundwork_auth_failures_total",
        "groundwork_rate_limited_total",
    }
    assert wanted <= used, wanted - used


def test_the_alert_rules_ask_only_for_exposed_series(exposed: set[str]) -> None:
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    assert set(alerts) == {
        "GroundworkHandoffShareHigh",
        "GroundworkServerErrors",
        "GroundworkSearchLatencyHigh",
        "GroundworkChainFailureRateHigh",
        "GroundworkDailyCostCap",
    }
    for rule in alerts.values():
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and re.fullmatch(r"\d+m", rule["for"])
        used = promql_metric_names(rule["expr"])
        assert used and used <= exposed, used - exposed
    assert "[15m]" in alerts["GroundworkHandoffShareHigh"]["expr"]
    assert 'route="/v1/search"' in alerts["GroundworkSearchLatencyHigh"]["expr"]
    assert 'kind="action_failed"' in alerts["GroundworkChainFailureRateHigh"]["expr"]
    assert "groundwork_agent_cost_total[1d]" in alerts["GroundworkDailyCostCap"]["expr"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Prometheus) is not installed")
def test_promtool_accepts_and_unit_tests_the_alert_rules() -> None:
    for args in (["check", "rules", str(ALERTS)], ["test", "rules", str(ALERT_TESTS)]):
        out = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60, check=False)
        assert out.returncode == 0, out.stdout + out.stderr
