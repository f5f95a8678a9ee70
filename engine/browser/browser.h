/* browser.h: one Chromium process (group) on a libuv loop the caller owns.
 *
 * Owns: the Chromium process and its process group, the browser's end of its DevTools pipe
 * until the owner takes it, its stdout/stderr (a ring of the last 256 KiB, in memory), the helpers
 * that left the group but name the profile dir on their command line (crashpad), the fresh profile
 * dir (luacrawl-XXXXXX) and everything in it, the three libuv handles that watch them, a warden
 * process per browser, and a static registry of live browsers for the emergency exit paths.
 *
 * Lifecycle
 *   lc_browser_launch()   forks and execs; returns at once. Exactly one lc_browser_destroy()
 *                         per browser it returned.
 *   ready(b, 0, NULL)     once the browser answered the probe (Browser.getVersion) on its
 *                         DevTools pipe (--remote-debugging-pipe: no port is opened); take the
 *                         engine's end with lc_browser_take_cdp_fd().
 *   ready(b, err, msg)    err < 0 instead, when start-up fails: -ETIMEDOUT (no answer within
 *                         start_timeout_ms; the browser is then SIGKILLed), -EPROTO (a wrong
 *                         answer; SIGKILLed too) or -ECHILD (it exited first). msg holds the reason
 * and the tail of the Chromium log; it is valid only during the call. on_exit(b, st, sig)   once,
 * after the process has exited, the rest of its group and its crashpad helpers are gone, it is
 * reaped and the profile dir removed. exit_status is the exit code (or -1), term_signal the killing
 * signal (or 0). Also fires after a failed start (after ready's error). Either callback may call
 * lc_browser_destroy(). Neither fires after lc_browser_destroy().
 *
 * The child is made with fork + execve, not uv_spawn, because only that can set
 * PR_SET_PDEATHSIG: if the engine dies, even by SIGKILL, the kernel SIGKILLs the browser. The
 * death signal follows the forking *thread*: launch from the loop thread, which outlives it.
 * The pid is reaped with waitpid(pid) only (never waitpid(-1)); other children are untouched.
 * The exit is first observed with waitid(WNOWAIT), so the group is killed while the zombie
 * still pins the pid: a recycled pid is never signalled.
 *
 * The warden: launch also forks a small process, "luacrawl-warden" (comm and cmdline; in its
 * own session; ignores SIGINT, SIGTERM and SIGHUP), which sleeps until the engine closes its
 * end of a socket. If the engine goes away without saying all is clean (SIGKILL, a crash, an
 * exit that skipped cleanup), it SIGKILLs the browser's group and the processes naming the
 * profile dir, waits up to 2 s for them, removes the profile dir and exits: the dir does not
 * outlive even a SIGKILLed engine. Normally the engine tells it all is clean once the browser
 * is reaped and the dir removed, and reaps it (waitpid(pid)) before the handles close. The
 * engine must not reap children it does not own (no waitpid(-1), SIGCHLD not ignored), and a
 * child it forks without exec'ing keeps the warden waiting until that child exits.
 */
#ifndef LC_BROWSER_H
#define LC_BROWSER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "proc.h"

typedef struct lc_browser lc_browser;

typedef struct lc_browser_opts {
  const char *path;         /* NULL: lc_browser_find() */
  const char *profile_root; /* where the fresh profile dir is made; NULL: $LUACRAWL_PROFILE_ROOT
                               or $TMPDIR or /tmp */
  int headless_shell;       /* the lean headless build? -1: derived from the path's name */
  int start_timeout_ms;     /* the probe must be answered within this;
                               <= 0: 15000 */
  const char *const *extra_args; /* NULL-terminated, may be NULL; appended after ours */
} lc_browser_opts;

/* Picks the binary: explicit_path (must be an executable file, else an error), then
 * $LUACRAWL_CHROMIUM if set and non-empty (same rule: a wrong setting is an error, not skipped),
 * then /usr/lib/chromium/chromium-headless-shell, then /usr/lib/chromium/chromium; never the
 * /usr/bin/chromium shell wrapper. Writes the path to out; returns 0, or a negative errno with
 * *err set to a static message. */
int lc_browser_find(const char *explicit_path, char *out, size_t n, const char **err);

typedef void (*lc_browser_ready_fn)(lc_browser *b, int err, const char *msg, void *ud);
typedef void (*lc_browser_exit_fn)(lc_browser *b, int exit_status, int term_signal, void *ud);

