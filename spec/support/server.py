#!/usr/bin/env python3
"""server.py: the fixture HTTP server the specs crawl (Python 3 standard library only).

Owns: one listening socket on 127.0.0.1, the static files under --root, the dynamic routes
under /_/, and the request log. Nothing it serves names a non-loopback URL that a browser
would fetch.

    python3 spec/support/server.py --root DIR --port-file FILE [--host 127.0.0.1]
                                   [--watch-pid PID] [--verbose] [--robots-delay-ms N]

Binds port 0 (the OS chooses), writes the port number to FILE atomically (tmp + rename) once
listening, and serves until SIGTERM or SIGINT, then exits 0 promptly: handler threads are
daemons and every handler that waits (slow, stall, noanswer) wakes at shutdown. With
--watch-pid it also exits when that process is gone, so a crashed test runner leaves no
server behind. Access logs go to stderr only with --verbose; handler bugs always do.
Clients that disconnect mid-response (BrokenPipe, ConnectionReset) are ignored silently.

Every response carries `Cache-Control: no-store`, so the request log shows what a browser
really fetched. HTTP/1.1 keep-alive is on; every response has a Content-Length. HEAD is
answered like GET without the body. Requests are logged when they arrive, before the
handler runs, so /_/noanswer and /_/stall are logged too; /_/log and /_/reset are not. An
entry is {method, path, time (arrival), done (when the handler returned, null until then),
status, ua (the User-Agent header)}. --robots-delay-ms N answers /robots.txt after N ms, so a
test can see how many robots.txt fetches overlap.

Static files
  GET /PATH             the file under --root; a directory serves its index.html (a directory
                        asked for without a trailing slash gets a 301 to PATH/); a missing file
                        gets a 404 HTML page. Query strings are ignored. /robots.txt is simply
                        a static file: served when --root has one, else 404.
  GET /p/N              when --root has no such file: a product detail page for /_/products.

Dynamic routes (query parameters in brackets are optional; defaults after "=")
  /_/slow?ms=N              HTML page sent after N ms (<p id="slow">).
  /_/slowjs?ms=N            HTML page at once (<p id="early">); its script appends
                            <p id="late">Late content</p> and sets the title "slowjs done" after N ms.
  /_/stall[?type=html]      200 with headers and part of the body (Content-Length promises 1 MiB),
                            then nothing until shutdown. type=png sends the start of a PNG as
                            image/png (an <img> that never completes).
  /_/neverload              HTML page (<p id="content">) with <img src="/_/stall?type=png">, so its
                            load event never fires.
  /_/noanswer               reads the request, then never sends a byte; holds the socket until
                            shutdown.
  /_/status?code=N          status N (100 < N < 600) with a small HTML body (<h1 id="status">N ...).
  /_/redirect?n=N&to=PATH   a chain of N (=1) redirects ending at PATH (="/"): n=3 answers 302 to
        [&code=302]         n=2, then n=1, then PATH. PATH must be a local absolute path ("/...")
                            or a loopback URL (http://127.0.0.1:PORT/... or http://localhost:PORT/...,
                            another server: the cross-origin case).
                            code may be 301, 302, 303, 307 or 308.
  /_/latin1[?meta=1]        HTML in ISO-8859-1 bytes, "café déjà vu, naïve façade" in <p id="text">,
                            declared by `Content-Type: text/html; charset=iso-8859-1`; with meta=1
                            the header has no charset and <meta charset="iso-8859-1"> declares it.
  /_/sjis[?meta=1]          the same in Shift_JIS: "日本語のページです。こんにちは、世界。".
  /_/jsloop                 HTML page (<p id="before">) whose script runs while(true){}.
  /_/throttle?key=K&times=N 429 with `Retry-After: S` for the first N (=1) requests with key K
        [&after=S]          (="default"), then 200 (<p id="ok">). S defaults to 1.
  /_/unavailable?key=K      the same with 503; Retry-After only when `after` is given.
        &times=N[&after=S]  Counters are per route and key; /_/reset clears them.
  /_/big?mb=N               HTML page of exactly N (=1, may be fractional) MiB of varied ASCII text
                            in many <p>, ending with <p id="end">END-OF-BIG-PAGE</p></body></html>.
  /_/scroll?total=N         infinite scroll: B (=10) <li class="item">Item i</li> of N (=100), each
        &batch=B[&h=PX]     PX (=120) pixels tall; scrolling near the bottom fetches the next batch
        [&delay=MS]         from /_/scroll-items and appends it, until N items. <p id="status">
                            says "loaded X of N"; <body data-done="1"> once all are loaded.
  /_/scroll-items?from=I&n=B  JSON {"items": ["Item I", ...], "next": I+B, "done": bool}
        [&total=N][&delay=MS]   (items stop at N when total is given), after MS (=0) ms.
  /_/login                  GET: form (method=post) with input[name=user], input[name=password],
                            button[type=submit]. POST user=alice&password=secret: sets cookie
                            `session=...; Path=/; HttpOnly` and 302 to /_/account. A wrong POST
                            answers 200 with the form and <p class="error" id="error">.
  /_/account                with a valid session cookie: 200 "Welcome alice" (<h1 id="welcome">)
                            and links to /_/account/orders?page=1..3; else 302 to /_/login.
  /_/account/orders?page=N  with the cookie: 200, five <li class="order" data-id=...> for page
                            N in 1..3 (404 for other N); else 302 to /_/login.
  /_/logout                 forgets the session (not linked from any page) and 302 to /_/login.
  /_/products               10 × <article class="item"><h2>Name</h2><a href="/p/N">View Name</a>
                            <span class="price">$12.50</span></article>, see PRODUCTS below.
  /_/badlinks               links to file:///etc/passwd, javascript:alert(1), data:text/html,hi,
                            chrome://version, mailto:x@y, and two valid relative links:
                            page?id=good-1 and ./page?id=good-2 (both /_/page).
  /_/page?id=X              a small HTML page: <h1 id="title">Page X</h1>.
  /_/links?n=N              a page linking to /_/page?id=1..N (=10).
  /_/headers                the request headers as JSON (names lowercased, repeated headers
                            joined with ", ") inside <pre id="h">.
  /_/ua                     a page whose <title> (and <p id="ua">) is the User-Agent.
  /_/log[?clear=1]          JSON list of the requests served so far, oldest first, each
                            {"method", "path" (with query), "time" (epoch s), "status" (null until
                            sent)}. clear=1 empties it and answers [].
  /_/reset                  empties the log and forgets throttle counters and sessions: {"ok":true}.
  /_/image-page             a page with three <img src="/_/img?i=1..3">, <link rel=stylesheet
                            href="/_/style.css">, whose @font-face loads /_/font.woff2 (used by
                            <p class="fancy">), to test resource blocking through the log.
  /_/img?i=N                a tiny PNG (4x4, a colour per N).
  /_/embed?host=H[&via=V]   a page that reaches http://H (H: a host[:port] that resolves to loopback,
                            else 400) with an <img src=/_/img?i=91>, an <iframe src=/_/page?id=92>,
                            a fetch() of /_/page?id=93, an XHR of /_/page?id=94, a WebSocket to
                            /_/ws95, and a same-origin <img> redirected (/_/redirect) to /_/img?i=96;
                            plus its own <img src="/_/img?i=1"> as the control. Its <title> becomes
                            "embed done" once the fetch and the XHR have settled.
  /_/style.css              the stylesheet of /_/image-page.
  /_/font.woff2             bytes served as font/woff2 (not a usable font: only the fetch matters).
  /_/cycle, /_/cycle2       pages linking to each other and themselves through variants that all
                            name one of the two: fragments (/_/cycle#a, #top), scheme case
                            (HTTP://127.0.0.1:PORT/_/cycle), absolute with the port, protocol-
                            relative (//127.0.0.1:PORT/_/cycle), empty query (./cycle?), dot
                            segments (/_/./cycle2, /_/x/../cycle). A correct frontier fetches each
                            of the two exactly once.
  /_/crashbrowser?root=DIR  a hostile page that takes the browser down: SIGKILLs the main browser
                            process naming DIR (a LUACRAWL_PROFILE_ROOT; the process without
                            --type= whose arguments name DIR), then answers 200 with a small page.
                            {"killed": [pid...]} in <pre id="killed">.
"""

