"""The ``telemetry:`` section: OpenTelemetry traces, exported only where residency allows.

Plain settings and the span vocabulary; the SDK (providers, processors, exporters) is set up in the
:mod:`telemetry` package and the stages use only ``opentelemetry-api``. Spans are tagged with the
residency regions they touch (:data:`ATTR_REGIONS`); a trace that touches a region whose ``export``
is false, or a region not listed here at all, is dropped before export (fail closed). Only the
attribute keys in :data:`ALLOWED_ATTRIBUTES` ever leave the process.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, StringConstraints, model_validator

from groundwork.sections import Name, Region, Strict

__all__ = [
    "ALLOWED_ATTRIBUTES",
    "ATTR_BATCH",
    "ATTR_CHUNKS",
    "ATTR_CONFIDENCE",
    "ATTR_DECISION",
    "ATTR_DOCUMENTS",
    "ATTR_EMBEDDINGS",
    "ATTR_FAILED",
    "ATTR_K",
    "ATTR_LATENCY_MS",
    "ATTR_REDACTIONS",
    "ATTR_REGIONS",
    "ATTR_RESULTS",
    "ATTR_STAGE",
    "RegionTelemetry",
    "TelemetryConfig",
]

#: The residency regions a span touches (a list of region names): what the export decision reads.
ATTR_REGIONS = "groundwork.regions"
#: The ingest stage of a span (``partition``, ``redact``, ``chunk``, ``embed``, ``index``).
ATTR_STAGE = "groundwork.stage"
#: The micro-batch's number within its run.
ATTR_BATCH = "groundwork.batch"
#: Documents that went through a stage, documents that failed in it so far, chunks, embeddings.
ATTR_DOCUMENTS = "groundwork.documents"
ATTR_FAILED = "groundwork.failed"
ATTR_CHUNKS = "groundwork.chunks"
ATTR_EMBEDDINGS = "groundwork.embeddings"
#: PII placeholders written by the redact stage (a count, never a value or a type's text).
ATTR_REDACTIONS = "groundwork.redactions"
#: A search's recommended decision, its k, results returned, confidence and latency.
ATTR_DECISION = "groundwork.decision"
ATTR_K = "groundwork.k"
ATTR_RESULTS = "groundwork.results"
ATTR_CONFIDENCE = "groundwork.confidence"
ATTR_LATENCY_MS = "groundwork.latency_ms"

#: The only span attribute keys that are exported; every other attribute is removed. HTTP keys are
#: those of the FastAPI instrumentation (old and stable semantic conventions) that hold no request
#: value: the method, the route *template* and the status code. Never the URL, target, query,
#: headers, client address or user agent.
ALLOWED_ATTRIBUTES = frozenset(
    {
        "http.method",
        "http.request.method",
        "http.route",
        "http.status_code",
        "http.response.status_code",
        ATTR_REGIONS,
        ATTR_STAGE,
        ATTR_BATCH,
        ATTR_DOCUMENTS,
        ATTR_FAILED,
        ATTR_CHUNKS,
        ATTR_EMBEDDINGS,
        ATTR_REDACTIONS,
        ATTR_DECISION,
        ATTR_K,
        ATTR_RESULTS,
        ATTR_CONFIDENCE,
        ATTR_LATENCY_MS,
    }
)

Ratio = Annotated[float, Field(ge=0.0, le=1.0)]


class RegionTelemetry(Strict):
    """Whether traces touching one residency region may leave, and how many of them.

    ``export`` is false unless set: listing a region does not by itself allow its traces out.
    ``sample_ratio`` (default: ``telemetry.sample_ratio``) is the share of its traces exported.
    """

    export: bool = False
    sample_ratio: Ratio | None = None


class TelemetryConfig(Strict):
    """OpenTelemetry traces of the API and the ingest stages, sent by OTLP/HTTP to ``endpoint``.

    A trace is exported only if every region it touches is listed in ``regions`` with ``export:
    true``; it is then kept with the smallest ``sample_ratio`` among them, decided by its trace id
    (so every process keeps or drops the same trace). A trace that touches no region (a refused
    request, say) follows ``sample_ratio`` when ``export_without_region`` is true. Credentials for
    the collector go in ``OTEL_EXPORTER_OTLP_TRACES_HEADERS``, never in the file.
    """

    enabled: bool = False
    #: The OTLP/HTTP traces URL, e.g. ``http://collector:4318/v1/traces``.
    endpoint: Annotated[str, StringConstraints(max_length=2000)] | None = None
    service_name: Name = "groundwork"
    sample_ratio: Ratio = 1.0
    export_without_region: bool = True
    regions: dict[Region, RegionTelemetry] = Field(default_factory=dict)
    export_timeout_seconds: float = Field(default=10.0, gt=0.0, le=300.0)
    #: Traces held in memory until their root span ends; past it the oldest is dropped, not exported.
    max_pending_traces: int = Field(default=2048, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _endpoint(self) -> TelemetryConfig:
        # The value is never quoted in these messages: a URL may hold credentials.
        if self.endpoint is not None:
            parts = urlsplit(self.endpoint)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("telemetry.endpoint must be an http:// or https:// URL with a host")
            if parts.username is not None or parts.password is not None:
                raise ValueError(
                    "telemetry.endpoint must not hold credentials: set OTEL_EXPORTER_OTLP_TRACES_HEADERS"
                )
        if self.enabled and self.endpoint is None:
            raise ValueError("telemetry.enabled needs telemetry.endpoint (the OTLP/HTTP traces URL)")
        return self

    def ratio_for(self, regions: set[str]) -> float:
        """The share of traces touching ``regions`` that is exported: 0 if any may not leave."""
        if not regions:
            return self.sample_ratio if self.export_without_region else 0.0
        ratios = []
        for region in regions:
            rule = self.regions.get(region)
            if rule is None or not rule.export:
                return 0.0
            ratios.append(self.sample_ratio if rule.sample_ratio is None else rule.sample_ratio)
        return min(ratios)
