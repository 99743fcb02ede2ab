"""Redaction: each required entity type is replaced by its placeholder, and only counts are kept."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from groundwork.settings import RedactionConfig
from pipelines.detectors import policy_version
from pipelines.identifiers import au_tfn_valid, checked_id_recognizers, luhn_valid, nz_ird_valid
from pipelines.redact import Redactor

CASES = [
    ("PERSON", "The case was raised by Priya Raman last week.", "Priya Raman"),
    ("EMAIL_ADDRESS", "Write to priya.raman@example.co.uk with questions.", "priya.raman@example.co.uk"),
    ("PHONE_NUMBER", "Call the helpline on +44 20 7946 0958 today.", "+44 20 7946 0958"),
    ("PHONE_NUMBER", "Her mobile is 07700 900123.", "07700 900123"),
    ("PHONE_NUMBER", "Ring 020 7946 0000 for the office.", "020 7946 0000"),
    ("CREDIT_CARD", "Card 4111 1111 1111 1111 was charged.", "4111 1111 1111 1111"),
    ("IBAN_CODE", "Pay to GB82 WEST 1234 5698 7654 32 please.", "GB82 WEST 1234 5698 7654 32"),
    ("UK_NHS", "NHS number 943 476 5919 is on file.", "943 476 5919"),
    ("UK_NINO", "National Insurance number JG 10 37 29 A.", "JG 10 37 29 A"),
    ("UK_POSTCODE", "The office postcode is SW1A 2AA.", "SW1A 2AA"),
]

#: Values only their context makes personal, and the detectors that read names and addresses in context.
IN_CONTEXT = [
    ("Pay it to sort code 20-32-06, account 63029188 please.", ["20-32-06", "63029188"]),
    ("My old debit card 4462 0300 1234 5670 was cancelled.", ["4462 0300 1234 5670"]),
    ("What was billed to cc 4758393384861046011 last month?", ["4758393384861046011"]),
    ("Your National Insurance number is QQ 12 34 56 C.", ["QQ 12 34 56 C"]),
    ("PPS 1234567FA is on the form.", ["1234567FA"]),
    ("Send it to Flat 3, 27 Brook Lane, Leeds LS6 2AB by Friday.", ["Flat 3", "27 Brook Lane", "LS6 2AB"]),
    ("Deliver to Karla-Briemer-Straße 81, 69466 Scheinfeld tomorrow.", ["Karla-Briemer-Straße 81", "69466"]),
    ("Mailing address: 1600 Main St Apt 4B, Springfield, IL 62704.", ["1600 Main St", "62704"]),
    ("Call me on +49(0)1893 829291 after six.", ["+49(0)1893 829291"]),
    ("Thanks Oluwaseun, I will tell Siobhán tomorrow.", ["Oluwaseun", "Siobhán"]),
    # Given names the models do not know, alone in a plain sentence, are in the given-name list.
    ("Darragh had given Darragh his address on the form.", ["Darragh"]),
    ("Why is Caoimhin so quiet today?", ["Caoimhin"]),
    # A first name, a middle initial and a surname, which neither model may find whole.
    ("The claim was signed by Frank R Hodge on Monday.", ["Frank", "Hodge", " R "]),
    # An Eircode written with its space needs no context word; a Dutch postcode after a street is read
    # with it, and so are the digits of a postcode before a town.
    ("The inspection is at Bow Street, Dublin 7, D07 X2K4 next week.", ["D07 X2K4"]),
    ("Ons adres is Hannahhof 12, 2523DF, Oosterland sinds mei.", ["Hannahhof 12", "2523DF"]),
    # A phone number with its country calling code and its extension; an identifier whose groups the
    # detectors found apart; a floor before a street line, an Australian street type and a postcode
    # after a state.
    ("You can call +1 (604) 555-0182 x390 after nine.", ["+1", "0182", "x390"]),
    # A North American number with its trunk prefix, though no real number has this exchange.
    ("My number is 1-222-138-7837.", ["1-222-138-7837", "7837"]),
    ("Here's my IRD number: 29-849-927", ["29-849-927", "849", "927"]),
    ("Please post it to Level 1, 58 Casey Esplanade, Southport QLD 4215.", ["Level 1", "58 Casey", "4215"]),
    # Australian and New Zealand numbers in their national formats; a local number with no area code
    # is a phone number after "call" (a spaCy stop word, so no context word for Presidio) or "mobile".
    ("Her mobile is 0412 345 678, or ring the office on (02) 9374 4000.", ["0412 345 678", "9374 4000"]),
    ("Text me on 021 684 9058 when you land in Auckland.", ["021 684 9058", "684 9058"]),
    ("How can we reach you? You can call 25644170 any day.", ["25644170"]),
    ("My mobile 9900.6663 is the one on file.", ["9900.6663", "6663"]),
    # ... after "my number is" or "reach me on"; four digits, a hyphen and four are no year's reference.
    ("My number is 859 3401, thanks.", ["859 3401", "3401"]),
    ("You can reach me on 3358840 most days.", ["3358840"]),
    ("Please text 4913-9775 when you arrive.", ["4913-9775", "9775"]),
    # ... and alone on its line under a sign-off and the sender's name.
    ("Kind regards,\nKeith Vasquez\n1874 2244\n", ["1874 2244", "2244"]),
    # North American numbers whose area codes no real number has, with a bare trunk prefix or an
    # extension.
    ("Her numbers are 1 (696) 472-7273 and 665-876-4293x54898.", ["are 1", "7273", "4293x54898", "665"]),
    # The last word piece of a postcode at the very end of a document ("210" "##6") is part of it.
    ("David Brown\n276 Roberts Range Road\nFlat 31\nWhangarua\nNZ 2106", ["2106", "6"]),
    # A local number with its label after it, as a signature gives it; a floor on the line before
    # its street.
    ("Paige Forbes\n369 Taumanawa Point\nTangirohetapu 8096\n6849058 mobile\n", ["6849058"]),
    ("Please return to Level 8\n1 Stephanie Court\nMatawhero 9701 in case of an issue.", ["Level 8"]),
    # Local numbers after their labels at the start of a signature's lines.
    ("Ronald Miller\nMobile: 04-587-2823\nDesk: 752-5858\nFax: 733-7824\n", ["752-5858", "733-7824"]),
    # An Eircode written without its space, at the end of an address block.
    ("}}Theresa Gray\n}}62 Rattigan Street\n}}Flat 8\n}}Jordon Ville\n}}iran T7356CC", ["T7356CC"]),
    # A postcode of digits alone is one after its label.
    ("My zip code is 62704.", ["62704"]),
    # National identifiers read by their check digit: an IRD number, a SIN and a tax file number
    # written with their separators, and bare ones after a context word.
    ("His social security number is 74-674-607, hers 14 722 629.", ["74-674-607", "14 722 629"]),
    ("My SIN is 130 692 544; the old card said 130692544.", ["130 692 544", "130692544"]),
    ("Quote your TFN 123 456 782 on the form.", ["123 456 782"]),
    ("Inland Revenue has my IRD number as 136410132.", ["136410132"]),
    # A reference number beside one is no reason to leave the identifier.
    ("Case 2025-031877: her SIN is 130 692 544.", ["130 692 544"]),
    # A transcript's speaker named after their role, on every line they speak, though the models see
    # the name on few of them (a one-word name is not spread into the lines' text).
    (
        "[19:03:55] Agent (Marcus): Hello, you're through to Card Services.\n"
        "[19:04:20] Customer: hi\n[19:04:31] Agent (Marcus): Thanks. Your date of birth?\n"
        "[19:05:02] Agent (Marcus): Thank you.\n[19:06:12] Agent (Marcus): That does not match.\n"
        "[19:07:30] Agent (Marcus): Found you.\n",
        ["Marcus"],
    ),
]

#: PII-free technical text that looks like PII to a naive detector.
NOT_PERSONAL = [
    "Example (Linux): run the script.\nWindows (PowerShell): run it the same way.",
    "9.15.1.1. xmlcomment",
    "Returns\nThe number of rows affected.",
    "The mean was 25565.855387 ms over 10 runs.",
    "Connect to 127.0.0.1 and run the query again.",
    "Dispatch date: 06.03.2025",
    "Creating A New Branch From A Tag",
    "See Appendix B Options for the flags.",
    "Set the isolation level 2 before the run; RAID Level 5 is slower.",
    "Figure 3 Short Circuit Evaluation is in Chapter 4 Event Loop.",
    "Grant the role alice SELECT, then let mallory try: getpwnam fails for mallory and memset too.",
    "The callback was called 2500000 times before the last call returned.",
    # A product spaCy alone reads as a person, which the same text writes in lower case as a command.
    "Start Emacs and open the file. If you prefer a terminal, run emacs -nw instead; emacs reads "
    "~/.emacs at start-up.",
    # A UUID is an identifier of a thing: no part of it is a national id, a phone number or a postcode.
    "Mount it by its UUID: add UUID=fe3e1db5-6454-46d6-a14c-071208ebe4b1 /home ext4 defaults 0 2.",
    "The file system's UUID is fe3e1db5-6454-46d6-a14c-071208ebe4b1; blkid prints it.",
    # Numbers with no address, and no postcode label, near them are not postcodes.
    "Position values can range from 1 to 16383; larger numbers are silently set to 16383.",
    "kmail | V:31, I:81 | 23817 | X GUI program (KDE)",
    # A number before a word that labels a phone number elsewhere, not at the end of its line.
    "Raise work_mem from 4194304 (work) memory units when sorts spill.",
    # A label and a number inside a line is not a signature's phone line.
    "Raise the limit (office: 4194 entries, home: 8096) before the import.",
    # Nine digits that pass a tax file number's check, bare and with no context word: a size.
    "The block size is 123456782 bytes.",
    "The cache holds 136410132 entries.",
    # A year and a number is a reference, not a phone number; a team's name under a sign-off is no
    # sender's name with a number under it.
    "Reference 2025-031877 was closed.",
    "Invoice 2024-5561 and case 2019-0042 are still open.",
    "Regards,\nThe build team\n2024 results below",
]


@pytest.mark.parametrize(("entity", "text", "value"), CASES)
def test_entity_is_replaced_by_its_placeholder(
    redactor: Redactor, entity: str, text: str, value: str
) -> None:
    out, counts = redactor.redact(text)
    assert value not in out
    assert f"<{entity}>" in out, out
    assert counts[entity] >= 1


@pytest.mark.parametrize(
    "text",
    [
        "Contact jane.doe@corp.internal today.",
        "Email jane.doe@corp.example about the pension",
        "write to j.smith+hr@payroll.acme.local, or call",
    ],
)
def test_an_email_at_an_internal_domain_is_redacted_whole(redactor: Redactor, text: str) -> None:
    # Presidio's own recognizer accepts public top-level domains only: "jane" alone was redacted.
    redacted, counts = redactor.redact(text)
    assert "@" not in redacted and counts["EMAIL_ADDRESS"] == 1


def test_text_without_pii_is_unchanged(redactor: Redactor) -> None:
    text = "Every employee receives 25 days of paid annual leave per year."
    out, counts = redactor.redact(text)
    assert out == text
    assert not counts


def test_batch_keeps_order_and_counts_per_text(redactor: Redactor) -> None:
    results = redactor.redact_many(
        ["Send it to a@example.com now.", "Nothing here.", "Card 4111 1111 1111 1111."]
    )
    assert [r[0] for r in results] == [
        "Send it to <EMAIL_ADDRESS> now.",
        "Nothing here.",
        "Card <CREDIT_CARD>.",
    ]
    assert [dict(r[1]) for r in results] == [{"EMAIL_ADDRESS": 1}, {}, {"CREDIT_CARD": 1}]


def test_table_name_columns_are_redacted_and_rows_keep_headers(redactor: Redactor) -> None:
    from groundwork.records import ParsedElement

    table = ParsedElement(
        "Table",
        "raw text is replaced",
        cells=(
            ("Name", "Team", "NI number"),
            ("Tomasz Nowak", "Platform", "AB 12 34 56 C"),
            ("Ola Berg", "Payments", "JG 10 37 29 A"),
        ),
    )
    [(elements, counts)] = redactor.redact_documents([[table]])
    assert elements[0].text.splitlines() == [
        "Name: <PERSON>; Team: Platform; NI number: <UK_NINO>",
        "Name: <PERSON>; Team: Payments; NI number: <UK_NINO>",
    ]
    assert elements[0].cells is None
    assert counts == {"PERSON": 2, "UK_NINO": 2}


def test_a_name_found_in_one_document_is_redacted_in_all(redactor: Redactor) -> None:
    from groundwork.records import ParsedElement

    docs = [
        [ParsedElement("NarrativeText", "The grievance hearing for Priya Raman is on Tuesday.")],
        [
            ParsedElement(
                "NarrativeText", "Private health claims for Priya Raman (ref 12) are handled. Priya agreed."
            )
        ],
    ]
    (first, c1), (second, c2) = redactor.redact_documents(docs)
    assert "Priya" not in first[0].text and "Priya" not in second[0].text
    assert c1["PERSON"] == 1
    assert c2["PERSON"] == 2


def test_a_name_spread_from_another_document_takes_the_rest_of_the_name_beside_it(redactor: Redactor) -> None:
    """ "Damian" found in one document and spread to another, where neither model read "Damian
    Parsons" (a development file's sentence): the surname beside the spread name goes with it."""
    missed = (
        "Damian Parsons of The Long-Term Care ETF is the CEO of the year. ABC Business considered several"
        " other influential CEOs for this year's honor, including Barry Lewis of Roth Ch Acquisition V Co.,"
        " Sera Prognostics Inc.'s Kimberley Webb, Carolyn Connor of Berkshire Hathaway's, Matthew McDonald"
        " of KEIWA Incorporated, and Rite Aid Corporation's Aimee Webster."
    )
    docs = [[_paragraph("The grievance hearing for Damian Kowalski is on Tuesday.")], [_paragraph(missed)]]
    _, (second, counts) = redactor.redact_documents(docs)
    assert "Damian" not in second[0].text and "Parsons" not in second[0].text, second[0].text
    assert second[0].text.startswith("<PERSON> of The Long-Term Care ETF")
    assert counts["PERSON"] == 6


