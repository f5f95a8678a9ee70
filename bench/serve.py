#!/usr/bin/env python3
"""bench/serve.py: continuous load on `luacrawl serve` (the load under which crawl4ai's
context leak was found): CONCURRENCY clients send POST /crawl without pause, each request
with one of 200 rotating user agents (so 200 context signatures rotate through the cache),
against a local site, for DURATION seconds. Every 5 s it reads /metrics (browser PSS,
contexts open, refs outstanding). Reports requests/s, p50/p99 latency, errors, and the PSS
trend: the median of the last quarter against the second quarter's.

usage: bench/serve.py --server http://127.0.0.1:PORT --site http://127.0.0.1:PORT2
                      [--duration 600] [--concurrency 8] [--agents 200] [--out FILE.json]
"""
import argparse, json, statistics, threading, time, urllib.request, urllib.error


def metrics(server):
    with urllib.request.urlopen(server + "/metrics", timeout=10) as r:
        out = {}
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                try:
                    out[name] = float(value)
                except ValueError:
                    pass
        return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--site", required=True)
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--agents", type=int, default=200)
    ap.add_argument("--out")
    a = ap.parse_args()
    lock = threading.Lock()
    lat, errors, codes = [], [], {}
    counter = [0]
    stop_at = time.monotonic() + a.duration

    def client(k):
        while time.monotonic() < stop_at:
            with lock:
                n = counter[0]
                counter[0] += 1
            ua = "bench-agent-%03d" % (n % a.agents)
            body = json.dumps({"urls": [a.site + "/_/page?id=%d" % (n % 500)],
                               "return": ["text"], "context": {"user_agent": ua}}).encode()
            req = urllib.request.Request(a.server + "/crawl", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
            t0 = time.monotonic()
            try:
                with urllib.request.urlopen(req, timeout=120) as r:
                    res = json.loads(r.read())
                    code = r.status
                    bad = [x for x in res.get("results", []) if x.get("error") or x.get("status") != 200]
                    if bad or not res.get("results"):
                        with lock:
                            errors.append("result: %s" % json.dumps(bad or res)[:200])
            except urllib.error.HTTPError as e:
                code = e.code
                with lock:
                    errors.append("HTTP %d: %s" % (e.code, e.read()[:200]))
            except Exception as e:  # a refused or dropped connection is an error too
                code = 0
                with lock:
                    errors.append("transport: %s" % e)
            dt = time.monotonic() - t0
            with lock:
                lat.append(dt)
                codes[code] = codes.get(code, 0) + 1

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(a.concurrency)]
    t_start = time.monotonic()
    for t in threads:
        t.start()
    samples = []
    while time.monotonic() < stop_at:
        try:
            m = metrics(a.server)
            samples.append({"t": round(time.monotonic() - t_start, 1),
                            "pss_mb": m.get("luacrawl_browser_pss_bytes", 0) / 2**20,
                            "contexts_open": m.get("luacrawl_contexts_open"),
                            "refs": m.get("luacrawl_refs_outstanding")})
        except Exception as e:
            errors.append("metrics: %s" % e)
        time.sleep(5)
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t_start
    final = metrics(a.server)
    lat.sort()
    q = max(1, len(samples) // 4)
    pss = [s["pss_mb"] for s in samples if s["pss_mb"] > 0]
    q = max(1, len(pss) // 4)
    second = statistics.median(pss[q:2 * q]) if len(pss) >= 4 else None
    last = statistics.median(pss[-q:]) if len(pss) >= 4 else None
    report = {
        "duration_s": round(elapsed, 1), "concurrency": a.concurrency, "agents": a.agents,
        "requests": len(lat), "req_per_s": round(len(lat) / elapsed, 2),
        "p50_ms": round(lat[len(lat) // 2] * 1000) if lat else None,
        "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000) if lat else None,
        "codes": codes, "errors": len(errors), "first_errors": errors[:5],
        "pss_mb_second_quarter_median": second and round(second, 1),
        "pss_mb_last_quarter_median": last and round(last, 1),
        "pss_last_vs_second_pct": round((last / second - 1) * 100, 1) if second else None,
        "contexts_open_end": final.get("luacrawl_contexts_open"),
        "refs_outstanding_end": final.get("luacrawl_refs_outstanding"),
        "pages_created": final.get("luacrawl_pages_created_total"),
        "pages_reused": final.get("luacrawl_pages_reused_total"),
        "browser_restarts": final.get("luacrawl_browser_restarts_total"),
        "browser_recycles": final.get("luacrawl_browser_recycles_total"),
        "pss_samples": samples,
    }
    text = json.dumps(report, indent=1)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    summary = {k: v for k, v in report.items() if k != "pss_samples"}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
