// bench/pptr.mjs: the comparison crawler of the throughput benchmark (see bench/README.md).
// puppeteer-core driving the same Chromium binary luacrawl drives, launched with luacrawl's
// flags (engine/browser.c) and nothing of puppeteer's own defaults (ignoreDefaultArgs), in a
// fresh profile dir, with HOME/XDG dirs inside it as luacrawl sets them.
// The way crawlers commonly use it: one browser, the default (shared) browser context, and a
// NEW PAGE PER VISIT (browser.newPage(), then page.close()). Per page: goto (waitUntil
// "load"), title, HTML (page.content()), links (a[href], area[href] as absolute http(s) URLs
// without fragment, in order, no duplicates: the same expression luacrawl's page:links() runs);
// one JSON line { url, status, title, html, links } per page; same-origin links are
// enqueued (URL without fragment, deduped by a Set).
//   node bench/pptr.mjs --browser PATH --url URL --concurrency N --max N --out FILE --profile DIR
import puppeteer from 'puppeteer-core';
import fs from 'node:fs';
import path from 'node:path';

function parseArgs(argv) {
  const o = { concurrency: 4, max: 100000 };
  for (let i = 2; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '');
    o[k] = argv[i + 1];
  }
  for (const k of ['browser', 'url', 'out', 'profile']) {
    if (!o[k]) { console.error(`pptr.mjs: --${k} is required`); process.exit(2); }
  }
  o.concurrency = parseInt(o.concurrency, 10);
  o.max = parseInt(o.max, 10);
  return o;
}

// engine/browser.c base_flags, in order (--headless first; for the full build that is the
// "new" headless mode, for chromium-headless-shell its only mode). --no-sandbox is among them.
const FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--no-default-browser-check', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--disable-extensions', '--disable-default-apps', '--disable-breakpad',
  '--disable-client-side-phishing-detection', '--disable-domain-reliability',
  '--disable-background-timer-throttling', '--disable-backgrounding-occluded-windows',
  '--disable-renderer-backgrounding', '--disable-features=Translate,MediaRouter,OptimizationHints',
  '--mute-audio', '--hide-scrollbars', '--password-store=basic', '--use-mock-keychain',
  '--remote-debugging-port=0',
];

function devShmIsSmall() {
  try {
    const s = fs.statfsSync('/dev/shm');
    return s.bavail * s.bsize < 512 * 1024 * 1024;
  } catch { return true; }
}

const LINKS_JS = `(function(){var out=[],seen={};
  var as=document.querySelectorAll('a[href],area[href]');
  for(var i=0;i<as.length;i++){var h=as[i].href; if(typeof h!=='string') continue;
    if(!/^https?:/i.test(h)) continue; h=h.split('#')[0]; if(seen[h]) continue; seen[h]=1; out.push(h);}
  return out;})()`;

async function main() {
  const o = parseArgs(process.argv);
  const args = [...FLAGS];
  if (devShmIsSmall()) args.push('--disable-dev-shm-usage');
  args.push(`--user-data-dir=${o.profile}`);
  args.push('about:blank'); // luacrawl's argv ends with it too; puppeteer waits for that first page
  const env = { ...process.env, HOME: o.profile, XDG_CONFIG_HOME: path.join(o.profile, '.config'),
    XDG_CACHE_HOME: path.join(o.profile, '.cache') };
  if ((o.profile + '/tmp/org.chromium.Chromium.XXXXXX/SingletonSocket').length < 100) {
    env.TMPDIR = path.join(o.profile, 'tmp');
    fs.mkdirSync(env.TMPDIR, { recursive: true });
  }
  const browser = await puppeteer.launch({
    executablePath: o.browser, ignoreDefaultArgs: true, args, env,
    headless: true, pipe: false, protocolTimeout: 60000,
    handleSIGINT: true, handleSIGTERM: true, handleSIGHUP: true,
  });
  const out = fs.openSync(o.out, 'w');
  const origin = new URL(o.url).origin;
  const seen = new Set();
  const queue = [];
  let started = 0, ok = 0, failed = 0;
  function enqueue(u) {
    let url;
    try { url = new URL(u); } catch { return; }
    url.hash = '';
    if (url.origin !== origin) return;
    const s = url.href;
    if (seen.has(s)) return;
    seen.add(s);
    queue.push(s);
  }
  enqueue(o.url);

  async function visit(url) {
    const page = await browser.newPage();
    try {
      const res = await page.goto(url, { waitUntil: 'load', timeout: 30000 });
      const title = await page.title();
      const html = await page.content();
      const links = await page.evaluate(LINKS_JS);
      fs.writeSync(out, JSON.stringify({ url, status: res ? res.status() : 0, title, html, links }) + '\n');
      for (const l of links) enqueue(l);
      ok++;
    } finally {
      await page.close();
    }
  }

  let active = 0;
  await new Promise((resolve) => {
    function pump() {
      while (active < o.concurrency && queue.length > 0 && started < o.max) {
        const url = queue.shift();
        started++;
        active++;
        visit(url).catch((e) => { failed++; console.error(`pptr.mjs: ${url}: ${e.message}`); })
          .finally(() => { active--; pump(); });
      }
      if (active === 0) resolve();
    }
    pump();
  });
  fs.closeSync(out);
  await browser.close();
  console.error(`pptr.mjs: done: ${ok} pages ok, ${failed} failed`);
}

main().catch((e) => { console.error('pptr.mjs:', e); process.exit(1); });
