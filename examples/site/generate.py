#!/usr/bin/env python3
"""generate.py: writes examples/site, the small documentation-like site that `make run` crawls.

Owns every file under examples/site except itself: run it to regenerate them all (files it
no longer makes are removed). Python 3 standard library only; the output is deterministic.

    python3 examples/site/generate.py

The site is plain HTML with no external resources: a shared nav, nested directories (guide/,
guide/deep/, api/, blog/2025/..., blog/2026/...), relative and absolute-path links, code blocks
(<pre><code class="language-lua">), tables, nested lists, local SVG and PNG images, one link to
a missing page (/guide/old-install.html, a 404), and pages reachable only at depth 3 and 4
(guide/deep/). It also writes manifest.json (linked from nowhere): every page with its URL,
<title>, <h1>, shortest link depth from / and the site pages it links to; the broken link and
the page linking to it; the assets; and the total size: for specs to compare a crawl against. The generator checks its own invariants and fails if one breaks.
"""

import html
import json
import os
import posixpath
import re
import shutil
import struct
import sys
import zlib
from collections import deque

SITE = os.path.dirname(os.path.abspath(__file__))
MAX_BYTES = 300 * 1024
MISSING = "/guide/old-install.html"
NAV = [("/", "Home"), ("/guide/", "Guide"), ("/api/", "API"), ("/blog/", "Blog"),
       ("/faq.html", "FAQ"), ("/about.html", "About")]


def code(text, lang="lua"):
    """Returns a code block, escaped, with its language class."""
    return '<pre><code class="language-%s">%s</code></pre>' % (lang, html.escape(text.strip("\n")))


# ---------------------------------------------------------------------------------------
# Pages: (path, title, body). Paths are site paths; bodies are HTML, links written as a
# reader of the page would (relative or absolute-path).
# ---------------------------------------------------------------------------------------

PAGES = []


def add(path, title, body):
    PAGES.append((path, title, body.strip("\n")))


add("/index.html", "luacrawl", """
<p class="lead">luacrawl is a crawl engine written in C11 that drives headless Chromium over the
Chrome DevTools Protocol and runs crawl jobs written in Lua 5.4.</p>
<img src="assets/logo.svg" alt="The luacrawl logo: a crescent moon over a spider web" width="96" height="96">
<p>You describe what to visit and what to keep in a short Lua script. The engine does the
rest: it starts the browser, keeps a frontier of URLs, opens pages in reusable browser contexts,
waits for them to render, runs your code against each one, and writes one JSON record per line.</p>
<h2>Start here</h2>
<ul>
  <li><a href="guide/install.html">Install the dependencies and build</a></li>
  <li><a href="/guide/first-crawl.html">Run your first crawl</a> against this very site</li>
  <li><a href="guide/job-scripts.html">Write a job script</a></li>
  <li><a href="api/">Browse the Lua API</a></li>
</ul>
<h2>Why another crawler?</h2>
<p>Many sites only show their content after scripts run. A plain HTTP crawler sees an empty
shell; a browser sees the page a reader sees. Browsers are heavy, though, so luacrawl spends its
effort on keeping one browser busy: it reuses contexts and tabs, blocks the resources a job does
not need, and never lets a slow page hold up the rest of the crawl.</p>
<p>Lua keeps job scripts short. A crawl that extracts product names and prices from a catalogue
fits in twenty lines, and every call that waits on the browser simply yields the coroutine it runs
in, so scripts read top to bottom without callbacks.</p>
<h2>Latest from the blog</h2>
<ul>
  <li><a href="blog/2026/04/shutdown-order.html">Shutting down in the right order</a></li>
  <li><a href="blog/2026/03/markdown-output.html">Markdown that reads well</a></li>
</ul>
""")

add("/about.html", "About luacrawl", """
<p>luacrawl began as a tool for archiving documentation sites whose pages are assembled in the
browser. It grew into a general engine once it was clear that the hard parts (process control,
timeouts, clean shutdown) were the same for every crawl.</p>
<h2>How it is built</h2>
<img src="assets/architecture.svg" alt="Layers: CLI, engine, job, page, CDP, browser" width="360" height="200">
<p>The engine is layered, and no layer reaches into one above it:</p>
<ol>
  <li>The ground floor: logging, the URL frontier and the JSON Lines output.</li>
  <li>The browser layer: spawning Chromium, the WebSocket connection, the context cache.</li>
  <li>The protocol layer: CDP command ids, sessions and deadlines.</li>
  <li>Pages and jobs: navigation, waits, evaluation, the coroutines that run your script.</li>
  <li>The Lua bindings and the command line.</li>
</ol>
<p>One event loop (libuv) runs everything. Callbacks from the network never run Lua directly:
they complete an operation and queue the coroutine that waits for it, and a single function
resumes coroutines. That rule is what makes cancellation and shutdown predictable.</p>
<h2>About this site</h2>
<p>This site is sample content bundled with luacrawl so that <code>make run</code> has something
to crawl. It is generated by <code>examples/site/generate.py</code>. The API pages here sketch the
shape of the Lua API for the sake of the example; the documentation in the repository is the
reference.</p>
""")

add("/faq.html", "Frequently asked questions", """
<h2>Does luacrawl need a display?</h2>
<p>No. It runs Chromium headless. On Debian the lean <code>chromium-headless-shell</code> build
is the default; pass <code>--browser PATH</code> to use the full browser instead.</p>
<h2>Does it obey robots.txt?</h2>
<p>Yes, by default. Each host's robots.txt is fetched once, before the first page of that host,
and disallowed paths are never requested. See <a href="guide/politeness.html">Politeness</a>.</p>
<h2>Where does the output go?</h2>
<p>Records go to standard output as JSON Lines, one object per line, unless you pass
<code>-o FILE</code>. Progress and the final summary go to standard error, so you can pipe the
records straight into <code>jq</code>.</p>
<h2>What happens when I press Ctrl-C?</h2>
<ul>
  <li>The first interrupt stops new work, cancels what is in flight and shuts down cleanly:
    <ul>
      <li>pending navigations are cancelled,</li>
      <li>browser contexts are closed,</li>
      <li>the browser and its helper processes are stopped, and their profile directories removed.</li>
    </ul>
  </li>
  <li>The exit code is then 130, as for any program stopped by SIGINT.</li>
</ul>
<h2>Can a job script hang the crawler?</h2>
<p>No. Scripts run under an instruction budget and every browser call has a deadline. A page
whose own JavaScript never returns is abandoned when its deadline passes; see
<a href="/guide/navigation-and-waits.html">Navigation and waits</a>.</p>
""")

