#!/usr/bin/env python3
"""runbg.py: runs one command in the background for a spec, so the spec can signal it.

Owns: the child process it starts, and the pid and exit-code files it writes.

    python3 spec/support/runbg.py --pid-file F --code-file F --stdout F --stderr F
                                  [--cwd DIR] [--timeout S] [--watch-pid PID] -- CMD [ARG...]

A shell starts background jobs with SIGINT and SIGQUIT ignored, and an ignored signal stays
ignored across exec: `sh -c 'luacrawl ... &'` would give a luacrawl that SIGINT cannot reach.
This wrapper starts CMD with every signal at its default disposition and none blocked, in a
new session (so its process group can be killed as one), stdin from /dev/null, and stdout and
stderr to the given files. The pid in --pid-file is CMD's own pid: signals sent to it reach
the program itself.

When CMD ends, --code-file gets its exit status: the exit code, or 128 + N when signal N ended
it (130 for SIGINT, 137 for SIGKILL). When --timeout seconds pass first, or the --watch-pid
process is gone (the test runner died), or this wrapper gets SIGTERM or SIGHUP, the wrapper
SIGKILLs CMD's process group and writes 137 with a second line naming why ("timeout",
"orphaned" or "terminated"). Both files are written atomically (temp + rename).
"""

import argparse
import os
import signal
import subprocess
import sys
import time

def write_atomic(path, text):
    """Writes `text` to `path` through a temp file and a rename."""
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def reset_signals():
    """Runs in the child before exec: default dispositions, nothing blocked.

    (glibc keeps signals 32 and 33 for itself; they cannot be reset, and need not be.)"""
    for sig in signal.valid_signals():
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            try:
                signal.signal(sig, signal.SIG_DFL)
            except (OSError, ValueError):
                pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def process_gone(pid):
    """True when process `pid` no longer exists or is a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2:][:1] in ("Z", "X")


def main():
    parser = argparse.ArgumentParser(description="run a command in the background for a spec")
    parser.add_argument("--pid-file", required=True)
    parser.add_argument("--code-file", required=True)
    parser.add_argument("--stdout", required=True)
    parser.add_argument("--stderr", required=True)
    parser.add_argument("--cwd")
    parser.add_argument("--timeout", type=float, default=0)
    parser.add_argument("--watch-pid", type=int)
    parser.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("no command given")

    stop_reason = []
    def on_signal(signum, frame):
        stop_reason.append("terminated")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    with open(args.stdout, "wb") as out, open(args.stderr, "wb") as err:
        try:
            child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                     cwd=args.cwd, start_new_session=True,
                                     restore_signals=True, preexec_fn=reset_signals)
        except OSError as e:
            err.write(("runbg.py: cannot start %s: %s\n" % (cmd[0], e)).encode())
            err.flush()
            write_atomic(args.pid_file, "0\n")
            write_atomic(args.code_file, "127\nnot started\n")
            return 0
    write_atomic(args.pid_file, "%d\n" % child.pid)

    deadline = time.monotonic() + args.timeout if args.timeout > 0 else None
    why = ""
    while True:
        try:
            status = child.wait(0.05)
            break
        except subprocess.TimeoutExpired:
            pass
        if stop_reason:
            why = stop_reason[0]
        elif deadline is not None and time.monotonic() >= deadline:
            why = "timeout"
        elif args.watch_pid and process_gone(args.watch_pid):
            why = "orphaned"
        if why:
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except OSError:
                pass
            status = child.wait()
            break
    code = status if status >= 0 else 128 - status
    write_atomic(args.code_file, "%d\n%s" % (code, why + "\n" if why else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
