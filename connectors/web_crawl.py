"""HTTP plumbing for the web connector: one polite client, robots.txt, sitemaps and links.

Everything here stays on one site (scheme http or https, one host and port): redirects are
followed only within it, and a request never leaves it.
"""

from __future__ import annotations

import logging
import time
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

import httpx

logger = logging.getLogger(__name__)

#: Statuses worth another try after a pause: the server is busy or briefly broken.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 5
_MAX_BACKOFF_S = 30.0
#: Media types that are documents, with the file suffix that picks their partitioner.
DOCUMENT_TYPES: dict[str, str] = {
    "text/html": ".html",
    "application/xhtml+xml": ".html",
    "text/plain": ".txt",
    "text/markdown": ".md",
    "application/pdf": ".pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
}
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_SUFFIXES = frozenset(DOCUMENT_TYPES.values()) | {".htm"}
#: Sitemap entries: (loc, lastmod).
Entries = list[tuple[str, str | None]]
#: Links to these are never requested: they are never documents.
_ASSET_SUFFIXES = frozenset(
    [
        ".css",
        ".js",
        ".mjs",
        ".json",
        ".png",
        ".jpg",
        ".jpeg",
        ".gif",
        ".svg",
        ".ico",
        ".webp",
        ".avif",
        ".bmp",
        ".tif",
        ".tiff",
        ".woff",
        ".woff2",
        ".ttf",
        ".otf",
        ".eot",
        ".zip",
        ".gz",
        ".tgz",
        ".bz2",
        ".xz",
        ".7z",
        ".rar",
        ".tar",
        ".mp3",
        ".mp4",
        ".m4a",
        ".webm",
        ".ogg",
        ".wav",
        ".avi",
        ".mov",
        ".mkv",
        ".exe",
        ".dmg",
        ".iso",
        ".msi",
        ".apk",
        ".deb",
        ".rpm",
    ]
)


