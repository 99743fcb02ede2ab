#!/usr/bin/env python3
"""Generate gold-labelled synthetic PII sentences with presidio-evaluator.

presidio-evaluator 0.3.2 needs pandas >= 3, which conflicts with the project's
pins, so this script runs in its OWN virtualenv (outside the repo):

    python3 -m venv /work/pii-venv
    /work/pii-venv/bin/pip install -r scripts/pii/requirements-generator.txt
    /work/pii-venv/bin/python scripts/pii/make_generated.py

Output: examples/pii/generated/<name>.json, each a JSON list of
    {"full_text", "masked", "template_id", "metadata",
     "spans": [{"entity_type", "entity_value", "start_position", "end_position"}]}
which is presidio-evaluator's InputSample.to_dict() format (span dicts cut to
the four fields that Span.from_json needs; spans sorted by start).

Everything is deterministic for a given (Faker, presidio-evaluator) version:
each file has its own seed, and nothing is fetched from the network.

Two modes
---------
* ``stock``: PresidioSentenceFaker exactly as shipped (FakeNameGenerator.com
  person records with ~30 international name sets, the library's en_US-derived
  address and phone providers). Locale barely matters in this mode, because the
  records and the en_US providers override it.
* ``native``: the same templates and library providers, but person records
  (names, addresses, postcodes, phones, e-mails, dates of birth) are built with
  Faker's own provider for the locale, and the library's en_US address/phone
  providers are left out, so a en_GB file has UK postcodes and UK phone numbers.
  A few locale gaps in Faker are filled here (en_IE phones, UK driving licence,
  Irish PPS numbers, titles without nobiliary particles).

Template split
--------------
The library ships ~209 templates. To keep the held-out files honest, templates
are split once (deterministically, stratified by the set of placeholders they
use) into a dev pool (~2/3) and a held-out pool (~1/3). Dev files draw only from
the dev pool, held-out files only from the held-out pool, so tuning on dev
cannot learn a held-out template's wording.

Library quirks handled here (see examples/pii/README.md)
--------------------------------------------------------
* templates.txt holds literal backslash-n ("\\n") for line breaks: converted to
  real newlines before generation ("\\," likewise to ",").
* SentenceFaker._lower_pattern lower-cases the span values but not the text
  (it sets a non-existent ``fake`` attribute), so with lower_case_ratio > 0 some
  spans no longer match their slice. We apply the intended lower-casing to the
  text (or undo it where lower() would change the length).
* In stock mode the FakeNameGenerator records contain NaN (state, state_abbr)
  which came out as the literal text "nan"; NaN is replaced by "" so Faker
  supplies a value instead.
* Entity types are mapped to the project taxonomy (ENTITY_TYPE_MAPPING below).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import random
import re
import sys
import unicodedata
from collections import Counter, defaultdict
from importlib.metadata import version
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import itertools

from faker import Faker
from faker.providers import BaseProvider
from presidio_evaluator.data_generator import (
    PresidioSentenceFaker,
    presidio_templates_file_path,
    raw_data_dir,
)
from presidio_evaluator.data_generator.faker_extensions import (
    AddressProviderNew,
    AgeProvider,
    IpAddressProvider,
    NationalityProvider,
    OrganizationProvider,
    PhoneNumberProviderNew,
    ReligionProvider,
    UsDriverLicenseProvider,
)
from presidio_evaluator.data_generator.faker_extensions.datasets import (
    load_fake_person_df,
)

REPO = Path(__file__).resolve().parents[2]
OUT_DIR = REPO / "examples" / "pii" / "generated"

EXPECTED_VERSIONS = {"presidio-evaluator": "0.3.2", "Faker": "40.63.0"}

# (output name, locale, seed, mode, split). split decides the template pool.
SETS = [
    ("en_GB-seed101", "en_GB", 101, "native", "dev"),
    ("en_US-seed102", "en_US", 102, "native", "dev"),
    ("de_DE-seed103", "de_DE", 103, "native", "dev"),
    ("fr_FR-seed104", "fr_FR", 104, "native", "dev"),
    ("nl_NL-seed105", "nl_NL", 105, "native", "dev"),
    ("en_US-stock-seed42", "en_US", 42, "stock", "dev"),
    # Held out: never tune on these. en_IE is a locale absent from dev.
    ("en_GB-seed201", "en_GB", 201, "native", "heldout"),
    ("en_IE-seed202", "en_IE", 202, "native", "heldout"),
    ("en_US-stock-seed203", "en_US", 203, "stock", "heldout"),
    # Fresh held-out round: new seeds, three locales no earlier file uses, and en_GB again
    # with a new seed; the same held-out template pool. Never tune on these either.
    ("en_AU-seed301", "en_AU", 301, "native", "heldout"),
    ("en_CA-seed302", "en_CA", 302, "native", "heldout"),
    ("en_NZ-seed303", "en_NZ", 303, "native", "heldout"),
    ("en_GB-seed304", "en_GB", 304, "native", "heldout"),
    # Development files in the locales of that round (dev template pool, new seeds): where Australian,
    # Canadian and New Zealand formats are studied, so the held-out files stay unseen.
    ("en_AU-seed111", "en_AU", 111, "native", "dev"),
    ("en_CA-seed112", "en_CA", 112, "native", "dev"),
    ("en_NZ-seed113", "en_NZ", 113, "native", "dev"),
    # A development file for Ireland (dev template pool, new seed, 2026-11-30): Irish files were
    # only ever held out, and Irish names and Eircodes were the weakest held-out figures.
    ("en_IE-seed114", "en_IE", 114, "native", "dev"),
    # A second Canadian development file (2026-11-30): Canadian phone numbers were the weakest type on
    # three held-out rounds, and the first Canadian dev file missed none.
    ("en_CA-seed115", "en_CA", 115, "native", "dev"),
    # Third held-out round (2026-11-29): new seeds, made before that round's changes, the held-out
    # template pool. Never tune on these.
    ("en_AU-seed401", "en_AU", 401, "native", "heldout"),
    ("en_CA-seed402", "en_CA", 402, "native", "heldout"),
    ("en_NZ-seed403", "en_NZ", 403, "native", "heldout"),
    ("en_GB-seed404", "en_GB", 404, "native", "heldout"),
    ("en_IE-seed405", "en_IE", 405, "native", "heldout"),
    ("en_US-seed406", "en_US", 406, "native", "heldout"),
    # Fourth held-out round (2026-11-29, later): new seeds, made before that round's changes were
    # scored on them, the held-out template pool. Never tune on these.
    ("en_AU-seed501", "en_AU", 501, "native", "heldout"),
    ("en_CA-seed502", "en_CA", 502, "native", "heldout"),
    ("en_NZ-seed503", "en_NZ", 503, "native", "heldout"),
    ("en_GB-seed504", "en_GB", 504, "native", "heldout"),
    ("en_IE-seed505", "en_IE", 505, "native", "heldout"),
    ("en_US-seed506", "en_US", 506, "native", "heldout"),
    # Fifth held-out round (2026-11-29, evening): new seeds, made before that round's changes, the
    # held-out template pool. Never tune on these.
    ("en_AU-seed601", "en_AU", 601, "native", "heldout"),
    ("en_CA-seed602", "en_CA", 602, "native", "heldout"),
    ("en_NZ-seed603", "en_NZ", 603, "native", "heldout"),
    ("en_GB-seed604", "en_GB", 604, "native", "heldout"),
    ("en_IE-seed605", "en_IE", 605, "native", "heldout"),
    ("en_US-seed606", "en_US", 606, "native", "heldout"),
    # Sixth held-out round (2026-11-29, night): new seeds, made before that round's changes were
    # scored on them, the held-out template pool. Never tune on these.
    ("en_AU-seed701", "en_AU", 701, "native", "heldout"),
    ("en_CA-seed702", "en_CA", 702, "native", "heldout"),
    ("en_NZ-seed703", "en_NZ", 703, "native", "heldout"),
    ("en_GB-seed704", "en_GB", 704, "native", "heldout"),
    ("en_IE-seed705", "en_IE", 705, "native", "heldout"),
    ("en_US-seed706", "en_US", 706, "native", "heldout"),
    # Seventh held-out round (2026-11-30): new seeds, made before that round's change was scored on
    # them, the held-out template pool. Never tune on these.
    ("en_AU-seed801", "en_AU", 801, "native", "heldout"),
    ("en_CA-seed802", "en_CA", 802, "native", "heldout"),
    ("en_NZ-seed803", "en_NZ", 803, "native", "heldout"),
    ("en_GB-seed804", "en_GB", 804, "native", "heldout"),
    ("en_IE-seed805", "en_IE", 805, "native", "heldout"),
    ("en_US-seed806", "en_US", 806, "native", "heldout"),
    # Eighth held-out round (2026-11-30): new seeds, made before that round's change was scored on
    # them, the held-out template pool. Never tune on these.
    ("en_AU-seed901", "en_AU", 901, "native", "heldout"),
    ("en_CA-seed902", "en_CA", 902, "native", "heldout"),
    ("en_NZ-seed903", "en_NZ", 903, "native", "heldout"),
    ("en_GB-seed904", "en_GB", 904, "native", "heldout"),
    ("en_IE-seed905", "en_IE", 905, "native", "heldout"),
    ("en_US-seed906", "en_US", 906, "native", "heldout"),
    # Ninth held-out round (2026-11-30): new seeds, made before that round's change was scored on
    # them, the held-out template pool. Never tune on these.
    ("en_AU-seed1001", "en_AU", 1001, "native", "heldout"),
    ("en_CA-seed1002", "en_CA", 1002, "native", "heldout"),
    ("en_NZ-seed1003", "en_NZ", 1003, "native", "heldout"),
    ("en_GB-seed1004", "en_GB", 1004, "native", "heldout"),
    ("en_IE-seed1005", "en_IE", 1005, "native", "heldout"),
    ("en_US-seed1006", "en_US", 1006, "native", "heldout"),
    # Tenth held-out round (2026-11-30): new seeds, made after the given-name list was studied on
    # the development files and before it was scored on these, the held-out template pool. Never
    # tune on these.
    ("en_AU-seed1101", "en_AU", 1101, "native", "heldout"),
    ("en_CA-seed1102", "en_CA", 1102, "native", "heldout"),
    ("en_NZ-seed1103", "en_NZ", 1103, "native", "heldout"),
    ("en_GB-seed1104", "en_GB", 1104, "native", "heldout"),
    ("en_IE-seed1105", "en_IE", 1105, "native", "heldout"),
    ("en_US-seed1106", "en_US", 1106, "native", "heldout"),
    # Eleventh held-out round (2026-11-30): new seeds, made after that round's changes (the "cc" card
    # context, the tagger's decoding by target type) were studied on the development files and
    # before they were scored on these, the held-out template pool. Never tune on these.
    ("en_AU-seed1201", "en_AU", 1201, "native", "heldout"),
    ("en_CA-seed1202", "en_CA", 1202, "native", "heldout"),
    ("en_NZ-seed1203", "en_NZ", 1203, "native", "heldout"),
    ("en_GB-seed1204", "en_GB", 1204, "native", "heldout"),
    ("en_IE-seed1205", "en_IE", 1205, "native", "heldout"),
    ("en_US-seed1206", "en_US", 1206, "native", "heldout"),
    # Twelfth held-out round (2026-11-30): new seeds, made after that round's change (North American
    # numbers with their trunk prefix) was studied and before it was scored on these, the held-out
    # template pool. Never tune on these.
    ("en_AU-seed1301", "en_AU", 1301, "native", "heldout"),
    ("en_CA-seed1302", "en_CA", 1302, "native", "heldout"),
    ("en_NZ-seed1303", "en_NZ", 1303, "native", "heldout"),
    ("en_GB-seed1304", "en_GB", 1304, "native", "heldout"),
    ("en_IE-seed1305", "en_IE", 1305, "native", "heldout"),
    ("en_US-seed1306", "en_US", 1306, "native", "heldout"),
    # A second Australian development file (dev template pool, new seed, 2026-11-30): Australian
    # addresses and postcodes were the weakest held-out figures of three rounds running.
    ("en_AU-seed116", "en_AU", 116, "native", "dev"),
    # Thirteenth held-out round (2026-11-30): new seeds, made before that session's changes were
    # scored on them, after its phone-number change was studied on Faker's formats; the held-out
    # template pool. Never tune on these.
    ("en_AU-seed1401", "en_AU", 1401, "native", "heldout"),
    ("en_CA-seed1402", "en_CA", 1402, "native", "heldout"),
    ("en_NZ-seed1403", "en_NZ", 1403, "native", "heldout"),
    ("en_GB-seed1404", "en_GB", 1404, "native", "heldout"),
    ("en_IE-seed1405", "en_IE", 1405, "native", "heldout"),
    ("en_US-seed1406", "en_US", 1406, "native", "heldout"),
    # Fourteenth held-out round (2026-11-30): new seeds, made before the int8 tagger became the
    # default and before that default was scored on them, the held-out template pool. Never tune on these.
    ("en_AU-seed1501", "en_AU", 1501, "native", "heldout"),
    # (seed 1502 stops in the generator: an organisation of its records is NaN, which Faker's
    # domain_word cannot split; 1512 instead)
    ("en_CA-seed1512", "en_CA", 1512, "native", "heldout"),
    ("en_NZ-seed1503", "en_NZ", 1503, "native", "heldout"),
    ("en_GB-seed1504", "en_GB", 1504, "native", "heldout"),
    ("en_IE-seed1505", "en_IE", 1505, "native", "heldout"),
    ("en_US-seed1506", "en_US", 1506, "native", "heldout"),
    # Fifteenth held-out round (2026-11-30, later): new seeds, made while the tagger's int8 form (7-bit,
    # then uint8 weights) and the year-and-number reference rule were studied on the development
    # files, and scored only once that was decided; the held-out template pool. Never tune on these.
    ("en_AU-seed1601", "en_AU", 1601, "native", "heldout"),
    ("en_CA-seed1602", "en_CA", 1602, "native", "heldout"),
    ("en_NZ-seed1603", "en_NZ", 1603, "native", "heldout"),
    ("en_GB-seed1604", "en_GB", 1604, "native", "heldout"),
    ("en_IE-seed1605", "en_IE", 1605, "native", "heldout"),
    ("en_US-seed1606", "en_US", 1606, "native", "heldout"),
]
SAMPLES_PER_FILE = 200
N_RECORDS = 600  # fake people per native file
LOWER_CASE_RATIO = 0.05
TEMPLATE_SPLIT_SALT = "groundwork-pii-templates-v1"

# Generator placeholder -> project entity type. The first block are the types
# the redactor must catch; the second block are context types that are labelled
# (so a tagger hitting them is not a silent false positive) but are not PII
# targets of the project (cities, countries, organisations, titles, ...).
ENTITY_TYPE_MAPPING = {
    # --- targets
    "person": "PERSON",
    "name": "PERSON",
    "name_male": "PERSON",
    "name_female": "PERSON",
    "first_name": "PERSON",
    "first_name_male": "PERSON",
    "first_name_female": "PERSON",
    "first_name_nonbinary": "PERSON",
    "last_name": "PERSON",
    "last_name_male": "PERSON",
    "last_name_female": "PERSON",
    "address": "STREET_ADDRESS",
    "street_name": "STREET_ADDRESS",
    "building_number": "STREET_ADDRESS",
    "secondary_address": "STREET_ADDRESS",
    "postcode": "POSTCODE",  # presidio default: STREET_ADDRESS
    "zipcode": "POSTCODE",  # presidio default: ZIP_CODE
    "phone_number": "PHONE_NUMBER",
    "email": "EMAIL_ADDRESS",
    "credit_card_number": "CREDIT_CARD",
    "iban": "IBAN_CODE",
    "ssn": "NATIONAL_ID",  # presidio default: US_SSN
    "us_driver_license": "NATIONAL_ID",  # presidio default: US_DRIVER_LICENSE
    "ip_address": "IP_ADDRESS",
    "date_of_birth": "DATE_OF_BIRTH",  # presidio default: DATE_TIME
    # --- context (non-target) types, presidio defaults
    "city": "GPE",
    "country": "GPE",
    "state": "GPE",
    "state_abbr": "GPE",
    "organization": "ORGANIZATION",
    "prefix": "TITLE",
    "prefix_male": "TITLE",
    "prefix_female": "TITLE",
    "job": "TITLE",
    "nationality": "NRP",
    "nation_man": "NRP",
    "nation_woman": "NRP",
    "nation_plural": "NRP",
    "age": "AGE",
    "date_time": "DATE_TIME",
    "day_of_week": "DATE_TIME",
    "year": "DATE_TIME",
    "url": "DOMAIN_NAME",
}


# ---------------------------------------------------------------- templates
def load_templates() -> list[str]:
    raw = presidio_templates_file_path.read_text(encoding="utf-8").splitlines()
    out = []
    for line in raw:
        line = line.strip()
        if not line:
            continue
        # literal "\n" / "\," in templates.txt -> real newline / comma
        out.append(line.replace("\\n", "\n").replace("\\,", ","))
    return out


def split_templates(templates: list[str]) -> tuple[list[str], list[str]]:
    """Stratified deterministic split: within each group of templates that use
    the same set of placeholders, every third template (ordered by a salted
    hash) goes to the held-out pool; singletons stay in dev."""
    groups: dict[tuple, list[str]] = defaultdict(list)
    for t in templates:
        key = tuple(sorted(set(re.findall(r"{{\s*(\w+)\s*}}", t.lower()))))
        groups[key].append(t)
    dev, held = [], []
    for key in sorted(groups):
        members = sorted(
            groups[key],
            key=lambda t: hashlib.sha256((TEMPLATE_SPLIT_SALT + t).encode()).hexdigest(),
        )
        for i, t in enumerate(members):
            (held if i % 3 == 1 else dev).append(t)
    return dev, held


# ------------------------------------------------------- locale providers
TITLES = {
    "en_GB": (["Mr", "Dr", "Mr.", "Prof."], ["Mrs", "Ms", "Miss", "Dr", "Mrs."]),
    "en_IE": (["Mr", "Dr", "Mr."], ["Mrs", "Ms", "Dr", "Ms."]),
    "en_US": (["Mr.", "Dr.", "Prof."], ["Mrs.", "Ms.", "Dr.", "Miss"]),
    "de_DE": (["Herr", "Dr.", "Herr Dr."], ["Frau", "Dr.", "Frau Dr."]),
    "fr_FR": (["M.", "Monsieur", "Dr"], ["Mme", "Madame", "Dr", "Mlle"]),
    "nl_NL": (["dhr.", "De heer", "Dr."], ["mevr.", "Mevrouw", "Dr."]),
    "en_AU": (["Mr", "Dr", "Mr."], ["Mrs", "Ms", "Miss", "Dr"]),
    "en_CA": (["Mr.", "Dr.", "Mr"], ["Mrs.", "Ms.", "Dr.", "Mme"]),
    "en_NZ": (["Mr", "Dr", "Mr."], ["Mrs", "Ms", "Miss", "Dr"]),
}
SECONDARY = {
    "en_GB": ["Flat #", "Flat ##", "Apartment #", "Studio #", "Unit #"],
    "en_IE": ["Apartment #", "Apt ##", "Flat #", "Unit #"],
    "en_US": ["Apt. ###", "Suite ###", "Apt #?", "Unit ##"],
    "de_DE": ["Wohnung #", "#. OG", "Hinterhaus", "App. ##"],
    "fr_FR": ["Appartement ##", "Bâtiment ?", "Escalier #", "Apt ##"],
    "nl_NL": ["#-hoog", "bis", "huis", "unit ##"],
}
COUNTRY_NAME = {
    "en_GB": ["United Kingdom", "UK", "England", "Scotland", "Wales"],
    "en_IE": ["Ireland", "Republic of Ireland"],
    "en_US": ["USA", "United States"],
    "de_DE": ["Germany", "Deutschland"],
    "fr_FR": ["France"],
    "nl_NL": ["Netherlands", "Nederland"],
    "en_AU": ["Australia", "AUS"],
    "en_CA": ["Canada"],
    "en_NZ": ["New Zealand", "NZ", "Aotearoa New Zealand"],
}
DOB_FORMATS = {
    "en_GB": ["%d/%m/%Y", "%d %B %Y", "%-d %b %Y", "%d.%m.%Y"],
    "en_IE": ["%d/%m/%Y", "%d %B %Y", "%-d %b %Y"],
    "en_US": ["%m/%d/%Y", "%B %-d, %Y", "%Y-%m-%d", "%-m/%-d/%y"],
    "de_DE": ["%d.%m.%Y", "%-d. %B %Y", "%Y-%m-%d"],
    "fr_FR": ["%d/%m/%Y", "%-d %B %Y", "%d-%m-%Y"],
    "nl_NL": ["%d-%m-%Y", "%-d %B %Y", "%d/%m/%Y"],
    "en_AU": ["%d/%m/%Y", "%-d %B %Y", "%d-%m-%Y"],
    "en_CA": ["%Y-%m-%d", "%B %-d, %Y", "%d/%m/%Y"],
    "en_NZ": ["%d/%m/%Y", "%-d %B %Y", "%d.%m.%Y"],
}


def _ascii_slug(s: str) -> str:
    s = s.replace("ß", "ss").replace("ø", "o").replace("æ", "ae").replace("'", "")
    s = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", s.lower())


ADMIN_UNIT_ATTRS = ("county", "state", "province", "region", "administrative_unit")
GAP_METHODS = ("state", "state_abbr", "zipcode", "secondary_address")


class LocaleGapProvider(BaseProvider):
    """Fills methods the locale's Faker lacks and overrides a few that are
    wrong for our purpose (names with titles/suffixes inside PERSON spans,
    nobiliary particles returned as titles, US phones for en_IE, ...).
    Added last, so these take precedence over Faker's own providers."""

    locale = "en_US"

    def _titles(self):
        return TITLES.get(self.locale, TITLES["en_US"])

    # names without titles or post-nominals
    def name(self) -> str:
        return f"{self.generator.first_name()} {self.generator.last_name()}"

    def name_male(self) -> str:
        return f"{self.generator.first_name_male()} {self.generator.last_name()}"

    def name_female(self) -> str:
        return f"{self.generator.first_name_female()} {self.generator.last_name()}"

    def person(self) -> str:
        return self.name()

    def prefix_male(self) -> str:
        return self.random_element(self._titles()[0])

    def prefix_female(self) -> str:
        return self.random_element(self._titles()[1])

    def prefix(self) -> str:
        return self.random_element(self._titles()[0] + self._titles()[1])


