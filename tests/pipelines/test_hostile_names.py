"""A file name that is not valid UTF-8 no longer stops an ingest: it is indexed like any other."""

from __future__ import annotations

import os
from pathlib import Path

from orchestration.local import run_all
from orchestration.services import Services


def test_a_file_name_that_is_not_utf8_is_ingested_with_the_rest(
    demo_services: Services, demo_copy: Path
) -> None:
    folder = os.fsencode(demo_copy.parent / "corpus" / "handbook")
    with open(os.path.join(folder, b"men\xfc-canteen.txt"), "wb") as f:
        f.write(b"The canteen serves lunch from twelve until two on weekdays.")
    # A name whose characters spell the escape of the name above: a different file, a different id.
    with open(os.path.join(folder, b"men\\xfc-canteen.txt"), "wb") as f:
        f.write(b"The canteen menu changes every Monday.")
    plan, reports = run_all(demo_services)
    written = sum(r.documents_written for r in reports)
    assert written == len(plan.tasks) - sum(len(r.failures) for r in reports)
    eu = demo_services.index("eu")
    ids = {s.source_id for s in eu.document_states("handbook").values()}
    assert {"men\\xfc-canteen.txt", "men\\\\xfc-canteen.txt"} <= ids
    # And a second run finds it unchanged.
    plan, _ = run_all(demo_services)
    assert not plan.tasks