add("/glossary.html", "Glossary", """
<p>The words the rest of this site uses, in one place.</p>
<table>
  <thead><tr><th>Term</th><th>Meaning</th></tr></thead>
  <tbody>
    <tr><td>frontier</td><td>The queue of URLs still to visit, with their depth and the page that found them.</td></tr>
    <tr><td>depth</td><td>The number of links followed from a start URL. Start URLs have depth 0.</td></tr>
    <tr><td>context</td><td>A browser context: an isolated set of cookies, storage and cache, like a private window.</td></tr>
    <tr><td>signature</td><td>A short hash of the options that shape a context (user agent, viewport, headers). Equal signatures share a context.</td></tr>
    <tr><td>job</td><td>One run of a Lua script, with everything it owns: contexts, pages, timers.</td></tr>
    <tr><td>record</td><td>One JSON object written to the output, one per line.</td></tr>
    <tr><td>politeness delay</td><td>The minimum time between two requests to the same host.</td></tr>
    <tr><td>CDP</td><td>The Chrome DevTools Protocol, spoken over a WebSocket.</td></tr>
  </tbody>
</table>
<p>See also the <a href="faq.html">FAQ</a> and the <a href="api/">API overview</a>.</p>
""")

add("/changelog.html", "Changelog", """
<h2>0.1.0</h2>
<ul>
  <li>First release of the engine and the <code>run</code> command.</li>
  <li>Job scripts in Lua 5.4, with coroutines for every browser call.</li>
  <li>JSON Lines output, <code>--stats</code> summaries, robots.txt support.</li>
  <li>A context cache that reuses browser contexts and idle tabs.</li>
  <li>Markdown conversion of page content.</li>
</ul>
<p>Read the story behind the release in <a href="blog/2026/01/introducing-luacrawl.html">Introducing luacrawl</a>.</p>
""")

# --- guide ---

add("/guide/index.html", "Guide", """
<p>The guide walks from installation to the details of running large crawls. Read it in order
the first time; later, jump to the part you need.</p>
<ul>
  <li>Getting started
    <ul>
      <li><a href="install.html">Installation</a></li>
      <li><a href="first-crawl.html">Your first crawl</a></li>
      <li><a href="job-scripts.html">Job scripts</a></li>
    </ul>
  </li>
  <li>Working with pages
    <ul>
      <li><a href="navigation-and-waits.html">Navigation and waits</a></li>
      <li><a href="extraction.html">Extracting data</a></li>
      <li><a href="markdown.html">Markdown output</a></li>
      <li><a href="infinite-scroll.html">Infinite scroll</a></li>
      <li><a href="sessions.html">Logging in and sessions</a></li>
    </ul>
  </li>
  <li>Running well
    <ul>
      <li><a href="politeness.html">Politeness: robots.txt and rate limits</a></li>
      <li><a href="retries.html">Retries and backoff</a></li>
      <li><a href="contexts.html">Browser contexts and the cache</a></li>
      <li><a href="resource-blocking.html">Blocking resources</a></li>
      <li><a href="shutdown.html">Cancelling and shutting down</a></li>
      <li><a href="troubleshooting.html">Troubleshooting</a></li>
    </ul>
  </li>
</ul>
""")

add("/guide/install.html", "Installation", """
<p>luacrawl builds on Debian 12 with packages from the distribution. One command installs them:</p>
""" + code("""
make deps      # installs the Debian packages, as root
make           # configures with CMake and builds build/luacrawl
make test      # runs the C unit tests and the behaviour specs
""", "sh") + """
<p>The build needs a C11 compiler, CMake, Lua 5.4 with its headers, libuv, libwebsockets with
its libuv plugin, and uriparser. Crawling needs Chromium; the headless shell build is enough.</p>
<h2>Checking the browser</h2>
<p>luacrawl looks for <code>/usr/lib/chromium/chromium-headless-shell</code> first. The Debian
<code>/usr/bin/chromium</code> is a wrapper script that adds flags of its own, so the engine starts
the real binary directly.</p>
<p>Upgrading from a pre-release? The <a href="old-install.html">old installation notes</a> are
kept for reference.</p>
<p>Next: <a href="first-crawl.html">your first crawl</a>.</p>
""")

add("/guide/first-crawl.html", "Your first crawl", """
<p>The quickest way to see luacrawl work is <code>make run</code>. It builds the engine, serves
this example site on 127.0.0.1, and crawls it with the bundled script:</p>
""" + code("""
make run
# or, with a server of your own:
build/luacrawl run scripts/crawl.lua url=http://127.0.0.1:8000/ -o pages.jsonl --stats stats.json
""", "sh") + """
<img src="/assets/terminal.png" alt="A terminal showing crawl progress" width="64" height="40">
<p>Each line of the output is one page:</p>
""" + code("""
{"url":"http://127.0.0.1:8000/guide/","status":200,"depth":1,"title":"Guide","markdown":"..."}
""", "json") + """
<p>Progress goes to standard error while the crawl runs, and a summary at the end says how many
pages were fetched, how many failed, and how long it took. Try following a link to a page that
does not exist: the record for it carries status 404, and the crawl carries on.</p>
<p>Next, <a href="job-scripts.html">write a job script</a> of your own.</p>
""")