# Only added for locales whose Faker lacks them (else they would shadow Faker's
# own method and recurse into themselves).
def _gap_secondary_address(self) -> str:
    fmt = self.random_element(SECONDARY.get(self.locale, SECONDARY["en_US"]))
    return self.bothify(fmt, letters="ABCDEF")


def _gap_state(self) -> str:
    return getattr(self.generator, self.admin_attr)()


def _gap_zipcode(self) -> str:
    return self.generator.postcode()


GAP_IMPL = {
    "state": _gap_state,
    "state_abbr": _gap_state,
    "zipcode": _gap_zipcode,
    "secondary_address": _gap_secondary_address,
}


def make_gap_provider(locale: str) -> type:
    base = Faker(locale)
    attrs = {"locale": locale}
    attrs["admin_attr"] = next((a for a in ADMIN_UNIT_ATTRS if hasattr(base, a)), "city")
    for m in GAP_METHODS:
        if not hasattr(base, m):
            attrs[m] = GAP_IMPL[m]
    return type("Gap_" + locale, (LocaleGapProvider,), attrs)


REF_START = datetime.datetime(1970, 1, 1)
REF_END = datetime.datetime(2025, 12, 31, 23, 59, 59)
DOB_START = datetime.date(1933, 1, 1)
DOB_END = datetime.date(2009, 12, 31)


