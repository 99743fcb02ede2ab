"""The environment that keeps every library off the network: models and data come from packages.

Nothing here runs at import. Entry points (the CLI, the Dagster code location, the test session)
call :func:`configure_offline` once, before any heavy library loads.
"""

from __future__ import annotations

import os

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "DO_NOT_TRACK": "true",
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def configure_offline() -> None:
    """Set the offline switches that are not set already (an operator's own values win)."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