add("/guide/job-scripts.html", "Job scripts", """
<p>A job script is a Lua file. The engine runs it inside a coroutine and hands it the
parameters given on the command line as <code>name=value</code> pairs.</p>
""" + code("""
-- titles.lua: print the title of every page of a site
local start = assert(params.url, "usage: luacrawl run titles.lua url=URL")

crawl.add(start)
crawl.each_page(function(page)
  emit({ url = page.url, title = page:title() })
  for _, href in ipairs(page:links()) do
    crawl.add(href, { depth = page.depth + 1 })
  end
end, { concurrency = 4, max_depth = 3 })
""") + """
<p>Every call that waits for the browser, such as <code>page:title()</code>, yields the coroutine.
Other pages keep loading meanwhile, so four pages can be in flight with no threads in your script.</p>
<h2>Errors</h2>
<p>Calls that can fail at run time (a navigation that times out, a selector that matches nothing)
return <code>nil</code> and a message. Calls made wrongly (a number where a URL belongs) raise an
error, because that is a bug in the script. An error in one page's handler is reported in that
page's record; the crawl goes on.</p>
<p>See the <a href="../api/job.html">job API</a> and the <a href="../api/page.html">page API</a>.</p>
""")

add("/guide/navigation-and-waits.html", "Navigation and waits", """
<p>A page is ready when its content is there, which is not always when the load event fires. A
page may keep loading an image forever; another may add its content from a script a second later.
luacrawl lets a job say what it waits for.</p>
<table>
  <thead><tr><th>Wait for</th><th>Meaning</th><th>Good for</th></tr></thead>
  <tbody>
    <tr><td><code>load</code></td><td>the load event</td><td>static pages</td></tr>
    <tr><td><code>domcontentloaded</code></td><td>the document is parsed</td><td>pages with slow images</td></tr>
    <tr><td><code>idle</code></td><td>no network activity for 500 ms</td><td>pages that fetch their content</td></tr>
    <tr><td>a selector</td><td>an element matching it exists</td><td>one known element</td></tr>
  </tbody>
</table>
""" + code("""
local page, err = crawl.open(url, { wait = "#results li", timeout = 15 })
if not page then
  emit({ url = url, error = err })   -- "timeout after 15 s waiting for #results li"
  return
end
""") + """
<p>Every wait has a deadline. When it passes, the navigation is stopped, the page is closed, and
the call returns <code>nil</code> with a message, even if the page's own JavaScript is stuck in a
loop.</p>
""")

add("/guide/extraction.html", "Extracting data", """
<p>Most crawls want a few fields from each page rather than the whole document.
<code>page:extract</code> takes a table that mirrors the record you want:</p>
""" + code("""
local items = page:extract({
  list = "article.item",
  fields = {
    name  = "h2",
    link  = { "a", attr = "href" },
    price = { ".price", as = "number" },
  },
})
for _, item in ipairs(items) do emit(item) end
""") + """
<p>Selectors run in the page, so they see the DOM after scripts have run. Links come back absolute,
resolved against the page URL. A field whose selector matches nothing is left out of its record
rather than set to an empty string, so a missing price is easy to tell from a free one.</p>
<p>For anything the table form cannot say, <code>page:eval</code> runs a JavaScript expression and
returns its value converted to Lua.</p>
""")

add("/guide/markdown.html", "Markdown output", """
<p><code>page:markdown()</code> turns the main content of a page into Markdown. It first finds the
part of the page that holds the article, leaving out navigation, footers and sidebars, and then
converts headings, lists, tables, links and code blocks.</p>
<ul>
  <li>Code blocks keep their language: a <code>language-lua</code> class becomes a fenced block marked <code>lua</code>.</li>
  <li>Tables become pipe tables when every cell is plain text.</li>
  <li>Relative links and image sources become absolute URLs.</li>
</ul>
""" + code("""
crawl.each_page(function(page)
  emit({ url = page.url, markdown = page:markdown({ main_only = true }) })
end)
""") + """
<p>The blog post <a href="/blog/2026/03/markdown-output.html">Markdown that reads well</a> explains
the choices behind the converter.</p>
""")

add("/guide/politeness.html", "Politeness: robots.txt and rate limits", """
<p>A crawler is a guest. luacrawl is polite by default and lets you tighten, not loosen, the rules
per host.</p>
<ol>
  <li>robots.txt is fetched before the first page of each host and obeyed for the user agent the
    browser sends. A path it disallows is never requested, not even by a redirect.</li>
  <li>Requests to one host are spaced by the politeness delay (one second unless the job sets it).</li>
  <li>At most a few pages per host are open at once, whatever the global concurrency.</li>
  <li>A 429 or 503 answer with <code>Retry-After</code> pauses that host for as long as it asks.</li>
</ol>
""" + code("""
crawl.configure({ delay = 2.0, per_host = 2, robots = true })
""") + """
<p>See <a href="retries.html">Retries and backoff</a> for what happens to the refused page.</p>
""")

add("/guide/retries.html", "Retries and backoff", """
<p>Some failures are worth a second try: a server that is busy (503), a rate limit (429), a
connection reset. Others are not: a 404 will still be a 404 in a minute.</p>
<table>
  <thead><tr><th>Outcome</th><th>Retried?</th><th>Delay</th></tr></thead>
  <tbody>
    <tr><td>429, 503 with Retry-After</td><td>yes</td><td>as the server asks, capped</td></tr>
    <tr><td>429, 503 without it</td><td>yes</td><td>exponential: 1 s, 2 s, 4 s...</td></tr>
    <tr><td>connection refused or reset</td><td>yes</td><td>exponential</td></tr>
    <tr><td>navigation timeout</td><td>once</td><td>exponential</td></tr>
    <tr><td>404, 410, other 4xx</td><td>no</td><td></td></tr>
  </tbody>
</table>
<p>After the last attempt the page gets a record with its final status and the error, and the
summary counts it as failed. The number of attempts is set per job with
<code>crawl.configure({ retries = 3 })</code>.</p>
""")

