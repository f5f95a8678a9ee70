#!lua name=luacrawl
-- rlib.lua: the server's side of the shared frontier (engine/dist/rfrontier.h), one Redis 7
-- function library. Every function is one atomic step on the server's clock. KEYS[1] is the
-- crawl's prefix P ("lc:{NAME}:"); the keys below it:
--   P.n          hash: queued, accepted (also the last request id), lease_seq, pages_ok,
--                pages_failed, records, reclaimed, refused, started, last
--   P.s:B        set of 64-bit URL fingerprints (intset encoded), B = the top 15 bits
--   P.r:ID       hash of a request: u url, h host, d depth, j data, a attempt, t throttles,
--                c crashes (a, t, c absent until a retry sets them: 0), x lost leases
--                (expired while it ran: the engine died or stalled; absent: 0), k the token
--                of its lease (absent when not leased), i 1 when the lease counts in
--                P.i:HOST, g the token of the lease under which it started running
--                (lc_started; a lease only buffered by its engine has none)
--   P.i:HOST     zset: the host's leased ids by lease expiry, kept only by pops with per_host
--                (the crawl's in-flight requests to the host; a dead engine's expire)
--   P.q:HOST     list of the host's queued request ids
--   P.hosts      zset: hosts with queued requests, by the time their next one may go
--   P.next       hash: host -> the time its next request may be sent (delay, Crawl-delay, 429)
--   P.leases     zset: leased ids by lease expiry
--   P.delayed    zset: ids waiting for a retry, by their time
--   P.rec        list: committed records, in commit order
--   P.acked:N    bitmaps: bit T - N*2^23 set when the commit under lease token T was made (a
--                resend after a lost reply is recognized); the last 3 ranges are kept
--   P.ack:TOKEN  a commit of no request already made, under an engine's own token (10 minutes)

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function num(v) return tonumber(v or 0) or 0 end

-- Lease tokens per bitmap of commit marks (P.acked:N): 2^23, 1 MB each.
local ACK_RANGE = 8388608

-- The host's requests in flight anywhere (leases not expired), when pops count them.
local function busy(P, host, now)
  return redis.call('ZCOUNT', P .. 'i:' .. host, '(' .. now, '+inf')
end

-- A lease that counted in P.i:HOST ends (ack, fail, retry, expiry): the host may be handed
-- out again as soon as its next slot allows.
local function unbusy(P, id, host, now)
  redis.call('ZREM', P .. 'i:' .. host, id)
  local nxt = math.max(now, num(redis.call('HGET', P .. 'next', host)))
  redis.call('ZADD', P .. 'hosts', 'XX', 'LT', nxt, host)
end

-- A host with queued requests is listed in P.hosts, at its next slot or now.
local function list_host(P, host, now)
  if redis.call('ZSCORE', P .. 'hosts', host) then return end
  local nxt = num(redis.call('HGET', P .. 'next', host))
  redis.call('ZADD', P .. 'hosts', math.max(now, nxt), host)
end

local function queue(P, id, host, now, front)
  redis.call(front and 'LPUSH' or 'RPUSH', P .. 'q:' .. host, id)
  redis.call('HINCRBY', P .. 'n', 'queued', 1)
  list_host(P, host, now)
end

-- Expired leases go back to the head of their host's queue, their attempt count kept; one that
-- had started running (g is its token) counts one more lost lease in x: the engine running it
-- died or stalled, and a page that kills its engine is given up by the next one that pops it,
-- after the job's retries. A lease that only waited in the engine's buffer is not the
-- request's doing and is not counted. Retries whose time came go to the tail. A clean stop
-- gives its leases back with lc_release instead.
local function reclaim(P, now)
  local ids = redis.call('ZRANGEBYSCORE', P .. 'leases', '-inf', now, 'LIMIT', 0, 100)
  for _, id in ipairs(ids) do
    redis.call('ZREM', P .. 'leases', id)
    local r = P .. 'r:' .. id
    local f = redis.call('HMGET', r, 'h', 'i', 'k', 'g')
    redis.call('HDEL', r, 'k', 'i')
    if f[1] then
      if f[2] then redis.call('ZREM', P .. 'i:' .. f[1], id) end
      if f[3] and f[3] == f[4] then redis.call('HINCRBY', r, 'x', 1) end
      queue(P, id, f[1], now, true)
    end
    redis.call('HINCRBY', P .. 'n', 'reclaimed', 1)
  end
  ids = redis.call('ZRANGEBYSCORE', P .. 'delayed', '-inf', now, 'LIMIT', 0, 100)
  for _, id in ipairs(ids) do
    redis.call('ZREM', P .. 'delayed', id)
    local host = redis.call('HGET', P .. 'r:' .. id, 'h')
    if host then queue(P, id, host, now, false) end
  end
end

