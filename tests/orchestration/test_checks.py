"""The policy's asset checks, run by Dagster on a real PostgreSQL: each passes on good data and fails
on planted bad data, and its metadata holds counts, entity types, sources and chunk ids, never a value.

- ``no_personal_data_after_redaction``: the demo corpus, ingested by a real ``ingest`` run, passes;
  a chunk holding a raw e-mail address and phone number, written through the ingest writer, fails.
- ``residency_as_policy_says``: documents written through the writer pass; a source whose policy
  now places a document in another region, a source removed from the config and a chunk whose
  residency differs from its document's each fail.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import psycopg
import pytest
import yaml

from groundwork.ids import chunk_id, document_id
from groundwork.records import (
    Chunk,
    ChunkedDocument,
    DocumentRef,
    DocumentTask,
    EmbeddedDocument,
    Governance,
    RedactedDocument,
)
from groundwork.settings import load_config
from indexes.embedded import EmbeddedServer
from orchestration.assets import index_key
from orchestration.checks import CHECKS, build_index_checks
from orchestration.definitions import build_definitions
from orchestration.services import Services
from pipelines.redact import Redactor
from pipelines.verification import contextual, rescan
from tests.conftest import copy_demo, demo_config_on, drop_database, new_database, write_config

PLANTED_EMAIL = "marta.kowalczyk@example.org"
PLANTED_PHONE = "07700 900461"
PLANTED_TEXT = (
    "Escalations: <PERSON> handles payroll queries. If she is away, write to "
    f"{PLANTED_EMAIL} or call {PLANTED_PHONE} before noon."
)


def _run(config_path: Path, instance: dg.DagsterInstance, job: str | None = None, **checks: list[str]) -> Any:
    """Run the ``job`` of the config's definitions, or a job of only the named checks (region: names)."""
    config = load_config(config_path)
    defs = build_definitions(config_path, config)
    if job is None:
        keys = [dg.AssetCheckKey(index_key(r), name) for r, names in checks.items() for name in names]
        defs = dg.Definitions.merge(
            defs,
            dg.Definitions(
                jobs=[dg.define_asset_job("checks_only", selection=dg.AssetSelection.checks(*keys))]
            ),
        )
        job = "checks_only"
    return defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False)


def _evaluations(result: Any) -> dict[str, Any]:
    return {f"{e.asset_key.to_user_string()}:{e.check_name}": e for e in result.get_asset_check_evaluations()}


def _values(evaluation: Any) -> dict[str, Any]:
    return {k: v.value for k, v in evaluation.metadata.items()}


