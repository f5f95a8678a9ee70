-- extract_products.lua: structured records from a listing page, one per product.
--
-- The idea: page:extract{ base = SELECTOR, fields = { ... } } runs one query in the page and
-- returns one table per element matching `base`, with a value per field, found inside that
-- element: a plain selector gives the element's trimmed text; { selector, attr = "href" }
-- gives an attribute (href and src are made absolute against the page); type = "number"
-- turns "$1,234.50" into 1234.5. A field whose element is missing is nil. No JavaScript to
-- write, and one round trip to the browser whatever the number of products.
--
-- Run it against the fixture server, whose /_/products lists ten
-- <article class="item"><h2>Name</h2><a href="/p/N">...</a><span class="price">$12.50</span>:
--   python3 spec/support/server.py --root spec/fixtures/site --port-file /tmp/port &
--   build/luacrawl run examples/extract_products.lua url=http://127.0.0.1:$(cat /tmp/port)/_/products
-- Arguments: url= (default http://127.0.0.1:8000/_/products)
-- Emits { name, url, price, price_text, source } per product.
return {
  start = { args.url or "http://127.0.0.1:8000/_/products" },
  max_depth = 0,
  handle = function(page, req, job)
    local res = assert(page:navigate(req.url))
    if res.status ~= 200 then error("the listing answered " .. res.status, 0) end
    local products = assert(page:extract {
      base = "article.item",
      fields = {
        name = "h2",
        url = { "a", attr = "href" },
        price = { ".price", type = "number" },
        price_text = ".price",
      },
    })
    for _, p in ipairs(products) do
      p.source = req.url
      job:emit(p)
    end
  end,
}
