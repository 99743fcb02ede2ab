"""Build the shipped evaluation set from the PostgreSQL 15 manual (Debian's postgresql-doc-15).

Nobody on the team wrote these pages. Documents are manual pages (title and visible text); queries
are terms of the manual's own index (bookindex.html), judged relevant to the pages the index links
them to. Output: examples/eval/pgdocs/{corpus.jsonl, queries.jsonl, qrels/test.tsv}.

Usage: apt-get install postgresql-doc-15 && python scripts/make_pgdocs_eval.py [--pages 150]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import lxml.html

HTML = Path("/usr/share/doc/postgresql-doc-15/html")
OUT = Path(__file__).resolve().parents[1] / "examples" / "eval" / "pgdocs"
MAX_PAGE_CHARS = 6000
MAX_QUERIES = 120


def page_text(path: Path) -> tuple[str, str]:
    """A manual page's title and visible text, without navigation."""
    tree = lxml.html.parse(str(path))
    for nav in tree.xpath("//div[contains(@class,'navheader') or contains(@class,'navfooter')]"):
        nav.getparent().remove(nav)
    title = " ".join((tree.findtext(".//title") or path.stem).split())
    body = tree.find(".//body")
    text = "\n".join(
        " ".join(line.split()) for line in (body.text_content() if body is not None else "").splitlines()
    )
    return title, "\n".join(line for line in text.splitlines() if line)


def index_terms() -> dict[str, set[str]]:
    """Index term -> pages it links to."""
    tree = lxml.html.parse(str(HTML / "bookindex.html"))
    terms: dict[str, set[str]] = {}
    for dt in tree.xpath("//dt"):
        links = dt.xpath("./a")
        if not links:
            continue
        term = (dt.text or "").strip().rstrip(",").strip()
        if len(term) < 4:
            continue
        terms.setdefault(term, set()).update(a.get("href", "").split("#")[0] for a in links)
    return terms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=150)
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    terms = index_terms()
    linked = sorted({p for pages in terms.values() for p in pages if (HTML / p).is_file()})
    texts = {}
    for page in linked:
        title, text = page_text(HTML / page)
        if 300 <= len(text) <= MAX_PAGE_CHARS:
            texts[page] = (title, text)
    rng = random.Random(args.seed)
    chosen = set(rng.sample(sorted(texts), min(args.pages, len(texts))))
    queries = sorted((t, sorted(p & chosen)) for t, p in terms.items() if p & chosen)
    rng.shuffle(queries)
    queries = sorted(queries[:MAX_QUERIES])
    (OUT / "qrels").mkdir(parents=True, exist_ok=True)
    with (OUT / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for page in sorted(chosen):
            title, text = texts[page]
            f.write(json.dumps({"_id": page.removesuffix(".html"), "title": title, "text": text}) + "\n")
    with (
        (OUT / "queries.jsonl").open("w", encoding="utf-8") as fq,
        (OUT / "qrels" / "test.tsv").open("w", encoding="utf-8") as fr,
    ):
        fr.write("query-id\tcorpus-id\tscore\n")
        for i, (term, pages) in enumerate(queries):
            qid = f"q{i:03d}"
            fq.write(json.dumps({"_id": qid, "text": term}) + "\n")
            for page in pages:
                fr.write(f"{qid}\t{page.removesuffix('.html')}\t1\n")
    print(f"{len(chosen)} documents, {len(queries)} queries -> {OUT}")


if __name__ == "__main__":
    main()
