-- infinite_scroll.lua: read an infinite-scroll page to its end.
--
-- The idea: a page that loads more items as the reader nears its bottom shows only the first
-- batch after navigation. page:scroll{ to_bottom = true } scrolls with real mouse-wheel
-- events, waits after each step (delay_ms, default 300) for what the page fetches, and stops
-- once the page is at its bottom and has stopped growing (or after max_steps, default 50).
-- Then everything is in the DOM and can be read as usual. Raise delay_ms for slow sites.
--
-- Run it against the fixture server, whose /_/scroll page starts with `batch` <li class="item">
-- and fetches the next batch near the bottom, until `total`:
--   python3 spec/support/server.py --root spec/fixtures/site --port-file /tmp/port &
--   build/luacrawl run examples/infinite_scroll.lua \
--     "url=http://127.0.0.1:$(cat /tmp/port)/_/scroll?total=35&batch=10"
-- Arguments: url= (default http://127.0.0.1:8000/_/scroll?total=35&batch=10), item= (CSS
--   selector of one item, default li.item)
-- Emits one record: { url, before (items after navigation), items (after scrolling),
--   steps, height, first, last }.
local item = args.item or "li.item"

return {
  start = { args.url or "http://127.0.0.1:8000/_/scroll?total=35&batch=10" },
  max_depth = 0,
  timeout_ms = 60000, -- scrolling a long page takes a while
  handle = function(page, req, job)
    assert(page:navigate(req.url))
    local before = #assert(page:query(item))
    local scrolled = assert(page:scroll { to_bottom = true })
    local items = assert(page:query(item))
    job:emit {
      url = req.url,
      before = before,
      items = #items,
      steps = scrolled.steps,
      height = scrolled.height,
      first = items[1] and items[1].text,
      last = items[#items] and items[#items].text,
    }
  end,
}
