/* In-page glue for page:markdown([opts]): turns the rendered DOM into Markdown.
 *
 * Evaluated inside the page, after the libraries, as part of the script that
 * lib/luacrawl/inpage.lua builds; `luacrawl_libs` is that script's local table
 * of library exports (turndown, @joplin/turndown-plugin-gfm,
 * @mozilla/readability). The conversion itself is done by those libraries;
 * this file configures them, prepares a copy of the DOM and chooses what of
 * it to convert.
 *
 * Defines window.__luacrawl_markdown(opts), where opts is
 *   { main_only: boolean,  -- keep only the main content
 *     svg_text: boolean,   -- write the text of inline SVG (diagrams) as one
 *                             line each; by default inline SVG is left out
 *     base: string }       -- optional URL to resolve links against
 *                             (default: document.baseURI)
 * and which returns a plain object (so Runtime.evaluate with
 * returnByValue hands it over as JSON):
 *   { ok: true, markdown: string, main: boolean }
 *     markdown is trimmed (no leading or trailing blank lines); main is true
 *     when it holds only the main content, false when it holds the whole
 *     body (main_only not asked, or nothing but the whole body was left).
 *   { ok: false, error: string }
 *     when anything threw; the function itself never throws.
 *
 * The main content: Readability (on a throwaway copy) only chooses the
 * container; the original subtree of that container is converted by the
 * same converter as the whole page, so no heading is dropped for its id and
 * levels are kept. When that choice is poor (much less text than the body,
 * or mostly links), the body without its header, nav, aside, footer and
 * ARIA banner/navigation/contentinfo regions is used instead; a leading block
 * of site chrome (logo, tagline, menu) is stripped from either.
 *
 * It never mutates the live page: it works on a clone of the document.
 */
