"""Where documents come from. Plain Python: no Dagster here.

Connectors register by name in :data:`REGISTRY`; :func:`build_connector` turns a source's config
into a connector.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connectors.base import Connector, DocumentRef
from connectors.filesystem import FilesystemConnector
from groundwork.errors import ConfigError

#: Connector factories by the ``connector`` name used in the config file.
REGISTRY: dict[str, Callable[[Any], Connector]] = {}


def register(name: str, factory: Callable[[Any], Connector]) -> None:
    """Add a connector factory; a name can be registered only once."""
    if name in REGISTRY:
        raise ValueError(f"connector {name!r} is already registered")
    REGISTRY[name] = factory


def build_connector(source: Any) -> Connector:
    """The connector for one source config, chosen by its ``connector`` field."""
    try:
        factory = REGISTRY[source.connector]
    except KeyError:
        raise ConfigError(f"unknown connector {source.connector!r}; known: {sorted(REGISTRY)}") from None
    return factory(source)


register(
    "filesystem",
    lambda s: FilesystemConnector(s.name, s.path, include=list(s.include), exclude=list(s.exclude)),
)

__all__ = ["REGISTRY", "Connector", "DocumentRef", "FilesystemConnector", "build_connector", "register"]
