"""Property-based tests of the retrieval API, generated from its own OpenAPI schema by schemathesis.

Requests go to the real app (``serving.api.create_app``) over the ingested demo index on the
embedded PostgreSQL server, in-process (ASGI). With a valid demo key, every generated request, in
the schema or deliberately outside it, must get a response below 500 that conforms to the schema
(status, content type, body, headers), a schema-valid one must be accepted and an invalid one
refused; every error body must be ``{"error": code, "message": text}`` and echo no request value.
With a bad credential no request may get past authentication.

``GROUNDWORK_FUZZ_EXAMPLES`` sets the examples per operation and phase (default 25, for ``make
test``; e.g. 500 for a long run). Generation is derandomized: a run is reproducible.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.core.transport import Response

from groundwork.settings import load_config
from indexes.search import Retriever
from serving.api import create_app
from tests.conftest import ALICE_KEY, DEMO

EXAMPLES = int(os.environ.get("GROUNDWORK_FUZZ_EXAMPLES", "25"))

#: Responses seen in this module, by (test, operation, status code).
TALLY: Counter[tuple[str, str, int]] = Counter()

#: Credentials that must not get past authentication ("" sends no Authorization header).
BAD_CREDENTIALS = [
    "",
    "Bearer",
    "Bearer ",
    "Bearer wrong-key-0123456789",
    f"Bearer {ALICE_KEY}x",
    f"Bearer {ALICE_KEY[:-1]}",
    f"Basic {ALICE_KEY}",
    f"bearer{ALICE_KEY}",
    "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.",
    "Bearer not.a.jwt-token-value",
]


class _SchemaOnly:
    """Stands in for the retriever of an app built only to read its OpenAPI document."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError("the schema-only app must not serve requests")


def _openapi() -> dict[str, Any]:
    # Read at import, before any fixture, so that schemathesis makes one test per operation (its
    # fixture-based loader does not run under this pytest). The document needs no database;
    # test_the_schema_is_the_one_the_app_serves checks it is the real app's.
    app = create_app(load_config(DEMO / "groundwork.yaml"), _SchemaOnly())  # type: ignore[arg-type]
    return app.openapi()


class _AppUnderTest:
    """The ASGI app schemathesis sends requests to: the real one, once the ``app`` fixture set it."""

    target: FastAPI | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.target is not None, "the app fixture sets the app under test"
        await self.target(scope, receive, send)


APP = _AppUnderTest()

schema = schemathesis.openapi.from_dict(_openapi())
schema.app = APP
schema.config.generation.update(max_examples=EXAMPLES, deterministic=True, database="none")
schema.config.update(headers={"Authorization": f"Bearer {ALICE_KEY}"})
# A body over api.max_body_bytes is refused before it is parsed, with the documented 413.
_rejection = schema.config.checks.negative_data_rejection
_rejection.expected_statuses = [*_rejection.expected_statuses, "413"]

#: Names the schema itself defines: an error message may name them without echoing the request.
_SCHEMA_NAMES = {
    name
    for component in schema.raw_schema["components"]["schemas"].values()
    for name in component.get("properties", {})
}


@pytest.fixture(scope="module")
def app(demo_reader: Retriever) -> Iterator[FastAPI]:
    # The fuzz checks behaviour, not the rate limit (tests/indexes/test_api_security.py does).
    # alice is a steward here, so generated lineage requests reach the lookup (403 is tested elsewhere).
    principals = [
        p.model_copy(update={"roles": ["steward"]}) if p.name == "alice" else p
        for p in demo_reader.config.principals
    ]
    config = demo_reader.config.model_copy(
        update={
            "api": demo_reader.config.api.model_copy(update={"rate_limit_burst": 1_000_000}),
            "principals": principals,
        }
    )
    APP.target = create_app(config, demo_reader)
    yield APP.target
    APP.target = None


def test_the_schema_is_the_one_the_app_serves(app: FastAPI) -> None:
    assert app.openapi() == schema.raw_schema


@schema.parametrize()
def test_every_request_gets_a_conforming_answer(case: Case, app: FastAPI) -> None:
    response = case.call()
    TALLY["valid key", case.operation.label, response.status_code] += 1
    case.validate_response(response)
    _check_error(case, response)


