#!/usr/bin/env python3
"""Extract PII-free technical prose from Debian documentation packages, for
measuring the redactor's false positives.

Sources (Debian bookworm packages, none written by us):
  git-doc              /usr/share/doc/git-doc/*.html          (rendered man pages, guides)
  debian-reference-en  /usr/share/debian-reference/ch*.en.html (split into sections)
  postgresql-doc-15    /usr/share/doc/postgresql-doc-15/html/*.html
  bash-doc             /usr/share/doc/bash/bashref.html        (the Bash reference manual, split into
                       sections; a fresh held-out set: all 20 pages go to heldout/)
  zsh-doc              /usr/share/doc/zsh-common/html/*.html   (the Z Shell manual, one page per node;
                       fresh held-out set of 2026-11-29: 20 pages, all in heldout/)
  golang-1.19-doc      /usr/share/doc/golang-1.19-doc/html/    (the Go specification, memory model and
                       assembler guide, split at their h2 headings; fresh held-out set of 2026-11-29)
  apache2-doc          /usr/share/doc/apache2-doc/manual/en/   (the Apache HTTP Server manual: guides,
                       how-tos and module pages, each page's content without its navigation; fresh
                       held-out set of the fourth round, 2026-11-29: 20 pages, all in heldout/)
  postfix-doc          /usr/share/doc/postfix/html/*_README.html (the Postfix mail server's guides;
                       fresh held-out set of the fifth round, 2026-11-29: 20 pages, all in heldout/)
  rsyslog-doc          /usr/share/doc/rsyslog-doc/html/          (the rsyslog manual: concepts,
                       configuration, its modules, RainerScript, tutorials and troubleshooting, each
                       page's main text without its author table and "See also" boxes; fresh held-out
                       set of the sixth round, 2026-11-29: 20 pages, all in heldout/)
  exim4-doc            /usr/share/doc/exim4-doc-html/spec_html/ (the Exim mail server's specification,
                       one chapter per page, without its introduction, credits and indexes; fresh
                       held-out set of the seventh round, 2026-11-30: 20 chapters, all in heldout/)
  haproxy-doc          /usr/share/doc/haproxy-doc/html/{intro,management,configuration}.html (the
                       HAProxy starter guide, management guide and configuration manual, split at
                       their chapters and sections; fresh held-out set of the tenth round,
                       2026-11-30: 20 sections, all in heldout/)

Python's own documentation is deliberately NOT used (kept aside for acceptance
checks elsewhere).

    apt-get update && apt-get install -y git-doc debian-reference-en postgresql-doc-15 bash-doc zsh-doc golang-1.19-doc apache2-doc postfix-doc rsyslog-doc exim4-doc-html haproxy-doc
    /work/main/.venv/bin/python scripts/pii/make_clean.py      # needs only lxml
    /work/main/.venv/bin/python scripts/pii/make_clean.py --only bash-doc   # one source; others kept

Output: examples/pii/clean/<source>/{dev,heldout}/<name>.txt (about 40 per source, split in half by
sorted name) and
examples/pii/clean/MANIFEST.tsv (origin file, size, what was removed).

The texts are PII-free by assumption. To make that assumption hold, the script
removes (and counts in MANIFEST.tsv):
  * whole pages that are mostly about people or identities (EXCLUDE_* below:
    git-shortlog, mailmap, send-email, format-patch, cvsimport author maps,
    SubmittingPatches, PostgreSQL release notes/bibliography/history, the
    debian-reference preface and appendix, ...);
  * sections headed Author(s) / Credits / Copyright / Acknowledgements / History
    / Thanks / Reporting bugs / Contributors / Maintainers;
  * paragraphs with an e-mail address (real maintainers and example addresses
    alike), credit lines ("written by <First Last>", "thanks to <First Last>",
    "Copyright (C) 2005"), or a name from NAMED_PEOPLE (real people found on
    review of the output, e.g. Knuth, Stallman, Hamano);
  * git's "Last updated <date>" footers and DocBook navigation bars.
Documents are capped at MAX_CHARS (cut at a paragraph boundary). Selection is
deterministic: the eligible pages sorted by name, taken at even intervals.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from lxml import html as lxml_html

REPO = Path(__file__).resolve().parents[2]
OUT_DIR = REPO / "examples" / "pii" / "clean"
SPLIT = ("dev", "heldout")

PER_SOURCE = 40
MAX_CHARS = 24_000
MIN_CHARS = 2_500

GIT_DIR = Path("/usr/share/doc/git-doc")
DEBREF_DIR = Path("/usr/share/debian-reference")
PG_DIR = Path("/usr/share/doc/postgresql-doc-15/html")
BASHREF = Path("/usr/share/doc/bash/bashref.html")
#: Sources written whole to heldout/ (a fresh held-out set: nobody has studied any of it).
ZSH_DIR = Path("/usr/share/doc/zsh-common/html")
GO_DIR = Path("/usr/share/doc/golang-1.19-doc/html")
GO_PAGES = ("go_spec.html", "go_mem.html", "asm.html")
APACHE_DIR = Path("/usr/share/doc/apache2-doc/manual/en")
#: The manual's folders of prose (the developer notes, FAQ and platform pages are left out).
APACHE_FOLDERS = ("", "howto", "ssl", "vhosts", "rewrite", "mod")
#: Indexes, lists, the licence and the glossary: not prose.
EXCLUDE_APACHE = {"index", "sitemap", "license", "glossary", "quickreference", "directives", "overrides"}
POSTFIX_DIR = Path("/usr/share/doc/postfix/html")
RSYSLOG_DIR = Path("/usr/share/doc/rsyslog-doc/html")
#: The manual's folders of prose (history, proposals, development notes and whitepapers left out).
RSYSLOG_FOLDERS = (
    "concepts",
    "configuration",
    "configuration/modules",
    "rainerscript",
    "tutorials",
    "troubleshooting",
)
EXIM_DIR = Path("/usr/share/doc/exim4-doc-html/spec_html")
#: Its introduction (history and credits), the code it incorporates (credits) and the indexes.
EXCLUDE_EXIM = {
    "ch-introduction",
    "ch-incorporated_code",
    "ch-concept_index",
    "ch-option_index",
    "ch-variable_index",
}
HAPROXY_DIR = Path("/usr/share/doc/haproxy-doc/html")
HAPROXY_PAGES = ("intro", "management", "configuration")
#: A HAProxy section starts at an anchor named by its number, one or two levels deep ("3", "3.1").
HAPROXY_SECTION = re.compile(r"\d+(?:\.\d+)?")
HELDOUT_ONLY = {
    "bash-doc": 20,
    "zsh-doc": 20,
    "golang-doc": 20,
    "apache2-doc": 20,
    "postfix-doc": 20,
    "rsyslog-doc": 20,
    "exim4-doc": 20,
    "haproxy-doc": 20,
}
# Zsh manual nodes about its authors or availability, the indexes and the table of contents; the FAQ
# pages (FAQ01-FAQ06) are left out whole, since they credit people by name throughout.
EXCLUDE_ZSH = {"Author", "Availability", "index", "The-Z-Shell-Manual", "Overview"}
# Sections of the Bash manual about its history, its authors or its licence, not its use.
EXCLUDE_BASH = {"Major-Differences-From-The-Bourne-Shell", "GNU-Free-Documentation-License", "Reporting-Bugs"}

# Pages that are mostly about people, identities or contributor credits.
EXCLUDE_GIT = {
    "git-shortlog",
    "git-check-mailmap",
    "gitmailmap",
    "git-blame",
    "git-annotate",
    "git-send-email",
    "git-format-patch",
    "git-am",
    "git-request-pull",
    "git-interpret-trailers",
    "git-mailinfo",
    "git-mailsplit",
    "git-cvsimport",
    "git-svn",
    "git-archimport",
    "git-quiltimport",
    "git-imap-send",
    "git-cvsexportcommit",
    "git-cvsserver",
    "git-fast-import",
    "git-fast-export",
    "git-commit-tree",
    "git-var",
    "SubmittingPatches",
    "MyFirstContribution",
    "ReviewingGuidelines",
    "git-bisect-lk2009",
    "howto-index",
    "index",
    "git-credential-store",
    "gitcredentials",
    "git-credential",
}
EXCLUDE_PG = re.compile(
    r"^(release.*|biblio|geqo-biblio|history|legalnotice|bookindex|index|"
    r"bug-reporting|resources|sourcerepo.*|git|docguide.*|features-sql-standard|"
    r"unsupported-features-sql-standard|errcodes-appendix|acronyms)$"
)
DEBREF_FILES = [f"ch{i:02d}.en.html" for i in range(1, 13)]  # not pr01 (quotes), apa (copyright)

DROP_SECTION = re.compile(
    r"^\s*(?:[A-Z]\.)?(?:\d+\.)*\d*\.?\s*(?:authors?|credits?|copyright|acknowledge?ments?|"
    r"history|thanks|reporting bugs|contributors?|maintainers?)\s*$",
    re.I,
)
EMAIL = re.compile(r"[\w.+%-]+@[\w-]+(?:\.[\w-]+)+")
NAME = r"[A-Z][a-z]+(?:\s+[A-Z]\.?)?\s+(?:[A-Z]')?[A-Z][a-z]+"  # First [M.] Last
CREDIT = re.compile(
    r"(?:\b(?:written|developed|maintained|created|contributed|authored|designed|invented|"
    r"implemented|originally)\s+by\s+" + NAME + r")"
    r"|(?:\bthanks\s+to\s+" + NAME + r")"
    r"|(?i:copyright\s*(?:\(c\)|©)?\s*(?:\d{4}|\(c\)|©))|(?:©\s*\d{4})|(?i:\(c\)\s*\d{4})"
)
# Real (and placeholder "John Doe") people named in otherwise technical prose,
# found by reviewing the output (a spaCy PERSON pass and a first-name list were
# used as review aids only). Paragraphs naming them are removed.
NAMED_PEOPLE = re.compile(
    r"\b(?:Stallman|Torvalds|Hamano|Moolenaar|Tom Lord|Knuth|Lamport|Loeliger|Kimball|"
    r"Martin Porter|Murdock|Perens|Ian Jackson|Akkerman|Ben Collins|Garbee|Michlmayr|"
    r"John Doe|Alice Doe|Jane Doe|Osamu Aoki|Chet Ramey|Brian Fox|Stephen Bourne|David Korn|Wietse|Venema|Bennett Todd|Duchovni|Tokarev|Dean Strik|Bernstein|"
    r"Rainer|Gerhards|Lorbach|David Lang|Withopf|Riedl|Duberga|"
    r"Kistner|Steve Campbell|Jetmore|Thelmen|Friedl|David Saez|Alex Miller|Hubbard)\b"
)
# Sections built around a list of real people (the DPL awk example).
EXCLUDE_DEBREF = {"ch01-unix_like_text_processing"}
FOOTER = re.compile(r"^(Last updated\b|GIT\s*$|Part of the git\(1\) suite)", re.I)

BLOCK = {
    "p",
    "div",
    "pre",
    "table",
    "tr",
    "li",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "blockquote",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "section",
    "article",
    "br",
    "hr",
    "caption",
    "thead",
    "tbody",
    "tfoot",
    "figure",
    "body",
}
HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}


def _clean_tree(root):
    for bad in root.xpath(
        "//script|//style|//head|//*[contains(concat(' ',@class,' '),' navheader ')]"
        "|//*[contains(concat(' ',@class,' '),' navfooter ')]|//*[@id='footer']"
        "|//*[contains(concat(' ',@class,' '),' toc ')]"
        "|//*[contains(concat(' ',@class,' '),' list-of-tables ')]"
        "|//*[contains(concat(' ',@class,' '),' list-of-figures ')]"
        "|//*[contains(concat(' ',@class,' '),' list-of-examples ')]"
    ):
        bad.getparent().remove(bad) if bad.getparent() is not None else None
    return root


def blocks(el) -> list[tuple[str, str]]:
    """Flatten an element into [(kind, text)], kind in {'h', 'p', 'pre'}.
    Inline text is whitespace-collapsed; <pre> keeps its layout; table cells
    are joined with ' | '."""
    out: list[tuple[str, str]] = []
    buf: list[str] = []

    def flush(kind="p"):
        text = re.sub(r"\s+", " ", "".join(buf)).strip()
        buf.clear()
        if text:
            out.append((kind, text))

    def walk(node):
        tag = node.tag if isinstance(node.tag, str) else ""
        if tag == "pre":
            flush()
            text = node.text_content().rstrip()
            if text.strip():
                out.append(("pre", text.strip("\n")))
            if node.tail:
                buf.append(node.tail)
            return
        if tag in HEADINGS:
            flush()
            buf.append(node.text_content())
            flush("h")
            if node.tail:
                buf.append(node.tail)
            return
        if tag in ("td", "th"):
            buf.append(" " + node.text_content().strip() + " |")
            if node.tail:
                buf.append(node.tail)
            return
        if tag in BLOCK:
            flush()
        if node.text:
            buf.append(node.text)
        for child in node:
            walk(child)
        if tag in BLOCK:
            flush()
        if node.tail:
            buf.append(node.tail)

    walk(el)
    flush()
    # tidy table rows: "| a | b |" artefacts
    return [(k, re.sub(r"\s*\|\s*$", "", t) if k == "p" else t) for k, t in out]


def filter_blocks(bl: list[tuple[str, str]], stats: dict) -> list[tuple[str, str]]:
    kept = []
    dropping = False
    for kind, text in bl:
        if kind == "h":
            dropping = bool(DROP_SECTION.match(text))
            if dropping:
                stats["sections"].append(text[:60])
                stats["dropped"].append(("section", text))
                continue
        if dropping:
            stats["section_paras"] += 1
            stats["dropped"].append(("in-section", text))
            continue
        if FOOTER.match(text):
            stats["footer"] += 1
            continue
        if EMAIL.search(text):
            stats["email_paras"] += 1
            stats["dropped"].append(("email", text))
            continue
        if NAMED_PEOPLE.search(text):
            stats["named_paras"] += 1
            stats["dropped"].append(("named", text))
            continue
        if CREDIT.search(text):
            stats["credit_paras"] += 1
            stats["dropped"].append(("credit", text))
            continue
        kept.append((kind, text))
    return kept


def render(bl: list[tuple[str, str]], cap: int) -> tuple[str, bool]:
    parts, total, truncated = [], 0, False
    for _kind, text in bl:
        piece = text
        if total + len(piece) + 2 > cap and parts:
            truncated = True
            break
        parts.append(piece)
        total += len(piece) + 2
    body = "\n\n".join(parts).replace("\xa0", " ")
    return body.strip() + "\n", truncated


def new_stats() -> dict:
    return {
        "sections": [],
        "section_paras": 0,
        "email_paras": 0,
        "credit_paras": 0,
        "footer": 0,
        "named_paras": 0,
        "dropped": [],
    }


def _pages(folder: Path, exclude: set[str]) -> list[Path]:
    return sorted(p for p in folder.glob("*.html") if p.stem not in exclude)


def pick_even(items: list, n: int) -> list:
    if len(items) <= n:
        return items
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def section_doc(source: str, name: str, origin: str, element: Any) -> dict:
    """One document: the prose blocks of ``element`` rendered as text, with what was filtered out."""
    stats = new_stats()
    text, truncated = render(filter_blocks(blocks(element), stats), MAX_CHARS)
    return {
        "source": source,
        "name": name,
        "origin": origin,
        "text": text,
        "truncated": truncated,
        "stats": stats,
    }


def page_docs(paths: list[Path], source: str) -> list[dict]:
    docs = []
    for p in paths:
        root = _clean_tree(lxml_html.parse(str(p)).getroot())
        body = root.find("body") if root.find("body") is not None else root
        docs.append(section_doc(source, p.stem, str(p), body))
    return docs


def debref_docs() -> list[dict]:
    docs = []
    for fname in DEBREF_FILES:
        p = DEBREF_DIR / fname
        root = _clean_tree(lxml_html.parse(str(p)).getroot())
        chapter = fname.split(".")[0]
        # top-level sections: div.section whose h2 is a section title
        for sec in root.xpath("//div[@class='section'][./div[@class='titlepage']//h2]"):
            anchor = sec.xpath(".//h2//a/@id")
            name = f"{chapter}-{(anchor[0] if anchor else 'section').strip('_')}"
            if name in EXCLUDE_DEBREF:
                continue
            docs.append(section_doc("debian-reference", name, f"{p}#{anchor[0] if anchor else ''}", sec))
    return docs


def bashref_docs() -> list[dict]:
    """The Bash reference manual, one document per section (its subsections included)."""
    root = _clean_tree(lxml_html.parse(str(BASHREF)).getroot())
    for nav in root.xpath("//div[@class='header']|//hr"):
        nav.getparent().remove(nav)
    docs = []
    for sec in root.xpath("//div[@class='section' or @class='appendixsec']"):
        name = sec.get("id", "section").replace("_003f", "")
        if name in EXCLUDE_BASH or name.endswith("-Index"):  # the indexes are lists, not prose
            continue
        docs.append(section_doc("bash-doc", name, f"{BASHREF}#{sec.get('id', '')}", sec))
    return docs


def zsh_docs() -> list[dict]:
    """The Z Shell manual, one document per node page (indexes and credits left out)."""
    pages = [
        p
        for p in _pages(ZSH_DIR, EXCLUDE_ZSH)
        if not p.stem.endswith("-Index") and not p.stem.startswith("FAQ")
    ]
    return page_docs(pages, "zsh-doc")


def go_docs() -> list[dict]:
    """The Go documentation pages, one document per h2 section (its h3 subsections included)."""
    docs = []
    for page in GO_PAGES:
        path = GO_DIR / page
        body = _clean_tree(lxml_html.parse(str(path)).getroot()).find("body")
        sections: list[tuple[str, Any]] = []
        for child in list(body):
            if child.tag == "h2":
                anchor = child.get("id") or child.text_content().strip().replace(" ", "_")
                sections.append((anchor, lxml_html.Element("div")))
            if sections:
                sections[-1][1].append(child)
        for anchor, section in sections:
            docs.append(section_doc("golang-doc", f"{path.stem}-{anchor}", f"{path}#{anchor}", section))
    return docs


def manual_docs(
    source: str, root_dir: Path, folders: tuple[str, ...], exclude: set[str], content: str, drop: str
) -> list[dict]:
    """One document per HTML page of a manual's ``folders``: the element ``content`` selects (pages
    without it are skipped), without the elements ``drop`` selects inside it. A page's name is its
    folder (slashes as dashes) and its stem."""
    docs = []
    for folder in folders:
        for path in _pages(root_dir / folder, exclude):
            root = _clean_tree(lxml_html.parse(str(path)).getroot())
            found = root.xpath(content)
            if not found:
                continue
            for bad in found[0].xpath(drop):
                bad.getparent().remove(bad)
            name = f"{folder.replace('/', '-')}-{path.stem}" if folder else path.stem
            docs.append(section_doc(source, name, str(path), found[0]))
    return docs


def apache_docs() -> list[dict]:
    """The Apache HTTP Server manual, one document per page: its ``page-content`` only (no header,
    navigation, language list or footer)."""
    return manual_docs(
        "apache2-doc",
        APACHE_DIR,
        APACHE_FOLDERS,
        EXCLUDE_APACHE,
        "//div[@id='page-content']",
        ".//div[@class='toplang' or @class='bottomlang' or @class='top']",
    )


def rsyslog_docs() -> list[dict]:
    """The rsyslog manual, one document per page: its main text without the module's author table
    and the "See also" boxes (help and contribution links)."""
    return manual_docs(
        "rsyslog-doc",
        RSYSLOG_DIR,
        RSYSLOG_FOLDERS,
        {"index"},
        "//div[@role='main']",
        ".//table[.//strong[starts-with(normalize-space(.), 'Author')]]"
        "|.//div[contains(concat(' ', @class, ' '), ' seealso ')]",
    )


def exim_docs() -> list[dict]:
    """The Exim specification, one document per chapter page (``ch-<title>.html``; the numbered
    ``chNN.html`` copies are skipped): the chapter's text only."""
    numbered = {p.stem for p in EXIM_DIR.glob("*.html") if not p.stem.startswith("ch-")}
    return manual_docs(
        "exim4-doc", EXIM_DIR, ("",), EXCLUDE_EXIM | numbered, "//div[@id='chapter']", ".//script"
    )


