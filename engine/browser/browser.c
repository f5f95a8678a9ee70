#define _GNU_SOURCE /* unshare, CLONE_NEW*, pipe2 */
/* browser.c: one Chromium process (group) on a libuv loop the caller owns.
 *
 * States: RUNNING (forked, not seen exiting) -> DRAINING (the main process is a zombie, not yet
 * reaped; the rest of the group and the crashpad helpers are being SIGKILLed until none is left)
 * -> REAPING (waitpid in progress; a signal handler must not touch the pid) -> DONE (reaped,
 * profile dir removed, callbacks fired). Handles are closed once DONE and destroyed, and the
 * memory is freed in the last close callback.
 *
 * Four handles: `sigchld` (uv_signal on SIGCHLD: the fast exit path), `poll` (every 20 ms during
 * start-up: the probe's reply on the CDP pipe, the start deadline, early exits), `watch`
 * (fallback exit poll, the terminate grace deadline, the 10 ms ticks of the drain, and once DONE
 * the 10 ms ticks that reap the warden), `log_pipe` (Chromium's stdout and stderr, read into a
 * ring of the last 256 KiB: nothing is written to disk, however much a page logs).
 *
 * CDP: the child gets one end of a socketpair as fds 3 and 4 (--remote-debugging-pipe: commands
 * in on 3, replies out on 4, NUL after each); no port is opened. The launch writes one probe
 * (Browser.getVersion, id 0) and `poll` waits for its reply, peeking so that nothing after it is
 * consumed; then ready fires and the owner takes the engine's end (lc_browser_take_cdp_fd).
 *
 * Privileges: as root, the browser runs as an unprivileged system user (LC_BROWSER_USER, made
 * by tools/deps.sh) who owns the profile dir; its own sandbox is on unless a probe finds that
 * the kernel refuses the user namespaces it needs (then --no-sandbox, with one warning).
 *
 * The warden: a second child, forked before Chromium, that outlives the engine to clean up
 * after it. It is in its own session (a terminal's Ctrl-C to the engine's group misses it),
 * ignores SIGINT/SIGTERM/SIGHUP, is named "luacrawl-warden" (comm and cmdline: the engine's own
 * arguments, which may name the profile root, are overwritten) and blocks reading one end of a
 * socketpair whose other end only the engine holds (SOCK_CLOEXEC: no exec'd child inherits it;
 * each child forked here closes it). Messages, one int each:
 *   > 0           the browser's pid, which is its process group id;
 *   WARDEN_FORGET the pid is no longer ours (about to be reaped): never signal that group;
 *   WARDEN_DONE   the tree is gone and the profile removed: exit at once.
 * On EOF without DONE (the engine died, by any path, or kill_all_now could not finish) it
 * SIGKILLs the group (only while it has live members) and every process naming the profile dir,
 * polls /proc up to WARDEN_WAIT_MS until they are gone, removes the profile dir and exits. The
 * engine sends DONE and closes its end in finish(), then reaps the warden with waitpid(pid)
 * from the watch timer; the handles are closed only once it is reaped, so nothing is left.
 * Cost: one sleeping process per browser, sharing the engine's pages copy-on-write; pages the
 * engine writes after the fork are then held twice (bounded by the engine's size at launch).
 */
#include "browser.h"

#include "log.h"
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

enum {
  POLL_MS = 20,          /* DevToolsActivePort poll */
  WATCH_MS = 250,        /* fallback exit poll while running (SIGCHLD is the fast path) */
  DRAIN_TICK_MS = 10,    /* while waiting for the rest of the tree to die */
  DRAIN_LIMIT_MS = 3000, /* then reap anyway: something stuck in D state is not ours to wait on */
  DEFAULT_START_MS = 15000,
  REGISTRY_MAX = 64,
  LOG_TAIL_LINES = 12,
  LOG_RING = 256 * 1024,
  LOG_LINE_MAX = 300,
  /* a longer line is cut in messages */ /* Chromium's output kept for crash reports: the last 256
                                            KiB */
  WARDEN_WAIT_MS = 2000,  /* the warden's wait for the tree to die before removing the dir */
  WARDEN_LIMIT_MS = 5000, /* a released warden still running after this is SIGKILLed */
};

/* Messages to the warden (see the top of the file); a positive value is the browser's pid. */
enum { WARDEN_FORGET = 0, WARDEN_DONE = -1 };

/* The warden's fd is released from signal handlers too: the exchange must be lock-free. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "atomic int must be lock-free");

enum { ST_RUNNING, ST_DRAINING, ST_REAPING, ST_DONE };

struct lc_browser {
  uv_loop_t *loop;
  lc_browser_ready_fn ready;
  lc_browser_exit_fn on_exit;
  void *ud;
  pid_t pid; /* also the process group id */
  volatile sig_atomic_t state;
  int lost; /* someone else reaped our child: its pid is no longer ours to signal */
  int exit_status, term_signal;
  int ready_pending; /* ready has not fired */
  int destroyed;
  int closing; /* close callbacks still due; -1 before closing started */
  int shell;
  int start_timeout_ms;
  uint64_t start_ns;
  uint64_t kill_at_ms; /* terminate's grace deadline (loop time), 0: none */
  uint64_t drain_until_ms;
  pid_t warden_pid;           /* 0: none */
  int warden_reaped;          /* waitpid'd (or found reaped elsewhere): never signal it again */
  atomic_int warden_fd;       /* the engine's end of the socketpair; -1 once released */
  uint64_t warden_kill_at_ms; /* loop time after which a released warden is SIGKILLed; 0: unset */
  uv_signal_t sigchld;
  uv_timer_t poll;
  uv_timer_t watch;
  uv_pipe_t log_pipe;  /* Chromium's stdout and stderr, read into the ring */
  int log_open;        /* log_pipe is initialised (a handle to close) */
  int cdp_fd;          /* the engine's end of the CDP socketpair until taken; -1 after */
  size_t probe_len;    /* bytes of the probe reply seen so far (start-up) */
  int sandbox;         /* Chromium's sandbox is on */
  uid_t uid;           /* the user the browser runs as */
  char *ring;          /* the last LOG_RING bytes Chromium wrote (malloc'ed) */
  char log_buf[16384]; /* libuv reads into this, then it is copied into the ring */
  size_t ring_head;    /* next write position */
  uint64_t log_bytes;  /* every byte ever written */
  char profile[PATH_MAX];
  char msg[4096]; /* ready's error text */
};

/* ---------------------------------------------------------------- registry */

/* Live browsers (launched, memory not yet freed), for lc_browser_kill_all_now. Written only by
 * the loop thread; read by signal handlers, which tolerate a slot changing under them. */