(function (libs) {
  'use strict';

  var TurndownService = libs['turndown'];
  var gfm = libs['@joplin/turndown-plugin-gfm'];
  var Readability = libs['@mozilla/readability'];

  /* Elements with no text worth keeping, removed from the copy before
   * conversion. */
  var NOT_CONTENT = [
    'script', 'style', 'noscript', 'template', 'iframe', 'frame', 'frameset',
    'object', 'embed', 'svg', 'canvas', 'link', 'meta', 'select', 'datalist',
    '[hidden]'
  ].join(',');

  /* Where pages name a code block's language: class="language-x" (Prism,
   * highlight.js, CommonMark renderers), "lang-x", GitHub's
   * "highlight-source-x" and Sphinx's "highlight-x" on a wrapper. The longer
   * prefixes come first so they win. */
  var LANGUAGE_CLASS =
    /(?:^|\s)(?:language-|lang-|highlight-source-|highlight-text-|highlight-)([A-Za-z0-9_+#.-]+)/;
  var NO_LANGUAGE = { none: true, default: true, nohighlight: true, plain: true };

  /* Attributes where lazy-loading pages keep an image's real address. */
  var LAZY_SRC = ['data-src', 'data-original', 'data-lazy-src'];

  /* ---- helpers ------------------------------------------------------- */

  /* The absolute form of url against base, or null when it is not a URL. */
  function absolute(url, base) {
    try {
      return new URL(url, base).href;
    } catch (e) {
      return null;
    }
  }

  /* Replaces node by its children. */
  function unwrap(node) {
    var parent = node.parentNode;
    while (node.firstChild) parent.insertBefore(node.firstChild, node);
    parent.removeChild(node);
  }

  /* The language named on el (class or data-lang/data-language), or ''. */
  function languageOf(el) {
    if (!el || el.nodeType !== 1) return '';
    var named = el.getAttribute('data-lang') || el.getAttribute('data-language');
    if (!named) {
      var match = LANGUAGE_CLASS.exec(el.getAttribute('class') || '');
      named = match ? match[1] : '';
    }
    named = named.trim();
    return NO_LANGUAGE[named.toLowerCase()] ? '' : named;
  }

  /* The language of the code block pre: asked of its code element, of pre
   * itself, then of two wrappers (GitHub, Rouge and Sphinx wrap pre). */
  function codeLanguage(pre) {
    var code = pre.querySelector('code');
    return languageOf(code) || languageOf(pre) ||
      languageOf(pre.parentElement) ||
      languageOf(pre.parentElement && pre.parentElement.parentElement);
  }

  function trimNewlines(s) {
    return s.replace(/^\n+/, '').replace(/\n+$/, '');
  }

  /* Tidies turndown's output outside fenced code blocks, whose text is kept
   * exactly: runs of blank lines become one, a blank line inside a quote
   * loses the space after its ">", and a task item's box is followed by one
   * space, not two. */
  function tidy(md) {
    var lines = md.split('\n');
    var out = [];
    var fence = null;  /* the open fence, e.g. "```", or null */
    var blank = false;
    for (var i = 0; i < lines.length; i++) {
      var line = lines[i];
      if (fence !== null) {
        var close = /^[ >]*(`{3,}|~{3,}) *$/.exec(line);
        if (close && close[1].charAt(0) === fence.charAt(0) &&
            close[1].length >= fence.length) {
          fence = null;
        }
        out.push(line);
        continue;
      }
      var open = /^[ >]*(`{3,}|~{3,})/.exec(line);
      if (open) fence = open[1];
      if (line.trim() === '') {
        if (blank) continue;
        blank = true;
        line = '';
      } else {
        blank = false;
        if (/^(?:> ?)+$/.test(line)) line = line.replace(/ +$/, '');
        line = line.replace(/^( *(?:[-*+]|\d+\.) \[[ x]\]) {2,}/, '$1 ');
        /* A term whose definition starts with a block of its own. */
        line = line.replace(/^(\*\*.*\*\*:) $/, '$1');
      }
      out.push(line);
    }
    return out.join('\n');
  }

  /* ---- escaping ------------------------------------------------------ */

  /* Turndown escapes every character that Markdown could read as syntax,
   * wherever it is: "sqlite3\_open\_v2()", "2019\. was". Whether CommonMark
   * would parse a character depends on what ends up around it, which a text
   * node does not know (its neighbours are other nodes, its line start is
   * decided by the blocks around it). So escape() marks each candidate with
   * MAYBE, and resolveEscapes() decides on the finished Markdown, where the
   * neighbours and the line start are known, whether the backslash stays. */
  var MAYBE = '\uE000';
  var MAYBE_ALL = /\uE000/g;

  /* Characters escaped wherever they are: they open code spans and links. */
  var ALWAYS = /[`\[\]]/g;

  /* What may stand before a block's first character on its line: spaces,
   * quote markers and list markers (so an item's text is at a line start).
   * Each space has one place in it (no backtracking blow-up), and lines are
   * tested only up to PREFIX_MAX characters. */
  var LINE_PREFIX = /^(?:[ \t]*(?:>|[-*+][ \t]|\d{1,9}[.)][ \t]))*[ \t]*$/;
  var PREFIX_MAX = 200;

  /* Whether out[from, to) is only a line prefix (see LINE_PREFIX). */
  function isLinePrefix(out, from, to) {
    return to - from <= PREFIX_MAX && LINE_PREFIX.test(out.slice(from, to));
  }

  var ALNUM = /[\p{L}\p{N}]/u;
  var SPACE = /\s/;
  var ASCII_PUNCT = /[!-\/:-@\[-`{-~]/;

  /* text with every candidate for a backslash marked. */
  function escapeText(text) {
    text = text.replace(MAYBE_ALL, '');
    text = text.replace(/[\\*_]/g, MAYBE + '$&');
    text = text.replace(ALWAYS, '\\$&');
    /* "<cols>", "</x", "<!--", "<?": raw HTML or an autolink to CommonMark;
     * "&copy;" and "&#38;": entity references. */
    text = text.replace(/<(?=[A-Za-z\/!?])/g, '\\<');
    text = text.replace(/&(?=#?[A-Za-z0-9]+;)/g, '\\&');
    /* Characters that start a block only at a line's start. */
    text = text.replace(/^(?=[-+=#>~])/, MAYBE);
    text = text.replace(/^(\d{1,9})(?=[.)](?:[ \t]|$))/, '$1' + MAYBE);
    return text;
  }

  /* md with each MAYBE turned into a backslash where CommonMark would read
   * the character after it as syntax, and dropped elsewhere. The output is
   * collected in parts (reading back from a growing string would flatten it
   * at every step); line holds the current line's first PREFIX_MAX + 1
   * characters, last the last character written. */
  function resolveEscapes(md) {
    if (md.indexOf(MAYBE) === -1) return md;
    var parts = [];
    var line = '';
    var last = '\n';
    function emit(text) {
      if (text === '') return;
      parts.push(text);
      var nl = text.lastIndexOf('\n');
      line = nl === -1 ? line + text.slice(0, PREFIX_MAX + 1) : text.slice(nl + 1, nl + 2 + PREFIX_MAX);
      if (line.length > PREFIX_MAX) line = line.slice(0, PREFIX_MAX + 1);
      last = text.charAt(text.length - 1);
    }
    var i = 0;
    while (i < md.length) {
      var at = md.indexOf(MAYBE, i);
      if (at === -1) { emit(md.slice(i)); break; }
      emit(md.slice(i, at));
      i = at;
      var c = md.charAt(i + 1);
      var atLineStart = isLinePrefix(line, 0, line.length);
      var before = line === '' ? '\n' : last;
      if (c === '_' || c === '*') {
        /* A run of the same character, each marked: judged as one. */
        var run = '';
        var j = i;
        while (md.charAt(j) === MAYBE && md.charAt(j + 1) === c) { run += c; j += 2; }
        var after = nextChar(md, j);
        var keep;
        if (c === '_' && ALNUM.test(before) && ALNUM.test(after)) {
          keep = false;  /* intraword: never emphasis */
        } else if (isSpace(before) && isSpace(after)) {
          /* Neither left- nor right-flanking; at a line start "* " is a list
           * item and "___" or "***" a thematic break. */
          keep = atLineStart && (c === '*' || run.length >= 3);
        } else {
          keep = true;
        }
        emit(keep ? run.replace(/./g, '\\$&') : run);
        i = j;
        continue;
      }
      var next = nextChar(md, i + 2);
      if (c === '\\') {
        /* A backslash escapes only ASCII punctuation, and ends a line as a
         * hard break. */
        emit(ASCII_PUNCT.test(next) || next === '\n' ? '\\\\' : '\\');
      } else if (c === '-') {
        emit(atLineStart && (isSpace(next) || next === '-') ? '\\-' : '-');
      } else if (c === '+') {
        emit(atLineStart && isSpace(next) ? '\\+' : '+');
      } else if (c === '~') {
        emit(atLineStart && md.substr(i + 1, 3) === '~~~' ? '\\~' : '~');
      } else if (c === '#') {
        var hashes = /^#{1,6}(?:[ \t\n]|$)/.test(md.substr(i + 1, 8).replace(MAYBE_ALL, ''));
        emit(atLineStart && hashes ? '\\#' : '#');
      } else if (c === '=' || c === '>') {
        emit(atLineStart ? '\\' + c : c);
      } else if (c === '.' || c === ')') {
        /* After a number that began the text: a list marker at a line start. */
        var number = line.length <= PREFIX_MAX ? /\d{1,9}$/.exec(line) : null;
        var marker = number !== null && isLinePrefix(line, 0, line.length - number[0].length) &&
          isSpace(next);
        emit(marker ? '\\' + c : c);
      } else {
        emit(c);
      }
      i += 2;
    }
    return parts.join('');
  }

  /* The first character of md at or after i that is not a MAYBE, '\n' at the
   * end. */
  function nextChar(md, i) {
    while (i < md.length && md.charAt(i) === MAYBE) i++;
    return i < md.length ? md.charAt(i) : '\n';
  }

  function isSpace(c) {
    return c === '\n' || SPACE.test(c);
  }

  /* ---- preparing the copy -------------------------------------------- */

  /* Elements that make a block of their own in Markdown. */
  var BLOCK = {
    ADDRESS: 1, ARTICLE: 1, ASIDE: 1, BLOCKQUOTE: 1, BODY: 1, CENTER: 1,
    DD: 1, DIR: 1, DIV: 1, DL: 1, DT: 1, FIELDSET: 1, FIGCAPTION: 1,
    FIGURE: 1, FOOTER: 1, FORM: 1, H1: 1, H2: 1, H3: 1, H4: 1, H5: 1, H6: 1,
    HEADER: 1, HGROUP: 1, HR: 1, LI: 1, MAIN: 1, MENU: 1, NAV: 1, OL: 1,
    P: 1, PRE: 1, SECTION: 1, TABLE: 1, TBODY: 1, TD: 1, TFOOT: 1, TH: 1,
    THEAD: 1, TR: 1, UL: 1
  };
  var BLOCK_SELECTOR = Object.keys(BLOCK).join(',').toLowerCase();

  function isBlockElement(node) {
    return node.nodeType === 1 && BLOCK[node.nodeName] === 1;
  }

  /* Whether node is inline content that holds no block. */
  function isInline(node) {
    if (node.nodeType === 3) return true;
    if (node.nodeType !== 1) return false;
    return !isBlockElement(node) && node.querySelector(BLOCK_SELECTOR) === null;
  }

  /* A link around blocks (a card, a heading) has no Markdown form: "[" and
   * "](url)" would stand on lines of their own. Moves the link inside: each
   * run of inline content under link, down to the innermost blocks, gets a
   * copy of the link (so "<a><h2>T</h2></a>" becomes "## [T](url)"), and the
   * outer link goes. Code blocks and tables keep no link. */
  function pushLinkIntoBlocks(link) {
    var doc = link.ownerDocument;
    function wrapRuns(parent) {
      var child = parent.firstChild;
      while (child) {
        var next = child.nextSibling;
        if (isInline(child)) {
          var run = [child];
          while (next && isInline(next)) { run.push(next); next = next.nextSibling; }
          var text = run.map(function (n) { return n.textContent; }).join('');
          var hasImage = run.some(function (n) {
            return n.nodeType === 1 && (n.nodeName === 'IMG' || n.querySelector('img'));
          });
          if (text.trim() !== '' || hasImage) {
            var copy = link.cloneNode(false);
            parent.insertBefore(copy, run[0]);
            run.forEach(function (n) { copy.appendChild(n); });
          }
        } else if (child.nodeType === 1 && child.nodeName !== 'PRE' &&
                   child.nodeName !== 'TABLE') {
          wrapRuns(child);
        }
        child = next;
      }
    }
    wrapRuns(link);
    unwrap(link);
  }

  /* The text of an inline SVG (a syntax diagram's words) as one line. */
  function svgText(svg) {
    var texts = svg.querySelectorAll('text');
    var words = [];
    Array.prototype.forEach.call(texts.length ? texts : [svg], function (t) {
      var s = t.textContent.replace(/\s+/g, ' ').trim();
      if (s) words.push(s);
    });
    return words.join(' ');
  }

  /* Makes links and images in doc absolute against base, turns javascript:
   * links into their text, moves links around blocks inside them, records
   * each code block's language on the pre as data-luacrawl-lang, and, with
   * opts.svg_text, replaces each inline SVG by a paragraph of its text. */
  function prepare(doc, base, opts) {
    Array.prototype.forEach.call(doc.querySelectorAll('a[href]'), function (a) {
      var href = a.getAttribute('href').trim();
      if (/^javascript:/i.test(href)) {
        unwrap(a);
        return;
      }
      var resolved = absolute(href, base);
      if (resolved) a.setAttribute('href', resolved);
    });
    Array.prototype.forEach.call(doc.querySelectorAll('a[href]'), function (a) {
      if (a.parentNode && a.querySelector(BLOCK_SELECTOR)) pushLinkIntoBlocks(a);
    });

    Array.prototype.forEach.call(doc.querySelectorAll('img'), function (img) {
      var src = (img.getAttribute('src') || '').trim();
      if (!src || /^data:/i.test(src)) {
        for (var i = 0; i < LAZY_SRC.length; i++) {
          var lazy = (img.getAttribute(LAZY_SRC[i]) || '').trim();
          if (lazy) { src = lazy; break; }
        }
      }
      var resolved = src && !/^data:/i.test(src) ? absolute(src, base) : null;
      if (resolved) {
        img.setAttribute('src', resolved);
      } else {
        /* An inline data: image is bytes, not a link: keep its alt text. */
        var alt = (img.getAttribute('alt') || '').trim();
        if (alt) img.parentNode.replaceChild(doc.createTextNode(alt), img);
        else img.parentNode.removeChild(img);
      }
    });

    Array.prototype.forEach.call(doc.querySelectorAll('pre'), function (pre) {
      var language = codeLanguage(pre);
      if (language) pre.setAttribute('data-luacrawl-lang', language);
    });

    if (opts.svg_text) {
      Array.prototype.forEach.call(doc.querySelectorAll('svg'), function (svg) {
        if (!svg.parentNode || (svg.parentNode.closest && svg.parentNode.closest('svg'))) return;
        var text = svgText(svg);
        if (!text) return;
        var p = doc.createElement('p');
        p.textContent = text;
        svg.parentNode.replaceChild(p, svg);
      });
    }
  }

  /* Removes from root every element that holds no readable text. */
  function removeNonContent(root) {
    Array.prototype.forEach.call(root.querySelectorAll(NOT_CONTENT), function (el) {
      if (el.parentNode) el.parentNode.removeChild(el);
    });
  }

  /* ---- tables -------------------------------------------------------- */

  /* Whether table (may be null) holds another table. */
  function isLayoutTable(table) {
    return table !== null && table.querySelector('table') !== null;
  }

  /* Whether table has cells that hold blocks, so no pipe-table form. */
  function isBlockTable(table) {
    return table.querySelector('ul, ol, h1, h2, h3, h4, h5, h6, hr, blockquote, pre') !== null;
  }

  /* Makes a table that will be a pipe table a plain grid: each colspan and
   * rowspan becomes that many empty cells (so every row has as many cells
   * as the widest, and the delimiter row matches the header), rows short of
   * cells are padded, and header rows after the first move to the body (a
   * pipe table has one header row). */
  function normalizeTable(table) {
    var doc = table.ownerDocument;
    var thead = table.tHead;
    if (thead && thead.rows.length > 1) {
      var body = table.tBodies[0];
      if (!body) { body = doc.createElement('tbody'); table.appendChild(body); }
      while (thead.rows.length > 1) {
        body.insertBefore(thead.rows[thead.rows.length - 1], body.firstChild);
      }
    }
    var rows = Array.prototype.slice.call(table.rows);
    var pending = [];  /* per column: { left: rows still spanned, tag } */
    var grid = [];     /* per row: its cells, in column order */
    var width = 0;
    rows.forEach(function (row) {
      var cells = Array.prototype.slice.call(row.cells);
      var out = [];
      var column = 0;
      function fillSpanned() {
        while (pending[column] && pending[column].left > 0) {
          pending[column].left--;
          out.push(doc.createElement(pending[column].tag));
          column++;
        }
      }
      cells.forEach(function (cell) {
        fillSpanned();
        var colspan = Math.min(Math.max(parseInt(cell.getAttribute('colspan'), 10) || 1, 1), 1000);
        var rowspan = Math.min(Math.max(parseInt(cell.getAttribute('rowspan'), 10) || 1, 1), 1000);
        cell.removeAttribute('colspan');
        cell.removeAttribute('rowspan');
        var tag = cell.nodeName.toLowerCase();
        out.push(cell);
        if (rowspan > 1) pending[column] = { left: rowspan - 1, tag: tag };
        column++;
        for (var k = 1; k < colspan; k++) {
          out.push(doc.createElement(tag));
          if (rowspan > 1) pending[column] = { left: rowspan - 1, tag: tag };
          column++;
        }
      });
      fillSpanned();
      /* Spans that run past this row's last cell. */
      for (var c = column; c < pending.length; c++) {
        if (pending[c] && pending[c].left > 0) {
          while (out.length < c) out.push(doc.createElement('td'));
          pending[c].left--;
          out.push(doc.createElement(pending[c].tag));
        }
      }
      grid.push(out);
      width = Math.max(width, out.length);
    });
    rows.forEach(function (row, r) {
      var out = grid[r];
      var allHeader = out.every(function (cell) { return cell.nodeName === 'TH'; });
      while (out.length < width) out.push(doc.createElement(allHeader ? 'th' : 'td'));
      out.forEach(function (cell) { row.appendChild(cell); });
    });
  }

  /* ---- the converter ------------------------------------------------- */

  /* A TurndownService set up for luacrawl's Markdown. */
  function converter() {
    var service = new TurndownService({
      headingStyle: 'atx',
      hr: '---',
      bulletListMarker: '-',
      codeBlockStyle: 'fenced',
      fence: '```',
      emDelimiter: '_',
      strongDelimiter: '**',
      linkStyle: 'inlined'
    });
    /* GFM tables, strikethrough and task lists; not the plugin's
     * highlightedCodeBlock, the code block rule below covers its case. */
    service.use([gfm.tables, gfm.strikethrough, gfm.taskListItems]);

    /* Every pre is a fenced block, with or without a code element inside,
     * with the language prepare() found. The fence grows past any run of
     * backticks in the code. */
    service.addRule('luacrawlCodeBlock', {
      filter: function (node) { return node.nodeName === 'PRE'; },
      replacement: function (content, node, options) {
        var code = node.textContent.replace(/\n$/, '');
        var language = node.getAttribute('data-luacrawl-lang') || '';
        var fenceChar = options.fence.charAt(0);
        var size = 3;
        var runs = code.match(new RegExp('^ *' + fenceChar + '{3,}', 'gm')) || [];
        runs.forEach(function (run) {
          size = Math.max(size, run.trim().length + 1);
        });
        var fence = fenceChar.repeat(size);
        return '\n\n' + fence + language + '\n' + code + '\n' + fence + '\n\n';
      }
    });

    /* List items as "- item" and "1. item", nested content indented to the
     * item's text (CommonMark's rule), blank lines left unindented. Turndown
     * pads markers to four columns ("-   item"), which is valid but noisy. */
    service.addRule('luacrawlListItem', {
      filter: 'li',
      replacement: function (content, node, options) {
        var prefix = options.bulletListMarker + ' ';
        var parent = node.parentNode;
        if (parent.nodeName === 'OL') {
          var start = parseInt(parent.getAttribute('start'), 10);
          var index = Array.prototype.indexOf.call(parent.children, node);
          prefix = ((isNaN(start) ? 1 : start) + index) + '. ';
        }
        var isParagraph = /\n$/.test(content);
        content = trimNewlines(content) + (isParagraph ? '\n' : '');
        content = content.replace(/\n(?=[^\n])/g, '\n' + ' '.repeat(prefix.length));
        return prefix + content + (node.nextSibling ? '\n' : '');
      }
    });

    /* A list ends with a blank line, unless it is the last thing in its
     * list item (turndown's rule looks only at elements, and runs the text
     * after "<li>a<ul>...</ul> text" into the nested list's last item); a
     * list in an item starts on the next line. */
    service.addRule('luacrawlList', {
      filter: ['ul', 'ol'],
      replacement: function (content, node) {
        var last = true;
        for (var next = node.nextSibling; next; next = next.nextSibling) {
          if (next.nodeType === 1 || (next.nodeType === 3 && next.nodeValue.trim() !== '')) {
            last = false;
            break;
          }
        }
        if (node.parentNode.nodeName === 'LI') return '\n' + content + (last ? '' : '\n\n');
        return '\n\n' + content + '\n\n';
      }
    });

    /* A table holding another table lays out a page rather than data:
     * its cells become blocks of their own. A table whose cells hold blocks
     * (lists, headings, code blocks, quotes) has no pipe-table form; the GFM
     * plugin keeps it as HTML but wraps it in a Joplin-specific div: keep the
     * bare table instead. Other tables are the plugin's. */
    service.addRule('luacrawlTable', {
      filter: function (node) {
        return node.nodeName === 'TABLE' && (isLayoutTable(node) || isBlockTable(node));
      },
      replacement: function (content, node) {
        return '\n\n' + (isLayoutTable(node) ? content : node.outerHTML) + '\n\n';
      }
    });
    service.addRule('luacrawlLayoutCell', {
      filter: function (node) {
        return (node.nodeName === 'TD' || node.nodeName === 'TH') &&
          isLayoutTable(node.closest('table'));
      },
      replacement: function (content) { return '\n\n' + content + '\n\n'; }
    });

    /* A link with no text and no image (an icon font, an anchor mark) says
     * nothing in Markdown: drop it. */
    service.addRule('luacrawlEmptyLink', {
      filter: function (node) {
        return node.nodeName === 'A' && node.getAttribute('href') &&
          node.textContent.trim() === '' && !node.querySelector('img');
      },
      replacement: function () { return ''; }
    });

    /* Definition lists: "**term**: definition", one paragraph per term;
     * terms of one definition joined by commas, a second definition of a
     * term a paragraph of its own. */
    service.addRule('luacrawlTerm', {
      filter: 'dt',
      replacement: function (content, node) {
        var term = content.replace(/\s+/g, ' ').trim();
        if (term === '') return '';
        var strong = /^\*\*[^*]+\*\*$/.test(term) ? term : '**' + term + '**';
        var prev = node.previousElementSibling;
        var next = node.nextElementSibling;
        var lead = prev && prev.nodeName === 'DT' ? '' : '\n\n';
        if (next && next.nodeName === 'DT') return lead + strong + ', ';
        if (next && next.nodeName === 'DD') return lead + strong + ': ';
        return lead + strong + '\n\n';
      }
    });
    service.addRule('luacrawlDefinition', {
      filter: 'dd',
      replacement: function (content, node) {
        var text = trimNewlines(content).replace(/^[ \t]+/, '');
        var prev = node.previousElementSibling;
        if (!prev || prev.nodeName !== 'DT' || prev.textContent.trim() === '') {
          return '\n\n' + text + '\n\n';
        }
        /* A definition that starts with a block (a list, a code block, a
         * table, a heading, a quote) starts on a line of its own. */
        if (/^(?:[-*+] |\d{1,9}[.)] |```|~~~|\||#{1,6} |>|<)/.test(text)) {
          return '\n\n' + text + '\n\n';
        }
        return text + '\n\n';
      }
    });

    service.escape = escapeText;
    return service;
  }

  /* ---- the main content ---------------------------------------------- */

  /* Where the page's chrome lives when it says so: the page's header, nav,
   * sidebars and footer, and their ARIA roles. A header or footer inside an
   * article, section, aside or main belongs to that (its title, its byline). */
  var CHROME_REGIONS = 'nav, aside, [role=banner], [role=navigation], ' +
    '[role=contentinfo], [role=search], header, footer';

  /* Collapsed text of node. */
  function textOf(node) {
    return (node.textContent || '').replace(/\s+/g, ' ').trim();
  }

  function wordCount(text) {
    var words = text.match(/\S+/g);
    return words ? words.length : 0;
  }

  /* The share of root's text that is link text. */
  function linkDensity(root) {
    var total = textOf(root).length;
    if (total === 0) return 0;
    var linked = 0;
    Array.prototype.forEach.call(root.querySelectorAll('a[href]'), function (a) {
      if (!a.parentElement || !a.parentElement.closest('a[href]')) linked += textOf(a).length;
    });
    return linked / total;
  }

  /* The length of root's text outside links. */
  function plainTextLength(root) {
    var linked = 0;
    Array.prototype.forEach.call(root.querySelectorAll('a[href]'), function (a) {
      if (!a.parentElement || !a.parentElement.closest('a[href]')) linked += textOf(a).length;
    });
    return Math.max(0, textOf(root).length - linked);
  }

  /* Whether el has at least min characters of text outside links (stops
   * counting there). */
  function hasPlainText(el, min) {
    var count = 0;
    var stack = [el];
    while (stack.length) {
      var node = stack.pop();
      if (node.nodeType === 3) {
        count += node.nodeValue.replace(/\s+/g, ' ').trim().length;
        if (count >= min) return true;
      } else if (node.nodeType === 1 && !(node.nodeName === 'A' && node.hasAttribute('href'))) {
        for (var c = node.lastChild; c; c = c.previousSibling) stack.push(c);
      }
    }
    return false;
  }

  /* Whether body has, outside root and the chrome regions, a section of
   * prose as high as root's highest: a heading of that level or above
   * followed by a block with text of its own (not a box of links), or by
   * code or a table. Readability then took one part of a page whose
   * sections are siblings. */
  function missesSections(root, body, regions) {
    var top = 7;
    Array.prototype.forEach.call(root.querySelectorAll('h1, h2, h3, h4, h5, h6'), function (h) {
      top = Math.min(top, +h.nodeName.charAt(1));
    });
    var headings = body.querySelectorAll('h1, h2, h3, h4, h5, h6');
    for (var i = 0; i < headings.length; i++) {
      var h = headings[i];
      if (+h.nodeName.charAt(1) > top || root.contains(h)) continue;
      if (regions.some(function (r) { return r.contains(h); })) continue;
      var next = h.nextElementSibling;
      if (next && (next.matches('pre, table') || hasPlainText(next, 100))) return true;
    }
    return false;
  }

  /* The page regions of doc's body that CHROME_REGIONS names, outermost
   * only. */
  function chromeRegions(body) {
    var found = [];
    Array.prototype.forEach.call(body.querySelectorAll(CHROME_REGIONS), function (el) {
      var tag = el.nodeName;
      if ((tag === 'HEADER' || tag === 'FOOTER') && !el.hasAttribute('role') &&
          el.parentElement && el.parentElement.closest('article, section, aside, main')) {
        return;
      }
      for (var i = 0; i < found.length; i++) if (found[i].contains(el)) return;
      found.push(el);
    });
    return found;
  }

  /* The element of doc that Readability, run on a copy, takes its article
   * from: the lowest common ancestor of the original elements it kept, and
   * the title it found. Each element of doc is stamped with its index for
   * the copy, and the stamps are removed again. Returns { element, kept,
   * title }: kept is the set of original elements Readability kept; element
   * and kept are null when Readability found nothing. */
  function readabilityChoice(doc) {
    var STAMP = 'data-luacrawl-n';
    var all = Array.prototype.slice.call(doc.body.getElementsByTagName('*'));
    all.forEach(function (el, i) { el.setAttribute(STAMP, String(i)); });
    var article = null;
    try {
      article = new Readability(doc.cloneNode(true), {
        serializer: function (el) { return el; }
      }).parse();
    } catch (e) {
      article = null;  /* an odd page: the fallback below decides */
    }
    all.forEach(function (el) { el.removeAttribute(STAMP); });
    if (!article || !article.content || !article.content.textContent.trim()) {
      return { element: null, kept: null,
               title: article && article.title ? article.title.trim() : '' };
    }
    /* Each original element's share of the kept text (text Readability
     * kept directly in it or in its descendants); the container is the
     * deepest one that holds 90 % of it, so that a stray paragraph
     * Readability kept elsewhere does not widen it to the whole page. */
    var held = new Map();
    var kept = new Set();
    var total = 0;
    Array.prototype.forEach.call(article.content.querySelectorAll('[' + STAMP + ']'), function (el) {
      var own = 0;
      for (var n = el.firstChild; n; n = n.nextSibling) {
        if (n.nodeType === 3) own += n.nodeValue.replace(/\s+/g, ' ').trim().length;
      }
      var original = all[parseInt(el.getAttribute(STAMP), 10)];
      if (original) kept.add(original);
      if (!own || !original) return;
      total += own;
      for (var up = original; up; up = up.parentElement) held.set(up, (held.get(up) || 0) + own);
    });
    var common = null;
    var depthOf = function (el) { var d = 0; while (el) { d++; el = el.parentElement; } return d; };
    var best = -1;
    held.forEach(function (sum, el) {
      if (sum < total * 0.9) return;
      var d = depthOf(el);
      if (d > best) { best = d; common = el; }
    });
    return { element: common, kept: kept, title: (article.title || '').trim() };
  }

  /* Whether el, a leading block of the content, is site chrome: a logo, a
   * tagline, a menu, a breadcrumb. It has little text outside links, and a
   * linked image (a logo) or links to other documents: three or more, or
   * fewer that are most of its text; no code, no table, no top heading;
   * and it is not a table of contents (links to places in this document). */
  function isChromeBlock(el, here) {
    if (el.matches('h1, h2, pre, table') || el.querySelector('h1, h2, pre, table')) return false;
    var own = textOf(el).length;
    var others = 0;
    var inPage = 0;
    var linked = 0;
    var linkWords = 0;
    var linkedImages = 0;
    var links = el.matches('a[href]') ? [el] : Array.prototype.slice.call(el.querySelectorAll('a[href]'));
    links.forEach(function (a) {
      var text = textOf(a);
      linked += text.length;
      linkWords += wordCount(text);
      linkedImages += a.querySelectorAll('img').length;
      if (a.getAttribute('href').split('#')[0] === here) inPage++;
      else others++;
    });
    var plainWords = wordCount(textOf(el)) - linkWords;
    if (inPage > others || plainWords > 15) return false;
    return linkedImages > 0 || others >= 3 ||
      (others >= 1 && own > 0 && linked / own > 0.5 && plainWords <= 4);
  }

  /* Removes from root the leading blocks of site chrome, looking into a
   * wrapper that is root's only element child. Never removes half of root's
   * text or more. */
  function stripLeadingChrome(root, here) {
    var total = textOf(root).length;
    var removed = 0;
    var node = root;
    for (var depth = 0; depth < 6 && node; depth++) {
      var child = node.firstElementChild;
      while (child) {
        var next = child.nextElementSibling;
        var blank = textOf(child) === '' && !child.querySelector('img');
        if (!blank) {
          if (!isChromeBlock(child, here)) break;
          var size = textOf(child).length;
          if ((removed + size) * 2 >= total) break;
          removed += size;
        }
        node.removeChild(child);
        child = next;
      }
      /* Into a wrapper that holds everything that is left. */
      if (!child || child.nextElementSibling || isBlockTable(child) ||
          !/^(DIV|MAIN|ARTICLE|SECTION)$/.test(child.nodeName)) {
        break;
      }
      node = child;
    }
  }

  /* The root of doc's main content, and the title to head it with:
   * { root, title }, or null when only the whole body is left. */
  function mainContent(doc, base) {
    var body = doc.body;
    if (!body) return null;
    var choice = readabilityChoice(doc);
    var regions = chromeRegions(body);
    var inRegions = function (measure) {
      return regions.reduce(function (n, el) { return n + measure(el); }, 0);
    };
    var bodyText = textOf(body).length - inRegions(function (el) { return textOf(el).length; });
    var bodyPlain = plainTextLength(body) - inRegions(plainTextLength);
    var root = choice.element;
    if (root && root !== body && root !== doc.documentElement) {
      var size = textOf(root).length;
      /* A poor choice: much less of the text outside links than the body
       * has (the content is spread over the body, and Readability took one
       * part), or mostly links (an index page whose content is its links,
       * and Readability took a menu). */
      if (plainTextLength(root) < bodyPlain * 0.7 ||
          (linkDensity(root) > 0.5 && size < bodyText * 0.7) ||
          missesSections(root, body, regions)) {
        root = null;
      }
    } else {
      root = null;
    }
    if (root) {
      /* Chrome regions inside the choice that Readability kept nothing of
       * (a sidebar in main) go; those it kept part of stay. */
      regions.forEach(function (el) {
        if (!root.contains(el) || el === root) return;
        var any = choice.kept.has(el) ||
          Array.prototype.some.call(el.getElementsByTagName('*'), function (d) { return choice.kept.has(d); });
        if (!any && el.parentNode) el.parentNode.removeChild(el);
      });
    } else {
      regions.forEach(function (el) { if (el.parentNode) el.parentNode.removeChild(el); });
      if (textOf(body) === '') return null;
      root = body;
    }
    stripLeadingChrome(root, String(base).split('#')[0]);
    return { root: root, title: headline(doc, choice.title || (doc.title || '').trim()) };
  }

  /* The title to head the main content with: the text of the page's first
   * h1 that the <title> contains ("Post" for "Post - Blog"), else title. */
  function headline(doc, title) {
    var h1s = doc.querySelectorAll('h1');
    for (var i = 0; i < h1s.length; i++) {
      var text = h1s[i].textContent.replace(/\s+/g, ' ').trim();
      if (text && title.indexOf(text) !== -1) return text;
    }
    return title;
  }

  /* ---- entry point --------------------------------------------------- */

  window.__luacrawl_markdown = function (opts) {
    try {
      opts = opts || {};
      /* A text file (robots.txt, README.md) is shown as one <pre>: its text
       * is already the best Markdown there is. */
      if (document.contentType === 'text/plain') {
        var text = document.body ? document.body.textContent : '';
        return { ok: true, markdown: text.trim(), main: false };
      }
      var base = typeof opts.base === 'string' && opts.base !== ''
        ? opts.base : document.baseURI;
      var doc = document.cloneNode(true);
      prepare(doc, base, { svg_text: opts.svg_text === true });
      if (doc.body) removeNonContent(doc.body);

      var root = null;
      var title = '';
      if (opts.main_only) {
        var main = mainContent(doc, base);
        if (main) {
          root = main.root;
          title = main.title;
        }
      }
      var isMain = root !== null;
      if (!isMain) root = doc.body || doc.documentElement;
      if (!root) return { ok: true, markdown: '', main: false };
      removeNonContent(root);
      Array.prototype.forEach.call(root.querySelectorAll('table'), function (table) {
        if (!isLayoutTable(table) && !isBlockTable(table)) normalizeTable(table);
      });

      var service = converter();
      var markdown = tidy(service.turndown(root)).trim();
      /* The page's title, when the main content has no h1 of its own. */
      if (isMain && title && !root.querySelector('h1')) {
        markdown = '# ' + service.escape(title) + '\n\n' + markdown;
      }
      return { ok: true, markdown: resolveEscapes(markdown), main: isMain };
    } catch (e) {
      return { ok: false, error: 'markdown: ' + String(e && e.message || e) };
    }
  };
})(luacrawl_libs);
