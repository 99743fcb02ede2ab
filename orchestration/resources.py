"""The Dagster resource that hands assets their :class:`~orchestration.services.Services`."""

from __future__ import annotations

import dagster as dg
from pydantic import PrivateAttr

from groundwork.settings import load_config
from indexes.locks import RunLock
from orchestration.executors import step_isolated
from orchestration.services import Services

INGEST_JOB = "ingest"
BACKFILL_JOB = "backfill"
RETENTION_JOB = "retention"


class GroundworkResource(dg.ConfigurableResource):
    """Connectors, redactor, embedder and region indexes for the config file at ``config_path``.

    For an ``ingest`` or ``backfill`` run it first migrates every region (as the owner) and takes
    the ingest run lock: exclusively for ``ingest`` in one process, shared for steps that run side
    by side (``backfill``'s, and ``ingest``'s under a step-isolated executor: there the run queue's
    one-ingest-at-a-time limit keeps ingest runs apart). A run that finds the lock taken fails
    before changing anything.
    """

    config_path: str
    _services: Services | None = PrivateAttr(default=None)
    _lock: RunLock | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Load the config once per run (per step process under the multiprocess executor)."""
        services = Services(load_config(self.config_path))
        self._services = services
        job = context.dagster_run.job_name if context.dagster_run is not None else None
        if job in (INGEST_JOB, BACKFILL_JOB):
            services.migrate()
            side_by_side = job == BACKFILL_JOB or step_isolated(services.config.orchestration)
            self._lock = services.catalog.run_lock(shared=side_by_side)
            self._lock.acquire()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Release the run lock and close database pools at the end of the run."""
        if self._lock is not None:
            self._lock.release()
        if self._services is not None:
            self._services.close()

    @property
    def services(self) -> Services:
        """This run's services."""
        if self._services is None:
            self._services = Services(load_config(self.config_path))
        return self._services
