#!/usr/bin/env python3
"""probe.py: runs one benchmark command and measures it from /proc (Python standard library only).

    probe.py --out RESULT.json [--label L] [--interval 0.5] [--pss] [--pss-interval 2]
             [--root DIR] [--records FILE] [--timeout S] -- COMMAND ARGS...

Owns: the command's process tree, from start to the last reaped descendant. The probe makes
itself a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so every process the command starts,
even one that leaves its session (Chromium's crashpad handlers do), is reparented to the probe
when its parent dies, and is reaped by the probe. That makes getrusage(RUSAGE_CHILDREN) of the
probe, once the tree is gone, the CPU time of the whole tree, dead processes included.

Every --interval seconds it reads, for each process of the tree (the command and its
descendants, plus any process whose command line contains --root):
  /proc/PID/stat          utime, stime, cutime, cstime, rss
  /proc/PID/status        VmHWM of the engine
  /proc/PID/smaps_rollup  Pss (with --pss; browser processes only; on a thread of its own, one
                          pass every --pss-interval s, each sample carrying the latest pass)
and classifies it: "engine" is the command's own process (luacrawl, or node for puppeteer);
"browser" is every process whose executable is under /usr/lib/chromium/; the rest is "other"
(luacrawl's warden). RSS summed over processes counts a shared page once per process that
maps it; PSS divides each shared page among the processes that map it, so a sum of PSS does
not double-count. Both are reported.

With --records FILE (the command's JSON Lines output) each sample also counts the lines
written so far: the benchmark's progress (pages done), so memory can be read at 10%, 50% and
100% of the pages.

When the command exits: its zombie is inspected before it is reaped (waitid WNOWAIT), for the
engine's own CPU time (utime + stime of that process alone), then the probe reaps every orphan
until none is left (at most 20 s; survivors are SIGKILLed and counted in "stragglers"). The
browser's CPU time is then: tree total (RUSAGE_CHILDREN) - engine own - other (last sample).

It also records how busy the whole machine was (/proc/stat) while the command ran, and how much
of that busy CPU time was not the command's tree nor the probe ("foreign_cpu_s"): on a shared
2-core machine other work competes with the benchmark, and the figures must say so.

On SIGTERM/SIGINT the probe kills the command's process group and every process it found in
the tree, reaps them, writes what it has, and exits 143/130.
"""

import argparse
import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time

CLK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
PR_SET_CHILD_SUBREAPER = 36
CHROMIUM_DIR = "/usr/lib/chromium/"

stopping = {"sig": 0}


def on_signal(signum, frame):
    stopping["sig"] = signum


def read(path, mode="r"):
    try:
        with open(path, mode) as f:
            return f.read()
    except OSError:
        return None


def stat_of(pid):
    """(ppid, utime+stime s, cutime+cstime s, rss kB, state) of pid, or None."""
    s = read("/proc/%d/stat" % pid)
    if not s:
        return None
    rest = s[s.rfind(")") + 2:].split()
    # rest[0] is field 3 (state); field N is rest[N-3]
    state = rest[0]
    ppid = int(rest[1])
    own = (int(rest[11]) + int(rest[12])) / CLK
    kids = (int(rest[13]) + int(rest[14])) / CLK
    rss = int(rest[21]) * PAGE_KB
    return ppid, own, kids, rss, state


def cpu_busy_s():
    """Seconds of CPU time the whole machine has spent busy (all CPUs, all processes)."""
    f = read("/proc/stat").splitlines()[0].split()[1:]
    v = [int(x) for x in f]
    # user nice system idle iowait irq softirq steal (guest is inside user)
    return (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) / CLK


def pss_of(pid):
    s = read("/proc/%d/smaps_rollup" % pid)
    if not s:
        return 0
    for line in s.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def hwm_of(pid):
    s = read("/proc/%d/status" % pid)
    if not s:
        return 0
    for line in s.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def exe_of(pid):
    try:
        return os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return ""


def tree(root_pid, root_dir):
    """Pids of root_pid's descendants (not root_pid) and of processes naming root_dir."""
    parent = {}
    named = set()
    me = os.getpid()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        pid = int(d)
        st = stat_of(pid)
        if not st:
            continue
        parent[pid] = st[0]
        if root_dir and pid != me:
            cmd = read("/proc/%d/cmdline" % pid, "rb")
            if cmd and root_dir.encode() in cmd:
                named.add(pid)
    out = set()
    for pid in parent:
        p, hops = pid, 0
        while p in parent and p > 1 and hops < 64:
            p = parent[p]
            hops += 1
            if p == root_pid or p == me:
                out.add(pid)
                break
    out |= named
    out.discard(root_pid)
    out.discard(me)
    return out


