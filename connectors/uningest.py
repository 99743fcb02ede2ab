"""The unstructured connector: any source of unstructured-ingest (SharePoint, Google Drive, ...).

unstructured-ingest's source connectors each pair an *indexer* (lists the source, one ``FileData``
per document, with the source's own version, dates and permissions) and a *downloader* (writes one
document to a local folder). This adapter runs the pair named by ``source`` (a key of
unstructured-ingest's ``source_registry``: ``local``, ``s3``, ``sharepoint``, ``google_drive``,
``confluence``, ``slack``, ``salesforce``, ...) with that source's own config fields, so Groundwork
inherits the whole catalogue. Secrets (the source's *access config*) never sit in the file: they are
read from the environment variables ``secrets_env`` names. unstructured-ingest is imported on first
use, so registering the connector costs nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from connectors.base import Known, secret_keys
from groundwork.errors import ConnectorError
from groundwork.records import DocumentRef
from groundwork.settings import ConnectorSettings

logger = logging.getLogger(__name__)

#: Config keys that look like secrets: refused in the file, so a secret never sits there.
_SECRET_KEY = re.compile(
    r"secret|passw|token|api_?key|access_?key|key_?id|private_?key|credential|client_?cred|^key$", re.I
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_LEFT_AS_IS = "the source is left as it is and listed again on the next run"


class UnstructuredSettings(ConnectorSettings):
    """One unstructured-ingest source: its registry name and its own config fields, secrets apart.

    ``indexer``, ``downloader`` and ``connection`` are passed to that source's indexer, downloader
    and connection config classes as they are (see unstructured-ingest's documentation of each
    source); ``secrets_env`` maps the fields of its access config (its secrets: a token, a client
    secret, a password) to the environment variables that hold them. A key that looks like a secret
    anywhere else is refused, naming the key and never echoing its value.
    """

    connector: Literal["unstructured"]
    source: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")
    indexer: dict[str, Any] = Field(default_factory=dict)
    downloader: dict[str, Any] = Field(default_factory=dict)
    connection: dict[str, Any] = Field(default_factory=dict)
    secrets_env: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, data: Any) -> Any:
        """Refuse secrets in the file: name the keys, never their values."""
        if not isinstance(data, dict):
            return data
        found = secret_keys(data, _SECRET_KEY, nested=False)
        for part in ("indexer", "downloader", "connection"):
            found += secret_keys(data.get(part), _SECRET_KEY, part)
        if found:
            raise ValueError(
                f"secrets never go in the configuration file (found {', '.join(sorted(found))}); "
                "name the environment variable that holds each one under secrets_env "
                "(secrets_env: {FIELD: ENV_VAR})"
            )
        env = data.get("secrets_env") or {}
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and _ENV_NAME.match(v) for k, v in env.items()
        ):
            raise ValueError("secrets_env maps access-config fields to environment variable names")
        return data


class UnstructuredIngestConnector:
    """Runs one unstructured-ingest source's indexer to list and its downloader to fetch.

    Identity: the ``FileData``'s ``source_identifiers.rel_path`` (the path under the configured
    root, which survives moving the root and is what policy globs match), else its ``identifier``
    (the source's own id: a Drive file id, a page id). Version: the source's ``metadata.version``,
    else ``metadata.date_modified``, else (a source reporting neither) the SHA-256 of the content,
    downloaded at listing time. Permissions: unstructured-ingest's normalised ``permissions_data``
    (``read`` users and groups) become ``principal:`` / ``group:`` grants; any other shape is None.
    Any failure to list raises :class:`ConnectorError` naming the source and the upstream error's
    class (never its message, which may carry a URL or token), so the planner deletes nothing.
    """

    settings_model: ClassVar[type[ConnectorSettings]] = UnstructuredSettings

    def __init__(self, name: str, settings: UnstructuredSettings) -> None:
        self.name = name
        self.settings = settings
        self._connection: Any = None

    @classmethod
    def from_settings(cls, name: str, settings: ConnectorSettings) -> UnstructuredIngestConnector:
        """The connector for a source's validated settings."""
        assert isinstance(settings, UnstructuredSettings)
        return cls(name, settings)

    @property
    def where(self) -> str:
        """How errors name the source (never a secret)."""
        return f"source {self.name!r} (unstructured-ingest {self.settings.source!r})"

    # --- Building the upstream parts -------------------------------------------------------------

    def _entry(self) -> Any:
        try:
            import unstructured_ingest.processes.connectors  # noqa: F401  (fills the registry)
            from unstructured_ingest.processes.connector_registry import source_registry
        except ImportError as exc:
            raise ConnectorError(f"{self.where}: unstructured-ingest is not installed ({exc.name})") from None
        entry = source_registry.get(self.settings.source)
        if entry is None:
            raise ConnectorError(
                f"{self.where}: unstructured-ingest has no source of that name; "
                f"it has {', '.join(sorted(source_registry))}"
            )
        return entry

    def _config(self, cls: Any, values: dict[str, Any], part: str) -> Any:
        """``cls(**values)``, its validation errors reported by field and message only (no value)."""
        from pydantic import ValidationError

        try:
            return cls(**values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{part}.{'.'.join(str(p) for p in e['loc']) or '(all)'}: {e['msg']}" for e in exc.errors()
            )
            raise ConnectorError(f"{self.where}: invalid config: {problems}") from None

    def connection(self) -> Any:
        """The source's connection config, its access config filled from the environment."""
        if self._connection is not None:
            return self._connection
        import os

        entry = self._entry()
        s = self.settings
        cls = entry.connection_config
        if cls is None:
            return None
        values = dict(s.connection)
        access_cls = _access_class(cls)
        if access_cls is not None:
            unknown = sorted(set(s.secrets_env) - set(access_cls.model_fields))
            if unknown:
                raise ConnectorError(
                    f"{self.where}: secrets_env names {', '.join(unknown)}, which the source's access "
                    f"config does not have; it has {', '.join(sorted(access_cls.model_fields)) or 'none'}"
                )
            missing = sorted(v for v in s.secrets_env.values() if not os.environ.get(v))
            if missing:
                raise ConnectorError(
                    f"{self.where}: the environment variable(s) {', '.join(missing)} named in "
                    "secrets_env are not set; the source's credentials cannot be read"
                )
            secrets = {field: os.environ[var] for field, var in s.secrets_env.items()}
            values["access_config"] = self._config(access_cls, secrets, "secrets_env")
        self._connection = self._config(cls, values, "connection")
        return self._connection

    def _indexer(self) -> Any:
        entry = self._entry()
        kwargs: dict[str, Any] = {}
        if entry.indexer_config is not None:
            kwargs["index_config"] = self._config(entry.indexer_config, self.settings.indexer, "indexer")
        connection = self.connection()
        if connection is not None:
            kwargs["connection_config"] = connection
        return entry.indexer(**kwargs)

    def _downloader(self, folder: Path) -> Any:
        entry = self._entry()
        values = {**self.settings.downloader, "download_dir": folder}
        kwargs: dict[str, Any] = {}
        if entry.downloader_config is not None:
            kwargs["download_config"] = self._config(entry.downloader_config, values, "downloader")
        connection = self.connection()
        if connection is not None:
            kwargs["connection_config"] = connection
        return entry.downloader(**kwargs)

    # --- Listing ---------------------------------------------------------------------------------

    def _file_data(self) -> Iterator[Any]:
        """Every ``FileData`` the source's indexer yields (raises :class:`ConnectorError`)."""
        if self.settings.source == "local":
            # The local indexer lists a missing folder as empty, which would delete everything.
            root = Path(str(self.settings.indexer.get("input_path", "")))
            if not str(root) or not root.exists():
                raise ConnectorError(f"{self.where}: the folder {str(root)!r} does not exist; {_LEFT_AS_IS}")
        indexer = self._indexer()
        try:
            indexer.precheck()
            if indexer.is_async():
                yield from asyncio.run(_collect(indexer.run_async()))
            else:
                yield from indexer.run()
        except ConnectorError:
            raise
        except Exception as exc:
            raise self._error(exc, "list") from None

    def list(self, known: Known | None = None) -> Iterator[DocumentRef]:
        """Yield a reference for every document the indexer lists, from its metadata alone.

        ``known`` is not needed: versions come from the source's own metadata (except for a source
        reporting no version and no modification date, whose content is hashed). A source id seen
        twice in one listing keeps its first document; the later one is skipped with a warning.
        """
        seen: set[str] = set()
        for data in self._file_data():
            if getattr(data, "batch_items", None) is not None:
                raise ConnectorError(
                    f"{self.where}: this source lists batches of records, not documents; "
                    "use the sql connector for a database"
                )
            ids = data.source_identifiers
            source_id = (ids.rel_path if ids is not None and ids.rel_path else "") or data.identifier
            source_id = source_id.lstrip("/")
            if not source_id or "\x00" in source_id or source_id in seen:
                logger.warning("%s: skipped a document with an empty or repeated id", self.where)
                continue
            seen.add(source_id)
            meta = data.metadata
            filename = ids.filename if ids is not None and ids.filename else source_id.rsplit("/", 1)[-1]
            ref = DocumentRef(
                source=self.name,
                source_id=source_id,
                uri=meta.url or _uri(ids.fullpath if ids is not None else "") or data.identifier,
                version="",
                size_bytes=int(meta.filesize_bytes or 0),
                modified_at=_when(meta.date_modified),
                permissions=_grants(meta.permissions_data),
                extra={"filename": filename, "file_data": data.model_dump_json()},
            )
            if meta.version:
                version = f"version:{meta.version}"
            elif meta.date_modified:
                version = f"modified:{meta.date_modified}"
            else:
                version = "sha256:" + hashlib.sha256(self.fetch(ref)).hexdigest()
            yield DocumentRef(**{**_fields(ref), "version": version})

    def change_token(self) -> str | None:
        """None: a cheap token would need a listing, which is what a run does anyway."""
        return None

    # --- Fetching --------------------------------------------------------------------------------

    def fetch(self, ref: DocumentRef) -> bytes:
        """The bytes of one listed document: the downloader writes it to a private temporary
        folder, which is removed afterwards (a file the downloader points at elsewhere, as the local
        source does with the original, is read and left alone)."""
        from unstructured_ingest.data_types.file_data import file_data_from_dict

        raw = ref.extra.get("file_data")
        if not raw:
            raise ConnectorError(f"{self.where}: {ref.source_id!r} was not listed by this connector")
        import json

        data = file_data_from_dict(json.loads(raw))
        folder = Path(tempfile.mkdtemp(prefix="groundwork-uningest-"))
        try:
            downloader = self._downloader(folder)
            try:
                response = downloader.run(file_data=data)
            except NotImplementedError:
                response = asyncio.run(downloader.run_async(file_data=data))
            if isinstance(response, list):
                if len(response) != 1:
                    raise ConnectorError(
                        f"{self.where}: {ref.source_id!r} downloaded as {len(response)} files, not one"
                    )
                response = response[0]
            return Path(response["path"]).read_bytes()
        except ConnectorError:
            raise
        except FileNotFoundError:
            raise ConnectorError(f"{self.where}: {ref.source_id!r} no longer exists") from None
        except Exception as exc:
            raise self._error(exc, f"read {ref.source_id!r} from") from None
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _error(self, exc: Exception, doing: str) -> ConnectorError:
        """A :class:`ConnectorError` naming the source and the upstream error's class only."""
        from unstructured_ingest import error as ue

        head = f"{self.where}: cannot {doing} the source"
        kind = type(exc).__name__
        if isinstance(exc, ImportError):  # a source's own extra: its message names packages only
            return ConnectorError(f"{head}: a dependency is missing ({exc}); {_LEFT_AS_IS}")
        if isinstance(exc, ue.UserAuthError):
            return ConnectorError(
                f"{head}: the source refused the credentials ({kind}); check the environment "
                f"variables named in secrets_env ({', '.join(sorted(self.settings.secrets_env.values()))})"
            )
        if isinstance(
            exc, ue.ConnectionError | ue.TimeoutError | ue.RateLimitError | ConnectionError | TimeoutError
        ):
            return ConnectorError(
                f"{head}: it could not be reached or refused the connection ({kind}), taken as a "
                "transient failure; check that it is up and the variables named in secrets_env "
                f"({', '.join(sorted(self.settings.secrets_env.values())) or 'none'}); {_LEFT_AS_IS}"
            )
        if isinstance(exc, ue.NotFoundError | FileNotFoundError):
            return ConnectorError(f"{head}: not found ({kind}); {_LEFT_AS_IS}")
        return ConnectorError(f"{head}: {kind}; {_LEFT_AS_IS}")


async def _collect(agen: Any) -> list[Any]:
    return [item async for item in agen]


def _access_class(connection_cls: Any) -> Any:
    """The access-config model inside a connection config's ``Secret[...]`` field, or None."""
    from typing import get_args

    field = connection_cls.model_fields.get("access_config")
    if field is None:
        return None
    for arg in [field.annotation, *get_args(field.annotation)]:
        for inner in [arg, *get_args(arg)]:
            if isinstance(inner, type) and hasattr(inner, "model_fields") and "Secret" not in inner.__name__:
                return inner
    return None


def _uri(path: str) -> str:
    """A ``file://`` URI for an absolute local path, else the path as the source gave it."""
    return Path(path).as_uri() if path.startswith("/") else path


def _when(value: str | None) -> datetime | None:
    """An epoch or ISO-8601 date from the metadata as an aware datetime, None if it is neither."""
    from unstructured_ingest.utils.string_and_date_utils import parse_timestamp

    seconds = parse_timestamp(value)
    return datetime.fromtimestamp(seconds, UTC) if seconds is not None else None


def _grants(data: list[dict[str, Any]] | None) -> tuple[str, ...] | None:
    """``read`` users and groups of unstructured-ingest's normalised permissions as grants.

    That shape (``[{"read": {"users": [...], "groups": [...]}}, {"update": ...}]``) is what the
    SharePoint, OneDrive, Google Drive, Confluence and Box sources report; anything else (the
    local source's file ``mode``) is not a grant, and gives None.
    """
    if not data:
        return None
    for item in data:
        read = item.get("read") if isinstance(item, dict) else None
        if isinstance(read, dict):
            users = [f"principal:{u}" for u in read.get("users") or [] if isinstance(u, str)]
            groups = [f"group:{g}" for g in read.get("groups") or [] if isinstance(g, str)]
            return tuple(sorted(set(users + groups)))
    return None


def _fields(ref: DocumentRef) -> dict[str, Any]:
    return {name: getattr(ref, name) for name in DocumentRef.__dataclass_fields__}