static lc_browser *volatile g_registry[REGISTRY_MAX];

static int registry_add(lc_browser *b) {
  for (int i = 0; i < REGISTRY_MAX; i++) {
    if (!g_registry[i]) {
      g_registry[i] = b;
      return 0;
    }
  }
  return -EMFILE;
}

static void registry_remove(lc_browser *b) {
  for (int i = 0; i < REGISTRY_MAX; i++)
    if (g_registry[i] == b) g_registry[i] = NULL;
}

/* True while the pid still belongs to us: not reaped (a zombie pins the pid and the group id). */
static int pid_is_ours(const lc_browser *b) {
  return b->pid > 0 && !b->lost && (b->state == ST_RUNNING || b->state == ST_DRAINING);
}

/* SIGKILLs the group, the main process and every process naming the profile dir. Signal-safe. */
static void kill_tree_now(const lc_browser *b) {
  if (pid_is_ours(b)) {
    kill(-b->pid, SIGKILL);
    kill(b->pid, SIGKILL); /* in case setpgid never happened */
  }
  lc_proc_signal_by_cmdline(b->profile, SIGKILL);
}

static void warden_release(lc_browser *b, int all_clean);

void lc_browser_kill_all_now(void) {
  int saved_errno = errno;
  int any = 0;
  for (int i = 0; i < REGISTRY_MAX; i++) {
    lc_browser *b = g_registry[i];
    if (b && b->state != ST_DONE) {
      kill_tree_now(b);
      any = 1;
    }
  }
  if (!any) {
    errno = saved_errno;
    return;
  }
  /* Wait (up to 1 s) until they are gone, so nothing writes into a profile dir being removed. */
  int left = 0;
  for (int tries = 0; tries < 100; tries++) {
    left = 0;
    for (int i = 0; i < REGISTRY_MAX; i++) {
      lc_browser *b = g_registry[i];
      if (!b || b->state == ST_DONE) continue;
      if (pid_is_ours(b)) left += lc_proc_group_alive(b->pid);
      left += lc_proc_signal_by_cmdline(b->profile, SIGKILL);
    }
    if (left == 0) break;
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  for (int i = 0; i < REGISTRY_MAX; i++) {
    lc_browser *b = g_registry[i];
    if (!b) continue;
    int r = lc_rmtree_signal_safe(b->profile);
    /* The wardens finish even if the loop never runs again: with nothing to do if all is gone,
     * else (EOF alone) they keep trying after this process is gone. */
    warden_release(b, left == 0 && (r == 0 || r == -ENOENT));
  }
  errno = saved_errno;
}

/* ---------------------------------------------------------------- the warden */

static void sleep_ms_signal_safe(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static long monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Closes every fd but keep: close_range, else a loop bounded by RLIMIT_NOFILE (capped). */
static void close_fds_except(int keep) {
#ifdef SYS_close_range
  if ((keep == 0 || syscall(SYS_close_range, 0u, (unsigned)keep - 1, 0u) == 0) &&
      syscall(SYS_close_range, (unsigned)keep + 1, ~0u, 0u) == 0)
    return;
#endif
  struct rlimit rl;
  int max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536 ? (int)rl.rlim_cur : 65536;
  for (int fd = 0; fd < max; fd++)
    if (fd != keep) close(fd);
}

/* The warden's work once the engine is gone: SIGKILL the group (while it has live members: a
 * group with none left may have had its number reused) and every process naming the profile,
 * until none is left or WARDEN_WAIT_MS passed, then remove the profile dir. Signal-safe. */
static void warden_cleanup(pid_t pgid, const char *profile) {
  long until = monotonic_ms() + WARDEN_WAIT_MS;
  for (;;) {
    int left = lc_proc_signal_by_cmdline(profile, SIGKILL);
    if (pgid > 0) {
      int group = lc_proc_group_alive(pgid);
      if (group > 0) kill(-pgid, SIGKILL);
      left += group;
    }
    if (left == 0 || monotonic_ms() >= until) break;
    sleep_ms_signal_safe(10);
  }
  for (int tries = 0; tries < 3; tries++) {
    int r = lc_rmtree_signal_safe(profile);
    if (r == 0 || r == -ENOENT) break;
    sleep_ms_signal_safe(50); /* something still dying wrote into it: once more */
  }
}

/* The warden's body, in the child right after fork (the engine may have threads: only simple
 * syscalls and the signal-safe /proc helpers, no malloc, no stdio). profile is this process's
 * copy of the path. Never returns. */
static void warden_main(int fd, const char *profile) {
  setsid(); /* own session and group: a terminal's signals to the engine's group miss it */
  prctl(PR_SET_PDEATHSIG, 0); /* fork clears it already; it must outlive the engine */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  for (int sig = 1; sig < NSIG; sig++) {
    int ignore = sig == SIGINT || sig == SIGTERM || sig == SIGHUP || sig == SIGPIPE;
    sa.sa_handler = ignore ? SIG_IGN : SIG_DFL; /* no handler of the engine runs here */
    sigaction(sig, &sa, NULL);
  }
  close_fds_except(fd);
  if (chdir("/") != 0) {
    /* stays where it was: harmless */
  }
  lc_proc_self_rename("luacrawl-warden");
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL); /* the launcher blocked everything across fork */

  pid_t pgid = 0;
  for (;;) {
    int msg = 0;
    size_t got = 0;
    ssize_t r = 0;
    while (got < sizeof msg) {
      r = read(fd, (char *)&msg + got, sizeof msg - got);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      got += (size_t)r;
    }
    if (got < sizeof msg) break; /* EOF (or an error): the engine is gone or let go */
    if (msg == WARDEN_DONE) _exit(0);
    pgid = msg > 0 ? (pid_t)msg : 0;
  }
  warden_cleanup(pgid, profile);
  _exit(0);
}

/* Sends one message to the warden, if it still has its fd; failures are ignored (a dead warden
 * must not SIGPIPE the engine, hence a socket and MSG_NOSIGNAL). Loop thread only; should
 * kill_all_now release the fd meanwhile, the send fails harmlessly (EBADF, or ENOTSOCK). */
static void warden_send(lc_browser *b, int msg) {
  int fd = atomic_load(&b->warden_fd);
  if (fd < 0) return;
  ssize_t w;
  do w = send(fd, &msg, sizeof msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (w < 0 && errno == EINTR);
}

/* Lets the warden go: DONE first if all_clean (it exits at once), then close, so it wakes and,
 * without DONE, cleans up. Once per browser; later calls do nothing. Signal-safe. */
static void warden_release(lc_browser *b, int all_clean) {
  int fd = atomic_exchange(&b->warden_fd, -1);
  if (fd < 0) return;
  if (all_clean) {
    int msg = WARDEN_DONE;
    ssize_t w;
    do w = send(fd, &msg, sizeof msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (w < 0 && errno == EINTR);
  }
  close(fd);
}

/* Reaps the warden if it has exited; 1 once it is reaped (or there is none), else 0. */
static int warden_reap(lc_browser *b) {
  if (b->warden_reaped || b->warden_pid <= 0) return 1;
  pid_t r;
  do r = waitpid(b->warden_pid, NULL, WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r == 0) return 0;
  b->warden_reaped = 1; /* r == pid; or ECHILD: reaped elsewhere, no longer ours either way */
  return 1;
}

/* ---------------------------------------------------------------- finding the binary */

static int is_executable_file(const char *path) {
  struct stat st;
  return path && *path && stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

static int copy_path(const char *path, char *out, size_t n, const char **err) {
  if (strlen(path) >= n) {
    if (err) *err = "browser path too long";
    return -ENAMETOOLONG;
  }
  memcpy(out, path, strlen(path) + 1);
  return 0;
}

int lc_browser_find(const char *explicit_path, char *out, size_t n, const char **err) {
  if (err) *err = NULL;
  if (!out || n == 0) {
    if (err) *err = "no output buffer";
    return -EINVAL;
  }
  if (explicit_path) {
    if (is_executable_file(explicit_path)) return copy_path(explicit_path, out, n, err);
    if (err) *err = "browser path is not an executable file";
    return -ENOENT;
  }
  const char *env = getenv("LUACRAWL_CHROMIUM");
  if (env && *env) {
    if (is_executable_file(env)) return copy_path(env, out, n, err);
    if (err) *err = "$LUACRAWL_CHROMIUM is not an executable file";
    return -ENOENT;
  }
  static const char *const candidates[] = {"/usr/lib/chromium/chromium-headless-shell",
                                           "/usr/lib/chromium/chromium"};
  for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++)
    if (is_executable_file(candidates[i])) return copy_path(candidates[i], out, n, err);
  if (err) *err = "no Chromium found (set $LUACRAWL_CHROMIUM or install chromium-headless-shell)";
  return -ENOENT;
}

/* ---------------------------------------------------------------- log tail and messages */

static int is_noise(const char *line, size_t len) {
  /* No D-Bus in a container: Chromium logs these on every start; they hide the real error. */
  static const char *const noise[] = {":ERROR:dbus/", "bluez_dbus_manager", "drmGetDevices2"};
  for (size_t i = 0; i < sizeof noise / sizeof noise[0]; i++) {
    size_t nl = strlen(noise[i]);
    for (size_t k = 0; k + nl <= len; k++)
      if (memcmp(line + k, noise[i], nl) == 0) return 1;
  }
  return 0;
}

/* Appends bytes to the ring (the oldest are overwritten). */
static void ring_add(lc_browser *b, const char *p, size_t n) {
  if (!b->ring) return;
  b->log_bytes += n;
  if (n >= LOG_RING) {
    p += n - LOG_RING;
    n = LOG_RING;
  }
  size_t first = LOG_RING - b->ring_head < n ? LOG_RING - b->ring_head : n;
  memcpy(b->ring + b->ring_head, p, first);
  memcpy(b->ring, p + first, n - first);
  b->ring_head = (b->ring_head + n) % LOG_RING;
}

/* Copies the last n bytes of the ring (fewer if it holds fewer) to out; returns the count. */
static size_t ring_tail(const lc_browser *b, char *out, size_t n) {
  if (!b->ring) return 0;
  size_t have = b->log_bytes < LOG_RING ? (size_t)b->log_bytes : LOG_RING;
  if (n > have) n = have;
  size_t start = (b->ring_head + LOG_RING - n) % LOG_RING;
  size_t first = LOG_RING - start < n ? LOG_RING - start : n;
  memcpy(out, b->ring + start, first);
  memcpy(out + first, b->ring, n - first);
  return n;
}

/* Reads what Chromium wrote and the loop has not read yet (it exited: the message is now). */
static void log_drain(lc_browser *b) {
  if (!b->log_open || uv_is_closing((uv_handle_t *)&b->log_pipe)) return;
  uv_os_fd_t fd;
  if (uv_fileno((uv_handle_t *)&b->log_pipe, &fd) != 0) return;
  char buf[16384];
  for (int i = 0; i < 64; i++) { /* at most 1 MiB: a writer still running cannot hold us */
    ssize_t r = read(fd, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break; /* EAGAIN (libuv made it non-blocking), EOF or an error */
    ring_add(b, buf, (size_t)r);
  }
}

static void log_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  lc_browser *b = h->data;
  (void)suggested;
  *buf = uv_buf_init(b->log_buf, sizeof b->log_buf);
}

/* Chromium wrote something: into the ring. EOF: the whole tree has let go of the pipe. */
static void log_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  lc_browser *b = s->data;
  if (n > 0) {
    ring_add(b, buf->base, (size_t)n);
    return;
  }
  if (n < 0) uv_read_stop(s); /* EOF or an error: nothing more will come */
}

/* Appends the last LOG_TAIL_LINES interesting lines of the Chromium log to out (of size n). */
static void append_log_tail(const lc_browser *b, char *out, size_t n) {
  char buf[8192];
  size_t used = strlen(out);
  size_t got = ring_tail(b, buf, sizeof buf - 1);
  int cut = got < b->log_bytes; /* the first line may be a piece of one */
  ssize_t len = (ssize_t)got;
  if (len <= 0) {
    snprintf(out + used, n - used, "\n(chromium log is empty)");
    return;
  }
  buf[len] = '\0';
  /* Walk back over lines, keeping the last interesting ones. */
  const char *starts[LOG_TAIL_LINES];
  size_t lens[LOG_TAIL_LINES];
  int kept = 0;
  size_t end = (size_t)len;
  while (end > 0 && kept < LOG_TAIL_LINES) {
    size_t e = end;
    while (e > 0 && (buf[e - 1] == '\n' || buf[e - 1] == '\r')) e--;
    size_t s = e;
    while (s > 0 && buf[s - 1] != '\n') s--;
    if (s == 0 && cut) break; /* a cut first line */
    if (e > s && !is_noise(buf + s, e - s)) {
      starts[kept] = buf + s;
      lens[kept] = e - s;
      kept++;
    }
    end = s;
  }
  if (kept == 0) {
    snprintf(out + used, n - used, "\n(chromium log has only D-Bus noise)");
    return;
  }
  snprintf(out + used, n - used,
           "\nchromium log (%llu bytes written, last %d KiB kept), last lines:",
           (unsigned long long)b->log_bytes, LOG_RING / 1024);
  used = strlen(out);
  /* The newest lines matter most: show as many of them as fit, each cut to LOG_LINE_MAX. */
  int show = 0;
  size_t need = 0;
  while (show < kept) {
    size_t l = lens[show] > LOG_LINE_MAX ? LOG_LINE_MAX + 3 : lens[show];
    if (used + need + l + 4 >= n) break;
    need += l + 3;
    show++;
  }
  for (int i = show - 1; i >= 0; i--) {
    used = strlen(out);
    if (lens[i] > LOG_LINE_MAX)
      snprintf(out + used, n - used, "\n  %.*s...", LOG_LINE_MAX, starts[i]);
    else
      snprintf(out + used, n - used, "\n  %.*s", (int)lens[i], starts[i]);
  }
}

/* Writes a formatted message plus the log tail into b->msg. */
static void set_msg(lc_browser *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(b->msg, sizeof b->msg, fmt, ap);
  va_end(ap);
  append_log_tail(b, b->msg, sizeof b->msg);
}

static char *dup_printf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int len = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (len < 0) return NULL;
  char *s = malloc((size_t)len + 1);
  if (!s) return NULL;
  va_start(ap, fmt);
  vsnprintf(s, (size_t)len + 1, fmt, ap);
  va_end(ap);
  return s;
}

/* ---------------------------------------------------------------- the CDP probe */

/* Written at launch; ready fires once its reply is read. Id 0: the CDP layer starts at 1. */
static const char probe_cmd[] = "{\"id\":0,\"method\":\"Browser.getVersion\"}";

/* Looks (MSG_PEEK: nothing after it is consumed) for the probe's complete reply on the CDP
 * socket. Returns 1 once it is read and is a result for id 0, 0 while incomplete, -1 with
 * b->msg set if it is something else. */
static int read_probe_reply(lc_browser *b) {
  char buf[4096];
  ssize_t n;
  do n = recv(b->cdp_fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n <= 0) return 0; /* nothing yet, or EOF: the exit path reports an exit */
  b->probe_len = (size_t)n;
  char *nul = memchr(buf, '\0', (size_t)n);
  if (!nul) {
    if ((size_t)n < sizeof buf) return 0;
    snprintf(b->msg, sizeof b->msg, "chromium's first reply on the DevTools pipe is too long");
    return -1;
  }
  size_t len = (size_t)(nul - buf) + 1;
  ssize_t r;
  do r = recv(b->cdp_fd, buf, len, MSG_DONTWAIT);
  while (r < 0 && errno == EINTR);
  if (r != (ssize_t)len || strncmp(buf, "{\"id\":0,", 8) != 0 || !strstr(buf, "\"result\"")) {
    snprintf(b->msg, sizeof b->msg,
             "chromium's first reply on the DevTools pipe is not the probe's: %.200s", buf);
    return -1;
  }
  return 1;
}

/* ---------------------------------------------------------------- exit, drain, reap */

static void close_handles(lc_browser *b);
static void drain_tick(lc_browser *b);

static uint64_t elapsed_ms(const lc_browser *b) { return (uv_hrtime() - b->start_ns) / 1000000; }

static void watch_in(lc_browser *b, uint64_t ms);
static void on_watch(uv_timer_t *h);

/* Once DONE: reaps the warden (released by now, so it is exiting), every DRAIN_TICK_MS until it
 * is reaped, SIGKILLing it after WARDEN_LIMIT_MS; then closes the handles if destroyed. */
static void warden_tick(lc_browser *b) {
  if (warden_reap(b)) {
    if (b->destroyed) close_handles(b);
    return;
  }
  uint64_t now = uv_now(b->loop);
  if (!b->warden_kill_at_ms)
    b->warden_kill_at_ms = now + WARDEN_LIMIT_MS;
  else if (now >= b->warden_kill_at_ms)
    kill(b->warden_pid, SIGKILL); /* unreaped: still ours */
  uv_timer_start(&b->watch, on_watch, DRAIN_TICK_MS, 0);
}

/* After the main process is gone and reaped: remove the profile, let the warden go, fire the
 * callbacks, and close the handles if the owner already let go (once the warden is reaped). */
static void finish(lc_browser *b) {
  b->state = ST_DONE;
  uv_timer_stop(&b->poll);
  uv_timer_stop(&b->watch);
  uv_signal_stop(&b->sigchld);
  int ready_failed = b->ready_pending && !b->destroyed;
  log_drain(b); /* the last words before the exit, for the messages below and log_tail */
  if (b->cdp_fd >= 0) {
    close(b->cdp_fd); /* never taken (a failed start): nobody reads it any more */
    b->cdp_fd = -1;
  }
  if (ready_failed) {
    if (b->term_signal)
      set_msg(b, "chromium exited during start-up (signal %d) after %llu ms", b->term_signal,
              (unsigned long long)elapsed_ms(b));
    else
      set_msg(b, "chromium exited during start-up (status %d) after %llu ms", b->exit_status,
              (unsigned long long)elapsed_ms(b));
  }
  lc_rmtree(b->profile);
  warden_release(b, access(b->profile, F_OK) != 0 && errno == ENOENT);
  if (ready_failed) {
    b->ready_pending = 0;
    if (b->ready) b->ready(b, -ECHILD, b->msg, b->ud);
  }
  b->ready_pending = 0;
  if (!b->destroyed && b->on_exit) b->on_exit(b, b->exit_status, b->term_signal, b->ud);
  if (b->destroyed)
    close_handles(b);
  else
    warden_tick(b);
}

/* The main process is a zombie (or was reaped by someone else): kill what is left of the tree,
 * then drain. */
static void begin_drain(lc_browser *b) {
  b->state = ST_DRAINING;
  uv_timer_stop(&b->poll);
  kill_tree_now(b);
  b->drain_until_ms = uv_now(b->loop) + DRAIN_LIMIT_MS;
  drain_tick(b);
}

/* Records how the main process ended, from a waitid siginfo or a waitpid status. */
static void record_siginfo(lc_browser *b, const siginfo_t *si) {
  if (si->si_code == CLD_EXITED) {
    b->exit_status = si->si_status;
    b->term_signal = 0;
  } else {
    b->exit_status = -1;
    b->term_signal = si->si_status;
  }
}

/* Looks, without reaping, whether the main process has exited; starts the drain if so. */
static void check_exit(lc_browser *b) {
  if (b->state != ST_RUNNING) return;
  siginfo_t si;
  memset(&si, 0, sizeof si);
  int r;
  do r = waitid(P_PID, (id_t)b->pid, &si, WEXITED | WNOHANG | WNOWAIT);
  while (r < 0 && errno == EINTR);
  if (r == 0 && si.si_pid == b->pid) {
    record_siginfo(b, &si);
    begin_drain(b);
  } else if (r < 0 && errno == ECHILD) {
    /* Reaped elsewhere (waitpid(-1) or SIGCHLD ignored): status unknown, pid not ours. */
    b->lost = 1;
    warden_send(b, WARDEN_FORGET);
    b->exit_status = -1;
    b->term_signal = 0;
    begin_drain(b);
  }
}

/* One drain step: re-kill the survivors; once none is left (or the limit passed), reap. */
static void drain_tick(lc_browser *b) {
  int left = lc_proc_signal_by_cmdline(b->profile, SIGKILL);
  if (!b->lost) {
    int group = lc_proc_group_alive(b->pid);
    if (group > 0) kill(-b->pid, SIGKILL);
    left += group;
  }
  if (left > 0 && uv_now(b->loop) < b->drain_until_ms) {
    watch_in(b, DRAIN_TICK_MS);
    return;
  }
  if (!b->lost) {
    b->state = ST_REAPING; /* from here on the pid may be recycled: signal handlers keep off */
    warden_send(b, WARDEN_FORGET); /* and so does the warden */
    int status = 0;
    pid_t r;
    do r = waitpid(b->pid, &status, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0) { /* cannot happen after waitid said it exited; poll again rather than lose it */
      b->state = ST_DRAINING;
      watch_in(b, DRAIN_TICK_MS);
      return;
    }
    if (r == b->pid && WIFEXITED(status)) {
      b->exit_status = WEXITSTATUS(status);
      b->term_signal = 0;
    } else if (r == b->pid && WIFSIGNALED(status)) {
      b->exit_status = -1;
      b->term_signal = WTERMSIG(status);
    }
  }
  finish(b);
}

/* ---------------------------------------------------------------- libuv callbacks */

static void on_sigchld(uv_signal_t *h, int signum) {
  lc_browser *b = h->data;
  check_exit(b);
}

static void on_watch(uv_timer_t *h) {
  lc_browser *b = h->data;
  if (b->state == ST_DONE) {
    warden_tick(b);
    return;
  }
  if (b->state == ST_DRAINING) {
    drain_tick(b);
    return;
  }
  if (b->state != ST_RUNNING) return;
  check_exit(b);
  if (b->state != ST_RUNNING) return;
  if (b->kill_at_ms && uv_now(b->loop) >= b->kill_at_ms) {
    b->kill_at_ms = 0;
    kill_tree_now(b);
  }
  watch_in(b, WATCH_MS);
}

/* (Re)arms the watch timer for ms from now, or for terminate's deadline if that is sooner. */
static void watch_in(lc_browser *b, uint64_t ms) {
  uint64_t now = uv_now(b->loop);
  if (b->state == ST_RUNNING && b->kill_at_ms) {
    uint64_t until = b->kill_at_ms > now ? b->kill_at_ms - now : 0;
    if (until < ms) ms = until;
  }
  uv_timer_start(&b->watch, on_watch, ms, 0);
}

static void on_poll(uv_timer_t *h) {
  lc_browser *b = h->data;
  check_exit(b);
  if (b->state != ST_RUNNING || !b->ready_pending) {
    uv_timer_stop(&b->poll);
    return;
  }
  int probe = read_probe_reply(b);
  if (probe > 0) {
    uv_timer_stop(&b->poll);
    b->ready_pending = 0;
    if (b->ready) b->ready(b, 0, NULL, b->ud);
    return;
  }
  if (probe < 0 || elapsed_ms(b) >= (uint64_t)b->start_timeout_ms) {
    uv_timer_stop(&b->poll);
    log_drain(b);
    if (probe < 0) {
      char first[sizeof b->msg];
      snprintf(first, sizeof first, "%s", b->msg);
      set_msg(b, "%s", first);
    } else {
      set_msg(b, "chromium did not answer on the DevTools pipe within %d ms (%zu bytes of a reply)",
              b->start_timeout_ms, b->probe_len);
    }
    kill_tree_now(b);
    watch_in(b, 0);
    b->ready_pending = 0;
    if (b->ready) b->ready(b, probe < 0 ? -EPROTO : -ETIMEDOUT, b->msg, b->ud);
  }
}

static void on_close(uv_handle_t *h) {
  lc_browser *b = h->data;
  if (--b->closing > 0) return;
  registry_remove(b);
  warden_release(b, 0);  /* released and reaped already (close_handles waits for it): a no-op */
  lc_rmtree(b->profile); /* normally gone already: removed in finish() */
  if (b->cdp_fd >= 0) close(b->cdp_fd);
  free(b->ring);
  free(b);
}

/* Closes the handles once DONE and destroyed; first waits (warden_tick) for the warden to be
 * reaped, so that no zombie and no unwatched process outlives the browser. */
static void close_handles(lc_browser *b) {
  if (b->closing >= 0) return; /* already closing */
  if (!warden_reap(b)) {
    warden_tick(b); /* comes back here once reaped */
    return;
  }
  b->closing = 3 + b->log_open;
  uv_close((uv_handle_t *)&b->sigchld, on_close);
  uv_close((uv_handle_t *)&b->poll, on_close);
  uv_close((uv_handle_t *)&b->watch, on_close);
  if (b->log_open) uv_close((uv_handle_t *)&b->log_pipe, on_close);
}

/* ---------------------------------------------------------------- launch */

static const char *const base_flags[] = {
    "--headless", "--disable-gpu", "--disable-quic", "--no-first-run", "--no-default-browser-check",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-default-apps", "--disable-breakpad",
    "--disable-client-side-phishing-detection", "--disable-domain-reliability",
    /* Pages are all "hidden" in headless: keep their timers and renderers at full speed. */
    "--disable-background-timer-throttling", "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
    "--disable-features=Translate,MediaRouter,OptimizationHints", "--mute-audio",
    /* WebRTC UDP does not go through a context's proxy (the host rules' guard): none at all. */
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    "--hide-scrollbars", "--password-store=basic", "--use-mock-keychain",
    "--remote-debugging-pipe", /* CDP on fds 3 and 4: no port anyone could connect to */
};

/* A small /dev/shm (Docker's default is 64 MB) makes renderers crash: use /tmp then. */
static int dev_shm_is_small(void) {
  struct statvfs sv;
  if (statvfs("/dev/shm", &sv) != 0) return 1;
  return (unsigned long long)sv.f_bavail * sv.f_frsize < 512ull * 1024 * 1024;
}

static int has_suffix_name(const char *path, const char *word) {
  const char *base = strrchr(path, '/');
  return strstr(base ? base + 1 : path, word) != NULL;
}

static void free_strv(char **v) {
  if (!v) return;
  for (char **p = v; *p; p++) free(*p);
  free(v);
}

/* argv: the binary, our flags, --user-data-dir, extra args, about:blank. */
static char **build_argv(const char *bin, const lc_browser *b, const char *const *extra) {
  size_t nbase = sizeof base_flags / sizeof base_flags[0], nextra = 0;
  while (extra && extra[nextra]) nextra++;
  char **v = calloc(nbase + nextra + 6, sizeof *v);
  if (!v) return NULL;
  size_t k = 0;
  v[k++] = strdup(bin);
  for (size_t i = 0; i < nbase; i++) v[k++] = strdup(base_flags[i]);
  if (!b->sandbox) v[k++] = strdup("--no-sandbox"); /* the kernel refuses (one warning said so) */
  if (dev_shm_is_small()) v[k++] = strdup("--disable-dev-shm-usage");
  v[k++] = dup_printf("--user-data-dir=%s", b->profile);
  for (size_t i = 0; i < nextra; i++) v[k++] = strdup(extra[i]);
  v[k++] = strdup("about:blank");
  for (size_t i = 0; i < k; i++) {
    if (!v[i]) {
      free_strv(v);
      return NULL;
    }
  }
  return v;
}

static int env_overridden(const char *kv) {
  static const char *const keys[] = {"HOME=", "XDG_CONFIG_HOME=", "XDG_CACHE_HOME=", "TMPDIR="};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    if (strncmp(kv, keys[i], strlen(keys[i])) == 0) return 1;
  return 0;
}

/* envp: ours, with HOME, XDG_CONFIG_HOME, XDG_CACHE_HOME and TMPDIR inside the profile, so
 * nothing (crashpad's database, the NSS db in ~/.pki, fontconfig's cache, the ProcessSingleton
 * socket dir) is written outside it. TMPDIR only if the socket path stays under 108 bytes. */
static char **build_envp(const lc_browser *b) {
  size_t n = 0;
  while (environ[n]) n++;
  char **v = calloc(n + 5, sizeof *v);
  if (!v) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (env_overridden(environ[i])) continue;
    if (!(v[k++] = strdup(environ[i]))) goto fail;
  }
  if (!(v[k++] = dup_printf("HOME=%s", b->profile))) goto fail;
  if (!(v[k++] = dup_printf("XDG_CONFIG_HOME=%s/.config", b->profile))) goto fail;
  if (!(v[k++] = dup_printf("XDG_CACHE_HOME=%s/.cache", b->profile))) goto fail;
  /* "<tmp>/org.chromium.Chromium.XXXXXX/SingletonSocket" must fit a sockaddr_un (108). */
  if (strlen(b->profile) + strlen("/tmp/org.chromium.Chromium.XXXXXX/SingletonSocket") < 100)
    if (!(v[k++] = dup_printf("TMPDIR=%s/tmp", b->profile))) goto fail;
  return v;
fail:
  free_strv(v);
  return NULL;
}