def count_lines(path, state):
    """Lines in path, read incrementally (state keeps the offset and the count)."""
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size < state.get("off", 0):
                state["off"], state["n"] = 0, 0  # truncated (opened anew by the command)
            f.seek(state.get("off", 0))
            data = f.read()
    except OSError:
        return state.get("n", 0)
    state["off"] = state.get("off", 0) + len(data)
    state["n"] = state.get("n", 0) + data.count(b"\n")
    return state["n"]


def sample(child, root_dir, classes, t0, rec_state, records, pids_out):
    """One sample of the tree; remembers each pid's class in `classes`."""
    s = {"t": round(time.monotonic() - t0, 3), "engine_rss_kb": 0, "engine_hwm_kb": 0,
         "engine_cpu_s": 0.0, "browser_rss_kb": 0, "browser_pss_kb": None, "browser_procs": 0,
         "browser_cpu_s": 0.0, "other_rss_kb": 0, "other_cpu_s": 0.0}
    st = stat_of(child)
    if st and st[4] != "Z":
        s["engine_rss_kb"] = st[3]
        s["engine_hwm_kb"] = hwm_of(child)
        s["engine_cpu_s"] = st[1]
    for pid in tree(child, root_dir):
        st = stat_of(pid)
        if not st or st[4] == "Z":
            continue
        cls = classes.get(pid)
        if cls is None:
            cls = "browser" if exe_of(pid).startswith(CHROMIUM_DIR) else "other"
            classes[pid] = cls
        if cls == "browser":
            s["browser_rss_kb"] += st[3]
            s["browser_procs"] += 1
            s["browser_cpu_s"] += st[1] + st[2]
            pids_out.append(pid)
        else:
            s["other_rss_kb"] += st[3]
            s["other_cpu_s"] += st[1] + st[2]
    s["browser_cpu_s"] = round(s["browser_cpu_s"], 2)
    s["other_cpu_s"] = round(s["other_cpu_s"], 2)
    s["loadavg1"] = float(read("/proc/loadavg").split()[0])
    n = count_lines(records, rec_state)
    if n is not None:
        s["records"] = n
    return s


def reap_orphans(keep):
    """Reaps every exited process adopted by the probe (not `keep`, the command itself, whose
    zombie is inspected at the end), so none lingers as a zombie during the run."""
    while True:
        try:
            r = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if r is None or r.si_pid in (0, keep):
            return
        try:
            os.waitpid(r.si_pid, 0)
        except ChildProcessError:
            return