-- push(P; max_pages, {fp, bucket, host, url, depth, has_data, data}...) -> for each URL in
-- order its id, 0 seen, -1 full (max_pages). One call takes every push an engine made in one
-- turn of its loop (a page's links), so the call's own cost is paid once for all of them.
redis.register_function('lc_push', function(keys, a)
  local P = keys[1]
  local n = P .. 'n'
  local maxp = num(a[1])
  -- room: how many more may come in (-1: no limit); never below 0, as when an engine with a
  -- lower max_pages joins a crawl that already has more
  local room = maxp > 0 and math.max(0, maxp - num(redis.call('HGET', n, 'accepted'))) or -1
  local out, added, now = {}, 0, nil
  for i = 2, #a - 6, 7 do
    local fp, seen, host = a[i], P .. 's:' .. a[i + 1], a[i + 2]
    if room == 0 then
      out[#out + 1] = redis.call('SISMEMBER', seen, fp) == 1 and 0 or -1
    elseif redis.call('SADD', seen, fp) == 0 then
      out[#out + 1] = 0
    else
      -- the request's id is its rank among the accepted; attempt, throttles and crashes are
      -- absent until a retry sets them (0)
      local id = redis.call('HINCRBY', n, 'accepted', 1)
      local r = P .. 'r:' .. id
      if a[i + 5] == '1' then
        redis.call('HSET', r, 'u', a[i + 3], 'h', host, 'd', a[i + 4], 'j', a[i + 6])
      else
        redis.call('HSET', r, 'u', a[i + 3], 'h', host, 'd', a[i + 4])
      end
      now = now or now_ms()
      -- a host is listed in P.hosts exactly while its queue is not empty: only a queue that
      -- was empty can need listing
      if redis.call('RPUSH', P .. 'q:' .. host, id) == 1 then list_host(P, host, now) end
      if room > 0 then room = room - 1 end
      added = added + 1
      out[#out + 1] = id
    end
  end
  if added > 0 then
    redis.call('HINCRBY', n, 'queued', added)
    redis.call('HSETNX', n, 'started', now)
  end
  return out
end)

-- Tokens first..last were just made: a range of commit marks they start drops the one two
-- ranges older (see committed, below).
local function forget_acks(P, first, last)
  for r = math.floor(first / ACK_RANGE) + 1, math.floor(last / ACK_RANGE) do
    if r >= 2 then redis.call('DEL', P .. 'acked:' .. (r - 2)) end
  end
end

-- Leased requests the engine handed to its job, which runs them now (a[from], a[from + 1]: id,
-- token, ...): each still this token's is marked (g), so that its lease, if it expires,
-- counts as lost (reclaim); one only buffered by a dead engine does not.
local function mark_running(P, a, from)
  for i = from, #a - 1, 2 do
    local r = P .. 'r:' .. a[i]
    if redis.call('HGET', r, 'k') == a[i + 1] then redis.call('HSET', r, 'g', a[i + 1]) end
  end
end

-- pop(P; count, lease_ms, delay_ms, per_host[, id, token, ...]) -> {queued, delayed, leased,
--   id, token, url, depth, attempt, throttles, crashes, data|nil, lost|nil, ...}
-- The ids and tokens after per_host are requests the engine started since its last pop
-- (mark_running: the end of a turn sends them with its refill, not in a call of their own).
-- At most one request per ready host when delay_ms > 0, and the host is then kept back for
-- delay_ms (the slot itself is taken when the request is sent: lc_slot). With per_host > 0, a
-- host never has more than per_host leases at once over the whole crawl (P.i:HOST): a host
-- at its cap is kept back until one of them ends (unbusy) or expires.
redis.register_function('lc_pop', function(keys, a)
  local P = keys[1]
  local count, lease, delay, per = num(a[1]), num(a[2]), num(a[3]), num(a[4])
  mark_running(P, a, 5)
  local now = now_ms()
  local n = P .. 'n'
  reclaim(P, now)
  local out = { 0, 0, 0 }
  if count > 0 then
    local hosts = redis.call('ZRANGEBYSCORE', P .. 'hosts', '-inf', now, 'LIMIT', 0, count)
    local taken, leased = 0, {}
    for _, host in ipairs(hosts) do
      if taken >= count then break end
      local q = P .. 'q:' .. host
      local want = delay > 0 and 1 or (count - taken)
      local room = per > 0 and per - busy(P, host, now) or want
      local ids = room > 0 and redis.call('LPOP', q, math.min(want, room)) or nil
      if ids then
        -- one token per lease, from one counter step for the host's batch
        local seq = redis.call('HINCRBY', n, 'lease_seq', #ids) - #ids
        forget_acks(P, seq, seq + #ids)
        local inflight = {}
        for k, id in ipairs(ids) do
          local r = P .. 'r:' .. id
          local tok = tostring(seq + k)
          if per > 0 then
            redis.call('HSET', r, 'k', tok, 'i', 1)
            inflight[#inflight + 1] = now + lease
            inflight[#inflight + 1] = id
          else
            redis.call('HSET', r, 'k', tok)
          end
          leased[#leased + 1] = now + lease
          leased[#leased + 1] = id
          local f = redis.call('HMGET', r, 'u', 'd', 'a', 't', 'c', 'j', 'x')
          out[#out + 1] = id
          out[#out + 1] = tok
          for i = 1, 7 do out[#out + 1] = f[i] end
          taken = taken + 1
        end
        if #inflight > 0 then redis.call('ZADD', P .. 'i:' .. host, unpack(inflight)) end
        redis.call('HINCRBY', n, 'queued', -#ids)
      end
      if redis.call('LLEN', q) == 0 then
        redis.call('ZREM', P .. 'hosts', host)
      else
        local at = delay > 0 and now + delay or 0
        if per > 0 and busy(P, host, now) >= per then
          -- at the cap: back when its first lease would expire (unbusy lists it sooner)
          local first = redis.call('ZRANGE', P .. 'i:' .. host, 0, 0, 'WITHSCORES')
          at = math.max(at, num(first[2]))
        end
        if at > 0 then redis.call('ZADD', P .. 'hosts', at, host) end
      end
    end
    if #leased > 0 then redis.call('ZADD', P .. 'leases', unpack(leased)) end
  end
  out[1] = num(redis.call('HGET', n, 'queued'))
  out[2] = redis.call('ZCARD', P .. 'delayed')
  out[3] = redis.call('ZCARD', P .. 'leases')
  return out
end)

-- renew(P; lease_ms, id, token, ...) -> the ids whose lease is no longer this token's
redis.register_function('lc_renew', function(keys, a)
  local P, lease = keys[1], num(a[1])
  local now = now_ms()
  local lost = {}
  for i = 2, #a - 1, 2 do
    local f = redis.call('HMGET', P .. 'r:' .. a[i], 'k', 'h', 'i')
    if f[1] == a[i + 1] then
      redis.call('ZADD', P .. 'leases', 'XX', now + lease, a[i])
      if f[3] then redis.call('ZADD', P .. 'i:' .. f[2], 'XX', now + lease, a[i]) end
    else
      lost[#lost + 1] = a[i]
    end
  end
  return lost
end)

-- A commit already made is marked by its token, so a resend after a lost reply is recognized:
-- a lease's token (a number from lease_seq) by one bit of a bitmap P.acked:N, N = token /
-- ACK_RANGE; an engine's own token (records of no request) by a key kept 10 minutes. A pop
-- that starts range N drops range N - 2 (forget_acks): a resend comes within a reconnect
-- (seconds, at most the minute an engine waits), and range N - 2 is 8 million leases old, so
-- the marks take at most 3 MB however long the crawl runs. A resend older than that finds its
-- request gone and is refused: its records are on the server once, from the first send.
local function ack_bit(P, tok)
  local b = tonumber(tok)
  if not b or b < 0 or b ~= math.floor(b) then return nil end
  return P .. 'acked:' .. math.floor(b / ACK_RANGE), b % ACK_RANGE
end

local function committed(P, tok)
  local key, bit = ack_bit(P, tok)
  if key then return redis.call('GETBIT', key, bit) == 1 end
  return redis.call('EXISTS', P .. 'ack:' .. tok) == 1
end

local function mark_committed(P, tok)
  local key, bit = ack_bit(P, tok)
  if key then
    redis.call('SETBIT', key, bit, 1)
  else
    redis.call('SET', P .. 'ack:' .. tok, 1, 'EX', 600)
  end
end

-- ack(P; {id, token, nlines, line...}...) -> for each commit in order 1 committed, 2
-- committed before (a resend), 0 refused: the lease is not this token's (it expired and
-- another engine took the request). id 0: records of no request, under a token of the
-- engine's own. One call takes the commits an engine made in one turn of its loop; each is
-- all or nothing, and the records are appended in the order of the commits.
redis.register_function('lc_ack', function(keys, a)
  local P = keys[1]
  local n = P .. 'n'
  local out, recs, ended, gone = {}, {}, {}, {}
  local ok, refused, now = 0, 0, nil
  local i = 1
  while i + 2 <= #a do
    local id, tok, k = a[i], a[i + 1], num(a[i + 2])
    local res = 1
    if committed(P, tok) then
      res = 2
    elseif id ~= '0' then
      local r = P .. 'r:' .. id
      local f = redis.call('HMGET', r, 'k', 'h', 'i')
      if f[1] ~= tok then
        res = 0
      else
        ended[#ended + 1] = id
        gone[#gone + 1] = r
        if f[3] then
          now = now or now_ms()
          unbusy(P, id, f[2], now)
        end
        ok = ok + 1
      end
    end
    if res == 1 then
      for l = i + 3, i + 2 + k do recs[#recs + 1] = a[l] end
      mark_committed(P, tok)
    elseif res == 0 then
      refused = refused + 1
    end
    out[#out + 1] = res
    i = i + 3 + k
  end
  if #ended > 0 then
    redis.call('ZREM', P .. 'leases', unpack(ended))
    redis.call('DEL', unpack(gone))
    redis.call('HINCRBY', n, 'pages_ok', ok)
  end
  for at = 1, #recs, 1000 do
    redis.call('RPUSH', P .. 'rec', unpack(recs, at, math.min(at + 999, #recs)))
  end
  if #recs > 0 then redis.call('HINCRBY', n, 'records', #recs) end
  if refused > 0 then redis.call('HINCRBY', n, 'refused', refused) end
  if #ended > 0 or #recs > 0 then redis.call('HSET', n, 'last', now or now_ms()) end
  return out
end)

-- retry(P; id, token, delay_ms, attempt, throttles, crashes) -> 1, or 0 when the lease is gone
redis.register_function('lc_retry', function(keys, a)
  local P = keys[1]
  local r = P .. 'r:' .. a[1]
  local f = redis.call('HMGET', r, 'k', 'h', 'i')
  if f[1] ~= a[2] then return 0 end
  redis.call('ZREM', P .. 'leases', a[1])
  redis.call('HDEL', r, 'k', 'i')
  if f[3] then unbusy(P, a[1], f[2], now_ms()) end
  redis.call('HSET', r, 'a', a[4], 't', a[5], 'c', a[6])
  redis.call('ZADD', P .. 'delayed', now_ms() + num(a[3]), a[1])
  return 1
end)

-- fail(P; id, token, ok) -> 1, or 0 when the lease is gone: the request ends without records
redis.register_function('lc_fail', function(keys, a)
  local P = keys[1]
  local r = P .. 'r:' .. a[1]
  local f = redis.call('HMGET', r, 'k', 'h', 'i')
  if f[1] ~= a[2] then return 0 end
  redis.call('ZREM', P .. 'leases', a[1])
  redis.call('DEL', r)
  if f[3] then unbusy(P, a[1], f[2], now_ms()) end
  redis.call('HINCRBY', P .. 'n', a[3] == '1' and 'pages_ok' or 'pages_failed', 1)
  redis.call('HSET', P .. 'n', 'last', now_ms())
  return 1
end)

-- started(P; id, token, ...) -> 0: the engine handed these leased requests to its job, which
-- runs them now (mark_running); sent on its own when no pop carries them.
redis.register_function('lc_started', function(keys, a)
  mark_running(keys[1], a, 1)
  return 0
end)

-- release(P; id, token, ...) -> how many were given back: leases a clean stop hands back
-- untried (requests of a cancelled job, an engine's prefetch buffer). Each still this token's
-- goes back to the head of its host's queue at once, its counts (a, t, c, x) unchanged; one
-- whose lease already passed on is left alone.
redis.register_function('lc_release', function(keys, a)
  local P = keys[1]
  local now = now_ms()
  local given = 0
  for i = 1, #a - 1, 2 do
    local id = a[i]
    local r = P .. 'r:' .. id
    local f = redis.call('HMGET', r, 'k', 'h', 'i')
    if f[1] == a[i + 1] then
      redis.call('ZREM', P .. 'leases', id)
      redis.call('HDEL', r, 'k', 'i')
      if f[3] then unbusy(P, id, f[2], now) end
      queue(P, id, f[2], now, true)
      given = given + 1
    end
  end
  return given
end)

-- slot(P; host, delay_ms) -> 0: send now (the host's next slot is now + delay_ms), or the ms
-- to wait
redis.register_function('lc_slot', function(keys, a)
  local P, host, delay = keys[1], a[1], num(a[2])
  local now = now_ms()
  local nxt = num(redis.call('HGET', P .. 'next', host))
  if now < nxt then return nxt - now end
  if delay > 0 then
    redis.call('HSET', P .. 'next', host, now + delay)
    redis.call('ZADD', P .. 'hosts', 'XX', 'GT', now + delay, host)
  end
  return 0
end)

-- pause(P; host, ms): a 429/503 answer keeps every engine off the host for ms
redis.register_function('lc_pause', function(keys, a)
  local P, host = keys[1], a[1]
  local t = now_ms() + num(a[2])
  if t > num(redis.call('HGET', P .. 'next', host)) then
    redis.call('HSET', P .. 'next', host, t)
    redis.call('ZADD', P .. 'hosts', 'XX', 'GT', t, host)
  end
  return 0
end)