def test_a_name_found_up_to_its_middle_initial_takes_its_surname() -> None:
    from pipelines.names import join_name_parts
    from pipelines.spans import Span, SpanSource, apply

    # The tagger read "Clive I" of "Clive I Perry" (a development file's chat line).
    text = "Bot: What's the name on the account? User: Clive I Perry"
    found = [Span(text.index("Clive"), text.index(" Perry"), "PERSON", 0.84, SpanSource.TAGGER)]
    out, counts = apply(text, found + join_name_parts(text, found))
    assert out == "Bot: What's the name on the account? User: <PERSON>" and counts == {"PERSON": 1}
    # The pronoun after a name is no initial: a lower-case word after it is not taken.
    text = "Thanks Clive I will call back."
    found = [Span(text.index("Clive"), text.index(" will"), "PERSON", 0.84, SpanSource.TAGGER)]
    assert apply(text, found + join_name_parts(text, found))[0] == "Thanks <PERSON> will call back."


def test_a_one_word_name_takes_a_possessive_surname_beside_it() -> None:
    from pipelines.names import join_name_parts
    from pipelines.spans import Span, SpanSource, apply

    text = "They sang the verses from Isla Boyd's Cautionary Tales."
    found = [Span(text.index("Isla"), text.index(" Boyd"), "PERSON", 0.54, SpanSource.TAGGER)]
    assert apply(text, found + join_name_parts(text, found))[0] == (
        "They sang the verses from <PERSON>'s Cautionary Tales."
    )
    # A hyphenated word or an apostrophe that is not a possessive stays outside the name.
    text = "Ask Isla Boyd-like questions. Ask Isla Boyd'ye."
    found = [Span(m, m + 4, "PERSON", 0.54, SpanSource.TAGGER) for m in (4, text.index("Isla", 10))]
    assert apply(text, found + join_name_parts(text, found))[0] == (
        "Ask <PERSON> Boyd-like questions. Ask <PERSON> Boyd'ye."
    )