import argparse
import html
import json
import os
import posixpath
import re
import secrets
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
import traceback
import urllib.parse
import zlib
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# ---------------------------------------------------------------------------------------
# Content
# ---------------------------------------------------------------------------------------

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".xml": "application/xml",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".pdf": "application/pdf",
}

PRODUCTS = [
    ("Copper Kettle", "$12.50"),
    ("Linen Apron", "$19.00"),
    ("Walnut Cutting Board", "$34.95"),
    ("Enamel Mug", "$8.25"),
    ("Cast Iron Skillet", "$42.00"),
    ("Bamboo Whisk", "$5.75"),
    ("Stoneware Bowl", "$15.40"),
    ("Glass Teapot", "$27.80"),
    ("Olive Wood Spoon", "$9.99"),
    ("Steel Colander", "$21.10"),
]

BIG_WORDS = (
    "crawler frontier browser context page render script network request response cookie "
    "session robots politeness queue depth link anchor markdown extract table list heading "
    "paragraph timeout retry backoff signal shutdown process socket buffer stream parser "
    "selector element attribute charset encoding latin cache memory worker coroutine"
).split()


def page(title, body, head=""):
    """Returns a small UTF-8 HTML document as str."""
    return (
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>%s</title>%s</head>\n"
        "<body>\n%s\n</body></html>\n" % (html.escape(title), head, body)
    )


