"""OpenTelemetry under residency rules: the SDK's providers, processors and exporter.

A layer beside ``pipelines`` and ``indexes``: it imports only the kernel. The API
(:mod:`serving.telemetry`) and the ingest processes (:mod:`orchestration.services`) build a
:class:`Telemetry` from ``telemetry:``; the stages themselves use only ``opentelemetry-api``.
"""

from telemetry.governance import GovernedSpanProcessor, keeps, redact_attributes, redact_span
from telemetry.tracing import Telemetry

__all__ = ["GovernedSpanProcessor", "Telemetry", "keeps", "redact_attributes", "redact_span"]