def test_the_taggers_threads_sleep_between_batches(redactor: Redactor) -> None:
    """onnxruntime's threads spin after each batch by default; beside Presidio and spaCy, which run in
    the calling thread at the same time, spinning threads take the CPU they need."""
    tagger = redactor.detector._tagger
    assert tagger is not None
    options = tagger.model.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


@pytest.mark.parametrize(("text", "values"), IN_CONTEXT)
def test_values_personal_in_context_are_redacted(redactor: Redactor, text: str, values: list[str]) -> None:
    [out] = [
        redacted for elements, _ in redactor.redact_documents([[_paragraph(text)]]) for redacted in elements
    ]
    assert not [v for v in values if v in out.text], out.text


@pytest.mark.parametrize("text", NOT_PERSONAL)
def test_technical_text_is_left_alone(redactor: Redactor, text: str) -> None:
    [(elements, counts)] = redactor.redact_documents([[_paragraph(text)]])
    assert not counts, (elements[0].text, counts)


def test_a_field_label_is_never_spread_as_a_name(redactor: Redactor) -> None:
    from groundwork.records import ParsedElement

    doc = [
        ParsedElement("NarrativeText", "Customer: Mrs Svetlana Ivanova-Hughes"),
        ParsedElement("NarrativeText", "Customer: yes please"),
    ]
    [(elements, _)] = redactor.redact_documents([doc])
    assert elements[1].text == "Customer: yes please"
    assert "Svetlana" not in elements[0].text


