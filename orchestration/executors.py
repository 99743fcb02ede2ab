"""How the ``ingest`` job runs its steps: in one process, in a process per step, or in a pod per step.

Under ``in_process`` the plan reaches the index assets in memory and all regions are indexed in
one step (the models load once). Under ``multiprocess`` or ``k8s`` each region's index is a step
of its own: the steps run side by side, each loading its own models, and the plan (document
references, no content) reaches them through a filesystem IO manager in the instance's storage,
which the step processes (or pods, through a shared volume) must all see.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from groundwork.errors import ConfigError
from groundwork.settings import OrchestrationConfig


def step_isolated(orchestration: OrchestrationConfig) -> bool:
    """Whether each step runs in a process (or pod) of its own."""
    return orchestration.executor != "in_process"


def build_executor(orchestration: OrchestrationConfig) -> dg.ExecutorDefinition:
    """The executor the config names, at most ``max_concurrent`` steps at once."""
    limit = orchestration.max_concurrent
    if orchestration.executor == "multiprocess":
        return dg.multiprocess_executor.configured({"max_concurrent": limit})
    if orchestration.executor == "k8s":
        return _k8s_executor(limit)
    return dg.in_process_executor


def _k8s_executor(limit: int) -> dg.ExecutorDefinition:
    """Dagster's k8s job executor with ``max_concurrent`` defaulted; the rest comes from run config."""
    try:
        from dagster_k8s import k8s_job_executor
    except ImportError:
        raise ConfigError(
            "orchestration.executor is 'k8s' but dagster-k8s is not installed: pip install 'groundwork[deploy]'"
        ) from None

    def with_limit(config: dict[str, Any]) -> dict[str, Any]:
        return {"max_concurrent": limit, **config}

    return k8s_job_executor.configured(
        with_limit, name="k8s", config_schema=k8s_job_executor.config_schema.as_field()
    )


def plan_io_manager(orchestration: OrchestrationConfig) -> Any:
    """In memory within one process; in the instance's storage when steps run apart."""
    return dg.FilesystemIOManager() if step_isolated(orchestration) else dg.mem_io_manager