add("/guide/contexts.html", "Browser contexts and the cache", """
<p>Opening a fresh browser context for every page is safe but slow: the browser has to start a
new renderer each time. luacrawl keeps contexts in a cache keyed by a signature of the options
that shape them: user agent, viewport, extra headers, whether JavaScript is on.</p>
<ul>
  <li>Pages with the same options share a context, and an idle tab is reused for the next page.</li>
  <li>A context is closed only when no page holds it and it has been idle long enough, or when
    the cache is over its size limit and it is the least recently used.</li>
  <li>Cookies live in a context. A job that logs in keeps its own context, so its session never
    leaks into another job.</li>
</ul>
<p>The <a href="/blog/2026/02/context-cache.html">context cache post</a> tells how reference counts
keep a context from being closed under a page that still uses it.</p>
""")

add("/guide/resource-blocking.html", "Blocking resources", """
<p>A crawl that wants text does not need images, fonts or video. Blocking them saves bandwidth,
memory and time, and is kinder to the site.</p>
""" + code("""
crawl.configure({ block = { "image", "font", "media", "stylesheet" } })
""") + """
<p>Blocked requests are failed inside the browser before they leave it, so the server never sees
them. Layout still works without stylesheets, though a page that measures its own elements may
behave differently; leave stylesheets on if a page's content depends on them.</p>
""")

add("/guide/infinite-scroll.html", "Infinite scroll", """
<p>Some lists load more items as the reader scrolls. To collect them all, scroll until the list
stops growing:</p>
""" + code("""
local last = 0
for _ = 1, 50 do
  page:scroll_to_bottom()
  page:wait_for_idle({ timeout = 5 })
  local count = page:count("li.item")
  if count == last then break end
  last = count
end
""") + """
<p>Bound the loop: a list that never ends would otherwise keep the page open forever. The
<code>wait_for_idle</code> call returns once the fetch that the scroll started has finished.</p>
""")

add("/guide/sessions.html", "Logging in and sessions", """
<p>To crawl pages behind a login, fill the form once and let the cookie do the rest. The session
stays in the job's browser context, so every later page of the job is logged in.</p>
""" + code("""
local page = assert(crawl.open(params.url .. "login"))
page:fill("input[name=user]", params.user)
page:fill("input[name=password]", params.password)
page:click("button[type=submit]", { wait = "navigation" })
assert(page:text("h1"):find("Welcome"), "login failed")
""") + """
<p>Pass secrets as parameters or environment variables, never in the script itself. Records never
include cookies unless the job puts them there.</p>
""")

add("/guide/shutdown.html", "Cancelling and shutting down", """
<p>A crawl can end in several ways: the frontier empties, the job returns, an error escapes the
job, or someone presses Ctrl-C. Each way runs the same cleanup.</p>
<ol>
  <li>Stop accepting work: nothing new is taken from the frontier.</li>
  <li>Cancel what is pending: navigations, waits and timers of every page.</li>
  <li>Release the contexts the job holds.</li>
  <li>Close the browser, and kill its process tree if it does not go quietly.</li>
  <li>Close the Lua state, then the remaining handles, and check that the loop is empty.</li>
</ol>
<p>The records written before the interrupt are complete lines; a line is never cut in half. The
<a href="/blog/2026/04/shutdown-order.html">shutdown order</a> post has the reasoning.</p>
""")

add("/guide/troubleshooting.html", "Troubleshooting", """
<p>When a crawl does not do what you expect, these steps find most problems.</p>
<dl>
  <dt>The browser does not start</dt>
  <dd>Run the browser binary by hand with <code>--headless --dump-dom about:blank</code>. Missing
  shared libraries show up at once.</dd>
  <dt>Pages come back empty</dt>
  <dd>The content probably arrives after the load event. Wait for a selector instead; see
  <a href="navigation-and-waits.html">Navigation and waits</a>.</dd>
  <dt>Some pages are never fetched</dt>
  <dd>Check robots.txt and the depth limit. The summary lists URLs skipped for each reason.</dd>
  <dt>Text looks garbled</dt>
  <dd>The page declares the wrong charset. The browser follows the header first, then the
  <code>meta</code> tag; records are always UTF-8.</dd>
</dl>
<p>Still stuck? <a href="deep/debugging-cdp.html">Debugging at the protocol level</a> shows how to
watch the messages between the engine and the browser.</p>
""")

add("/guide/deep/debugging-cdp.html", "Debugging at the protocol level", """
<p>Every request the engine makes of the browser is a CDP command with an id, and every answer
carries the same id. Setting <code>LUACRAWL_TRACE=cdp</code> writes each message to standard error
with a timestamp and the page it belongs to.</p>
""" + code("""
LUACRAWL_TRACE=cdp build/luacrawl run scripts/crawl.lua url=http://127.0.0.1:8000/ 2>trace.log
""", "sh") + """
<p>A command with no answer is the usual sign of a hung page; an answer with an error names the
reason Chromium refused. This page is only reachable three links deep from the home page, which
makes it a handy check for depth limits. <a href="reading-a-trace.html">Reading a trace</a> goes
one step further.</p>
""")

add("/guide/deep/reading-a-trace.html", "Reading a trace", """
<p>A trace line looks like this:</p>
""" + code("""
12.481 page=7 -> {"id":212,"method":"Page.navigate","params":{"url":"http://127.0.0.1:8000/api/"}}
12.536 page=7 <- {"id":212,"result":{"frameId":"F3","loaderId":"L9"}}
13.020 page=7 <- {"method":"Page.loadEventFired","params":{"timestamp":8123.4}}
""", "text") + """
<p>Read it in pairs: every arrow out should have an arrow back with the same id. Events have no
id; they arrive when the browser has something to say. Four links deep, this is the deepest page of
the site. Back to <a href="../troubleshooting.html">Troubleshooting</a>.</p>
""")