def png(width, height, rgb):
    """Returns the bytes of a valid PNG of one solid colour."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    row = b"\x00" + bytes(rgb) * width
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * height))
            + chunk(b"IEND", b""))


def big_sentences():
    """Returns 997 distinct pseudo-random sentences, the same every run."""
    out, seed = [], 12345
    for i in range(997):
        words = []
        for _ in range(12 + i % 17):
            seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
            words.append(BIG_WORDS[(seed >> 8) % len(BIG_WORDS)])
        out.append(" ".join(words).capitalize())
    return out


def big_page(total):
    """Returns an ASCII HTML page of exactly `total` bytes (or just head + tail if smaller)."""
    head = ("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Big page</title>"
            "</head>\n<body>\n<h1>Big page</h1>\n").encode()
    tail = b"<p id=\"end\">END-OF-BIG-PAGE</p></body></html>\n"
    need = total - len(head) - len(tail)
    sentences = big_sentences()
    parts, size, i = [], 0, 0
    while True:
        para = "<p>%d. %s.</p>\n" % (i + 1, sentences[i % len(sentences)])
        if size + len(para) > need:
            break
        parts.append(para)
        size += len(para)
        i += 1
    parts.append("\n" * max(0, need - size))
    return head + "".join(parts).encode() + tail


def cycle_page(port, which):
    """Returns the HTML of /_/cycle or /_/cycle2, whose links all name one of the two."""
    origin = "127.0.0.1:%d" % port
    if which == "cycle":
        hrefs = ["/_/cycle#a", "#top", "HTTP://%s/_/cycle" % origin, "./cycle?",
                 "//%s/_/cycle" % origin, "/_/x/../cycle", "cycle2",
                 "http://%s/_/cycle2" % origin, "/_/./cycle2"]
    else:
        hrefs = ["/_/cycle2", "cycle2#b", "HTTP://%s/_/cycle2#x" % origin, "./cycle2?",
                 "/_/cycle", "cycle#top", "http://%s/_/cycle?" % origin]
    links = "\n".join('<li><a href="%s">%s</a></li>' % (html.escape(h), html.escape(h))
                      for h in hrefs)
    return page("Cycle " + which, '<h1 id="top">%s</h1>\n<ul>\n%s\n</ul>' % (which, links))


SCROLL_SCRIPT = """
(function () {
  var total = %(total)d, batch = %(batch)d, delay = %(delay)d, loaded = %(loaded)d, busy = false;
  var list = document.getElementById('items'), status = document.getElementById('status');
  function nearBottom() {
    var doc = document.documentElement;
    return window.innerHeight + window.scrollY >= doc.scrollHeight - 300;
  }
  function more() {
    if (busy || loaded >= total || !nearBottom()) return;
    busy = true;
    var n = Math.min(batch, total - loaded);
    fetch('/_/scroll-items?from=' + (loaded + 1) + '&n=' + n + '&total=' + total + '&delay=' + delay)
      .then(function (r) { return r.json(); })
      .then(function (d) {
        d.items.forEach(function (text) {
          var li = document.createElement('li');
          li.className = 'item';
          li.textContent = text;
          list.appendChild(li);
        });
        loaded += d.items.length;
        status.textContent = 'loaded ' + loaded + ' of ' + total;
        if (loaded >= total) document.body.setAttribute('data-done', '1');
        busy = false;
        more();
      })
      .catch(function () { busy = false; });
  }
  window.addEventListener('scroll', more, { passive: true });
})();
"""

# ---------------------------------------------------------------------------------------
# Shared state
# ---------------------------------------------------------------------------------------


class State:
    """Everything the handler threads share, behind one lock."""

    def __init__(self, root, verbose, robots_delay_ms=0):
        self.root = os.path.realpath(root)
        self.robots_delay_ms = robots_delay_ms
        self.verbose = verbose
        self.lock = threading.Lock()
        self.log = []
        self.counters = {}
        self.sessions = set()
        self.shutdown = threading.Event()
        self.big_cache = {}

    def record(self, method, path, ua=None):
        """Appends a log entry and returns it (its status is filled in when sent, its `done`
        time when the handler returned)."""
        entry = {"method": method, "path": path, "time": time.time(), "status": None,
                 "done": None, "ua": ua}
        with self.lock:
            self.log.append(entry)
        return entry

    def count(self, key):
        """Returns how many times `key` was counted before, and counts this time."""
        with self.lock:
            seen = self.counters.get(key, 0)
            self.counters[key] = seen + 1
        return seen


class FixtureServer(ThreadingHTTPServer):
    """A threading HTTP server whose handler threads are daemons and whose errors are quiet."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def server_bind(self):
        # HTTPServer.server_bind calls getfqdn(), a DNS lookup; the name is never used here.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = host, port

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, socket.timeout, TimeoutError)):
            return
        sys.stderr.write("server.py: error while serving %r\n" % (client_address,))
        traceback.print_exc(file=sys.stderr)


