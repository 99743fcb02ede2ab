"""A deterministic corpus of malformed files beside good ones, for fuzzing ingest end to end.

:func:`build_corpus` writes, under ``dest/corpus``:

- ``good/``: good files of every supported type (the demo corpus's real files first, then files
  generated with python-docx, python-pptx, openpyxl, a small hand-written PDF writer and plain text);
- ``bad/<family>/``: malformed content under every supported suffix (and a few unsupported ones):
  truncated, bit-flipped, zeroed, swapped, random bytes, one type's bytes under another's suffix,
  empty files, zip bombs (small archives whose XML expands to tens of MB), deeply nested HTML, XML
  and e-mail, entity bombs and external entities, giant single lines, NUL bytes, broken encodings,
  PDF page-tree and xref loops, flate bombs, encrypted files, sparse files over the size limit ...;
- ``names/``: good content under hostile names (bytes that are not UTF-8, newlines, control and
  escape characters, very long names and paths, glob characters, Unicode tricks, a hard link);
- ``special/``: entries that are not readable regular files: FIFOs, a socket, symbolic-link loops,
  dangling links, links out of the root, a device, unreadable files and folders.

Beside it, ``dest/outside/secret.txt`` holds :data:`SECRET_MARKER`: links and XML external entities
point at it, and the runner checks that the marker never reaches the index.

Every entry is in the :class:`Manifest` with its path relative to the corpus root (bytes), its kind
and what ingest must do with it (:data:`GOOD`, :data:`BAD`, :data:`SPECIAL`). The same seed gives
the same files (paths of the temporary folder aside, which XML external entities name).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import shutil
import socket
import stat
import string
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

#: Must be indexed.
GOOD = "good"
#: Must be recorded as failed with a reason, or (damage that left a readable file) indexed.
BAD = "bad"
#: Not a readable regular file: must be recorded as failed.
SPECIAL = "special"

#: Written only outside the corpus root; it must never be found in the index.
SECRET_MARKER = "FUZZ-SECRET-7f3a9c1e-NEVER-INDEX"

PROJECT = Path(__file__).resolve().parents[2]
DEMO_CORPUS = PROJECT / "examples" / "demo" / "corpus"

TEXT_EXTS = [".txt", ".md", ".html", ".htm", ".eml"]
OOXML_EXTS = [".docx", ".pptx", ".xlsx"]
ALL_EXTS = [".pdf", ".docx", ".pptx", ".xlsx", ".eml", ".html", ".md", ".txt", ".htm"]
PLAIN_EXTS = [".txt", ".md", ".html", ".htm"]

_FIXED_TIME = (2024, 1, 2, 3, 4, 6)
_FIXED_STAMP = "2024-01-02T03:04:06Z"
_DEFAULT_MAX_FILE_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Entry:
    """One directory entry of the corpus and what ingest must do with it."""

    rel: bytes
    kind: str
    expect: str
    malformed: bool
    note: str = ""

    @property
    def source_id(self) -> str:
        """The id the filesystem connector records: the relative path, bytes that are not UTF-8
        written as ``\\xNN`` escapes and backslashes doubled (README, *sources[].path*)."""
        from connectors.filesystem import printable_name

        return printable_name(os.fsdecode(self.rel))

    @property
    def shown(self) -> str:
        """The path as printable ASCII (control characters and non-ASCII escaped)."""
        return ascii(os.fsdecode(self.rel))[1:-1]

    @property
    def family(self) -> str:
        """The kind without its type: ``truncated`` of ``truncated:.pdf``."""
        return self.kind.split(":", 1)[0]


@dataclass(slots=True)
class Manifest:
    """Every entry written by :func:`build_corpus`, with notes on what this machine allowed."""

    dest: Path
    seed: int
    entries: list[Entry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Paths whose permissions were removed (restored by :meth:`unlock`).
    locked: list[bytes] = field(default_factory=list)

    @property
    def root(self) -> Path:
        """The corpus root: the folder a filesystem source points at."""
        return self.dest / "corpus"

    @property
    def secret(self) -> Path:
        """The file outside the root that links and external entities point at."""
        return self.dest / "outside" / "secret.txt"

    def by_expect(self, expect: str) -> list[Entry]:
        """Entries with this expectation."""
        return [e for e in self.entries if e.expect == expect]

    def unlock(self) -> None:
        """Give locked entries their permissions back, so the corpus can be deleted."""
        for rel in self.locked:
            path = os.path.join(os.fsencode(self.root), rel)
            with contextlib.suppress(OSError):
                os.chmod(path, 0o755 if os.path.isdir(path) else 0o644, follow_symlinks=False)

    def to_json(self) -> str:
        """The manifest as JSON; paths are surrogate-escaped (``os.fsencode`` restores the bytes)."""
        return json.dumps(
            {
                "root": str(self.root),
                "seed": self.seed,
                "notes": self.notes,
                "entries": [
                    {
                        "rel": os.fsdecode(e.rel),
                        "source_id": e.source_id,
                        "kind": e.kind,
                        "expect": e.expect,
                        "malformed": e.malformed,
                        "note": e.note,
                    }
                    for e in self.entries
                ],
            },
            indent=1,
        )


# --------------------------------------------------------------------------------------------
# Good content


_VOCABULARY = (
    "policy staff review annual leave expenses budget office travel laptop security training manager "
    "team project report quarter meeting schedule approval request holiday allowance pension health "
    "benefit contract payroll process guidance support service customer supplier invoice account "
    "record archive retention access password network printer building canteen parking safety fire "
    "drill induction starter handbook procedure template form claim receipt mileage hotel flight rail "
    "booking deadline review appraisal objective feedback development course certificate workshop "
    "library document folder share drive backup restore incident response change release plan risk "
    "register audit control compliance standard quality improvement target measure outcome summary"
)
_WORDS = _VOCABULARY.split()
_NAMES = ["Priya Raman", "Tom Hughes", "Aisling Byrne", "Marek Nowak", "Grace Adeyemi", "Luis Ortega"]


def _sentence(rng: random.Random, lo: int = 8, hi: int = 16) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(lo, hi))]
    return " ".join(words).capitalize() + "."


def _paragraph(rng: random.Random) -> str:
    text = " ".join(_sentence(rng) for _ in range(rng.randint(2, 5)))
    if rng.random() < 0.25:  # some PII: redacted, and the document is still indexed
        name = rng.choice(_NAMES)
        text += f" Contact {name} at {name.split()[0].lower()}@example.org for details."
    return text


def _title(rng: random.Random) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 5))).title()


@dataclass(slots=True)
class _Doc:
    title: str
    paragraphs: list[str]
    table: list[list[str]]


def _doc(rng: random.Random) -> _Doc:
    rows = [["Item", "Owner", "Status"]] + [
        [rng.choice(_WORDS).title(), rng.choice(_WORDS), rng.choice(["open", "closed", "due"])]
        for _ in range(rng.randint(2, 5))
    ]
    return _Doc(_title(rng), [_paragraph(rng) for _ in range(rng.randint(2, 6))], rows)


def _txt(d: _Doc) -> bytes:
    return (d.title + "\n\n" + "\n\n".join(d.paragraphs) + "\n").encode()


def _md(d: _Doc) -> bytes:
    table = "\n".join("| " + " | ".join(r) + " |" for r in d.table[:1])
    table += "\n|" + "---|" * len(d.table[0]) + "\n"
    table += "\n".join("| " + " | ".join(r) + " |" for r in d.table[1:])
    body = "\n\n".join(d.paragraphs[:-1])
    return f"# {d.title}\n\n{body}\n\n## Items\n\n- {d.paragraphs[-1]}\n\n{table}\n".encode()


def _html(d: _Doc) -> bytes:
    rows = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in d.table)
    paras = "".join(f"<p>{p}</p>\n" for p in d.paragraphs)
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{d.title}</title></head>\n"
        f"<body><h1>{d.title}</h1>\n{paras}<table>{rows}</table></body></html>\n"
    ).encode()


def _eml_headers(d: _Doc, extra: str = "") -> str:
    return (
        "From: hr.team@example.org\nTo: staff@example.org\n"
        f"Subject: {d.title}\nDate: Tue, 03 Nov 2026 09:12:00 +0000\n"
        f"Message-ID: <{zlib.crc32(d.title.encode())}@example.org>\nMIME-Version: 1.0\n{extra}"
    )


def _eml(d: _Doc) -> bytes:
    head = _eml_headers(d, 'Content-Type: text/plain; charset="utf-8"\nContent-Transfer-Encoding: 8bit\n')
    return (head + "\n" + "\n\n".join(d.paragraphs) + "\n").encode()


def _normalized_zip(data: bytes) -> bytes:
    """An OOXML package rewritten with fixed timestamps, so the same seed gives the same bytes."""
    members = []
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for name in z.namelist():
            blob = z.read(name)
            if name == "docProps/core.xml":
                blob = re.sub(
                    rb"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:\2>)",
                    rb"\g<1>" + _FIXED_STAMP.encode() + rb"\g<3>",
                    blob,
                )
            members.append((name, blob))
    return _zip(members)


def _zip(members: list[tuple[str, bytes]], level: int = 6) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, blob in members:
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, blob, compresslevel=level)
    return buf.getvalue()


def _docx(d: _Doc) -> bytes:
    from docx import Document

    doc = Document()
    doc.core_properties.created = doc.core_properties.modified = datetime(2024, 1, 2)
    doc.add_heading(d.title, 1)
    for p in d.paragraphs:
        doc.add_paragraph(p)
    table = doc.add_table(rows=len(d.table), cols=len(d.table[0]))
    for i, row in enumerate(d.table):
        for j, cell in enumerate(row):
            table.cell(i, j).text = cell
    buf = io.BytesIO()
    doc.save(buf)
    return _normalized_zip(buf.getvalue())


def _pptx(d: _Doc) -> bytes:
    from pptx import Presentation

    prs = Presentation()
    prs.core_properties.created = prs.core_properties.modified = datetime(2024, 1, 2)
    slide = prs.slides.add_slide(prs.slide_layouts[0])
    slide.shapes.title.text = d.title
    for p in d.paragraphs:
        s = prs.slides.add_slide(prs.slide_layouts[1])
        s.shapes.title.text = p.split(".")[0][:60]
        s.placeholders[1].text = p
    buf = io.BytesIO()
    prs.save(buf)
    return _normalized_zip(buf.getvalue())


def _xlsx(d: _Doc) -> bytes:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Items"
    for row in d.table:
        ws.append(row)
    notes = wb.create_sheet("Notes")
    for p in d.paragraphs:
        notes.append([p])
    wb.properties.created = wb.properties.modified = datetime(2024, 1, 2)
    buf = io.BytesIO()
    wb.save(buf)
    return _normalized_zip(buf.getvalue())


def _pdf_escape(line: str) -> bytes:
    raw = line.encode("latin-1", "replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _stream(data: bytes, *, compress: bool = True, length: int | None = None) -> bytes:
    if compress:
        data = zlib.compress(data, 9)
        head = b"<< /Length %d /Filter /FlateDecode >>" % (len(data) if length is None else length)
    else:
        head = b"<< /Length %d >>" % (len(data) if length is None else length)
    return head + b"\nstream\n" + data + b"\nendstream"


def _pdf_objects(
    objects: list[bytes], *, trailer: bytes = b"", xref_shift: int = 0, prev_loop: bool = False
) -> bytes:
    """A PDF file of ``objects`` (object ``i + 1`` is ``objects[i]``; object 1 is the catalog)."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % (off + xref_shift)
    prev = b" /Prev %d" % xref_at if prev_loop else b""
    out += b"trailer\n<< /Size %d /Root 1 0 R%s%s >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        prev,
        trailer,
        xref_at,
    )
    return bytes(out)


