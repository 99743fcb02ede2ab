#!/usr/bin/env python3
"""Check the hand-written PII set: examples/pii/written/gold.jsonl.

Each line: {"file": "<name>", "entities": [{"type": T, "value": V}, ...],
            "hard_negatives": [V, ...]}            # hard_negatives optional
Semantics: every occurrence (case-sensitive substring) of V in the file is
personal data of type T. hard_negatives are strings that look like PII but
are deliberately NOT personal data (role mailboxes, server IPs, product names
named after people, ...).

Errors (exit 1):
  * a file without a gold line, or a gold line without a file;
  * an unknown type; an empty or duplicated value; a value given two types;
  * a value that does not occur in its file;
  * a value that also occurs glued inside a longer word (e.g. "Lee" inside
    "Leeds"), which would break "every occurrence is PII";
  * a hard negative that overlaps a labelled occurrence.
Warnings (lint, exit 0): strings that look like PII (e-mail, phone-like digit
runs, UK/NL/CA postcodes, Mr/Ms/Dr + Name, card-like numbers, IPs) and are
covered by neither a gold value nor a hard negative. Review them by eye.

    python3 scripts/pii/check_gold.py            # check + lint + counts
    python3 scripts/pii/check_gold.py --json     # also print counts as JSON
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

from pii_types import TARGET_TYPES

REPO = Path(__file__).resolve().parents[2]
WRITTEN = REPO / "examples" / "pii" / "written"
TYPES = set(TARGET_TYPES)
DOC_SUFFIXES = {".txt", ".md", ".eml"}

LINT = {
    "email": re.compile(r"[\w.+%-]+@[\w-]+(?:\.[\w-]+)+"),
    "phone/number": re.compile(r"(?<![\w.-])\+?\(?\d[\d ()\-]{7,}\d(?![\w.-])"),
    "uk-postcode": re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}\b"),
    "nl-postcode": re.compile(r"\b\d{4} ?[A-Z]{2}\b"),
    "ca-postcode": re.compile(r"\b[A-Z]\d[A-Z] ?\d[A-Z]\d\b"),
    "titled-name": re.compile(r"\b(?:Mr|Mrs|Ms|Miss|Dr|Herr|Frau|Mevrouw)\.? ((?:[A-Z][\w'’-]+ ?)+)"),
    "ipv4": re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"),
    "ipv6": re.compile(r"\b[0-9a-f]{1,4}(?::[0-9a-f]{0,4}){3,7}\b"),  # >= 4 colons: not a time
}


def luhn_ok(s: str) -> bool:
    d = [int(c) for c in s if c.isdigit()][::-1]
    return sum(x if i % 2 == 0 else (2 * x - 9 if 2 * x > 9 else 2 * x) for i, x in enumerate(d)) % 10 == 0


def occurrences(text: str, value: str) -> list[int]:
    out, i = [], text.find(value)
    while i != -1:
        out.append(i)
        i = text.find(value, i + 1)
    return out


def glued(text: str, start: int, value: str) -> bool:
    """True if this occurrence continues a longer word on either side."""
    end = start + len(value)
    left = start > 0 and value[0].isalnum() and text[start - 1].isalnum()
    right = end < len(text) and value[-1].isalnum() and text[end].isalnum()
    return left or right


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", type=Path, default=WRITTEN)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-lint", action="store_true")
    args = ap.parse_args()

    errors: list[str] = []
    warnings: list[str] = []
    gold = {}
    for n, line in enumerate((args.dir / "gold.jsonl").read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        rec = json.loads(line)
        if rec["file"] in gold:
            errors.append(f"gold.jsonl:{n}: duplicate line for {rec['file']}")
        gold[rec["file"]] = rec

    docs = sorted(p.name for p in args.dir.iterdir() if p.suffix in DOC_SUFFIXES)
    for name in docs:
        if name not in gold:
            errors.append(f"{name}: no gold line")
    for name in gold:
        if name not in docs:
            errors.append(f"gold.jsonl: {name} has no file")

    ent_counts: Counter = Counter()  # distinct values per type
    occ_counts: Counter = Counter()  # occurrences per type
    per_file = {}
    luhn = Counter()
    for name in sorted(gold):
        if name not in docs:
            continue
        text = (args.dir / name).read_text(encoding="utf-8")
        rec = gold[name]
        covered = [False] * len(text)
        cov_type: list[str | None] = [None] * len(text)
        seen: dict[str, str] = {}
        n_occ = 0
        for ent in rec["entities"]:
            t, v = ent["type"], ent["value"]
            if t not in TYPES:
                errors.append(f"{name}: unknown type {t!r} for {v!r}")
            if not v or v != v.strip():
                errors.append(f"{name}: empty or padded value {v!r}")
            if v in seen:
                errors.append(
                    f"{name}: {v!r} listed twice" + (f" with types {seen[v]} and {t}" if seen[v] != t else "")
                )
            seen[v] = t
            occ = occurrences(text, v)
            if not occ:
                errors.append(f"{name}: {t} {v!r} not found in file")
            for s in occ:
                if glued(text, s, v):
                    ctx = text[max(0, s - 15) : s + len(v) + 15].replace("\n", " ")
                    errors.append(f"{name}: {v!r} occurs inside a longer word: ...{ctx}...")
                for i in range(s, s + len(v)):
                    covered[i] = True
                    if cov_type[i] not in (None, t):
                        warnings.append(f"{name}: {t} {v!r} overlaps a {cov_type[i]} value")
                        break
                    cov_type[i] = t
            ent_counts[t] += 1
            occ_counts[t] += len(occ)
            n_occ += len(occ)
            if t == "CREDIT_CARD":
                luhn["pass" if luhn_ok(v) else "fail"] += 1
        hn_cov = [False] * len(text)
        for hn in rec.get("hard_negatives", []):
            occ = occurrences(text, hn)
            if not occ:
                errors.append(f"{name}: hard negative {hn!r} not found in file")
            for s in occ:
                if any(covered[s : s + len(hn)]):
                    errors.append(f"{name}: hard negative {hn!r} overlaps a labelled value")
                for i in range(s, s + len(hn)):
                    hn_cov[i] = True
        per_file[name] = {
            "entities": len(rec["entities"]),
            "occurrences": n_occ,
            "hard_negatives": len(rec.get("hard_negatives", [])),
        }

        if not args.no_lint:
            for kind, rx in LINT.items():
                for m in rx.finditer(text):
                    g = 1 if kind == "titled-name" else 0
                    s, e = m.start(g), m.end(g)
                    if kind == "phone/number" and (
                        sum(c.isdigit() for c in m.group()) < 8 or re.match(r"\d{4}-\d\d-\d\d", m.group())
                    ):
                        continue
                    if not any(covered[s:e]) and not any(hn_cov[s:e]):
                        warnings.append(f"{name}: unlabelled {kind}: {m.group(g)!r}")

    for w in warnings:
        print("lint:", w)
    for e in errors:
        print("ERROR:", e)
    print(
        f"\n{len(per_file)} documents, "
        f"{sum(ent_counts.values())} labelled values, {sum(occ_counts.values())} occurrences, "
        f"{sum(v['hard_negatives'] for v in per_file.values())} hard negatives"
    )
    print(f"{'type':16} {'values':>7} {'occurrences':>12}")
    for t in sorted(TYPES):
        print(f"{t:16} {ent_counts[t]:7d} {occ_counts[t]:12d}")
    print(f"credit cards: {luhn['pass']} pass Luhn, {luhn['fail']} fail Luhn")
    if args.json:
        print(
            json.dumps(
                {
                    "values": dict(ent_counts),
                    "occurrences": dict(occ_counts),
                    "per_file": per_file,
                    "luhn": dict(luhn),
                },
                indent=1,
                sort_keys=True,
            )
        )
    if errors:
        print(f"\n{len(errors)} error(s)")
        return 1
    print("\nOK: every gold value occurs in its file")
    return 0


if __name__ == "__main__":
    sys.exit(main())
