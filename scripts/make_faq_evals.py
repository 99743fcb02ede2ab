"""Build four retrieval evaluation sets from the real FAQs shipped in Debian documentation packages.

Nobody on the team wrote these questions or answers. Each FAQ entry becomes a query (the question,
whitespace-normalised, as the FAQ writes it) judged relevant to exactly one document: its answer, as
plain text, without the question. The title of an answer document is neutral (the FAQ page name and
a number, e.g. ``perlfaq4-012``), so the question reaches retrieval only through the query. Reference
pages of the same documentation, which no query points at, are added as distractors.

Sets (Debian 12 "bookworm" packages; the versions used are printed on every run):

- ``perlfaq``: perl-doc (5.36.0-7+deb12u4), pod/perlfaq1..9.pod. Every ``=head2`` that is a question
  (contains "?") is a query; its body up to the next ``=head1``/``=head2`` is the answer. Distractors:
  40 pages of the Overview, Tutorials and Reference Manual lists of perl.pod (no perlfaq*, no perltoc).
- ``debian-faq``: debian-faq (11.1), /usr/share/doc/debian/FAQ/*.en.html. Every section whose heading
  contains "?" is a query (the section number is dropped); the answer is the section body, with the
  non-question subsections it contains and without the question subsections, which are entries of
  their own, plus the chapter footnotes it points at. Distractors: 40 top-level sections of the Debian Reference (debian-reference-en, 2.100),
  as the FAQ package has no other pages.
- ``gitfaq``: git-doc (1:2.39.5-0+deb12u3), gitfaq.html. Every entry of its question lists is a
  query (a few are phrased as statements); answer: the entry's description. Distractors: 40 git-*.html
  command manual pages.
- ``sqlite-faq``: sqlite3-doc (3.40.1-2+deb12u2), faq.html. Every numbered entry is a query (the
  "(N)" is dropped; a few are statements); answer: its block. Distractors: 40 other pages of the
  SQLite documentation (no index, site map or change-log pages).

Entries whose answer is under 150 characters are skipped (query and answer). Markup becomes plain
text: paragraphs separated by a blank line, code blocks kept verbatim. Every document is capped at
20,000 characters, cut at a paragraph. Distractors are chosen without randomness: the sorted
candidates, minus any that contain a query of the set word for word, spread evenly (every n-th).
Output is deterministic (ids are sorted and stable: the question's position in its FAQ; a query's
id is ``q-`` and its answer's id). With the versions above: perlfaq 290 queries, debian-faq 118,
gitfaq 20, sqlite-faq 23, each with 40 distractors, 2.3 MB in all.

Format (BEIR, as examples/eval/pgdocs): examples/eval/<set>/corpus.jsonl (``_id``, ``title``,
``text``), queries.jsonl (``_id``, ``text``), qrels/test.tsv (``query-id corpus-id score``, score 1).
Nothing is held out here: ``groundwork eval`` removes the answers of every fourth query itself.

Usage::

    apt-get install -y perl-doc debian-faq debian-reference-en git-doc sqlite3-doc
    .venv/bin/python scripts/make_faq_evals.py [--only perlfaq] [--out examples/eval] [--report r.json]

``--report`` writes what was left out and why (short answers, headings that are not questions,
distractors that quote a query), truncated documents and answers that quote another question.
"""

from __future__ import annotations

import argparse
import copy
import html.entities
import json
import re
import subprocess
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lxml.html

ROOT = Path(__file__).resolve().parents[1]
PERL_POD = Path("/usr/share/perl")  # /usr/share/perl/<version>/pod
DEBIAN_FAQ = Path("/usr/share/doc/debian/FAQ")
DEBIAN_REFERENCE = Path("/usr/share/debian-reference")
GIT_DOC = Path("/usr/share/doc/git-doc")
SQLITE_DOC = Path("/usr/share/doc/sqlite3")

MAX_DOC_CHARS = 20_000
MIN_ANSWER_CHARS = 150
DISTRACTORS = 40
PACKAGES = ("perl-doc", "debian-faq", "debian-reference-en", "git-doc", "sqlite3-doc")


@dataclass(frozen=True, slots=True)
class Doc:
    doc_id: str
    title: str
    text: str
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class Entry:
    """One FAQ entry: the question and its answer document."""

    question: str
    answer: Doc


