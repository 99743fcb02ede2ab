"""Write the bundled sample corpus under examples/demo/corpus (run once; the output is committed).

Every format Groundwork partitions appears at least once, HR documents carry planted PII that must
never reach the index, and two broken files show failure handling.
"""

from __future__ import annotations

import io
import random
import sys
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "examples" / "demo" / "corpus"

#: Planted PII values: tests assert none of them is stored anywhere.
PLANTED_PII = {
    "PERSON": "Priya Raman",
    "EMAIL_ADDRESS": "priya.raman@example.co.uk",
    "PHONE_INTL": "+44 20 7946 0958",
    "PHONE_MOBILE": "07700 900123",
    "UK_NINO": "JG 10 37 29 A",
    "UK_NHS": "943 476 5919",
    "UK_POSTCODE": "SW1A 2AA",
    "CREDIT_CARD": "4111 1111 1111 1111",
    "IBAN_CODE": "GB82 WEST 1234 5698 7654 32",
}


def text_pdf(title: str, lines: list[str]) -> bytes:
    """A one-page PDF with real text objects (Helvetica), built with pikepdf."""
    import pikepdf
    from pikepdf import Dictionary, Name

    pdf = pikepdf.new()
    font = pdf.make_indirect(Dictionary(Type=Name.Font, Subtype=Name.Type1, BaseFont=Name.Helvetica))
    pdf.add_blank_page(page_size=(612, 792))
    page = pdf.pages[0]
    page.Resources = Dictionary(Font=Dictionary(F1=font))
    ops = ["BT", "/F1 16 Tf", "72 720 Td", "22 TL", f"({_esc(title)}) Tj T*", "/F1 11 Tf", "16 TL"]
    for line in lines:
        ops.append(f"({_esc(line)}) Tj T*")
    ops.append("ET")
    page.Contents = pdf.make_stream("\n".join(ops).encode("latin-1"))
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def _esc(s: str) -> str:
    return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def docx(title: str, sections: list[tuple[str, list[str]]]) -> bytes:
    """A Word document with a title and headed sections."""
    import docx as python_docx

    d = python_docx.Document()
    d.add_heading(title, level=0)
    for heading, paras in sections:
        d.add_heading(heading, level=1)
        for p in paras:
            d.add_paragraph(p)
    out = io.BytesIO()
    d.save(out)
    return out.getvalue()


def pptx(title: str, slides: list[tuple[str, list[str]]]) -> bytes:
    """A slide deck: a title slide, then one bulleted slide per entry."""
    from pptx import Presentation

    prs = Presentation()
    s = prs.slides.add_slide(prs.slide_layouts[0])
    s.shapes.title.text = title
    for heading, bullets in slides:
        s = prs.slides.add_slide(prs.slide_layouts[1])
        s.shapes.title.text = heading
        body = s.placeholders[1].text_frame
        body.text = bullets[0]
        for b in bullets[1:]:
            body.add_paragraph().text = b
    out = io.BytesIO()
    prs.save(out)
    return out.getvalue()


