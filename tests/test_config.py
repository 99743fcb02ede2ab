"""Config loading: the documented example works; bad values get errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from groundwork.errors import ConfigError
from groundwork.settings import load_config
from indexes.regions import resolve_targets
from tests.conftest import write_config

ISSUE_EXAMPLE = """
sources:
  - name: hr
    connector: filesystem
    path: corpus/hr
    residency: uk
    access: [group:hr]
  - name: handbook
    connector: filesystem
    path: corpus/handbook
    residency: eu
    access: [group:staff]
principals:
  - name: alice
    api_key_sha256: {a}
    groups: [hr, staff]
    regions: [uk, eu]
  - name: bob
    api_key_sha256: {b}
    groups: [staff]
    regions: [eu]
"""


def test_documented_example_loads_with_paths_relative_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "groundwork.yaml"
    path.parent.mkdir()
    path.write_text(ISSUE_EXAMPLE.format(a="a" * 64, b="b" * 64))
    config = load_config(path)
    assert config.sources[0].settings.path == (tmp_path / "conf" / "corpus" / "hr").resolve()
    assert config.state_dir == (tmp_path / "conf" / ".groundwork").resolve()
    assert config.regions == ["eu", "uk"]
    assert config.principal("alice").grants() == ["public", "principal:alice", "group:hr", "group:staff"]


def _base() -> dict:
    return {
        "sources": [
            {
                "name": "hr",
                "connector": "filesystem",
                "path": "x",
                "residency": "uk",
                "contract": "none",
                "access": ["group:hr"],
            }
        ]
    }


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["sources"][0].update(residency="U K"), "sources.0.residency"),
        (lambda d: d["sources"][0].update(rules=[{"match": "pay/**"}]), "sets neither residency nor access"),
        (lambda d: d["sources"][0].update(rules=[{"match": "pay/**", "access": []}]), "at least one grant"),
        (
            lambda d: d["sources"][0].update(rules=[{"match": "pay/**", "residency": "U K"}]),
            "rules.0.residency",
        ),
        (lambda d: d["sources"][0].update(access=["everyone"]), "sources.0.access.0"),
        (lambda d: d["sources"][0].update(connector="ftp"), "unknown connector 'ftp'; installed: filesystem"),
        (lambda d: d["sources"][0].update(pathh="x"), "sources.0.pathh: Extra inputs"),
        (lambda d: d.update(sources=d["sources"] * 2), "duplicate sources"),
        (lambda d: d.update(colour="blue"), "colour"),
        (lambda d: d.update(retrieval={"score_floor": 0.9, "score_ceiling": 0.1}), "score_floor"),
        (
            lambda d: d.update(principals=[{"name": "a", "api_key_sha256": "nothex", "regions": ["uk"]}]),
            "principals.0.api_key_sha256",
        ),
        (lambda d: d.update(database={"urls": {"eu": "postgresql://x/y"}}), "no URL for region(s) ['uk']"),
    ],
)
def test_invalid_config_names_the_field(tmp_path: Path, mutate, expected: str) -> None:
    data = _base()
    mutate(data)
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path / "c.yaml", data))
    assert expected in str(err.value)


def test_unknown_connector_names_the_bad_value(tmp_path: Path) -> None:
    data = _base()
    data["sources"][0]["connector"] = "ftp"
    with pytest.raises(ConfigError, match="'ftp'"):
        load_config(write_config(tmp_path / "c.yaml", data))


def test_database_url_is_never_echoed(tmp_path: Path) -> None:
    data = _base()
    data["database"] = {"url": 42, "urls": {"uk": "postgresql://u:hunter2@h/db"}}
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path / "c.yaml", data))
    assert "hunter2" not in str(err.value)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("- a list")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)


def test_environment_database_url_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROUNDWORK_DATABASE_URL", "postgresql://u:p@db.example/gw")
    config = load_config(write_config(tmp_path / "c.yaml", _base()))
    assert config.database.url is not None
    assert config.database.url.get_secret_value() == "postgresql://u:p@db.example/gw"


def test_the_audit_url_comes_per_region_from_the_file_or_for_all_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _base()
    data["sources"].append({**data["sources"][0], "name": "staff", "residency": "eu"})
    data["database"] = {
        "url": "postgresql://owner:p@primary.example/gw",
        "reader_url": "postgresql://groundwork_reader@replica.example/gw",
    }
    plain = load_config(write_config(tmp_path / "plain.yaml", data))
    regions = plain.regions
    assert len(regions) == 2
    # Unset: the API appends its records where it reads.
    assert all(t.audit_dsn is None for t in resolve_targets(plain).values())
    data["database"]["audit_urls"] = {regions[0]: "postgresql://groundwork_reader@primary.example/gw"}
    one = resolve_targets(load_config(write_config(tmp_path / "one.yaml", data)))
    assert one[regions[0]].audit_dsn == "postgresql://groundwork_reader@primary.example/gw"
    assert all(one[r].audit_dsn is None for r in regions[1:])
    monkeypatch.setenv("GROUNDWORK_DATABASE_AUDIT_URL", "postgresql://groundwork_reader@other.example/gw")
    env = load_config(write_config(tmp_path / "env.yaml", data))
    assert not env.database.audit_urls  # the environment replaces the file's per-region URLs
    assert {t.audit_dsn for t in resolve_targets(env).values()} == {
        "postgresql://groundwork_reader@other.example/gw"
    }
