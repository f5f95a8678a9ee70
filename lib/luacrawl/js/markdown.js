/* In-page glue for page:markdown([opts]): turns the rendered DOM into Markdown.
 *
 * Evaluated inside the page, after the libraries, as part of the script that
 * lib/luacrawl/inpage.lua builds; `luacrawl_libs` is that script's local table
 * of library exports (turndown, @joplin/turndown-plugin-gfm,
 * @mozilla/readability). The conversion itself is done by those libraries;
 * this file only configures them and prepares a copy of the DOM.
 *
 * Defines window.__luacrawl_markdown(opts), where opts is
 *   { main_only: boolean,  -- keep only the main content (Readability)
 *     base: string }       -- optional URL to resolve links against
 *                             (default: document.baseURI)
 * and which returns a plain object (so Runtime.evaluate with
 * returnByValue hands it over as JSON):
 *   { ok: true, markdown: string, main: boolean }
 *     markdown is trimmed (no leading or trailing blank lines); main is true
 *     when it holds only the main content Readability found, false when it
 *     holds the whole body (main_only not asked, or Readability found nothing).
 *   { ok: false, error: string }
 *     when anything threw; the function itself never throws.
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
      }
      out.push(line);
    }
    return out.join('\n');
  }

  /* ---- preparing the copy -------------------------------------------- */

  /* Makes links and images in doc absolute against base, turns javascript:
   * links into their text, and records each code block's language on the
   * pre as data-luacrawl-lang (Readability drops classes, keeps data-). */
  function prepare(doc, base) {
    Array.prototype.forEach.call(doc.querySelectorAll('a[href]'), function (a) {
      var href = a.getAttribute('href').trim();
      if (/^javascript:/i.test(href)) {
        unwrap(a);
        return;
      }
      var resolved = absolute(href, base);
      if (resolved) a.setAttribute('href', resolved);
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
  }

  /* Removes from root every element that holds no readable text. */
  function removeNonContent(root) {
    Array.prototype.forEach.call(root.querySelectorAll(NOT_CONTENT), function (el) {
      if (el.parentNode) el.parentNode.removeChild(el);
    });
  }

  /* ---- the converter ------------------------------------------------- */

  /* Whether table (may be null) holds another table. */
  function isLayoutTable(table) {
    return table !== null && table.querySelector('table') !== null;
  }

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

    /* A table holding another table lays out a page rather than data:
     * its cells become blocks of their own. A table whose cells hold blocks
     * (lists, headings, code blocks, quotes) has no pipe-table form; the GFM
     * plugin keeps it as HTML but wraps it in a Joplin-specific div: keep the
     * bare table instead. Other tables are the plugin's. */
    service.addRule('luacrawlTable', {
      filter: function (node) {
        return node.nodeName === 'TABLE' && (isLayoutTable(node) ||
          node.querySelector('ul, ol, h1, h2, h3, h4, h5, h6, hr, blockquote, pre') !== null);
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

    return service;
  }

  /* ---- entry point --------------------------------------------------- */

  /* The article Readability finds in doc, as { title, element }, or null.
   * Readability mutates doc, which is why it gets a copy. */
  function mainContent(doc) {
    var article = new Readability(doc, {
      serializer: function (el) { return el; }
    }).parse();
    if (!article || !article.content || !article.content.textContent.trim()) {
      return null;
    }
    return { title: (article.title || '').trim(), element: article.content };
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
      prepare(doc, base);

      var root = null;
      var title = '';
      if (opts.main_only) {
        var article = null;
        try {
          article = mainContent(doc.cloneNode(true));
        } catch (e) {
          article = null;  /* an odd page: fall back to the whole body */
        }
        if (article) {
          root = article.element;
          title = headline(doc, article.title);
        }
      }
      var main = root !== null;
      if (!main) root = doc.body || doc.documentElement;
      if (!root) return { ok: true, markdown: '', main: false };
      removeNonContent(root);

      var service = converter();
      var markdown = tidy(service.turndown(root)).trim();
      /* Readability drops the heading that repeats the title; put it back
       * so the Markdown says what it is about. */
      if (main && title && markdown.indexOf('# ') !== 0) {
        markdown = '# ' + service.escape(title) + '\n\n' + markdown;
      }
      return { ok: true, markdown: markdown, main: main };
    } catch (e) {
      return { ok: false, error: 'markdown: ' + String(e && e.message || e) };
    }
  };
})(luacrawl_libs);