/* Makes the profile dir, forks and execs Chromium. On success returns 0 and sets *out; the
 * browser is released by exactly one lc_browser_destroy(). On failure returns a negative errno
 * and, if err is not NULL, sets *err to a malloc'ed message the caller frees; nothing needs
 * destroying, and any handle already made is closed on the loop's next run. A bad path fails
 * here, before anything is forked or created. ready and on_exit may be NULL. */
int lc_browser_launch(uv_loop_t *loop, const lc_browser_opts *o, lc_browser_ready_fn ready,
                      lc_browser_exit_fn on_exit, void *ud, lc_browser **out, char **err);

/* The system user the browser runs as when luacrawl runs as root ($LUACRAWL_BROWSER_USER
 * overrides it); tools/deps.sh creates it. */
#define LC_BROWSER_USER "luacrawl-chrome"

/* The engine's end of the CDP socketpair (the browser's fds 3 and 4), once ready succeeded:
 * the caller owns it from here on (lc_pipe_open). Returns -1 before ready, after the exit, or if
 * already taken. Until taken, the browser closes it. */
int lc_browser_take_cdp_fd(lc_browser *b);
/* 1 when Chromium runs with its own sandbox (no --no-sandbox). */
int lc_browser_sandboxed(const lc_browser *b);
/* The uid the browser runs as. */
uid_t lc_browser_uid(const lc_browser *b);
/* The last interesting lines of Chromium's output ("\nchromium log (...), last lines:\n  ...")
 * into out (of size n, NUL-terminated); returns its length. Reads what is pending first. */
size_t lc_browser_log_tail(lc_browser *b, char *out, size_t n);
/* Bytes Chromium wrote to its stdout/stderr so far, and how many of them are kept (the ring
 * holds the last 256 KiB; nothing goes to disk). */
uint64_t lc_browser_log_bytes(const lc_browser *b);
size_t lc_browser_log_kept(const lc_browser *b);
/* The browser's pid, which is also its process group id. Stays set after the exit. */
pid_t lc_browser_pid(const lc_browser *b);
/* The warden's pid (0 if none); stays set after it is reaped. For tests and diagnostics. */
pid_t lc_browser_warden_pid(const lc_browser *b);
/* The profile dir's path (removed once the process is gone). */
const char *lc_browser_profile_dir(const lc_browser *b);
/* 1 for the lean headless build (as given, or derived from the path), else 0. */
int lc_browser_is_headless_shell(const lc_browser *b);
/* RSS in KiB and CPU seconds summed over the whole tree; 0 once it has exited. */
long lc_browser_rss_kb(const lc_browser *b);
/* RSS, and PSS when want_pss, of the browser's process tree (see lc_proc_tree_mem); zeros once
 * it is gone. Returns the member count. */
int lc_browser_mem(const lc_browser *b, int want_pss, lc_proc_mem *out);
double lc_browser_cpu_seconds(const lc_browser *b);
/* 1 while the main browser process has not exited. */
int lc_browser_alive(const lc_browser *b);

/* SIGTERMs the main process (it stops its helpers); SIGKILLs the group (and the crashpad
 * helpers) after grace_ms if the main process
 * is still alive. No-op once it has exited. */
void lc_browser_terminate(lc_browser *b, int grace_ms);
/* SIGKILLs the group and the crashpad helpers now. No-op once it has exited. */
void lc_browser_kill(lc_browser *b);

/* Releases the browser: SIGKILLs the group if alive and closes its libuv handles; the memory is
 * freed (and the profile dir removed, if still there) in the last close callback, after the
 * process and its warden are reaped, so the loop must run on until then. Exactly one call per
 * launched browser; a second call while the first is still closing aborts. Callbacks never fire
 * after it. */
void lc_browser_destroy(lc_browser *b);

/* For the engine's emergency exits (SIGTERM/SIGINT handlers, atexit, fatal errors): SIGKILLs
 * every browser group launched by this process that has not been reaped, and every process
 * naming one of their profile dirs; waits up to 1 s for them to die; removes the profile dirs;
 * releases every warden (told all is clean if it is, so it exits at once; else it finishes the
 * job), so no warden waits on a loop that may never run again. Async-signal-safe (no malloc, no
 * stdio, no locks; errno is preserved): usable from a signal handler. Browsers stay registered:
 * if the loop runs on, their on_exit fires as usual and destroy is still due. */
void lc_browser_kill_all_now(void);

#endif
