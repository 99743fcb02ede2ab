"""Where documents come from. Plain Python: no Dagster, no SQL.

Connectors register under the ``groundwork.connectors`` entry-point group (see
:mod:`groundwork.plugins`); :func:`build_connector` turns a source's config into its connector.
"""

from __future__ import annotations

from connectors.base import Connector, Known
from groundwork.plugins import connector_classes
from groundwork.settings import SourceConfig


def build_connector(source: SourceConfig) -> Connector:
    """The connector for one source, built by the class registered under its ``connector`` name."""
    connector: Connector = connector_classes()[source.connector].from_settings(source.name, source.settings)
    return connector


__all__ = ["Connector", "Known", "build_connector"]
