#!/usr/bin/env python3
"""Writes the seed inputs of spec/fuzz/corpus/<target>/ (small, real-shaped inputs).

Run from the repository root: python3 spec/fuzz/seed.py. Seeds are named seed-*; inputs found
by fuzzing and kept as regressions are named regress-* and are not touched here. The binary
targets (cdp, frontier, output) read their input as a stream of choices: their seeds are
fixed pseudo-random byte strings plus a few chosen sequences."""
import os, random

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


cdp_messages = [
    '{"id":1,"result":{"frameId":"8B1F2C6E4A9D0E7F3B5C1A2D6E8F0A1B","loaderId":"A1B2"}}',
    '{"id":7,"error":{"code":-32000,"message":"No target with given id found"}}',
    '{"id":12,"error":{"code":-32602,"message":"Invalid parameters","data":"Failed to deserialize params.url"}}',
    '{"method":"Page.loadEventFired","params":{"timestamp":81234.5},"sessionId":"0123456789ABCDEF0123456789ABCDEF"}',
    '{"method":"Target.attachedToTarget","params":{"sessionId":"AB12","targetInfo":{"targetId":"T1","type":"page","title":"","url":"about:blank","attached":true,"canAccessOpener":false,"browserContextId":"C1"},"waitingForDebugger":false}}',
    '{"method":"Runtime.consoleAPICalled","params":{"type":"log","args":[{"type":"string","value":"\\ud83d\\ude00 and a lone \\ud800 and \\udc00x"}],"executionContextId":3,"timestamp":1.7e12},"sessionId":"S"}',
    '{"method":"Network.responseReceived","params":{"requestId":"1000.1","response":{"url":"http://127.0.0.1:8080/","status":200,"headers":{"Content-Type":"text/html; charset=utf-8"},"mimeType":"text/html"}},"sessionId":"S"}',
    '{"id":3,"result":{"result":{"type":"string","value":"a \\"quoted\\" \\\\ back\\\\slash \\u0000 nul"}}}',
    '{"id":4,"result":{}}',
    '{"id":5}',
    '{"id":-1,"result":[]}',
    '{"id":99999999999999999999999,"result":{}}',
    '{"id":3.0,"result":{"deep":[[[[{"a":[{}]}]]]]}}',
    ' \t{ "method" : "Inspector.detached" , "params" : { "reason" : "target_closed" } }\r\n',
    '{"method":"Page.frameNavigated","params":{"frame":{"id":"F","url":"https://example.com/\\u00e9"}},"sessionId":"S"}',
    '{"id":2,"result":{"data":"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="}}',
    '{"id":"6","result":{}}',
    '{"id":8,"result":{"a":"\\',
    '[1,2,3]',
    '{"a":1,}',
    '{"\\u0069d":9,"result":{}}',
]
for i, m in enumerate(cdp_messages):
    put("json", "%02d" % i, m)

urls = [
    "http://example.com",
    "HTTPS://Example.COM:443/a/./b/../c?q=1#frag",
    "http://127.0.0.1:8080/page?x=%7e&y=%41",
    "http://[::1]:80/%7Efoo/%2f/bar",
    "http://[2001:DB8:0:0:0:0:0:1]/",
    "https://user:pw@host.test:0443/p",
    "  http://a.test/\t path with space\n",
    "http://a.test/?a[]=1&b=[2]",
    "http://a.test/%zz%4/%%",
    "http://a.test/\u00e9\u20ac",
    "ftp://example.com/",
    "mailto:a@b.c",
    "http://host.test:65536/",
    "http://ex%41mple.com/",
    "http://a.test/p\nb/c?d",
    "http://a.test/dir/page.html\n../other.html#x",
    "https://a.test/x\n//b.test/y",
    "http://a.test/a/b\n?only-query",
    "http://a.test/\nhttp:relative",
    "not a base\n/path",
    "http://a.test/" + "a/" * 50 + "\n" + "../" * 60 + "z",
    "javascript:alert(1)",
    "http://a.test:/",
    "http://:80/",
    "http://a.test/%2e%2E/x/%2e/y",
]
for i, u in enumerate(urls):
    put("url", "%02d" % i, u)

robots = [
    "User-agent: *\nDisallow: /private/\nAllow: /private/public\nCrawl-delay: 2\n",
    "User-agent: LuaCrawl/1.0\nDisallow: /\n\nUser-agent: *\nAllow: /\n",
    "\ufeffuser-agent: luacrawl\r\ndisallow: /a-%2A\r\nallow: /a-*$\r\n# comment\r\ncrawl-delay: 0.5\r\n",
    "User-agent: *\nDisallow: /*.php$\nDisallow: /fish*\nAllow: /fish.php?id=*\n",
    "useragent luacrawl-news\ndissallow /\nuser agent: luacrawl\ndisalow: /x/\ncrawldelay: 1e12\n",
    "Disallow: /before-any-group\nUser-agent: *\nCrawl-delay: 10\nUser-agent: x\nDisallow: /\n",
    "User-agent: *\nDisallow: /%7Efoo\nDisallow: /%2F\nDisallow: /$\n",
    "User-agent: *\n" + "Disallow: /*a*a*a*a*a*a*a*a*b\n" * 20,
    "User-agent: *\rDisallow: /search\rAllow: /search/about\r",
    "garbage\x00\xff\xfe lines: without: meaning\n:::\n\n",
    "",
]
paths = "/\n/private/public/x\n/a-*\n/search/about?x\n/fish.php?id=1\n/%7efoo\n"
for i, r in enumerate(robots):
    put("robots", "%02d" % i, r)
    put("robots", "%02d-paths" % i, paths + "\x00" + r)