def fixed_dob(fake) -> datetime.date:
    # Faker's date_of_birth() is relative to today: not reproducible
    return fake.date_between_dates(date_start=DOB_START, date_end=DOB_END)


class FixedClockProvider(BaseProvider):
    """Faker's date_time()/year()/day_of_week() draw between 1970 and *now*,
    so output changed from one run to the next. Fixed window instead."""

    DT_FORMATS = ("%Y-%m-%d %H:%M:%S", "%d %B %Y", "%B %-d, %Y %H:%M", "%Y-%m-%d", "%d/%m/%Y %H:%M")

    def date_time(self, *args, **kwargs) -> str:
        dt = self.generator.date_time_between_dates(REF_START, REF_END)
        return dt.strftime(self.random_element(self.DT_FORMATS))

    def year(self) -> str:
        return str(self.random_int(1970, 2025))

    def day_of_week(self) -> str:
        return self.generator.date_time_between_dates(REF_START, REF_END).strftime("%A")


class CountryFixProvider(BaseProvider):
    """NationalityProvider.country() in presidio-evaluator 0.3.2 lacks a
    ``return`` and yields None (the text "None"); this replaces it with a draw
    from the same nationalities.csv column."""

    _countries: list[str] | None = None

    def country(self) -> str:
        if CountryFixProvider._countries is None:
            import pandas as pd

            CountryFixProvider._countries = (
                pd.read_csv(raw_data_dir / "nationalities.csv")["country"].dropna().tolist()
            )
        return self.random_element(CountryFixProvider._countries)


