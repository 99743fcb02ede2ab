"""The web connector: a site's pages, from its sitemap or by crawling from a start page."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter, deque
from collections.abc import Generator, Iterator
from typing import ClassVar, Literal
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

from pydantic import Field, field_validator

from connectors.base import Known
from connectors.web_crawl import (
    DOCUMENT_TYPES,
    HTML_TYPES,
    Entries,
    FetchError,
    Http,
    PageLinks,
    Response,
    conditional,
    filename_for,
    http_date,
    is_sitemap,
    load_robots,
    looks_like_asset,
    normalize,
    parse_sitemap,
    read_page,
    site_of,
    version_of,
    w3c_date,
)
from groundwork.enums import FailureReason, Stage
from groundwork.errors import ConnectorError, DocumentError
from groundwork.ids import document_id
from groundwork.records import DocumentRef
from groundwork.settings import ConnectorSettings

logger = logging.getLogger(__name__)

_MAX_SITEMAPS = 1000


class WebSettings(ConnectorSettings):
    """A web site: ``url`` is a start page (crawled on the same site) or a sitemap."""

    connector: Literal["web"]
    url: str
    max_depth: int = Field(default=3, ge=0, le=100)
    max_pages: int = Field(default=1000, ge=1, le=1_000_000)
    path_prefix: str = "/"
    user_agent: str = Field(default="Groundwork", min_length=1, max_length=200, pattern=r"^[\x21-\x7e ]+$")
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    retries: int = Field(default=3, ge=0, le=10)
    backoff_seconds: float = Field(default=0.5, ge=0, le=60)
    delay_seconds: float = Field(default=0.0, ge=0, le=60)
    max_page_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, le=1024**3)
    cache_bytes: int = Field(default=32 * 1024 * 1024, ge=0, le=1024**3)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if "@" in urlsplit(value.strip()).netloc:
            raise ValueError("must not carry credentials (user:password@)")
        url = normalize(value)
        if url is None:
            raise ValueError("must be an http:// or https:// URL with a host")
        return url

    @field_validator("path_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"must start with '/' (got {value!r})")
        return value


class WebConnector:
    """Lists the pages of one site and fetches them.

    The source id (and uri) of a page is its URL (normalized, no fragment, after redirects within
    the site). Its version is the server's ETag, else its Last-Modified, else a SHA-256 of the
    body; a sitemap entry's ``lastmod`` serves as the version without any request. Listing sends
    the version the index holds as a conditional request, so an unchanged page costs a 304;
    crawling must read the pages whose links it follows, and keeps their bodies (up to
    ``cache_bytes``) so that fetching a changed one does not download it again. robots.txt is
    obeyed, and so are robots meta tags. A page the server says is gone (404, 410) is not listed,
    so it leaves the index; one that fails otherwise is listed as failed, with its reason, and its
    indexed copy kept. When the start page, the sitemap or robots.txt cannot be read, listing
    raises :class:`ConnectorError` and nothing is deleted; a crawl cut short (``max_pages``, or a
    page it needed the links of failed) keeps the indexed pages it did not reach.
    """

    settings_model: ClassVar[type[ConnectorSettings]] = WebSettings

    def __init__(self, name: str, settings: WebSettings) -> None:
        self.name = name
        self.settings = settings
        self.start = settings.url
        self.site = site_of(self.start)
        self.http = Http(
            self.site,
            settings.user_agent,
            settings.timeout_seconds,
            settings.retries,
            settings.backoff_seconds,
            settings.max_page_bytes,
            settings.delay_seconds,
        )
        #: What the last listing saw: ``not_modified``, ``downloaded``, ``gone``, ``failed``, ...
        self.stats: Counter[str] = Counter()
        self._bodies: dict[str, tuple[str, bytes]] = {}
        self._cached = 0
        self._digests: set[str] = set()

    @classmethod
    def from_settings(cls, name: str, settings: ConnectorSettings) -> WebConnector:
        """The connector for a source's validated settings."""
        assert isinstance(settings, WebSettings)
        return cls(name, settings)

    def _in_scope(self, url: str) -> bool:
        return site_of(url) == self.site and urlsplit(url).path.startswith(self.settings.path_prefix)

    def _error(self, what: str) -> ConnectorError:
        return ConnectorError(f"source {self.name!r}: {what}")

    def list(self, known: Known | None = None) -> Iterator[DocumentRef]:
        """Yield a reference for every page of the site (see the class docstring)."""
        known = known or {}
        self.stats.clear()
        self._bodies.clear()
        self._cached = 0
        self._digests.clear()
        try:
            robots = load_robots(self.http, self.start)
        except FetchError as exc:
            raise self._error(f"cannot list {self.start}: {exc}") from exc
        delay = robots.crawl_delay(self.settings.user_agent)
        self.http.delay_s = max(self.settings.delay_seconds, min(float(delay or 0), 60.0))
        if not robots.can_fetch(self.settings.user_agent, self.start):
            raise self._error(f"robots.txt disallows {self.start} for {self.settings.user_agent!r}")
        first = self.http.get(self.start)
        if first.problem():
            raise self._error(f"cannot list {self.start}: {first.problem()}")
        visited: set[str] = set()
        if is_sitemap(first):
            complete = yield from self._from_sitemap(first, known, robots, visited)
        else:
            complete = yield from self._crawl(first, known, robots, visited)
        if not complete:  # never delete what a cut-short listing did not reach
            for source_id, (fingerprint, version) in sorted(known.items()):
                if source_id not in visited and self._in_scope(source_id):
                    self.stats["kept_unvisited"] += 1
                    yield DocumentRef(
                        source=self.name,
                        source_id=source_id,
                        uri=source_id,
                        version=version,
                        size_bytes=0,
                        fingerprint=fingerprint,
                        extra={"filename": filename_for(source_id, fingerprint)},
                    )
        logger.info("source %s: %s, %d requests", self.name, dict(self.stats), self.http.requests)

    def _from_sitemap(
        self, first: Response, known: Known, robots: RobotFileParser, visited: set[str]
    ) -> Generator[DocumentRef, None, bool]:
        listed = 0
        for loc, lastmod in self._sitemap_entries(first):
            url = normalize(loc)
            if url is None or url in visited or not self._in_scope(url):
                continue
            if not robots.can_fetch(self.settings.user_agent, url):
                self.stats["robots_disallowed"] += 1
                continue
            if listed >= self.settings.max_pages:
                logger.warning("source %s: sitemap cut at max_pages (%d)", self.name, listed)
                return False
            listed += 1
            visited.add(url)
            if lastmod:
                yield DocumentRef(
                    source=self.name,
                    source_id=url,
                    uri=url,
                    version=f"lastmod:{lastmod[:64]}",
                    size_bytes=0,
                    modified_at=w3c_date(lastmod),
                    extra={"filename": filename_for(url, None)},
                )
                continue
            recorded = known.get(url)
            ref, _ = self._page(url, self.http.get(url, conditional(recorded)), recorded, visited)
            if ref is not None:
                yield ref
        return True

    def _sitemap_entries(self, first: Response) -> Entries:
        """Every page entry of the sitemap, following sitemap indexes within the site."""
        pages: Entries = []
        todo, fetched = deque([first]), 1
        while todo:
            response = todo.popleft()
            try:
                sitemap = parse_sitemap(response.body or b"", self.settings.max_page_bytes)
            except FetchError as exc:
                raise self._error(f"cannot list {response.url}: {exc}") from exc
            if not sitemap.index:
                pages.extend(sitemap.entries)
                continue
            for loc, _ in sitemap.entries:
                url = normalize(loc)
                if url is None or site_of(url) != self.site or fetched >= _MAX_SITEMAPS:
                    logger.warning("source %s: sitemap %s skipped", self.name, loc)
                    continue
                child = self.http.get(url)
                fetched += 1
                if child.problem():
                    raise self._error(f"cannot list {url}: {child.problem()}")
                todo.append(child)
        return pages

    def _crawl(
        self, first: Response, known: Known, robots: RobotFileParser, visited: set[str]
    ) -> Generator[DocumentRef, None, bool]:
        """Breadth first from the start page: pages whose links are followed are read in full,
        the last level gets conditional requests."""
        queue: deque[tuple[str, int]] = deque([(self.start, 0)])
        seen = {self.start}
        complete = True
        while queue:
            url, depth = queue.popleft()
            if len(visited) >= self.settings.max_pages:
                logger.warning("source %s: crawl cut at max_pages (%d)", self.name, len(visited))
                return False
            follow = depth < self.settings.max_depth
            visited.add(url)
            recorded = known.get(url)
            response = first if depth == 0 else self.http.get(url, {} if follow else conditional(recorded))
            if response.url != url and not robots.can_fetch(self.settings.user_agent, response.url):
                continue
            ref, links = self._page(url, response, known.get(response.url), visited)
            if ref is not None:
                yield ref
            if follow and response.error and response.status not in (301, 302, 303, 307, 308):
                complete = False  # the links of this page are unknown this time
            if not follow or links is None or not links.follow:
                continue
            for link in links.links:
                if link in seen or not self._in_scope(link) or looks_like_asset(link):
                    continue
                seen.add(link)
                if robots.can_fetch(self.settings.user_agent, link):
                    queue.append((link, depth + 1))
                else:
                    self.stats["robots_disallowed"] += 1
        return complete

    def _page(
        self, requested: str, response: Response, recorded: tuple[str | None, str] | None, visited: set[str]
    ) -> tuple[DocumentRef | None, PageLinks | None]:
        """The reference for one response (None when it is no document), and its links."""
        url = response.url
        if url != requested and url in visited:  # a redirect to a page already listed
            return None, None
        if response.error:
            if response.status in (301, 302, 303, 307, 308):
                self.stats["off_site"] += 1
                return None, None
            return self._failed(url, response.error, f"error:{response.status or 'unreachable'}"), None
        if not self._in_scope(url):
            return None, None
        visited.add(url)
        modified_at = http_date(response.headers.get("last-modified"))
        if response.status == 304 and recorded is not None:
            self.stats["not_modified"] += 1
            return DocumentRef(
                source=self.name,
                source_id=url,
                uri=url,
                version=recorded[1],
                size_bytes=0,
                modified_at=modified_at,
                fingerprint=recorded[0],
                extra={"filename": filename_for(url, recorded[0])},
            ), None
        if response.status in (404, 410):
            self.stats["gone"] += 1
            doc = document_id(self.name, url)  # by id: a URL can hold a person's name
            logger.info("source %s: document %s is gone (HTTP %d)", self.name, doc, response.status)
            return None, None
        if response.status != 200:
            return self._failed(url, f"HTTP {response.status} from {url}", f"error:{response.status}"), None
        ctype = response.content_type or "text/html"
        if ctype not in DOCUMENT_TYPES:
            self.stats["not_a_document"] += 1
            return None, None
        validator = version_of(response)
        if response.body is None:
            return self._failed(
                url,
                f"{url} is larger than max_page_bytes ({self.settings.max_page_bytes:,} bytes)",
                f"too-large:{validator or response.headers.get('content-length', '?')}",
                too_large=True,
            ), None
        links = read_page(response) if ctype in HTML_TYPES else None
        if links is not None and not links.index:
            self.stats["noindex"] += 1
            return None, links
        digest = hashlib.sha256(response.body).hexdigest()
        if digest in self._digests:  # the same page under a second URL (``/`` and ``/index.html``)
            self.stats["duplicate"] += 1
            return None, links
        self._digests.add(digest)
        version = validator or f"sha256:{digest}"
        self.stats["downloaded"] += 1
        if (recorded is None or recorded[1] != version) and (
            self._cached + len(response.body) <= self.settings.cache_bytes
        ):
            self._bodies[url] = (version, response.body)
            self._cached += len(response.body)
        return DocumentRef(
            source=self.name,
            source_id=url,
            uri=url,
            version=version,
            size_bytes=len(response.body),
            modified_at=modified_at,
            fingerprint=ctype,
            extra={"filename": filename_for(url, ctype)},
        ), links

    def _failed(self, url: str, message: str, version: str, *, too_large: bool = False) -> DocumentRef:
        """A page listed as failed: fetching it raises ``message`` and the run records it."""
        self.stats["failed"] += 1
        logger.warning("source %s: %s", self.name, message)
        extra = {"filename": filename_for(url, None), "error": message}
        if too_large:
            extra["too_large"] = "1"
        return DocumentRef(
            source=self.name, source_id=url, uri=url, version=version, size_bytes=0, extra=extra
        )

    def fetch(self, ref: DocumentRef) -> bytes:
        """The page's bytes: from the listing's cache when it read this version, else one GET."""
        if ref.extra.get("too_large"):
            raise DocumentError(ref.extra["error"], stage=Stage.FETCH, reason=FailureReason.TOO_LARGE)
        if "error" in ref.extra:
            raise self._error(ref.extra["error"])
        cached = self._bodies.pop(ref.source_id, None)
        if cached is not None:
            self._cached -= len(cached[1])
            if cached[0] == ref.version:
                return cached[1]
        if site_of(ref.uri) != self.site:
            raise self._error(f"{ref.uri} is not on {self.site}")
        response = self.http.get(ref.uri)
        if response.status == 200 and response.body is None:
            raise DocumentError(
                f"{ref.uri} is larger than max_page_bytes ({self.settings.max_page_bytes:,} bytes)",
                stage=Stage.FETCH,
                reason=FailureReason.TOO_LARGE,
            )
        if response.problem() or response.body is None:
            raise self._error(f"cannot fetch {ref.uri}: {response.problem()}")
        return response.body

    def change_token(self) -> str | None:
        """A digest of the sitemap when every entry has a ``lastmod`` (one request); None for a
        crawled site or a sitemap without dates, whose pages must be asked one by one."""
        response = self.http.get(self.start)
        if response.problem() or response.body is None or not is_sitemap(response):
            return None
        try:
            sitemap = parse_sitemap(response.body, self.settings.max_page_bytes)
        except FetchError:
            return None
        if not sitemap.entries or any(lastmod is None for _, lastmod in sitemap.entries):
            return None
        return hashlib.sha256(response.body).hexdigest()
