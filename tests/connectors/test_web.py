"""The web connector against a real HTTP server on 127.0.0.1: sitemaps, crawling within limits,
robots.txt, conditional requests, failed and gone pages, an unreachable site, and the whole path
through ``groundwork ingest``."""

from __future__ import annotations

import gzip
import hashlib
import logging
import socket
import threading
from collections.abc import Iterator
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from cli.main import main
from connectors.web import WebConnector, WebSettings
from groundwork.enums import FailureReason
from groundwork.errors import ConfigError, ConnectorError, DocumentError
from groundwork.ids import document_id
from groundwork.records import DocumentRef
from groundwork.settings import load_config
from orchestration.local import run_all
from orchestration.services import Services
from pipelines.embedding import Embedder
from pipelines.redact import Redactor
from tests.conftest import write_config

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".xml": "application/xml",
    ".txt": "text/plain",
    ".gz": "application/gzip",
    ".png": "image/png",
}


class Site:
    """A folder served over HTTP with ETag and Last-Modified, answering conditional requests with
    304. Every request is logged: (path, status, whether it was conditional)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log: list[tuple[str, int, bool]] = []
        self.forced: dict[str, int] = {}  # path -> status to answer instead
        self.redirects: dict[str, str] = {}  # path -> Location
        self.etags = True
        self.last_modified = True
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        path = urlsplit(h.path).path
        conditional = "If-None-Match" in h.headers or "If-Modified-Since" in h.headers
        status, headers, body = self.answer(path, h)
        self.log.append((path, status, conditional))
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def answer(self, path: str, h: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        if path in self.forced:
            return self.forced[path], {"Content-Type": "text/html"}, b"<p>error</p>"
        if path in self.redirects:
            return 301, {"Location": self.redirects[path]}, b""
        file = self.root / path.lstrip("/")
        if file.is_dir():
            file = file / "index.html"
        if not file.is_file():
            return 404, {"Content-Type": "text/html"}, b"<p>not found</p>"
        body = file.read_bytes()
        mtime = int(file.stat().st_mtime)
        headers = {"Content-Type": TYPES.get(file.suffix, "application/octet-stream")}
        etag = f'"{hashlib.sha256(body).hexdigest()[:16]}"'
        if self.etags:
            headers["ETag"] = etag
            if h.headers.get("If-None-Match") == etag:
                return 304, headers, b""
        if self.last_modified:
            headers["Last-Modified"] = formatdate(mtime, usegmt=True)
            since = h.headers.get("If-Modified-Since")
            if (
                since
                and "If-None-Match" not in h.headers
                and parsedate_to_datetime(since).timestamp() >= mtime
            ):
                return 304, headers, b""
        return 200, headers, body

    def requests(self, path: str) -> list[tuple[int, bool]]:
        """(status, conditional) of every request for ``path``."""
        return [(s, c) for p, s, c in self.log if p == path]

    def write(self, rel: str, text: str) -> None:
        (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (self.root / rel).write_text(text)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def page(title: str, text: str, *links: str) -> str:
    """An HTML page with navigation and a footer around its content."""
    nav = "".join(f'<li><a href="{href}">{href}</a></li>' for href in links)
    return (
        f"<html><head><title>{title}</title></head><body><nav><ul>{nav}</ul></nav>"
        f"<main><h1>{title}</h1><p>{text}</p></main><footer>Copyright Example Ltd</footer></body></html>"
    )


def sitemap(site: Site, *paths: str, lastmod: dict[str, str] | None = None) -> str:
    urls = "".join(
        f"<url><loc>{site.url}{p}</loc>"
        + (f"<lastmod>{lastmod[p]}</lastmod>" if lastmod and p in lastmod else "")
        + "</url>"
        for p in paths
    )
    return f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path / "www")
    s.root.mkdir()
    yield s
    s.close()


def connector(url: str, **settings: Any) -> WebConnector:
    settings = {"retries": 1, "backoff_seconds": 0.01, "timeout_seconds": 5, **settings}
    return WebConnector("web", WebSettings(connector="web", url=url, **settings))


def versions(refs: list[DocumentRef]) -> dict[str, str]:
    return {urlsplit(r.source_id).path: r.version for r in refs}


def known_of(refs: list[DocumentRef]) -> dict[str, tuple[str | None, str]]:
    return {r.source_id: (r.fingerprint, r.version) for r in refs}


def test_sitemap_lastmod_is_the_version_and_other_pages_get_conditional_requests(site: Site) -> None:
    for name in ("a", "b", "c"):
        site.write(f"{name}.html", page(name.upper(), f"Page {name}."))
    site.write(
        "sitemap.xml", sitemap(site, "/a.html", "/b.html", "/c.html#x", lastmod={"/a.html": "2026-11-01"})
    )
    conn = connector(f"{site.url}/sitemap.xml")
    first = list(conn.list())
    assert sorted(versions(first)) == ["/a.html", "/b.html", "/c.html"]
    assert versions(first)["/a.html"] == "lastmod:2026-11-01"
    assert versions(first)["/b.html"].startswith('etag:"')
    assert site.requests("/a.html") == []  # a lastmod costs no request
    assert all(r.filename.endswith(".html") for r in first)
    # The next listing asks with the version the index holds: unchanged pages answer 304.
    site.write("b.html", page("B", "Page b, edited."))
    again = list(conn.list(known_of(first)))
    assert site.requests("/c.html")[-1] == (304, True)
    assert site.requests("/b.html")[-1] == (200, True)
    assert versions(again)["/c.html"] == versions(first)["/c.html"]
    assert versions(again)["/b.html"] != versions(first)["/b.html"]
    assert conn.stats["not_modified"] == 1
    # The edited page was read by the listing: fetching it does not download it again.
    b = next(r for r in again if r.source_id.endswith("/b.html"))
    served = len(site.log)
    assert b"edited" in conn.fetch(b)
    assert len(site.log) == served


def test_sitemap_index_with_a_gzipped_child(site: Site) -> None:
    site.write("one.html", page("One", "First."))
    site.write("two.txt", "Two\n\nSecond.")
    (site.root / "pages.xml.gz").write_bytes(gzip.compress(sitemap(site, "/one.html", "/two.txt").encode()))
    site.write(
        "sitemap.xml",
        '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<sitemap><loc>{site.url}/pages.xml.gz</loc></sitemap>"
        "<sitemap><loc>http://elsewhere.invalid/s.xml</loc></sitemap></sitemapindex>",
    )
    refs = list(connector(f"{site.url}/sitemap.xml").list())
    assert {urlsplit(r.source_id).path: r.filename for r in refs} == {
        "/one.html": "one.html",
        "/two.txt": "two.txt",
    }


def test_crawl_stays_on_the_site_within_depth_and_page_limits(site: Site, tmp_path: Path) -> None:
    other = Site(tmp_path / "other")
    other.root.mkdir()
    other.write("x.html", page("X", "Elsewhere."))
    try:
        site.write(
            "index.html",
            page(
                "Home",
                "Welcome.",
                "a.html",
                "/b.html#part",
                f"{other.url}/x.html",
                "style.css",
                "mailto:x@example.com",
            ),
        )
        site.write("a.html", page("A", "Alpha.", "deep/c.html", "index.html"))
        site.write("b.html", page("B", "Bravo."))
        site.write("deep/c.html", page("C", "Charlie.", "d.html"))
        site.write("deep/d.html", page("D", "Delta."))
        site.write("style.css", "body {}")
        shallow = versions(list(connector(f"{site.url}/", max_depth=1).list()))
        assert sorted(shallow) == ["/", "/a.html", "/b.html"]
        deeper = versions(list(connector(f"{site.url}/", max_depth=2).list()))
        assert sorted(deeper) == ["/", "/a.html", "/b.html", "/deep/c.html"]
        limited = versions(list(connector(f"{site.url}/", max_pages=2).list()))
        assert sorted(limited) == ["/", "/a.html"]
        prefixed = versions(list(connector(f"{site.url}/deep/c.html", path_prefix="/deep/").list()))
        assert sorted(prefixed) == ["/deep/c.html", "/deep/d.html"]
        assert other.log == []  # never a request to another site
        assert site.requests("/style.css") == []
    finally:
        other.close()


def test_robots_txt_and_robots_meta_are_obeyed(site: Site) -> None:
    site.write(
        "robots.txt",
        "User-agent: *\nDisallow: /private/\n\nUser-agent: Groundwork\nDisallow: /private/\nDisallow: /nogw/\n",
    )
    site.write(
        "index.html", page("Home", "Welcome.", "private/p.html", "nogw/n.html", "hidden.html", "open.html")
    )
    site.write("private/p.html", page("P", "Private."))
    site.write("nogw/n.html", page("N", "Not for us."))
    site.write(
        "hidden.html",
        page("H", "Hidden.", "behind.html").replace("<head>", '<head><meta name="robots" content="noindex">'),
    )
    site.write("behind.html", page("Behind", "Reached through a noindex page."))
    site.write("open.html", page("O", "Open."))
    refs = versions(list(connector(f"{site.url}/").list()))
    assert sorted(refs) == ["/", "/behind.html", "/open.html"]
    assert site.requests("/private/p.html") == [] and site.requests("/nogw/n.html") == []
    # Another user agent is held only by the rules for every agent (an agent's own group replaces them).
    other = versions(list(connector(f"{site.url}/", user_agent="OtherBot").list()))
    assert "/nogw/n.html" in other and "/private/p.html" not in other


def test_unchanged_leaf_pages_cost_a_304_and_keep_their_version(site: Site) -> None:
    site.write("index.html", page("Home", "Welcome.", "a.html", "b.html"))
    site.write("a.html", page("A", "Alpha."))
    site.write("b.html", page("B", "Bravo."))
    conn = connector(f"{site.url}/", max_depth=1)
    first = list(conn.list())
    again = list(conn.list(known_of(first)))
    assert versions(again) == versions(first)
    assert site.requests("/a.html")[-1] == (304, True)
    assert site.requests("/")[-1] == (200, False)  # its links are needed: read in full
    # Without an ETag, Last-Modified is the version and If-Modified-Since the question.
    site.etags = False
    lm = list(conn.list())
    assert versions(lm)["/a.html"].startswith("modified:")
    list(conn.list(known_of(lm)))
    assert site.requests("/a.html")[-1] == (304, True)
    # With neither, the content hash decides.
    site.last_modified = False
    bare = list(conn.list())
    assert versions(bare)["/a.html"].startswith("sha256:")
    assert versions(list(conn.list(known_of(bare)))) == versions(bare)


def test_error_pages_are_listed_as_failed_and_gone_pages_are_not(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="connectors")
    site.write(
        "index.html",
        page("Home", "Welcome.", "ok.html", "broken.html", "missing.html", "secret.html", "big.html"),
    )
    site.write("ok.html", page("OK", "Fine."))
    site.write("big.html", page("Big", "x" * 5000))
    site.forced = {"/broken.html": 500, "/secret.html": 403}
    conn = connector(f"{site.url}/", retries=2, max_page_bytes=2048)
    refs = {urlsplit(r.source_id).path: r for r in conn.list()}
    assert sorted(refs) == ["/", "/big.html", "/broken.html", "/ok.html", "/secret.html"]  # 404: gone
    gone = [r.getMessage() for r in caplog.records if "is gone" in r.getMessage()]
    assert gone == [
        f"source web: document {document_id('web', f'{site.url}/missing.html')} is gone (HTTP 404)"
    ]
    assert len(site.requests("/broken.html")) == 3  # retried twice with backoff
    assert len(site.requests("/secret.html")) == 1  # a 403 is not retried
    with pytest.raises(ConnectorError, match="HTTP 500"):
        conn.fetch(refs["/broken.html"])
    with pytest.raises(ConnectorError, match="HTTP 403"):
        conn.fetch(refs["/secret.html"])
    with pytest.raises(DocumentError) as too_large:
        conn.fetch(refs["/big.html"])
    assert too_large.value.reason == FailureReason.TOO_LARGE
    assert b"Fine." in conn.fetch(refs["/ok.html"])


def test_a_crawl_cut_short_keeps_the_pages_it_did_not_reach(site: Site) -> None:
    site.write("index.html", page("Home", "Welcome.", "section.html"))
    site.write("section.html", page("Section", "Links.", "leaf.html"))
    site.write("leaf.html", page("Leaf", "Only reached through the section."))
    conn = connector(f"{site.url}/")
    first = list(conn.list())
    assert sorted(versions(first)) == ["/", "/leaf.html", "/section.html"]
    site.forced["/section.html"] = 503
    again = versions(list(conn.list(known_of(first))))
    assert again["/leaf.html"] == versions(first)["/leaf.html"]  # kept: its parent failed
    assert again["/section.html"].startswith("error:")
    del site.forced["/section.html"]
    (site.root / "leaf.html").unlink()
    site.write("section.html", page("Section", "No links now."))
    assert "/leaf.html" not in versions(list(conn.list(known_of(first))))  # a clean crawl: gone


def test_an_unreadable_site_is_a_source_error(site: Site) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(ConnectorError, match=r"cannot list.*ConnectError"):
        list(connector(f"http://127.0.0.1:{closed}/").list())
    site.forced["/robots.txt"] = 503
    with pytest.raises(ConnectorError, match=r"robots\.txt"):
        list(connector(f"{site.url}/").list())
    del site.forced["/robots.txt"]
    with pytest.raises(ConnectorError, match="HTTP 404"):
        list(connector(f"{site.url}/sitemap.xml").list())
    site.write("sitemap.xml", '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><urlset>&a;</urlset>')
    with pytest.raises(ConnectorError, match="entities"):
        list(connector(f"{site.url}/sitemap.xml").list())
    site.write("robots.txt", "User-agent: *\nDisallow: /\n")
    site.write("index.html", page("Home", "Welcome."))
    with pytest.raises(ConnectorError, match=r"robots\.txt disallows"):
        list(connector(f"{site.url}/").list())


def test_settings_refuse_other_schemes_and_credentials_without_echoing_them(tmp_path: Path) -> None:
    def config(url: str) -> Path:
        source = {
            "name": "w",
            "connector": "web",
            "url": url,
            "residency": "eu",
            "contract": "none",
            "access": ["public"],
        }
        return write_config(tmp_path / "g.yaml", {"sources": [source]})

    with pytest.raises(ConfigError, match=r"sources\.0\.url: .*http:// or https://"):
        load_config(config("ftp://example.com/"))
    with pytest.raises(ConfigError, match=r"sources\.0\.url: .*credentials") as err:
        load_config(config("https://user:hunter2@example.com/"))
    assert "hunter2" not in str(err.value)
    assert WebSettings(connector="web", url="HTTP://Example.com:80").url == "http://example.com/"


def test_unreachable_site_purges_nothing_and_other_sources_go_on(
    site: Site, tmp_path: Path, database_url: str, redactor: Redactor, embedder: Embedder
) -> None:
    site.write("index.html", page("Home", "The travel policy lives here.", "a.html"))
    site.write("a.html", page("Expenses", "Receipts are kept for six years."))
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "one.md").write_text("# One\n\nThe first note.\n")
    data = {
        "sources": [
            {
                "name": "site",
                "connector": "web",
                "url": f"{site.url}/",
                "retries": 1,
                "backoff_seconds": 0.01,
                "residency": "eu",
                "contract": "none",
                "access": ["public"],
            },
            {
                "name": "notes",
                "connector": "filesystem",
                "path": "notes",
                "residency": "eu",
                "contract": "none",
                "access": ["public"],
            },
        ],
        "database": {"url": database_url},
    }
    config = load_config(write_config(tmp_path / "g.yaml", data))
    with Services(config, redactor=redactor, embedder=embedder) as services:
        run_all(services)
        assert len(services.index("eu").document_states("site")) == 2
    site.close()
    (notes / "two.md").write_text("# Two\n\nThe second note.\n")
    with Services(config, redactor=redactor, embedder=embedder) as services:
        plan, _ = run_all(services)
        assert "ConnectError" in plan.source_errors["site"]
        assert plan.purges == []
        assert len(services.index("eu").document_states("site")) == 2
        assert len(services.index("eu").document_states("notes")) == 2


def test_cli_ingest_of_a_sitemap_site_follows_edits_and_removals(
    site: Site,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    texts = {
        "leave.html": ("Annual leave", "Every employee receives 25 days of paid annual leave."),
        "travel.html": ("Travel", "Book rail travel through the travel desk at least a week ahead."),
        "laptops.html": ("Laptops", "Laptops are replaced every four years by the service desk."),
    }
    for name, (title, text) in texts.items():
        site.write(name, page(title, text, *texts))
    site.write("sitemap.xml", sitemap(site, *(f"/{n}" for n in texts)))
    (tmp_path / "dagster_home").mkdir()
    (tmp_path / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    data = {
        "sources": [
            {
                "name": "intranet",
                "connector": "web",
                "url": f"{site.url}/sitemap.xml",
                "residency": "eu",
                "contract": "none",
                "access": ["group:staff"],
            }
        ],
        "database": {"url": database_url},
    }
    config_path = write_config(tmp_path / "groundwork.yaml", data)

    assert main(["ingest", "--config", str(config_path)]) == 0
    out = capsys.readouterr().out
    assert "listed: new=3 changed=0 unchanged=0" in out
    assert "embeddings computed: 3" in out
    assert all(len(site.requests(f"/{n}")) == 1 for n in texts)  # fetched from the listing's reads

    site.write("travel.html", page("Travel", "Rail travel is booked through the new travel portal.", *texts))
    (site.root / "laptops.html").unlink()
    site.write("sitemap.xml", sitemap(site, "/leave.html", "/travel.html"))
    served = len(site.log)
    assert main(["ingest", "--config", str(config_path)]) == 0
    out = capsys.readouterr().out
    assert "listed: new=0 changed=1 unchanged=1 retag=0 move=0 rename=0 deleted=1" in out
    assert "embeddings computed: 1" in out  # only the edited page
    second = [(p, s, c) for p, s, c in site.log[served:] if p.endswith(".html")]
    assert sorted(second) == [("/leave.html", 304, True), ("/travel.html", 200, True)]

    with Services(load_config(config_path)) as services:
        eu = services.index("eu")
        with eu.pool.connection() as conn:
            rows = conn.execute(
                f"SELECT source_uri, text FROM {eu.schema}.chunks ORDER BY source_uri"
            ).fetchall()
    by_page = {urlsplit(source_id).path: text for source_id, text in rows}
    assert sorted(by_page) == ["/leave.html", "/travel.html"]
    assert "new travel portal" in by_page["/travel.html"]
    assert "Copyright" not in by_page["/leave.html"]  # the footer is not content


def test_change_token_follows_a_dated_sitemap_and_is_none_otherwise(site: Site) -> None:
    site.write("a.html", page("A", "Alpha."))
    site.write("sitemap.xml", sitemap(site, "/a.html", lastmod={"/a.html": "2026-11-01"}))
    conn = connector(f"{site.url}/sitemap.xml")
    token = conn.change_token()
    assert token is not None and conn.change_token() == token
    site.write("sitemap.xml", sitemap(site, "/a.html", lastmod={"/a.html": "2026-11-02"}))
    assert conn.change_token() not in (None, token)
    site.write("sitemap.xml", sitemap(site, "/a.html"))  # no dates: only a listing can tell
    assert conn.change_token() is None
    site.write("index.html", page("Home", "Welcome.", "a.html"))
    assert connector(f"{site.url}/").change_token() is None


def test_redirects_are_followed_within_the_site_only(site: Site, tmp_path: Path) -> None:
    other = Site(tmp_path / "other")
    other.root.mkdir()
    other.write("x.html", page("X", "Elsewhere."))
    try:
        site.write("index.html", page("Home", "Welcome.", "old.html", "new.html", "away.html"))
        site.write("new.html", page("New", "The page moved here."))
        site.redirects = {"/old.html": "/new.html", "/away.html": f"{other.url}/x.html"}
        conn = connector(f"{site.url}/")
        refs = versions(list(conn.list()))
        assert sorted(refs) == ["/", "/new.html"]  # the moved page once, under its new URL
        assert site.requests("/away.html") == [(301, False)]
        assert other.log == []
        assert conn.stats["off_site"] == 1
    finally:
        other.close()