class IePhoneProvider(BaseProvider):
    # Faker's en_IE has no phone formats of its own (falls back to US ones)
    formats = (
        "+353 8# ### ####",
        "08# ### ####",
        "08#-###-####",
        "08# #######",
        "+353 1 ### ####",
        "(01) ### ####",
        "01 ### ####",
        "+353 (0)1 ### ####",
        "+353 21 ### ####",
        "021 ### ####",
        "+3538#######",
    )

    def phone_number(self) -> str:
        return self.numerify(self.random_element(self.formats))


class UkDrivingLicenceProvider(BaseProvider):
    """DVLA-style driving licence number, e.g. MORGA753116SM9IJ (synthetic)."""

    def us_driver_license(self) -> str:  # the template's placeholder name
        g = self.generator
        female = self.random_int(0, 1) == 1
        surname = _ascii_slug(g.last_name()).upper()[:5].ljust(5, "9")
        dob = fixed_dob(g)
        month = dob.month + (50 if female else 0)
        first = _ascii_slug(g.first_name_female() if female else g.first_name_male()).upper()
        initials = (first[:1] + self.random_element(["", "A", "J", "M", "S"])).ljust(2, "9")
        check = self.lexify("??", letters="ABCDEFGHJKLMNPRSTUVWXYZ0123456789")
        return f"{surname}{str(dob.year)[2]}{month:02d}{dob.day:02d}{str(dob.year)[3]}{initials}9{check}"