# --- api ---

add("/api/index.html", "API overview", """
<p>The Lua API has a few modules, each about one thing.</p>
<table>
  <thead><tr><th>Module</th><th>What it does</th></tr></thead>
  <tbody>
    <tr><td><a href="job.html">crawl</a></td><td>the frontier, concurrency and the page loop</td></tr>
    <tr><td><a href="page.html">page</a></td><td>one open page: waits, evaluation, extraction, content</td></tr>
    <tr><td><a href="frontier.html">frontier rules</a></td><td>how URLs are normalized and deduplicated</td></tr>
    <tr><td><a href="output.html">emit</a></td><td>writing records</td></tr>
    <tr><td><a href="policy.html">policy</a></td><td>which URLs may be visited</td></tr>
    <tr><td><a href="util.html">util</a></td><td>small helpers: URLs, text, time</td></tr>
  </tbody>
</table>
<p>The command line is described in <a href="cli.html">CLI</a>, and the error messages in
<a href="errors.html">Errors</a>.</p>
<img src="../assets/architecture.svg" alt="Where the API sits among the engine's layers" width="360" height="200">
""")

add("/api/cli.html", "Command line", """
<p>luacrawl has one command today:</p>
""" + code("""
luacrawl run SCRIPT [name=value ...] [-o FILE] [--stats FILE] [--browser PATH]
""", "sh") + """
<table>
  <thead><tr><th>Argument</th><th>Meaning</th></tr></thead>
  <tbody>
    <tr><td><code>SCRIPT</code></td><td>the Lua job to run</td></tr>
    <tr><td><code>name=value</code></td><td>a parameter, available to the script in <code>params</code></td></tr>
    <tr><td><code>-o FILE</code></td><td>write records to FILE instead of standard output</td></tr>
    <tr><td><code>--stats FILE</code></td><td>write a JSON summary of the run to FILE</td></tr>
    <tr><td><code>--browser PATH</code></td><td>the Chromium binary to start</td></tr>
  </tbody>
</table>
<p>The exit code is 0 when the job finished, non-zero when it failed, and 130 when it was
interrupted with Ctrl-C.</p>
""")

add("/api/job.html", "crawl: the job API", """
<p>The <code>crawl</code> module owns the frontier and the loop that opens pages.</p>
<h2>crawl.add(url [, opts])</h2>
<p>Adds a URL to the frontier. Returns <code>true</code> if it was new, <code>false</code> if an
equal URL was already seen (see <a href="frontier.html">frontier rules</a>). Raises if
<code>url</code> is not a string.</p>
<h2>crawl.each_page(handler [, opts])</h2>
<p>Opens pages from the frontier, at most <code>opts.concurrency</code> at a time, and calls
<code>handler(page)</code> for each in its own coroutine. Returns when the frontier is empty and
every handler has returned.</p>
""" + code("""
crawl.each_page(function(page)
  emit({ url = page.url, status = page.status })
end, { concurrency = 8, max_depth = 2, same_origin = true })
""") + """
<h2>crawl.configure(opts)</h2>
<p>Sets politeness, retries and resource blocking for the job. See the
<a href="/guide/politeness.html">politeness guide</a>.</p>
""")

add("/api/page.html", "page: one open page", """
<p>A page object stands for one tab showing one URL. It is valid inside the handler that
received it, and closed for you when that handler returns.</p>
<ul>
  <li><code>page.url</code>, <code>page.status</code>, <code>page.depth</code>: where it is and how it got there.</li>
  <li><code>page:title()</code>, <code>page:text(selector)</code>, <code>page:count(selector)</code>: quick reads.</li>
  <li><code>page:links()</code>: every link, absolute, in document order.</li>
  <li><code>page:extract(spec)</code>: structured extraction, see <a href="../guide/extraction.html">the guide</a>.</li>
  <li><code>page:markdown([opts])</code>: the main content as Markdown.</li>
  <li><code>page:eval(js)</code>: evaluate JavaScript, get the value back.</li>
  <li><code>page:screenshot([opts])</code>: a PNG, as a string.</li>
</ul>
<p>Each method that waits returns <code>nil, message</code> on failure and raises only on misuse.</p>
""" + code("""
local n, err = page:count("table tr")
if not n then return emit({ url = page.url, error = err }) end
""") + """
""")

add("/api/frontier.html", "Frontier rules", """
<p>Two links that name the same resource must be fetched once. Before a URL enters the frontier
it is normalized:</p>
<ol>
  <li>The scheme and host are lowercased; the default port is dropped.</li>
  <li>The fragment is removed: <code>/guide/#install</code> is <code>/guide/</code>.</li>
  <li>Dot segments are resolved: <code>/a/./b/../c</code> is <code>/a/c</code>.</li>
  <li>An empty query is dropped: <code>/page?</code> is <code>/page</code>.</li>
  <li>Percent-encoding is made uniform.</li>
</ol>
<p>Only <code>http</code> and <code>https</code> URLs are ever visited. Links with other schemes,
such as <code>mailto</code>, <code>javascript</code> or <code>file</code>, are skipped and counted
in the summary.</p>
""")

add("/api/output.html", "emit: writing records", """
<p><code>emit(record)</code> writes one table as one line of JSON. Records are written whole: the
output never holds half a line, even when the crawl is interrupted.</p>
""" + code("""
emit({ url = page.url, title = page:title(), tags = {} })
-- {"url":"http://127.0.0.1:8000/","title":"luacrawl","tags":[]}
""") + """
<p>Keys are written in a stable order. Numbers that are integers stay integers. An empty table is
written as an empty array; use <code>util.object()</code> for an empty object.</p>
""")

