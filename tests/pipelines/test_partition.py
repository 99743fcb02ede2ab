"""Partitioning every supported format, and refusing bad input with a reason."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from groundwork.enums import FailureReason
from groundwork.errors import DocumentError
from groundwork.records import DocumentRef
from pipelines.partition import check_size, partition_document
from tests.conftest import DEMO

CORPUS = DEMO / "corpus"


def ref_for(name: str, size: int = 10) -> DocumentRef:
    return DocumentRef(source="s", source_id=name, uri=f"file:///{name}", version="v", size_bytes=size)


@pytest.mark.parametrize(
    ("rel", "expected_text"),
    [
        ("handbook/annual-leave.md", "25 days of paid annual leave"),
        ("handbook/expenses.html", "meal allowance is EUR 45"),
        ("handbook/remote-working.txt", "three days per week"),
        ("handbook/it-security.pptx", "Multi-factor authentication is mandatory"),
        ("handbook/code-of-conduct.pdf", "Declare any gift or hospitality"),
        ("hr/payroll/salary-review-2026.docx", "Senior Engineer L4"),
        ("hr/onboarding/new-starters-q4.xlsx", "Payments"),
        ("hr/casework/grievance-0142.eml", "ACAS code of practice"),
        ("hr/benefits/pension-and-health.pdf", "matches employee contributions"),
    ],
)
def test_every_supported_format_yields_elements(rel: str, expected_text: str) -> None:
    data = (CORPUS / rel).read_bytes()
    elements, content_type = partition_document(ref_for(Path(rel).name, len(data)), data)
    assert elements, f"{rel} yielded no elements"
    assert any(expected_text in e.text for e in elements)
    assert content_type


def test_text_pdf_yields_elements_with_page_numbers() -> None:
    # Guards the offline spaCy trap: without en_core_web_sm a fast PDF silently yields nothing.
    data = (CORPUS / "handbook/code-of-conduct.pdf").read_bytes()
    elements, content_type = partition_document(ref_for("c.pdf"), data)
    assert content_type == "application/pdf"
    assert len(elements) >= 2
    assert {e.page_number for e in elements} == {1}


def _encrypted_pdf() -> bytes:
    import pikepdf

    src = pikepdf.open(CORPUS / "handbook/code-of-conduct.pdf")
    out = io.BytesIO()
    src.save(out, encryption=pikepdf.Encryption(owner="o", user="secret", R=6))
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("corrupt.pdf", (CORPUS / "hr/broken/corrupt-scan.pdf").read_bytes(), {"no_text", "parse_error"}),
        ("random.docx", bytes(range(256)) * 8, {"parse_error"}),
        ("random.pptx", b"PK\x03\x04" + bytes(range(256)) * 4, {"parse_error"}),
        ("export.bin", bytes(range(256)), {"unsupported_type"}),
        ("noext", b"hello", {"unsupported_type"}),
        ("empty.txt", b"", {"empty"}),
        ("blank.md", b"  \n\n ", {"empty"}),
        ("locked.pdf", _encrypted_pdf(), {"encrypted"}),
        ("locked.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512), {"encrypted"}),
    ],
)
def test_bad_input_is_refused_with_a_reason(name: str, data: bytes, reason: set[str]) -> None:
    with pytest.raises(DocumentError) as err:
        partition_document(ref_for(name, len(data)), data)
    assert err.value.reason in reason
    assert err.value.stage == "partition"
    assert str(err.value)


def test_oversized_file_is_refused_before_reading() -> None:
    with pytest.raises(DocumentError, match="above the 100-byte limit") as err:
        check_size(ref_for("big.pdf", size=101), max_bytes=100)
    assert err.value.reason == "too_large"
    check_size(ref_for("ok.pdf", size=100), max_bytes=100)


def test_an_email_without_mime_headers_keeps_its_utf8_text() -> None:

    raw = (
        "From: Javier Fernández García <j@example.com>\nSubject: Reclamación\n\n"
        "Please call Lucía about my contract.\n"
    ).encode()
    elements, content_type = partition_document(ref_for("complaint.eml", len(raw)), raw)
    text = " ".join(e.text for e in elements)
    assert content_type == "message/rfc822"
    assert "Lucía" in text and "\ufffd" not in text


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (random.Random(7).randbytes(4096), "does not match its .eml suffix"),
        (b"hello\nthis is a note saved with the wrong suffix\n", "no From, To, Subject or Date header"),
    ],
)
def test_a_file_named_eml_that_is_not_an_email_is_refused(raw: bytes, why: str) -> None:
    with pytest.raises(DocumentError, match=why) as caught:
        partition_document(ref_for("message.eml", len(raw)), raw)
    assert caught.value.reason == FailureReason.PARSE_ERROR


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("report.pdf", b"PK\x03\x04 a zip archive named .pdf"),
        ("letter.docx", b"%PDF-1.7 a PDF named .docx"),
        ("notes.txt", random.Random(3).randbytes(2048)),
        ("page.html", b"\x00\x01\x02\x03" * 100),
    ],
)
def test_content_that_does_not_match_its_suffix_is_refused(name: str, raw: bytes) -> None:
    with pytest.raises(DocumentError, match="does not match its") as caught:
        partition_document(ref_for(name, len(raw)), raw)
    assert caught.value.reason == FailureReason.PARSE_ERROR


def test_utf16_text_is_not_taken_for_binary() -> None:
    raw = "Annual leave is 25 days.\n".encode("utf-16")
    elements, _ = partition_document(ref_for("leave.txt", len(raw)), raw)
    assert "25 days" in " ".join(e.text for e in elements)


@pytest.mark.parametrize("name", ["log.txt", "note.eml"])
def test_nul_characters_are_dropped_so_the_text_can_be_stored(name: str) -> None:
    head = b"From: a@example.org\nSubject: log\n\n" if name.endswith(".eml") else b""
    # A few NULs in a mostly textual file (many more and it is refused as binary).
    data = head + b"Disk check passed\x00\x00 on node seven.\n" + b"All services are up.\n" * 20
    elements, _ = partition_document(ref_for(name, len(data)), data)
    text = " ".join(el.text for el in elements)
    assert "\x00" not in text and "Disk check passed" in text
