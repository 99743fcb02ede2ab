"""The access policy: sub-path rules (most specific wins), fail closed, residency required,
and policy changes that re-tag or move stored chunks without re-embedding them."""

from __future__ import annotations

from pathlib import Path

import pytest

from groundwork.records import DocumentRef
from groundwork.settings import GroundworkConfig, PrincipalConfig, SourceConfig, load_config
from orchestration.local import run_all
from orchestration.services import Services
from pipelines.embedding import Embedder
from pipelines.policy import PolicyError, governance_for, matching_rule
from pipelines.redact import Redactor
from tests.conftest import make_reader, write_config


def _source(**kw: object) -> SourceConfig:
    base: dict[str, object] = {"name": "share", "connector": "filesystem", "path": "/tmp/share"}
    return SourceConfig.model_validate({**base, **kw})


def _ref(rel: str) -> DocumentRef:
    return DocumentRef(source="share", source_id=rel, uri=f"file:///{rel}", version="v", size_bytes=1)


@pytest.mark.parametrize(
    ("rel", "expected"),
    [
        ("payroll/2026/march.xlsx", ("uk", ("group:payroll",))),
        ("payroll/board-pay.docx", ("uk", ("principal:cfo",))),
        ("hr/policy.md", ("uk", ("group:hr",))),
        ("hr/public/holidays.md", ("eu", ("public",))),
        ("notes.txt", ("uk", ("group:staff",))),
    ],
)
def test_most_specific_rule_wins(rel: str, expected: tuple[str, tuple[str, ...]]) -> None:
    source = _source(
        residency="uk",
        access=["group:staff"],
        rules=[
            {"match": "payroll/**", "access": ["group:payroll"]},
            {"match": "payroll/board-*.docx", "access": ["principal:cfo"]},
            {"match": "hr/**", "access": ["group:hr"]},
            {"match": "hr/public/**", "access": ["public"], "residency": "eu"},
        ],
    )
    gov = governance_for(source, _ref(rel))
    assert (gov.residency, gov.access) == expected


def test_later_rule_wins_a_tie() -> None:
    source = _source(
        residency="uk",
        rules=[{"match": "a/*", "access": ["group:x"]}, {"match": "*/b", "access": ["group:y"]}],
    )
    rule = matching_rule(source, "a/b")
    assert rule is not None
    assert rule.access == ["group:y"]


def test_no_access_rule_fails_closed() -> None:
    source = _source(residency="uk", rules=[{"match": "hr/**", "access": ["group:hr"]}])
    with pytest.raises(PolicyError, match="no access rule") as err:
        governance_for(source, _ref("finance/q3.xlsx"))
    assert err.value.reason == "no_access_rule"
    assert err.value.residency == "uk"


def test_no_residency_is_refused() -> None:
    source = _source(access=["group:hr"], rules=[{"match": "eu/**", "residency": "eu"}])
    assert governance_for(source, _ref("eu/a.md")).residency == "eu"
    with pytest.raises(PolicyError, match="no residency") as err:
        governance_for(source, _ref("elsewhere/a.md"))
    assert err.value.reason == "no_residency"


class CountingEmbedder(Embedder):
    """The real embedder, counting the texts it embeds."""

    def __init__(self, inner: Embedder) -> None:
        super().__init__(inner.config)
        self._model = inner._load()
        self.embedded = 0

    def embed(self, texts: list[str]):  # type: ignore[no-untyped-def]
        self.embedded += len(texts)
        return super().embed(texts)


def _write_share(root: Path) -> None:
    docs = {
        "hr/grievances.txt": "Grievance procedure\n\nRaise a grievance with your manager within 20 days.",
        "hr/public/holidays.txt": "Holidays\n\nThe office closes between Christmas and New Year.",
        "finance/forecast.txt": "Forecast\n\nRevenue forecast for the next quarter is confidential.",
    }
    for rel, text in docs.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def _config(folder: Path, database_url: str, rules: list[dict[str, object]]) -> GroundworkConfig:
    data = {
        "sources": [
            {"name": "share", "connector": "filesystem", "path": "share", "rules": rules, "contract": "none"}
        ],
        "principals": [
            {"name": "hana", "api_key_sha256": "a" * 64, "groups": ["hr"], "regions": ["uk", "eu"]},
            {"name": "eve", "api_key_sha256": "b" * 64, "groups": ["staff"], "regions": ["uk", "eu"]},
        ],
        "database": {"url": database_url},
    }
    return load_config(write_config(folder / "g.yaml", data))