add("/api/policy.html", "policy: which URLs may be visited", """
<p>A policy decides, for each URL, whether it may be visited. The default allows the start
URL's origin and nothing else.</p>
""" + code("""
crawl.configure({
  policy = {
    allow = { "^http://127%.0%.0%.1:%d+/" },
    deny  = { "/private/", "%.pdf$" },
    decide = function(url, depth)
      return depth <= 3
    end,
  },
})
""") + """
<p>The <code>decide</code> function runs under a time limit. If it errors or runs too long, the
URL is refused and the error is reported once.</p>
""")

add("/api/util.html", "util: small helpers", """
<ul>
  <li><code>util.resolve(base, href)</code>: resolve a link against a base URL.</li>
  <li><code>util.host(url)</code>: the host of a URL, lowercased.</li>
  <li><code>util.trim(s)</code>, <code>util.squash(s)</code>: whitespace handling.</li>
  <li><code>util.now()</code>: seconds since the job started, as a float.</li>
  <li><code>util.object()</code>: a table that is written as <code>{}</code> when empty.</li>
</ul>
""" + code("""
local abs = util.resolve("http://127.0.0.1:8000/guide/", "../api/")
-- "http://127.0.0.1:8000/api/"
""") + """
""")

add("/api/errors.html", "Errors", """
<p>Runtime failures come back as messages that start with a stable word, so scripts can match on
it:</p>
<table>
  <thead><tr><th>Prefix</th><th>Cause</th></tr></thead>
  <tbody>
    <tr><td><code>timeout</code></td><td>a wait or navigation passed its deadline</td></tr>
    <tr><td><code>http</code></td><td>the server answered with an error status</td></tr>
    <tr><td><code>net</code></td><td>the connection failed: refused, reset, DNS</td></tr>
    <tr><td><code>blocked</code></td><td>robots.txt or the policy refused the URL</td></tr>
    <tr><td><code>browser</code></td><td>the browser crashed or was restarted</td></tr>
    <tr><td><code>cancelled</code></td><td>the job is shutting down</td></tr>
  </tbody>
</table>
<p>Back to the <a href="./">API overview</a>.</p>
""")

# --- blog ---

add("/blog/index.html", "Blog", """
<p>Notes from the people building luacrawl.</p>
<ul>
  <li>2026
    <ul>
      <li><a href="2026/04/shutdown-order.html">Shutting down in the right order</a></li>
      <li><a href="2026/03/markdown-output.html">Markdown that reads well</a></li>
      <li><a href="2026/02/robots-txt.html">What robots.txt asks of a crawler</a></li>
      <li><a href="2026/02/context-cache.html">A cache for browser contexts</a></li>
      <li><a href="2026/01/introducing-luacrawl.html">Introducing luacrawl</a></li>
    </ul>
  </li>
  <li>2025
    <ul>
      <li><a href="2025/12/why-lua.html">Why Lua</a></li>
    </ul>
  </li>
</ul>
<p>Archives: <a href="2026/">2026</a>, <a href="/blog/2025/">2025</a>.</p>
""")

add("/blog/2026/index.html", "Blog: 2026", """
<ul>
  <li>April: <a href="04/shutdown-order.html">Shutting down in the right order</a></li>
  <li>March: <a href="03/markdown-output.html">Markdown that reads well</a></li>
  <li>February: <a href="02/robots-txt.html">What robots.txt asks of a crawler</a> and
    <a href="02/context-cache.html">A cache for browser contexts</a></li>
  <li>January: <a href="01/introducing-luacrawl.html">Introducing luacrawl</a></li>
</ul>
""")

add("/blog/2025/index.html", "Blog: 2025", """
<ul>
  <li>December: <a href="12/why-lua.html">Why Lua</a></li>
</ul>
""")

add("/blog/2025/12/why-lua.html", "Why Lua", """
<p class="date">December 2025</p>
<p>We wanted job scripts to be short, safe to run and quick to start. Lua is all three. The whole
interpreter is smaller than many configuration parsers, it embeds in C with a clear stack-based
API, and a state can be limited: no file access unless we give it, an instruction budget, a memory
ceiling.</p>
<p>Coroutines were the deciding feature. A script says <code>page:title()</code> and gets a string
back; underneath, the coroutine yields, the event loop sends a command to the browser, and the
answer resumes the coroutine. The script never sees a callback.</p>
""" + code("""
-- reads top to bottom, yet never blocks the engine
local page = assert(crawl.open(url))
local title = page:title()
local links = page:links()
""") + """
""")

add("/blog/2026/01/introducing-luacrawl.html", "Introducing luacrawl", """
<p class="date">January 2026</p>
<p>Today we publish the first release of luacrawl. It crawls sites the way a reader sees them,
with a real browser, and lets you say what to keep in a few lines of Lua.</p>
<p>Three ideas shaped it:</p>
<ol>
  <li>One browser, kept busy. Starting Chromium is expensive; opening a tab in a context that
    already exists is cheap.</li>
  <li>Every wait has a deadline, and every resource has one owner that releases it.</li>
  <li>The output is plain JSON Lines, so any tool can read it.</li>
</ol>
<p>Start with <a href="/guide/first-crawl.html">your first crawl</a>, or read
<a href="../../2025/12/why-lua.html">why we chose Lua</a>.</p>
""")

add("/blog/2026/02/context-cache.html", "A cache for browser contexts", """
<p class="date">February 2026</p>
<p>A browser context is Chromium's private window: its own cookies, storage and cache. Creating
one costs little, but the first page in it waits for a new renderer process, and that wait is
most of the time a small page takes.</p>
<p>So we cache contexts. Each is keyed by a signature of the options that shape it, and each
use takes a reference. A context is only closed when its count is zero: not by the idle timer,
not by the size limit, not by a browser restart. A release without a matching acquire is a bug,
and the cache says so loudly rather than clamping the count at zero.</p>
<table>
  <thead><tr><th>Strategy</th><th>CPU seconds per page</th></tr></thead>
  <tbody>
    <tr><td>new context per page</td><td>1.4</td></tr>
    <tr><td>one context, new tab per page</td><td>0.9</td></tr>
    <tr><td>one context, idle tab reused</td><td>0.6</td></tr>
  </tbody>
</table>
<p>More in the guide: <a href="/guide/contexts.html">Browser contexts and the cache</a>.</p>
""")

