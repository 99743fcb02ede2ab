"""Connectors register through the ``groundwork.connectors`` entry-point group: one defined outside
Groundwork's packages (here, a package written into a temporary folder) configures and ingests."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors import build_connector
from connectors.filesystem import FilesystemConnector
from groundwork.errors import ConfigError
from groundwork.plugins import connector_classes
from groundwork.settings import load_config
from orchestration.local import run_all
from orchestration.services import Services
from pipelines.embedding import Embedder
from pipelines.redact import Redactor
from tests.conftest import make_reader, write_config

MEMO_CONNECTOR = '''
"""A connector of short notes given in the config itself (a third party's, for the tests)."""

from typing import ClassVar, Literal

from groundwork.records import DocumentRef
from groundwork.settings import ConnectorSettings


class NotesSettings(ConnectorSettings):
    connector: Literal["notes"]
    notes: dict[str, str]
    readers: list[str] = []


class NotesConnector:
    settings_model: ClassVar[type[ConnectorSettings]] = NotesSettings

    def __init__(self, name, notes, readers):
        self.name, self.notes, self.readers = name, notes, readers

    @classmethod
    def from_settings(cls, name, settings):
        return cls(name, dict(settings.notes), list(settings.readers))

    def list(self, known=None):
        for key, text in sorted(self.notes.items()):
            yield DocumentRef(
                source=self.name,
                source_id=f"{key}.txt",
                uri=f"notes://{self.name}/{key}",
                version=str(hash(text) & 0xFFFFFFFF),
                size_bytes=len(text.encode()),
                permissions=tuple(self.readers),
            )

    def fetch(self, ref):
        return self.notes[ref.source_id.removesuffix(".txt")].encode()

    def change_token(self):
        return None
'''


def _install(site: Path, dist: str, module: str, source: str, entry: str) -> None:
    """Write a package and the metadata of an installed distribution that registers it."""
    (site / f"{module}.py").write_text(source)
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[groundwork.connectors]\n{entry}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    importlib.invalidate_caches()
    yield folder
    for name in [m for m in sys.modules if m.startswith("groundwork_notes")]:
        del sys.modules[name]


def test_the_filesystem_connector_is_registered_by_entry_point() -> None:
    assert connector_classes()["filesystem"] is FilesystemConnector


def test_a_connector_from_another_package_configures_and_ingests(
    site: Path, tmp_path: Path, database_url: str, redactor: Redactor, embedder: Embedder
) -> None:
    _install(
        site,
        "groundwork-notes",
        "groundwork_notes",
        MEMO_CONNECTOR,
        "notes = groundwork_notes:NotesConnector",
    )
    assert {"notes", "filesystem"} <= set(connector_classes())
    notes = {
        "leave": "Annual leave: every employee receives 25 days of paid holiday a year.",
        "travel": "Travel: book trains in standard class; flights need a manager's approval.",
    }
    config = load_config(
        write_config(
            tmp_path / "g.yaml",
            {
                "sources": [
                    {
                        "name": "memos",
                        "connector": "notes",
                        "notes": notes,
                        "readers": ["group:staff"],
                        "residency": "uk",
                        "contract": "none",
                        "access": ["group:staff"],
                    }
                ],
                "principals": [
                    {"name": "sam", "api_key_sha256": "d" * 64, "groups": ["staff"], "regions": ["uk"]}
                ],
                "database": {"url": database_url},
            },
        )
    )
    source = config.sources[0]
    assert source.settings.connector == "notes" and source.access == ["group:staff"]  # policy kept apart
    refs = list(build_connector(source).list())
    assert [r.permissions for r in refs] == [("group:staff",), ("group:staff",)]
    with Services(config, redactor=redactor, embedder=embedder) as services:
        plan, reports = run_all(services)
    assert len(plan.tasks) == 2 and sum(r.documents_written for r in reports) == 2
    with make_reader(config, redactor, embedder) as reader:
        out = reader.search(config.principal("sam"), "How many days of holiday do I get?", 1)
    assert out.results[0].source_uri == "notes://memos/leave"


def test_unknown_and_misspelt_connector_settings_are_clear_errors(site: Path, tmp_path: Path) -> None:
    data = {
        "sources": [
            {
                "name": "s",
                "connector": "sharepoint",
                "residency": "uk",
                "contract": "none",
                "access": ["public"],
            }
        ]
    }
    with pytest.raises(ConfigError, match=r"unknown connector 'sharepoint'; installed: filesystem"):
        load_config(write_config(tmp_path / "a.yaml", data))
    data["sources"][0].update(connector="filesystem", path="x", include_globs=["*"])
    with pytest.raises(ConfigError, match=r"sources\.0\.include_globs: Extra inputs are not permitted"):
        load_config(write_config(tmp_path / "b.yaml", data))


def test_the_same_name_from_two_packages_is_refused(site: Path) -> None:
    source = "class Other:\n    settings_model = None\n    from_settings = None\n"
    _install(
        site,
        "groundwork-other",
        "groundwork_notes_other",
        textwrap.dedent(source),
        "filesystem = groundwork_notes_other:Other",
    )
    with pytest.raises(ConfigError, match="connector 'filesystem' is registered twice"):
        connector_classes()