/* Who the browser runs as: this process's user, or (as root) an unprivileged one. */
typedef struct run_as {
  int change; /* setgid/setuid in the child */
  uid_t uid;
  gid_t gid;
} run_as;

/* Writes a fixed message to fd 2 and exits 126. Signal-safe. */
static void child_die(const char *m) {
  ssize_t w = write(2, m, strlen(m));
  (void)w;
  _exit(126);
}

/* Drops root for good: no supplementary groups, then the group, then the user. Signal-safe. */
static void drop_to(const run_as *as) {
  if (!as->change) return;
  gid_t g = as->gid;
  if (setgroups(1, &g) != 0 || setgid(as->gid) != 0 || setuid(as->uid) != 0)
    child_die("luacrawl: cannot switch to the browser user (setgroups/setgid/setuid failed)\n");
  if (setuid(0) == 0) child_die("luacrawl: the browser user could get root back\n");
}

/* In the child, between fork and execve: only async-signal-safe calls. Never returns. */
static void child_exec(pid_t parent, const char *bin, char **argv, char **envp, int null_fd,
                       int log_fd, int cdp_fd, const run_as *as, const char *profile) {
  setpgid(0, 0);
  drop_to(as); /* before the death signal: a change of credentials clears it */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(127); /* the parent died before the death signal was armed */
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; sig++) sigaction(sig, &dfl, NULL); /* ignored ones stay so */
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  /* The CDP end goes out of the way first (it may be 0..4); fds >= 10 are closed below. */
  int cdp = fcntl(cdp_fd, F_DUPFD, 10);
  if (cdp < 0 || dup2(null_fd, 0) < 0 || dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0) _exit(127);
  if (dup2(cdp, 3) < 0 || dup2(cdp, 4) < 0) _exit(127); /* commands in on 3, replies out on 4 */
