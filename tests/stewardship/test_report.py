"""The steward's report on the ingested demo: its figures equal the database's, it carries no personal
value, a customer's report holds only that customer's sources, a source without a contract is red, and
it renders in headless Chromium (a screenshot is kept under ``test-artifacts/``)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from PIL import Image
from psycopg import sql

from cli.main import main
from groundwork.enums import AuthMethod
from groundwork.errors import ConfigError
from groundwork.settings import GroundworkConfig
from indexes.search import Retriever
from orchestration.services import Services
from stewardship.render import render_html
from stewardship.report import build_report, write_report
from tests.conftest import DEMO, PROJECT, demo_config_on
from tests.test_end_to_end import PLANTED

QUERY = "What are the salary bands for a senior engineer?"
HEADINGS = [
    "Sources",
    "Data flow",
    "Redactions by type",
    "Failures",
    "Access groups and recipients",
    "Retention and purge",
    "Index versions",
    "Records of processing",
    "DPIA inputs",
    "Security measures",
]


def _with_customers(config: GroundworkConfig) -> GroundworkConfig:
    """The demo config with hr for customer acme, handbook for globex, and a source with no contract."""
    hr, handbook = config.source("hr"), config.source("handbook")
    assert not isinstance(hr.contract, str) and hr.contract is not None
    assert not isinstance(handbook.contract, str) and handbook.contract is not None
    sources = [
        hr.model_copy(update={"contract": hr.contract.model_copy(update={"customer": "acme"})}),
        handbook.model_copy(
            update={
                "contract": handbook.contract.model_copy(update={"customer": "globex"}),
                "retention_days": 30,
            }
        ),
        handbook.model_copy(update={"name": "legacy", "contract": "none"}),
    ]
    return config.model_copy(update={"sources": sources})


@pytest.fixture(scope="module")
def config(ingested_demo: Services, demo_reader: Retriever) -> GroundworkConfig:
    """The ingested demo with customers, after one search as alice (so the audit has a retrieval)."""
    alice = ingested_demo.config.principal("alice")
    outcome = demo_reader.search(alice, QUERY, 3, auth_method=AuthMethod.CLI)
    assert outcome.results
    return _with_customers(ingested_demo.config)


@pytest.fixture(scope="module")
def written(
    config: GroundworkConfig, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], Path]:
    """The full report, built and written."""
    report = build_report(config)
    page = write_report(report, tmp_path_factory.mktemp("report"))
    return report, page


def _db(config: GroundworkConfig, region: str, query: str) -> list[tuple[Any, ...]]:
    from indexes.regions import resolve_targets

    target = resolve_targets(config, create=False)[region]
    with psycopg.connect(target.owner_dsn) as conn:
        return list(conn.execute(sql.SQL(query).format(s=sql.Identifier(target.schema))))


def test_figures_equal_the_database(config: GroundworkConfig, written: tuple[dict[str, Any], Path]) -> None:
    report, _ = written
    sources = {s["name"]: s for s in report["sources"]}
    for region in ("uk", "eu"):
        docs = Counter(r[0] for r in _db(config, region, "SELECT source FROM {s}.documents"))
        chunks = Counter(r[0] for r in _db(config, region, "SELECT source FROM {s}.chunks"))
        for name, count in docs.items():
            assert sources[name]["by_region"][region] == {"documents": count, "chunks": chunks[name]}
        failures = Counter(
            (r[0], r[1]) for r in _db(config, region, "SELECT source, reason FROM {s}.ingest_failures")
        )
        for (name, reason), n in failures.items():
            assert sources[name]["failures"][reason] == n
        redactions: dict[str, Counter[str]] = {}
        for name, counts in _db(config, region, "SELECT source, redactions FROM {s}.documents"):
            redactions.setdefault(name, Counter()).update(counts)
        for name, counts in redactions.items():
            assert sources[name]["redactions"] == {k: v for k, v in counts.items() if v}
    # The demo's uk region holds two broken files; every document is in its source's region.
    assert sources["hr"]["failures"] == {"no_text": 1, "unsupported_type": 1}
    assert sources["hr"]["documents"] == 5 and set(sources["hr"]["by_region"]) == {"uk"}
    assert sources["handbook"]["documents"] == 5 and sources["legacy"]["documents"] == 0
    assert report["totals"]["redactions"]["UK_NINO"] >= 2
    # alice's search returned hr chunks, and the report counts it as the audit does.
    [(searches,)] = _db(
        config,
        "uk",
        "SELECT count(DISTINCT a.audit_id) FROM {s}.retrieval_audit a JOIN {s}.chunks c"
        " ON c.chunk_id = ANY (a.chunk_ids) WHERE a.principal = 'alice' AND c.source = 'hr'",
    )
    alice = next(r for r in sources["hr"]["recipients"] if r["principal"] == "alice")
    assert alice["searches"] == searches >= 1
    assert [r["principal"] for r in sources["hr"]["recipients"]] == ["alice"]  # bob has no hr grant


def test_retention_shows_the_next_purge_and_what_it_will_erase(
    config: GroundworkConfig, written: tuple[dict[str, Any], Path]
) -> None:
    report, _ = written
    handbook = next(s for s in report["sources"] if s["name"] == "handbook")
    purge = datetime.fromisoformat(handbook["next_purge"])
    generated = datetime.fromisoformat(report["generated_at"])
    assert (purge.hour, purge.minute, purge.utcoffset()) == (3, 0, timedelta(0))
    assert generated < purge <= generated + timedelta(days=1)
    [(due,)] = _db(
        config,
        "eu",
        "SELECT count(*) FROM {s}.documents WHERE source = 'handbook'"
        f" AND modified_at < '{(purge - timedelta(days=30)).isoformat()}'::timestamptz",
    )
    assert handbook["due_at_next_purge"] == due
    assert handbook["oldest_modified"] is not None
    assert next(s for s in report["sources"] if s["name"] == "hr")["next_purge"] is None
    # Groundwork's own records: their periods (the demo's `records`), rows and what the purge takes.
    cutoffs = {"audit": purge - timedelta(days=400), "ledger": purge - timedelta(days=90)}
    tables = {"audit": ["retrieval_audit"], "ledger": ["agent_searches", "action_checks", "agent_events"]}
    for region in report["regions"]:
        records = region["records"]
        assert (records["audit"]["retention_days"], records["ledger"]["retention_days"]) == (400, 90)
        for kind, names in tables.items():
            rows = due = 0
            for table in names:
                [(n, old)] = _db(
                    config,
                    region["region"],
                    f"SELECT count(*), count(*) FILTER (WHERE at < '{cutoffs[kind].isoformat()}'::timestamptz)"
                    f" FROM {{s}}.{table}",
                )
                rows, due = rows + n, due + old
            assert (records[kind]["rows"], records[kind]["due_at_next_purge"]) == (rows, due)
    assert next(r for r in report["regions"] if r["region"] == "uk")["records"]["audit"]["rows"] >= 1


def test_json_beside_the_page_holds_the_same_data(written: tuple[dict[str, Any], Path]) -> None:
    report, page = written
    assert json.loads((page.parent / "report.json").read_text()) == report
    html = page.read_text()
    assert str(report["totals"]["chunks"]) in html and report["records"][0]["fields"]["purpose"] in html


def _personal_values() -> set[str]:
    """Values the demo corpus holds about people: the planted ones and every e-mail address in it."""
    values = set(PLANTED)
    for path in (DEMO / "corpus").rglob("*"):
        if path.suffix in {".md", ".txt", ".eml", ".html"}:
            values.update(re.findall(r"[\w.+-]+@[\w-]+\.[\w.]+", path.read_text(errors="ignore")))
    return values


def test_no_personal_value_file_name_message_or_query(
    config: GroundworkConfig, written: tuple[dict[str, Any], Path]
) -> None:
    _, page = written
    assert len(_personal_values()) > len(PLANTED)
    stems = {p.stem for p in (DEMO / "corpus").rglob("*") if p.is_file()}
    messages = [
        r[0]
        for region in ("uk", "eu")
        for r in _db(config, region, "SELECT message FROM {s}.ingest_failures")
    ]
    assert messages
    for blob in (page.read_text(), (page.parent / "report.json").read_text()):
        for value in _personal_values():
            for variant in {value, value.replace(" ", ""), value.lower()}:
                assert variant not in blob, f"{value!r} in the report"
        for forbidden in [*stems, *messages, QUERY, "file://", str(DEMO / "corpus")]:
            assert forbidden not in blob, f"{forbidden!r} in the report"


def test_customer_report_holds_only_its_sources(config: GroundworkConfig) -> None:
    report = build_report(config, customer="acme")
    assert [s["name"] for s in report["sources"]] == ["hr"]
    assert [r["region"] for r in report["regions"]] == ["uk"]
    assert [p["name"] for p in report["principals"]] == ["alice"]
    assert "records" not in report["regions"][0]  # region-wide counts would include other customers'
    blob = json.dumps(report)
    for other in ("handbook", "legacy", "globex", "bob"):
        assert other not in blob
    assert {n["id"] for n in report["flow"]["nodes"]} == {
        "source:hr",
        "region:uk",
        "index:uk",
        "principal:alice",
    }
    with pytest.raises(ConfigError, match="known customers: acme, globex"):
        build_report(config, customer="initech")


def test_acknowledged_none_is_red(written: tuple[dict[str, Any], Path]) -> None:
    report, page = written
    [legacy] = [s for s in report["sources"] if s["name"] == "legacy"]
    assert legacy["contract_status"] == "none"
    assert report["records"][2]["fields"]["purpose"] == "no contract (acknowledged)"
    rows = re.findall(r'<tr class="nocontract">(.*?)</tr>', page.read_text())
    assert any(">legacy<" in r and "no contract (acknowledged)" in r for r in rows)
    assert not any(">hr<" in r for r in rows)


def test_cli_writes_the_report_and_refuses_an_unknown_customer(
    config: GroundworkConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = config.state_dir.parent
    data = yaml.safe_load((folder / "groundwork.yaml").read_text())
    data["sources"][0]["contract"]["customer"] = "acme"
    path = folder / "report-test.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["report", "--config", str(path), "--out", str(tmp_path / "r"), "--customer", "acme"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "r" / "index.html")
    assert json.loads((tmp_path / "r" / "report.json").read_text())["customer"] == "acme"
    assert main(["report", "--config", str(path), "--customer", "nobody"]) == 2
    err = capsys.readouterr().err
    assert "'nobody'" in err and "known customers: acme" in err


def test_an_index_not_yet_migrated_is_reported_not_created(demo_copy: Path, database_url: str) -> None:
    config = demo_config_on(demo_copy, database_url)
    report = build_report(config)
    assert [(r["region"], r["available"]) for r in report["regions"]] == [("eu", False), ("uk", False)]
    assert all("groundwork migrate" in r["message"] for r in report["regions"])
    assert report["totals"]["documents"] == 0
    with psycopg.connect(database_url) as conn:  # the report created nothing
        assert conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'groundwork%%'"
        ).fetchone() == (0,)
    assert "groundwork migrate" in render_html(report)


def _chromium() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if found is None:
        pytest.fail(
            "Debian's chromium is not installed (apt-get install chromium, or `make browser`): the report test renders in it"
        )
    return found


def _run_chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={profile}"]
    return subprocess.run([_chromium(), *flags, *args], capture_output=True, text=True, timeout=180)


def test_renders_in_headless_chromium(written: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    _, page = written
    shot = tmp_path / "report.png"
    done = _run_chromium([f"--screenshot={shot}", "--window-size=1280,2400", page.as_uri()], tmp_path / "p1")
    assert shot.exists(), done.stderr[-2000:]
    with Image.open(shot) as image:
        rgb = image.convert("RGB")
        assert rgb.size == (1280, 2400)
        colours: list[tuple[int, tuple[int, int, int]]] = rgb.getcolors(maxcolors=1 << 20) or []  # type: ignore[assignment]  # RGB: 3-tuples
    assert len(colours) > 50  # text, tables and charts, not a blank page
    reds = sum(n for n, (r, g, b) in colours if r > 150 and g < 90 and b < 90)
    assert reds > 100  # the source without a contract is drawn in red
    artefacts = Path(os.environ.get("GROUNDWORK_TEST_ARTIFACTS") or PROJECT / "test-artifacts")
    artefacts.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, artefacts / "report.png")
    shutil.copy(page, artefacts / "report.html")
    dom = _run_chromium(["--dump-dom", page.as_uri()], tmp_path / "p2").stdout
    headings = [re.sub(r"<[^>]+>", "", h) for h in re.findall(r"<h2[^>]*>(.*?)</h2>", dom)]
    assert all(h in headings for h in HEADINGS), headings
    assert 'aria-label="data flow map"' in dom and 'aria-label="failures over runs"' in dom
    assert 'aria-label="redactions by type"' in dom and "<script" not in dom
