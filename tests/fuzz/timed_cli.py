"""The ``groundwork`` command with each document's partitioning and redaction timed (fuzz runner).

``python -m tests.fuzz.timed_cli --timings FILE ingest --config CFG`` runs the same entry point as
the ``groundwork`` script (:func:`cli.main.main`) after :func:`tests.fuzz.timing.install_timing`,
which only wraps two functions to write timings to ``FILE``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.fuzz.timing import install_timing


def main(argv: list[str] | None = None) -> int:
    """Install the timing, then run the ``groundwork`` command line with the remaining arguments."""
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.timed_cli")
    parser.add_argument("--timings", required=True, type=Path, help="JSON-lines file to append to")
    args, rest = parser.parse_known_args(argv)
    install_timing(args.timings.resolve())
    from cli.main import main as groundwork_main

    return groundwork_main(rest)


if __name__ == "__main__":
    sys.exit(main())