#ifdef SYS_close_range
  if (syscall(SYS_close_range, 5u, ~0u, 0u) != 0)
#endif
    for (int fd = 5; fd < 4096; fd++) close(fd);
  if (access(profile, R_OK | W_OK | X_OK) != 0)
    child_die(
        "luacrawl: the browser user cannot use its profile dir (is every parent dir "
        "searchable by it? set LUACRAWL_PROFILE_ROOT)\n");
  execve(bin, argv, envp);
  static const char m[] = "luacrawl: execve of the browser failed\n";
  ssize_t w = write(2, m, sizeof m - 1);
  (void)w;
  _exit(127);
}

/* ---------------------------------------------------------------- user and sandbox */

/* As root: the system user the browser runs as ($LUACRAWL_BROWSER_USER, default
 * LC_BROWSER_USER). Returns 0, or a negative errno with a message in err (of size n). */
static int find_run_as(run_as *as, char *err, size_t n) {
  memset(as, 0, sizeof *as);
  as->uid = geteuid();
  as->gid = getegid();
  if (as->uid != 0) return 0;
  const char *name = getenv("LUACRAWL_BROWSER_USER");
  if (!name || !*name) name = LC_BROWSER_USER;
  struct passwd pw, *found = NULL;
  char buf[4096];
  int r = getpwnam_r(name, &pw, buf, sizeof buf, &found);
  if (r != 0 || !found) {
    snprintf(err, n,
             "luacrawl runs as root, and the user '%s' that runs the browser does not exist "
             "(run tools/deps.sh as root to create it, or set LUACRAWL_BROWSER_USER)",
             name);
    return -ENOENT;
  }
  if (found->pw_uid == 0) {
    snprintf(err, n, "the browser user '%s' is root: the browser must not run as root", name);
    return -EPERM;
  }
  as->change = 1;
  as->uid = found->pw_uid;
  as->gid = found->pw_gid;
  return 0;
}

