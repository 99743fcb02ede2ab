"""Data-access contracts: a source without one is refused at ingest (fail closed), a contract's
residency commitment binds the policy, and an acknowledged "none" lets a source run."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from groundwork.contracts import REQUIRED_FIELDS
from groundwork.errors import ConfigError
from groundwork.settings import load_config
from orchestration.local import run_all
from orchestration.services import Services
from pipelines.embedding import Embedder
from pipelines.redact import Redactor
from tests.conftest import write_config

CONTRACT = {
    "data_owner": "Head of Support",
    "purpose": "answer support questions",
    "lawful_basis": "contract",
    "data_categories": ["support tickets"],
    "data_subjects": ["customers"],
    "agreement": "MSA-7 schedule 2",
    "residency_commitment": ["uk"],
    "retention": "2 years",
}


def _source(name: str, folder: str, **extra: object) -> dict[str, object]:
    return {
        "name": name,
        "connector": "filesystem",
        "path": folder,
        "residency": "uk",
        "access": ["public"],
        **extra,
    }


def test_residency_outside_the_commitment_is_a_config_error(tmp_path: Path) -> None:
    moved = _source("s", "x", contract=CONTRACT, rules=[{"match": "eu/**", "residency": "eu"}])
    with pytest.raises(ConfigError, match=r"places documents in \['eu'\], outside its contract's"):
        load_config(write_config(tmp_path / "g.yaml", {"sources": [moved]}))


def test_a_contract_missing_fields_or_with_an_unknown_basis_names_them(tmp_path: Path) -> None:
    partial = {k: v for k, v in CONTRACT.items() if k != "agreement"} | {"lawful_basis": "because"}
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path / "g.yaml", {"sources": [_source("s", "x", contract=partial)]}))
    assert "contract.DataContract.agreement" in str(err.value)
    assert "legitimate_interests" in str(err.value)  # the allowed bases are listed


def test_ingest_refuses_a_source_without_a_contract_and_runs_the_others(
    tmp_path: Path, database_url: str, redactor: Redactor, embedder: Embedder
) -> None:
    for name in ("bound", "acknowledged", "unbound"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "note.md").write_text(f"# {name}\n\nRefund policy for the {name} source.\n")
    config = load_config(
        write_config(
            tmp_path / "g.yaml",
            {
                "sources": [
                    _source("bound", "bound", contract=CONTRACT),
                    _source("acknowledged", "acknowledged", contract="none"),
                    _source("unbound", "unbound"),
                ],
                "database": {"url": database_url},
            },
        )
    )
    assert [s.contract_acknowledged_none for s in config.sources] == [False, True, False]
    services = Services(config, redactor=redactor, embedder=embedder)
    try:
        plan, _reports = run_all(services)
    finally:
        services.close()
    message = plan.source_errors["unbound"]
    assert set(plan.source_errors) == {"unbound"}
    assert all(field in message for field in REQUIRED_FIELDS)
    assert "contract: none" in message
    with psycopg.connect(database_url) as conn:
        stored = {r[0] for r in conn.execute("SELECT source FROM groundwork_uk.documents")}
    assert stored == {"bound", "acknowledged"}
