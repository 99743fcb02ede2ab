"""Connector discovery through the ``groundwork.connectors`` entry-point group.

A connector is a class with a ``settings_model`` (its config, a subclass of
:class:`~groundwork.settings.ConnectorSettings`) and a ``from_settings(name, settings)`` factory.
A package, Groundwork's own or a third party's, registers it in its ``pyproject.toml``::

    [project.entry-points."groundwork.connectors"]
    s3 = "my_package.s3:S3Connector"

The config schema and :func:`connectors.build_connector` both read this registry, so a new
connector needs no edit to Groundwork. The same name from two different packages is refused.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

from groundwork.errors import ConfigError

ENTRY_POINT_GROUP = "groundwork.connectors"


def _points() -> list[EntryPoint]:
    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: (ep.name, ep.value))


def connector_classes() -> dict[str, Any]:
    """Every installed connector class by name (loads each connector's module, which must be cheap)."""
    chosen: dict[str, EntryPoint] = {}
    for ep in _points():
        seen = chosen.get(ep.name)
        if seen is not None and seen.value != ep.value:
            raise ConfigError(
                f"connector {ep.name!r} is registered twice ({seen.value} and {ep.value}); "
                "uninstall one of the packages"
            )
        chosen[ep.name] = ep
    classes: dict[str, Any] = {}
    for name, ep in chosen.items():
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin must say which one it is
            raise ConfigError(
                f"connector {name!r} ({ep.value}) cannot be loaded: {type(exc).__name__}: {exc}"
            ) from exc
        if not hasattr(cls, "settings_model") or not hasattr(cls, "from_settings"):
            raise ConfigError(f"connector {name!r} ({ep.value}) has no settings_model / from_settings")
        classes[name] = cls
    return classes