RULES = [
    {"match": "hr/**", "access": ["group:hr"], "residency": "uk"},
    {"match": "hr/public/**", "access": ["public"], "residency": "eu"},
    {"match": "finance/**", "residency": "uk"},  # residency but no access: fail closed
]


@pytest.fixture
def share(tmp_path: Path) -> Path:
    _write_share(tmp_path / "share")
    return tmp_path


def _run(config: GroundworkConfig, redactor: Redactor, counting: CountingEmbedder):
    writer = Services(config, redactor=redactor, embedder=counting)
    try:
        return run_all(writer)
    finally:
        writer.close()


def _visible(config: GroundworkConfig, who: str, redactor: Redactor, embedder: Embedder) -> set[str]:
    reader = make_reader(config, redactor, embedder)
    try:
        out = reader.search(config.principal(who), "grievance holidays forecast", 10)
        return {h.source_uri.rsplit("/", 1)[-1] for h in out.results}
    finally:
        reader.close()


def test_fail_closed_and_sub_path_access(
    share: Path, database_url: str, redactor: Redactor, embedder: Embedder
) -> None:
    config = _config(share, database_url, RULES)
    plan, reports = _run(config, redactor, CountingEmbedder(embedder))
    assert [f.reason for f in plan.failures] == ["no_access_rule"]
    assert plan.failures[0].task.ref.source_id == "finance/forecast.txt"
    uk = next(r for r in reports if r.region == "uk")
    assert [f.task.ref.source_id for f in uk.failures] == ["finance/forecast.txt"]
    assert _visible(config, "hana", redactor, embedder) == {"grievances.txt", "holidays.txt"}
    assert _visible(config, "eve", redactor, embedder) == {"holidays.txt"}


def test_document_without_residency_is_stored_nowhere(
    share: Path, database_url: str, redactor: Redactor, embedder: Embedder
) -> None:
    rules = [*RULES[:2], {"match": "finance/**", "access": ["group:hr"]}]
    config = _config(share, database_url, rules)
    plan, reports = _run(config, redactor, CountingEmbedder(embedder))
    assert [(f.reason, f.task.ref.source_id) for f in plan.failures] == [
        ("no_residency", "finance/forecast.txt")
    ]
    assert all(f.task.ref.source_id != "finance/forecast.txt" for r in reports for f in r.failures)
    writer = Services(config, redactor=redactor, embedder=embedder)
    try:
        for region in config.regions:
            assert all(f["source_id"] != "finance/forecast.txt" for f in writer.index(region).failures.all())
            assert writer.index(region).counts().documents == 1
    finally:
        writer.close()


def test_access_change_retags_without_reembedding(
    share: Path, database_url: str, redactor: Redactor, embedder: Embedder
) -> None:
    counting = CountingEmbedder(embedder)
    _run(_config(share, database_url, RULES), redactor, counting)
    first = counting.embedded
    assert first > 0
    opened = [{"match": "hr/**", "access": ["group:hr", "group:staff"], "residency": "uk"}, *RULES[1:]]
    config = _config(share, database_url, opened)
    plan, reports = _run(config, redactor, counting)
    assert counting.embedded == first  # nothing re-embedded
    assert [t.ref.source_id for t in plan.retags] == ["hr/grievances.txt"]
    assert plan.tasks == []
    assert sum(r.retagged for r in reports) == 1
    assert _visible(config, "eve", redactor, embedder) == {"grievances.txt", "holidays.txt"}


def test_residency_change_moves_chunks_without_reembedding(
    share: Path, database_url: str, redactor: Redactor, embedder: Embedder
) -> None:
    counting = CountingEmbedder(embedder)
    _run(_config(share, database_url, RULES), redactor, counting)
    first = counting.embedded
    moved = [{"match": "hr/**", "access": ["group:hr"], "residency": "eu"}, *RULES[1:]]
    config = _config(share, database_url, moved)
    plan, reports = _run(config, redactor, counting)
    assert counting.embedded == first
    assert [(t.ref.source_id, origin) for t, origin in plan.moves] == [("hr/grievances.txt", "uk")]
    writer = Services(config, redactor=redactor, embedder=embedder)
    try:
        assert writer.index("uk").counts().documents == 0
        assert writer.index("eu").counts().documents == 2
    finally:
        writer.close()
    assert sum(r.purged for r in reports) == 1
    hana_eu_only = PrincipalConfig(name="hana", api_key_sha256="a" * 64, groups=["hr"], regions=["eu"])
    reader = make_reader(config, redactor, embedder)
    try:
        out = reader.search(hana_eu_only, "grievance procedure", 5)
        assert out.results[0].source_uri.endswith("grievances.txt")
        assert out.results[0].residency == "eu"
    finally:
        reader.close()
