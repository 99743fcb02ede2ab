"""Telemetry under residency rules: traces leave only for regions whose export is allowed, sampled
by trace id, with allowlisted attributes only; logs and exported spans never carry a planted value.

Spans go to a real OTLP/HTTP receiver on 127.0.0.1 (a small ``http.server`` collecting the POSTed
protobuf bytes, decoded with ``opentelemetry-proto``) or to the SDK's in-memory exporter.
"""

from __future__ import annotations

import ast
import asyncio
import gzip
import hashlib
import logging
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mcp import Client
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracer, StatusCode
from pydantic import ValidationError

from groundwork.settings import GroundworkConfig, TelemetryConfig, load_config
from groundwork.telemetry_config import ALLOWED_ATTRIBUTES, ATTR_REGIONS
from orchestration.local import run_all
from orchestration.services import Services
from pipelines.embedding import Embedder
from pipelines.log_safety import WITHHELD, withhold_values
from pipelines.redact import Redactor
from serving.api import create_app
from serving.mcp import MCP_PATH, mount_mcp
from serving.telemetry import UNTRACED_PATHS
from telemetry import Telemetry, keeps
from tests.conftest import PROJECT, free_port, make_reader, serve, write_config
from tests.serving.test_mcp import _call as call_mcp_tool
from tests.serving.test_mcp import _stdio as stdio_server

CAROL_KEY = "telemetry-key-carol"  # searches the UK only: its traces may be exported
DAVE_KEY = "telemetry-key-dave"  # searches the EU only: its traces may not

#: Planted in a UK and an EU document and in the queries; none may reach a log or an exported span.
NAME = "Ottoline Wrexham-Pryce"
EMAIL = "ottoline.pryce@wrexhamfamily.example"
PHONE = "07700 900461"
NINO = "QQ 12 34 56 C"
PLANTED = (NAME, EMAIL, PHONE, NINO, "Ottoline", "Wrexham", "ottoline.pryce", "900461", "QQ123456C")
PII_QUERY = f"What is the salary of {NAME} ({EMAIL}, {PHONE}, NI {NINO})?"


# --- a real OTLP/HTTP receiver -------------------------------------------------------------------


@dataclass
class Receiver:
    """What the local collector received: the raw bodies, decoded into spans."""

    url: str
    bodies: list[bytes] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    def spans(self) -> list[dict[str, Any]]:
        """Every received span as a plain dict (name, attributes, trace id, events, status, resource)."""
        out = []
        for body in self.bodies:
            request = ExportTraceServiceRequest.FromString(body)
            for resource_spans in request.resource_spans:
                resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        out.append(
                            {
                                "name": span.name,
                                "attributes": {a.key: _value(a.value) for a in span.attributes},
                                "trace_id": span.trace_id.hex(),
                                "events": list(span.events),
                                "status_message": span.status.message,
                                "resource": resource,
                            }
                        )
        return out


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """An OTLP/HTTP traces receiver on 127.0.0.1, collecting each POSTed body."""
    port = free_port()
    collected = Receiver(url=f"http://127.0.0.1:{port}/v1/traces")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            encoding = self.headers.get("Content-Encoding", "")
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            collected.bodies.append(body)
            collected.paths.append(self.path)
            reply = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the test's collector stays quiet

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield collected
    finally:
        server.shutdown()
        server.server_close()


# --- configuration -------------------------------------------------------------------------------


def test_telemetry_is_off_by_default_and_needs_an_endpoint_when_on() -> None:
    assert TelemetryConfig().enabled is False
    with pytest.raises(ValidationError, match=r"needs telemetry\.endpoint"):
        TelemetryConfig(enabled=True)
    with pytest.raises(ValidationError, match="http:// or https://"):
        TelemetryConfig(endpoint="ftp://collector/v1/traces")
    with pytest.raises(ValidationError) as caught:
        TelemetryConfig(enabled=True, endpoint="https://user:hunter2secret@collector:4318/v1/traces")
    assert "OTEL_EXPORTER_OTLP_TRACES_HEADERS" in str(caught.value)
    assert "hunter2secret" not in str(caught.value)
    with pytest.raises(ValidationError):
        TelemetryConfig(regions={"uk": {"export": True, "sample_ratio": 1.5}})


