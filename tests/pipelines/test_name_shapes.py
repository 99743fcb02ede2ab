"""What a PERSON span must look like to be redacted as a name: written like one, not like code."""

from __future__ import annotations

import re

import pytest

from pipelines.names import shaped_like_a_name
from pipelines.spans import Span


def _shaped(text: str, value: str) -> bool:
    match = re.search(re.escape(value), text)
    assert match is not None
    return shaped_like_a_name(text, Span(match.start(), match.end(), "PERSON", 0.9))


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Ask Priya Raman about the refund.", "Priya Raman"),
        ("Angus MacArthur and Ronald McDonald signed.", "Angus MacArthur"),
        ("Ronald McDonald signed.", "Ronald McDonald"),
        ("DeShawn Jones called.", "DeShawn Jones"),
        ("Write to Siobhán O'Neill today.", "Siobhán O'Neill"),
        # a text written without capitals names people in lower case
        ("hi, it's ashley combs again, can you call me back", "ashley combs"),
    ],
)
def test_written_names_keep_their_shape(text: str, value: str) -> None:
    assert _shaped(text, value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Call memset on the buffer before Use.", "memset"),
        ("Set pushRemote in the Config section.", "pushRemote"),
        ("The LikeThis style is used for Types.", "LikeThis"),
        ("See gitignore(5) for the Patterns.", "gitignore(5"),
        ("The role Mallory may not read; grant mallory nothing.", "mallory"),
        ("The user_name column holds the Login.", "user_name"),
    ],
)
def test_identifiers_and_lower_case_words_in_capitalised_text_are_not_names(text: str, value: str) -> None:
    assert not _shaped(text, value)
