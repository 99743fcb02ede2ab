"""PII redaction with Presidio: every value of a configured entity type becomes ``<ENTITY_TYPE>``.

The analyzer is built once per process with an explicit offline spaCy model, Presidio's predefined
recognizers (plus the UK ones Presidio ships disabled) and the declarative patterns in
``recognizers.yaml``. Only counts by entity type leave this module, never the values.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from groundwork.config import RedactionConfig

logger = logging.getLogger(__name__)

RECOGNIZERS_YAML = Path(__file__).with_name("recognizers.yaml")
_PHONE_REGIONS = ("GB", "IE", "US", "CA", "FR", "DE", "ES", "IT", "NL", "BE")


def _offline_tldextract() -> None:
    # Presidio's email recognizer calls tldextract.extract(), whose default extractor fetches the
    # public suffix list over the network on first use; use the snapshot bundled with the package.
    import tldextract
    import tldextract.tldextract as impl

    if getattr(impl.TLD_EXTRACTOR, "suffix_list_urls", ()):
        impl.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


class Redactor:
    """Finds and replaces PII in text with typed placeholders such as ``<PERSON>``."""

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
            }
        ).create_engine()
        registry = RecognizerRegistry(supported_languages=["en"])
        registry.load_predefined_recognizers(nlp_engine=nlp, languages=["en"])
        registry.remove_recognizer("PhoneRecognizer")
        registry.add_recognizer(PhoneRecognizer(supported_regions=_PHONE_REGIONS))
        registry.add_recognizer(UkNinoRecognizer())
        registry.add_recognizer(UkPostcodeRecognizer())
        registry.add_recognizers_from_yaml(RECOGNIZERS_YAML)
        self._analyzer = AnalyzerEngine(nlp_engine=nlp, registry=registry, supported_languages=["en"])
        self._batch = BatchAnalyzerEngine(analyzer_engine=self._analyzer)
        self._anonymizer = AnonymizerEngine()
        logger.info("presidio analyzer ready with %d recognizers", len(registry.recognizers))

    def redact(self, text: str) -> tuple[str, Counter[str]]:
        """Redact one text; returns the redacted text and counts by entity type."""
        [(out, counts)] = self.redact_many([text])
        return out, counts

    def redact_many(self, texts: Iterable[str]) -> list[tuple[str, Counter[str]]]:
        """Redact several texts in one spaCy batch; returns one (text, counts) pair per input."""
        self._load()
        texts = list(texts)
        analyzed = self._batch.analyze_iterator(
            texts,
            language="en",
            entities=list(self.config.entities),
            score_threshold=self.config.score_threshold,
        )
        out: list[tuple[str, Counter[str]]] = []
        for text, results in zip(texts, analyzed, strict=True):
            if not results:
                out.append((text, Counter()))
                continue
            anonymized = self._anonymizer.anonymize(text=text, analyzer_results=results)
            out.append((anonymized.text, Counter(item.entity_type for item in anonymized.items)))
        return out
