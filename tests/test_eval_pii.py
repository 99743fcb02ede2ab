"""``groundwork eval-pii``: the scoring rules on hand-made cases, and one real run on a tiny set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main
from cli.pii_metrics import GoldValue, Score, score_document
from pipelines.spans import Span, apply


def _score(text: str, spans: list[Span], gold: list[GoldValue]) -> Score:
    score = Score()
    score_document(score, [(text, spans)], gold, apply(text, spans)[0])
    return score


def test_a_value_is_caught_only_when_every_character_is_replaced() -> None:
    text = "Ask Priya Raman at 12 Brook Lane."
    gold = [GoldValue("PERSON", "Priya Raman"), GoldValue("STREET_ADDRESS", "12 Brook Lane")]
    spans = [Span(4, 15, "PERSON", 0.9), Span(22, 32, "LOCATION", 0.6)]  # "Brook Lane" only
    score = _score(text, spans, gold)
    person, address = score.by_category["PERSON"], score.by_category["ADDRESS"]
    assert (person.gold, person.caught, person.survived) == (1, 1, 0)
    assert (address.gold, address.caught, address.partly, address.survived) == (1, 0, 1, 0)
    assert score.misses == [
        {"type": "ADDRESS", "value": "12 Brook Lane", "context": text, "left": "12 ██████████"}
    ]
    # The LOCATION span overlaps a gold address: a true hit, though mistyped.
    assert score.overall.hits == 2 and score.overall.true_hits == 2


def test_false_hits_and_unscored_gold() -> None:
    text = "Release notes by Postgres on 3 March 2026."
    gold = [GoldValue("DATE_TIME", "3 March 2026")]
    spans = [Span(17, 25, "PERSON", 0.8), Span(29, 41, "DATE_TIME", 0.9)]
    score = _score(text, spans, gold)
    assert score.overall.gold == 0  # dates are not scored
    assert score.overall.hits == 1 and score.overall.true_hits == 0  # the date hit is ignored
    assert score.false_hits[0]["value"] == "Postgres"


def test_every_occurrence_is_scored_and_f2_weighs_recall() -> None:
    text = "Tomasz wrote to Tomasz."
    score = _score(text, [Span(0, 6, "PERSON", 0.9)], [GoldValue("PERSON", "Tomasz")])
    t = score.by_category["PERSON"]
    assert (t.gold, t.caught, t.recall, t.precision) == (2, 1, 0.5, 1.0)
    assert t.f2 == pytest.approx(5 * 1.0 * 0.5 / (4 * 1.0 + 0.5))
    assert t.survival == 1.0  # the second occurrence is still there


def test_eval_pii_runs_sets_through_partitioning_and_redaction(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    samples = tmp_path / "samples.json"
    text = "Please call Priya Raman on 07700 900123 or write to priya.raman@example.co.uk."
    samples.write_text(
        json.dumps(
            [
                {
                    "full_text": text,
                    "spans": [
                        {
                            "entity_type": t,
                            "entity_value": v,
                            "start_position": text.index(v),
                            "end_position": text.index(v) + len(v),
                        }
                        for t, v in [
                            ("PERSON", "Priya Raman"),
                            ("PHONE_NUMBER", "07700 900123"),
                            ("EMAIL_ADDRESS", "priya.raman@example.co.uk"),
                        ]
                    ],
                }
            ]
        )
    )
    written = tmp_path / "written"
    written.mkdir()
    (written / "note.md").write_text("# Visit\n\nMet Jan Kowalski at the office on Monday.\n")
    (written / "gold.jsonl").write_text(
        json.dumps({"file": "note.md", "entities": [{"type": "PERSON", "value": "Jan Kowalski"}]}) + "\n"
    )
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "guide.txt").write_text("Run the vacuum command after a bulk delete to reclaim space.\n" * 20)
    out = tmp_path / "figures.json"
    dump = tmp_path / "dump.jsonl"
    assert (
        main(["eval-pii", str(samples), str(written), str(clean), "--json", str(out), "--dump", str(dump)])
        == 0
    )
    figures = json.loads(out.read_text())
    assert [f["kind"] for f in figures] == ["samples", "gold", "clean"]
    assert figures[0]["all"]["gold"] == 3 and figures[0]["all"]["recall"] == 1.0
    assert figures[0]["all"]["verbatim_survival"] == 0.0
    assert figures[1]["categories"]["PERSON"]["recall"] == 1.0
    assert figures[2]["false_per_1000_words"] == 0.0 and figures[2]["words"] == 220
    assert all(f["redaction_chars_per_s"] > 0 and f["embedding_chars_per_s"] > 0 for f in figures)
    printed = capsys.readouterr().out
    assert "false placeholders per 1,000 words: 0.00" in printed and "redaction / embedding" in printed
