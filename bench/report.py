#!/usr/bin/env python3
"""report.py: turns one benchmark run directory into figures (Python standard library only).

    report.py RUN_DIR [--markdown]

Reads RUN_DIR/manifest.jsonl (one line per measured command, written by bench/run.sh: part,
label, tool, browser, site, concurrency, policy, pages_target and the names of its probe and
stats files), writes RUN_DIR/summary.json, and prints a readable summary (or, with
--markdown, the same figures as Markdown tables for bench/RESULTS.md). It judges nothing:
goals are printed beside the figures they concern, as references.
"""

import json
import os
import sys

MB = 1024.0


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def at_fraction(samples, target, frac):
    """The first sample whose record count reaches frac * target."""
    need = frac * target
    for s in samples:
        if s.get("records", 0) >= need and s["browser_procs"] > 0:
            return s
    return None


def before_end(samples, final):
    """The last sample taken while pages were still in flight (records < final), i.e. at most
    one interval before the last page completed: "100%" of the run, before shutdown."""
    last = None
    for s in samples:
        if s["browser_procs"] == 0:
            continue
        if s.get("records", 0) >= final:
            break
        last = s
    return last


def crawl_rate(samples, final):
    """Pages per second between the first sample that saw a record and the first that saw them
    all (excludes browser start-up and shutdown; 0.5 s resolution)."""
    first = next((s for s in samples if s.get("records", 0) > 0), None)
    last = next((s for s in samples if s.get("records", 0) >= final), None)
    if not last and samples:
        last = samples[-1]  # the command wrote its last records after the last sample
        if last.get("records", 0) < 0.9 * final:
            return None
    if not first or not last or last["t"] <= first["t"]:
        return None
    return (last["records"] - first["records"]) / (last["t"] - first["t"])


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2.0


def window(samples, target, lo, hi):
    """Medians over the samples taken while lo*target <= pages done < hi*target (browser up)."""
    w = [s for s in samples if s["browser_procs"] > 0 and lo * target <= s.get("records", 0) < hi * target]
    if not w:
        return None
    pss = [s["browser_pss_kb"] / MB for s in w if s.get("browser_pss_kb") is not None]
    return {"pages": "%d-%d%%" % (lo * 100, hi * 100), "samples": len(w),
            "browser_rss_mb": round(median([s["browser_rss_kb"] / MB for s in w]), 1),
            "browser_pss_mb": round(median(pss), 1) if pss else None,
            "browser_procs": median([s["browser_procs"] for s in w]),
            "engine_rss_mb": round(median([s["engine_rss_kb"] / MB for s in w]), 1)}


def point(s):
    if not s:
        return None
    return {"t_s": s["t"], "pages": s.get("records"), "browser_rss_mb": round(s["browser_rss_kb"] / MB, 1),
            "browser_pss_mb": round(s["browser_pss_kb"] / MB, 1) if s["browser_pss_kb"] is not None else None,
            "browser_procs": s["browser_procs"], "engine_rss_mb": round(s["engine_rss_kb"] / MB, 1)}


def growth(a, b, key):
    if not a or not b or not a[key]:
        return None
    return round((b[key] - a[key]) / a[key] * 100.0, 1)


def anomalies(entry, probe, stats):
    out = []
    if probe is None:
        return ["no probe result"]
    if probe.get("killed"):
        out.append("killed: %s" % probe["killed"])
    if probe.get("exit_code") not in (0, None):
        out.append("exit code %s" % probe.get("exit_code"))
    if probe.get("stragglers_killed"):
        out.append("%d processes left after exit (killed)" % probe["stragglers_killed"])
    if probe.get("leftover_pids"):
        out.append("processes outside the tree still named the profile root: %s" % probe["leftover_pids"])
    if entry["tool"] == "luacrawl":
        if stats is None:
            out.append("no --stats file")
        else:
            for k in ("refs_outstanding", "bad_releases", "browser_crashes", "contexts_open_at_exit",
                      "pages_failed", "retries", "contexts_lost"):
                if stats.get(k):
                    out.append("%s = %s" % (k, stats[k]))
            if stats.get("interrupted"):
                out.append("interrupted")
    return out


