"""The agents' ledger: what each search gave, what the action gate answered, what agents reported.

Rows live in one region's schema (see :meth:`groundwork.settings.GroundworkConfig.ledger_region_for`)
and are append-only. Every transaction names its caller (``groundwork.principal``), and row-level
security lets the reader role (the API) read and append that caller's rows only. The rules that
decide an action live above, in :mod:`serving.actions`; this module stores and reads.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from groundwork.enums import ActionDecision, EventKind, GateReason
from groundwork.errors import GroundworkError
from indexes.pooling import connection
from indexes.state import IndexState


class IdempotencyConflict(GroundworkError):
    """An idempotency key reused with other inputs than its first check."""


@dataclass(frozen=True, slots=True)
class SearchSummary:
    """What one search gave its caller: enough for the gate, nothing of the documents' text."""

    request_id: uuid.UUID
    decision: str
    confidence: float
    reasons: list[str]
    sources: list[str]
    regions: list[str]
    context_tokens: int
    conversation_id: str | None = None
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Outcomes:
    """What agents reported for one action: outcomes in the brake's window and today's cost."""

    executed: int
    failed: int
    cost_today: float


@dataclass(frozen=True, slots=True)
class GateAnswer:
    """The gate's answer to one check."""

    allowed: bool
    decision: ActionDecision
    reasons: list[GateReason]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """A check's answer, whether it was stored earlier under the same key, and whether it was done."""

    answer: GateAnswer
    replayed: bool
    executed: bool


@dataclass(frozen=True, slots=True)
class ChainEvent:
    """A step an agent reports; ``detail`` must already be redacted."""

    conversation_id: str
    kind: EventKind
    action: str | None = None
    idempotency_key: str | None = None
    latency_ms: float | None = None
    cost: float | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class AppendedEvent:
    """A reported step as stored: its id, whether it opened its conversation's events, and for a
    step that ends a chain (an action executed or failed, a handoff) the chain's duration: seconds
    from the conversation's first recorded search, check or step until this one."""

    event_id: int
    first: bool
    chain_seconds: float | None


#: Steps that end a chain: the agent acted, failed to, or handed off to a person.
CHAIN_ENDS = frozenset({EventKind.ACTION_EXECUTED, EventKind.ACTION_FAILED, EventKind.HANDED_OFF})

#: Reads the outcomes of ``action`` over the last ``window_minutes`` (and today's cost).
OutcomeReader = Callable[[str, int], Outcomes]


