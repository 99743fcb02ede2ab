"""The error hierarchy shared by every Groundwork package.

Each error's message names the bad value and never carries document content.
"""


class GroundworkError(Exception):
    """Base class of every error Groundwork raises on purpose."""


class ConfigError(GroundworkError):
    """The configuration file is missing, unreadable or invalid."""


class ConnectorError(GroundworkError):
    """A connector could not list or fetch from its source."""


class DocumentError(GroundworkError):
    """One document could not be processed; the batch goes on without it.

    ``stage`` names the pipeline stage that refused it and ``reason`` is a short code that
    reports and the failures table group by.
    """

    def __init__(self, message: str, *, stage: str, reason: str) -> None:
        super().__init__(message)
        self.stage = stage
        self.reason = reason


class IndexError_(GroundworkError):
    """The index database refused an operation or could not be reached."""


class AuthError(GroundworkError):
    """A caller could not be authenticated."""