# A long path against a few wildcard rules: fast (a few ms), but the shape slow inputs grow from.
put("robots", "long-path", "/" + "a" * 2000 + "\n\0User-agent: *\n" + ("Disallow: /*" + "a" * 60 + "b\n") * 4)

# /proc/PID/stat: mode byte 0 (raw text). Real lines, including names with ')' and spaces.
stats = [
    "1 (systemd) S 0 1 1 0 -1 4194560 58372 4358233 121 1603 153 405 12399 4561 20 0 1 0 8 173985792 3115 18446744073709551615 1 1 0 0 0 0 671173123 4096 1260 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
    "4242 (chrome (renderer)) R 4200 4200 4200 0 -1 4194560 5000 0 0 0 300 25 0 0 20 0 13 0 99999 1234567890 25600 18446744073709551615 1 1 0 0 0 0 0 4096 1260 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
    "77 (a) b) S 1 77 77 0 -1 0 0 0 0 0 1 2 3 4 20 0 1 0 5 6 7 8\n",
    "9 ( ) Z 1 9 9 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 0\n",
    "10 (x) ",
    "11 (x)",
    "12 (x) S 99999999999999999999999 1 1",
    "13 (no close paren S 1 2 3",
    "14 (x) S -5 -9223372036854775808 1 0 0 0 0 0 0 0 0 0 18446744073709551615 1 2 3 -20 19 1 0 5 6 7",
]
for i, s in enumerate(stats):
    put("proc", "raw-%02d" % i, b"\x00" + s.encode())
rnd = random.Random(9)
for i in range(8):  # structured: odd first byte, then comm and fields
    comm = rnd.choice([b"chrome", b"a) b (c", b") R 1 2 3", b"sp ace", b"x" * 15, b"(", b"))"])
    put("proc", "gen-%02d" % i, b"\x01" + bytes([len(comm)]) + comm + rnd.randbytes(300))

b64 = [
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
    "aGVsbG8gd29ybGQ=", "YQ==", "YWI=", "YWJj", "", "====", "Y\r\nW\nJj", "YW=Jj", "YWJj!", "A", "AB",
    "+/+/", "-_-_",
]
for i, b in enumerate(b64):
    put("base64", "%02d" % i, b)
put("base64", "bytes", bytes(range(256)))

# Operation streams: fixed pseudo-random bytes.
for target, n, length in (("cdp", 24, 96), ("frontier", 24, 128), ("output", 16, 64)):
    r = random.Random(target)
    for i in range(n):
        put(target, "rand-%02d" % i, r.randbytes(r.randrange(8, length)))
# cdp: send, reply ok, send, event, fail that session, turn the loop, send failing, turn, close.
put("cdp", "story", bytes([0, 1, 2, 0, 0, 0, 0, 2, 4, 1, 0, 1, 7, 1, 0xC0, 0, 8, 0, 9, 0, 0]))
# frontier: max 3 pages; push a, push a again, push b, pop, retry later, pop (nothing), wait, pop.
put("frontier", "story", bytes([3, 0, 0, 1, ord("p"), 0, 0, 0, 1, ord("p"), 0, 1, 1, 1, ord("q"), 4,
                                2, 0x0F, 3, 0, 40, 2, 0x0F, 0xF2, 0x0F, 0xF2, 0x0F, 4, 0, 1]))
# output: a file, then a short write followed by ENOSPC; stdout, then a short write and EPIPE.
put("output", "file-enospc", bytes([0, 1, 5]) + b'{"a":1}' + bytes([0, 1, 3, 5]) + bytes([1, 4]) + b"{}" + bytes([0]))
put("output", "stdout-epipe", bytes([1, 1, 5]) + b'{"a":1}' + bytes([0, 1, 5]) + b'{"b":2}' + bytes([1, 2, 2, 3, 4]) + bytes([1, 2]) + b"{}")
# output, queued (mode 2, max_backlog 16): a record waits (not writable), a second is refused
# (ENOBUFS), drain gets 4 bytes out then waits, flush puts out the rest, a record meets EPIPE,
# then a write and a drain on the broken sink.
put("output", "queued-enobufs-epipe",
    bytes([2, 0, 15]) + bytes([0, 10]) + b'{"a":1234}' + bytes([5])
    + bytes([0, 10]) + b'{"b":5678}'
    + bytes([0xFE, 0, 1, 3, 6]) + bytes([0xFD, 0, 0])
    + bytes([0, 2]) + b"{}" + bytes([0, 4]) + bytes([0, 2]) + b"[]" + bytes([0xFE]))
# output, queued (max_backlog 101): a 1 MiB record taken into the empty queue, partly out, then
# a small one refused; the final flush puts it all out in PIPE_BUF chunks.
put("output", "queued-big", bytes([2, 0, 100, 0xFF, 0xFF, 5, 0, 1, 200, 6, 0, 3]) + b"{}x")
# cdp: a send capped at 20 bytes gets a longer reply (ETOOBIG), a send capped at 200 a normal
# one, an uncapped send an error reply; then the loop turns.
put("cdp", "capped", bytes([40, 0, 20, 2, 0, 0, 0, 41, 1, 200, 2, 0, 0, 0, 0, 2, 2, 0, 1, 0, 8]))
