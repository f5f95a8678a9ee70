#!/usr/bin/env python3
"""bench/markdown/score.py: scores Markdown against the HTML it was made from.

    python3 bench/markdown/score.py records.jsonl rendered.jsonl [--markdown] [--json FILE]

records.jsonl is job.lua's output (each page's Markdown, whole-page and main_only, and its
ground truth read from the DOM by truth.js); rendered.jsonl is render.mjs's (that Markdown
rendered to HTML by markdown-it, a CommonMark parser). The rendered HTML is parsed here with
html.parser; nothing of the converter is used. Per variant (whole page, main_only), summed
over the pages:

  headings      content headings (h1-h6) whose text is a heading of the Markdown; at level:
                of the same level
  table rows    rows of the content's data tables (no nested table, 2+ columns) whose
                non-empty cell texts are, in order, those of a row of a table of the Markdown
  code blocks   <pre> texts equal to a code block's text (trailing newlines aside)
  links         content links (not javascript:, with text or an image, not inside a <pre>:
                a CommonMark code block holds no link; those are counted apart) whose
                absolute URL is a link's in the Markdown
  nested items  list items inside list items whose depth and own text (without sub-lists) are
                those of an item of the Markdown
  words         content words (letters, digits, _) found in the Markdown's text, as multisets
  chrome links  links of the site chrome (logo, menus, sidebar, footer) that the Markdown has
                beyond those the content has too
  chrome pages  pages whose Markdown holds the tagline or the logo link
  reduced       pages that kept under half of their content words (reduced to chrome or less)

Text is compared without whitespace (layout, not content). Each match consumes its
counterpart, so a figure cannot exceed its total.
"""
import collections
import html.parser
import json
import re
import sys
import urllib.parse

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}
# Start tags that close an open element of these names first (HTML's implied end tags).
CLOSES = {"li": {"li"}, "dt": {"dt", "dd"}, "dd": {"dt", "dd"}, "tr": {"tr", "td", "th"},
          "td": {"td", "th"}, "th": {"td", "th"}, "p": {"p"}}
SPACED = {"address", "article", "aside", "blockquote", "br", "caption", "dd", "div", "dl", "dt",
          "figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr",
          "li", "main", "nav", "ol", "p", "pre", "section", "table", "tbody", "td", "tfoot", "th",
          "thead", "tr", "ul"}
STOPS = {"ul", "ol", "dl", "table", "tbody", "thead", "tfoot", "tr", "body", "div", "blockquote"}


class Node:
    __slots__ = ("tag", "attrs", "children", "parent")

    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.children, self.parent = tag, dict(attrs), [], parent

    def spaced_text(self):
        """The text, with a space at each block's and cell's edges (as truth.js's)."""
        out = []

        def walk(node):
            for n in node.children:
                if isinstance(n, str):
                    out.append(n)
                else:
                    spaced = n.tag in SPACED
                    if spaced:
                        out.append(" ")
                    walk(n)
                    if spaced:
                        out.append(" ")
        walk(self)
        return "".join(out)

    def text(self):
        out = []
        stack = [self]
        while stack:
            n = stack.pop()
            if isinstance(n, str):
                out.append(n)
            else:
                stack.extend(reversed(n.children))
        return "".join(out)

    def iter(self, *tags):
        stack = [self]
        while stack:
            n = stack.pop()
            if isinstance(n, str):
                continue
            if n.tag in tags:
                yield n
            stack.extend(reversed(n.children))

    def ancestors(self):
        n = self.parent
        while n is not None:
            yield n
            n = n.parent