def one(run_dir, entry):
    probe = load_json(os.path.join(run_dir, entry["probe"]))
    stats = load_json(os.path.join(run_dir, entry["stats"])) if entry.get("stats") else None
    samples = probe["samples"] if probe else []
    final = probe.get("records_final") if probe and probe.get("records_final") is not None else \
        max([s.get("records", 0) for s in samples] or [0])
    r = dict(entry)
    r["anomalies"] = anomalies(entry, probe, stats)
    if not probe:
        return r
    r["pages"] = final
    r["wall_s"] = probe["wall_s"]
    r["pages_per_s_wall"] = round(final / probe["wall_s"], 2) if probe["wall_s"] else None
    cr = crawl_rate(samples, final)
    r["pages_per_s_crawl"] = round(cr, 2) if cr else None
    r["tree_cpu_s"] = probe["tree_cpu_s"]
    r["engine_cpu_s"] = probe["engine_cpu_s"]
    r["browser_cpu_s"] = probe["browser_cpu_s"]
    r["other_cpu_s"] = probe["other_cpu_s"]
    r["engine_cpu_share_pct"] = round(100.0 * probe["engine_cpu_share"], 2) if probe["engine_cpu_share"] else None
    r["cpu_s_per_page"] = round(probe["tree_cpu_s"] / final, 3) if final else None
    r["engine_rss_peak_mb"] = round(probe["engine_rss_peak_kb"] / MB, 1)
    r["browser_rss_peak_mb"] = round(probe["browser_rss_peak_kb"] / MB, 1)
    if probe.get("browser_pss_peak_kb") is not None:
        r["browser_pss_peak_mb"] = round(probe["browser_pss_peak_kb"] / MB, 1)
    r["browser_procs_peak"] = probe["browser_procs_peak"]
    r["probe_cpu_s"] = probe.get("probe_cpu_s")
    if probe.get("foreign_cpu_s") is not None and probe["wall_s"]:
        r["foreign_cpu_s"] = probe["foreign_cpu_s"]
        r["foreign_cpu_pct"] = round(100.0 * probe["foreign_cpu_s"] / (probe["wall_s"] * probe["machine_cpus"]), 1)
        r["loadavg1_mean"] = probe.get("loadavg1_mean")
    if stats:
        r["stats"] = stats
    if entry["part"] == "load":
        target = entry["pages_target"]
        p10, p50 = at_fraction(samples, target, 0.10), at_fraction(samples, target, 0.50)
        p100 = before_end(samples, final)
        r["at_10"], r["at_50"], r["at_100"] = point(p10), point(p50), point(p100)
        r["browser_rss_growth_pct"] = growth(r["at_10"], r["at_100"], "browser_rss_mb")
        r["browser_pss_growth_pct"] = growth(r["at_10"], r["at_100"], "browser_pss_mb")
        r["engine_rss_growth_pct"] = growth(r["at_10"], r["at_100"], "engine_rss_mb")
        w10, w50, w100 = window(samples, target, 0.05, 0.15), window(samples, target, 0.45, 0.55), \
            window(samples, target, 0.90, 1.0)
        r["window_10"], r["window_50"], r["window_100"] = w10, w50, w100
        r["browser_rss_growth_pct_windows"] = growth(w10, w100, "browser_rss_mb")
        # Early and late medians (issue 8's goal: the late one within 15 % of the early one).
        early, late = window(samples, target, 0.20, 0.50), window(samples, target, 0.70, 1.0)
        r["window_early"], r["window_late"] = early, late
        r["browser_pss_late_vs_early_pct"] = growth(early, late, "browser_pss_mb")
        r["browser_pss_growth_pct_windows"] = growth(w10, w100, "browser_pss_mb")
        r["deciles"] = [point(at_fraction(samples, target, d / 10.0)) for d in range(1, 10)] + [r["at_100"]]
        if stats:
            r["contexts_open_peak"] = stats.get("contexts_open_peak")
            r["pages_per_s_engine"] = round((stats["pages_ok"] + stats["pages_failed"]) / stats["seconds"], 2)
    return r


