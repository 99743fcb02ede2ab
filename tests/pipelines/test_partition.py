"""Partitioning every supported format, and refusing bad input with a reason."""

from __future__ import annotations

import io
import random
import subprocess
import sys
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


def _shift_xref(pdf: bytes, by: int) -> bytes:
    """The PDF with every xref offset off by ``by`` bytes (a common damage that pdfminer gives up on)."""
    head, _, rest = pdf.rpartition(b"\nxref\n")
    lines = rest.split(b"\n")
    for i, line in enumerate(lines):
        parts = line.split(b" ")
        if len(parts) >= 3 and parts[2].startswith(b"n") and len(parts[0]) == 10:
            lines[i] = b"%010d" % (int(parts[0]) + by) + line[10:]
    return head + b"\nxref\n" + b"\n".join(lines)


def test_a_pdf_with_wrong_xref_offsets_is_read_by_the_lenient_parser() -> None:
    import pikepdf

    out = io.BytesIO()
    pikepdf.open(CORPUS / "handbook/code-of-conduct.pdf").save(
        out, object_stream_mode=pikepdf.ObjectStreamMode.disable, compress_streams=False
    )
    damaged = _shift_xref(out.getvalue(), 17)
    assert damaged != out.getvalue()
    elements, content_type = partition_document(ref_for("c.pdf", len(damaged)), damaged)
    whole, _ = partition_document(ref_for("c.pdf"), out.getvalue())
    assert content_type == "application/pdf" and {e.page_number for e in elements} == {1}
    words = set(" ".join(e.text for e in whole).split())
    assert len(words & set(" ".join(e.text for e in elements).split())) >= 0.9 * len(words)


def test_a_giant_single_line_is_kept_whole_in_bounded_memory() -> None:
    # unstructured classifies an element by running spaCy over its text: unbounded, one
    # 1.5-million-character line took 2.4 GB. A fresh process, so its peak is this parse's.
    script = (
        "import sys\n"
        "from groundwork.offline import configure_offline\n"
        "configure_offline()\n"
        "from groundwork.records import DocumentRef\n"
        "from pipelines.partition import partition_document\n"
        "words = ('leave', 'policy', 'travel', 'claims', 'approved', 'by', 'manager')\n"
        "line = ' '.join(words[i % 7] for i in range(220_000))\n"
        "data = line.encode()\n"
        "elements, _ = partition_document(DocumentRef('s', 'l.txt', 'l.txt', '0', len(data)), data)\n"
        "assert sum(len(e.text) for e in elements) == len(line), 'text lost'\n"
        # VmHWM is this program's own peak; ru_maxrss would carry the forking parent's over exec.
        "print(next(int(x.split()[1]) for x in open('/proc/self/status') if x.startswith('VmHWM')) // 1024)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[2],
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    peak_mib = int(done.stdout.split()[-1])
    assert peak_mib < 1200, f"{peak_mib} MiB"  # loading the parsers takes about 600
