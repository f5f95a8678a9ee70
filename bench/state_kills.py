#!/usr/bin/env python3
"""bench/state_kills.py: the long version of spec/state_spec.lua's kill test (issue 11).

A 1,001-page crawl of the fixture server (spec/support/server.py, /_/links?n=1000) with
--state, killed with SIGKILL KILLS times (default 50) at random moments (every third time
Chromium is SIGKILLed first), resumed each time with the same command, then run to its end.
Reports whether every page was written exactly once as whole JSON, how many kills landed
mid-crawl, and the time. It reports; it asserts nothing.

    python3 bench/state_kills.py [--kills 50] [--pages 1000] [--seed 1]
"""
import argparse, json, os, random, signal, subprocess, sys, tempfile, time

src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ap = argparse.ArgumentParser()
ap.add_argument("--kills", type=int, default=50)
ap.add_argument("--pages", type=int, default=1000)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--bin", default=os.environ.get("LUACRAWL_BIN", os.path.join(src, "build/luacrawl")))
a = ap.parse_args()
random.seed(a.seed)
work = tempfile.mkdtemp(prefix="luacrawl-kills.")
os.chmod(work, 0o711)
profiles = os.path.join(work, "profiles")
os.mkdir(profiles)
os.chmod(profiles, 0o711)
port_file = os.path.join(work, "port")
srv = subprocess.Popen([sys.executable, os.path.join(src, "spec/support/server.py"), "--root",
                        os.path.join(src, "spec/fixtures/site"), "--port-file", port_file,
                        "--watch-pid", str(os.getpid())])
for _ in range(200):
    if os.path.exists(port_file):
        break
    time.sleep(0.05)
port = int(open(port_file).read())
job = os.path.join(work, "job.lua")
with open(job, "w") as f:
    f.write("""return { start = { args.base .. "/_/links?n=%d" }, max_depth = 1, concurrency = 4, retries = 3,
  handle = function(page, req, job)
    local res = assert(page:navigate(req.url))
    job:emit { url = req.url, status = res.status }
    for _, l in ipairs(page:links()) do job:enqueue(l) end
  end }
""" % a.pages)
db, out = os.path.join(work, "crawl.db"), os.path.join(work, "out.jsonl")
cmd = [a.bin, "run", job, "base=http://127.0.0.1:%d" % port, "--state", db, "-o", out, "-q"]
env = dict(os.environ, LUACRAWL_PROFILE_ROOT=profiles)

def status():
    r = subprocess.run([a.bin, "status", db, "--json"], capture_output=True, text=True)
    return json.loads(r.stdout) if r.returncode == 0 else {}

started = time.time()
mid = 0
for i in range(a.kills):
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(random.uniform(0.3, 4.0))
    if i % 3 == 2:
        subprocess.run(["pkill", "-KILL", "-f", profiles], stderr=subprocess.DEVNULL)
    p.send_signal(signal.SIGKILL)
    p.wait()
    st = status()
    if st.get("state") == "done":
        break
    mid += 1
final = subprocess.run(cmd + ["--stats", os.path.join(work, "stats.json")], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
lines = open(out, "rb").read().split(b"\n")
bad, urls = 0, {}
for ln in lines:
    if not ln:
        continue
    try:
        urls[json.loads(ln)["url"]] = urls.get(json.loads(ln)["url"], 0) + 1
    except Exception:
        bad += 1
stats = json.load(open(os.path.join(work, "stats.json"))) if final.returncode == 0 else {}
res = {"bench": "state_kills", "kills_mid_crawl": mid, "pages": a.pages + 1,
       "distinct_urls": len(urls), "written_twice": sum(1 for n in urls.values() if n > 1),
       "bad_lines": bad, "final_exit": final.returncode,
       "refs_outstanding": stats.get("refs_outstanding"), "status": status().get("state"),
       "seconds": round(time.time() - started, 1)}
print("%d kills mid-crawl; %d of %d pages written, %d twice, %d bad lines; final exit %d, "
      "refs_outstanding %s, status %s; %.0f s" % (res["kills_mid_crawl"], res["distinct_urls"],
      res["pages"], res["written_twice"], res["bad_lines"], res["final_exit"],
      res["refs_outstanding"], res["status"], res["seconds"]))
print(json.dumps(res))
srv.terminate()
srv.wait()
subprocess.run(["rm", "-rf", work])
