"""Fault injection for crash tests: kill this process at a named point, the Nth time it is reached.

``GROUNDWORK_FAULT=<point>:<n>`` (e.g. ``document_mid_write:3``) sends SIGKILL to the process the
``n``-th time :func:`fault_point` is called with ``<point>``: nothing is flushed, no handler runs, as
when the machine loses power or the kernel's OOM killer strikes. The crash tests use it to stop an
ingest at deterministic places, then check that the next run ends identical to a clean one. Unset
(the normal case), a fault point costs one dictionary lookup.

The points, in the order an ingest reaches them: ``plan_failures_recorded``, ``document_mid_write``
(inside a document's transaction, after its chunks are inserted and before the commit),
``document_written``, ``batch_committed``, ``change_applied`` (a re-tag, move or rename) and
``purge_deleted`` (one stale copy deleted).
"""

from __future__ import annotations

import os
import signal
from collections import Counter

FAULT_ENV = "GROUNDWORK_FAULT"

#: Every fault point the code calls: a setting naming another is refused.
FAULT_POINTS = frozenset(
    {
        "plan_failures_recorded",
        "document_mid_write",
        "document_written",
        "batch_committed",
        "change_applied",
        "purge_deleted",
    }
)

_hits: Counter[str] = Counter()


def _target() -> tuple[str, int] | None:
    value = os.environ.get(FAULT_ENV)
    if not value:
        return None
    point, _, count = value.partition(":")
    if point not in FAULT_POINTS or not count.isdigit() or int(count) < 1:
        raise ValueError(
            f"{FAULT_ENV} must be <point>:<n> with n >= 1 and point one of {sorted(FAULT_POINTS)}"
        )
    return point, int(count)


def fault_point(name: str) -> None:
    """Count one pass through ``name``; SIGKILL this process if ``$GROUNDWORK_FAULT`` names this pass."""
    target = _target()
    if target is None or target[0] != name:
        return
    _hits[name] += 1
    if _hits[name] == target[1]:
        os.kill(os.getpid(), signal.SIGKILL)
