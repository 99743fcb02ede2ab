"""Partitioning with unstructured: bytes in, typed elements out, or a :class:`DocumentError`."""

from __future__ import annotations

import io
import logging
from typing import Any, Literal

from groundwork.enums import FailureReason, Stage
from groundwork.errors import DocumentError
from groundwork.records import DocumentRef, ParsedElement

logger = logging.getLogger(__name__)

#: File suffixes Groundwork partitions, with the content type it records.
SUPPORTED_TYPES: dict[str, str] = {
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".eml": "message/rfc822",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".pdf": "application/pdf",
}

#: unstructured classifies each element (title, narrative text, ...) by running spaCy over its
#: text. spaCy's memory grows with the text: one 1.5-million-character line took 2.4 GB and 20 s.
#: The classification reads at most this many characters of an element (unstructured's own
#: truncation, at a word boundary); the element's text itself is kept whole.
HEURISTIC_CHARS = 20_000

_OOXML = {".docx", ".pptx", ".xlsx"}
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def suffix_of(name: str) -> str:
    """The lower-cased suffix of a file name, including the dot, or ``""``."""
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def check_size(ref: DocumentRef, max_bytes: int) -> None:
    """Refuse a document above the size limit before its bytes are read."""
    if ref.size_bytes > max_bytes:
        raise DocumentError(
            f"file is {ref.size_bytes:,} bytes, above the {max_bytes:,}-byte limit (partitioning.max_file_bytes)",
            stage=Stage.PARTITION,
            reason=FailureReason.TOO_LARGE,
        )


def partition_document(
    ref: DocumentRef, data: bytes, *, pdf_strategy: Literal["fast", "ocr_only"] = "fast"
) -> tuple[list[ParsedElement], str]:
    """Partition one document into elements; returns the elements and the content type.

    Raises :class:`DocumentError` for an unsupported, empty, encrypted or unreadable file, or one
    that yields no text. Messages name the file type and the parser's error class, never content.
    """
    suffix = suffix_of(ref.filename)
    content_type = SUPPORTED_TYPES.get(suffix)
    if content_type is None:
        shown = suffix or "(no suffix)"
        raise DocumentError(
            f"unsupported file type {shown}; supported: {' '.join(sorted(SUPPORTED_TYPES))}",
            stage=Stage.PARTITION,
            reason=FailureReason.UNSUPPORTED_TYPE,
        )
    if not data.strip():
        raise DocumentError("file is empty", stage=Stage.PARTITION, reason=FailureReason.EMPTY)
    _refuse_encrypted(suffix, data)
    _refuse_type_mismatch(suffix, data)
    if suffix == ".eml":
        _refuse_non_email(data)
        data = declare_utf8(data)

    from unstructured.partition.auto import partition  # heavy: loaded on first use

    bound_heuristics()
    # An e-mail passes its strategy on to its attachments: "auto" would send an attached PDF to
    # hi_res, which needs a hub model, and unstructured then skips the attachment silently.
    strategy = pdf_strategy if suffix in (".pdf", ".eml") else "auto"
    error: str | None = None
    try:
        elements = partition(
            file=io.BytesIO(data), metadata_filename=ref.filename, languages=["eng"], strategy=strategy
        )
    except MemoryError:
        raise  # past the parser process's memory cap: the caller records it as too large
    except Exception as exc:  # parsers raise anything on bad input; the class name is the useful part
        elements, error = [], f"could not be parsed as {suffix}: {type(exc).__name__}"
    parsed = _kept(elements)
    if not parsed and suffix == ".pdf" and strategy == "fast":
        # pdfminer gives up on some damage (an xref table with wrong offsets) that pypdf repairs.
        parsed = _kept(_pdf_fallback(data))
    if error is not None and not parsed:
        raise DocumentError(error, stage=Stage.PARTITION, reason=FailureReason.PARSE_ERROR)
    if not parsed:
        raise DocumentError(
            f"no text could be extracted from this {suffix} file (scanned image or corrupt?)",
            stage=Stage.PARTITION,
            reason=FailureReason.NO_TEXT,
        )
    return parsed, content_type


def _kept(elements: list[Any]) -> list[ParsedElement]:
    """unstructured's elements that hold text, as records. NUL characters (binary debris in a text
    file) cannot be stored in PostgreSQL text: they are dropped."""
    return [
        ParsedElement(
            category=str(getattr(el, "category", "UncategorizedText")),
            text=el.text.replace("\x00", "").strip(),
            page_number=getattr(el.metadata, "page_number", None),
            cells=table_cells(getattr(el.metadata, "text_as_html", None)),
        )
        for el in elements
        if el.text and el.text.replace("\x00", "").strip()
    ]