def normalize(url: str) -> str | None:
    """A URL as an identity: http(s) only, host lower-cased, default port and fragment dropped,
    ``/`` for an empty path. None for anything else (mailto:, a URL carrying credentials ...)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, parts.path or "/", parts.query, ""))


def site_of(url: str) -> str:
    """The host (and port) part of a normalized URL: what "same site" compares."""
    return urlsplit(url).netloc


def looks_like_asset(url: str) -> bool:
    """Whether a URL names a file type that is never a document (style sheets, images, archives)."""
    path = urlsplit(url).path.lower()
    dot = path.rfind(".")
    return dot > path.rfind("/") and path[dot:] in _ASSET_SUFFIXES


def http_date(value: str | None) -> datetime | None:
    """An HTTP date header as an aware datetime, or None when absent or malformed."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def w3c_date(value: str | None) -> datetime | None:
    """A sitemap ``lastmod`` (W3C datetime, or a bare date) as an aware datetime, or None."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class FetchError(Exception):
    """A request that failed: the site could not be reached, or answered with an error."""


@dataclass(slots=True)
class Response:
    """What one GET came back with, after same-site redirects. ``body`` is None past the size limit."""

    url: str
    status: int
    headers: httpx.Headers
    body: bytes | None
    error: str | None = None

    def problem(self) -> str | None:
        """Why this response is no readable 200, or None when it is one."""
        if self.error or self.status != 200:
            return self.error or f"HTTP {self.status}"
        return None if self.body is not None else "larger than the size limit (max_page_bytes)"

    @property
    def content_type(self) -> str:
        """The media type, lower-cased, without parameters."""
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


@dataclass(slots=True)
class Http:
    """A polite HTTP client for one site: user agent, timeouts, retries with backoff, a delay
    between requests, a size limit, and redirects followed only within the site."""

    site: str
    user_agent: str
    timeout_s: float
    retries: int
    backoff_s: float
    max_bytes: int
    delay_s: float = 0.0
    requests: int = 0
    _client: httpx.Client | None = None
    _last: float = field(default=0.0)

    def client(self) -> httpx.Client:
        """The shared connection pool (created on first use)."""
        if self._client is None:
            self._client = httpx.Client(
                timeout=httpx.Timeout(self.timeout_s),
                headers={"User-Agent": self.user_agent},
                follow_redirects=False,
            )
        return self._client

    def get(self, url: str, headers: dict[str, str] | None = None) -> Response:
        """GET ``url`` and follow redirects within the site.

        Errors the server may get over (unreachable, 429, 5xx) are retried with backoff; what is
        left after the last try comes back as a :class:`Response` with ``error`` set (status 0 when
        the last try got no answer). A redirect off the site comes back as that redirect, unfollowed.
        """
        for _ in range(_MAX_REDIRECTS + 1):
            response = self._get_with_retries(url, headers or {})
            location = response.headers.get("location")
            if response.status not in _REDIRECTS or not location:
                return response
            target = normalize(urljoin(url, location))
            if target is None or site_of(target) != self.site:
                response.error = f"HTTP {response.status} redirects off the site"
                return response
            url, headers = target, None  # a version held for the old URL says nothing of the new
        return Response(url, 0, httpx.Headers(), None, f"more than {_MAX_REDIRECTS} redirects")

    def _get_with_retries(self, url: str, headers: dict[str, str]) -> Response:
        error, status = "", 0
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(self.backoff_s * 2 ** (attempt - 1), _MAX_BACKOFF_S))
            try:
                response = self._get_once(url, headers)
            except httpx.InvalidURL as exc:  # asking again cannot help
                return Response(url, 0, httpx.Headers(), None, f"invalid URL {url}: {exc}")
            except httpx.HTTPError as exc:  # connect, read, protocol or decoding failure
                error, status = f"cannot reach {url}: {type(exc).__name__}", 0
                continue
            if response.status not in RETRY_STATUSES:
                return response
            error, status = f"HTTP {response.status} from {url}", response.status
        logger.warning("%s (after %d tries)", error, self.retries + 1)
        return Response(url, status, httpx.Headers(), None, error)

    def _get_once(self, url: str, headers: dict[str, str]) -> Response:
        wait = self._last + self.delay_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self.requests += 1
        try:
            with self.client().stream("GET", url, headers=headers) as r:
                body = bytearray()
                for block in r.iter_bytes():
                    body += block
                    if len(body) > self.max_bytes:
                        return Response(url, r.status_code, r.headers, None)
                return Response(url, r.status_code, r.headers, bytes(body))
        finally:
            self._last = time.monotonic()


def load_robots(http: Http, root: str) -> RobotFileParser:
    """The site's robots.txt rules. A missing one (4xx) allows everything; one the server cannot
    give (unreachable, 5xx) is a :class:`FetchError`, since the rules are then unknown."""
    url = urljoin(root, "/robots.txt")
    rules = RobotFileParser(url)
    response = http.get(url)
    if response.error or response.status >= 500:
        raise FetchError(f"robots.txt could not be read: {response.error or f'HTTP {response.status}'}")
    if response.status == 200 and response.body is not None:
        rules.parse(response.body.decode("utf-8", "replace").splitlines())
    else:
        rules.parse([])  # 4xx (or larger than any robots.txt should be): no rules, all allowed
    return rules


def is_sitemap(response: Response) -> bool:
    """Whether a response is a sitemap (a ``urlset`` or ``sitemapindex``, perhaps gzipped) rather
    than a page."""
    body = (response.body or b"")[:512].lstrip()
    if body.startswith(b"\x1f\x8b"):
        return True
    return b"<urlset" in body or b"<sitemapindex" in body


@dataclass(frozen=True, slots=True)
class Sitemap:
    """A parsed sitemap: pages (``loc``, ``lastmod``) or, for an index, child sitemaps."""

    index: bool
    entries: Entries


def parse_sitemap(body: bytes, max_bytes: int) -> Sitemap:
    """Parse a sitemap or sitemap index (gzipped or not); a :class:`FetchError` if it is not one.

    Entity declarations are refused (sitemaps have none, so one can only be an expansion bomb),
    and a gzipped sitemap may not expand past ``max_bytes``.
    """
    if body.startswith(b"\x1f\x8b"):
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            body = inflater.decompress(body, max_bytes)
        except zlib.error as exc:
            raise FetchError(f"sitemap is not valid gzip: {exc}") from exc
        if inflater.unconsumed_tail:
            raise FetchError(f"sitemap expands past {max_bytes:,} bytes")
    if b"<!ENTITY" in body.upper():
        raise FetchError("sitemap declares XML entities; refused")
    try:
        root = ET.fromstring(body)  # noqa: S314 - entities refused above; size bounded
    except ET.ParseError as exc:
        raise FetchError(f"sitemap is not well-formed XML: {exc}") from exc
    kind = root.tag.rsplit("}", 1)[-1]
    if kind not in ("urlset", "sitemapindex"):
        raise FetchError(f"not a sitemap: the root element is <{kind}>")
    entries = []
    for item in root:
        fields = {child.tag.rsplit("}", 1)[-1]: (child.text or "").strip() for child in item}
        if fields.get("loc"):
            entries.append((fields["loc"], fields.get("lastmod") or None))
    return Sitemap(kind == "sitemapindex", entries)


class _PageParser(HTMLParser):
    """Collects a page's links, its ``<base href>`` and its robots meta directives."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.base: str | None = None
        self.robots = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag in ("a", "area") and a.get("href"):
            self.links.append(a["href"])
        elif tag == "base" and a.get("href") and self.base is None:
            self.base = a["href"]
        elif tag == "meta" and a.get("name", "").lower() in ("robots", "groundwork"):
            self.robots += "," + a.get("content", "").lower()


