"""Serving processes let idle OpenMP threads sleep: set before torch loads, never over an operator's value."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from serving.retrieval import quiet_idle_threads
from tests.conftest import PROJECT


def test_the_wait_policy_is_passive_unless_the_operator_chose_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    quiet_idle_threads()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    quiet_idle_threads()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_the_serve_commands_set_it_before_anything_imports_torch() -> None:
    # OpenMP reads the policy when torch loads: everything `groundwork serve` and `groundwork mcp`
    # import before calling quiet_idle_threads must leave torch unloaded.
    code = (
        "import sys, cli.main, cli.commands, serving.api, serving.mcp, serving.retrieval, serving.auth,"
        " serving.limits; print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
