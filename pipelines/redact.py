"""PII redaction with Presidio: every value of a configured entity type becomes ``<ENTITY_TYPE>``.

The analyzer is built once per process with an explicit offline spaCy model, Presidio's predefined
recognizers (plus the UK ones Presidio ships disabled) and the declarative patterns in
``recognizers.yaml``. Only counts by entity type leave this module, never the values.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from groundwork.records import ParsedElement
from groundwork.settings import RedactionConfig

logger = logging.getLogger(__name__)

RECOGNIZERS_YAML = Path(__file__).with_name("recognizers.yaml")
_SPACY_LABELS_IGNORED = [
    "CARDINAL",
    "EVENT",
    "FAC",
    "LANGUAGE",
    "LAW",
    "MONEY",
    "ORDINAL",
    "PERCENT",
    "PRODUCT",
    "QUANTITY",
    "WORK_OF_ART",
]
_PHONE_REGIONS = ("GB", "IE", "US", "CA", "FR", "DE", "ES", "IT", "NL", "BE")


def _offline_tldextract() -> None:
    # Presidio's email recognizer calls tldextract.extract(), whose default extractor fetches the
    # public suffix list over the network on first use; use the snapshot bundled with the package.
    import tldextract
    import tldextract.tldextract as impl

    if getattr(impl.TLD_EXTRACTOR, "suffix_list_urls", ()):
        impl.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


PERSON = "PERSON"
_PLACEHOLDER = "<PERSON>"
_MIN_NAME_PART = 4


class Redactor:
    """Finds and replaces PII in text with typed placeholders such as ``<PERSON>``.

    :meth:`redact_documents` adds two safeguards on top of Presidio, because a small NER model misses
    names out of context: table columns whose header names a person are redacted whole, and every
    name found anywhere in the batch is redacted wherever else it appears.
    """

    def __init__(self, config: RedactionConfig) -> None:
        self.config = config
        self._analyzer: Any = None
        self._batch: Any = None
        self._anonymizer: Any = None

    def _load(self) -> None:
        if self._analyzer is not None:
            return
        _offline_tldextract()
        from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NlpEngineProvider
        from presidio_analyzer.predefined_recognizers import (
            PhoneRecognizer,
            UkNinoRecognizer,
            UkPostcodeRecognizer,
        )
        from presidio_anonymizer import AnonymizerEngine

        nlp = NlpEngineProvider(
            nlp_configuration={
                "nlp_engine_name": "spacy",
                "models": [{"lang_code": "en", "model_name": self.config.spacy_model}],
                # spaCy labels Presidio has no entity for; ignoring them also silences a warning per hit.
                "ner_model_configuration": {"labels_to_ignore": _SPACY_LABELS_IGNORED},
            }
        ).create_engine()
        registry = RecognizerRegistry(supported_languages=["en"])
        # Loading the predefined set warns once per recognizer of a language we do not load.
        presidio_log = logging.getLogger("presidio-analyzer")
        previous = presidio_log.level
        presidio_log.setLevel(logging.ERROR)
        try:
            registry.load_predefined_recognizers(nlp_engine=nlp, languages=["en"])
        finally:
            presidio_log.setLevel(previous)
        registry.remove_recognizer("PhoneRecognizer")
        registry.add_recognizer(PhoneRecognizer(supported_regions=_PHONE_REGIONS))
        registry.add_recognizer(UkNinoRecognizer())
        registry.add_recognizer(UkPostcodeRecognizer())
        registry.add_recognizers_from_yaml(RECOGNIZERS_YAML)
        self._analyzer = AnalyzerEngine(nlp_engine=nlp, registry=registry, supported_languages=["en"])
        self._batch = BatchAnalyzerEngine(analyzer_engine=self._analyzer)
        self._anonymizer = AnonymizerEngine()
        logger.info("presidio analyzer ready with %d recognizers", len(list(registry.recognizers)))

    def _analyze(self, texts: list[str]) -> list[Any]:
        self._load()
        return list(
            self._batch.analyze_iterator(
                texts,
                language="en",
                entities=list(self.config.entities),
                score_threshold=self.config.score_threshold,
            )
        )

    def redact_documents(
        self, documents: Sequence[Sequence[ParsedElement]]
    ) -> list[tuple[list[ParsedElement], Counter[str]]]:
        """Redact several documents' elements together; returns redacted elements and counts per document.

        Tables come back as one ``header: value`` line per row, without their cells.
        """
        person_columns = {_norm(c) for c in self.config.person_columns}
        units: list[str] = []
        names: set[str] = set()
        # Per element: ("text", unit index) or ("table", headers, rows of unit index / None for a name cell)
        layout: list[list[tuple[Any, ...]]] = []
        for elements in documents:
            doc_layout: list[tuple[Any, ...]] = []
            for el in elements:
                if el.cells and len(el.cells) > 1:
                    headers = el.cells[0]
                    name_cols = {i for i, h in enumerate(headers) if _norm(h) in person_columns}
                    header_units = [_add(units, h) for h in headers]
                    rows = []
                    for row in el.cells[1:]:
                        cells_out: list[int | None] = []
                        for i, value in enumerate(row):
                            if i in name_cols and value.strip():
                                names.add(value.strip())
                                cells_out.append(None)
                            else:
                                cells_out.append(_add(units, value))
                        rows.append(cells_out)
                    doc_layout.append(("table", el, header_units, rows))
                else:
                    doc_layout.append(("text", el, _add(units, el.text)))
            layout.append(doc_layout)

        analyzed = self._analyze(units) if units else []
        for text, results in zip(units, analyzed, strict=True):
            for r in results:
                if r.entity_type == PERSON:
                    names.update(_name_forms(text[r.start : r.end]))
        redacted: list[tuple[str, Counter[str]]] = []
        for text, results in zip(units, analyzed, strict=True):
            out, counts = (text, Counter[str]()) if not results else self._anonymize(text, results)
            redacted.append(_replace_names(out, counts, names))

        result = []
        for doc_layout in layout:
            counts = Counter[str]()
            out_elements = []
            for entry in doc_layout:
                if entry[0] == "text":
                    _, el, idx = entry
                    text, found = redacted[idx]
                    counts.update(found)
                    out_elements.append(ParsedElement(el.category, text, el.page_number))
                    continue
                _, el, header_units, rows = entry
                header_texts = [redacted[i][0] for i in header_units]
                for i in header_units:
                    counts.update(redacted[i][1])
                lines = []
                for row in rows:
                    parts = []
                    for col, idx in enumerate(row):
                        if idx is None:
                            value = _PLACEHOLDER
                            counts[PERSON] += 1
                        else:
                            value, found = redacted[idx]
                            counts.update(found)
                        if value:
                            header = header_texts[col] if col < len(header_texts) else f"column {col + 1}"
                            parts.append(f"{header}: {value}")
                    lines.append("; ".join(parts))
                out_elements.append(ParsedElement(el.category, "\n".join(lines), el.page_number))
            result.append((out_elements, counts))
        return result

    def _anonymize(self, text: str, results: list[Any]) -> tuple[str, Counter[str]]:
        anonymized = self._anonymizer.anonymize(text=text, analyzer_results=results)
        return anonymized.text, Counter(item.entity_type for item in anonymized.items)

    def redact(self, text: str) -> tuple[str, Counter[str]]:
        """Redact one text; returns the redacted text and counts by entity type."""
        [(out, counts)] = self.redact_many([text])
        return out, counts

    def redact_many(self, texts: Iterable[str]) -> list[tuple[str, Counter[str]]]:
        """Redact several texts in one spaCy batch; returns one (text, counts) pair per input."""
        texts = list(texts)
        return [
            (text, Counter()) if not results else self._anonymize(text, results)
            for text, results in zip(texts, self._analyze(texts), strict=True)
        ]


def _norm(header: str) -> str:
    return " ".join(header.lower().replace("_", " ").split())


def _add(units: list[str], text: str) -> int:
    units.append(text)
    return len(units) - 1


def _name_forms(span: str) -> set[str]:
    """A detected name and, for a multi-word name, its longer parts ("Priya Raman" -> also "Priya")."""
    from spacy.lang.en.stop_words import STOP_WORDS

    span = " ".join(span.split())
    parts = span.split(" ")
    if len(parts) < 2:
        return set()  # single capitalised words are too often false positives to propagate
    forms = {span}
    forms.update(
        p for p in parts if len(p) >= _MIN_NAME_PART and p[0].isupper() and p.lower() not in STOP_WORDS
    )
    return forms


def _replace_names(text: str, counts: Counter[str], names: set[str]) -> tuple[str, Counter[str]]:
    """Replace every remaining occurrence of a known name with ``<PERSON>``."""
    if not names:
        return text, counts
    pattern = re.compile(
        r"(?<![\w<])(?:"
        + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
        + r")(?![\w>])"
    )
    out, n = pattern.subn(_PLACEHOLDER, text)
    if n:
        counts = counts.copy()
        counts[PERSON] += n
    return out, counts
