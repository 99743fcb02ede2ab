"""Glob matching on POSIX relative paths, shared by connectors (include/exclude) and policy rules."""

from __future__ import annotations

import fnmatch


def path_matches(rel: str, pattern: str) -> bool:
    """Whether a POSIX relative path matches a glob; ``**/`` also matches at the top level."""
    return fnmatch.fnmatchcase(rel, pattern) or (
        pattern.startswith("**/") and fnmatch.fnmatchcase(rel, pattern[3:])
    )