def _wrap(text: str, width: int = 88) -> list[str]:
    lines: list[str] = []
    for para in text.split("\n"):
        line = ""
        for word in para.split():
            if line and len(line) + len(word) + 1 > width:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        lines.append(line)
    return lines


def _text_content(lines: list[str]) -> bytes:
    body = b"".join(b"(%s) Tj T* " % _pdf_escape(line) for line in lines)
    return b"BT /F1 11 Tf 14 TL 72 740 Td " + body + b"ET"


def _pdf_head(kids: bytes, count: int) -> list[bytes]:
    """Objects 1-3 of every generated PDF: the catalog, the page tree (``kids``) and Helvetica as /F1."""
    return [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, count),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]


def _pdf_page(contents: int) -> bytes:
    """A page object whose content stream is object ``contents``."""
    return (
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >>"
        b" /Contents %d 0 R >>" % contents
    )


def _pdf_pages(pages: list[bytes], **kw: object) -> bytes:
    """A PDF with one page per content stream (uncompressed bytes), Helvetica as /F1."""
    n = len(pages)
    objects = _pdf_head(b" ".join(b"%d 0 R" % (4 + 2 * i) for i in range(n)), n)
    for i, content in enumerate(pages):
        objects += [_pdf_page(5 + 2 * i), _stream(content)]
    return _pdf_objects(objects, **kw)  # type: ignore[arg-type]