def _paragraph(text: str):  # type: ignore[no-untyped-def]
    from groundwork.records import ParsedElement

    return ParsedElement("NarrativeText", text)


def test_a_word_the_batch_mostly_uses_otherwise_is_not_a_person() -> None:
    from pipelines.names import drop_common_words
    from pipelines.spans import Span, SpanSource, Unit

    # "Git" opening a sentence read as a name, beside many uses of "git" as a command: not a person.
    # "Marta", found in two of her three mentions, stays.
    text = "Git stores snapshots. " + "Run git commit. " * 6 + "Marta wrote it. Ask Marta. Marta agreed."
    marta = [i for i in range(len(text)) if text.startswith("Marta", i)]
    unit = Unit(text, [Span(0, 3, "PERSON", 0.9, SpanSource.SPACY)])
    unit.spans += [Span(i, i + 5, "PERSON", 0.9, SpanSource.TAGGER) for i in marta[:2]]
    drop_common_words([unit], text)
    assert [text[s.start : s.end] for s in unit.spans] == ["Marta", "Marta"]


def test_an_occurrence_two_detectors_found_counts_once() -> None:
    from pipelines.names import drop_common_words
    from pipelines.spans import Span, SpanSource, Unit

    # "Sendmail" five times, read as a name once, by both models: one occurrence of five is under a
    # quarter, however many detectors read it.
    text = "Sendmail queues it. " + "Then Sendmail retries. " * 4
    unit = Unit(
        text, [Span(0, 8, "PERSON", 0.9, SpanSource.SPACY), Span(0, 8, "PERSON", 0.8, SpanSource.TAGGER)]
    )
    drop_common_words([unit], text)
    assert unit.spans == []