def _write(
    services: Services, region: str, source: str, source_id: str, texts: list[str], *, access: str = "public"
) -> list[str]:
    """Write one document through the ingest writer (random unit vectors); returns its chunk ids."""
    ref = DocumentRef(source, source_id, f"file:///{source_id}", "v1", 10)
    doc_id = document_id(source, source_id)
    task = DocumentTask(ref, doc_id, Governance(region, (access,)), "new")
    chunks = [Chunk(chunk_id(doc_id, s), s, text, None) for s, text in enumerate(texts)]
    vectors = np.random.default_rng(len(source_id)).normal(size=(len(texts), 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    red = RedactedDocument(task, [], "text/plain", {})
    services.index(region).write_document(EmbeddedDocument(ChunkedDocument(red, chunks), vectors))
    return [c.chunk_id for c in chunks]


# --- the demo, ingested by Dagster: every check, and the re-scan ----------------------------------


@dataclass
class Demo:
    config_path: Path
    instance: dg.DagsterInstance
    ingest: Any


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, pg_server: EmbeddedServer) -> Iterator[Demo]:
    folder = tmp_path_factory.mktemp("checks_demo")
    config_path = copy_demo(folder)
    url = new_database(pg_server)
    demo_config_on(config_path, url)
    with dg.DagsterInstance.ephemeral() as instance:
        yield Demo(config_path, instance, _run(config_path, instance, "ingest"))
    drop_database(pg_server, url)


def test_the_ingest_run_evaluates_every_check_and_the_demo_passes_them(demo: Demo) -> None:
    evaluations = _evaluations(demo.ingest)
    assert {k: e.passed for k, e in evaluations.items()} == {
        "index/eu:chunks_are_governed": True,
        "index/eu:no_personal_data_after_redaction": True,
        "index/eu:residency_as_policy_says": True,
        "index/eu:failures_within_limit": True,
        "index/uk:chunks_are_governed": True,
        "index/uk:no_personal_data_after_redaction": True,
        "index/uk:residency_as_policy_says": True,
        "index/uk:failures_within_limit": False,  # 2 of 7 failed: the demo's warning
    }
    with Services(load_config(demo.config_path)) as services:
        counts = {r: services.index(r).counts() for r in ("eu", "uk")}
    for region in ("eu", "uk"):
        rescan_ = _values(evaluations[f"index/{region}:no_personal_data_after_redaction"])
        # The demo holds fewer chunks than the sample size: every one was redacted again.
        assert rescan_["sampled"] == counts[region].chunks > 0
        assert rescan_["chunks_with_findings"] == 0 and rescan_["findings_by_type"] == {}
        residency = _values(evaluations[f"index/{region}:residency_as_policy_says"])
        assert residency["documents"] == counts[region].documents == 5
        assert residency["documents_violating"] == 0 and residency["chunks_of_another_residency"] == 0
    assert evaluations["index/uk:failures_within_limit"].severity == dg.AssetCheckSeverity.WARN


def test_check_results_and_materializations_link_to_the_report_and_lineage(demo: Demo) -> None:
    report = str(load_config(demo.config_path).state_dir / "report" / "index.html")
    lineage = f"groundwork lineage CHUNK_ID --config {demo.config_path}"
    evaluations = _evaluations(demo.ingest)
    assert len(evaluations) == 8
    for evaluation in evaluations.values():
        assert evaluation.metadata["report"] == dg.MetadataValue.path(report)
        assert evaluation.metadata["lineage"].value == lineage
    for event in demo.ingest.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        if mat.asset_key.path[0] == "index":
            assert mat.metadata["report"] == dg.MetadataValue.path(report)
            assert mat.metadata["lineage"].value == lineage


def test_a_chunk_with_personal_data_fails_the_rescan_and_only_its_id_and_types_are_shown(demo: Demo) -> None:
    config = load_config(demo.config_path)
    with Services(config) as writer:
        stored = writer.index("eu").counts().chunks
        [planted] = _write(writer, "eu", "handbook", "escalations.md", [PLANTED_TEXT], access="group:staff")
        try:
            result = _run(demo.config_path, demo.instance, eu=["no_personal_data_after_redaction"])
        finally:
            assert writer.index("eu").delete_document(document_id("handbook", "escalations.md"))
    [evaluation] = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    found = _values(evaluation)
    assert found["sampled"] == stored + 1
    assert found["chunks_with_findings"] == 1
    assert found["chunk_ids_with_findings"] == [planted]
    assert found["findings_by_type"]["EMAIL_ADDRESS"] == 1
    assert found["findings_by_type"]["PHONE_NUMBER"] == 1
    assert "PERSON" not in found["findings_by_type"]  # the stored placeholder is no finding
    assert found["findings_by_pattern_recognizers"] == 2
    shown = repr(evaluation.metadata) + (evaluation.description or "")
    for value in (
        PLANTED_EMAIL,
        "kowalczyk",
        PLANTED_PHONE,
        PLANTED_PHONE.replace(" ", ""),
        "payroll queries",
    ):
        assert value not in shown
    # Non-blocking: the run reports the failed check without failing its step.
    assert result.success


def test_a_name_only_the_contextual_detectors_find_is_a_warning(demo: Demo) -> None:
    config = load_config(demo.config_path)
    text = "Minutes: <PERSON> agreed; Kirsty will send the draft to <PERSON> on Monday."
    with Services(config) as writer:
        [planted] = _write(writer, "uk", "hr", "minutes.md", [text], access="group:hr")
        try:
            result = _run(demo.config_path, demo.instance, uk=["no_personal_data_after_redaction"])
        finally:
            assert writer.index("uk").delete_document(document_id("hr", "minutes.md"))
    [evaluation] = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    found = _values(evaluation)
    assert found["chunk_ids_with_findings"] == [planted]
    assert found["findings_by_type"] == {"PERSON": 1}
    assert found["findings_by_contextual_detectors"] == 1
    assert found["findings_by_pattern_recognizers"] == 0
    assert "Kirsty" not in repr(evaluation.metadata) + (evaluation.description or "")


def test_rescan_sample_size_zero_turns_the_rescan_off(demo: Demo) -> None:
    original = demo.config_path.read_text()
    data = yaml.safe_load(original)
    data["ingest"] = {"rescan_sample_chunks": 0}
    write_config(demo.config_path, data)
    try:
        result = _run(demo.config_path, demo.instance, uk=["no_personal_data_after_redaction"])
    finally:
        demo.config_path.write_text(original)
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed
    assert _values(evaluation)["sampled"] == 0
    assert "off" in (evaluation.description or "")


@pytest.mark.parametrize(
    ("text", "region", "expected"),
    [
        ("Dear <PERSON>,\n\nYour claim was sent to <EMAIL_ADDRESS> on 3 March.", "uk", {}),
        ("<PERSON> <PERSON> met <PERSON> at <STREET_ADDRESS>, <UK_POSTCODE>.", "uk", {}),
        ("Card <CREDIT_CARD>, IBAN <IBAN_CODE>, NI number <UK_NINO>, NHS <UK_NHS>.", "uk", {}),
        (f"Reply to {PLANTED_EMAIL} by Friday.", "uk", {"EMAIL_ADDRESS": 1}),
        ("Refund to card 4111 1111 1111 1111 please.", "eu", {"CREDIT_CARD": 1}),
    ],
)
def test_rescan_finds_what_redaction_would_replace_now(
    redactor: Redactor, text: str, region: str, expected: dict[str, int]
) -> None:
    findings = rescan(redactor, [("c1", text)], region)
    assert dict(Counter(span.entity for span in findings.get("c1", []))) == expected


def test_rescan_applies_only_this_regions_national_identifiers(redactor: Redactor) -> None:
    # ES_NIF is one of the default ``entities_by_residency`` of eu: a Spanish tax id is an ES_NIF
    # finding in an eu chunk; in a uk one, as at ingest, only the tagger's generic NATIONAL_ID.
    assert "ES_NIF" in redactor.config.entities_by_residency["eu"]
    text = "Solicitante con NIF 12345678Z, domicilio fiscal en <STREET_ADDRESS>."
    [eu] = rescan(redactor, [("c1", text)], "eu")["c1"]
    [uk] = rescan(redactor, [("c1", text)], "uk")["c1"]
    assert (eu.entity, contextual(eu)) == ("ES_NIF", False)  # Presidio's checksum-validated recognizer
    assert (uk.entity, contextual(uk)) == ("NATIONAL_ID", True)  # the tagger's guess


# --- residency: documents written through the writer, the policy changed in the config -----------


def _source(name: str, region: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "connector": "filesystem",
        "path": name,
        "residency": region,
        "access": ["public"],
        "contract": "none",
        **extra,
    }


@pytest.fixture
def placed(tmp_path: Path, pg_server: EmbeddedServer) -> Path:
    """Three sources (notes and wiki in eu, cases in uk), each with documents written by the writer."""
    for name in ("notes", "wiki", "cases"):
        (tmp_path / name).mkdir()
    config_path = write_config(
        tmp_path / "groundwork.yaml",
        {
            "database": {"url": new_database(pg_server)},
            "sources": [_source("notes", "eu"), _source("wiki", "eu"), _source("cases", "uk")],
        },
    )
    with Services(load_config(config_path)) as writer:
        writer.migrate()
        _write(writer, "eu", "notes", "canteen.md", ["The canteen opens at eight."])
        _write(
            writer, "eu", "notes", "travel/rail.md", ["Book rail travel through the portal.", "Second class."]
        )
        _write(writer, "eu", "wiki", "parking.md", ["Parking permits are renewed in March."])
        _write(writer, "uk", "cases", "case-1.md", ["A case about <PERSON>'s leave."])
    return config_path


def _residency(config_path: Path) -> dict[str, Any]:
    with dg.DagsterInstance.ephemeral() as instance:
        result = _run(config_path, instance, eu=["residency_as_policy_says"], uk=["residency_as_policy_says"])
    return {e.asset_key.path[-1]: e for e in result.get_asset_check_evaluations()}


def test_residency_passes_when_every_document_is_where_its_policy_puts_it(placed: Path) -> None:
    found = _residency(placed)
    assert found["eu"].passed and found["uk"].passed
    assert _values(found["eu"])["documents"] == 3
    assert _values(found["uk"])["documents"] == 1


def test_a_source_whose_policy_now_names_another_region_fails_residency(placed: Path) -> None:
    data = yaml.safe_load(placed.read_text())
    data["sources"][0]["rules"] = [{"match": "travel/*", "residency": "uk"}]  # notes' travel/ now in uk
    write_config(placed, data)
    found = _residency(placed)
    assert not found["eu"].passed and found["uk"].passed
    values = _values(found["eu"])
    assert values["documents_violating"] == 1
    assert values["violations_by_source"] == {"notes": {"policy_moved": 1}}
    assert values["chunks_of_another_residency"] == 0


def test_a_source_removed_from_the_config_fails_residency(placed: Path) -> None:
    data = yaml.safe_load(placed.read_text())
    data["sources"] = [s for s in data["sources"] if s["name"] != "wiki"]
    write_config(placed, data)
    found = _residency(placed)
    assert not found["eu"].passed and found["uk"].passed
    values = _values(found["eu"])
    assert values["violations_by_source"] == {"wiki": {"source_removed": 1}}
    assert values["violations_by_reason"] == {"source_removed": 1}


def test_a_chunk_of_another_residency_than_its_document_fails_residency(placed: Path) -> None:
    with Services(load_config(placed)) as services:
        target = services.targets["eu"]
    with psycopg.connect(target.dsn) as conn:  # as the owner: the writer may not write uk rows in eu
        conn.execute(
            f"UPDATE {target.schema}.chunks SET residency = 'uk' WHERE chunk_id = %s",
            (chunk_id(document_id("notes", "travel/rail.md"), 1),),
        )
    found = _residency(placed)
    assert not found["eu"].passed
    values = _values(found["eu"])
    assert values["documents_violating"] == 0
    assert values["chunks_of_another_residency"] == 1
    assert values["chunk_mismatches_by_source"] == {"notes": 1}


def test_a_document_row_of_another_region_fails_residency(placed: Path) -> None:
    with Services(load_config(placed)) as services:
        target = services.targets["eu"]
    with psycopg.connect(target.dsn) as conn:  # as the owner: the writer may not write uk rows in eu
        conn.execute(
            f"UPDATE {target.schema}.documents SET residency = 'uk' WHERE document_id = %s",
            (document_id("wiki", "parking.md"),),
        )
    found = _residency(placed)
    assert not found["eu"].passed and found["uk"].passed
    values = _values(found["eu"])
    assert values["violations_by_source"] == {"wiki": {"other_residency": 1}}
    assert values["chunk_mismatches_by_source"] == {"wiki": 1}  # its chunk still says eu


def test_each_region_gets_the_four_checks_and_the_policy_ones_block() -> None:
    checks = build_index_checks(["eu", "uk"])
    assert len(checks) == 2 * len(CHECKS)
    blocking = {
        (spec.asset_key.path[-1], spec.name): spec.blocking for check in checks for spec in check.check_specs
    }
    assert blocking == {
        (region, name): name in ("chunks_are_governed", "residency_as_policy_says")
        for region in ("eu", "uk")
        for name in (
            "chunks_are_governed",
            "no_personal_data_after_redaction",
            "residency_as_policy_says",
            "failures_within_limit",
        )
    }
