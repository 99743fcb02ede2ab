"""The one configuration file: sources, principals, database and stage settings.

Loaded once at the edge (CLI, API factory, Dagster resource) and passed in. Relative paths resolve
against the folder of the config file. A source entry mixes two things in one mapping: where its
documents come from (the fields of its connector's own settings model, which the connector
registers under the ``groundwork.connectors`` entry-point group) and the operator's policy for them
(residency, access, rules, retention), which this module owns.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    Field,
    SecretStr,
    SerializeAsAny,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from groundwork.agents import ActionRule, AgentsConfig
from groundwork.contracts import NO_CONTRACT, DataContract
from groundwork.errors import ConfigError
from groundwork.plugins import connector_classes
from groundwork.retention import RecordsConfig
from groundwork.sections import (
    DEFAULT_MODEL_NAME,
    AccessGrant,
    ApiConfig,
    AuthConfig,
    BackfillConfig,
    ChunkingConfig,
    DatabaseConfig,
    EmbeddingConfig,
    IngestConfig,
    JwtConfig,
    Name,
    PartitioningConfig,
    RedactionConfig,
    Region,
    RetrievalConfig,
    Strict,
    resolve_path,
)
from groundwork.telemetry_config import RegionTelemetry, TelemetryConfig

__all__ = [
    "DEFAULT_MODEL_NAME",
    "ActionRule",
    "AgentsConfig",
    "ApiConfig",
    "AuthConfig",
    "BackfillConfig",
    "ChunkingConfig",
    "ConnectorSettings",
    "DataContract",
    "DatabaseConfig",
    "EmbeddingConfig",
    "GroundworkConfig",
    "IngestConfig",
    "JwtConfig",
    "OrchestrationConfig",
    "PartitioningConfig",
    "PolicyRule",
    "PrincipalConfig",
    "RecordsConfig",
    "RedactionConfig",
    "RegionTelemetry",
    "RetrievalConfig",
    "SourceConfig",
    "TelemetryConfig",
    "load_config",
    "resolve_config_path",
    "resolve_path",
]

CONFIG_ENV = "GROUNDWORK_CONFIG"


class PolicyRule(Strict):
    """Residency and/or access for the documents of a source whose relative path matches ``match``.

    ``match`` is a glob on the path relative to the source root (``payroll/**``, ``*.xlsx``,
    ``board/minutes-2026.docx``). When several rules match, the most specific wins: the one with the
    most literal (non-wildcard) characters, then the later one.
    """

    match: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    residency: Region | None = None
    access: list[AccessGrant] | None = None

    @model_validator(mode="after")
    def _says_something(self) -> PolicyRule:
        if self.residency is None and self.access is None:
            raise ValueError(f"rule {self.match!r} sets neither residency nor access")
        if self.access is not None and not self.access:
            raise ValueError(
                f"rule {self.match!r}: access must name at least one grant (use [public] for everyone)"
            )
        return self


class ConnectorSettings(Strict):
    """Base of every connector's own settings: where a source's documents come from.

    A connector subclasses it with ``connector: Literal["<name>"]`` and its fields (a folder, a
    bucket, a mailbox ...); access policy never goes here.
    """

    connector: str


#: Fields of a source entry that belong to the policy (and identity), not to its connector.
_POLICY_FIELDS = frozenset(
    {"name", "connector", "residency", "access", "rules", "retention_days", "handoff_below", "contract"}
)


class SourceConfig(Strict):
    """One source: its connector's settings, and the operator's policy for its documents.

    ``residency`` and ``access`` apply to every document unless a rule says otherwise. A document
    left with no access grant, or no residency, is refused at ingest (fail closed); ``access:
    [public]`` marks documents readable by every principal explicitly. ``contract`` is the
    data-access contract (:class:`DataContract`); without one ingest refuses the source, unless it is
    ``none`` (acknowledged: the source has none). In the file, the connector's fields sit beside the
    policy's in one mapping.
    """

    name: Name
    connector: str
    settings: SerializeAsAny[ConnectorSettings]
    residency: Region | None = None
    access: list[AccessGrant] = Field(default_factory=list)
    rules: list[PolicyRule] = Field(default_factory=list)
    retention_days: int | None = Field(default=None, ge=1, le=36_500)
    handoff_below: float | None = Field(default=None, ge=0.0, le=1.0)
    contract: DataContract | Literal["none"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _split(cls, data: Any) -> Any:
        """Move the connector's fields of a flat source entry into ``settings``."""
        if not isinstance(data, dict) or "settings" in data:
            return data
        policy = {k: v for k, v in data.items() if k in _POLICY_FIELDS}
        connector = {k: v for k, v in data.items() if k not in _POLICY_FIELDS}
        return {**policy, "settings": {"connector": data.get("connector"), **connector}}

    @field_validator("settings", mode="before")
    @classmethod
    def _connector_settings(cls, value: Any, info: ValidationInfo) -> Any:
        """Validate the connector's fields with the settings model it registered."""
        if isinstance(value, ConnectorSettings) or not isinstance(value, dict):
            return value
        name = value.get("connector")
        classes = connector_classes()
        if name not in classes:
            raise ValueError(f"unknown connector {name!r}; installed: {', '.join(sorted(classes)) or 'none'}")
        return classes[name].settings_model.model_validate(value, context=info.context)

    @model_validator(mode="after")
    def _within_commitment(self) -> SourceConfig:
        """The policy may place documents only in the regions the contract commits to."""
        if isinstance(self.contract, DataContract):
            outside = sorted(self.regions - set(self.contract.residency_commitment))
            if outside:
                raise ValueError(
                    f"source {self.name!r} places documents in {outside}, outside its contract's "
                    f"residency_commitment {self.contract.residency_commitment}"
                )
        return self

    @property
    def has_contract(self) -> bool:
        """Whether ingest may run this source: it has a contract, or says plainly it has none."""
        return self.contract is not None

    @property
    def contract_acknowledged_none(self) -> bool:
        """The config acknowledges that this source has no contract (shown in red in the report)."""
        return self.contract == NO_CONTRACT

    @property
    def regions(self) -> set[str]:
        """Every region this source's policy can place a document in."""
        named = {r.residency for r in self.rules if r.residency is not None}
        return named | ({self.residency} if self.residency else set())


class PrincipalConfig(Strict):
    """A caller of the retrieval API: who it is, which groups it is in, which regions it may read.

    ``roles: [steward]`` also lets it read the lineage of the chunks it may read
    (``GET /v1/lineage/{chunk_id}``); no other role exists yet.
    """

    name: Name
    api_key_sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$")]
    groups: list[Name] = Field(default_factory=list)
    regions: list[Region] = Field(min_length=1)
    handoff_below: float | None = Field(default=None, ge=0.0, le=1.0)
    roles: list[Literal["steward"]] = Field(default_factory=list)

    @property
    def is_steward(self) -> bool:
        """Whether this principal may read lineage."""
        return "steward" in self.roles

    def grants(self) -> list[str]:
        """The access grants this principal holds, in the form documents are tagged with."""
        return ["public", f"principal:{self.name}", *(f"group:{g}" for g in self.groups)]


class OrchestrationConfig(Strict):
    """How the Dagster ``ingest`` job runs its steps.

    ``in_process`` runs the plan and every region's index in one process (models loaded once).
    ``multiprocess`` runs each region's index asset in a process of its own, at most
    ``max_concurrent`` at once; ``k8s`` runs each in a Kubernetes pod (needs ``dagster-k8s``).
    Each step process loads its own models, so it pays off only with several busy regions and
    cores to spare.
    """

    executor: Literal["in_process", "multiprocess", "k8s"] = "in_process"
    max_concurrent: int = Field(default=2, ge=1, le=256)


class GroundworkConfig(Strict):
    """The whole configuration file."""

    sources: list[SourceConfig] = Field(min_length=1)
    principals: list[PrincipalConfig] = Field(default_factory=list)
    state_dir: Path = Field(default=Path(".groundwork"), validate_default=True)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    partitioning: PartitioningConfig = Field(default_factory=PartitioningConfig)
    backfill: BackfillConfig = Field(default_factory=BackfillConfig)
    orchestration: OrchestrationConfig = Field(default_factory=OrchestrationConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    redaction: RedactionConfig = Field(default_factory=RedactionConfig)
    chunking: ChunkingConfig = Field(default_factory=ChunkingConfig)
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    agents: AgentsConfig = Field(default_factory=AgentsConfig)
    records: RecordsConfig = Field(default_factory=RecordsConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)

    _resolve = field_validator("state_dir")(resolve_path)

    @model_validator(mode="after")
    def _consistent(self) -> GroundworkConfig:
        _unique("sources", [s.name for s in self.sources])
        _unique("principals", [p.name for p in self.principals])
        _unique("principal api keys", [p.api_key_sha256.lower() for p in self.principals])
        if self.database.urls:
            missing = sorted(set(self.regions) - set(self.database.urls))
            if missing:
                raise ValueError(f"database.urls has no URL for region(s) {missing} named by sources")
        if self.agents.ledger_region is not None and self.agents.ledger_region not in self.regions:
            raise ValueError(
                f"agents.ledger_region {self.agents.ledger_region!r} is not a region any source stores in"
            )
        return self

    def ledger_region_for(self, regions: list[str]) -> str | None:
        """Where a caller searching ``regions`` keeps its ledger rows (searches, checks, events).

        ``agents.ledger_region`` when set (one ledger for every caller), else the first of the
        caller's regions, so a caller's records stay in a region it may use. None for a caller
        with no region.
        """
        if self.agents.ledger_region is not None:
            return self.agents.ledger_region
        return min(regions) if regions else None

    @property
    def regions(self) -> list[str]:
        """The residency regions that sources store documents in, sorted."""
        return sorted(set().union(*(s.regions for s in self.sources)))

    def source(self, name: str) -> SourceConfig:
        """The source called ``name``."""
        for s in self.sources:
            if s.name == name:
                return s
        raise ConfigError(f"no source named {name!r}; configured: {[s.name for s in self.sources]}")

    def principal(self, name: str) -> PrincipalConfig:
        """The principal called ``name``."""
        for p in self.principals:
            if p.name == name:
                return p
        raise ConfigError(f"no principal named {name!r}; configured: {[p.name for p in self.principals]}")


def _unique(what: str, names: list[str]) -> None:
    seen: set[str] = set()
    dupes = sorted({n for n in names if n in seen or seen.add(n)})  # type: ignore[func-returns-value]
    if dupes:
        raise ValueError(f"duplicate {what}: {dupes}")


class EnvOverrides(BaseSettings):
    """Settings that the environment may override, so secrets stay out of the file."""

    model_config = SettingsConfigDict(env_prefix="GROUNDWORK_", extra="ignore")

    database_url: SecretStr | None = None
    database_reader_url: SecretStr | None = None
    database_writer_url: SecretStr | None = None
    database_audit_url: SecretStr | None = None


def resolve_config_path(explicit: str | os.PathLike[str] | None) -> Path:
    """The config file to use: ``--config``, else ``$GROUNDWORK_CONFIG``."""
    raw = explicit or os.environ.get(CONFIG_ENV)
    if not raw:
        raise ConfigError(f"no configuration file: pass --config PATH or set {CONFIG_ENV}")
    return Path(raw).expanduser().resolve()


def load_config(path: str | os.PathLike[str]) -> GroundworkConfig:
    """Read and validate a config file; errors name the bad field and value."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"configuration file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping with at least 'sources'")
    _apply_env(raw, EnvOverrides())
    try:
        return GroundworkConfig.model_validate(raw, context={"base_dir": path.parent.resolve()})
    except ValidationError as exc:
        raise ConfigError(f"{path} is invalid:\n{format_validation_error(exc)}") from None


def _apply_env(raw: dict[str, Any], env: EnvOverrides) -> None:
    """``GROUNDWORK_DATABASE_URL`` (owner), ``..._READER_URL``, ``..._WRITER_URL`` and ``..._AUDIT_URL``
    override the file."""
    overrides: dict[str, Any] = {}
    if env.database_url is not None:
        overrides.update(url=env.database_url.get_secret_value(), urls={})
    if env.database_reader_url is not None:
        overrides.update(reader_url=env.database_reader_url.get_secret_value(), reader_urls={})
    if env.database_writer_url is not None:
        overrides.update(writer_url=env.database_writer_url.get_secret_value(), writer_urls={})
    if env.database_audit_url is not None:
        overrides.update(audit_url=env.database_audit_url.get_secret_value(), audit_urls={})
    if overrides:
        database = raw.get("database") or {}
        if isinstance(database, dict):
            raw["database"] = {**database, **overrides}


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem: the dotted field path, the message and the offending value."""
    lines = []
    for err in exc.errors():
        # A source's connector fields sit beside its policy in the file: hide the "settings" step.
        loc = ".".join(str(p) for p in err["loc"] if p != "settings") or "(top level)"
        value = err.get("input")
        shown = "" if isinstance(value, dict | list) or value is None else f" (got {_short(value)!r})"
        if "url" in loc:
            shown = ""  # URLs may hold passwords
        lines.append(f"  - {loc}: {err['msg']}{shown}")
    return "\n".join(lines)


def _short(value: Any) -> Any:
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def redact_dsn(dsn: str) -> str:
    """A DSN with any password replaced by ``***``, for logs and errors."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", dsn)