@dataclass(frozen=True, slots=True)
class PageLinks:
    """What a page says about crawling it: its absolute links, and whether it may be indexed or
    its links followed (robots meta tags and the ``X-Robots-Tag`` header)."""

    links: list[str]
    index: bool
    follow: bool


def read_page(response: Response) -> PageLinks:
    """The links and robots directives of an HTML page."""
    parser = _PageParser()
    try:
        parser.feed((response.body or b"").decode("utf-8", "replace"))
        parser.close()
    except (ValueError, AssertionError):  # html.parser gives up on some broken markup
        logger.warning("links of %s could not all be read (broken HTML)", response.url)
    directives = {
        d.strip() for d in (parser.robots + "," + response.headers.get("x-robots-tag", "")).lower().split(",")
    }
    base = urljoin(response.url, parser.base) if parser.base else response.url
    links = [u for u in (normalize(urljoin(base, href)) for href in parser.links) if u is not None]
    return PageLinks(
        links, index=not directives & {"noindex", "none"}, follow=not directives & {"nofollow", "none"}
    )


def version_of(response: Response) -> str | None:
    """The version a server gives a page: its ETag, else its Last-Modified date."""
    etag = response.headers.get("etag")
    if etag:
        return f"etag:{etag}"
    modified = response.headers.get("last-modified")
    return f"modified:{modified}" if modified else None


def conditional(recorded: tuple[str | None, str] | None) -> dict[str, str]:
    """The conditional request headers for the version the index holds."""
    if recorded is None:
        return {}
    version = recorded[1]
    if version.startswith("etag:"):
        return {"If-None-Match": version.removeprefix("etag:")}
    if version.startswith("modified:"):
        return {"If-Modified-Since": version.removeprefix("modified:")}
    return {}


def filename_for(url: str, content_type: str | None) -> str:
    """A file name for the partitioner: the URL's last segment with the suffix of its media type
    (or of the URL itself, else ``.html``)."""
    segment = urlsplit(url).path.rsplit("/", 1)[-1] or "index"
    suffix = DOCUMENT_TYPES.get(content_type or "")
    if suffix is None:
        dot = segment.rfind(".")
        found = segment[dot:].lower() if dot > 0 else ""
        suffix = found if found in _SUFFIXES else ".html"
    return segment if segment.lower().endswith(suffix) else segment + suffix