class TreeBuilder(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", [], None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        closes = CLOSES.get(tag)
        if closes:
            n = self.cur
            while n is not self.root and n.tag not in STOPS - closes:
                if n.tag in closes:
                    self.cur = n.parent
                    break
                n = n.parent
        node = Node(tag, attrs, self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not self.root and n.tag != tag:
            n = n.parent
        if n is not self.root:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def parse(text):
    b = TreeBuilder()
    b.feed(text)
    b.close()
    return b.root


def squash(s):
    return re.sub(r"\s+", "", s or "")


WORD = re.compile(r"\w+", re.UNICODE)


def match(expected, found):
    """How many of expected (a list of keys) are in found (a list), each used once."""
    pool = collections.Counter(found)
    n = 0
    for key in expected:
        if pool[key] > 0:
            pool[key] -= 1
            n += 1
    return n


def url_key(href):
    return urllib.parse.unquote(href or "")


def own_text(li):
    out = []
    stack = [li]
    while stack:
        n = stack.pop()
        if isinstance(n, str):
            out.append(n)
        elif n is li or n.tag not in ("ul", "ol"):
            stack.extend(reversed(n.children))
    return "".join(out)


def score_page(truth, md_text, rendered_html):
    tree = parse(rendered_html)
    s = {}
    # headings
    rendered = [(int(h.tag[1]), squash(h.text())) for h in tree.iter("h1", "h2", "h3", "h4", "h5", "h6")]
    expected = [(h["level"], squash(h["text"])) for h in truth["headings"]]
    s["headings"] = len(expected)
    s["headings_at_level"] = match(expected, rendered)
    s["headings_found"] = match([t for _, t in expected], [t for _, t in rendered])
    # table rows
    rows = []
    for table in tree.iter("table"):
        for tr in table.iter("tr"):
            if next((a for a in tr.ancestors() if a.tag == "table"), None) is not table:
                continue
            cells = [squash(c.text()) for c in tr.children if not isinstance(c, str) and c.tag in ("td", "th")]
            cells = tuple(c for c in cells if c)
            if cells:
                rows.append(cells)
    expected = [tuple(squash(c) for c in row) for t in truth["tables"] for row in t]
    s["table_rows"] = len(expected)
    s["table_rows_exact"] = match(expected, rows)
    # code blocks
    blocks = [pre.text().rstrip("\n") for pre in tree.iter("pre")]
    expected = [c.rstrip("\n") for c in truth["code"]]
    s["code_blocks"] = len(expected)
    s["code_blocks_exact"] = match(expected, blocks)
    # links
    hrefs = [url_key(a.attrs.get("href")) for a in tree.iter("a") if a.attrs.get("href")]
    expected = [url_key(l["href"]) for l in truth["links"]]
    s["links"] = len(expected)
    s["links_kept"] = match(expected, hrefs)
    s["links_in_code"] = truth.get("links_in_code", 0)
    # nested list items
    items = []
    for li in tree.iter("li"):
        depth = 1 + sum(1 for a in li.ancestors() if a.tag == "li")
        if depth >= 2:
            items.append((depth, squash(own_text(li))))
    expected = [(i["depth"], squash(i["text"])) for i in truth["nested_items"]]
    s["nested_items"] = len(expected)
    s["nested_items_right"] = match(expected, items)
    # words
    src = collections.Counter(WORD.findall(truth["text"]))
    got = collections.Counter(WORD.findall(tree.spaced_text()))
    s["words"] = sum(src.values())
    s["words_recovered"] = sum(min(n, got[w]) for w, n in src.items())
    # chrome: links beyond what the content has, and the tagline / logo
    content_hrefs = collections.Counter(url_key(l["href"]) + "\0" + squash(l["text"]) for l in truth["links"])
    md_links = collections.Counter(url_key(a.attrs.get("href")) + "\0" + squash(a.text())
                                   for a in tree.iter("a") if a.attrs.get("href"))
    chrome = [url_key(l["href"]) + "\0" + squash(l["text"]) for l in truth["chrome_links"]]
    pool = md_links - content_hrefs
    kept = 0
    for key in chrome:
        if pool[key] > 0:
            pool[key] -= 1
            kept += 1
    s["chrome_links"] = len(chrome)
    s["chrome_links_kept"] = kept
    text_squashed = squash(tree.text())
    logo = any(img.attrs.get("alt") == "SQLite" and any(a.tag == "a" for a in img.ancestors())
               for img in tree.iter("img"))
    tagline = any(t and squash(t) in text_squashed for t in truth["chrome_texts"])
    s["chrome_page"] = 1 if (logo or tagline) else 0
    s["reduced"] = 1 if s["words"] and s["words_recovered"] * 2 < s["words"] else 0
    # CommonMark hygiene of the Markdown text itself
    s["escaped_underscores"] = md_text.count("\\_")
    s["broken_link_lines"] = len(re.findall(r"^\[\s*$|^\]\(", md_text, re.M))
    s["bytes"] = len(md_text.encode("utf-8"))
    return s


FIGURES = [
    ("headings found", "headings_found", "headings"),
    ("headings at their level", "headings_at_level", "headings"),
    ("table rows exact", "table_rows_exact", "table_rows"),
    ("code blocks byte-exact", "code_blocks_exact", "code_blocks"),
    ("content links kept", "links_kept", "links"),
    ("nested list items right", "nested_items_right", "nested_items"),
    ("content words recovered", "words_recovered", "words"),
    ("chrome links kept", "chrome_links_kept", "chrome_links"),
]


def pct(a, b):
    return 100.0 * a / b if b else 100.0


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    as_markdown = "--markdown" in argv
    json_out = argv[argv.index("--json") + 1] if "--json" in argv else None
    records = {}
    with open(argv[1], encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rec = json.loads(line)
                records[rec["path"]] = rec
    totals = {"whole": collections.Counter(), "main_only": collections.Counter()}
    pages = {}
    with open(argv[2], encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            rec = records[r["path"]]
            pw = score_page(rec["truth"], rec["markdown"], r["markdown_html"])
            pm = score_page(rec["truth"], rec["main_only"], r["main_only_html"])
            totals["whole"].update(pw)
            totals["main_only"].update(pm)
            pages[r["path"]] = {"whole": pw, "main_only": pm}
    n = len(pages)
    if json_out:
        with open(json_out, "w", encoding="utf-8") as f:
            json.dump({"pages": pages, "totals": totals}, f, indent=1, sort_keys=True)
    rows = []
    for label, num, den in FIGURES:
        cells = []
        for v in ("whole", "main_only"):
            t = totals[v]
            cells.append("%.1f %% (%d / %d)" % (pct(t[num], t[den]), t[num], t[den]))
        rows.append((label, cells))
    for label, key in (("pages with logo or tagline", "chrome_page"),
                       ("pages reduced to chrome (< 50 % of content words)", "reduced"),
                       ("links inside code blocks (not counted above)", "links_in_code"),
                       ("`\\_` escapes", "escaped_underscores"),
                       ("lines of a link around a block (`[` alone, `](`)", "broken_link_lines"),
                       ("Markdown bytes", "bytes")):
        rows.append((label, [str(totals[v][key]) for v in ("whole", "main_only")]))
    if as_markdown:
        print("| %d pages | whole page | main_only |" % n)
        print("|---|---|---|")
        for label, cells in rows:
            print("| %s | %s | %s |" % (label, cells[0], cells[1]))
        print()
        print("| page | main_only: headings at level | links | nested items | words | bytes |")
        print("|---|---|---|---|---|---|")
        for path in sorted(pages):
            m = pages[path]["main_only"]
            print("| %s | %d / %d | %d / %d | %d / %d | %.1f %% | %d |" % (
                path, m["headings_at_level"], m["headings"], m["links_kept"], m["links"],
                m["nested_items_right"], m["nested_items"], pct(m["words_recovered"], m["words"]),
                m["bytes"]))
    else:
        print("%-52s %-28s %s" % ("%d pages" % n, "whole page", "main_only"))
        for label, cells in rows:
            print("%-52s %-28s %s" % (label, cells[0], cells[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