/* Can the browser's user make the namespaces Chromium's sandbox needs (a user namespace, and in
 * it a PID and a network namespace)? Probed once per process in a short-lived child, as that
 * user. Returns 1 or 0; *why says what was refused. */
static int sandbox_probe(const run_as *as, const char **why) {
  static int known = -1;
  static const char *known_why = "";
  if (known >= 0) {
    *why = known_why;
    return known;
  }
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid = fork();
  if (pid == 0) {
    drop_to(as);
    if (unshare(CLONE_NEWUSER) != 0) _exit(2);
    if (unshare(CLONE_NEWPID | CLONE_NEWNET) != 0) _exit(3);
    _exit(0);
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  int status = 0;
  pid_t r = -1;
  if (pid > 0) {
    do r = waitpid(pid, &status, 0);
    while (r < 0 && errno == EINTR);
  }
  if (r != pid || !WIFEXITED(status)) {
    known_why = "the sandbox probe could not run";
    known = 0;
  } else if (WEXITSTATUS(status) == 0) {
    known = 1;
  } else {
    known_why = WEXITSTATUS(status) == 2   ? "no unprivileged user namespaces"
                : WEXITSTATUS(status) == 3 ? "no PID or network namespace inside a user namespace"
                                           : "cannot switch to the browser user";
    known = 0;
  }
  if (!known) {
    /* Once per process: one line. */
    lc_warn("the kernel refuses Chromium's sandbox (%s); running the browser with --no-sandbox",
            known_why);
  }
  *why = known_why;
  return known;
}

static int launch_fail(char **err, int code, const char *fmt, ...) {
  if (err) {
    va_list ap;
    char buf[PATH_MAX + 256];
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    *err = strdup(buf);
  }
  return code;
}

int lc_browser_launch(uv_loop_t *loop, const lc_browser_opts *o, lc_browser_ready_fn ready,
                      lc_browser_exit_fn on_exit, void *ud, lc_browser **out, char **err) {
  if (err) *err = NULL;
  if (out) *out = NULL;
  if (!loop || !o || !out) return launch_fail(err, -EINVAL, "lc_browser_launch: bad arguments");

  char bin[PATH_MAX];
  const char *why = NULL;
  int r = lc_browser_find(o->path, bin, sizeof bin, &why);
  if (r < 0) return launch_fail(err, r, "%s%s%s", why, o->path ? ": " : "", o->path ? o->path : "");

  run_as as;
  char aserr[512];
  r = find_run_as(&as, aserr, sizeof aserr);
  if (r < 0) return launch_fail(err, r, "%s", aserr);
  const char *sandbox_why = NULL;
  int sandbox = sandbox_probe(&as, &sandbox_why);

  const char *root = o->profile_root;
  if (!root || !*root) root = getenv("LUACRAWL_PROFILE_ROOT");
  if (!root || !*root) root = getenv("TMPDIR");
  if (!root || !*root) root = "/tmp";

  lc_browser *b = calloc(1, sizeof *b);
  if (!b) return launch_fail(err, -ENOMEM, "out of memory");
  b->loop = loop;
  b->ready = ready;
  b->on_exit = on_exit;
  b->ud = ud;
  b->closing = -1;
  b->cdp_fd = -1;
  b->sandbox = sandbox;
  b->uid = as.uid;
  atomic_init(&b->warden_fd, -1);
  b->ready_pending = 1;
  b->exit_status = -1;
  b->start_timeout_ms = o->start_timeout_ms > 0 ? o->start_timeout_ms : DEFAULT_START_MS;
  b->shell = o->headless_shell >= 0
                 ? o->headless_shell != 0
                 : has_suffix_name(bin, "headless-shell") || has_suffix_name(bin, "headless_shell");
  if ((size_t)snprintf(b->profile, sizeof b->profile, "%s/luacrawl-XXXXXX", root) >=
      sizeof b->profile - 64) {
    free(b);
    return launch_fail(err, -ENAMETOOLONG, "profile root too long: %s", root);
  }
  if (registry_add(b) < 0) {
    free(b);
    return launch_fail(err, -EMFILE, "too many browsers (limit %d)", REGISTRY_MAX);
  }
  if (!mkdtemp(b->profile)) {
    r = -errno;
    registry_remove(b);
    free(b);
    return launch_fail(err, r, "cannot create a profile dir under %s: %s", root, strerror(-r));
  }
  char tmpdir[PATH_MAX + 8];
  snprintf(tmpdir, sizeof tmpdir, "%s/tmp", b->profile);
  mkdir(tmpdir, 0700);

  char **argv = build_argv(bin, b, o->extra_args);
  char **envp = build_envp(b);
  int null_fd = -1;
  int logp[2] = {-1, -1}; /* Chromium's stdout+stderr: [0] the engine reads, [1] the child's */
  int cdp[2] = {-1, -1};  /* CDP: [0] the engine's end, [1] the child's fds 3 and 4 */
  int sv[2] = {-1, -1};   /* sv[0]: the engine's end, sv[1]: the warden's */
  const char *failed = NULL;
  r = 0;
  b->ring = malloc(LOG_RING);
  if (!argv || !envp || !b->ring) {
    failed = "out of memory";
    r = -ENOMEM;
  } else if (as.change &&
             (chown(b->profile, as.uid, as.gid) != 0 || chown(tmpdir, as.uid, as.gid) != 0)) {
    failed = "chown of the profile dir to the browser user";
    r = -errno;
  } else if ((null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
    failed = "/dev/null";
    r = -errno;
  } else if (pipe2(logp, O_CLOEXEC) != 0) {
    failed = "pipe";
    r = -errno;
  } else if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, cdp) != 0 ||
             send(cdp[0], probe_cmd, sizeof probe_cmd, MSG_NOSIGNAL | MSG_DONTWAIT) !=
                 (ssize_t)sizeof probe_cmd) { /* sizeof: the NUL goes too */
    failed = "the DevTools socketpair";
    r = -errno;
  } else if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    failed = "socketpair";
    r = -errno;
  } else if ((r = uv_signal_init(loop, &b->sigchld)) < 0) {
    failed = "uv_signal_init";
  } else if ((r = uv_pipe_init(loop, &b->log_pipe, 0)) < 0) {
    uv_close((uv_handle_t *)&b->sigchld, NULL); /* closed before the loop runs again */
    failed = "uv_pipe_init";
  }
  if (failed) {
    if (null_fd >= 0) close(null_fd);
    for (int i = 0; i < 2; i++) {
      if (logp[i] >= 0) close(logp[i]);
      if (cdp[i] >= 0) close(cdp[i]);
      if (sv[i] >= 0) close(sv[i]);
    }
    free_strv(argv);
    free_strv(envp);
    lc_rmtree(b->profile);
    registry_remove(b);
    free(b->ring);
    free(b);
    return launch_fail(err, r, "cannot launch the browser: %s: %s", failed, strerror(-r));
  }
  uv_timer_init(loop, &b->poll);
  uv_timer_init(loop, &b->watch);
  b->sigchld.data = b->poll.data = b->watch.data = b->log_pipe.data = b;
  b->log_open = 1;
  uv_signal_start(&b->sigchld, on_sigchld, SIGCHLD);
  if (uv_pipe_open(&b->log_pipe, logp[0]) == 0) {
    logp[0] = -1; /* the handle owns it */
    uv_read_start((uv_stream_t *)&b->log_pipe, log_alloc, log_read);
  }
  b->cdp_fd = cdp[0];

  /* Block every signal across the forks, so no handler (libuv's writes to a pipe the parent
   * reads) runs in a child before it resets them, and no emergency exit in this process runs
   * between the fork and the warden learning the pid. The warden comes first: from the moment
   * Chromium exists, something outlives us to clean up after it. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t parent = getpid();
  pid_t warden = fork();
  if (warden == 0) warden_main(sv[1], b->profile);
  int fork_errno = errno;
  close(sv[1]);
  pid_t pid = -1;
  if (warden > 0) {
    b->warden_pid = warden;
    atomic_store(&b->warden_fd, sv[0]);
    b->start_ns = uv_hrtime();
    pid = fork();
    if (pid == 0) child_exec(parent, bin, argv, envp, null_fd, logp[1], cdp[1], &as, b->profile);
    fork_errno = errno;
  } else {
    close(sv[0]);
  }
  if (pid > 0) {
    setpgid(pid, pid); /* also from this side: no window where a group kill would miss it */
    b->pid = pid;
    warden_send(b, (int)pid);
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  close(null_fd);
  close(logp[1]); /* the child's copies: EOF once the whole tree is gone */
  if (logp[0] >= 0) close(logp[0]);
  close(cdp[1]);
  free_strv(argv);
  free_strv(envp);
  if (pid < 0) {
    b->destroyed = 1;
    b->state = ST_DONE;
    lc_rmtree(b->profile);
    warden_release(b, 1);
    close_handles(b); /* reaps the warden, then frees b on the loop's run */
    return launch_fail(err, -fork_errno, "fork%s: %s", warden > 0 ? "" : " (warden)",
                       strerror(fork_errno));
  }
  uv_update_time(loop);
  uv_timer_start(&b->poll, on_poll, POLL_MS, POLL_MS);
  watch_in(b, WATCH_MS);
  *out = b;
  return 0;
}