# ---------------------------------------------------------------------------------------
# Request handler
# ---------------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    """Serves one connection: static files, or a /_/ route from ROUTES."""

    protocol_version = "HTTP/1.1"
    server_version = "luacrawl-fixture/1"

    def version_string(self):
        return self.server_version

    # --- plumbing ---

    @property
    def state(self):
        return self.server.state

    def handle(self):
        try:
            super().handle()
        except (ConnectionError, socket.timeout, TimeoutError):
            self.close_connection = True

    def log_message(self, fmt, *args):
        if self.state.verbose:
            sys.stderr.write("server.py: %s %s\n" % (self.address_string(), fmt % args))

    def send_response(self, code, message=None):
        entry = getattr(self, "_entry", None)
        if entry is not None and entry["status"] is None:
            entry["status"] = code
        super().send_response(code, message)

    def do_GET(self):
        self.dispatch()

    def do_HEAD(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def dispatch(self):
        """Logs the request, reads any body, and runs the route or the static server."""
        self._entry = None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        self.body = self.rfile.read(length) if length > 0 else b""
        url = urllib.parse.urlsplit(self.path)
        self.url_path = url.path
        self.query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, True).items()}
        if not (url.path == "/_/log" or url.path == "/_/reset"):
            self._entry = self.state.record(self.command, self.path,
                                            self.headers.get("User-Agent"))
        try:
            self.route(url)
        finally:
            if self._entry is not None:
                self._entry["done"] = time.time()

    def route(self, url):
        """Runs the route for url.path, or the static server."""
        route = ROUTES.get(url.path)
        if url.path == "/robots.txt" and self.state.robots_delay_ms:
            if not self.wait(self.state.robots_delay_ms / 1000.0):
                self.close_connection = True
                return
        if route is None and url.path.startswith("/_/"):
            self.not_found()
        elif route is None:
            self.static()
        elif self.command == "POST" and url.path != "/_/login":
            self.respond(405, page("405", "<h1>Method not allowed</h1>"),
                         headers=[("Allow", "GET, HEAD")])
        else:
            route(self)

    def respond(self, status, body=b"", ctype="text/html; charset=utf-8", headers=()):
        """Sends a complete response with Content-Length; HEAD gets no body."""
        if isinstance(body, str):
            body = body.encode("utf-8")
        if status < 200 or status in (204, 304):
            body = b""
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and body:
            for i in range(0, len(body), 65536):
                self.wfile.write(body[i:i + 65536])

    def redirect(self, location, code=302, headers=()):
        """Sends a redirect with a tiny HTML body."""
        body = page("Redirect", '<p>Moved to <a href="%s">%s</a></p>'
                    % (html.escape(location), html.escape(location)))
        self.respond(code, body, headers=[("Location", location)] + list(headers))

    def not_found(self):
        body = page("404 Not Found", '<h1 id="status">404 Not Found</h1>\n<p>No page at <code>%s'
                    "</code>.</p>" % html.escape(self.url_path))
        self.respond(404, body)

    def bad_request(self, why):
        self.respond(400, page("400 Bad Request", "<h1>400 Bad Request</h1><p>%s</p>"
                               % html.escape(why)))

    def int_param(self, name, default, low=None, high=None):
        """Returns query parameter `name` as int (default when absent), clamped to [low, high]."""
        try:
            value = int(float(self.query.get(name, default)))
        except ValueError:
            value = default
        if low is not None:
            value = max(low, value)
        if high is not None:
            value = min(high, value)
        return value

    def wait(self, seconds):
        """Sleeps, waking early at shutdown; returns False when the server is shutting down."""
        return not self.state.shutdown.wait(seconds)

    def session_ok(self):
        """True when the request carries a session cookie from a successful login."""
        try:
            jar = SimpleCookie(self.headers.get("Cookie") or "")
        except CookieError:
            return False
        morsel = jar.get("session")
        with self.state.lock:
            return morsel is not None and morsel.value in self.state.sessions

    # --- static files ---

    def static(self):
        """Serves a file under the root, index.html for a directory, or a 404 page."""
        rel = posixpath.normpath(urllib.parse.unquote(self.url_path))
        parts = [p for p in rel.split("/") if p not in ("", ".")]
        if ".." in parts:
            return self.not_found()
        fs_path = os.path.realpath(os.path.join(self.state.root, *parts))
        if fs_path != self.state.root and not fs_path.startswith(self.state.root + os.sep):
            return self.not_found()
        if os.path.isdir(fs_path):
            if not self.url_path.endswith("/"):
                query = urllib.parse.urlsplit(self.path).query
                return self.redirect(self.url_path + "/" + ("?" + query if query else ""), 301)
            fs_path = os.path.join(fs_path, "index.html")
        if not os.path.isfile(fs_path):
            if len(parts) == 2 and parts[0] == "p" and parts[1].isdigit():
                return route_product(self, int(parts[1]))
            return self.not_found()
        try:
            with open(fs_path, "rb") as f:
                data = f.read()
        except OSError:
            return self.not_found()
        ext = os.path.splitext(fs_path)[1].lower()
        self.respond(200, data, CONTENT_TYPES.get(ext, "application/octet-stream"))


