/* bench/markdown/truth.js: what a page holds, read from its DOM by the benchmark, independently
 * of the converter (lib/luacrawl/js/markdown.js shares no code with this). Evaluated by
 * job.lua with page:eval on each page of the SQLite documentation; its value is the page's
 * ground truth, which score.py compares with the Markdown (rendered by a CommonMark parser).
 *
 * Site chrome, by the site's own structure (the same on every page of sqlite3-doc):
 *   - the first div.nosearch child of body: logo, tagline, main menu, sub-menu, search form;
 *   - div.rightsidebar: the "Common Links" box of the index pages;
 *   - the last paragraph holding a#mtimelink: "This page last modified on ...".
 * Content is the body without the chrome, scripts, styles and inline SVG (syntax diagrams:
 * page:markdown leaves them out by default). */
(function () {
  function norm(s) { return (s || '').replace(/\s+/g, ' ').trim(); }

  var body = document.body;
  var chrome = [];
  var top = null;
  for (var c = body.firstElementChild; c; c = c.nextElementSibling) {
    if (c.matches('div.nosearch')) { top = c; break; }
  }
  if (top) chrome.push(top);
  Array.prototype.forEach.call(document.querySelectorAll('div.rightsidebar'), function (el) { chrome.push(el); });
  var mtime = document.getElementById('mtimelink');
  if (mtime && mtime.closest('p')) chrome.push(mtime.closest('p'));

  /* The content: a copy of the body without the chrome and what holds no text. */
  var all = Array.prototype.slice.call(body.getElementsByTagName('*'));
  chrome.forEach(function (el) { el.setAttribute('data-bench-chrome', '1'); });
  var content = body.cloneNode(true);
  chrome.forEach(function (el) { el.removeAttribute('data-bench-chrome'); });
  Array.prototype.forEach.call(content.querySelectorAll('[data-bench-chrome], script, style, noscript, template, svg'),
    function (el) { el.parentNode.removeChild(el); });

  /* The text of root, with a space at each block's and cell's edges (textContent runs
   * "Offset</th><th>Size" together into one word). */
  var SPACED = /^(ADDRESS|ARTICLE|ASIDE|BLOCKQUOTE|BR|CAPTION|DD|DIV|DL|DT|FIGCAPTION|FIGURE|FOOTER|H[1-6]|HEADER|HR|LI|MAIN|NAV|OL|P|PRE|SECTION|TABLE|TBODY|TD|TFOOT|TH|THEAD|TR|UL)$/;
  function spacedText(root) {
    var out = [];
    (function walk(node) {
      for (var n = node.firstChild; n; n = n.nextSibling) {
        if (n.nodeType === 3) out.push(n.nodeValue);
        else if (n.nodeType === 1) {
          var spaced = SPACED.test(n.nodeName);
          if (spaced) out.push(' ');
          walk(n);
          if (spaced) out.push(' ');
        }
      }
    })(root);
    return out.join('');
  }

  function ownText(li) {
    var copy = li.cloneNode(true);
    Array.prototype.forEach.call(copy.querySelectorAll('ul, ol'), function (l) { l.parentNode.removeChild(l); });
    return norm(copy.textContent);
  }

  var headings = [];
  Array.prototype.forEach.call(content.querySelectorAll('h1, h2, h3, h4, h5, h6'), function (h) {
    var text = norm(h.textContent);
    if (text) headings.push({ level: +h.nodeName.charAt(1), text: text });
  });

  /* Data tables: no table inside, at least two columns. Each row: its non-empty cell texts. */
  var tables = [];
  Array.prototype.forEach.call(content.querySelectorAll('table'), function (t) {
    if (t.querySelector('table')) return;
    var rows = [];
    var width = 0;
    Array.prototype.forEach.call(t.rows, function (r) {
      var cells = [];
      Array.prototype.forEach.call(r.cells, function (cell) {
        var text = norm(cell.textContent);
        if (text) cells.push(text);
      });
      width = Math.max(width, r.cells.length);
      if (cells.length) rows.push(cells);
    });
    if (width >= 2 && rows.length) tables.push(rows);
  });

  var code = [];
  Array.prototype.forEach.call(content.querySelectorAll('pre'), function (pre) {
    code.push(pre.textContent);
  });

  /* Links (not javascript:, with text or an image); those inside a <pre> apart, as
   * CommonMark's code blocks hold no links. */
  var linksInCode = 0;
  function links(root) {
    var out = [];
    Array.prototype.forEach.call(root.querySelectorAll('a[href]'), function (a) {
      var href = a.getAttribute('href').trim();
      if (/^javascript:/i.test(href)) return;
      if (!norm(a.textContent) && !a.querySelector('img')) return;
      var abs;
      try { abs = new URL(href, document.baseURI).href; } catch (e) { return; }
      if (a.closest('pre')) { linksInCode++; return; }
      out.push({ href: abs, text: norm(a.textContent) });
    });
    return out;
  }

  var items = [];
  Array.prototype.forEach.call(content.querySelectorAll('li'), function (li) {
    var depth = 0;
    for (var up = li; up; up = up.parentElement) if (up.nodeName === 'LI') depth++;
    if (depth >= 2) items.push({ depth: depth, text: ownText(li) });
  });

  var contentLinks = links(content);
  var codeLinks = linksInCode;
  var chromeLinks = [];
  var chromeTexts = [];
  chrome.forEach(function (el) {
    chromeLinks = chromeLinks.concat(links(el));
    Array.prototype.forEach.call(el.querySelectorAll('.tagline'), function (t) { chromeTexts.push(norm(t.textContent)); });
  });

  return {
    title: document.title,
    headings: headings,
    tables: tables,
    code: code,
    links: contentLinks,
    links_in_code: codeLinks,
    nested_items: items,
    text: spacedText(content),
    chrome_links: chromeLinks,
    chrome_texts: chromeTexts,
    html_bytes: document.documentElement.outerHTML.length
  };
})()