class UkNinoProvider(BaseProvider):
    """UK National Insurance number with a valid prefix and suffix. Faker's
    en_GB ssn() always uses the reserved prefix "ZZ", which real NINOs never
    have (and which Presidio's UK_NINO pattern deliberately rejects)."""

    FIRST = "ABCEGHJKLMNOPRSTWXYZ"  # not D F I Q U V
    SECOND = "ABCEGHJKLMNPRSTWXYZ"  # not D F I Q U V, not O
    BAD = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}
    FORMATS = ("{p} {a} {b} {c} {s}", "{p}{a}{b}{c}{s}", "{p} {a}{b}{c} {s}", "{p}{a} {b} {c}{s}")

    def ssn(self) -> str:
        while True:
            p = self.random_element(self.FIRST) + self.random_element(self.SECOND)
            if p not in self.BAD:
                break
        a, b, c = (f"{self.random_int(0, 99):02d}" for _ in range(3))
        s = self.random_element("ABCD")
        return self.random_element(self.FORMATS).format(p=p, a=a, b=b, c=c, s=s)


class IePpsProvider(BaseProvider):
    """Irish PPS number with a valid check letter, e.g. 1234567T or 1234567TA."""

    def ssn(self) -> str:
        digits = [self.random_int(0, 9) for _ in range(7)]
        second = self.random_element(["", "", "A", "W"])
        total = sum(d * w for d, w in zip(digits, range(8, 1, -1), strict=False))
        if second and second != "W":
            total += 9 * (ord(second) - 64)
        rem = total % 23
        check = "W" if rem == 0 else chr(64 + rem)
        return "".join(map(str, digits)) + check + second


