"""Given names the language models do not know: a list of common given names that are not English
words, read as names wherever they are written as one.

The tagger and spaCy read a name from its context and from names they have seen; a rare or
Irish/European given name in a plain sentence ("Darragh had given ...", "Why is Caoimhin so ...")
goes unseen by both. ``given_names.txt`` lists the top thousand given names of each country of the
UK, Ireland, the US, Canada and the EU/EEA (``names-dataset``; built by
``scripts/pii/make_given_names.py``) less every English word, so "Will", "Mark" or "Grant" are not
in it, and less the stop words of the EU/EEA languages ("Isto", "Haben"). The batch rules of
:mod:`pipelines.names` still drop a listed word the text writes in lower case elsewhere ("Wiki"
beside "wiki").
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from pipelines.names import PERSON
from pipelines.spans import Span, SpanSource

LIST_FILE = Path(__file__).with_name("given_names.txt")
#: The score of a listed name, below the models' sure reads (no score threshold applies to the list:
#: ``redaction.given_names`` turns it off).
SCORE = 0.6
#: A word written as a name: a capital, then lower-case letters (not the end of a hyphenated or
#: apostrophised word, nor inside a placeholder, an e-mail address or a path).
_CAPITALISED = re.compile(r"(?<![\w<@./\\'’-])[^\W\d_a-z][^\W\d_A-Z]{2,}(?![\w>@-]|[.][^\W\d_])")


@functools.cache
def given_names() -> frozenset[str]:
    """The listed names (read once per process)."""
    lines = LIST_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line for line in lines if line and not line.startswith("#"))


def given_name_spans(text: str) -> list[Span]:
    """A PERSON span at every listed given name in ``text``."""
    names = given_names()
    return [
        Span(m.start(), m.end(), PERSON, SCORE, SpanSource.GIVEN_NAME)
        for m in _CAPITALISED.finditer(text)
        if m.group() in names
    ]