/* ---------------------------------------------------------------- accessors and control */

int lc_browser_take_cdp_fd(lc_browser *b) {
  if (!b || b->ready_pending || b->state != ST_RUNNING || b->cdp_fd < 0) return -1;
  int fd = b->cdp_fd;
  b->cdp_fd = -1;
  return fd;
}

int lc_browser_sandboxed(const lc_browser *b) { return b ? b->sandbox : 0; }

uid_t lc_browser_uid(const lc_browser *b) { return b ? b->uid : (uid_t)-1; }

size_t lc_browser_log_tail(lc_browser *b, char *out, size_t n) {
  if (!b || !out || n == 0) return 0;
  log_drain(b);
  out[0] = '\0';
  append_log_tail(b, out, n);
  return strlen(out);
}

uint64_t lc_browser_log_bytes(const lc_browser *b) { return b ? b->log_bytes : 0; }

size_t lc_browser_log_kept(const lc_browser *b) {
  if (!b) return 0;
  return b->log_bytes < LOG_RING ? (size_t)b->log_bytes : LOG_RING;
}

pid_t lc_browser_pid(const lc_browser *b) { return b ? b->pid : 0; }

pid_t lc_browser_warden_pid(const lc_browser *b) { return b ? b->warden_pid : 0; }

const char *lc_browser_profile_dir(const lc_browser *b) { return b ? b->profile : NULL; }