def xlsx(rows: list[list[object]]) -> bytes:
    """A one-sheet workbook."""
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Starters"
    for r in rows:
        ws.append(r)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def eml(sender: str, to: str, subject: str, body: str) -> bytes:
    """An RFC 822 email message."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = "Tue, 03 Nov 2026 09:12:00 +0000"
    msg.set_content(body)
    return bytes(msg)


def build() -> dict[str, bytes]:
    """Every file of the corpus, by path relative to the corpus root."""
    p = PLANTED_PII
    files: dict[str, bytes] = {}
    files["hr/payroll/salary-review-2026.docx"] = docx(
        "Salary Review 2026",
        [
            (
                "Salary bands",
                [
                    "Engineering salary bands for 2026: Engineer L3 GBP 52,000 to 64,000; Senior Engineer L4 GBP "
                    "68,000 to 84,000; Staff Engineer L5 GBP 88,000 to 105,000.",
                    "Bands were benchmarked against the London technology market in September 2026 and rise by "
                    "4.5 percent on average.",
                ],
            ),
            (
                "Individual adjustments",
                [
                    f"{p['PERSON']} (National Insurance number {p['UK_NINO']}) moves from L3 to L4 with effect "
                    "from 1 January 2027; the new salary is GBP 71,500.",
                    f"Payroll will pay the arrears to the account with IBAN {p['IBAN_CODE']}.",
                ],
            ),
        ],
    )
    files["hr/casework/grievance-0142.eml"] = eml(
        "hr.casework@example.co.uk",
        "employee.relations@example.co.uk",
        "Grievance case 0142: hearing arranged",
        f"The grievance hearing for {p['PERSON']} is arranged for 12 November 2026 at the Westminster office, "
        f"postcode {p['UK_POSTCODE']}.\n\nShe can be reached on {p['PHONE_MOBILE']} or by email at "
        f"{p['EMAIL_ADDRESS']}. Her companion will be a trade union representative.\n\n"
        "Under the ACAS code of practice the employee may appeal within five working days of the outcome.\n",
    )
    files["hr/policies/sickness-absence.md"] = (
        "# Sickness absence policy\n\n"
        "## Reporting sickness\n\n"
        "If you are ill and cannot work, call your line manager before 10:00 on the first day of absence. "
        f"If your manager is unavailable, call the HR helpline on {p['PHONE_INTL']}.\n\n"
        "## Fit notes\n\n"
        "For absences longer than seven calendar days you must provide a fit note from your GP. "
        "Self-certification covers the first seven days.\n\n"
        "## Sick pay\n\n"
        "Company sick pay is full pay for the first ten days in any rolling twelve months, then statutory "
        "sick pay applies.\n"
    ).encode()
    files["hr/onboarding/new-starters-q4.xlsx"] = xlsx(
        [
            ["Name", "Start date", "Team", "NI number", "Contact"],
            [p["PERSON"], "2026-11-02", "Payments", p["UK_NINO"], p["EMAIL_ADDRESS"]],
            ["Tomasz Nowak", "2026-11-16", "Platform", "AB 12 34 56 C", "07700 900456"],
        ]
    )
    files["hr/benefits/pension-and-health.pdf"] = text_pdf(
        "Pension and private health cover",
        [
            "The company pension matches employee contributions up to 6 percent of salary.",
            "Employees are enrolled automatically after three months of service.",
            f"Private health claims for {p['PERSON']} (NHS number {p['UK_NHS']}) are handled by the insurer.",
            f"Reimbursements are paid to card {p['CREDIT_CARD']} within 14 days.",
        ],
    )
    # Broken inputs: recorded as failed, never stop the run.
    files["hr/broken/corrupt-scan.pdf"] = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R" + bytes(
        random.Random(7).randrange(256) for _ in range(2048)
    )
    files["hr/broken/payroll-export.bin"] = bytes(random.Random(11).randrange(256) for _ in range(4096))

    files["handbook/annual-leave.md"] = (
        b"# Annual leave\n\n"
        b"## Entitlement\n\n"
        b"Every employee receives 25 days of paid annual leave per year, plus public holidays. "
        b"After five years of service the entitlement rises to 28 days.\n\n"
        b"## Booking leave\n\n"
        b"Book leave in the HR portal at least two weeks in advance. Up to five unused days can be carried "
        b"over into the first quarter of the next year.\n"
    )
    files["handbook/expenses.html"] = (
        b"<html><head><title>Expenses</title></head><body>"
        b"<h1>Travel and expenses</h1>"
        b"<p>Submit expense claims within 30 days of spending, with a receipt for every item over EUR 25.</p>"
        b"<h2>Travel</h2>"
        b"<p>Book rail travel in standard class. Flights are allowed for journeys over four hours by rail.</p>"
        b"<h2>Meals</h2>"
        b"<p>The daily meal allowance is EUR 45 when travelling on company business.</p>"
        b"</body></html>"
    )
    files["handbook/remote-working.txt"] = (
        b"Remote working\n\n"
        b"Employees may work from home up to three days per week, agreed with their manager.\n\n"
        b"Equipment\n\n"
        b"The company provides a laptop, a monitor and a chair for the home office. Working from another "
        b"country for more than 20 days a year needs approval from the tax team.\n"
    )
    files["handbook/it-security.pptx"] = pptx(
        "IT security essentials",
        [
            (
                "Passwords and MFA",
                [
                    "Use a password manager",
                    "Multi-factor authentication is mandatory",
                    "Never reuse a password across services",
                ],
            ),
            (
                "Phishing",
                [
                    "Report suspicious email with the Report Phish button",
                    "IT will never ask for your password",
                ],
            ),
        ],
    )
    files["handbook/code-of-conduct.pdf"] = text_pdf(
        "Code of conduct",
        [
            "Treat colleagues, customers and partners with respect.",
            "Declare any gift or hospitality worth more than EUR 100 to the compliance team.",
            "Conflicts of interest must be declared before a decision is taken.",
        ],
    )
    return files


def main() -> int:
    """Write the corpus and print what was written."""
    for rel, data in build().items():
        path = ROOT / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        print(f"{len(data):>8}  {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