def _pdf(d: _Doc) -> bytes:
    lines = _wrap(d.title + "\n" + "\n".join(d.paragraphs))
    pages = [_text_content(lines[i : i + 45]) for i in range(0, len(lines), 45)]
    return _pdf_pages(pages)


_GOOD_MAKERS: dict[str, Callable[[_Doc], bytes]] = {
    ".txt": _txt,
    ".md": _md,
    ".html": _html,
    ".htm": _html,
    ".eml": _eml,
    ".docx": _docx,
    ".pptx": _pptx,
    ".xlsx": _xlsx,
    ".pdf": _pdf,
}

#: The demo corpus's readable files by suffix (real files from other tools), used first.
_DEMO_GOOD = {
    ".pdf": "handbook/code-of-conduct.pdf",
    ".docx": "hr/payroll/salary-review-2026.docx",
    ".pptx": "handbook/it-security.pptx",
    ".xlsx": "hr/onboarding/new-starters-q4.xlsx",
    ".eml": "hr/casework/grievance-0142.eml",
    ".html": "handbook/expenses.html",
    ".md": "handbook/annual-leave.md",
    ".txt": "handbook/remote-working.txt",
}


def good_bytes(ext: str, rng: random.Random) -> bytes:
    """A good, readable file of type ``ext`` with generated text."""
    return _GOOD_MAKERS[ext](_doc(rng))


# --------------------------------------------------------------------------------------------
# Malformed content


@dataclass(slots=True)
class Made:
    """A family's output: the bytes, and optionally another suffix or a sparse size."""

    data: bytes
    ext: str | None = None
    sparse: int = 0


@dataclass(slots=True)
class _Ctx:
    bases: dict[str, list[bytes]]
    secret: Path
    giant_chars: int
    bomb_bytes: int
    max_file_bytes: int

    def base(self, ext: str, rng: random.Random) -> bytes:
        return rng.choice(self.bases[ext])


Maker = Callable[[_Ctx, random.Random, str], Made]


@dataclass(frozen=True, slots=True)
class Family:
    """A kind of damage, the suffixes it applies to, and whether it is costly (capped per corpus)."""

    name: str
    exts: tuple[str, ...]
    make: Maker
    heavy: bool = False
    #: Each use draws new random damage, so the family is used again to fill a large corpus.
    random: bool = False