def fmt(v, nd=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        return ("%%.%df" % nd) % v
    return str(v)


def load_text(rows, md):
    out = []
    if not rows:
        return out
    name = lambda r: "%s configs, policy %s" % (r.get("configs"), r["policy"])
    base4 = next((r for r in rows if r.get("configs") == min(x.get("configs") or 0 for x in rows)), None)

    def vs_fewest(r):
        a, b = (base4 or {}).get("window_late") or {}, r.get("window_late") or {}
        if not a.get("browser_pss_mb") or not b.get("browser_pss_mb"):
            return None
        return b["browser_pss_mb"] / a["browser_pss_mb"]
    if md:
        out.append("| | " + " | ".join(name(r) for r in rows) + " |")
        out.append("|---|" + "---|" * len(rows))

        def row(name, f):
            out.append("| %s | %s |" % (name, " | ".join(f(r) for r in rows)))

        def trio(r, key, nd=0):
            a, b, c = r.get("at_10") or {}, r.get("at_50") or {}, r.get("at_100") or {}
            return "%s / %s / %s" % (fmt(a.get(key), nd), fmt(b.get(key), nd), fmt(c.get(key), nd))

        def wtrio(r, key, nd=0):
            a, b, c = r.get("window_10") or {}, r.get("window_50") or {}, r.get("window_100") or {}
            return "%s / %s / %s" % (fmt(a.get(key), nd), fmt(b.get(key), nd), fmt(c.get(key), nd))

        st = lambda r, k: fmt((r.get("stats") or {}).get(k))
        row("pages (ok / failed)", lambda r: "%s / %s" % (st(r, "pages_ok"), st(r, "pages_failed")))
        row("pages/s (whole run)", lambda r: fmt(r.get("pages_per_s_wall")))
        row("**browser PSS, median of 20–50 % / 70–100 %, MB**", lambda r: "**%s / %s**" % (
            fmt((r.get("window_early") or {}).get("browser_pss_mb"), 0), fmt((r.get("window_late") or {}).get("browser_pss_mb"), 0)))
        row("late vs early median (PSS)", lambda r: "%s %%" % fmt(r.get("browser_pss_late_vs_early_pct")))
        row("late PSS ÷ the fewest-configurations run's", lambda r: "%s×" % fmt(vs_fewest(r), 2))
        row("idle pages evicted / contexts retired", lambda r: "%s / %s" % (st(r, "pages_evicted"), st(r, "contexts_retired")))
        row("contexts created / open peak", lambda r: "%s / %s" % (st(r, "contexts_created"), st(r, "contexts_open_peak")))
        row("pages created / reused", lambda r: "%s / %s" % (st(r, "pages_created"), st(r, "pages_reused")))
        row("**browser RSS sum, MB** at 10 / 50 / 100 %", lambda r: trio(r, "browser_rss_mb"))
        row("**growth 10 % → 100 %** (RSS)", lambda r: "**%s %%**" % fmt(r.get("browser_rss_growth_pct")))
        row("browser PSS sum, MB at 10 / 50 / 100 %", lambda r: trio(r, "browser_pss_mb"))
        row("growth 10 % → 100 % (PSS)", lambda r: "%s %%" % fmt(r.get("browser_pss_growth_pct")))
        row("browser RSS, median of 5–15 / 45–55 / 90–100 %", lambda r: wtrio(r, "browser_rss_mb"))
        row("growth of the medians (RSS)", lambda r: "%s %%" % fmt(r.get("browser_rss_growth_pct_windows")))
        row("browser PSS, median of 5–15 / 45–55 / 90–100 %", lambda r: wtrio(r, "browser_pss_mb"))
        row("growth of the medians (PSS)", lambda r: "%s %%" % fmt(r.get("browser_pss_growth_pct_windows")))
        row("browser processes at 10 / 50 / 100 %", lambda r: trio(r, "browser_procs"))
        row("browser peak RSS sum / peak PSS, MB", lambda r: "%s / %s" % (fmt(r.get("browser_rss_peak_mb"), 0), fmt(r.get("browser_pss_peak_mb"), 0)))
        row("engine RSS at 10 / 50 / 100 %, MB", lambda r: trio(r, "engine_rss_mb", 1))
        row("engine RSS peak (VmHWM), MB", lambda r: fmt(r.get("engine_rss_peak_mb")))
        row("CPU s: engine / browser tree", lambda r: "%s / %s" % (fmt(r.get("engine_cpu_s"), 2), fmt(r.get("browser_cpu_s"), 1)))
        row("engine share of CPU", lambda r: "%s %%" % fmt(r.get("engine_cpu_share_pct"), 2))
        row("other work on the machine (share of its 2 CPUs; load avg)", lambda r: "%s %% (%s)" % (fmt(r.get("foreign_cpu_pct")), fmt(r.get("loadavg1_mean"))))
        row("refs_outstanding / bad_releases / crashes", lambda r: "%s / %s / %s" % (st(r, "refs_outstanding"), st(r, "bad_releases"), st(r, "browser_crashes")))
        for r in rows:
            if r["anomalies"]:
                out.append("")
                out.append("Anomalies (policy %s): %s" % (r["policy"], "; ".join(r["anomalies"])))
        return out
    for r in rows:
        a, b, c = r.get("at_10") or {}, r.get("at_50") or {}, r.get("at_100") or {}
        w10, w50, w100 = r.get("window_10") or {}, r.get("window_50") or {}, r.get("window_100") or {}
        stt = r.get("stats") or {}
        e, l = r.get("window_early") or {}, r.get("window_late") or {}
        out.append("  %s: %s pages, %s pages/s; contexts created %s, open peak %s; pages created %s, reused %s" % (
            name(r), r.get("pages"), fmt(r.get("pages_per_s_wall")), fmt(stt.get("contexts_created")),
            fmt(r.get("contexts_open_peak")), fmt(stt.get("pages_created")), fmt(stt.get("pages_reused"))))
        out.append("    browser PSS medians over 20-50%% / 70-100%% of the pages: %s / %s MB (late vs early %s %%; late vs the fewest-configurations run %s x)" % (
            fmt(e.get("browser_pss_mb"), 0), fmt(l.get("browser_pss_mb"), 0), fmt(r.get("browser_pss_late_vs_early_pct")),
            fmt(vs_fewest(r), 2)))
        out.append("    browser tree RSS (sum) at 10/50/100%%: %s / %s / %s MB, growth 10%%->100%% %s %%" % (
            fmt(a.get("browser_rss_mb"), 0), fmt(b.get("browser_rss_mb"), 0), fmt(c.get("browser_rss_mb"), 0),
            fmt(r.get("browser_rss_growth_pct"))))
        out.append("    browser tree PSS        at 10/50/100%%: %s / %s / %s MB, growth 10%%->100%% %s %%" % (
            fmt(a.get("browser_pss_mb"), 0), fmt(b.get("browser_pss_mb"), 0), fmt(c.get("browser_pss_mb"), 0),
            fmt(r.get("browser_pss_growth_pct"))))
        out.append("    medians over 5-15%% / 45-55%% / 90-100%% of the pages: RSS %s / %s / %s MB (%s %%), PSS %s / %s / %s MB (%s %%)" % (
            fmt(w10.get("browser_rss_mb"), 0), fmt(w50.get("browser_rss_mb"), 0), fmt(w100.get("browser_rss_mb"), 0),
            fmt(r.get("browser_rss_growth_pct_windows")),
            fmt(w10.get("browser_pss_mb"), 0), fmt(w50.get("browser_pss_mb"), 0), fmt(w100.get("browser_pss_mb"), 0),
            fmt(r.get("browser_pss_growth_pct_windows"))))
        out.append("    browser processes at 10/50/100%%: %s / %s / %s; peak RSS %s MB, peak PSS %s MB" % (
            fmt(a.get("browser_procs")), fmt(b.get("browser_procs")), fmt(c.get("browser_procs")),
            fmt(r.get("browser_rss_peak_mb"), 0), fmt(r.get("browser_pss_peak_mb"), 0)))
        out.append("    engine RSS at 10%%/100%%: %s / %s MB, peak %s MB; CPU s engine/browser %s / %s, engine share %s %%" % (
            fmt(a.get("engine_rss_mb")), fmt(c.get("engine_rss_mb")), fmt(r.get("engine_rss_peak_mb")),
            fmt(r.get("engine_cpu_s"), 2), fmt(r.get("browser_cpu_s"), 1), fmt(r.get("engine_cpu_share_pct"), 2)))
        out.append("    other work on the machine: %s %% of its CPUs (load average %s)" % (
            fmt(r.get("foreign_cpu_pct")), fmt(r.get("loadavg1_mean"))))
        if r["anomalies"]:
            out.append("    anomalies: " + "; ".join(r["anomalies"]))
    out.append("    (goals for reference: late PSS median within 15% of the early one; the most-configurations run's"
               " late PSS <= 1.3x the fewest's; default policy PSS <= 350 MB at >= 21 pages/s; engine RSS < 30 MB)")
    return out


def tp_text(rows, md):
    out = []
    if not rows:
        return out
    keyed = {}
    for r in rows:
        keyed.setdefault((r["site"], r["browser"], r["concurrency"]), {})[r["tool"]] = r
    if md:
        out.append("Rates (lc = luacrawl, pptr = puppeteer-core; ratio = luacrawl pages/s ÷ puppeteer-core pages/s, whole run):")
        out.append("")
        out.append("| site | browser | conc. | pages lc / pptr | luacrawl pages/s | puppeteer pages/s | ratio | pages/s first→last page lc / pptr | CPU s per page lc / pptr | other work on the machine lc / pptr |")
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        for (site, browser, conc), d in keyed.items():
            lc, pp = d.get("luacrawl", {}), d.get("puppeteer", {})
            ratio = lc["pages_per_s_wall"] / pp["pages_per_s_wall"] if lc.get("pages_per_s_wall") and pp.get("pages_per_s_wall") else None
            out.append("| %s | %s | %s | %s / %s | %s | %s | %s× | %s / %s | %s / %s | %s / %s %% |" % (
                site, browser, conc, fmt(lc.get("pages")), fmt(pp.get("pages")),
                fmt(lc.get("pages_per_s_wall"), 2), fmt(pp.get("pages_per_s_wall"), 2), fmt(ratio, 2),
                fmt(lc.get("pages_per_s_crawl"), 1), fmt(pp.get("pages_per_s_crawl"), 1),
                fmt(lc.get("cpu_s_per_page"), 3), fmt(pp.get("cpu_s_per_page"), 3),
                fmt(lc.get("foreign_cpu_pct"), 0), fmt(pp.get("foreign_cpu_pct"), 0)))
        out.append("")
        out.append("CPU and memory (engine = luacrawl's process, or node's for puppeteer-core; browser = the whole Chromium tree, reaped processes included):")
        out.append("")
        out.append("| site | browser | conc. | luacrawl CPU s engine / browser | engine share | puppeteer CPU s node / browser | node share | luacrawl peak RSS engine / browser sum (MB) | puppeteer peak RSS node / browser sum (MB) | browser peak PSS lc / pptr (MB) |")
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        for (site, browser, conc), d in keyed.items():
            lc, pp = d.get("luacrawl", {}), d.get("puppeteer", {})
            out.append("| %s | %s | %s | %s / %s | %s %% | %s / %s | %s %% | %s / %s | %s / %s | %s / %s |" % (
                site, browser, conc, fmt(lc.get("engine_cpu_s"), 2), fmt(lc.get("browser_cpu_s"), 1),
                fmt(lc.get("engine_cpu_share_pct"), 2), fmt(pp.get("engine_cpu_s"), 2), fmt(pp.get("browser_cpu_s"), 1),
                fmt(pp.get("engine_cpu_share_pct"), 2), fmt(lc.get("engine_rss_peak_mb")), fmt(lc.get("browser_rss_peak_mb"), 0),
                fmt(pp.get("engine_rss_peak_mb")), fmt(pp.get("browser_rss_peak_mb"), 0),
                fmt(lc.get("browser_pss_peak_mb"), 0), fmt(pp.get("browser_pss_peak_mb"), 0)))
        for (site, browser, conc), d in keyed.items():
            for name, r in d.items():
                if r.get("anomalies"):
                    out.append("")
                    out.append("Anomalies (%s %s c=%s %s): %s" % (site, browser, conc, name, "; ".join(r["anomalies"])))
        return out
    for (site, browser, conc), d in keyed.items():
        lc, pp = d.get("luacrawl", {}), d.get("puppeteer", {})
        ratio = None
        if lc.get("pages_per_s_wall") and pp.get("pages_per_s_wall"):
            ratio = lc["pages_per_s_wall"] / pp["pages_per_s_wall"]
        v = dict(site=site, browser=browser, c=conc,
                 lr=fmt(lc.get("pages_per_s_wall"), 2), pr=fmt(pp.get("pages_per_s_wall"), 2), ratio=fmt(ratio, 2),
                 lp=fmt(lc.get("pages")), pp=fmt(pp.get("pages")),
                 lcpu="%s / %s" % (fmt(lc.get("engine_cpu_s"), 2), fmt(lc.get("browser_cpu_s"), 1)),
                 lsh=fmt(lc.get("engine_cpu_share_pct"), 2) + " %",
                 pcpu="%s / %s" % (fmt(pp.get("engine_cpu_s"), 2), fmt(pp.get("browser_cpu_s"), 1)),
                 psh=fmt(pp.get("engine_cpu_share_pct"), 2) + " %",
                 lrss="%s / %s" % (fmt(lc.get("engine_rss_peak_mb")), fmt(lc.get("browser_rss_peak_mb"), 0)),
                 prss="%s / %s" % (fmt(pp.get("engine_rss_peak_mb")), fmt(pp.get("browser_rss_peak_mb"), 0)),
                 pss="%s / %s" % (fmt(lc.get("browser_pss_peak_mb"), 0), fmt(pp.get("browser_pss_peak_mb"), 0)),
                 fo="%s / %s %%" % (fmt(lc.get("foreign_cpu_pct"), 0), fmt(pp.get("foreign_cpu_pct"), 0)),
                 lcr=fmt(lc.get("pages_per_s_crawl"), 2), pcr=fmt(pp.get("pages_per_s_crawl"), 2))
        out.append("  {site:7} {browser:14} c={c}: luacrawl {lr} pages/s ({lp} p) | puppeteer {pr} pages/s ({pp} p) | ratio {ratio}".format(**v))
        out.append("      CPU s engine/browser: luacrawl {lcpu} (engine {lsh}) | puppeteer node/browser {pcpu} (node {psh})".format(**v))
        out.append("      RSS peak MB engine/browser: luacrawl {lrss} | puppeteer {prss}; browser PSS peak lc/pptr {pss}".format(**v))
        out.append("      between first and last page: luacrawl {lcr} | puppeteer {pcr} pages/s; other work on the machine {fo}".format(**v))
        for name, r in (("luacrawl", lc), ("puppeteer", pp)):
            if r.get("anomalies"):
                out.append("      %s anomalies: %s" % (name, "; ".join(r["anomalies"])))
    if not md:
        out.append("  (goals for reference: engine CPU < 3% of the total; luacrawl pages/s >= 3x puppeteer-core's)")
    return out


def main():
    if len(sys.argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    run_dir = sys.argv[1]
    md = "--markdown" in sys.argv[2:]
    entries = []
    with open(os.path.join(run_dir, "manifest.jsonl")) as f:
        for line in f:
            if line.strip():
                entries.append(json.loads(line))
    rows = [one(run_dir, e) for e in entries]
    meta = load_json(os.path.join(run_dir, "machine.json")) or {}
    summary = {"machine": meta, "load": [r for r in rows if r["part"] == "load"],
               "throughput": [r for r in rows if r["part"] == "throughput"]}
    with open(os.path.join(run_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    lines = []
    if summary["load"]:
        lines.append("Continuous load" + (":" if not md else ""))
        lines += load_text(summary["load"], md)
    if summary["throughput"]:
        lines.append("Throughput" + (":" if not md else ""))
        lines += tp_text(summary["throughput"], md)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