class AuTfnProvider(BaseProvider):
    """Australian tax file number with a valid check (weights 1,4,3,7,5,8,6,9,10; sum % 11 == 0).
    Faker's en_AU has no ssn() of its own (it falls back to US SSNs)."""

    WEIGHTS = (1, 4, 3, 7, 5, 8, 6, 9, 10)
    FORMATS = ("{a} {b} {c}", "{a}{b}{c}", "{a}-{b}-{c}")

    def ssn(self) -> str:
        while True:
            d = [self.random_int(0, 9) for _ in range(8)]
            partial = sum(x * w for x, w in zip(d, self.WEIGHTS, strict=False))
            last = next((x for x in range(10) if (partial + 10 * x) % 11 == 0), None)
            if last is not None and d[0] != 0:
                break
        t = "".join(map(str, [*d, last]))
        return self.random_element(self.FORMATS).format(a=t[:3], b=t[3:6], c=t[6:])


class NzIrdProvider(BaseProvider):
    """New Zealand IRD number (8 or 9 digits, mod-11 check digit, usually written 49-091-850).
    Faker's en_NZ has no ssn() of its own (it falls back to US SSNs)."""

    W1 = (3, 2, 7, 6, 5, 4, 3, 2)
    W2 = (7, 4, 3, 2, 5, 2, 7, 6)

    def _check(self, base: list[int]) -> int | None:
        for weights in (self.W1, self.W2):
            rem = sum(x * w for x, w in zip(base, weights, strict=True)) % 11
            check = 0 if rem == 0 else 11 - rem
            if check != 10:
                return check
        return None

    def ssn(self) -> str:
        while True:
            base = [0] + [self.random_int(0, 9) for _ in range(7)]
            if base[1] == 0:
                continue
            check = self._check(base)
            if check is not None:
                break
        t = "".join(map(str, [*base[1:], check]))
        if self.random_int(0, 1):
            return f"{t[:2]}-{t[2:5]}-{t[5:]}"
        return self.random_element([t, f"{t[:2]} {t[2:5]} {t[5:]}"])