def test_a_word_mentioned_often_must_be_read_as_a_name_in_half_its_mentions() -> None:
    from pipelines.names import drop_common_words
    from pipelines.spans import Span, SpanSource, Unit

    # A product named as the subject of its manual's sentences, read as a person in a third of its 30
    # mentions, is not a person; a colleague found in 20 of her 24 mentions is.
    text = "Exim sends it. " * 30 + "Marta agreed. " * 24
    exim = [i for i in range(len(text)) if text.startswith("Exim", i)]
    marta = [i for i in range(len(text)) if text.startswith("Marta", i)]
    spans = [Span(i, i + 4, "PERSON", 0.8, SpanSource.TAGGER) for i in exim[:10]]
    spans += [Span(i, i + 5, "PERSON", 0.8, SpanSource.TAGGER) for i in marta[:20]]
    unit = Unit(text, spans)
    drop_common_words([unit], text)
    assert {text[s.start : s.end] for s in unit.spans} == {"Marta"}
    assert len(unit.spans) == 20


def test_a_name_does_not_end_in_a_lower_case_word() -> None:
    from pipelines.names import without_lower_case_tail
    from pipelines.spans import Span

    def trimmed(text: str, value: str) -> str:
        start = text.index(value)
        span = without_lower_case_tail(text, Span(start, start + len(value), "PERSON", 0.8))
        return text[span.start : span.end]

    assert trimmed("If set, Exim behaves as a client.", "Exim behaves") == "Exim"
    assert trimmed("If set, Exim behaves as a client.", "Exim behaves as") == "Exim"
    # particles, capitals beyond ASCII and initials stay; so does a text written without capitals
    assert trimmed("Met Zoë West, van Dijk.", "Zoë West, van") == "Zoë West, van"
    assert trimmed("Called Ana Anita Čeč today.", "Ana Anita Čeč") == "Ana Anita Čeč"
    assert trimmed("Ask Clive I Perry.", "Clive I Perry") == "Clive I Perry"
    assert trimmed("ask sarah hudson about it", "sarah hudson") == "sarah hudson"


def test_only_listed_given_names_written_as_names_are_found() -> None:
    from pipelines.given_names import given_name_spans, given_names

    text = (
        "Darragh met Siobhan and Caoimhin. Will Mark Grant it in May? darragh DARRAGH Darraghs "
        "darragh@example.org /home/Darragh <Darragh> O'Darragh Jean-Darragh. Como Isto Funciona"
    )
    found = [text[s.start : s.end] for s in given_name_spans(text)]
    assert found == ["Darragh", "Siobhan", "Caoimhin"]
    # English words are not in the list, though people are named so, nor other languages' stop words
    assert not {"Will", "Mark", "Grant", "May", "Chose", "Isto", "Haben"} & given_names()


def test_a_capitalised_term_the_batch_also_writes_in_lower_case_is_not_a_person() -> None:
    from pipelines.names import drop_lower_case_terms
    from pipelines.spans import Span, SpanSource, Unit

    text = (
        "Fontconfig reads its files at start-up; install fontconfig first. See the Manual Page: "
        "each page of the manual says so. Ask Mark, who will mark it. Ask Priya Raman. "
        "Mail priya@example.org or see /home/raman. The Wiki has more; edit the wiki."
    )

    def span(words: str, source: SpanSource) -> Span:
        start = text.index(words)
        return Span(start, start + len(words), "PERSON", 0.85, source)

    unit = Unit(
        text,
        [
            span("Fontconfig", SpanSource.SPACY),  # "fontconfig" stands alone: a term
            span("Manual Page", SpanSource.SPACY),  # "manual" and "page" both do
            span("Mark", SpanSource.SPACY),  # "mark" does, but the tagger read a name
            span("Mark", SpanSource.TAGGER),
            span("Priya Raman", SpanSource.SPACY),  # only in an e-mail address and a path: kept
            span("Wiki", SpanSource.GIVEN_NAME),  # a listed given name the text writes in lower case
        ],
    )
    drop_lower_case_terms([unit], text)
    assert [(text[s.start : s.end], s.source) for s in unit.spans] == [
        ("Mark", SpanSource.SPACY),
        ("Mark", SpanSource.TAGGER),
        ("Priya Raman", SpanSource.SPACY),
    ]


def test_a_name_part_seen_far_more_often_than_detected_is_not_spread(redactor: Redactor) -> None:
    from pipelines.names import spreadable
    from pipelines.spans import Span, SpanSource, Unit

    text = (
        "Debian Almquist Shell is small. "
        + "Debian packages are built. " * 12
        + "Ask Priya Raman. Priya agreed."
    )
    unit = Unit(text, [Span(0, 21, "PERSON", 0.9, SpanSource.TAGGER)])
    start = text.index("Priya Raman")
    unit.spans.append(Span(start, start + 11, "PERSON", 0.9, SpanSource.TAGGER))
    kept = spreadable({"Debian Almquist Shell", "Debian", "Almquist", "Priya Raman", "Priya"}, [unit], text)
    assert "Debian" not in kept  # 13 occurrences, found once
    assert {"Priya", "Priya Raman", "Almquist"} <= kept  # few occurrences: spread