@dataclass(slots=True)
class FaqSet:
    name: str
    source: str
    entries: list[Entry] = field(default_factory=list)  # every entry, before the length filter
    not_questions: list[str] = field(default_factory=list)  # headings left out: not a question
    distractors: list[Doc] = field(default_factory=list)
    candidates: int = 0  # distractor candidates before the word-for-word filter
    leaking: list[str] = field(default_factory=list)  # candidates left out: they contain a query


def norm(text: str) -> str:
    return " ".join(text.split())


def verbatim(text: str) -> str:
    """A code block: tabs expanded, common indentation removed, no trailing or edge blank lines."""
    lines = [line.rstrip() for line in textwrap.dedent(text.expandtabs(8)).split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def capped(blocks: Iterable[str], limit: int = MAX_DOC_CHARS) -> tuple[str, bool]:
    """Blocks joined by blank lines, cut at the last whole block that fits in ``limit`` characters."""
    out: list[str] = []
    size = 0
    for block in blocks:
        add = len(block) + (2 if out else 0)
        if size + add > limit:
            if not out:  # a single block over the limit: cut it at a line, else at a word
                head = block[:limit]
                cut = head.rfind("\n") if "\n" in head else head.rfind(" ")
                out.append(head[: cut if cut > limit // 2 else limit].rstrip())
            return "\n\n".join(out), True
        out.append(block)
        size += add
    return "\n\n".join(out), False


def spread(items: list[str], k: int) -> list[str]:
    """``k`` items evenly spread over a sorted list (every n-th), all of them if there are fewer."""
    if len(items) <= k:
        return list(items)
    return [items[i * len(items) // k] for i in range(k)]


# ---------------------------------------------------------------------------------------------- pod

POD_CODE = re.compile(r"([A-Z])(<+)")
URL = re.compile(r"[a-z]+:[^:\s]\S*$")
POD_ESCAPES = {"lt": "<", "gt": ">", "verbar": "|", "sol": "/"}


def pod_inline(text: str) -> str:
    """Text of a pod paragraph with its formatting codes (B<> I<> C<> L<> F<> S<> E<> X<> Z<>) undone."""
    out, _ = _pod_codes(text, 0, 0)
    return out


def _pod_codes(s: str, i: int, depth: int) -> tuple[str, int]:
    """Parse from ``i`` until the closing of a code opened with ``depth`` brackets (0: the end)."""
    out: list[str] = []
    close = re.compile(r"\s+" + ">" * depth) if depth > 1 else None
    while i < len(s):
        if depth == 1 and s[i] == ">":
            return "".join(out), i + 1
        if close is not None and (m := close.match(s, i)):
            return "".join(out), m.end()
        m = POD_CODE.match(s, i)
        if m:
            letter, brackets = m.group(1), len(m.group(2))
            start = m.end()
            if brackets > 1:
                space = re.compile(r"\s+").match(s, start)
                if space is None:  # "C<<x" is C< followed by "<x"
                    brackets, start = 1, m.start(2) + 1
                else:
                    start = space.end()
            inner, i = _pod_codes(s, start, brackets)
            out.append(_pod_render(letter, inner))
            continue
        out.append(s[i])
        i += 1
    return "".join(out), i


def _pod_render(letter: str, inner: str) -> str:
    if letter in "XZ":
        return ""
    if letter == "E":
        name = inner.strip()
        if name in POD_ESCAPES:
            return POD_ESCAPES[name]
        if re.fullmatch(r"0x[0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*", name):
            return chr(int(name, 0) if not re.fullmatch(r"0[0-7]+", name) else int(name, 8))
        return chr(html.entities.name2codepoint[name]) if name in html.entities.name2codepoint else name
    if letter == "L":
        text, bar, target = inner.partition("|")
        if bar:
            return f"{text} <{target}>" if URL.match(target) else text
        if URL.match(inner):
            return inner
        if "/" in inner:
            page, section = inner.split("/", 1)
            section = section.strip('"')
            return f'"{section}" in {page}' if page else f'"{section}"'
        return inner
    return inner  # B I C F S


@dataclass(frozen=True, slots=True)
class PodBlock:
    kind: str  # "head" or "text"
    level: int  # 1..4 for a head, 0 for text
    text: str


def pod_blocks(path: Path) -> list[PodBlock]:
    """A pod file as headings and plain-text blocks (paragraphs, list items, code blocks)."""
    raw = path.read_text(encoding="utf-8", errors="replace")
    blocks: list[PodBlock] = []
    in_pod, skipping, bullet = False, "", ""
    for para in re.split(r"\n(?:[ \t]*\n)+", raw):
        if not para.strip():
            continue
        command = re.match(r"=([a-zA-Z]\w*)\s*", para)
        if command:
            name, rest = command.group(1), para[command.end() :]
            in_pod = name != "cut"
            if skipping:
                if name == "end" and rest.split()[:1] == [skipping]:
                    skipping = ""
                continue
            if name.startswith("head") and name[4:].isdigit():
                blocks.append(PodBlock("head", int(name[4:]), norm(pod_inline(rest))))
            elif name == "item":
                item = norm(pod_inline(rest))
                marker = re.match(r"(\*|\d+\.?)(\s+|$)", item)
                if marker:
                    bullet, item = "- ", item[marker.end() :]
                if item:
                    blocks.append(PodBlock("text", 0, bullet + item))
                    bullet = ""
            elif name == "begin":
                skipping = rest.split()[0] if rest.split() else "?"
            # =pod =over =back =encoding =for =cut: nothing to show
            continue
        if not in_pod or skipping:
            continue
        text = verbatim(para) if para[0] in " \t" else norm(pod_inline(para))
        if text:
            blocks.append(PodBlock("text", 0, bullet + text))
            bullet = ""
    return blocks


def pod_dir() -> Path:
    found = sorted(PERL_POD.glob("*/pod/perlfaq4.pod"))
    if not found:
        raise SystemExit("perlfaq4.pod not found: apt-get install perl-doc")
    return found[-1].parent


def perlfaq() -> FaqSet:
    pods = pod_dir()
    faq = FaqSet("perlfaq", f"perl-doc {pods}/perlfaq1..9.pod")
    for n in range(1, 10):
        page = f"perlfaq{n}"
        heads: list[tuple[str, list[str]]] = []  # every =head2 of the page with its body
        for block in pod_blocks(pods / f"{page}.pod"):
            if block.kind == "head" and block.level <= 2:
                heads.append((block.text if block.level == 2 else "", []))
            elif heads:
                heads[-1][1].append(block.text)
        position = 0
        for heading, body in heads:
            if not heading:  # a =head1
                continue
            position += 1
            if "?" not in heading:
                faq.not_questions.append(f"{page}: {heading}")
                continue
            doc_id = f"{page}-{position:03d}"
            text, cut = capped(body)
            faq.entries.append(Entry(heading, Doc(doc_id, doc_id, text, cut)))
    # Distractors: the pages perl.pod lists as overview, tutorials and reference manual.
    listing = pod_blocks(pods / "perl.pod")
    names: set[str] = set()
    section = ""
    for block in listing:
        if block.kind == "head":
            section = block.text
        elif section in {"Overview", "Tutorials", "Reference Manual"}:
            names.update(m.group(1) for m in re.finditer(r"^\s*(perl\w+)\s", block.text, re.M))
    names = {n for n in names if not n.startswith("perlfaq") and n != "perltoc"}

    def render(name: str) -> Doc:
        text, cut = capped(b.text for b in pod_blocks(pods / f"{name}.pod"))
        return Doc(f"perldoc-{name}", name, text, cut)

    pick_distractors(faq, sorted(n for n in names if (pods / f"{n}.pod").is_file()), render)
    return faq


# --------------------------------------------------------------------------------------------- html

BLOCK_TAGS = {
    "address", "article", "blockquote", "body", "caption", "center", "dd", "div", "dl", "dt",
    "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr",
    "li", "main", "nav", "ol", "p", "section", "table", "tbody", "thead", "tfoot", "tr", "ul",
}  # fmt: skip
DROP_TAGS = {"script", "style", "svg", "button", "head", "noscript", "input", "select", "map"}


def html_blocks(root: lxml.html.HtmlElement) -> list[str]:
    """Visible text of an element as blocks: paragraphs normalised, <pre> kept verbatim, "- " items."""
    blocks: list[str] = []
    buf: list[str] = []
    prefix = [""]

    def flush() -> None:
        text = norm("".join(buf))
        buf.clear()
        if text:
            blocks.append(prefix[0] + text)
            prefix[0] = ""

    def walk(el: lxml.html.HtmlElement, top: bool = False) -> None:
        tag = el.tag if isinstance(el.tag, str) else None  # comments and processing instructions
        if tag is None or tag in DROP_TAGS:
            pass
        elif tag == "pre":
            flush()
            code = verbatim(el.text_content())
            if code:
                blocks.append(prefix[0] + code)
                prefix[0] = ""
        elif tag in BLOCK_TAGS:
            flush()
            if tag == "li":
                prefix[0] = "- "
            buf.append(el.text or "")
            for child in el:
                walk(child)
            flush()
        else:
            buf.append(el.text or "")
            for child in el:
                walk(child)
            if tag in {"td", "th", "br"}:
                buf.append(" ")
        if not top and el.tail:
            buf.append(el.tail)

    walk(root, top=True)
    flush()
    return blocks


def parse_html(path: Path) -> lxml.html.HtmlElement:
    return lxml.html.fromstring(path.read_bytes())


def drop(root: lxml.html.HtmlElement, xpath: str) -> None:
    for el in root.xpath(xpath):
        el.drop_tree()


SECTION_NUMBER = re.compile(r"^(\d+(?:\.\d+)*)\.?\s+(.*)$")
TITLE_XPATH = "./div[@class='titlepage']//*[self::h1 or self::h2 or self::h3 or self::h4 or self::h5]"


def with_footnotes(root: lxml.html.HtmlElement, body: lxml.html.HtmlElement) -> None:
    """Append to ``body`` (a copy) the DocBook footnotes its "[n]" markers point at, in order."""
    for ref in body.xpath(".//a[@class='footnote']/@href"):
        for note in root.xpath("//div[@id=$id]", id=ref.removeprefix("#")):
            body.append(copy.deepcopy(note))


def _section_heading(section: lxml.html.HtmlElement) -> tuple[str, str]:
    """(number, heading text) of a DocBook section."""
    heads = section.xpath(TITLE_XPATH)
    text = norm(heads[0].text_content()) if heads else ""
    m = SECTION_NUMBER.match(text)
    return (m.group(1), m.group(2)) if m else ("", text)


def debian_faq() -> FaqSet:
    pages = sorted(p for p in DEBIAN_FAQ.glob("*.en.html") if p.name != "index.en.html")
    if not pages:
        raise SystemExit(f"{DEBIAN_FAQ} not found: apt-get install debian-faq")
    faq = FaqSet("debian-faq", f"debian-faq {DEBIAN_FAQ}/*.en.html")
    for page in pages:
        stem = page.name.removesuffix(".en.html")
        root = parse_html(page)
        for section in root.xpath("//div[@class='section']"):
            number, heading = _section_heading(section)
            inside_question = any("?" in _section_heading(s)[1] for s in section.iterancestors("div"))
            if "?" not in heading:
                if not inside_question:
                    faq.not_questions.append(f"{stem}: {number} {heading}")
                continue
            body = copy.deepcopy(section)
            drop(body, "./div[@class='titlepage']")
            drop(body, ".//div[@class='toc']")
            for sub in body.xpath(".//div[@class='section']"):
                if "?" in _section_heading(sub)[1] and sub.getparent() is not None:
                    sub.drop_tree()
            with_footnotes(root, body)
            doc_id = f"debian-faq-{stem}-" + "-".join(f"{int(p):02d}" for p in number.split("."))
            text, cut = capped(html_blocks(body))
            faq.entries.append(Entry(heading, Doc(doc_id, doc_id, text, cut)))
    # Distractors: top-level sections of the Debian Reference chapters.
    sections: dict[str, lxml.html.HtmlElement] = {}
    for page in sorted(DEBIAN_REFERENCE.glob("ch*.en.html")):
        chapter = page.name.split(".")[0]
        root = parse_html(page)
        for section in root.xpath("//div[@class='section'][not(ancestor::div[@class='section'])]"):
            number, _ = _section_heading(section)
            key = f"debian-reference-{chapter}-" + "-".join(f"{int(p):02d}" for p in number.split("."))
            sections[key] = section

    def render(key: str) -> Doc:
        body = copy.deepcopy(sections[key])
        drop(body, ".//div[@class='toc']")
        text, cut = capped(html_blocks(body))
        return Doc(key, key, text, cut)

    pick_distractors(faq, sorted(sections), render)
    return faq


def gitfaq() -> FaqSet:
    path = GIT_DOC / "gitfaq.html"
    if not path.is_file():
        raise SystemExit(f"{path} not found: apt-get install git-doc")
    faq = FaqSet("gitfaq", f"git-doc {path}")
    root = parse_html(path)
    terms = root.xpath("//div[@id='content']//dt[@class='hdlist1'][not(ancestor::dd)]")
    for position, dt in enumerate(terms, 1):
        dd = dt.getnext()
        if dd is None or dd.tag != "dd":
            continue
        doc_id = f"gitfaq-{position:02d}"
        text, cut = capped(html_blocks(dd))
        faq.entries.append(Entry(norm(dt.text_content()), Doc(doc_id, doc_id, text, cut)))

    def render(name: str) -> Doc:
        page = parse_html(GIT_DOC / f"{name}.html")
        drop(page, "//div[@id='footer'] | //div[@id='toc']")
        blocks = [
            b for part in page.xpath("//div[@id='header'] | //div[@id='content']") for b in html_blocks(part)
        ]
        text, cut = capped(blocks)
        return Doc(f"git-doc-{name}", name, text, cut)

    names = sorted(p.name.removesuffix(".html") for p in GIT_DOC.glob("git-*.html"))
    pick_distractors(faq, names, render)
    return faq


SQLITE_NOT_PAGES = {
    "changes", "chronology", "doclist", "docs", "faq", "index", "keyword_index", "news", "oldnews",
    "sitemap", "toc",
}  # fmt: skip


def sqlite_faq() -> FaqSet:
    path = SQLITE_DOC / "faq.html"
    if not path.is_file():
        raise SystemExit(f"{path} not found: apt-get install sqlite3-doc")
    faq = FaqSet("sqlite-faq", f"sqlite3-doc {path}")
    root = parse_html(path)
    for p in root.xpath("//p[b]"):
        m = re.match(r"\((\d+)\)\s*(.*)", norm(p.xpath("./b")[0].text_content()), re.S)
        answer = p.getnext()
        if not m or answer is None or answer.tag != "blockquote":
            continue
        doc_id = f"sqlite-faq-{int(m.group(1)):02d}"
        text, cut = capped(html_blocks(answer))
        faq.entries.append(Entry(m.group(2), Doc(doc_id, doc_id, text, cut)))

    def render(name: str) -> Doc:
        page = parse_html(SQLITE_DOC / f"{name}.html")
        drop(page, "//div[contains(@class,'nosearch')] | //div[contains(@class,'fancy_toc')]")
        # syntax diagrams (their labels and hide/show buttons) and the "last modified" footer
        drop(page, "//div[contains(@class,'imgcontainer')] | //p[button] | //p[.//a[@id='mtimelink']]")
        body = page.find("body")
        text, cut = capped(html_blocks(body if body is not None else page))
        return Doc(f"sqlite-doc-{name}", name, text, cut)

    names = sorted(
        p.stem
        for p in SQLITE_DOC.glob("*.html")
        if p.stem not in SQLITE_NOT_PAGES and "crossref" not in p.stem
    )
    pick_distractors(faq, names, render)
    return faq


# -------------------------------------------------------------------------------------------- common


def kept(faq: FaqSet) -> list[Entry]:
    return [e for e in faq.entries if len(e.answer.text) >= MIN_ANSWER_CHARS]


def pick_distractors(faq: FaqSet, names: list[str], render: Callable[[str], Doc]) -> None:
    """Render the candidates, leave out those that contain a query word for word, keep 40 spread evenly."""
    queries = [norm(e.question).casefold() for e in kept(faq)]
    docs: dict[str, Doc] = {}
    for name in names:
        doc = render(name)
        if len(doc.text) < 500:
            continue
        flat = norm(doc.text).casefold()
        if any(q in flat for q in queries):
            faq.leaking.append(name)
            continue
        docs[name] = doc
    faq.candidates = len(docs) + len(faq.leaking)
    faq.distractors = [docs[n] for n in spread(sorted(docs), DISTRACTORS)]


def write(faq: FaqSet, out: Path) -> dict[str, Any]:
    entries = sorted(kept(faq), key=lambda e: e.answer.doc_id)
    docs = sorted([e.answer for e in entries] + faq.distractors, key=lambda d: d.doc_id)
    ids = [d.doc_id for d in docs]
    if len(set(ids)) != len(ids):
        raise SystemExit(f"{faq.name}: duplicate document ids")
    folder = out / faq.name
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with (folder / "corpus.jsonl").open("w", encoding="utf-8", newline="\n") as f:
        for d in docs:
            f.write(json.dumps({"_id": d.doc_id, "title": d.title, "text": d.text}) + "\n")
    with (
        (folder / "queries.jsonl").open("w", encoding="utf-8", newline="\n") as fq,
        (folder / "qrels" / "test.tsv").open("w", encoding="utf-8", newline="\n") as fr,
    ):
        fr.write("query-id\tcorpus-id\tscore\n")
        for e in entries:
            fq.write(json.dumps({"_id": f"q-{e.answer.doc_id}", "text": e.question}) + "\n")
            fr.write(f"q-{e.answer.doc_id}\t{e.answer.doc_id}\t1\n")
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    flat = {e.answer.doc_id: norm(e.answer.text).casefold() for e in entries}
    own = [e.answer.doc_id for e in entries if norm(e.question).casefold() in flat[e.answer.doc_id]]
    cross = sorted(
        (e.answer.doc_id, o.answer.doc_id)
        for e in entries
        for o in entries
        if o is not e and norm(o.question).casefold() in flat[e.answer.doc_id]
    )
    statements = [e.question for e in entries if "?" not in e.question]
    skipped = [e for e in faq.entries if len(e.answer.text) < MIN_ANSWER_CHARS]
    return {
        "set": faq.name,
        "source": faq.source,
        "questions": len(entries),
        "skipped_short": [f"{e.answer.doc_id}: {e.question} ({len(e.answer.text)} chars)" for e in skipped],
        "not_questions": faq.not_questions,
        "answers": len(entries),
        "distractors": len(faq.distractors),
        "distractor_candidates": faq.candidates,
        "distractors_left_out_containing_a_query": faq.leaking,
        "documents": len(docs),
        "truncated": [d.doc_id for d in docs if d.truncated],
        "bytes": size,
        "answer_chars_median": sorted(len(e.answer.text) for e in entries)[len(entries) // 2]
        if entries
        else 0,
        "question_in_own_answer": own,
        "answer_quotes_other_question": [f"{a} quotes the question of {b}" for a, b in cross],
        "statements_kept": statements,
    }


def versions() -> dict[str, str]:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package}\t${Version}\n", *PACKAGES],
        capture_output=True,
        text=True,
        check=False,
    )
    found = dict(line.split("\t", 1) for line in result.stdout.splitlines() if "\t" in line)
    return {p: found.get(p, "not installed") for p in PACKAGES}


BUILDERS: dict[str, Callable[[], FaqSet]] = {
    "perlfaq": perlfaq,
    "debian-faq": debian_faq,
    "gitfaq": gitfaq,
    "sqlite-faq": sqlite_faq,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "examples" / "eval")
    parser.add_argument("--only", choices=sorted(BUILDERS), action="append")
    parser.add_argument("--report", type=Path, help="also write the per-set details as JSON here")
    args = parser.parse_args()
    for package, version in versions().items():
        print(f"{package} {version}")
    reports = []
    for name in args.only or list(BUILDERS):
        report = write(BUILDERS[name](), args.out)
        reports.append(report)
        print(
            f"{name}: {report['questions']} questions kept, {len(report['skipped_short'])} skipped "
            f"(answer under {MIN_ANSWER_CHARS} chars), {len(report['not_questions'])} headings not "
            f"questions; {report['documents']} documents ({report['answers']} answers + "
            f"{report['distractors']} distractors); {report['bytes'] / 1e6:.2f} MB -> {args.out / name}"
        )
    total = sum(r["bytes"] for r in reports)
    print(f"total {total / 1e6:.2f} MB")
    if args.report:
        args.report.write_text(json.dumps(reports, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