LOCALE_EXTRA_PROVIDERS = {
    "en_AU": [AuTfnProvider],
    "en_NZ": [NzIrdProvider],
    "en_IE": [IePhoneProvider, IePpsProvider],
    "en_GB": [UkDrivingLicenceProvider, UkNinoProvider],
}


def build_native_records(locale: str, seed: int, n: int) -> list[dict]:
    """Coherent fake people from Faker's own locale providers."""
    fake = Faker(locale)
    for prov in LOCALE_EXTRA_PROVIDERS.get(locale, []):
        fake.add_provider(prov)
    fake.seed_instance(seed)
    rng = random.Random(seed)
    male_titles, female_titles = TITLES.get(locale, TITLES["en_US"])
    records = []
    for _ in range(n):
        gender = rng.choice(["male", "female"])
        first = fake.first_name_male() if gender == "male" else fake.first_name_female()
        last = fake.last_name()
        if rng.random() < 0.2:
            sep = rng.choice([" ", ". "])
            person = f"{first} {fake.random_uppercase_letter()}{sep}{last}"
        else:
            person = f"{first} {last}"
        prefix = rng.choice(male_titles if gender == "male" else female_titles)
        address = fake.address()
        if rng.random() < 0.5:
            address = address.replace("\n", ", ")
        f, l = _ascii_slug(first), _ascii_slug(last)
        local = rng.choice(
            [
                f"{f}.{l}",
                f"{f}{l}",
                f"{f[:1]}.{l}",
                f"{f[:1]}{l}",
                f"{l}.{f}",
                f"{f}_{l}{rng.randint(1, 99)}",
                f"{f}{rng.randint(60, 99)}",
            ]
        )
        domain = fake.free_email_domain() if rng.random() < 0.6 else fake.domain_name()
        dob = fixed_dob(fake)
        dob_s = dob.strftime(rng.choice(DOB_FORMATS.get(locale, DOB_FORMATS["en_US"])))
        rec = {
            "person": person,
            "name": person,
            "first_name": first,
            "last_name": last,
            "prefix": prefix,
            "street_name": fake.street_name(),
            "building_number": fake.building_number(),
            "city": fake.city(),
            "postcode": fake.postcode(),
            # half the time "" -> Faker's country() (in the locale's language)
            "country": rng.choice(COUNTRY_NAME.get(locale, [""])) if rng.random() < 0.5 else "",
            "address": address,
            "phone_number": fake.phone_number(),
            "email": f"{local}@{domain}",
            "date_of_birth": dob_s,
            "job": fake.job(),
            # gendered fields: empty for the other gender -> Faker fallback
            "first_name_female": first if gender == "female" else "",
            "first_name_male": first if gender == "male" else "",
            "last_name_female": last if gender == "female" else "",
            "last_name_male": last if gender == "male" else "",
            "name_female": f"{first} {last}" if gender == "female" else "",
            "name_male": f"{first} {last}" if gender == "male" else "",
            "prefix_female": prefix if gender == "female" else "",
            "prefix_male": prefix if gender == "male" else "",
        }
        rec["zipcode"] = rec["postcode"]
        records.append(rec)
    return records


# The library's default provider list minus HospitalProvider, which tries to
# download a hospital list from Wikipedia (and no template uses it).
STOCK_PROVIDERS = [
    IpAddressProvider,
    NationalityProvider,
    OrganizationProvider,
    UsDriverLicenseProvider,
    AgeProvider,
    AddressProviderNew,
    PhoneNumberProviderNew,
    ReligionProvider,
    CountryFixProvider,
    FixedClockProvider,
]