# ---------------------------------------------------------------------------------------
# Routes: each takes the handler and sends one response (or holds the connection).
# ---------------------------------------------------------------------------------------


def route_slow(h):
    ms = h.int_param("ms", 1000, 0, 600000)
    if not h.wait(ms / 1000.0):
        h.close_connection = True
        return
    h.respond(200, page("Slow page", '<h1>Slow page</h1>\n<p id="slow">Sent after %d ms.</p>' % ms))


def route_slowjs(h):
    ms = h.int_param("ms", 1000, 0, 600000)
    script = ("setTimeout(function () { var p = document.createElement('p'); p.id = 'late';"
              " p.textContent = 'Late content'; document.getElementById('content').appendChild(p);"
              " document.title = 'slowjs done'; }, %d);" % ms)
    body = ('<h1>Slow script</h1>\n<div id="content"><p id="early">Early content</p></div>\n'
            "<script>%s</script>" % script)
    h.respond(200, page("slowjs waiting", body))


def route_stall(h):
    if h.query.get("type") == "png":
        ctype, part = "image/png", png(64, 64, (200, 40, 40))[:40]
    else:
        ctype = "text/html; charset=utf-8"
        part = (b"<!doctype html>\n<html><head><title>Stalled</title></head>\n<body>\n"
                b"<p id=\"partial\">This page never finishes loading.</p>\n")
    h.send_response(200)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(1 << 20))
    h.send_header("Cache-Control", "no-store")
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(part)
        h.wfile.flush()
        h.state.shutdown.wait()
    h.close_connection = True


def route_neverload(h):
    body = ('<h1>Never loads</h1>\n<p id="content">The text is here at once, but the image below'
            ' never finishes, so the load event never fires.</p>\n'
            '<img src="/_/stall?type=png" alt="stalled" width="64" height="64">')
    h.respond(200, page("Never loads", body))


def route_noanswer(h):
    h.state.shutdown.wait()
    h.close_connection = True


def route_status(h):
    code = h.int_param("code", 500)
    if not 100 < code < 600:
        return h.bad_request("code must be between 101 and 599")
    try:
        phrase = HTTPStatus(code).phrase
    except ValueError:
        phrase = "Status"
    h.respond(code, page("%d %s" % (code, phrase), '<h1 id="status">%d %s</h1>' % (code, phrase)))


def resolves_to_loopback(host):
    """Whether a host[:port] resolves to loopback only: a test page may name it."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    try:
        addrs = {a[4][0] for a in socket.getaddrinfo(name, None, socket.AF_INET)}
    except OSError:
        return False
    return bool(addrs) and all(a.startswith("127.") for a in addrs)


def route_embed(h):
    host = h.query.get("host", "")
    if not re.match(r"^[A-Za-z0-9.-]+(:\d+)?$", host) or not resolves_to_loopback(host):
        return h.bad_request("host must be a host[:port] that resolves to loopback")
    o = "http://" + host
    redirect = "/_/redirect?" + urllib.parse.urlencode({"to": o + "/_/img?i=96"})
    body = """<h1>Embed</h1>
<img src="/_/img?i=1" alt="control">
<img src="%(o)s/_/img?i=91" alt="other host">
<img src="%(r)s" alt="redirected">
<iframe src="%(o)s/_/page?id=92"></iframe>
<script>
const settle = p => p.then(() => 'ok', () => 'error');
const xhr = new Promise((res, rej) => { const x = new XMLHttpRequest(); x.onload = res; x.onerror = rej;
  x.open('GET', '%(o)s/_/page?id=94'); x.send(); });
try { new WebSocket('ws://%(h)s/_/ws95'); } catch (e) {}
Promise.all([settle(fetch('%(o)s/_/page?id=93', {mode: 'no-cors'})), settle(xhr)])
  .then(r => { document.title = 'embed done'; window.embedResults = r; });
