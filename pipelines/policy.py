"""Governance tagging: the residency and access a document gets from the operator's policy.

A source's ``residency`` and ``access`` apply to all its documents; ``rules`` override them for
paths matching a glob, the most specific rule winning. The policy fails closed: a document left
without an access grant or without a residency is refused with a :class:`PolicyError`, never
stored in a default region or made readable by default.
"""

from __future__ import annotations

from groundwork.enums import ChangeKind, FailureReason, Stage
from groundwork.errors import DocumentError
from groundwork.globs import path_matches
from groundwork.ids import document_id
from groundwork.records import DocumentRef, DocumentTask, Governance
from groundwork.settings import PolicyRule, SourceConfig

_WILDCARDS = set("*?[]")


class PolicyError(DocumentError):
    """The policy gives a document no residency or no access grant."""

    def __init__(self, message: str, reason: FailureReason, residency: str = "") -> None:
        super().__init__(message, stage=Stage.POLICY, reason=reason)
        #: The document's region when the policy names one: its failure is recorded there.
        self.residency = residency


def specificity(pattern: str) -> int:
    """How specific a glob is: its number of literal characters."""
    return sum(1 for c in pattern if c not in _WILDCARDS)


def matching_rule(source: SourceConfig, rel: str) -> PolicyRule | None:
    """The most specific rule of ``source`` matching ``rel`` (ties: the later rule), or None."""
    best: tuple[int, int] | None = None
    chosen = None
    for i, rule in enumerate(source.rules):
        if path_matches(rel, rule.match):
            key = (specificity(rule.match), i)
            if best is None or key > best:
                best, chosen = key, rule
    return chosen


def governance_for(source: SourceConfig, ref: DocumentRef) -> Governance:
    """The tags of one document, or :class:`PolicyError` when the policy leaves one out."""
    rule = matching_rule(source, ref.source_id)
    residency = (rule.residency if rule else None) or source.residency
    access = rule.access if rule is not None and rule.access is not None else source.access
    where = f"source {source.name!r}" + (f", rule {rule.match!r}" if rule else "")
    if not residency:
        raise PolicyError(
            f"no residency for this document ({where}); it is not stored anywhere", FailureReason.NO_RESIDENCY
        )
    if not access:
        raise PolicyError(
            f"no access rule grants this document to anyone ({where}); add one, or access: [public]",
            FailureReason.NO_ACCESS_RULE,
            residency,
        )
    source_access = None if ref.permissions is None else tuple(sorted(set(ref.permissions)))
    if source_access == ():
        raise PolicyError(
            f"the source's own permissions let no one read this document ({where}); it is not stored",
            FailureReason.NO_ACCESS_RULE,
            residency,
        )
    decided = {
        "residency": f"rule {rule.match!r}" if rule and rule.residency else "source default",
        "access": f"rule {rule.match!r}" if rule and rule.access is not None else "source default",
    }
    return Governance(
        residency=residency,
        access=tuple(sorted(set(access))),
        source_access=source_access,
        decided_by=f"source {source.name!r}: residency by {decided['residency']}, access by {decided['access']}",
    )


def make_task(source: SourceConfig, ref: DocumentRef, change: ChangeKind) -> DocumentTask:
    """A task for one listed document, with its deterministic id and tags (raises PolicyError)."""
    return DocumentTask(
        ref=ref,
        document_id=document_id(ref.source, ref.source_id),
        governance=governance_for(source, ref),
        change=change,
    )


def refused_task(ref: DocumentRef, error: PolicyError) -> DocumentTask:
    """A task for a document the policy refused: no access tags, so it is reported but never stored.

    Its failure is recorded in its region when the policy names one, else only in the run's report.
    """
    return DocumentTask(
        ref, document_id(ref.source, ref.source_id), Governance(error.residency, ()), ChangeKind.REFUSED
    )
