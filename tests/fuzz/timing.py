"""Per-document timings of an ingest, written as JSON lines, for the fuzz targets.

Nothing in the product is changed: wrappers that call through are put around

- :func:`pipelines.partition.partition_document`, wherever it runs: in this process, and in the
  parser processes (when :mod:`pipelines.partition_pool` forks them from a server that preloads
  modules, this module is added to the preload list; the server inherits :data:`ENV`, the file to
  write to). A parse writes a ``start`` line and, if it returns or raises, an ``end`` line: a start
  without an end is a parser process that was killed (time limit) or died;
- :func:`pipelines.batches.redact_all`, in this process: one line per micro-batch with its
  documents' ids, their characters of text and the seconds the batch's redaction took.

Lines: ``{"stage": "partition", "event": "start"|"end", "id", "s", "ok", "pid", "t"}`` and
``{"stage": "redact", "ids": [...], "chars": [...], "s"}`` (``t``: the wall-clock time of a start).
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The environment variable naming the timings file (inherited by parser processes).
ENV = "GROUNDWORK_FUZZ_TIMINGS"
_PROJECT_PACKAGES = ("pipelines", "orchestration", "cli", "indexes", "connectors", "serving")
_lock = threading.Lock()
_MARK = "__fuzz_timed__"


def _append(record: dict[str, Any]) -> None:
    path = os.environ.get(ENV)
    if not path:
        return
    try:
        with _lock, open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
    except OSError:
        pass  # timing must never fail a document


def _replace(module: Any, name: str, original: Any, wrapper: Any, patched: list[tuple[Any, str]]) -> None:
    """Put ``wrapper`` in place of ``original`` in ``module`` and in every project module holding it."""
    setattr(module, name, wrapper)
    patched.append((module, name))
    for mod_name, mod in list(sys.modules.items()):
        if mod is None or mod is module or not mod_name.startswith(_PROJECT_PACKAGES):
            continue
        for key, value in list(vars(mod).items()):
            if value is original:
                setattr(mod, key, wrapper)
                patched.append((mod, key))


def _wrap_partition(patched: list[tuple[Any, str]]) -> None:
    import pipelines.partition as part

    original = part.partition_document
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def timed(ref: Any, data: bytes, *args: Any, **kwargs: Any) -> Any:
        sid = getattr(ref, "source_id", "?")
        pid = os.getpid()
        _append(
            {
                "stage": "partition",
                "event": "start",
                "id": sid,
                "pid": pid,
                "bytes": len(data),
                "t": time.time(),
            }
        )
        start = time.perf_counter()
        ok = False
        try:
            result = original(ref, data, *args, **kwargs)
            ok = True
            return result
        finally:
            seconds = round(time.perf_counter() - start, 4)
            _append({"stage": "partition", "event": "end", "id": sid, "s": seconds, "ok": ok, "pid": pid})

    setattr(timed, _MARK, True)
    _replace(part, "partition_document", original, timed, patched)


def _wrap_redact(patched: list[tuple[Any, str]]) -> None:
    try:
        import pipelines.batches as batches
    except ImportError:
        return
    original = getattr(batches, "redact_all", None)
    if original is None or getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def timed(batch: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        redactor = args[0] if args else kwargs.get("redactor")
        if redactor is not None:
            redactor.document_seconds = []
        try:
            return original(batch, *args, **kwargs)
        finally:
            docs = getattr(batch, "items", [])
            ids = [d.task.ref.source_id for d in docs]
            chars = [sum(len(el.text) for el in d.elements) for d in docs]
            charged = list(getattr(redactor, "document_seconds", None) or [])
            _append(
                {
                    "stage": "redact",
                    "ids": ids,
                    "chars": chars,
                    "s": round(time.perf_counter() - start, 4),
                    "charged": [round(x, 3) for x in charged] if len(charged) == len(ids) else None,
                }
            )

    setattr(timed, _MARK, True)
    _replace(batches, "redact_all", original, timed, patched)


def install_timing(path: Path) -> Callable[[], None]:
    """Time partitioning (here and in parser processes started from now on) and redaction into
    ``path``; returns a function that undoes it (parser processes already started keep timing
    until they end, into ``path`` while it exists)."""
    os.environ[ENV] = str(path)
    patched: list[tuple[Any, str]] = []
    _wrap_partition(patched)
    _wrap_redact(patched)
    preload = None
    try:
        import pipelines.partition_pool as pool_module

        preload = getattr(pool_module, "_PRELOAD", None)
    except ImportError:
        pass
    if isinstance(preload, list) and __name__ not in preload:
        preload.append(__name__)

    def undo() -> None:
        for module, key in patched:
            wrapped = getattr(getattr(module, key), "__wrapped__", None)
            if wrapped is not None:
                setattr(module, key, wrapped)
        if isinstance(preload, list) and __name__ in preload:
            preload.remove(__name__)
        os.environ.pop(ENV, None)

    return undo


@dataclass(slots=True)
class Timings:
    """What a timings file says."""

    #: The slowest finished parse of each document, in seconds.
    partition: dict[str, float] = field(default_factory=dict)
    #: Documents whose parse started and never finished (their parser process was killed or died).
    unfinished: set[str] = field(default_factory=set)
    #: Per redaction batch: the documents, their characters of text and the seconds it took.
    redact_batches: list[tuple[list[str], list[int], float]] = field(default_factory=list)
    #: Per document: the detection seconds the redactor charged it, which its time limit is
    #: compared with (absent when a batch fell back to one document at a time).
    redact_charged: dict[str, float] = field(default_factory=dict)

    @property
    def measured(self) -> bool:
        """Whether any parse was timed."""
        return bool(self.partition or self.unfinished)

    def redact_share(self) -> dict[str, float]:
        """Per document: its share of its redaction batch's time, by characters of text (the
        batch's documents are detected together, so a share is all one can measure from outside)."""
        share: dict[str, float] = {}
        for ids, chars, seconds in self.redact_batches:
            total = sum(chars) or 1
            for sid, n in zip(ids, chars, strict=True):
                share[sid] = max(share.get(sid, 0.0), seconds * n / total)
        return share


def read_timings(path: Path, ids: set[str] | None = None) -> Timings:
    """Read a timings file (missing: nothing measured); with ``ids``, only those documents (the
    parser's own warm-up parse, for one, is not a document of the corpus)."""
    out = Timings()
    if not path.is_file():
        return out
    started: dict[tuple[str, int], int] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a killed process
        if rec.get("stage") == "redact":
            out.redact_batches.append((list(rec["ids"]), list(rec["chars"]), float(rec["s"])))
            for sid, seconds in zip(rec["ids"], rec.get("charged") or [], strict=False):
                out.redact_charged[sid] = max(out.redact_charged.get(sid, 0.0), float(seconds))
            continue
        if ids is not None and rec["id"] not in ids:
            continue
        key = (rec["id"], rec["pid"])
        if rec["event"] == "start":
            started[key] = started.get(key, 0) + 1
        else:
            started[key] = started.get(key, 0) - 1
            out.partition[rec["id"]] = max(out.partition.get(rec["id"], 0.0), float(rec["s"]))
    out.unfinished = {sid for (sid, _), n in started.items() if n > 0}
    return out


if os.environ.get(ENV):  # imported by a parser-process server: time its parses too
    _wrap_partition([])