def test_the_parts_of_a_name_with_an_initial_or_particles_become_one_name() -> None:
    from pipelines.names import join_name_parts
    from pipelines.spans import Span, SpanSource, apply

    # The models found "Janice" and "Richards", "Timo" and "Laon", and "Paulette" alone.
    text = "My name is Janice A Richards; ask Timo A van Laon or Paulette D. Leleu. Then A Test."
    found = [
        Span(text.index(w), text.index(w) + len(w), "PERSON", 0.8, SpanSource.TAGGER)
        for w in ("Janice", "Richards", "Timo", "Laon", "Paulette")
    ]
    out, counts = apply(text, found + join_name_parts(text, found))
    assert out == "My name is <PERSON>; ask <PERSON> or <PERSON>. Then A Test."
    assert counts == {"PERSON": 3}


def test_an_address_over_several_parts_becomes_one_placeholder(redactor: Redactor) -> None:
    [(elements, counts)] = redactor.redact_documents(
        [[_paragraph("Please send it to Lizelaan 5, 6641 PS, Grou by Friday.")]]
    )
    assert elements[0].text == "Please send it to <STREET_ADDRESS> by Friday."
    assert counts == {"STREET_ADDRESS": 1}


def test_a_rural_delivery_number_between_street_and_town_is_part_of_the_address(redactor: Redactor) -> None:
    """New Zealand's "RD 2": the models read the street and the town, and the number between them
    joins them (a development file's sentence, where the " 2, " had been left)."""
    text = (
        "card number 180024732933736 is lost, can you please send a new one to 69 Mitchell Street, "
        "RD 2, Wakakoro 6272? I am in Mokowakahope for a business trip"
    )
    [(elements, _)] = redactor.redact_documents([[_paragraph(text)]])
    assert "send a new one to <STREET_ADDRESS>? I am" in elements[0].text


def test_the_town_before_a_state_and_postcode_is_part_of_the_address() -> None:
    from pipelines.addresses import town_before_region
    from pipelines.spans import Span, SpanSource, apply

    text = (
        "I am in East Tonya, QLD, 2920 now. We moved to Lake Joshua, NC 28401 in May. "
        "The shop is in New Jamesberg, ON K1A 0B1. Ask Support, 2920 times. Version 2, 2920."
    )

    def span(value: str, entity: str) -> Span:
        start = text.index(value)
        return Span(start, start + len(value), entity, 0.9, SpanSource.TAGGER)

    spans = [
        span("QLD, 2920", "STREET_ADDRESS"),
        span("NC 28401", "STREET_ADDRESS"),
        span("K1A 0B1", "POSTCODE"),
    ]
    spans += [span("2920 times", "STREET_ADDRESS"), span("2920.", "POSTCODE")]
    assert apply(text, spans + town_before_region(text, spans))[0] == (
        "I am in <STREET_ADDRESS> now. We moved to <STREET_ADDRESS> in May. The shop is in <STREET_ADDRESS>. "
        # no state or province between the capitalised words and the number: not a town
        "Ask Support, <STREET_ADDRESS>. Version 2, <POSTCODE>"
    )


def test_the_lines_of_an_address_block_below_its_street_are_part_of_it() -> None:
    from pipelines.addresses import address_block
    from pipelines.spans import Span, SpanSource, apply

    def redacted(text: str, street: str) -> str:
        start = text.index(street)
        spans = [Span(start, start + len(street), "STREET_ADDRESS", 0.9, SpanSource.TAGGER)]
        return apply(text, spans + address_block(text, spans))[0]

    # A unit, a town, a state and a blank line, then the postcode that ends the block.
    assert redacted(
        "Mia Chen\n12 Harbour Ridgeway 5/\nNorth Sydney\n\n NSW 2060\nThanks", "12 Harbour Ridgeway"
    ) == ("Mia Chen\n<STREET_ADDRESS>\nThanks")
    # No postcode ends the block: only a floor on the line right below the street goes with it.
    assert redacted("12 Harbour Ridgeway\nLevel 3\nNorth Sydney\nThanks", "12 Harbour Ridgeway") == (
        "<STREET_ADDRESS>\nNorth Sydney\nThanks"
    )
    # A sentence between the street and a number: no address block.
    text = "12 Harbour Ridgeway\nThe totals for the whole of last year:\n2024"
    assert (
        redacted(text, "12 Harbour Ridgeway")
        == "<STREET_ADDRESS>\nThe totals for the whole of last year:\n2024"
    )


