#!/usr/bin/env python3
"""Print sizes and entity-type counts of every PII evaluation set under
examples/pii/ (stdlib only; any Python 3.9+). Used to fill in the README.

    python3 scripts/pii/stats.py            # Markdown tables
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from pii_types import TARGET_TYPES

REPO = Path(__file__).resolve().parents[2]
PII = REPO / "examples" / "pii"
TARGETS = TARGET_TYPES
CONTEXT = ["GPE", "ORGANIZATION", "TITLE", "NRP", "AGE", "DATE_TIME", "DOMAIN_NAME"]


def kib(n: int) -> str:
    return f"{n / 1024:.0f} KiB"


def generated() -> None:
    files = sorted((PII / "generated").glob("*seed*.json"))
    print("### Generated (span counts)\n")
    short = {
        "STREET_ADDRESS": "ADDR",
        "POSTCODE": "PCODE",
        "PHONE_NUMBER": "PHONE",
        "EMAIL_ADDRESS": "EMAIL",
        "CREDIT_CARD": "CARD",
        "IBAN_CODE": "IBAN",
        "BANK_ACCOUNT": "BANK",
        "NATIONAL_ID": "NAT_ID",
        "IP_ADDRESS": "IP",
        "DATE_OF_BIRTH": "DOB",
    }
    cols = [*TARGETS, "context"]
    print("| file | split | samples | size | " + " | ".join(short.get(c, c) for c in cols) + " |")
    print("|---|---|---|---|" + "---|" * len(cols))
    totals = {"dev": Counter(), "heldout": Counter()}
    for f in files:
        rows = json.loads(f.read_text(encoding="utf-8"))
        split = rows[0]["metadata"]["split"]
        c = Counter(s["entity_type"] for r in rows for s in r["spans"])
        ctx = sum(v for k, v in c.items() if k not in TARGETS)
        totals[split].update(c)
        totals[split]["_samples"] += len(rows)
        vals = [str(c.get(t, 0)) for t in TARGETS] + [str(ctx)]
        print(f"| {f.name} | {split} | {len(rows)} | {kib(f.stat().st_size)} | " + " | ".join(vals) + " |")
    for split, c in totals.items():
        ctx = sum(v for k, v in c.items() if k not in TARGETS and k != "_samples")
        vals = [str(c.get(t, 0)) for t in TARGETS] + [str(ctx)]
        print(f"| **all {split}** | {split} | {c['_samples']} | | " + " | ".join(vals) + " |")
    allc = totals["dev"] + totals["heldout"]
    print(
        "\nContext (non-target) types, all files: "
        + ", ".join(f"{k}={allc[k]}" for k in CONTEXT if allc[k])
        + "\n"
    )


def clean() -> None:
    print("### Clean (PII-free) prose\n")
    print("| source | documents | size | words |")
    print("|---|---|---|---|")
    tot_d = tot_b = tot_w = 0
    for d in sorted(p for p in (PII / "clean").iterdir() if p.is_dir()):
        docs = sorted(d.rglob("*.txt"))
        b = sum(p.stat().st_size for p in docs)
        w = sum(len(p.read_text(encoding="utf-8").split()) for p in docs)
        tot_d, tot_b, tot_w = tot_d + len(docs), tot_b + b, tot_w + w
        print(f"| {d.name} | {len(docs)} | {kib(b)} | {w:,} |")
    print(f"| **total** | {tot_d} | {kib(tot_b)} | {tot_w:,} |\n")


def written() -> None:
    d = PII / "written"
    gold = [
        json.loads(line)
        for line in (d / "gold.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    vals, occ = Counter(), Counter()
    size = 0
    for g in gold:
        text = (d / g["file"]).read_text(encoding="utf-8")
        size += len(text.encode())
        for e in g["entities"]:
            vals[e["type"]] += 1
            occ[e["type"]] += text.count(e["value"])
    print("### Written\n")
    print(
        f"{len(gold)} documents, {kib(size)}, "
        f"{sum(len(g.get('hard_negatives', [])) for g in gold)} hard negatives\n"
    )
    print("| type | distinct values | occurrences |")
    print("|---|---|---|")
    for t in TARGETS:
        print(f"| {t} | {vals[t]} | {occ[t]} |")
    print(f"| **total** | {sum(vals.values())} | {sum(occ.values())} |\n")


if __name__ == "__main__":
    generated()
    clean()
    written()