int lc_browser_is_headless_shell(const lc_browser *b) { return b ? b->shell : 0; }

int lc_browser_alive(const lc_browser *b) {
  if (!b || b->state != ST_RUNNING || b->pid <= 0) return 0;
  siginfo_t si;
  memset(&si, 0, sizeof si);
  if (waitid(P_PID, (id_t)b->pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0) return 0;
  return si.si_pid != b->pid;
}

long lc_browser_rss_kb(const lc_browser *b) {
  return b && pid_is_ours(b) ? lc_proc_tree_rss_kb(b->pid) : 0;
}

int lc_browser_mem(const lc_browser *b, int want_pss, lc_proc_mem *out) {
  if (b && pid_is_ours(b)) return lc_proc_tree_mem(b->pid, want_pss, out);
  memset(out, 0, sizeof *out);
  return 0;
}

double lc_browser_cpu_seconds(const lc_browser *b) {
  return b && pid_is_ours(b) ? lc_proc_cpu_seconds(b->pid) : 0.0;
}

void lc_browser_terminate(lc_browser *b, int grace_ms) {
  if (!b || b->state != ST_RUNNING) return;
  /* The main process only: it shuts its helpers down itself. A SIGTERM to the whole group
   * kills the helpers under it and made the full build crash on the way out (SIGILL, ~3% of
   * runs). The group is SIGKILLed after grace_ms if anything is left. */
  kill(b->pid, SIGTERM);
  uv_update_time(b->loop);
  b->kill_at_ms = uv_now(b->loop) + (uint64_t)(grace_ms > 0 ? grace_ms : 0);
  watch_in(b, WATCH_MS);
}

void lc_browser_kill(lc_browser *b) {
  if (!b || b->state != ST_RUNNING) return;
  kill_tree_now(b);
  watch_in(b, DRAIN_TICK_MS);
}

void lc_browser_destroy(lc_browser *b) {
  if (!b) return;
  if (b->destroyed) {
    fprintf(stderr, "lc_browser_destroy: called twice for %p\n", (void *)b);
    abort();
  }
  b->destroyed = 1;
  b->ready_pending = 0;
  if (b->state == ST_DONE) {
    close_handles(b);
    return;
  }
  uv_timer_stop(&b->poll);
  if (b->state == ST_RUNNING) {
    kill_tree_now(b);
    watch_in(b, DRAIN_TICK_MS);
  }
  /* DRAINING: the drain is under way; finish() closes the handles. */
}
