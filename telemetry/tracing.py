"""The tracer provider of one process part (an API app, an ingest), built from ``telemetry:``.

No global state: each :class:`Telemetry` owns its provider, so several apps in one process do not
collide and nothing is set at import time. When telemetry is off, tracers are no-ops and nothing
is exported or held.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from groundwork.telemetry_config import TelemetryConfig
from telemetry.governance import GovernedSpanProcessor


class Telemetry:
    """Traces for one config: a governed SDK provider when enabled, no-op tracers otherwise.

    ``exporter`` replaces the OTLP/HTTP exporter (tests pass the SDK's in-memory one). Every span is
    recorded (the sampler is always on) because the residency and sampling decision needs the
    whole trace; :class:`~telemetry.governance.GovernedSpanProcessor` takes it when the trace ends.
    """

    def __init__(self, config: TelemetryConfig, *, exporter: SpanExporter | None = None) -> None:
        self.config = config
        self.governor: GovernedSpanProcessor | None = None
        self._sdk: TracerProvider | None = None
        if not config.enabled:
            self.provider: trace.TracerProvider = trace.NoOpTracerProvider()
            return
        if exporter is None:
            # Headers (a collector's credentials) come from OTEL_EXPORTER_OTLP_TRACES_HEADERS.
            exporter = OTLPSpanExporter(endpoint=config.endpoint, timeout=config.export_timeout_seconds)
        self._sdk = TracerProvider(
            resource=Resource.create({SERVICE_NAME: config.service_name}),
            sampler=ALWAYS_ON,
        )
        self.governor = GovernedSpanProcessor(config, BatchSpanProcessor(exporter))
        self._sdk.add_span_processor(self.governor)
        self.provider = self._sdk

    @property
    def enabled(self) -> bool:
        """Whether spans are recorded and may be exported."""
        return self._sdk is not None

    def tracer(self, name: str) -> trace.Tracer:
        """A tracer of this provider (a no-op one when telemetry is off)."""
        return self.provider.get_tracer(name)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export every decided span now; true when the exporter finished in time."""
        return self._sdk.force_flush(timeout_millis) if self._sdk is not None else True

    def shutdown(self) -> None:
        """Export what is decided and stop; later spans are not exported."""
        if self._sdk is not None:
            self._sdk.shutdown()
