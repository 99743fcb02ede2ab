"""The house rules that a reader of the code relies on: small modules, configs that load, and no
environment changed by importing anything of ours."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from groundwork.settings import load_config
from tests.conftest import PROJECT

PACKAGES = [
    "groundwork",
    "connectors",
    "pipelines",
    "indexes",
    "telemetry",
    "orchestration",
    "serving",
    "stewardship",
    "cli",
    "clients",
]


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (PROJECT / pkg).rglob("*.py"))


def test_no_source_module_is_over_400_lines() -> None:
    long = {
        str(p.relative_to(PROJECT)): n for p in _modules() if (n := len(p.read_text().splitlines())) > 400
    }
    assert long == {}


def test_every_example_config_loads() -> None:
    # State folders (``.groundwork/``: the embedded database, the deployment's Dagster instance) are not examples.
    configs = sorted(p for p in PROJECT.glob("examples/**/*.yaml") if ".groundwork" not in p.parts)
    assert configs
    for path in configs:
        assert load_config(path).sources


def test_importing_every_module_leaves_the_environment_alone() -> None:
    names = [
        ".".join(p.relative_to(PROJECT).with_suffix("").parts).removesuffix(".__init__") for p in _modules()
    ]
    script = (
        "import importlib, json, os, sys\n"
        "before = dict(os.environ)\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "after = dict(os.environ)\n"
        "print(json.dumps(sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT, capture_output=True, text=True, timeout=300, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
