"""The project's vocabularies: every code that is stored, logged or sent as text is one of these.

``StrEnum`` members compare equal to their text, so rows written before these enums existed, and
clients that send or read plain strings, keep working.
"""

from __future__ import annotations

from enum import StrEnum


class ChangeKind(StrEnum):
    """What a run does with a document, as its plan counts it: why it is (or is not) processed."""

    NEW = "new"
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    FAILED_BEFORE = "failed_before"
    RETAG = "retag"
    MOVE = "move"
    RENAME = "rename"
    REFUSED = "refused"
    REBUILD = "rebuild"
    DELETED = "deleted"
    FORGOTTEN = "forgotten"
    EXPIRED = "expired"


class Stage(StrEnum):
    """The pipeline stage at which a document failed."""

    LIST = "list"
    FETCH = "fetch"
    PARTITION = "partition"
    REDACT = "redact"
    CHUNK = "chunk"
    EMBED = "embed"
    INDEX = "index"
    POLICY = "policy"


class FailureReason(StrEnum):
    """Why a document failed; stored in the failures table and grouped by in reports."""

    UNSUPPORTED_TYPE = "unsupported_type"
    EMPTY = "empty"
    TOO_LARGE = "too_large"
    ENCRYPTED = "encrypted"
    PARSE_ERROR = "parse_error"
    NO_TEXT = "no_text"
    FETCH_ERROR = "fetch_error"
    NO_RESIDENCY = "no_residency"
    NO_ACCESS_RULE = "no_access_rule"
    MOVE_SOURCE_MISSING = "move_source_missing"
    TIME_LIMIT = "time_limit"
    PARSER_CRASHED = "parser_crashed"
    INTERNAL_ERROR = "internal_error"
    FORGOTTEN_CONTENT = "forgotten_content"

    @property
    def permanent(self) -> bool:
        """Whether the failure depends only on the content: not retried until the content changes."""
        return self in PERMANENT_REASONS


#: Failure reasons that depend only on the file's content. Any other failure (a database error, an
#: unexpected error, a fetch that timed out) is retried on the next run.
PERMANENT_REASONS = frozenset(
    {
        FailureReason.UNSUPPORTED_TYPE,
        FailureReason.EMPTY,
        FailureReason.TOO_LARGE,
        FailureReason.ENCRYPTED,
        FailureReason.PARSE_ERROR,
        FailureReason.NO_TEXT,
        FailureReason.TIME_LIMIT,
        FailureReason.PARSER_CRASHED,
        FailureReason.FORGOTTEN_CONTENT,
    }
)


class ErasureReason(StrEnum):
    """Why a document was erased (the tombstone's reason)."""

    FORGET = "forget"
    RETENTION = "retention"


class RetrievalMode(StrEnum):
    """How candidates are ranked."""

    DENSE = "dense"
    LEXICAL = "lexical"
    HYBRID = "hybrid"


class Decision(StrEnum):
    """What a downstream guardrail should do with the results."""

    ANSWER = "answer"
    HANDOFF = "handoff"


class Reason(StrEnum):
    """Why the decision is a handoff."""

    NO_AUTHORIZED_RESULTS = "no_authorized_results"
    LOW_CONFIDENCE = "low_confidence"
    AMBIGUOUS = "ambiguous"
    MOSTLY_REDACTED = "mostly_redacted"
    CONTEXT_BUDGET = "context_budget"
    CONVERSATION_BUDGET = "conversation_budget"


class ActionDecision(StrEnum):
    """The action gate's answer: go ahead, hand the task to a human, or it was already done."""

    PROCEED = "proceed"
    HANDOFF = "handoff"
    ALREADY_EXECUTED = "already_executed"


class GateReason(StrEnum):
    """Why the action gate did not let an action proceed."""

    NO_RULE = "no_rule"
    DISABLED = "disabled"
    NOT_IN_ROLLOUT = "not_in_rollout"
    UNKNOWN_REQUEST = "unknown_request"
    OTHER_CONVERSATION = "other_conversation"
    LOW_CONFIDENCE = "low_confidence"
    DECISION = "decision"
    SOURCE_NOT_ALLOWED = "source_not_allowed"
    REGION_NOT_ALLOWED = "region_not_allowed"
    FAILURE_BRAKE = "failure_brake"
    COST_BRAKE = "cost_brake"
    ALREADY_EXECUTED = "already_executed"


class EventKind(StrEnum):
    """A step an agent reports in its chain (``POST /v1/events``)."""

    DRAFT = "draft"
    ACTION_EXECUTED = "action_executed"
    ACTION_FAILED = "action_failed"
    HANDED_OFF = "handed_off"


class Role(StrEnum):
    """The database role a process connects as: the API reads, ingest writes, migrations own."""

    READER = "reader"
    WRITER = "writer"
    OWNER = "owner"


class AuthMethod(StrEnum):
    """How a caller proved who it is."""

    API_KEY = "api_key"
    JWT = "jwt"
    CLI = "cli"


class LawfulBasis(StrEnum):
    """The lawful basis for processing personal data (UK GDPR / GDPR Art. 6(1))."""

    CONSENT = "consent"
    CONTRACT = "contract"
    LEGAL_OBLIGATION = "legal_obligation"
    VITAL_INTERESTS = "vital_interests"
    PUBLIC_TASK = "public_task"
    LEGITIMATE_INTERESTS = "legitimate_interests"
