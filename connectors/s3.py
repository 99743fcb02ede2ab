"""The s3 connector: the objects of one bucket (and prefix) of any S3-compatible store.

AWS, MinIO, Ceph and the like: ``endpoint_url`` points at a store other than AWS. Credentials come
only from the standard AWS chain (the environment, a named profile, an instance or task role), never
from the configuration file: a credential key in a source entry is refused. boto3 is imported on
first use, so registering the connector costs nothing.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from connectors.base import Known, secret_keys
from groundwork.errors import ConnectorError
from groundwork.globs import path_matches
from groundwork.records import DocumentRef
from groundwork.sections import AccessGrant
from groundwork.settings import ConnectorSettings

logger = logging.getLogger(__name__)

#: Source-entry keys that look like credentials: refused, so a secret never sits in the file.
_CREDENTIAL_KEY = re.compile(r"secret|password|passwd|access_key|key_id|session_token|credential", re.I)

#: Error codes that mean the store refused the caller's credentials (not the caller's rights).
_BAD_CREDENTIALS = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "InvalidClientTokenId",
        "AuthorizationHeaderMalformed",
    }
)
_ACCESS_DENIED = frozenset({"AccessDenied", "AllAccessDisabled", "AccountProblem"})

#: What a source left unlisted does: nothing of it is deleted, and the next run tries again.
_LEFT_AS_IS = "the source is left as it is and listed again on the next run"


class S3Settings(ConnectorSettings):
    """One bucket of an S3-compatible store: ``bucket``, an optional key ``prefix``, and where it is.

    ``endpoint_url`` (MinIO, Ceph, ...; none for AWS), ``region`` and ``profile`` (a named profile
    of the standard AWS configuration) say how to reach it; credentials never appear here.
    ``include`` / ``exclude`` are globs on the object key. ``max_attempts`` counts every try of a
    request, the first included, with exponential backoff between them (botocore's standard mode).
    ``readers_tag`` names an object tag whose value lists the object's readers (separated by spaces
    or ``+``), mapped to grants by ``reader_groups``: the source's own permissions, which a reader
    needs beside the policy's grants. An object without the tag, or whose readers map to nothing,
    names no reader (and is refused at ingest).
    """

    connector: Literal["s3"]
    bucket: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$")
    prefix: str = Field(default="", max_length=1024)
    endpoint_url: str | None = None
    region: str | None = Field(default=None, pattern=r"^[a-z0-9-]{1,40}$")
    profile: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.+@-]{1,128}$")
    include: list[str] = Field(default_factory=lambda: ["**/*"])
    exclude: list[str] = Field(default_factory=list)
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    page_size: int = Field(default=1000, ge=1, le=1000)
    max_attempts: int = Field(default=5, ge=1, le=20)
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    readers_tag: str | None = Field(default=None, pattern=r"^[A-Za-z0-9 _.:/=+@-]{1,128}$")
    reader_groups: dict[str, list[AccessGrant]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _groups_need_a_tag(self) -> S3Settings:
        if self.reader_groups and self.readers_tag is None:
            raise ValueError("reader_groups maps the readers named by an object tag: set readers_tag too")
        return self

    @model_validator(mode="before")
    @classmethod
    def _no_credentials(cls, data: Any) -> Any:
        """Refuse credentials in the file, naming the key but never echoing its value."""
        if isinstance(data, dict):
            found = sorted(secret_keys(data, _CREDENTIAL_KEY, nested=False))
            if found:
                raise ValueError(
                    f"credentials never go in the configuration file (found {', '.join(found)}); the s3 "
                    "connector takes them from the standard AWS chain: the environment "
                    "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), a named profile "
                    "(profile: NAME) or an instance or task role"
                )
        return data

    @field_validator("endpoint_url")
    @classmethod
    def _plain_endpoint(cls, value: str | None) -> str | None:
        """An http(s) URL without user, password, query or fragment (none may carry a secret)."""
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not hold a user or password: credentials come from the AWS chain")
        if parts.query or parts.fragment:
            raise ValueError("must not hold a query or fragment")
        return value.rstrip("/")


class S3Connector:
    """Lists the objects under ``prefix`` in ``bucket`` (paginated) and fetches them one at a time.

    The source id is the object key; the version is the object's ETag, which the store changes
    whenever the object is written (for a single-part upload it is the MD5 of the content, so an
    object copied to a new key is recognised as a rename and not embedded again). A fetch asks for
    the listed ETag (``If-Match``): an object replaced since it was listed fails that document, to
    be picked up on the next run, rather than storing new content under the old version. Transient
    failures (connection errors, throttling, 5xx) are retried by botocore with exponential backoff;
    a listing that still fails raises :class:`ConnectorError` naming the source, and the planner
    then leaves the source as it is (nothing is deleted).
    """

    settings_model: ClassVar[type[ConnectorSettings]] = S3Settings

    def __init__(self, name: str, settings: S3Settings) -> None:
        self.name = name
        self.settings = settings
        self._client: Any = None
        #: Listing requests made by the last listing (one per page).
        self.pages = 0

    @classmethod
    def from_settings(cls, name: str, settings: ConnectorSettings) -> S3Connector:
        """The connector for a source's validated settings."""
        assert isinstance(settings, S3Settings)
        return cls(name, settings)

    @property
    def where(self) -> str:
        """The bucket and endpoint, as errors name them (never a credential)."""
        s = self.settings
        host = urlsplit(s.endpoint_url).netloc if s.endpoint_url else "AWS"
        return f"bucket {s.bucket!r} at {host}"

    def client(self) -> Any:
        """The boto3 S3 client, made on first use with the standard credential chain and retries."""
        if self._client is None:
            import boto3
            from botocore.config import Config
            from botocore.exceptions import BotoCoreError

            s = self.settings
            style = "path" if s.addressing_style == "auto" and s.endpoint_url else s.addressing_style
            # total_max_attempts counts the first try too (botocore's max_attempts counts retries only).
            config = Config(
                retries={"total_max_attempts": s.max_attempts, "mode": "standard"},
                connect_timeout=s.timeout_seconds,
                read_timeout=s.timeout_seconds,
                s3={"addressing_style": style},
                user_agent_extra="groundwork",
            )
            try:
                session = boto3.session.Session(profile_name=s.profile, region_name=s.region)
                self._client = session.client("s3", endpoint_url=s.endpoint_url, config=config)
            except BotoCoreError as exc:
                raise self._error(exc, "connect to") from None
        return self._client

    def _selected(self, key: str) -> bool:
        s = self.settings
        return any(path_matches(key, p) for p in s.include) and not any(
            path_matches(key, p) for p in s.exclude
        )

    def _objects(self) -> Iterator[dict[str, Any]]:
        """Every object under the prefix, page by page (raises :class:`ConnectorError`)."""
        from botocore.exceptions import BotoCoreError, ClientError

        s = self.settings
        client = self.client()
        args: dict[str, Any] = {"Bucket": s.bucket, "Prefix": s.prefix, "MaxKeys": s.page_size}
        self.pages = 0
        while True:
            try:
                page = client.list_objects_v2(**args)
            except (BotoCoreError, ClientError) as exc:
                raise self._error(exc, "list", transient_note=_LEFT_AS_IS) from None
            self.pages += 1
            yield from page.get("Contents", [])
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            args["ContinuationToken"] = token

    def list(self, known: Known | None = None) -> Iterator[DocumentRef]:
        """Yield a reference for every selected object, in key order (S3 lists keys sorted).

        ``known`` is not needed: the store reports each object's ETag in the listing itself.
        Keys ending in ``/`` (folder markers) are skipped, and keys holding a NUL (logged). With
        ``readers_tag`` each object's tags are read too (one request per object: tags are not in
        the listing, and changing them does not change the ETag).
        """
        bucket = self.settings.bucket
        unmapped: set[str] = set()
        for obj in self._objects():
            key = obj["Key"]
            if key.endswith("/") or not self._selected(key):
                continue
            if "\x00" in key:  # no database text column can hold it, as an id or in a failure record
                # Not named: a key can hold a person's name, and the log is beyond forget's reach.
                logger.warning("source %s: skipped a key holding a NUL character", self.name)
                continue
            yield DocumentRef(
                source=self.name,
                source_id=key,
                uri=f"s3://{bucket}/{key}",
                version=f"etag:{_etag(obj)}",
                size_bytes=int(obj.get("Size", 0)),
                modified_at=obj.get("LastModified"),
                permissions=self._permissions(key, unmapped) if self.settings.readers_tag else None,
            )
        if unmapped:
            logger.warning("source %s: %d reader names have no reader_groups entry", self.name, len(unmapped))

    def _permissions(self, key: str, unmapped: set[str]) -> tuple[str, ...]:
        """The grants of the readers the object's ``readers_tag`` names (raises :class:`ConnectorError`)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            tags = self.client().get_object_tagging(Bucket=self.settings.bucket, Key=key)["TagSet"]
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, "read the tags of an object in", transient_note=_LEFT_AS_IS) from None
        value = next((t["Value"] for t in tags if t["Key"] == self.settings.readers_tag), "")
        grants: set[str] = set()
        for name in filter(None, re.split(r"[\s+]+", value)):
            mapped = self.settings.reader_groups.get(name)
            grants.update(mapped or ())
            if mapped is None:
                unmapped.add(name)
        return tuple(sorted(grants))

    def change_token(self) -> str | None:
        """A digest of every selected object's key, ETag and size: one listing, no content read.

        On a store that cannot be listed it is None (unknown), so a sensor starts a run, whose
        listing fails the same way and is reported with its reason.
        """
        h = hashlib.sha256()
        try:
            if self.settings.readers_tag:  # a change of readers moves no ETag: the tags must be read
                for ref in self.list():
                    h.update(f"{ref.source_id}\x00{ref.version}\x00{ref.permissions}\n".encode())
                return h.hexdigest()
            for obj in self._objects():
                key = obj["Key"]
                if not key.endswith("/") and self._selected(key):
                    h.update(f"{key}\x00{_etag(obj)}\x00{obj.get('Size', 0)}\n".encode())
        except ConnectorError as exc:
            logger.warning("%s", exc)
            return None
        return h.hexdigest()

    def fetch(self, ref: DocumentRef) -> bytes:
        """The bytes of the object behind ``ref``, at the version it was listed with."""
        from botocore.exceptions import BotoCoreError, ClientError

        if not ref.source_id.startswith(self.settings.prefix):
            raise ConnectorError(f"source {self.name!r}: {ref.source_id!r} is outside the source's prefix")
        args: dict[str, Any] = {"Bucket": self.settings.bucket, "Key": ref.source_id}
        if ref.version.startswith("etag:"):
            args["IfMatch"] = f'"{ref.version.removeprefix("etag:")}"'
        try:
            response = self.client().get_object(**args)
            data: bytes = response["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            code = _code(exc)
            if code in ("PreconditionFailed", "412"):
                raise ConnectorError(
                    f"source {self.name!r}: {ref.source_id!r} changed since it was listed; "
                    "it is read again on the next run"
                ) from None
            if code in ("NoSuchKey", "404"):
                raise ConnectorError(
                    f"source {self.name!r}: {ref.source_id!r} no longer exists in {self.where}"
                ) from None
            raise self._error(exc, f"read {ref.source_id!r} from") from None
        return data

    def _error(self, exc: Exception, doing: str, transient_note: str = "") -> ConnectorError:
        """A :class:`ConnectorError` naming the source and what went wrong, without a secret.

        botocore's own messages are not passed on whole (a URL or header could carry one): only
        the error's class or code, the HTTP status and what this connector knows.
        """
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            CredentialRetrievalError,
            EndpointConnectionError,
            NoCredentialsError,
            NoRegionError,
            PartialCredentialsError,
            ProfileNotFound,
            ReadTimeoutError,
        )

        head = f"source {self.name!r}: cannot {doing} {self.where}"
        tail = f"; {transient_note}" if transient_note else ""
        if isinstance(exc, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
            return ConnectorError(
                f"{head}: no usable AWS credentials ({type(exc).__name__}); provide them through the "
                "environment, a profile or a role" + tail
            )
        if isinstance(exc, ProfileNotFound):
            return ConnectorError(f"{head}: AWS profile {self.settings.profile!r} is not configured{tail}")
        if isinstance(exc, NoRegionError):
            return ConnectorError(f"{head}: no region: set `region` or AWS_REGION{tail}")
        if isinstance(
            exc, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError | ConnectionClosedError
        ):
            return ConnectorError(
                f"{head}: the store is unreachable after {self.settings.max_attempts} attempts "
                f"({type(exc).__name__}), a transient failure" + tail
            )
        if not isinstance(exc, ClientError):
            return ConnectorError(f"{head}: {type(exc).__name__}{tail}")
        code = _code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _BAD_CREDENTIALS:
            return ConnectorError(
                f"{head}: the store refused the credentials ({code}); check the AWS credentials in "
                "the environment, profile or role this process uses" + tail
            )
        if code in _ACCESS_DENIED:
            return ConnectorError(
                f"{head}: access denied ({code}); the credentials need s3:ListBucket and s3:GetObject"
                + (" and s3:GetObjectTagging" if self.settings.readers_tag else "")
                + tail
            )
        if code == "NoSuchBucket":
            return ConnectorError(f"{head}: the bucket does not exist{tail}")
        if code in ("SlowDown", "Throttling", "ThrottlingException", "RequestTimeout") or (
            isinstance(status, int) and status >= 500
        ):
            return ConnectorError(
                f"{head}: the store is unavailable after {self.settings.max_attempts} attempts "
                f"({code}, HTTP {status}), a transient failure" + tail
            )
        return ConnectorError(f"{head}: {code} (HTTP {status}){tail}")


def _etag(obj: dict[str, Any]) -> str:
    """An object's ETag without its quotes."""
    return str(obj.get("ETag", "")).strip('"')


def _code(exc: Exception) -> str:
    """The S3 error code of a botocore ClientError ('' for other errors)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))