def haproxy_docs() -> list[dict]:
    """The HAProxy guides and configuration manual, one document per chapter or section (two levels
    deep; a section's subsections stay in it): the text between its anchor and the next one."""
    docs = []
    for page in HAPROXY_PAGES:
        path = HAPROXY_DIR / f"{page}.html"
        root = _clean_tree(lxml_html.parse(str(path)).getroot())
        body = root.xpath("//div[contains(concat(' ', @class, ' '), ' col-lg-12 ')]")[0]
        sections: list[tuple[str, Any]] = []
        for child in list(body):
            anchor = child.get("id", "") if child.tag == "a" and child.get("class") == "anchor" else ""
            if HAPROXY_SECTION.fullmatch(anchor):
                sections.append((anchor, lxml_html.Element("div")))
            elif anchor:
                continue  # a deeper subsection's anchor: its text stays in its section
            elif sections:
                sections[-1][1].append(child)
        for anchor, section in sections:
            docs.append(section_doc("haproxy-doc", f"{page}-{anchor}", f"{path}#{anchor}", section))
    return docs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    ap.add_argument("--per-source", type=int, default=PER_SOURCE)
    ap.add_argument(
        "--show-dropped",
        action="store_true",
        help="print every removed paragraph of the chosen documents (for review)",
    )
    ap.add_argument("--only", nargs="*", metavar="SOURCE", help="write only these sources (others kept)")
    args = ap.parse_args()

    makers = {
        "git-doc": (GIT_DIR, "git-doc", lambda: page_docs(_pages(GIT_DIR, EXCLUDE_GIT), "git-doc")),
        "debian-reference": (DEBREF_DIR, "debian-reference-en", debref_docs),
        "postgresql-doc-15": (
            PG_DIR,
            "postgresql-doc-15",
            lambda: page_docs(
                sorted(p for p in PG_DIR.glob("*.html") if not EXCLUDE_PG.match(p.stem)), "postgresql-doc-15"
            ),
        ),
        "bash-doc": (BASHREF, "bash-doc", bashref_docs),
        "zsh-doc": (ZSH_DIR, "zsh-doc", zsh_docs),
        "golang-doc": (GO_DIR, "golang-1.19-doc", go_docs),
        "apache2-doc": (APACHE_DIR, "apache2-doc", apache_docs),
        "postfix-doc": (
            POSTFIX_DIR,
            "postfix-doc",
            lambda: page_docs(sorted(POSTFIX_DIR.glob("*_README.html")), "postfix-doc"),
        ),
        "rsyslog-doc": (RSYSLOG_DIR, "rsyslog-doc", rsyslog_docs),
        "exim4-doc": (EXIM_DIR, "exim4-doc-html", exim_docs),
        "haproxy-doc": (HAPROXY_DIR, "haproxy-doc", haproxy_docs),
    }
    wanted = args.only or list(makers)
    unknown = set(wanted) - set(makers)
    if unknown:
        ap.error(f"unknown source(s): {', '.join(sorted(unknown))}")
    for source in wanted:
        where, package, _ = makers[source]
        if not where.exists():
            print(f"missing {where}: apt-get install -y {package}", file=sys.stderr)
            return 1
    candidates = {source: makers[source][2]() for source in wanted}

    manifest = [
        "source\tname\torigin\tchars\ttruncated\tdropped_sections\t"
        "dropped_section_paras\tdropped_email_paras\tdropped_credit_paras\tdropped_named_paras"
    ]
    grand = 0
    for source, docs in candidates.items():
        eligible = sorted((d for d in docs if len(d["text"]) >= MIN_CHARS), key=lambda d: d["name"])
        chosen = pick_even(eligible, HELDOUT_ONLY.get(source, args.per_source))
        out = args.out / source
        for half in SPLIT:
            (out / half).mkdir(parents=True, exist_ok=True)
            for old in (out / half).glob("*.txt"):
                old.unlink()
        total = 0
        for i, d in enumerate(chosen):
            # The first half by name is for development, the second is held out (names sort by topic).
            half = SPLIT[1] if source in HELDOUT_ONLY or i >= len(chosen) // 2 else SPLIT[0]
            (out / half / f"{d['name']}.txt").write_text(d["text"], encoding="utf-8")
            total += len(d["text"].encode())
            s = d["stats"]
            if args.show_dropped:
                for why, txt in s["dropped"]:
                    print(f"[{source}/{d['name']}] {why}: {txt[:300]!r}", file=sys.stderr)
            manifest.append(
                "\t".join(
                    map(
                        str,
                        [
                            source,
                            d["name"],
                            d["origin"],
                            len(d["text"]),
                            d["truncated"],
                            "; ".join(s["sections"]) or "-",
                            s["section_paras"],
                            s["email_paras"],
                            s["credit_paras"],
                            s["named_paras"],
                        ],
                    )
                )
            )
        grand += total
        print(
            f"{source}: {len(docs)} candidates, {len(eligible)} eligible, "
            f"{len(chosen)} written, {total / 1024:.0f} KiB"
        )
    manifest_file = args.out / "MANIFEST.tsv"
    if args.only and manifest_file.is_file():  # keep the rows of the sources not rewritten
        kept = [
            r
            for r in manifest_file.read_text(encoding="utf-8").splitlines()[1:]
            if r.split("\t")[0] not in wanted
        ]
        manifest[1:1] = kept
    manifest_file.write_text("\n".join(manifest) + "\n", encoding="utf-8")
    print(f"total {grand / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