def test_address_parts_inside_a_pattern_recognizers_value_keep_its_type() -> None:
    from pipelines.spans import Span, SpanSource, apply

    text = "Pay to GB82 WEST 1234 5698 7654 32 please, at 12 Mill Lane, Leeds LS6 2AB."

    def span(value: str, entity: str, source: str) -> Span:
        start = text.index(value)
        return Span(start, start + len(value), entity, 0.9, source)

    spans = [
        span("GB82 WEST 1234 5698 7654 32", "IBAN_CODE", "IbanRecognizer"),
        # the tagger's postcodes inside the IBAN, joined as an address
        span("GB82", "POSTCODE", SpanSource.TAGGER),
        span("GB82 WEST 1234 5698 7654", "STREET_ADDRESS", SpanSource.ADDRESS_GAP),
        # a street and a postcode joined as one address, though a pattern recognizer found the postcode
        span("12 Mill Lane", "STREET_ADDRESS", SpanSource.TAGGER),
        span("LS6 2AB", "UK_POSTCODE", "PostcodeRecognizer"),
        span("12 Mill Lane, Leeds LS6 2AB", "STREET_ADDRESS", SpanSource.ADDRESS_GAP),
    ]
    assert apply(text, spans)[0] == "Pay to <IBAN_CODE> please, at <STREET_ADDRESS>."


def test_a_unit_numbers_slash_goes_with_its_address() -> None:
    from pipelines.addresses import unit_slash
    from pipelines.spans import Span, SpanSource, apply

    text = "Send it to 460 Kenneth Frontage 116/ North Kerri; the 2016/17 figures"
    spans = [
        Span(text.index("460"), text.index("/"), "STREET_ADDRESS", 0.9, SpanSource.TAGGER),
        Span(text.index("2016"), text.index("2016") + 4, "POSTCODE", 0.9, SpanSource.TAGGER),
    ]
    assert apply(text, spans + unit_slash(text, spans))[0] == (
        "Send it to <STREET_ADDRESS> North Kerri; the <POSTCODE>/17 figures"
    )


def test_a_long_single_line_is_read_in_windows_and_nothing_on_a_boundary_survives(redactor: Redactor) -> None:
    from pipelines.redact import _WINDOW_CHARS, windows

    # spaCy refuses a text over 1,000,000 characters: no window may come near that.
    huge = "lorem ipsum dolor " * 70_000
    cuts = windows(huge)
    assert cuts[0][0] == 0 and cuts[-1][1] == len(huge)
    assert all(end - start <= _WINDOW_CHARS for start, end in cuts)
    assert all(b[0] < a[1] for a, b in itertools.pairwise(cuts))  # overlapping: no gap

    filler = "status ok value 17 retry later " * 1_700  # about 51,000 characters, one line
    boundary = _WINDOW_CHARS - 10  # an e-mail address across the first cut
    text = (
        filler[:boundary]
        + " mail jane.doe@example.org now "
        + filler[boundary:]
        + " card 4111 1111 1111 1111"
    )
    [(elements, counts)] = redactor.redact_documents([[_paragraph(text)]])
    assert "jane.doe@example.org" not in elements[0].text and "4111 1111" not in elements[0].text
    assert counts["EMAIL_ADDRESS"] == 1 and counts["CREDIT_CARD"] == 1


def test_eu_national_ids_are_typed_by_the_documents_residency(redactor: Redactor) -> None:
    text = "Su NIF es 12345678Z; PESEL 44051401359; codice fiscale RSSMRA85T10A562S."
    (eu, eu_counts), (uk, uk_counts) = redactor.redact_documents(
        [[_paragraph(text)], [_paragraph(text)]], ["eu", "uk"]
    )
    assert {"ES_NIF", "PL_PESEL", "IT_FISCAL_CODE"} <= set(eu_counts)
    assert not {"ES_NIF", "PL_PESEL", "IT_FISCAL_CODE"} & set(uk_counts)  # only for EU documents
    for out in (eu[0].text, uk[0].text):  # redacted either way: the context patterns see an id
        assert "12345678Z" not in out and "44051401359" not in out and "RSSMRA85T10A562S" not in out


def test_an_entity_type_no_detector_finds_fails_the_run_with_a_clear_error() -> None:
    from groundwork.errors import ConfigError
    from groundwork.settings import RedactionConfig

    misspelt = Redactor(RedactionConfig(entities_by_residency={"eu": ["ES_NIFF"]}))
    with pytest.raises(ConfigError, match="no detector finds ES_NIFF"):
        misspelt.redact("Su NIF es 12345678Z.")


def test_a_configuration_error_stops_the_batch_instead_of_failing_each_document() -> None:
    from groundwork.enums import Stage
    from groundwork.errors import ConfigError
    from pipelines.batches import each

    def work(item: int) -> int:
        raise ConfigError("redaction: no detector finds ES_NIFF")

    with pytest.raises(ConfigError):
        each(Stage.REDACT, [1, 2, 3], lambda item: None, work)  # type: ignore[arg-type,return-value]