@schema.include(path="/v1/search").parametrize()
@schema.given(credential=st.sampled_from(BAD_CREDENTIALS))
def test_no_request_gets_past_a_bad_credential(case: Case, credential: str, app: FastAPI) -> None:
    if credential:
        case.headers["Authorization"] = credential
    else:
        case.headers.pop("Authorization", None)
    response = case.call()
    TALLY["bad credential", case.operation.label, response.status_code] += 1
    # 413, 415 and a body that is not JSON are refused before the caller is known; nothing else is.
    assert response.status_code in {401, 413, 415, 422}, response.text
    _check_error(case, response)
    if response.status_code == 422:
        assert response.json()["message"] == "the request body is not valid JSON", response.text
    if response.status_code == 401:
        assert response.json()["error"] == "unauthorized"
        assert response.headers.get("www-authenticate") == ["Bearer"]
        token = credential.partition(" ")[2].strip()
        assert not token or token not in response.text


def test_the_generated_requests_reached_the_search_and_its_refusals(
    capsys: pytest.CaptureFixture[str],
) -> None:
    if not TALLY:
        pytest.skip("the generated tests did not run")
    with capsys.disabled():
        _report()
    seen = {(test, status) for (test, operation, status) in TALLY if operation == "POST /v1/search"}
    assert {("valid key", 200), ("valid key", 422), ("bad credential", 401)} <= seen
    assert not any(status >= 500 for (_, _, status) in TALLY)


def _check_error(case: Case, response: Response) -> None:
    """An error body is ``{"error": code, "message": text}`` and its message repeats no request value."""
    if response.status_code < 400:
        return
    assert response.headers.get("content-type") == ["application/json"], response.headers
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error", "message"}, response.text
    assert isinstance(body["error"], str) and body["error"], response.text
    assert isinstance(body["message"], str) and body["message"], response.text
    echoed = _echoed(case, body["message"])
    assert not echoed, f"{body['message']!r} repeats {echoed!r} from the request"


def _echoed(case: Case, message: str) -> list[str]:
    """The strings of the request that ``message`` holds because the request held them.

    The request is sent again with each string found in the message replaced by another of the same
    length: an echo is a string whose replacement the new message holds instead. One still in the
    new message is the API's own text (a field name, a word of the message) that the generator
    happened to produce; one gone with no replacement in its place went with a message that changed
    for another reason (the probe's idempotency key is new, so no conflict is reported).
    """
    found = [text for text in _request_strings(case.body) if text in message]
    if not found:
        return []
    probe = case.operation.Case(
        method=case.method,
        headers=dict(case.headers),
        query=case.query,
        body=_replaced(case.body, set(found)),
        media_type=case.media_type,
    )
    # An echo follows the request: the probe's message holds the replacement where it held the text.
    # A message that changed for another reason (an idempotency key now unused) is no echo.
    again = probe.call().json().get("message", "")
    return [text for text in found if text not in again and "\u00a7" * len(text) in again]


def _replaced(value: Any, texts: set[str]) -> Any:
    """``value`` with every string in ``texts`` (keys too) replaced by one of the same length."""
    if isinstance(value, str):
        return "\u00a7" * len(value) if value in texts else value
    if isinstance(value, dict):
        return {_replaced(key, texts): _replaced(item, texts) for key, item in value.items()}
    if isinstance(value, list):
        return [_replaced(item, texts) for item in value]
    return value


def _request_strings(value: object) -> Iterator[str]:
    """The strings in a request body (keys too) long enough that finding one in a message is no accident."""
    if isinstance(value, str):
        if len(value.strip()) >= 4 and value not in _SCHEMA_NAMES:
            yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _request_strings(key)
            yield from _request_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _request_strings(item)


def _report() -> None:
    """Print the responses by test, operation and status class."""
    print(f"\nschemathesis, {EXAMPLES} examples per operation and phase:")
    for test, operation in sorted({(t, o) for (t, o, _) in TALLY}):
        codes = {status: n for (t, o, status), n in sorted(TALLY.items()) if (t, o) == (test, operation)}
        classes: Counter[str] = Counter()
        for status, n in codes.items():
            classes[f"{status // 100}xx"] += n
        print(
            f"  {test}, {operation}: {sum(codes.values())} requests, {dict(sorted(classes.items()))}, {codes}"
        )