def _flip(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for i in rng.sample(range(len(out)), max(1, len(out) // 100)):
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def _zeroed(data: bytes, rng: random.Random) -> bytes:
    start = rng.randrange(len(data))
    size = rng.randint(512, 8192)
    return data[:start] + bytes(min(size, len(data) - start)) + data[start + size :]


def _shuffled(data: bytes, rng: random.Random) -> bytes:
    blocks = [data[i : i + 256] for i in range(0, len(data), 256)]
    rng.shuffle(blocks)
    return b"".join(blocks)


def _magic(ext: str) -> bytes:
    if ext == ".pdf":
        return b"%PDF-1.7\n"
    if ext in OOXML_EXTS:
        return b"PK\x03\x04"
    if ext == ".eml":
        return b"From: a@example.org\nSubject: x\n\n"
    return b"<html><body>" if ext in (".html", ".htm") else b"# "


def _words_line(rng: random.Random, n: int) -> str:
    parts: list[str] = []
    size = 0
    while size < n:
        w = rng.choice(_WORDS)
        parts.append(w)
        size += len(w) + 1
    return " ".join(parts)[:n]


def _as_text_type(ext: str, text: str, rng: random.Random) -> bytes:
    """``text`` wrapped as a file of text type ``ext`` without adding line breaks to it."""
    if ext in (".html", ".htm"):
        return f"<html><body><p>{text}</p></body></html>".encode("utf-8", "surrogatepass")
    if ext == ".eml":
        head = _eml_headers(_doc(rng)).replace("\n", "\r\n")
        return (head + "\r\n" + text).encode("utf-8", "surrogatepass")
    return text.encode("utf-8", "surrogatepass")


def _plain(ctx: _Ctx, rng: random.Random, ext: str) -> str:
    """Readable text for a text-type file, to be re-encoded or damaged."""
    return _as_text_type(ext, "\n\n".join(_doc(rng).paragraphs), rng).decode()


def _encoded(encoding: str, bom: bytes = b"") -> Maker:
    def make(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
        return Made(bom + _plain(ctx, rng, ext).encode(encoding, "replace"))

    return make


def _ooxml_main(ext: str) -> str:
    return {
        ".docx": "word/document.xml",
        ".pptx": "ppt/slides/slide1.xml",
        ".xlsx": "xl/worksheets/sheet1.xml",
    }[ext]


_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_S = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_A = "http://schemas.openxmlformats.org/drawingml/2006/main"
_P = "http://schemas.openxmlformats.org/presentationml/2006/main"


def _ooxml_xml(ext: str, inner: str, doctype: str = "") -> str:
    """The main part of a one-part OOXML document whose body is ``inner`` (type-specific markup)."""
    head = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    if ext == ".docx":
        return f'{head}{doctype}<w:document xmlns:w="{_W}"><w:body>{inner}</w:body></w:document>'
    if ext == ".xlsx":
        return f'{head}{doctype}<worksheet xmlns="{_S}"><sheetData>{inner}</sheetData></worksheet>'
    return (
        f'{head}{doctype}<p:sld xmlns:a="{_A}" xmlns:p="{_P}"><p:cSld><p:spTree><p:nvGrpSpPr>'
        '<p:cNvPr id="1" name=""/><p:cNvGrpSpPr/><p:nvPr/></p:nvGrpSpPr><p:grpSpPr/>'
        '<p:sp><p:nvSpPr><p:cNvPr id="2" name="Body"/><p:cNvSpPr/><p:nvPr/></p:nvSpPr><p:spPr/>'
        f"<p:txBody><a:bodyPr/>{inner}</p:txBody></p:sp></p:spTree></p:cSld></p:sld>"
    )


def _ooxml_text(ext: str, text: str) -> str:
    """One paragraph (docx, pptx) or cell (xlsx) of ``text``, as markup for :func:`_ooxml_xml`."""
    if ext == ".docx":
        return f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p>"
    if ext == ".xlsx":
        return f'<row r="1"><c r="A1" t="inlineStr"><is><t>{text}</t></is></c></row>'
    return f"<a:p><a:r><a:t>{text}</a:t></a:r></a:p>"


def _ooxml_root(ext: str) -> str:
    return {".docx": "w:document", ".xlsx": "worksheet", ".pptx": "p:sld"}[ext]


def _with_member(zip_bytes: bytes, name: str, blob: bytes | None) -> bytes:
    """The package with member ``name`` replaced by ``blob`` (or dropped when None)."""
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as z:
        members = [(n, z.read(n)) for n in z.namelist() if n != name]
    if blob is not None:
        members.append((name, blob))
    return _zip(members, level=9)


def _generated_ooxml(ctx: _Ctx, ext: str) -> bytes:
    """The last generated (not demo) base of an OOXML type: its main part has the expected name."""
    return ctx.bases[ext][-1]


def _crafted(ext: str, xml: str, ctx: _Ctx) -> bytes:
    return _with_member(_generated_ooxml(ctx, ext), _ooxml_main(ext), xml.encode())


# Families, each ``(ctx, rng, ext) -> Made``.


def f_truncated(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    data = ctx.base(ext, rng)
    return Made(data[: rng.randrange(1, len(data))])


def f_truncated_head(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    return Made(ctx.base(ext, rng)[: rng.randint(1, 32)])


def f_bitflip(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    return Made(_flip(ctx.base(ext, rng), rng))


def f_zeroed(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    return Made(_zeroed(ctx.base(ext, rng), rng))


def f_swapped(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    data = ctx.base(ext, rng)
    cut = rng.randrange(1, len(data))
    return Made(data[cut:] + data[:cut])


def f_shuffled(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    return Made(_shuffled(ctx.base(ext, rng), rng))


def f_garbage_tail(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    return Made(ctx.base(ext, rng) + rng.randbytes(rng.randint(1, 4096)))


def f_duplicated(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    data = ctx.base(ext, rng)
    return Made(data + data)


def f_random(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    return Made(rng.randbytes(rng.randint(1, 65536)))


def f_magic_random(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    return Made(_magic(ext) + rng.randbytes(rng.randint(16, 32768)))


def f_wrong_type(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    others = [e for e in ALL_EXTS if e != ext and {e, ext} != {".html", ".htm"}]
    return Made(ctx.base(rng.choice(others), rng))


def f_empty(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    return Made(b"")


def f_whitespace(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    return Made(b" \t\r\n\x0c" * rng.randint(1, 2000))


def f_giant_line(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    return Made(_as_text_type(ext, _words_line(rng, ctx.giant_chars), rng))


def f_giant_token(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    alphabet = string.ascii_letters + string.digits
    token = "".join(rng.choices(alphabet, k=ctx.giant_chars))
    return Made(_as_text_type(ext, token, rng))


def f_digit_soup(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    """A one-line export of numbers: every detector of phone numbers and ids fires everywhere."""
    soup = "".join(rng.choices("0123456789 -+()/", k=max(1000, ctx.giant_chars // 10)))
    return Made(_as_text_type(ext, soup, rng))


def f_nul_bytes(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    """NUL bytes sprinkled below the binary-detection threshold: PostgreSQL text cannot hold them."""
    data = bytearray(_plain(ctx, rng, ext).encode())
    for _ in range(max(1, len(data) // 200)):
        data.insert(rng.randrange(len(data)), 0)
    return Made(bytes(data))


def f_invalid_utf8(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    data = bytearray(_plain(ctx, rng, ext).encode())
    for _ in range(max(1, len(data) // 100)):
        data.insert(rng.randrange(len(data)), rng.randint(0x80, 0xFF))
    return Made(bytes(data))


def f_cesu_surrogate(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    """UTF-8-encoded lone surrogates (CESU-8, WTF-8): Python refuses them, so does PostgreSQL."""
    text = _plain(ctx, rng, ext)
    cut = rng.randrange(len(text))
    return Made(text[:cut].encode() + b"\xed\xa0\x80\xed\xbf\xbf" + text[cut:].encode())


def f_control_chars(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    text = _plain(ctx, rng, ext)
    chars = ["\x1b[31m", "\x1b[0m", "\x07", "\x7f", "\x0b", "\x1b]0;title\x07", "\u202e", "\ufeff", "\u200b"]
    out = list(text)
    for _ in range(max(1, len(out) // 300)):
        out.insert(rng.randrange(len(out)), rng.choice(chars))
    return Made("".join(out).encode())


def f_cr_only(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    return Made(_plain(ctx, rng, ext).replace("\n", "\r").encode())


def f_bom_only(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    return Made(rng.choice([b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf\n\n"]))


def f_unsupported(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    other = rng.choice([".csv", ".json", ".bin", ".doc", "", ".txt~", ".pdf.exe", ".rtf", ".odt", ".TXT "])
    return Made(good_bytes(".txt", rng), ext=other)


def f_over_limit(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    return Made(b"", sparse=ctx.max_file_bytes + 1)


def f_ole(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    """What a password-protected Office file is: an OLE container, not a zip."""
    return Made(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + rng.randbytes(rng.randint(512, 8192)))


def f_zip_bomb(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    """A small archive whose main XML part expands to ``bomb_bytes`` of empty structure, then text."""
    empty = {".docx": "<w:p/>", ".xlsx": "", ".pptx": "<a:p/>"}[ext]
    if ext == ".xlsx":
        rows = ctx.bomb_bytes // 16
        inner = "".join(f'<row r="{i}"/>' for i in range(1, rows)) + _ooxml_text(ext, "The end.").replace(
            'r="1"', f'r="{rows}"'
        ).replace('r="A1"', f'r="A{rows}"')
    else:
        inner = empty * (ctx.bomb_bytes // len(empty)) + _ooxml_text(ext, "The end of a long document.")
    return Made(_crafted(ext, _ooxml_xml(ext, inner), ctx))


def f_deep_nesting(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    depth = 50_000
    if ext in (".html", ".htm"):
        return Made(b"<html><body>" + b"<div>" * depth + b"deep text" + b"</div>" * depth + b"</body></html>")
    if ext == ".md":
        return Made(b"> " * 5000 + b"deep quote\n\n" + b"".join(b"  " * i + b"- item\n" for i in range(3000)))
    if ext == ".eml":
        levels = 400
        parts = [f'Content-Type: multipart/mixed; boundary="b{i}"\n\n--b{i}\n' for i in range(levels)]
        tail = "Content-Type: text/plain\n\ndeep text\n" + "".join(
            f"--b{i}--\n" for i in reversed(range(levels))
        )
        head = _eml_headers(_doc(rng))
        return Made((head + "".join(parts) + tail).encode())
    tag = {".docx": "w:sdt", ".xlsx": "extLst", ".pptx": "a:extLst"}[ext]
    inner = f"<{tag}>" * 5000 + f"</{tag}>" * 5000 + _ooxml_text(ext, "After the nesting.")
    return Made(_crafted(ext, _ooxml_xml(ext, inner), ctx))


def f_xxe(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    """An external entity naming the secret file outside the root: its text must never be indexed."""
    uri = ctx.secret.absolute().as_uri()
    if ext in (".html", ".htm"):
        return Made(
            f'<!DOCTYPE html [<!ENTITY xxe SYSTEM "{uri}">]>\n<html><body><p>Before &xxe; after.</p>'
            f'<iframe src="{uri}"></iframe><p>Policy text follows here.</p></body></html>'.encode()
        )
    doctype = f'<!DOCTYPE {_ooxml_root(ext)} [<!ENTITY xxe SYSTEM "{uri}">]>'
    return Made(_crafted(ext, _ooxml_xml(ext, _ooxml_text(ext, "Before &xxe; after."), doctype), ctx))


def f_billion_laughs(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    ents = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    )
    if ext in (".html", ".htm"):
        return Made(f"<!DOCTYPE html [{ents}]>\n<html><body><p>&lol9;</p></body></html>".encode())
    doctype = f"<!DOCTYPE {_ooxml_root(ext)} [{ents}]>"
    return Made(_crafted(ext, _ooxml_xml(ext, _ooxml_text(ext, "&lol9;"), doctype), ctx))


def f_ooxml_missing_main(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    return Made(_with_member(_generated_ooxml(ctx, ext), _ooxml_main(ext), None))


def f_ooxml_missing_types(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    return Made(_with_member(_generated_ooxml(ctx, ext), "[Content_Types].xml", None))


def f_ooxml_malformed_xml(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    xml = _ooxml_xml(ext, _ooxml_text(ext, "Unclosed"))
    return Made(_crafted(ext, xml[: rng.randrange(len(xml) // 2, len(xml) - 5)], ctx))


def f_ooxml_no_text(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    return Made(_crafted(ext, _ooxml_xml(ext, ""), ctx))


def f_zip_of_text(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    return Made(_zip([("readme.txt", good_bytes(".txt", rng)), ("data/x.bin", rng.randbytes(256))]))


def f_zip_crc(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    """A package whose main part's recorded CRC is wrong (its data intact)."""
    data = bytearray(_generated_ooxml(ctx, ext))
    name = _ooxml_main(ext).encode()
    central = -1
    idx = data.find(b"PK\x01\x02")
    while idx != -1:
        if data[idx + 46 : idx + 46 + len(name)] == name:
            central = idx
            break
        idx = data.find(b"PK\x01\x02", idx + 4)
    assert central != -1, "no central-directory entry for the main part"
    data[central + 16 : central + 20] = rng.randbytes(4)
    return Made(bytes(data))


def f_pdf_page_tree_loop(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    objects = [
        *_pdf_head(b"2 0 R 4 0 R", 2),
        _pdf_page(5),
        _stream(_text_content(["A page inside a page tree that contains itself."])),
    ]
    return Made(_pdf_objects(objects))


def f_pdf_xref_loop(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    return Made(_pdf_pages([_text_content(_wrap(_paragraph(rng)))], prev_loop=True))


def f_pdf_bad_xref(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    return Made(_pdf_pages([_text_content(_wrap(_paragraph(rng)))], xref_shift=rng.randint(3, 40)))


def f_pdf_bad_length(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    content = _text_content(_wrap(_paragraph(rng)))
    objects = [
        *_pdf_head(b"4 0 R", 1),
        _pdf_page(5),
        _stream(content, compress=False, length=rng.choice([0, 7, 999_999_999, -5])),
    ]
    return Made(_pdf_objects(objects))


def f_pdf_encrypted(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    page = _text_content(_wrap(_paragraph(rng)))
    objects = [
        *_pdf_head(b"4 0 R", 1),
        _pdf_page(5),
        _stream(page),
        b"<< /Filter /Standard /V 1 /R 2 /O <%s> /U <%s> /P -44 >>"
        % (rng.randbytes(32).hex().encode(), rng.randbytes(32).hex().encode()),
    ]
    ident = rng.randbytes(16).hex().encode()
    return Made(_pdf_objects(objects, trailer=b" /Encrypt 6 0 R /ID [<%s><%s>]" % (ident, ident)))


def f_pdf_no_text(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    return Made(_pdf_pages([b"0 0 m 300 300 l S 10 10 200 200 re f"]))


def f_pdf_nul_text(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    body = b"BT /F1 11 Tf 72 740 Td (Policy\x00text with\x00NUL bytes\x00inside) Tj ET"
    return Made(_pdf_pages([body]))


def f_pdf_header_only(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    return Made(b"%PDF-1.7\n%%EOF\n")


def f_pdf_many_pages(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    return Made(_pdf_pages([b""] * 3000 + [_text_content(["The last page."])]))


def f_flate_bomb(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    """A content stream that inflates to ``bomb_bytes / 3`` of drawing operators, then a line of text."""
    ops = b"0 0 m 1 1 l " * (ctx.bomb_bytes // 36)
    return Made(_pdf_pages([ops + _text_content(["After a very long stream."])]))


def f_eml_no_headers(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    return Made("\n\n".join(_doc(rng).paragraphs).encode())


def f_eml_headers_only(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    return Made((_eml_headers(_doc(rng)) + "\n").encode())


def f_eml_bad_base64(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    head = _eml_headers(_doc(rng), "Content-Type: text/plain\nContent-Transfer-Encoding: base64\n")
    return Made((head + "\n" + "!!!not*base64~~~\n" * 20).encode())


def f_eml_unknown_charset(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    d = _doc(rng)
    head = _eml_headers(d, 'Content-Type: text/plain; charset="x-unknown-42"\n')
    return Made(head.encode() + b"\n" + "\n\n".join(d.paragraphs).encode("latin-1") + b"\xe9\xff\n")


def f_eml_broken_multipart(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    d = _doc(rng)
    head = _eml_headers(d, 'Content-Type: multipart/mixed; boundary="never-closed"\n')
    return Made((head + "\n--never-closed\nContent-Type: text/plain\n\n" + d.paragraphs[0] + "\n").encode())


def f_eml_giant_header(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    d = _doc(rng)
    head = _eml_headers(d).replace("Subject: ", "Subject: " + _words_line(rng, ctx.giant_chars // 2))
    return Made((head + "\n" + d.paragraphs[0] + "\n").encode())


def f_eml_attachment_only(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    import base64

    blob = base64.encodebytes(ctx.bases[".pdf"][0]).decode()
    head = _eml_headers(_doc(rng), 'Content-Type: multipart/mixed; boundary="b"\n')
    part = 'Content-Type: application/pdf\nContent-Disposition: attachment; filename="x.pdf"\n'
    return Made((head + f"\n--b\n{part}Content-Transfer-Encoding: base64\n\n{blob}\n--b--\n").encode())


def f_html_script_only(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    return Made(
        b"<html><head><script>var x = '<p>not text</p>';</script><style>p{}</style></head><body></body></html>"
    )


def f_html_unclosed(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    return Made(("<html><body><p>" + "<p><b><i><table><tr><td>".join(_doc(rng).paragraphs)).encode())


def f_html_comment_bomb(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    return Made(("<html><body><p>Before</p><!-- " + " ".join(_doc(rng).paragraphs)).encode())


def f_html_huge_attribute(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    value = "x" * (ctx.giant_chars // 4)
    return Made(
        f'<html><body><p title="{value}">A paragraph with a huge attribute.</p></body></html>'.encode()
    )


def f_md_huge_table(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    cols = 300
    head = "|" + "|".join(f"c{i}" for i in range(cols)) + "|\n|" + "---|" * cols + "\n"
    rows = "".join("|" + "|".join(rng.choice(_WORDS) for _ in range(cols)) + "|\n" for _ in range(150))
    return Made((head + rows).encode())


def f_md_unclosed_fence(ctx: _Ctx, rng: random.Random, ext: str) -> Made:
    return Made(("# Title\n\n```python\n" + "\n".join(_doc(rng).paragraphs)).encode())


_ALL = tuple(ALL_EXTS)
_TEXT = tuple(TEXT_EXTS)
_PLAIN = tuple(PLAIN_EXTS)
_OOXML = tuple(OOXML_EXTS)
_HTML = (".html", ".htm")

#: Every family, in the order a small corpus samples them (most telling first).
FAMILIES: list[Family] = [
    Family("truncated", _ALL, f_truncated, random=True),
    Family("bitflip", _ALL, f_bitflip, random=True),
    Family("wrong-type", _ALL, f_wrong_type, random=True),
    Family("empty", _ALL, f_empty),
    Family("giant-line", _TEXT, f_giant_line, heavy=True),
    Family("zip-bomb", _OOXML, f_zip_bomb, heavy=True),
    Family("nul-bytes", _TEXT, f_nul_bytes, random=True),
    Family("random", _ALL, f_random, random=True),
    Family("deep-nesting", (*_HTML, ".md", ".eml", *_OOXML), f_deep_nesting),
    Family("xxe", (*_OOXML, *_HTML), f_xxe),
    Family("invalid-utf8", _TEXT, f_invalid_utf8, random=True),
    Family("utf16-nobom", _TEXT, _encoded("utf-16-le")),
    Family("zeroed", _ALL, f_zeroed, random=True),
    Family("swapped", _ALL, f_swapped, random=True),
    Family("pdf-page-tree-loop", (".pdf",), f_pdf_page_tree_loop),
    Family("eml-no-headers", (".eml",), f_eml_no_headers),
    Family("magic-random", _ALL, f_magic_random, random=True),
    Family("billion-laughs", (*_OOXML, *_HTML), f_billion_laughs),
    Family("flate-bomb", (".pdf",), f_flate_bomb, heavy=True),
    Family("unsupported", (".txt",), f_unsupported, random=True),
    Family("ole-encrypted", (*_OOXML,), f_ole, random=True),
    Family("pdf-encrypted", (".pdf",), f_pdf_encrypted),
    Family("pdf-xref-loop", (".pdf",), f_pdf_xref_loop),
    Family("giant-token", _PLAIN, f_giant_token, heavy=True),
    Family("cesu-surrogate", _TEXT, f_cesu_surrogate, random=True),
    Family("over-limit", (".txt", ".pdf"), f_over_limit, heavy=True),
    Family("ooxml-missing-main", _OOXML, f_ooxml_missing_main),
    Family("ooxml-malformed-xml", _OOXML, f_ooxml_malformed_xml, random=True),
    Family("zip-crc", _OOXML, f_zip_crc, random=True),
    Family("pdf-bad-length", (".pdf",), f_pdf_bad_length, random=True),
    Family("pdf-nul-text", (".pdf",), f_pdf_nul_text),
    Family("eml-unknown-charset", (".eml",), f_eml_unknown_charset),
    Family("eml-broken-multipart", (".eml",), f_eml_broken_multipart),
    Family("html-comment-bomb", _HTML, f_html_comment_bomb),
    Family("md-huge-table", (".md",), f_md_huge_table),
    Family("digit-soup", (".txt", ".md"), f_digit_soup, heavy=True),
    Family("utf16-bom", _PLAIN, _encoded("utf-16-le", b"\xff\xfe")),
    Family("utf32", _PLAIN, _encoded("utf-32")),
    Family("latin1", _TEXT, _encoded("latin-1")),
    Family("control-chars", _TEXT, f_control_chars, random=True),
    Family("cr-only", _TEXT, f_cr_only),
    Family("bom-only", _PLAIN, f_bom_only),
    Family("whitespace", _ALL, f_whitespace, random=True),
    Family("truncated-head", _ALL, f_truncated_head, random=True),
    Family("shuffled", _ALL, f_shuffled, random=True),
    Family("garbage-tail", _ALL, f_garbage_tail, random=True),
    Family("duplicated", _ALL, f_duplicated),
    Family("ooxml-missing-types", _OOXML, f_ooxml_missing_types),
    Family("ooxml-no-text", _OOXML, f_ooxml_no_text),
    Family("zip-of-text", _OOXML, f_zip_of_text, random=True),
    Family("pdf-bad-xref", (".pdf",), f_pdf_bad_xref, random=True),
    Family("pdf-no-text", (".pdf",), f_pdf_no_text),
    Family("pdf-header-only", (".pdf",), f_pdf_header_only),
    Family("pdf-many-pages", (".pdf",), f_pdf_many_pages, heavy=True),
    Family("eml-headers-only", (".eml",), f_eml_headers_only),
    Family("eml-bad-base64", (".eml",), f_eml_bad_base64),
    Family("eml-giant-header", (".eml",), f_eml_giant_header, heavy=True),
    Family("eml-attachment-only", (".eml",), f_eml_attachment_only),
    Family("html-script-only", _HTML, f_html_script_only),
    Family("html-unclosed", _HTML, f_html_unclosed, random=True),
    Family("html-huge-attribute", _HTML, f_html_huge_attribute, heavy=True),
    Family("md-unclosed-fence", (".md",), f_md_unclosed_fence),
]


def _content_slots(count: int, heavy_cap: int) -> Iterator[tuple[Family, str, int]]:
    """``count`` (family, suffix, round) slots: every family once (suffixes rotating), then every
    (family, suffix) pair, then randomized families again until ``count``; heavy ones capped."""
    heavy_used: dict[str, int] = {}
    made = 0
    rnd = 0
    while made < count:
        progressed = False
        for k, fam in enumerate(FAMILIES):
            if rnd >= len(fam.exts) and not fam.random:
                continue
            if fam.heavy and heavy_used.get(fam.name, 0) >= heavy_cap:
                continue
            ext = fam.exts[(k + rnd) % len(fam.exts)]
            if fam.heavy:
                heavy_used[fam.name] = heavy_used.get(fam.name, 0) + 1
            yield fam, ext, rnd
            made += 1
            progressed = True
            if made >= count:
                return
        rnd += 1
        if not progressed:
            raise AssertionError("no family can make more files")


# --------------------------------------------------------------------------------------------
# Hostile names and special entries


#: Good content under hostile names, most telling first: each must be indexed like any other file.
HOSTILE_NAMES: list[bytes] = [
    b"latin1-caf\xe9.txt",
    b"newline\nin-name.txt",
    b"\x1b[7mansi-escape.txt",
    b"L" * 240 + b".txt",
    b"tab\tand\rcr.md",
    b"invalid-\xff\xfe-bytes.html",
    b"[glob]*?.txt",
    "caf\u00e9-nfc.txt".encode(),
    "cafe\u0301-nfd.txt".encode(),
    b"-leading-dash.pdf",
    b" leading and trailing spaces .txt",
    b'quote\'s "and" back\\slash.docx',
    b"percent%2Fslash%00.txt",
    b"#hash?query&amp;.html",
    "rtl-\u202eevil.txt".encode(),
    "zero\u200bwidth.md".encode(),
    "emoji-\U0001f600.txt".encode(),
    "\u65e5\u672c\u8a9e.txt".encode(),
    b"UPPER.PDF",
    b"Mixed.DocX",
    b"..double-dot.txt",
    b"\x01\x02\x03ctrl.txt",
    b"del\x7f.txt",
    b"CON.txt",
    b"Case.txt",
    b"case.txt",
    "\u00e9".encode() * 120 + b".txt",
    b"sjis-\x82\xa0.txt",
    b"overlong-\xc0\xaf.txt",
    b"lone-continuation-\x80.xlsx",
    b"folder.pdf/inside.txt",
    b"deep/" + b"d/" * 100 + b"bottom.txt",
    b"/".join([b"p" * 200] * 17) + b"/long-path.txt",
    b"collide-\xfc.txt",
    b"collide-\\xfc.txt",
    b"hardlink.txt",
]

#: Specials, most telling first: (name, kind). Hostile names appear here too, printed by the CLI.
SPECIALS: list[tuple[bytes, str]] = [
    (b"pipe.txt", "fifo"),
    (b"loop-self.txt", "symlink-loop"),
    (b"dangling.pdf", "symlink-dangling"),
    (b"outside-secret.txt", "symlink-outside"),
    (b"unreadable.txt", "unreadable"),
    (b"socket.txt", "socket"),
    (b"loop-a.md", "symlink-loop-pair"),
    (b"link-to-good.txt", "symlink-inside"),
    (b"dotdot-escape.txt", "symlink-dotdot"),
    (b"outside-dir", "symlink-dir-outside"),
    (b"etc-passwd.txt", "symlink-etc-passwd"),
    (b"dev-zero.txt", "symlink-dev-zero"),
    (b"pipe-noext", "fifo"),
    (b"null-device.txt", "device"),
    (b"locked-dir/inside.txt", "unreadable-dir"),
    (b"write-only.md", "unreadable"),
    (b"link-to-fifo.txt", "symlink-to-fifo"),
    (b"dir-loop", "symlink-dir-loop"),
    (b"pipe-\x1b[7m-forged\nline.txt", "fifo"),
]


def _join(root: Path, rel: bytes) -> bytes:
    return os.path.join(os.fsencode(root), rel)


def _write(root: Path, rel: bytes, data: bytes, sparse: int = 0) -> None:
    path = _join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
        if sparse:
            f.truncate(sparse)


def _chmod_blocks_reads(dest: Path) -> bool:
    """Whether removing read permission stops this process reading a file (not as root)."""
    probe = dest / ".probe"
    probe.write_bytes(b"x")
    probe.chmod(0)
    try:
        with probe.open("rb"):
            return False
    except PermissionError:
        return True
    finally:
        probe.chmod(0o644)
        probe.unlink()


class _Builder:
    def __init__(self, dest: Path, seed: int) -> None:
        self.manifest = Manifest(dest, seed)
        self.root = self.manifest.root
        self.seed = seed

    def rng(self, *parts: object) -> random.Random:
        return random.Random(":".join(map(str, (self.seed, *parts))))

    def add(self, rel: bytes, kind: str, expect: str, malformed: bool, note: str = "") -> None:
        self.manifest.entries.append(Entry(rel, kind, expect, malformed, note))

    def file(self, rel: bytes, data: bytes, kind: str, expect: str, malformed: bool, sparse: int = 0) -> None:
        _write(self.root, rel, data, sparse)
        self.add(rel, kind, expect, malformed)


def build_corpus(
    dest: Path,
    bad: int = 1000,
    good: int = 100,
    seed: int = 0,
    *,
    giant_chars: int = 1_500_000,
    bomb_bytes: int = 30_000_000,
    max_file_bytes: int = _DEFAULT_MAX_FILE_BYTES,
) -> Manifest:
    """Write ``good`` good files and ``bad`` malformed entries under ``dest/corpus``.

    Of the malformed entries, up to a quarter are special entries (each kind once, most telling
    first), up to a quarter hostile names (good content), the rest malformed content: every family once, then
    every (family, suffix) pair, then new random damage. Costly families (giant lines, bombs,
    sparse files over ``max_file_bytes``) are capped at ``max(1, bad // 400)`` files each.
    ``giant_chars`` sizes the giant single lines, ``bomb_bytes`` what a zip or flate bomb expands to.
    """
    dest.mkdir(parents=True, exist_ok=True)
    b = _Builder(dest, seed)
    m = b.manifest
    b.root.mkdir(parents=True, exist_ok=False)
    m.secret.parent.mkdir(parents=True, exist_ok=True)
    m.secret.write_text(f"{SECRET_MARKER}\nThis file lies outside the corpus root.\n")
    (m.secret.parent / "also-outside.txt").write_text(f"{SECRET_MARKER} (beside it)\n")

    # Bases to damage: the demo's real files, then two generated ones per type (a generated one last).
    bases: dict[str, list[bytes]] = {}
    for ext in ALL_EXTS:
        demo = _DEMO_GOOD.get(".html" if ext == ".htm" else ext)
        found = [(DEMO_CORPUS / demo).read_bytes()] if demo and (DEMO_CORPUS / demo).is_file() else []
        bases[ext] = found + [good_bytes(ext, b.rng("base", ext, i)) for i in range(2)]
    ctx = _Ctx(bases, m.secret, giant_chars, bomb_bytes, max_file_bytes)

    # Good files: round-robin over the types; the first of each type is the demo's real file.
    first_good: dict[str, bytes] = {}
    for i in range(good):
        ext = ALL_EXTS[i % len(ALL_EXTS)]
        demo = _DEMO_GOOD.get(ext)
        if i < len(ALL_EXTS) and demo and (DEMO_CORPUS / demo).is_file():
            data = (DEMO_CORPUS / demo).read_bytes()
        else:
            data = good_bytes(ext, b.rng("good", i))
        rel = b"good/%s/good-%04d%s" % (ext[1:].encode(), i, ext.encode())
        b.file(rel, data, f"good:{ext}", GOOD, malformed=False)
        first_good.setdefault(ext, rel)

    n_special = min(len(SPECIALS), bad // 4)
    n_names = min(len(HOSTILE_NAMES), bad // 4)
    _specials(b, n_special, first_good)
    _names(b, n_names, first_good)
    heavy_cap = max(1, bad // 400)
    n_content = bad - sum(e.malformed for e in m.entries)
    for i, (fam, ext, rnd) in enumerate(_content_slots(n_content, heavy_cap)):
        made = fam.make(ctx, b.rng("bad", fam.name, ext, rnd, i), ext)
        suffix = ext if made.ext is None else made.ext
        rel = b"bad/%s/%04d%s" % (fam.name.encode(), i, suffix.encode())
        b.file(rel, made.data, f"{fam.name}:{ext}", BAD, malformed=True, sparse=made.sparse)
    return m


def _names(b: _Builder, count: int, first_good: dict[str, bytes]) -> None:
    for i, name in enumerate(HOSTILE_NAMES[:count]):
        rel = b"names/" + name
        if name == b"hardlink.txt":
            target = first_good.get(".txt")
            if target is None:
                continue
            path = _join(b.root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.link(_join(b.root, target), path)
            b.add(rel, "name:hardlink", GOOD, malformed=True)
            continue
        ext = os.path.splitext(name)[1].decode("latin-1").lower()
        data = good_bytes(ext if ext in _GOOD_MAKERS else ".txt", b.rng("name", i))
        note = "escaped-name collision with its pair" if name.startswith(b"collide-") else ""
        _write(b.root, rel, data)
        b.add(rel, "name:" + _name_kind(name), GOOD, malformed=True, note=note)


def _name_kind(name: bytes) -> str:
    try:
        text = name.decode()
    except UnicodeDecodeError:
        return "not-utf8"
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        return "control-chars"
    if len(name) > 200:
        return "long"
    return "odd-chars" if text.isascii() else "unicode"


def _specials(b: _Builder, count: int, first_good: dict[str, bytes]) -> None:
    m = b.manifest
    blocks = _chmod_blocks_reads(m.dest)
    if not blocks:
        m.notes.append(
            "running as root (or with CAP_DAC_OVERRIDE): chmod 000 does not stop reads, so unreadable "
            "files and folders are expected BAD (either outcome) instead of SPECIAL"
        )
    root = os.fsencode(b.root)
    sp = os.path.join(root, b"special")
    os.makedirs(sp, exist_ok=True)
    outside = os.fsencode(m.secret.parent)
    for name, kind in SPECIALS[:count]:
        rel = b"special/" + name
        path = os.path.join(root, rel)
        expect = SPECIAL
        note = ""
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "symlink-loop":
            os.symlink(name, path)
        elif kind == "symlink-loop-pair":
            os.symlink(b"loop-b.md", path)
            os.symlink(name, os.path.join(sp, b"loop-b.md"))
            b.add(b"special/loop-b.md", kind, SPECIAL, malformed=True)
        elif kind == "symlink-dangling":
            os.symlink(b"does-not-exist.pdf", path)
        elif kind == "symlink-outside":
            os.symlink(os.fsencode(m.secret), path)
        elif kind == "symlink-inside":
            os.symlink(b"../" + first_good.get(".txt", b"good/txt/none.txt"), path)
        elif kind == "symlink-dotdot":
            os.symlink(b"../../outside/secret.txt", path)
        elif kind == "symlink-dir-outside":
            os.symlink(outside, path)
        elif kind == "symlink-etc-passwd":
            os.symlink(b"/etc/passwd", path)
        elif kind == "symlink-dev-zero":
            os.symlink(b"/dev/zero", path)
        elif kind == "symlink-to-fifo":
            os.symlink(b"pipe.txt", path)
        elif kind == "symlink-dir-loop":
            os.symlink(b".", path)
        elif kind == "socket":
            if not _make_socket(sp, name):
                m.notes.append("could not create a unix socket here: no socket entry")
                continue
        elif kind == "device":
            try:
                os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
            except OSError as exc:
                m.notes.append(f"could not create a device node ({exc.strerror}): no device entry")
                continue
        elif kind == "unreadable":
            _write(b.root, rel, good_bytes(os.path.splitext(name)[1].decode(), b.rng("special", name)))
            os.chmod(path, 0o200 if name.startswith(b"write-only") else 0)
            m.locked.append(rel)
            if not blocks:
                expect, note = BAD, "readable despite chmod: running as root"
        elif kind == "unreadable-dir":
            _write(b.root, rel, good_bytes(".txt", b.rng("special", name)))
            os.chmod(os.path.dirname(path), 0)
            m.locked.append(os.path.dirname(rel))
            if not blocks:
                expect, note = BAD, "readable despite chmod: running as root"
        else:  # pragma: no cover - a new kind without a maker
            raise AssertionError(kind)
        b.add(rel, kind, expect, malformed=True, note=note)


def _make_socket(folder: bytes, name: bytes) -> bool:
    """Bind a unix socket at ``folder/name`` (from inside the folder: socket paths are short)."""
    cwd = os.getcwd()
    try:
        os.chdir(folder)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.bind(name)
        return True
    except OSError:
        return False
    finally:
        os.chdir(cwd)


def remove_corpus(manifest: Manifest) -> None:
    """Delete a corpus folder, permissions restored first."""
    manifest.unlock()
    shutil.rmtree(manifest.dest, ignore_errors=True)