def make_faker(locale: str, seed: int, mode: str, templates: list[str]) -> PresidioSentenceFaker:
    if mode == "stock":
        df = load_fake_person_df()
        df = df.astype(object).where(df.notna(), "")  # NaN -> "" (Faker fallback)
        return PresidioSentenceFaker(
            locale=locale,
            lower_case_ratio=LOWER_CASE_RATIO,
            sentence_templates=templates,
            base_records=df,
            entity_providers=STOCK_PROVIDERS,
            entity_type_mapping=dict(ENTITY_TYPE_MAPPING),
            random_seed=seed,
        )
    gap = make_gap_provider(locale)
    providers = [
        IpAddressProvider,
        NationalityProvider,
        OrganizationProvider,
        UsDriverLicenseProvider,
        AgeProvider,
        ReligionProvider,
        CountryFixProvider,
        FixedClockProvider,
        gap,
    ]
    providers += LOCALE_EXTRA_PROVIDERS.get(locale, [])
    return PresidioSentenceFaker(
        locale=locale,
        lower_case_ratio=LOWER_CASE_RATIO,
        sentence_templates=templates,
        entity_providers=providers,
        base_records=build_native_records(locale, seed, N_RECORDS),
        entity_type_mapping=dict(ENTITY_TYPE_MAPPING),
        random_seed=seed,
    )


# ------------------------------------------------------------- post-process
def fix_and_check(sample, idx: int, name: str) -> tuple[dict, bool]:
    text = sample.full_text
    spans = sorted(sample.spans, key=lambda s: s.start_position)
    lowered = False
    if any(text[s.start_position : s.end_position] != s.entity_value for s in spans):
        # presidio-evaluator lower-cased the values but not the text
        if all(text[s.start_position : s.end_position].lower() == s.entity_value for s in spans):
            if len(text.lower()) == len(text):
                text = text.lower()
            else:  # undo instead
                for s in spans:
                    s.entity_value = text[s.start_position : s.end_position]
            lowered = True
    out_spans = []
    for s in spans:
        sl = text[s.start_position : s.end_position]
        assert sl == s.entity_value, (name, idx, sl, s.entity_value)
        assert s.entity_value.strip() and s.entity_value.lower() not in {"nan", "none"}, (
            name,
            idx,
            s.entity_type,
            s.entity_value,
        )
        assert s.entity_type.isupper(), (name, idx, s.entity_type)
        out_spans.append(
            {
                "entity_type": s.entity_type,
                "entity_value": s.entity_value,
                "start_position": s.start_position,
                "end_position": s.end_position,
            }
        )
    for a, b in itertools.pairwise(out_spans):
        assert a["end_position"] <= b["start_position"], (name, idx, a, b)
    return {
        "full_text": text,
        "masked": sample.masked,
        "spans": out_spans,
        "template_id": sample.template_id,
        "metadata": None,
    }, lowered


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    ap.add_argument("-n", type=int, default=SAMPLES_PER_FILE)
    ap.add_argument("--only", nargs="*", metavar="NAME", help="write only these sets (default: all)")
    args = ap.parse_args()
    unknown = set(args.only or ()) - {name for name, *_ in SETS}
    if unknown:
        ap.error(f"unknown set(s): {', '.join(sorted(unknown))}")

    for pkg, want in EXPECTED_VERSIONS.items():
        have = version(pkg)
        if have != want:
            print(
                f"WARNING: {pkg} {have} != {want}: output will differ from the committed files",
                file=sys.stderr,
            )

    templates = load_templates()
    dev_t, held_t = split_templates(templates)
    print(f"templates: {len(templates)} (dev pool {len(dev_t)}, held-out pool {len(held_t)})")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "templates-split.json").write_text(
        json.dumps(
            {"salt": TEMPLATE_SPLIT_SALT, "dev": dev_t, "heldout": held_t}, ensure_ascii=False, indent=1
        )
        + "\n",
        encoding="utf-8",
    )

    for name, locale, seed, mode, split in SETS:
        if args.only and name not in args.only:
            continue
        pool = dev_t if split == "dev" else held_t
        faker = make_faker(locale, seed, mode, pool)
        # Over-generate and keep the first n distinct texts: entity-free
        # templates and small pools otherwise repeat verbatim.
        samples = faker.generate_new_fake_sentences(num_samples=2 * args.n)
        rows, n_lowered, seen = [], 0, set()
        for j, s in enumerate(samples):
            if len(rows) == args.n:
                break
            row, lowered = fix_and_check(s, j, name)
            if row["full_text"] in seen:
                continue
            seen.add(row["full_text"])
            i = len(rows)
            # template_id: index into the library's templates.txt (not the pool)
            row["template_id"] = templates.index(pool[s.template_id])
            row["metadata"] = {
                "set": name,
                "locale": locale,
                "seed": seed,
                "mode": mode,
                "split": split,
                "index": i,
            }
            rows.append(row)
            n_lowered += lowered
        assert len(rows) == args.n, (name, len(rows))
        path = args.out / f"{name}.json"
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        counts = Counter(sp["entity_type"] for r in rows for sp in r["spans"])
        shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        print(
            f"{shown}: {len(rows)} samples, "
            f"{sum(1 for r in rows if not r['spans'])} without spans, "
            f"{n_lowered} lower-cased, {len({r['template_id'] for r in rows})} templates; "
            + ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