add("/blog/2026/02/robots-txt.html", "What robots.txt asks of a crawler", """
<p class="date">February 2026</p>
<p>robots.txt is a small file with a long history. It names user agents and the paths they should
not fetch. It is not access control, only a request, and a polite crawler honours it.</p>
""" + code("""
User-agent: *
Disallow: /private/
Allow: /private/press/
""", "text") + """
<p>The longest matching rule wins, so <code>/private/press/kit.html</code> is allowed while the
rest of <code>/private/</code> is not. luacrawl applies the rules to every URL before it enters
the frontier, and again after redirects, so a redirect cannot smuggle a page past them.</p>
<p>Read the <a href="/guide/politeness.html">politeness guide</a> for the rest of the rules.</p>
""")

add("/blog/2026/03/markdown-output.html", "Markdown that reads well", """
<p class="date">March 2026</p>
<p>Converting HTML to Markdown is easy to do badly. Navigation menus turn into walls of links,
tables lose their shape, and code loses its language. We wanted output a person would be happy
to read.</p>
<ul>
  <li>Find the main content first, and convert only that.</li>
  <li>Keep code blocks fenced and labelled with their language.</li>
  <li>Keep simple tables as tables:
    <ul>
      <li>a header row becomes the header,</li>
      <li>cells with line breaks fall back to HTML.</li>
    </ul>
  </li>
</ul>
""" + code("""
emit({ url = page.url, markdown = page:markdown() })
""") + """
<p>This site is a good test: crawl it with <code>make run</code> and read the Markdown of the
<a href="../../../glossary.html">glossary</a>.</p>
""")

add("/blog/2026/04/shutdown-order.html", "Shutting down in the right order", """
<p class="date">April 2026</p>
<p>Ctrl-C is the most common way a crawl ends, so it has to be the cleanest. The order matters:
if the browser is closed before the pages are cancelled, every pending command fails at once and
each failure tries to report itself; if the Lua state is closed before the timers, a timer fires
into a state that no longer exists.</p>
<ol>
  <li>Stop taking work from the frontier.</li>
  <li>Cancel every pending operation, each through its own cleanup function.</li>
  <li>Release contexts, close the browser, wait for its processes.</li>
  <li>Close Lua, close the last handles, and assert that the loop is empty.</li>
</ol>
<p>The last step is a test in itself: if anything is left on the loop, the engine says what it
was. The guide has the short version in <a href="/guide/shutdown.html">Cancelling and shutting
down</a>.</p>
""")


# ---------------------------------------------------------------------------------------
# Assets
# ---------------------------------------------------------------------------------------

LOGO_SVG = """<svg xmlns="http://www.w3.org/2000/svg" width="96" height="96" viewBox="0 0 96 96">
<title>luacrawl</title>
<g fill="none" stroke="#445" stroke-width="1.5">
<circle cx="48" cy="48" r="40"/><circle cx="48" cy="48" r="27"/><circle cx="48" cy="48" r="14"/>
<path d="M48 8V88M8 48H88M20 20L76 76M76 20L20 76"/>
</g>
<path d="M62 20a16 16 0 1 0 14 24a13 13 0 1 1 -14 -24z" fill="#224"/>
</svg>
"""

ARCH_SVG = """<svg xmlns="http://www.w3.org/2000/svg" width="360" height="200" viewBox="0 0 360 200"
 font-family="sans-serif" font-size="13">
<title>luacrawl layers</title>
%s
</svg>
""" % "\n".join(
    '<rect x="20" y="%d" width="320" height="26" rx="4" fill="%s" stroke="#334"/>'
    '<text x="180" y="%d" text-anchor="middle">%s</text>' % (8 + 31 * i, fill, 26 + 31 * i, label)
    for i, (label, fill) in enumerate([
        ("CLI: luacrawl run", "#e8eef8"), ("Lua bindings: crawl, page, emit", "#dde8f5"),
        ("job and page: coroutines, waits", "#d2e1f2"), ("cdp: commands, sessions, deadlines", "#c7daef"),
        ("browser, ws, context cache", "#bcd3ec"), ("frontier, output, log", "#b1ccea")]))

STYLE_CSS = """body { font-family: sans-serif; max-width: 48em; margin: 0 auto; padding: 0 1em; color: #222; }
header { border-bottom: 1px solid #ccd; padding: .5em 0; }
header img { vertical-align: middle; }
nav a { margin-right: 1em; }
pre { background: #f5f5f8; padding: .6em; overflow-x: auto; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccd; padding: .2em .5em; text-align: left; }
footer { border-top: 1px solid #ccd; margin-top: 2em; padding: .5em 0; font-size: .9em; color: #556; }
"""


