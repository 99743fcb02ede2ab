"""PII detectors: Presidio's analyzer with an explicit offline spaCy model, its predefined recognizers
(plus the UK ones Presidio ships disabled) and the declarative patterns in ``recognizers.yaml``.

Each text becomes a list of :class:`~pipelines.spans.Span`. Built once per process, on first use.
"""

from __future__ import annotations

import hashlib
import json
import logging
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from groundwork.settings import RedactionConfig
from pipelines.spans import Span

logger = logging.getLogger(__name__)

PERSON = "PERSON"
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
#: Packages whose version changes what is detected: part of the redaction policy version.
_DETECTOR_PACKAGES = ("presidio-analyzer", "spacy", "phonenumbers")


def policy_version(config: RedactionConfig) -> str:
    """A digest of the redaction settings, the detector code and data, and the detector packages.

    Stored with every index version: a change re-redacts and re-embeds every document into a new
    index version on the next run.
    """
    h = hashlib.sha256()
    h.update(json.dumps(config.model_dump(mode="json"), sort_keys=True).encode())
    for path in sorted(Path(__file__).parent.glob("*.yaml")):
        h.update(path.read_bytes())
    for module in ("detectors.py", "redact.py", "spans.py"):
        h.update((Path(__file__).parent / module).read_bytes())
    for package in (*_DETECTOR_PACKAGES, config.spacy_model.replace("_", "-")):
        try:
            h.update(f"{package}=={version(package)}".encode())
        except PackageNotFoundError:
            h.update(f"{package}==?".encode())
    return h.hexdigest()[:16]


def _offline_tldextract() -> None:
    # Presidio's email recognizer calls tldextract.extract(), whose default extractor fetches the
    # public suffix list over the network on first use; use the snapshot bundled with the package.
    import tldextract
    import tldextract.tldextract as impl

    if getattr(impl.TLD_EXTRACTOR, "suffix_list_urls", ()):
        impl.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


class Detector:
    """Finds PII spans in texts with Presidio; the models load when it is made."""

    def __init__(self, config: RedactionConfig) -> None:
        self.config = config
        _offline_tldextract()
        from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NlpEngineProvider
        from presidio_analyzer.predefined_recognizers import (
            PhoneRecognizer,
            UkNinoRecognizer,
            UkPostcodeRecognizer,
        )

        nlp = NlpEngineProvider(
            nlp_configuration={
                "nlp_engine_name": "spacy",
                "models": [{"lang_code": "en", "model_name": config.spacy_model}],
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
        logger.info("presidio analyzer ready with %d recognizers", len(list(registry.recognizers)))

    def detect(self, texts: list[str]) -> list[list[Span]]:
        """The spans of every configured entity type in each text, at or above the score threshold."""
        results: list[Any] = list(
            self._batch.analyze_iterator(
                texts,
                language="en",
                entities=list(self.config.entities),
                score_threshold=self.config.score_threshold,
            )
        )
        return [
            [
                Span(r.start, r.end, r.entity_type, float(r.score), _source(r))
                for r in found
                if r.end > r.start
            ]
            for found in results
        ]


def _source(result: Any) -> str:
    explanation = getattr(result, "recognition_metadata", None) or {}
    return str(explanation.get("recognizer_name", ""))