class Ledger:
    """One region's ledger, reached through ``index``'s pool (the API's reader role)."""

    def __init__(self, index: IndexState) -> None:
        self.pool = index.pool
        self.schema = index.schema

    def _q(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(s=sql.Identifier(self.schema))

    @contextmanager
    def _transaction(self, principal: str) -> Iterator[psycopg.Connection]:
        with connection(self.pool) as conn, conn.transaction():
            conn.execute("SELECT set_config('groundwork.principal', %s, true)", (principal,))
            yield conn

    def _insert_search(self, conn: psycopg.Connection, principal: str, s: SearchSummary) -> None:
        conn.execute(
            self._q(
                "INSERT INTO {s}.agent_searches (request_id, principal, conversation_id, decision,"
                " confidence, reasons, sources, regions, context_tokens)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            ),
            (
                s.request_id,
                principal,
                s.conversation_id,
                s.decision,
                s.confidence,
                s.reasons,
                s.sources,
                s.regions,
                s.context_tokens,
            ),
        )

    def record_search(self, principal: str, summary: SearchSummary) -> None:
        """Append a search's summary (a search outside any conversation)."""
        with self._transaction(principal) as conn:
            self._insert_search(conn, principal, summary)

    def conversation_tokens(self, principal: str, conversation_id: str) -> int:
        """Context tokens the caller's searches in ``conversation_id`` have received so far."""
        with self._transaction(principal) as conn:
            row = conn.execute(
                self._q(
                    "SELECT coalesce(sum(context_tokens), 0) FROM {s}.agent_searches"
                    " WHERE principal = %s AND conversation_id = %s"
                ),
                (principal, conversation_id),
            ).fetchone()
        return int(row[0]) if row else 0

    def _searches(
        self, conn: psycopg.Connection, request_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, SearchSummary]:
        """The caller's searches among ``request_ids`` (another principal's are invisible)."""
        rows = conn.execute(
            self._q(
                "SELECT request_id, decision, confidence, reasons, sources, regions, context_tokens,"
                " conversation_id, at FROM {s}.agent_searches WHERE request_id = ANY(%s)"
            ),
            (request_ids,),
        ).fetchall()
        return {r[0]: SearchSummary(*r) for r in rows}

    def _outcomes(self, conn: psycopg.Connection) -> OutcomeReader:
        def read(action: str, window_minutes: int) -> Outcomes:
            now = datetime.now(UTC)
            day = now.replace(hour=0, minute=0, second=0, microsecond=0)
            row = conn.execute(
                self._q("SELECT executed, failed, cost FROM {s}.action_outcomes(%s, %s, %s)"),
                (action, now - timedelta(minutes=window_minutes), day),
            ).fetchone()
            return Outcomes(int(row[0]), int(row[1]), float(row[2])) if row else Outcomes(0, 0, 0.0)

        return read

    def check(
        self,
        principal: str,
        *,
        idempotency_key: str,
        inputs_digest: str,
        action: str,
        conversation_id: str | None,
        request_ids: list[uuid.UUID],
        decide: Callable[[dict[uuid.UUID, SearchSummary], OutcomeReader], GateAnswer],
    ) -> CheckResult:
        """Answer a check once per idempotency key: the stored answer on a retry with the same inputs.

        Raises :class:`IdempotencyConflict` when the key was used with other inputs.
        """
        with self._transaction(principal) as conn:
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))",
                (f"groundwork-action:{principal}:{idempotency_key}",),
            )
            stored = conn.execute(
                self._q(
                    "SELECT inputs_digest, allowed, decision, reasons FROM {s}.action_checks"
                    " WHERE principal = %s AND idempotency_key = %s"
                ),
                (principal, idempotency_key),
            ).fetchone()
            if stored is not None:
                if stored[0] != inputs_digest:
                    raise IdempotencyConflict(
                        "this idempotency key was already used for a check with other inputs"
                    )
                answer = GateAnswer(stored[1], ActionDecision(stored[2]), [GateReason(r) for r in stored[3]])
                return CheckResult(answer, replayed=True, executed=self._executed(conn, idempotency_key))
            answer = decide(self._searches(conn, request_ids), self._outcomes(conn))
            conn.execute(
                self._q(
                    "INSERT INTO {s}.action_checks (principal, idempotency_key, action, conversation_id,"
                    " request_ids, inputs_digest, allowed, decision, reasons)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                ),
                (
                    principal,
                    idempotency_key,
                    action,
                    conversation_id,
                    request_ids,
                    inputs_digest,
                    answer.allowed,
                    answer.decision.value,
                    [r.value for r in answer.reasons],
                ),
            )
            return CheckResult(answer, replayed=False, executed=self._executed(conn, idempotency_key))

    def _executed(self, conn: psycopg.Connection, idempotency_key: str) -> bool:
        row = conn.execute(
            self._q(
                "SELECT EXISTS (SELECT 1 FROM {s}.agent_events WHERE idempotency_key = %s AND kind = %s)"
            ),
            (idempotency_key, EventKind.ACTION_EXECUTED.value),
        ).fetchone()
        return bool(row and row[0])

    def append_event(self, principal: str, event: ChainEvent) -> AppendedEvent:
        """Append a reported step (see :class:`AppendedEvent` for what is returned)."""
        with self._transaction(principal) as conn:
            seen = conn.execute(
                self._q(
                    "SELECT EXISTS (SELECT 1 FROM {s}.agent_events WHERE principal = %s AND conversation_id = %s)"
                ),
                (principal, event.conversation_id),
            ).fetchone()
            chain_seconds = None
            if event.kind in CHAIN_ENDS:
                began = conn.execute(
                    self._q(
                        "SELECT extract(epoch FROM clock_timestamp() - min(at))::float8 FROM ("
                        " SELECT at FROM {s}.agent_searches WHERE principal = %(p)s AND conversation_id = %(c)s"
                        " UNION ALL SELECT at FROM {s}.action_checks WHERE principal = %(p)s AND conversation_id = %(c)s"
                        " UNION ALL SELECT at FROM {s}.agent_events WHERE principal = %(p)s AND conversation_id = %(c)s"
                        ") steps"
                    ),
                    {"p": principal, "c": event.conversation_id},
                ).fetchone()
                chain_seconds = None if began is None or began[0] is None else max(0.0, float(began[0]))
            row = conn.execute(
                self._q(
                    "INSERT INTO {s}.agent_events (principal, conversation_id, kind, action,"
                    " idempotency_key, latency_ms, cost, detail)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING event_id"
                ),
                (
                    principal,
                    event.conversation_id,
                    event.kind.value,
                    event.action,
                    event.idempotency_key,
                    event.latency_ms,
                    event.cost,
                    event.detail,
                ),
            ).fetchone()
            assert row is not None  # INSERT ... RETURNING gives one row
            return AppendedEvent(int(row[0]), not (seen and seen[0]), chain_seconds)

    def chain(self, principal: str, conversation_id: str) -> list[dict[str, Any]]:
        """The caller's conversation in time order: searches, checks and reported steps."""
        parts = (
            ("search", "agent_searches", _SEARCH_FIELDS),
            ("action_check", "action_checks", _CHECK_FIELDS),
            ("event", "agent_events", _EVENT_FIELDS),
        )
        steps: list[dict[str, Any]] = []
        with self._transaction(principal) as conn:
            for kind, table, fields in parts:
                query = sql.SQL(
                    "SELECT at, {f} FROM {s}.{t} WHERE principal = %s AND conversation_id = %s"
                ).format(
                    f=sql.SQL(", ").join(map(sql.Identifier, fields)),
                    s=sql.Identifier(self.schema),
                    t=sql.Identifier(table),
                )
                for row in conn.execute(query, (principal, conversation_id)):
                    steps.append({"at": row[0], "type": kind, **dict(zip(fields, row[1:], strict=True))})
        return sorted(steps, key=lambda step: step["at"])


_SEARCH_FIELDS = ("request_id", "decision", "confidence", "reasons", "sources", "regions", "context_tokens")
_CHECK_FIELDS = ("idempotency_key", "action", "request_ids", "allowed", "decision", "reasons")
_EVENT_FIELDS = ("event_id", "kind", "action", "idempotency_key", "latency_ms", "cost", "detail")