def png(width, height):
    """Returns a small gradient PNG: a dark terminal with a few green lines of 'text'."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    rows = []
    for y in range(height):
        row = bytearray(b"\x00")
        for x in range(width):
            text_line = y % 8 in (3, 4) and 4 <= x < 10 + (y * 7) % (width - 14)
            row += bytes((40, 200, 90)) if text_line else bytes((24, 26, 32 + y // 4))
        rows.append(bytes(row))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b""))


ASSETS = {
    "/assets/logo.svg": LOGO_SVG.encode(),
    "/assets/architecture.svg": ARCH_SVG.encode(),
    "/assets/terminal.png": png(64, 40),
    "/assets/style.css": STYLE_CSS.encode(),
}

# ---------------------------------------------------------------------------------------
# Rendering and checks
# ---------------------------------------------------------------------------------------


def rel(from_path, to_path):
    """Returns a relative href from page from_path to site path to_path."""
    start = posixpath.dirname(from_path)
    target = posixpath.relpath(to_path, start)
    if to_path.endswith("/") and not target.endswith("/"):
        target += "/"
    return "./" if target == "./" else target


def full_title(title):
    """Returns the <title> text of a page whose heading is title."""
    return title if title == "luacrawl" else title + " | luacrawl"


def render(path, title, body):
    """Returns the full HTML document of one page."""
    nav = " ".join('<a href="%s">%s</a>' % (href, label) for href, label in NAV)
    crumbs = ['<a href="/">Home</a>']
    parts = path.strip("/").split("/")[:-1]
    for i in range(len(parts)):
        section = "/" + "/".join(parts[:i + 1]) + "/"
        if any(p == section + "index.html" for p, _, _ in PAGES):
            crumbs.append('<a href="%s">%s</a>' % (rel(path, section), parts[i]))
        else:
            crumbs.append(parts[i])
    return """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>%(full_title)s</title>
<link rel="stylesheet" href="%(css)s">
</head>
<body>
<header><img src="%(logo)s" alt="" width="32" height="32"> <nav>%(nav)s</nav></header>
<p class="breadcrumbs">%(crumbs)s</p>
<main>
<h1>%(title)s</h1>
%(body)s
</main>
<footer>luacrawl example site. <a href="/glossary.html">Glossary</a> ·
<a href="%(changelog)s">Changelog</a></footer>
</body>
</html>
""" % {"title": html.escape(title), "full_title": html.escape(full_title(title)), "css": rel(path, "/assets/style.css"),
       "logo": "/assets/logo.svg", "nav": nav, "crumbs": " › ".join(crumbs), "body": body,
       "changelog": rel(path, "/changelog.html")}


def page_url(path):
    """Returns the URL path a page is reached at: directories for index.html."""
    return path[:-len("index.html")] if path.endswith("/index.html") else path


def links_of(path, doc):
    """Returns the site paths linked from doc (hrefs of <a>), resolved, without fragments."""
    out = []
    for href in re.findall(r'<a href="([^"]*)"', doc):
        href = href.split("#")[0]
        if not href:
            continue
        target = href if href.startswith("/") else posixpath.join(posixpath.dirname(path), href)
        norm = posixpath.normpath(target)
        if (target.endswith("/") or href in ("./", ".")) and norm != "/":
            norm += "/"
        out.append(norm)
    return out


def resources_of(path, doc):
    """Returns the site paths of images and stylesheets doc loads."""
    out = []
    for href in re.findall(r'(?:<img src|<link rel="stylesheet" href)="([^"]*)"', doc):
        target = href if href.startswith("/") else posixpath.join(posixpath.dirname(path), href)
        out.append(posixpath.normpath(target))
    return out


def main():
    docs = {path: render(path, title, body) for path, title, body in PAGES}
    urls = {page_url(p): p for p in docs}

    # Links: every target exists, except the one deliberate 404; nothing leaves the site.
    graph = {}
    for path, doc in docs.items():
        for ref in re.findall(r'(?:href|src)="([^"]*)"', doc):
            assert not re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*:|//)", ref), \
                "%s references %s: only site paths may be fetched" % (path, ref)
        assert "https://" not in doc and "www." not in doc, "%s names an outside site" % path
        targets = links_of(path, doc)
        for t in targets:
            assert t in urls or t == MISSING, "%s links to missing %s" % (path, t)
        graph[page_url(path)] = sorted(set(t for t in targets if t in urls))
        for r in resources_of(path, doc):
            assert r in ASSETS, "%s loads missing %s" % (path, r)
    assert sum(MISSING in links_of(p, d) for p, d in docs.items()) == 1

    # Depths: a breadth-first walk from /; every page is reachable; deep pages are deep.
    depth, queue = {"/": 0}, deque(["/"])
    while queue:
        url = queue.popleft()
        for t in graph[url]:
            if t not in depth:
                depth[t] = depth[url] + 1
                queue.append(t)
    assert set(depth) == set(graph), "unreachable: %s" % sorted(set(graph) - set(depth))
    assert depth["/guide/deep/debugging-cdp.html"] == 3
    assert depth["/guide/deep/reading-a-trace.html"] == 4

    # Write: remove what an earlier run made, then the pages, assets and manifest.
    for name in os.listdir(SITE):
        full = os.path.join(SITE, name)
        if name == os.path.basename(__file__):
            continue
        if os.path.isdir(full):
            shutil.rmtree(full)
        else:
            os.remove(full)
    files = dict((p, d.encode("utf-8")) for p, d in docs.items())
    files.update(ASSETS)
    manifest = {
        "pages": [{"url": page_url(p), "file": p.lstrip("/"), "title": full_title(t),
                   "heading": t, "depth": depth[page_url(p)], "links": graph[page_url(p)]}
                  for p, t, _ in sorted(PAGES, key=lambda x: (depth[page_url(x[0])], x[0]))],
        "missing": [{"url": MISSING, "from": [page_url(p) for p, d in sorted(docs.items())
                                              if MISSING in links_of(p, d)]}],
        "assets": sorted(ASSETS),
    }
    total = sum(len(b) for b in files.values())
    manifest["bytes"] = total
    files["/manifest.json"] = (json.dumps(manifest, indent=1, ensure_ascii=False) + "\n").encode()
    total += len(files["/manifest.json"])
    assert total < MAX_BYTES, "site is %d bytes, over %d" % (total, MAX_BYTES)
    for path, data in sorted(files.items()):
        full = os.path.join(SITE, path.lstrip("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data)
    print("examples/site: %d pages, %d assets, %d bytes, max depth %d"
          % (len(docs), len(ASSETS), total, max(depth.values())), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
