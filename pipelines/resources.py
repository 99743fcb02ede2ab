"""The Dagster resource that hands assets their :class:`~groundwork.services.Services`."""

import dagster as dg
from pydantic import PrivateAttr

from groundwork.config import load_config
from groundwork.services import Services


class GroundworkResource(dg.ConfigurableResource):
    """Connectors, redactor, embedder and region indexes for the config file at ``config_path``."""

    config_path: str
    _services: Services | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Load the config once per run; heavy parts load on first use."""
        self._services = Services(load_config(self.config_path))

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Close database pools at the end of the run."""
        if self._services is not None:
            self._services.close()

    @property
    def services(self) -> Services:
        """This run's services."""
        if self._services is None:
            self._services = Services(load_config(self.config_path))
        return self._services
