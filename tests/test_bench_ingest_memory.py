"""The ingest memory benchmark (``benchmarks/ingest_memory.py``): its corpus, and a tiny real run."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

from benchmarks.ingest_memory import KINDS, build_corpus, write_config

PROJECT = Path(__file__).resolve().parents[1]


def test_corpus_is_distinct_and_mixed(tmp_path: Path) -> None:
    """Every document differs from every other (nothing is deduplicated), all five types appear,
    and the same seed writes the same text."""
    counts = build_corpus(tmp_path / "a", 120, 600, seed=3)
    files = sorted(p for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 120
    assert set(counts) == {kind for kind, _ in KINDS}
    digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    assert len(digests) == 120
    build_corpus(tmp_path / "b", 5, 600, seed=3)
    text = [p for p in files if p.suffix != ".docx" and int(p.stem.split("-")[1]) < 5]
    for p in text:
        assert (tmp_path / "b" / p.relative_to(tmp_path / "a")).read_bytes() == p.read_bytes()
    sizes = [p.stat().st_size for p in files if p.suffix in (".txt", ".md")]
    assert 200 < sum(sizes) / len(sizes) < 1200


def test_config_has_one_filesystem_source(tmp_path: Path) -> None:
    """The config admits the corpus without a contract and keeps its state (its database) in the run's folder."""
    from groundwork.settings import load_config

    config = load_config(write_config(tmp_path))
    assert [s.name for s in config.sources] == ["bench"]
    assert config.state_dir == tmp_path / ".groundwork"


def test_tiny_run_indexes_every_document_and_prints_figures(tmp_path: Path) -> None:
    """30 documents through ``groundwork ingest`` on a real embedded PostgreSQL: all indexed, none
    failed, and the memory figures are printed and non-zero."""
    done = subprocess.run(
        [sys.executable, "benchmarks/ingest_memory.py", "--sizes", "30", "--keep", str(tmp_path / "run")],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert "30 of 30 documents indexed" in out, out[-3000:]
    assert ", 0 failed" in out
    peaks = re.search(
        r"peak tree PSS ([\d,]+) MiB, peak tree RSS ([\d,]+) MiB, peak ingest-process RSS ([\d,]+) MiB", out
    )
    assert peaks is not None, out[-3000:]
    pss, rss, ingest = (int(x.replace(",", "")) for x in peaks.groups())
    assert 0 < pss <= rss
    assert 0 < ingest <= rss
    assert re.search(r"-> \d+\.\d\d documents/s", out)
