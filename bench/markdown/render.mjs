// bench/markdown/render.mjs: renders the Markdown of each record with markdown-it (CommonMark
// with GFM tables and strikethrough; raw HTML passed through, as a Markdown viewer would), so
// score.py reads what a CommonMark parser makes of it, not what the converter meant.
//   node bench/markdown/render.mjs < records.jsonl > rendered.jsonl
// Each output line: { path, markdown_html, main_only_html }.
import { createInterface } from 'node:readline';
import MarkdownIt from 'markdown-it';

const md = new MarkdownIt({ html: true, linkify: false });
const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  const rec = JSON.parse(line);
  process.stdout.write(JSON.stringify({
    path: rec.path,
    markdown_html: md.render(rec.markdown || ''),
    main_only_html: md.render(rec.main_only || ''),
  }) + '\n');
}
