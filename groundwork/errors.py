"""The error hierarchy shared by every Groundwork package.

Each error's message names the bad value and never carries document content.
"""

from __future__ import annotations

from groundwork.enums import FailureReason, Stage


class GroundworkError(Exception):
    """Base class of every error Groundwork raises on purpose."""


class ConfigError(GroundworkError):
    """The configuration file is missing, unreadable or invalid."""


class ConnectorError(GroundworkError):
    """A connector could not list or fetch from its source."""


class DocumentError(GroundworkError):
    """One document could not be processed; the batch goes on without it.

    ``stage`` names the pipeline stage that refused it and ``reason`` is the code that reports and
    the failures table group by.
    """

    def __init__(self, message: str, *, stage: Stage, reason: FailureReason) -> None:
        super().__init__(message)
        self.stage = stage
        self.reason = reason


class IndexError_(GroundworkError):
    """The index database refused an operation or could not be reached."""


class IndexUnavailable(IndexError_):
    """The index database could not be reached in time: a retry later may succeed."""


class SchemaError(IndexError_):
    """An index's schema is missing or of another version: ``groundwork migrate`` must run first."""


class AuthError(GroundworkError):
    """A caller could not be authenticated."""


class IngestBusy(GroundworkError):
    """Another ingest run holds a region this run needs."""