class PssReader:
    """Sums Pss over the browser processes on a thread of its own, one pass every `interval`
    seconds at most (a pass over 150 renderers takes seconds: it must not slow the 500 ms RSS
    samples). read() of smaps_rollup runs in the kernel without the GIL."""

    def __init__(self, interval, t0):
        self.interval, self.t0 = interval, t0
        self.lock = threading.Lock()
        self.pids = []
        self.passes = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def set_pids(self, pids):
        with self.lock:
            self.pids = list(pids)

    def latest(self):
        with self.lock:
            return self.passes[-1] if self.passes else None

    def run(self):
        while not self.done.is_set():
            start = time.monotonic()
            with self.lock:
                pids = list(self.pids)
            if pids:
                total = sum(pss_of(p) for p in pids)
                end = time.monotonic()
                with self.lock:
                    self.passes.append({"t_start": round(start - self.t0, 3), "t_end": round(end - self.t0, 3),
                                        "pss_kb": total, "procs": len(pids)})
            self.done.wait(max(0.05, self.interval - (time.monotonic() - start)))

    def stop(self):
        self.done.set()
        self.thread.join(30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("--pss", action="store_true")
    ap.add_argument("--pss-interval", type=float, default=2.0,
                    help="seconds between the starts of two PSS passes (a pass reads every browser process)")
    ap.add_argument("--root", default="")
    ap.add_argument("--records", default="")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--label", default="")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    if not cmd:
        ap.error("no command")

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.stderr.write("probe.py: cannot become a child subreaper\n")
        return 1
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    t0 = time.monotonic()
    wall0 = time.time()
    busy0 = cpu_busy_s()
    child = subprocess.Popen(cmd, start_new_session=True)
    classes = {}
    samples = []
    pss = PssReader(a.pss_interval, t0) if a.pss else None
    rec_state = {}
    seen = set()
    killed = None
    while True:
        deadline = time.monotonic() + a.interval
        reap_orphans(child.pid)
        try:
            r = os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            r = None
        if r is not None:
            break
        if stopping["sig"] or time.monotonic() - t0 > a.timeout:
            killed = "signal %d" % stopping["sig"] if stopping["sig"] else "timeout"
            try:
                os.killpg(child.pid, signal.SIGTERM)
            except OSError:
                pass
            for _ in range(100):
                if os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                    break
                time.sleep(0.1)
            else:
                try:
                    os.killpg(child.pid, signal.SIGKILL)
                except OSError:
                    pass
                os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
            break
        pids = []
        s = sample(child.pid, a.root, classes, t0, rec_state, a.records, pids)
        if pss:
            pss.set_pids(pids)
            last = pss.latest()
            if last:
                s["browser_pss_kb"] = last["pss_kb"]
                s["pss_t"] = last["t_end"]
        samples.append(s)
        seen |= set(classes)
        left = deadline - time.monotonic()
        if left > 0:
            time.sleep(left)
    t_end = time.monotonic() - t0
    busy1 = cpu_busy_s()
    if pss:
        pss.stop()

    # The zombie: the engine's own CPU (its reaped children are in cutime, not counted here).
    st = stat_of(child.pid)
    engine_cpu = st[1] if st else None
    engine_kids_cpu = st[2] if st else None
    rc = child.wait()
    records_final = count_lines(a.records, rec_state)

    # Reap every orphan that was reparented to us, until none is left (20 s at most).
    stragglers = 0
    until = time.monotonic() + 20
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            if time.monotonic() > until:
                for p in tree(os.getpid(), a.root):
                    stragglers += 1
                    try:
                        os.kill(p, signal.SIGKILL)
                    except OSError:
                        pass
                until = time.monotonic() + 5
            time.sleep(0.05)
    # Anything named by --root that is not our descendant (should not exist): report it.
    leftover = sorted(tree(-1, a.root)) if a.root else []
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    total_cpu = ru.ru_utime + ru.ru_stime
    me = resource.getrusage(resource.RUSAGE_SELF)

    live = [s for s in samples if s["browser_procs"] > 0]
    other_cpu = max([s["other_cpu_s"] for s in samples] or [0.0])
    browser_cpu = total_cpu - (engine_cpu or 0) - other_cpu
    res = {
        "label": a.label, "command": cmd, "exit_code": rc, "killed": killed,
        "started_at": wall0, "wall_s": round(t_end, 3), "interval_s": a.interval,
        "tree_cpu_s": round(total_cpu, 2), "engine_cpu_s": engine_cpu,
        "engine_children_cpu_s": engine_kids_cpu,
        "browser_cpu_s": round(browser_cpu, 2), "other_cpu_s": round(other_cpu, 2),
        "engine_cpu_share": round(engine_cpu / total_cpu, 4) if engine_cpu and total_cpu else None,
        "engine_rss_peak_kb": max([s["engine_hwm_kb"] for s in samples] or [0]),
        "browser_rss_peak_kb": max([s["browser_rss_kb"] for s in live] or [0]),
        "browser_pss_peak_kb": max([p["pss_kb"] for p in pss.passes] or [0]) if pss else None,
        "pss_passes": pss.passes if pss else None,
        "records_final": records_final,
        "browser_procs_peak": max([s["browser_procs"] for s in live] or [0]),
        "probe_cpu_s": round(me.ru_utime + me.ru_stime, 2),
        # Busy CPU time of the whole machine while the command ran, and what of it was neither
        # the command's tree nor the probe: other people's work competing for the same cores.
        "machine_busy_cpu_s": round(busy1 - busy0, 2),
        "foreign_cpu_s": round(max(0.0, (busy1 - busy0) - total_cpu - (me.ru_utime + me.ru_stime)), 2),
        "machine_cpus": os.cpu_count(),
        "loadavg1_mean": round(sum(x["loadavg1"] for x in samples) / len(samples), 2) if samples else None,
        "stragglers_killed": stragglers, "leftover_pids": leftover,
        "samples": samples,
    }
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(res, f)
    os.replace(tmp, a.out)
    if killed == "timeout":
        return 124
    if killed:
        return 130 if stopping["sig"] == signal.SIGINT else 143
    return rc if rc >= 0 else 128 - rc


if __name__ == "__main__":
    sys.exit(main())