def _pdf_fallback(data: bytes) -> list[Any]:
    """The text of a PDF read by pypdf in its lenient mode, page by page, classified into elements by
    unstructured's text partitioner; no elements when pypdf cannot read it either."""
    from pypdf import PdfReader
    from unstructured.partition.text import partition_text

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # it narrates every repair
    elements: list[Any] = []
    try:
        for number, page in enumerate(PdfReader(io.BytesIO(data), strict=False).pages, start=1):
            text = page.extract_text() or ""
            if text.strip():
                for el in partition_text(text=text, languages=["eng"]):
                    el.metadata.page_number = number
                    elements.append(el)
    except MemoryError:
        raise
    except Exception:  # as damaged as the first parser found it
        return []
    return elements


def bound_heuristics(max_chars: int = HEURISTIC_CHARS) -> None:
    """Make unstructured's element classification read at most ``max_chars`` characters of an element.

    unstructured truncates what its spaCy pipeline reads to the model's ``max_length`` (and logs a
    warning for each such element, silenced here: the truncation is intended).
    """
    from unstructured.nlp import tokenize

    nlp = tokenize._get_nlp()
    if nlp.max_length != max_chars:
        nlp.max_length = max_chars
        logging.getLogger(tokenize.__name__).addFilter(
            lambda record: "exceeds spaCy max_length" not in record.getMessage()
        )


def declare_utf8(message: bytes) -> bytes:
    """An e-mail with no MIME headers but UTF-8 text, declared as UTF-8.

    Mail clients write such messages; without a charset the e-mail partitioner reads every non-ASCII
    character as two replacement characters, so "Fernández" would be stored as "Fern\ufffd\ufffdndez".
    """
    head = message.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0].lower()
    if b"content-type:" in head or message.isascii():
        return message
    try:
        message.decode("utf-8")
    except UnicodeDecodeError:
        return message
    return (
        b"MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n"
        + message
    )


#: Header fields of which an e-mail message (RFC 5322) has at least one.
_EMAIL_FIELDS = frozenset(
    {"from", "to", "cc", "subject", "date", "message-id", "received", "return-path", "reply-to", "sender"}
)
_CONTROL = bytes(c for c in range(32) if chr(c) not in "\t\n\r\f")


_TEXT_TYPES = frozenset({".txt", ".md", ".html", ".htm", ".eml"})
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def _looks_binary(data: bytes) -> bool:
    """Whether the start of ``data`` is binary rather than text: more than 2% control characters."""
    head = data[:65_536]
    if head.startswith(_UTF16_BOMS):
        return False
    return len(head.translate(None, _CONTROL)) < 0.98 * len(head)


def _refuse_type_mismatch(suffix: str, data: bytes) -> None:
    """Refuse a file whose content is not what its suffix says: the parser would read garbage."""
    if suffix == ".pdf":
        wrong = b"%PDF-" not in data[:1024]
    elif suffix in _OOXML:
        wrong = not data.startswith(b"PK\x03\x04")
    else:
        wrong = suffix in _TEXT_TYPES and _looks_binary(data)
    if wrong:
        raise DocumentError(
            f"content does not match its {suffix} suffix (the file's bytes are of another type)",
            stage=Stage.PARTITION,
            reason=FailureReason.PARSE_ERROR,
        )


def _refuse_non_email(data: bytes) -> None:
    """Refuse an ``.eml`` file with no header of an e-mail message."""
    from email.parser import BytesHeaderParser

    head = data[:65_536]
    fields = {k.lower() for k in BytesHeaderParser().parsebytes(head)}
    if not fields & _EMAIL_FIELDS:
        raise DocumentError(
            "not an e-mail message: the .eml file has no From, To, Subject or Date header",
            stage=Stage.PARTITION,
            reason=FailureReason.PARSE_ERROR,
        )


def _refuse_encrypted(suffix: str, data: bytes) -> None:
    if suffix == ".pdf":
        from pypdf import PdfReader
        from pypdf.errors import PyPdfError

        try:
            encrypted = PdfReader(io.BytesIO(data), strict=False).is_encrypted
        except (PyPdfError, ValueError, OSError, KeyError, TypeError):
            return  # let the partitioner report the corruption
        if encrypted:
            raise DocumentError("PDF is encrypted", stage=Stage.PARTITION, reason=FailureReason.ENCRYPTED)
    elif suffix in _OOXML and data.startswith(_OLE_MAGIC):
        # Password-protected Office files are OLE containers, not zip archives.
        raise DocumentError(
            f"{suffix} file is password-protected", stage=Stage.PARTITION, reason=FailureReason.ENCRYPTED
        )


def table_cells(html: str | None) -> tuple[tuple[str, ...], ...] | None:
    """A table's rows of cell texts from the HTML unstructured attaches to Table elements."""
    if not html:
        return None
    from lxml import html as lxml_html
    from lxml.etree import ParserError

    try:
        root = lxml_html.fragment_fromstring(html, create_parent="div")
    except (ParserError, ValueError):
        return None
    rows = tuple(
        tuple(" ".join(cell.text_content().split()) for cell in tr.xpath("./th|./td"))
        for tr in root.iter("tr")
    )
    rows = tuple(r for r in rows if any(r))
    return rows or None