def test_postcodes_of_a_text_without_capitals_are_found_by_their_patterns() -> None:
    # The postcode patterns read capitals ("R3C 4T3"); a lower-case chat message writes "r3c 4t3".
    # Without the tagger (which may or may not see them), the patterns alone find them, and a
    # lower-case state before a number ("in 90210") is not read as a US state and ZIP.
    patterns_only = Redactor(RedactionConfig(tagger=False, person_detectors=["spacy"]))
    text = "ok so the new place is 4 maple crescent, winnipeg mb r3c 4t3, the old one sw1a 2aa. in 90210 min"
    out, _ = patterns_only.redact(text)
    assert "r3c 4t3" not in out and "sw1a 2aa" not in out, out
    assert "90210" in out, out


def test_texts_detected_in_one_batch_are_redacted_as_each_alone(redactor: Redactor) -> None:
    """spaCy reads a call's texts in batches (``nlp.pipe``): no text's result may depend on its
    batch-mates, their order or the batch's size (more texts than one spaCy batch)."""
    texts = [text for text, _ in IN_CONTEXT] + [text for _, text, _ in CASES]
    texts = (texts * 3)[:40]
    alone = [redactor.redact(text) for text in texts]
    assert redactor.redact_many(texts) == alone
    assert redactor.redact_many(texts[::-1]) == alone[::-1]
    assert any(counts for _, counts in alone)


@pytest.mark.parametrize(
    ("check", "valid", "invalid"),
    [
        # Inland Revenue's published examples (the last needs the second weight set).
        (
            nz_ird_valid,
            ["49091850", "35901981", "49098576", "136410132"],
            ["136410133", "12345678", "9125568"],
        ),
        (au_tfn_valid, ["123456782"], ["123456789", "12345678"]),
        (luhn_valid, ["046454286", "130692544"], ["130692545"]),
    ],
)
def test_check_digits_of_national_identifiers(
    check: Callable[[str], bool], valid: list[str], invalid: list[str]
) -> None:
    assert all(check(v) for v in valid)
    assert not any(check(v) for v in invalid)


def test_the_check_digit_decides_what_the_identifier_recognizers_claim() -> None:
    """Written with separators, a valid number gets full confidence and an invalid one nothing; bare
    digits that pass keep a score under the threshold, which only a context word lifts."""
    recognizers = {r.name: r for r in checked_id_recognizers()}

    def scores(name: str, text: str) -> list[float]:
        return [x.score for x in recognizers[name].analyze(text, ["NATIONAL_ID"], None)]

    assert scores("NzIrdNumberRecognizer", "ref 74-674-607") == [1.0]
    assert scores("NzIrdNumberRecognizer", "ref 74-674-608") == []
    assert scores("CaSocialInsuranceNumberRecognizer", "ref 130 692 544") == [1.0]
    assert scores("CaSocialInsuranceNumberRecognizer", "ref 130 692 545") == []
    assert scores("AuTaxFileNumberRecognizer", "ref 123 456 782") == [1.0]
    bare = scores("AuTaxFileNumberRecognizer", "size 123456782 bytes")
    assert bare and max(bare) < RedactionConfig().score_threshold


def test_every_module_redaction_imports_is_part_of_the_policy_version() -> None:
    """A rule moved into a new module must still re-redact when it changes (``addresses`` once was not)."""
    import ast
    from pathlib import Path

    from pipelines.detectors import POLICY_MODULES

    folder = Path(policy_version.__code__.co_filename).parent
    seen: set[str] = set()
    todo = ["redact"]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        for node in ast.walk(ast.parse((folder / f"{module}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "pipelines":
                todo += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pipelines."):
                todo.append(node.module.split(".")[1])  # type: ignore[union-attr]
    assert seen - {"log_safety"} == set(POLICY_MODULES)


def test_spacy_runs_only_its_entity_recognizer_and_finds_what_the_whole_model_finds(
    redactor: Redactor,
) -> None:
    """Redaction runs spaCy's entity recognizer alone (lemmas are the lower-cased words): the same
    entities as the model's whole pipeline, and context words still read from the lemmas."""
    import spacy

    lean = redactor.detector._batch.analyzer_engine.nlp_engine.nlp["en"]
    assert [name for name, _ in lean.pipeline] == ["ner", "groundwork_text_lemmas"]
    whole = spacy.load(RedactionConfig().spacy_model)
    texts = [text for text, _ in IN_CONTEXT] + [text for _, text, _ in CASES]
    texts.append("Mikkel Sørensen and Florian Weber met Dr Ana Souza in Lisbon on 3 May.")
    entities = [[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in lean.pipe(texts)]
    assert entities == [[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in whole.pipe(texts)]
    assert any(entities)
    doc = lean("Phones: Call")
    assert [t.lemma_ for t in doc] == ["phones", ":", "call"]