</script>""" % {"o": o, "r": html.escape(redirect), "h": host}
    h.respond(200, page("embed", body))


def route_redirect(h):
    n = h.int_param("n", 1, 0, 100)
    to = h.query.get("to", "/")
    code = h.int_param("code", 302)
    m = re.match(r"^http://([A-Za-z0-9.-]+(:\d+)?)/", to)
    loopback = m and resolves_to_loopback(m.group(1))
    if not loopback and (not to.startswith("/") or to.startswith("//") or to.startswith("/\\")):
        return h.bad_request("to must be a local absolute path or a loopback http URL")
    if code not in (301, 302, 303, 307, 308):
        return h.bad_request("code must be 301, 302, 303, 307 or 308")
    if n <= 1:
        return h.redirect(to, code)
    nxt = "/_/redirect?" + urllib.parse.urlencode({"n": n - 1, "to": to, "code": code})
    h.redirect(nxt, code)


def encoded_page(h, charset, title, text, lang):
    """Sends a page encoded in `charset`, declared by the header or (meta=1) a <meta> tag."""
    meta = h.query.get("meta") == "1"
    head = '<meta charset="%s">' % charset if meta else ""
    doc = ('<!doctype html>\n<html lang="%s"><head>%s<title>%s</title></head>\n<body>\n'
           '<h1>%s</h1>\n<p id="text">%s</p>\n</body></html>\n' % (lang, head, title, title, text))
    ctype = "text/html" if meta else "text/html; charset=%s" % charset
    h.respond(200, doc.encode(charset), ctype)


def route_latin1(h):
    encoded_page(h, "iso-8859-1", "Café latin-1", "café déjà vu, naïve façade", "fr")


def route_sjis(h):
    encoded_page(h, "shift_jis", "日本語", "日本語のページです。こんにちは、世界。", "ja")


def route_jsloop(h):
    body = ('<h1>Script loop</h1>\n<p id="before">Before the loop.</p>\n'
            "<script>while (true) {}</script>\n<p id=\"after\">Never parsed.</p>")
    h.respond(200, page("JS loop", body))


def refuse_then_serve(h, route, status, default_after):
    """Answers `status` for the first `times` requests of a key, then 200."""
    key = h.query.get("key", "default")
    times = h.int_param("times", 1, 0)
    after = h.query.get("after", default_after)
    seen = h.state.count((route, key))
    if seen < times:
        headers = [("Retry-After", str(after))] if after is not None else []
        return h.respond(status, page(str(status), '<h1 id="status">%d</h1><p>Refusal %d of %d'
                                      ' for key %s.</p>' % (status, seen + 1, times,
                                                             html.escape(key))), headers=headers)
    h.respond(200, page("OK", '<h1>OK</h1>\n<p id="ok">Key %s passed after %d refusals.</p>'
                        % (html.escape(key), times)))


def route_throttle(h):
    refuse_then_serve(h, "throttle", 429, "1")


def route_unavailable(h):
    refuse_then_serve(h, "unavailable", 503, None)


def route_big(h):
    try:
        mb = max(0.0, min(512.0, float(h.query.get("mb", "1"))))
    except ValueError:
        return h.bad_request("mb must be a number")
    total = int(mb * 1048576)
    with h.state.lock:
        data = h.state.big_cache.get(total)
    if data is None:
        data = big_page(total)
        with h.state.lock:
            h.state.big_cache[total] = data
    h.respond(200, data)


def route_scroll(h):
    total = h.int_param("total", 100, 0)
    batch = h.int_param("batch", 10, 1)
    height = h.int_param("h", 120, 1)
    delay = h.int_param("delay", 0, 0)
    first = min(batch, total)
    items = "\n".join('<li class="item">Item %d</li>' % i for i in range(1, first + 1))
    script = SCROLL_SCRIPT % {"total": total, "batch": batch, "delay": delay, "loaded": first}
    style = ("<style>li.item { height: %dpx; border-bottom: 1px solid #ccc; }</style>" % height)
    body = ('<h1>Infinite scroll</h1>\n<ul id="items">\n%s\n</ul>\n<p id="status">loaded %d of %d'
            "</p>\n<script>%s</script>" % (items, first, total, script))
    doc = page("Infinite scroll", body, style)
    if first >= total:
        doc = doc.replace("<body>", '<body data-done="1">', 1)
    h.respond(200, doc)


def route_scroll_items(h):
    start = h.int_param("from", 1, 1)
    n = h.int_param("n", 10, 0, 10000)
    total = h.int_param("total", start + n - 1)
    delay = h.int_param("delay", 0, 0, 600000)
    if delay and not h.wait(delay / 1000.0):
        h.close_connection = True
        return
    last = min(start + n - 1, total)
    items = ["Item %d" % i for i in range(start, last + 1)]
    data = {"items": items, "next": last + 1, "done": last >= total}
    h.respond(200, json.dumps(data), "application/json")


LOGIN_FORM = """<h1>Log in</h1>
%s<form method="post" action="/_/login">
<label>User <input name="user" type="text"></label>
<label>Password <input name="password" type="password"></label>
<button type="submit">Log in</button>
</form>"""


def route_login(h):
    if h.command != "POST":
        return h.respond(200, page("Log in", LOGIN_FORM % ""))
    form = {k: v[-1] for k, v in urllib.parse.parse_qs(h.body.decode("utf-8", "replace")).items()}
    if form.get("user") == "alice" and form.get("password") == "secret":
        token = secrets.token_hex(16)
        with h.state.lock:
            h.state.sessions.add(token)
        cookie = "session=%s; Path=/; HttpOnly; SameSite=Lax" % token
        return h.redirect("/_/account", 302, [("Set-Cookie", cookie)])
    error = '<p class="error" id="error">Wrong user or password.</p>\n'
    h.respond(200, page("Log in", LOGIN_FORM % error))


def route_logout(h):
    try:
        jar = SimpleCookie(h.headers.get("Cookie") or "")
    except CookieError:
        jar = {}
    if "session" in jar:
        with h.state.lock:
            h.state.sessions.discard(jar["session"].value)
    h.redirect("/_/login", 302, [("Set-Cookie", "session=; Path=/; Max-Age=0")])


def route_account(h):
    if not h.session_ok():
        return h.redirect("/_/login")
    links = "\n".join('<li><a href="/_/account/orders?page=%d">Orders, page %d</a></li>' % (i, i)
                      for i in range(1, 4))
    h.respond(200, page("Account", '<h1 id="welcome">Welcome alice</h1>\n<ul id="orders">\n%s\n'
                        "</ul>" % links))


def route_orders(h):
    if not h.session_ok():
        return h.redirect("/_/login")
    n = h.int_param("page", 1)
    if not 1 <= n <= 3:
        return h.not_found()
    rows = []
    for i in range(1, 6):
        order = 1000 + (n - 1) * 5 + i
        rows.append('<li class="order" data-id="%d">Order #%d: %d items, $%d.%02d</li>'
                    % (order, order, i, 10 + order % 37, (order * 7) % 100))
    body = ('<h1>Orders, page %d</h1>\n<ul>\n%s\n</ul>\n<p><a href="/_/account">Back to account'
            "</a></p>" % (n, "\n".join(rows)))
    h.respond(200, page("Orders %d" % n, body))


def route_products(h):
    items = []
    for i, (name, price) in enumerate(PRODUCTS, 1):
        items.append('<article class="item"><h2>%s</h2><a href="/p/%d">View %s</a>'
                     '<span class="price">%s</span></article>' % (name, i, name, price))
    h.respond(200, page("Products", "<h1>Products</h1>\n" + "\n".join(items)))


def route_product(h, n):
    """The page /p/N (when --root has no such file): product N of PRODUCTS, else 404."""
    if not 1 <= n <= len(PRODUCTS):
        return h.not_found()
    name, price = PRODUCTS[n - 1]
    h.respond(200, page(name, '<h1 id="name">%s</h1>\n<p class="price">%s</p>\n'
                        '<p><a href="/_/products">All products</a></p>' % (name, price)))


def route_badlinks(h):
    hrefs = ["file:///etc/passwd", "javascript:alert(1)", "data:text/html,hi", "chrome://version",
             "mailto:x@y", "page?id=good-1", "./page?id=good-2"]
    links = "\n".join('<li><a href="%s">%s</a></li>' % (html.escape(x), html.escape(x))
                      for x in hrefs)
    h.respond(200, page("Bad links", "<h1>Bad links</h1>\n<ul>\n%s\n</ul>" % links))


def route_page(h):
    ident = h.query.get("id", "none")
    h.respond(200, page("Page " + ident, '<h1 id="title">Page %s</h1>\n<p>A plain page.</p>'
                        % html.escape(ident)))


def route_links(h):
    n = h.int_param("n", 10, 0, 10000)
    links = "\n".join('<li><a href="/_/page?id=%d">Page %d</a></li>' % (i, i)
                      for i in range(1, n + 1))
    h.respond(200, page("Links", "<h1>Links</h1>\n<ul>\n%s\n</ul>" % links))


def route_headers(h):
    seen = {}
    for name, value in h.headers.items():
        key = name.lower()
        seen[key] = seen[key] + ", " + value if key in seen else value
    text = json.dumps(seen, indent=1, sort_keys=True)
    h.respond(200, page("Request headers", '<pre id="h">%s</pre>' % html.escape(text)))


def route_ua(h):
    ua = h.headers.get("User-Agent", "")
    h.respond(200, page(ua, '<p id="ua">%s</p>' % html.escape(ua)))


def route_log(h):
    with h.state.lock:
        if h.query.get("clear") == "1":
            h.state.log = []
        entries = [dict(e) for e in h.state.log]
    h.respond(200, json.dumps(entries), "application/json")


def route_reset(h):
    with h.state.lock:
        h.state.log = []
        h.state.counters = {}
        h.state.sessions = set()
    h.respond(200, json.dumps({"ok": True}), "application/json")


def route_image_page(h):
    imgs = "\n".join('<img src="/_/img?i=%d" alt="image %d" width="4" height="4">' % (i, i)
                     for i in range(1, 4))
    body = ('<h1>Images</h1>\n%s\n<p class="fancy">Text set in a web font.</p>' % imgs)
    h.respond(200, page("Image page", body, '<link rel="stylesheet" href="/_/style.css">'))


def route_img(h):
    i = h.int_param("i", 1)
    rgb = ((i * 70) % 256, (i * 130) % 256, (i * 200) % 256)
    h.respond(200, png(4, 4, rgb), "image/png")


def route_style(h):
    css = ('@font-face { font-family: "Fixture"; src: url("/_/font.woff2") format("woff2"); }\n'
           '.fancy { font-family: "Fixture", sans-serif; }\nbody { background: #f4f4f4; }\n')
    h.respond(200, css, "text/css; charset=utf-8")


def route_font(h):
    h.respond(200, b"wOF2" + b"\x00" * 60, "font/woff2")


def main_browser_pids(root):
    """Pids of the main browser processes (no --type=) whose arguments name root."""
    root = root.rstrip("/")
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                args = f.read().decode("utf-8", "replace").split("\0")
        except OSError:
            continue
        if any(a.startswith("--type=") for a in args):
            continue
        if any(a.startswith("--") and (root + "/") in a for a in args):
            pids.append(int(name))
    return pids


def route_crashbrowser(h):
    root = h.query.get("root", "")
    if len(root) < 2:
        h.bad_request("root=DIR required")
        return
    killed = []
    for pid in main_browser_pids(root):
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except OSError:
            pass
    h.respond(200, page("crash", '<pre id="killed">%s</pre>' % json.dumps({"killed": killed})))


def route_cycle(h):
    h.respond(200, cycle_page(h.server.server_address[1], "cycle"))


def route_cycle2(h):
    h.respond(200, cycle_page(h.server.server_address[1], "cycle2"))


ROUTES = {
    "/_/slow": route_slow,
    "/_/slowjs": route_slowjs,
    "/_/stall": route_stall,
    "/_/neverload": route_neverload,
    "/_/noanswer": route_noanswer,
    "/_/status": route_status,
    "/_/redirect": route_redirect,
    "/_/embed": route_embed,
    "/_/latin1": route_latin1,
    "/_/sjis": route_sjis,
    "/_/jsloop": route_jsloop,
    "/_/throttle": route_throttle,
    "/_/unavailable": route_unavailable,
    "/_/big": route_big,
    "/_/scroll": route_scroll,
    "/_/scroll-items": route_scroll_items,
    "/_/login": route_login,
    "/_/logout": route_logout,
    "/_/account": route_account,
    "/_/account/orders": route_orders,
    "/_/products": route_products,
    "/_/badlinks": route_badlinks,
    "/_/page": route_page,
    "/_/links": route_links,
    "/_/headers": route_headers,
    "/_/ua": route_ua,
    "/_/log": route_log,
    "/_/reset": route_reset,
    "/_/image-page": route_image_page,
    "/_/img": route_img,
    "/_/style.css": route_style,
    "/_/font.woff2": route_font,
    "/_/cycle": route_cycle,
    "/_/cycle2": route_cycle2,
    "/_/crashbrowser": route_crashbrowser,
}

# ---------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------


def write_port_file(path, port):
    """Writes the port number to `path` atomically: a temp file beside it, then rename."""
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.replace(tmp, path)


def process_gone(pid):
    """True when process `pid` no longer exists or is a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2:][:1] in ("Z", "X")


def main(argv=None):
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    parser = argparse.ArgumentParser(description="luacrawl fixture HTTP server")
    parser.add_argument("--root", required=True, help="directory of static files")
    parser.add_argument("--port-file", required=True, help="file to write the port number to")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--watch-pid", type=int, help="exit when this process is gone")
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    parser.add_argument("--robots-delay-ms", type=int, default=0,
                        help="answer /robots.txt only after this many ms")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.root):
        sys.stderr.write("server.py: --root %s is not a directory\n" % args.root)
        return 2

    server = FixtureServer((args.host, 0), Handler)
    server.state = State(args.root, args.verbose, args.robots_delay_ms)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    write_port_file(args.port_file, server.server_address[1])

    while not stop.wait(0.25):
        if args.watch_pid and process_gone(args.watch_pid):
            break
    server.state.shutdown.set()
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