def test_a_region_exports_only_when_listed_with_export_true() -> None:
    config = TelemetryConfig(
        sample_ratio=0.5,
        regions={
            "uk": {"export": True, "sample_ratio": 0.1},
            "eu": {"export": False},
            "us": {"export": True},
        },
    )
    assert config.ratio_for({"uk"}) == 0.1
    assert config.ratio_for({"us"}) == 0.5  # the default ratio
    assert config.ratio_for({"uk", "us"}) == 0.1  # the smallest ratio of the regions touched
    assert config.ratio_for({"eu"}) == 0.0
    assert config.ratio_for({"uk", "eu"}) == 0.0  # one forbidden region drops the trace
    assert config.ratio_for({"apac"}) == 0.0  # not listed: not exported (fail closed)
    assert config.ratio_for(set()) == 0.5
    assert TelemetryConfig(export_without_region=False).ratio_for(set()) == 0.0
    assert TelemetryConfig(regions={"uk": {"sample_ratio": 1.0}}).ratio_for({"uk"}) == 0.0  # export unset


def test_the_config_file_takes_a_telemetry_section(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    path = write_config(
        tmp_path / "groundwork.yaml",
        {
            "sources": [
                {
                    "name": "d",
                    "connector": "filesystem",
                    "path": "docs",
                    "residency": "uk",
                    "access": ["public"],
                }
            ],
            "telemetry": {
                "enabled": True,
                "endpoint": "http://127.0.0.1:4318/v1/traces",
                "regions": {"uk": {"export": True, "sample_ratio": 0.1}, "eu": {"export": False}},
            },
        },
    )
    config = load_config(path)
    assert config.telemetry.enabled
    assert config.telemetry.regions["uk"].sample_ratio == 0.1
    assert config.telemetry.regions["eu"].export is False


# --- the governed processor, on real SDK spans ---------------------------------------------------


def _telemetry(**config: Any) -> tuple[Telemetry, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    settings = TelemetryConfig(enabled=True, endpoint="http://127.0.0.1:9/v1/traces", **config)
    return Telemetry(settings, exporter=exporter), exporter


def _trace(telemetry: Telemetry, *child_regions: list[str], root_regions: list[str] | None = None) -> int:
    tracer = telemetry.tracer("test")
    with tracer.start_as_current_span("root", attributes={ATTR_REGIONS: root_regions or []}) as root:
        for regions in child_regions:
            with tracer.start_as_current_span("child", attributes={ATTR_REGIONS: regions}):
                pass
        return int(root.get_span_context().trace_id)


def test_a_trace_touching_a_forbidden_or_unlisted_region_is_dropped_whole() -> None:
    telemetry, exporter = _telemetry(regions={"uk": {"export": True}, "eu": {"export": False}})
    allowed = _trace(telemetry, ["uk"], ["uk"])
    _trace(telemetry, ["uk"], ["eu"])  # one child in the EU: nothing of the trace leaves
    _trace(telemetry, ["apac"])  # a region not listed
    _trace(telemetry, root_regions=["uk", "eu"])
    assert telemetry.force_flush()
    spans = exporter.get_finished_spans()
    assert {s.context.trace_id for s in spans} == {allowed}
    assert sorted(s.name for s in spans) == ["child", "child", "root"]
    assert telemetry.governor is not None and telemetry.governor.dropped_traces == 3


def test_sampling_keeps_exactly_the_traces_whose_id_falls_under_the_region_ratio() -> None:
    telemetry, exporter = _telemetry(sample_ratio=1.0, regions={"uk": {"export": True, "sample_ratio": 0.25}})
    ids = [_trace(telemetry, ["uk"]) for _ in range(400)]
    unregioned = [_trace(telemetry) for _ in range(20)]  # no region: the default ratio (1.0)
    assert telemetry.force_flush()
    exported = {s.context.trace_id for s in exporter.get_finished_spans()}
    expected = {t for t in ids if (t & (2**64 - 1)) < 2**62}  # the low 64 bits under 0.25 * 2**64
    assert exported & set(ids) == expected
    assert 0 < len(expected) < 400  # both outcomes occurred
    assert set(unregioned) <= exported
    assert all(keeps(t, 0.25) for t in expected) and not any(keeps(t, 0.0) for t in ids)


def test_only_allowlisted_attributes_leave_and_events_links_and_status_text_never_do() -> None:
    telemetry, exporter = _telemetry(regions={"uk": {"export": True}})
    tracer = telemetry.tracer("test")
    with tracer.start_as_current_span(
        "POST /v1/search",
        attributes={
            ATTR_REGIONS: ["uk"],
            "http.method": "POST",
            "http.route": "/v1/search",
            "http.status_code": 500,
            "http.url": f"http://api/v1/search?email={EMAIL}",
            "http.target": f"/v1/search?q={NAME}",
            "url.query": f"q={NAME}",
            "http.user_agent": "agent/1.0",
            "http.request.header.authorization": ["Bearer secret-key"],
            "net.peer.ip": "10.1.2.3",
            "groundwork.document_id": "hr:ottoline-payslip.pdf",
            "groundwork.decision": f"answer for {NAME}",  # an allowlisted key with free text: removed
        },
        record_exception=True,
    ) as span:
        span.add_event("exception", {"exception.message": f"no such person {NAME}"})
        span.set_status(StatusCode.ERROR, f"failed for {EMAIL}")
    with tracer.start_as_current_span(f"lookup {EMAIL}", attributes={ATTR_REGIONS: ["uk"]}):
        pass
    assert telemetry.force_flush()
    first, second = sorted(exporter.get_finished_spans(), key=lambda s: s.name)
    assert dict(first.attributes or {}) == {
        ATTR_REGIONS: ("uk",),
        "http.method": "POST",
        "http.route": "/v1/search",
        "http.status_code": 500,
    }
    assert first.events == () and first.links == ()
    assert first.status.status_code is StatusCode.ERROR and not first.status.description
    assert second.name == "span"  # a name that is not a plain token is replaced


def test_a_span_ending_after_its_root_follows_the_trace_decision_and_pending_traces_are_bounded() -> None:
    telemetry, exporter = _telemetry(regions={"uk": {"export": True}}, max_pending_traces=2)
    tracer = telemetry.tracer("test")
    root = tracer.start_span("root", attributes={ATTR_REGIONS: ["uk"]})
    late = tracer.start_span("late", context=_context(root))
    root.end()
    late.end()  # after the decision: exported with its trace
    roots = [tracer.start_span("open", attributes={ATTR_REGIONS: ["uk"]}) for _ in range(3)]
    for r in roots:
        tracer.start_span("child", context=_context(r)).end()  # held: their roots are still open
    for r in roots:
        r.end()
    assert telemetry.force_flush()
    names = sorted(s.name for s in exporter.get_finished_spans())
    # The first open trace was pushed out of the bounded buffer: dropped whole, never half-exported.
    assert names == ["child", "child", "late", "open", "open", "root"]


def _context(span: Any) -> Any:
    from opentelemetry.trace import set_span_in_context

    return set_span_in_context(span)


def test_off_means_no_op_tracers_and_nothing_held() -> None:
    telemetry = Telemetry(TelemetryConfig())
    assert not telemetry.enabled and isinstance(telemetry.tracer("x"), NoOpTracer)
    assert telemetry.governor is None and telemetry.force_flush()


def test_presidio_narration_is_dropped_and_its_errors_keep_no_value(caplog: pytest.LogCaptureFixture) -> None:
    withhold_values("presidio-analyzer")  # as the detector does when it builds the analyzer
    log = logging.getLogger("presidio-analyzer")
    caplog.set_level(logging.DEBUG)
    log.debug("Context list is: %s", NAME)
    log.info("context %s", EMAIL)
    log.error("Failed to validate text %s", "GB82WEST12345698765432")
    messages = [r.getMessage() for r in caplog.records if r.name == "presidio-analyzer"]
    assert messages == [f"Failed to validate text {WITHHELD}"]


def test_the_mcp_routes_requests_are_not_traced_since_no_span_there_learns_the_callers_regions() -> None:
    assert MCP_PATH in UNTRACED_PATHS  # its searches are traced by the tool: see below


def test_the_stages_import_only_the_opentelemetry_api() -> None:
    """import-linter cannot forbid a subpackage of an external package, so this reads the imports."""
    sdk_parts = ("opentelemetry.sdk", "opentelemetry.exporter", "opentelemetry.instrumentation")
    offenders = []
    for package in ("groundwork", "connectors", "pipelines", "indexes"):
        for path in (PROJECT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                offenders += [f"{path.relative_to(PROJECT)}: {n}" for n in names if n.startswith(sdk_parts)]
    assert offenders == []


# --- end to end: planted PII, an ingest and searches, logs at DEBUG, a real receiver ------------


def _sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _planted_config(folder: Path, database_url: str, endpoint: str) -> GroundworkConfig:
    letter = (
        "Salary letter\n\n"
        f"Dear {NAME},\n\nYour salary review is complete. We will write to {EMAIL} and call you on "
        f"{PHONE}. Your National Insurance number {NINO} is on file for payroll.\n"
    )
    for region, name in (("uk", "letter.txt"), ("uk", "leave-policy.txt"), ("eu", "note.txt")):
        (folder / "corpus" / region).mkdir(parents=True, exist_ok=True)
        text = letter if name != "leave-policy.txt" else "Annual leave\n\nEveryone gets 25 days of leave.\n"
        (folder / "corpus" / region / name).write_text(text, encoding="utf-8")
    source = {"connector": "filesystem", "access": ["group:staff"], "contract": "none"}
    data = {
        "sources": [
            {**source, "name": "uk-docs", "path": "corpus/uk", "residency": "uk"},
            {**source, "name": "eu-docs", "path": "corpus/eu", "residency": "eu"},
        ],
        "principals": [
            {"name": "carol", "api_key_sha256": _sha(CAROL_KEY), "groups": ["staff"], "regions": ["uk"]},
            {"name": "dave", "api_key_sha256": _sha(DAVE_KEY), "groups": ["staff"], "regions": ["eu"]},
        ],
        "database": {"url": database_url},
        "ingest": {"batch_documents": 1},  # one document a batch: each batch's trace has one region
        "telemetry": {
            "enabled": True,
            "endpoint": endpoint,
            "service_name": "groundwork-test",
            "regions": {"uk": {"export": True, "sample_ratio": 1.0}, "eu": {"export": False}},
        },
    }
    return load_config(write_config(folder / "groundwork.yaml", data))


@pytest.fixture
def planted(
    tmp_path: Path,
    database_url: str,
    redactor: Redactor,
    embedder: Embedder,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> GroundworkConfig:
    """The planted config (telemetry to ``receiver``), ingested with logs captured at DEBUG; the
    ingest's traces are exported when its services close."""
    config = _planted_config(tmp_path, database_url, receiver.url)
    caplog.set_level(logging.DEBUG)
    with Services(config, redactor=redactor, embedder=embedder) as services:
        _, reports = run_all(services)
    assert {r.region: r.documents_written for r in reports} == {"uk": 2, "eu": 1}
    return config


def test_planted_pii_reaches_no_log_and_no_exported_span_and_eu_traces_never_leave(
    planted: GroundworkConfig,
    redactor: Redactor,
    embedder: Embedder,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = planted
    ingest_spans = receiver.spans()  # Services.close() exported what was decided

    with (
        make_reader(config, redactor, embedder) as reader,
        TestClient(create_app(config, reader), raise_server_exceptions=False) as client,
    ):
        for key in (CAROL_KEY, DAVE_KEY):
            r = client.post(
                "/v1/search",
                json={"query": PII_QUERY, "k": 3},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert r.status_code == 200, r.text
            # Another authenticated route: its trace follows the caller's regions too.
            chain = client.get("/v1/conversations/telemetry-c1", headers={"Authorization": f"Bearer {key}"})
            assert chain.status_code in (200, 404), chain.text
        # A refused request with values in its query string (a trace that touches no region).
        refused = client.post(f"/v1/search?email={EMAIL}&name={NAME}", json={"query": PII_QUERY})
        assert refused.status_code == 401
        assert client.get(f"/no-such-path/{EMAIL}/{NAME}").status_code == 404  # values in a path
        assert client.get("/healthz").status_code == 200
        assert client.get("/metrics").status_code == 200
    # Leaving the client ran the app's shutdown: its provider exported what it held.
    spans = receiver.spans()
    api_spans = spans[len(ingest_spans) :]

    # Nothing planted in any log record (the test client's own request log aside: it is not the app's).
    for record in caplog.records:
        if record.name.startswith("httpx"):
            continue
        text = record.getMessage() + (
            logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
        )
        assert not [p for p in PLANTED if p.lower() in text.lower()], (record.name, record.levelname)
    # Nor in any byte the collector received.
    assert receiver.bodies and set(receiver.paths) == {"/v1/traces"}
    raw = b"".join(receiver.bodies).lower()
    assert not [p for p in PLANTED if p.lower().encode() in raw]

    # Only allowlisted attributes, no events, no status text; the service is named.
    for span in spans:
        assert set(span["attributes"]) <= ALLOWED_ATTRIBUTES, span["name"]
        assert span["events"] == [] and span["status_message"] == ""
        assert span["resource"]["service.name"] == "groundwork-test"

    # Ingest: every stage of the UK batches was exported, with counts; nothing of the EU batch.
    names = sorted(s["name"] for s in ingest_spans)
    stages = ["batch", "chunk", "embed", "partition", "redact", "write"]
    assert names == sorted(f"ingest.{s}" for s in stages for _ in range(2))
    assert all(s["attributes"]["groundwork.regions"] == ["uk"] for s in ingest_spans)
    embeds = [s["attributes"] for s in ingest_spans if s["name"] == "ingest.embed"]
    assert sorted(a["groundwork.embeddings"] for a in embeds)[0] >= 1
    assert all(a["groundwork.documents"] == 1 and a["groundwork.failed"] == 0 for a in embeds)

    # The API: carol's search (UK) and the refused request were exported; dave's (EU) left nothing.
    searches = [s for s in api_spans if s["name"] == "groundwork.search"]
    assert len(searches) == 1
    search = searches[0]["attributes"]
    assert search["groundwork.regions"] == ["uk"] and search["groundwork.k"] == 3
    assert search["groundwork.decision"] in ("answer", "handoff")
    assert search["groundwork.latency_ms"] > 0 and "groundwork.results" in search
    servers = [s for s in api_spans if s["name"] == "POST /v1/search"]
    assert sorted(s["attributes"]["http.status_code"] for s in servers) == [200, 401]
    assert all(s["attributes"]["http.route"] == "/v1/search" for s in servers)
    assert {s["trace_id"] for s in servers} >= {searches[0]["trace_id"]}
    chains = [s for s in api_spans if s["name"] == "GET /v1/conversations/{conversation_id}"]
    assert [s["attributes"]["groundwork.regions"] for s in chains] == [["uk"]]  # carol's only
    assert not [s for s in spans if "eu" in s["attributes"].get("groundwork.regions", [])]
    untraced = [s for s in api_spans if s["name"] in ("GET /healthz", "GET /metrics")]
    assert untraced == []  # /healthz and /metrics are not traced
    unknown = [s for s in api_spans if s["name"] == "GET"]  # no route: the method names the span
    assert [s["attributes"] for s in unknown] == [{"http.method": "GET", "http.status_code": 404}]


def test_mcp_searches_and_checks_are_traced_under_their_callers_regions_and_carry_no_planted_value(
    planted: GroundworkConfig,
    tmp_path: Path,
    redactor: Redactor,
    embedder: Embedder,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = planted
    ingested = len(receiver.spans())

    with make_reader(config, redactor, embedder) as reader:
        app = create_app(config, reader)
        mount_mcp(app, config, reader, host="127.0.0.1")
        with serve(app) as url:  # leaving it runs the app's shutdown: its provider exports
            for key in (CAROL_KEY, DAVE_KEY):
                result = call_mcp_tool(url, key, "search", {"query": PII_QUERY, "k": 3})
                assert not result.is_error
                found = result.structured_content["request_id"]
                check = {"request_ids": [found], "action": "send_letter", "idempotency_key": f"key-{key}"}
                assert not call_mcp_tool(url, key, "check_action", check).is_error
    over_http = receiver.spans()[ingested:]
    seen = ingested + len(over_http)
    # The action gate over MCP: carol's check (UK) is exported with its decision, Dave's is not.
    checks = [s for s in over_http if s["name"] == "groundwork.check_action"]
    assert [s["attributes"]["groundwork.regions"] for s in checks] == [["uk"]]
    assert checks[0]["attributes"]["groundwork.decision"] == "handoff"  # no rule for the action
    assert set(checks[0]["attributes"]) <= ALLOWED_ATTRIBUTES
    over_http = [s for s in over_http if s not in checks]

    # The stdio server (``groundwork mcp``, its own process) exports when its input closes.
    for key in (CAROL_KEY, DAVE_KEY):

        async def go(key: str = key) -> Any:
            server = stdio_server(tmp_path / "groundwork.yaml", key)
            async with Client(server, read_timeout_seconds=120) as client:
                return await client.call_tool("search", {"query": PII_QUERY, "k": 3})

        assert not asyncio.run(go()).is_error
    over_stdio = receiver.spans()[seen:]

    # Carol's searches (UK) are exported, each as its own trace; Dave's (EU) left nothing.
    for spans in (over_http, over_stdio):
        assert [s["name"] for s in spans] == ["groundwork.search"]
        search = spans[0]["attributes"]
        assert search["groundwork.regions"] == ["uk"] and search["groundwork.k"] == 3
        assert search["groundwork.decision"] in ("answer", "handoff") and search["groundwork.latency_ms"] > 0
        assert set(search) <= ALLOWED_ATTRIBUTES and spans[0]["events"] == []
    raw = b"".join(receiver.bodies).lower()
    assert not [p for p in PLANTED if p.lower().encode() in raw]
    for record in caplog.records:
        if record.name.startswith(("httpx", "httpcore", "mcp.client")):
            continue  # the test's own client
        text = record.getMessage().lower()
        assert not [p for p in PLANTED if p.lower() in text], (record.name, record.levelname)
