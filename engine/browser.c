/* browser.c: one Chromium process (group) on a libuv loop the caller owns.
 *
 * States: RUNNING (forked, not seen exiting) -> DRAINING (the main process is a zombie, not yet
 * reaped; the rest of the group and the crashpad helpers are being SIGKILLed until none is left)
 * -> REAPING (waitpid in progress; a signal handler must not touch the pid) -> DONE (reaped,
 * profile dir removed, callbacks fired). Handles are closed once DONE and destroyed, and the
 * memory is freed in the last close callback.
 *
 * Three handles: `sigchld` (uv_signal on SIGCHLD: the fast exit path), `poll` (every 20 ms during
 * start-up: DevToolsActivePort, the start deadline, early exits), `watch` (fallback exit poll,
 * the terminate grace deadline, the 10 ms ticks of the drain, and once DONE the 10 ms ticks
 * that reap the warden).
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

#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
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
  char ws_url[128];
  char profile[PATH_MAX];
  char port_file[PATH_MAX + 32];
  char log_file[PATH_MAX + 32];
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

/* Appends the last LOG_TAIL_LINES interesting lines of the Chromium log to out (of size n). */
static void append_log_tail(const lc_browser *b, char *out, size_t n) {
  char buf[8192];
  size_t used = strlen(out);
  int fd = open(b->log_file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  off_t size = lseek(fd, 0, SEEK_END);
  off_t from = size > (off_t)sizeof buf - 1 ? size - (off_t)sizeof buf + 1 : 0;
  ssize_t len = pread(fd, buf, sizeof buf - 1, from);
  close(fd);
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
    if (s == 0 && from > 0) break; /* a cut first line */
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
  snprintf(out + used, n - used, "\nchromium log (%s), last lines:", b->log_file);
  for (int i = kept - 1; i >= 0; i--) {
    used = strlen(out);
    if (used + 1 >= n) break;
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

/* ---------------------------------------------------------------- DevToolsActivePort */

static int is_uuid(const char *s, size_t len) {
  if (len != 36) return 0;
  for (size_t i = 0; i < 36; i++) {
    char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return 0;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return 0;
    }
  }
  return 1;
}

/* Reads DevToolsActivePort; fills b->ws_url and returns 1 only when both lines are complete:
 * "PORT\n/devtools/browser/<uuid>", with no trailing newline, so completeness is the uuid's
 * full 36 characters (Chromium writes the file in place, so a read can see part of it). */
static int read_port_file(lc_browser *b) {
  char buf[256];
  int fd = open(b->port_file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t len = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (len <= 0) return 0;
  buf[len] = '\0';
  char *nl = strchr(buf, '\n');
  if (!nl || nl == buf) return 0;
  long port = 0;
  for (const char *p = buf; p < nl; p++) {
    if (*p < '0' || *p > '9' || port > 65535) return 0;
    port = port * 10 + (*p - '0');
  }
  if (port < 1 || port > 65535) return 0;
  const char *path = nl + 1;
  size_t plen = strcspn(path, "\r\n");
  static const char prefix[] = "/devtools/browser/";
  if (plen < sizeof prefix - 1 || memcmp(path, prefix, sizeof prefix - 1) != 0) return 0;
  if (!is_uuid(path + sizeof prefix - 1, plen - (sizeof prefix - 1))) return 0;
  snprintf(b->ws_url, sizeof b->ws_url, "ws://127.0.0.1:%ld%.*s", port, (int)plen, path);
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
  if (read_port_file(b)) {
    uv_timer_stop(&b->poll);
    b->ready_pending = 0;
    if (b->ready) b->ready(b, 0, NULL, b->ud);
    return;
  }
  if (elapsed_ms(b) >= (uint64_t)b->start_timeout_ms) {
    uv_timer_stop(&b->poll);
    set_msg(b, "chromium did not write a complete DevToolsActivePort within %d ms",
            b->start_timeout_ms);
    kill_tree_now(b);
    watch_in(b, 0);
    b->ready_pending = 0;
    if (b->ready) b->ready(b, -ETIMEDOUT, b->msg, b->ud);
  }
}

static void on_close(uv_handle_t *h) {
  lc_browser *b = h->data;
  if (--b->closing > 0) return;
  registry_remove(b);
  warden_release(b, 0);  /* released and reaped already (close_handles waits for it): a no-op */
  lc_rmtree(b->profile); /* normally gone already: removed in finish() */
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
  b->closing = 3;
  uv_close((uv_handle_t *)&b->sigchld, on_close);
  uv_close((uv_handle_t *)&b->poll, on_close);
  uv_close((uv_handle_t *)&b->watch, on_close);
}

/* ---------------------------------------------------------------- launch */

static const char *const base_flags[] = {
    "--headless",
    "--no-sandbox", /* we run as root in containers; the sandbox needs user namespaces */
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-breakpad",
    "--disable-client-side-phishing-detection",
    "--disable-domain-reliability",
    /* Pages are all "hidden" in headless: keep their timers and renderers at full speed. */
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
    "--disable-features=Translate,MediaRouter,OptimizationHints",
    "--mute-audio",
    "--hide-scrollbars",
    "--password-store=basic",
    "--use-mock-keychain",
    "--remote-debugging-port=0",
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
  char **v = calloc(nbase + nextra + 5, sizeof *v);
  if (!v) return NULL;
  size_t k = 0;
  v[k++] = strdup(bin);
  for (size_t i = 0; i < nbase; i++) v[k++] = strdup(base_flags[i]);
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

/* In the child, between fork and execve: only async-signal-safe calls. Never returns. */
static void child_exec(pid_t parent, const char *bin, char **argv, char **envp, int null_fd,
                       int log_fd) {
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(127); /* the parent died before the death signal was armed */
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; sig++) sigaction(sig, &dfl, NULL); /* ignored ones stay so */
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  if (dup2(null_fd, 0) < 0 || dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0) _exit(127);
#ifdef SYS_close_range
  if (syscall(SYS_close_range, 3u, ~0u, 0u) != 0)
#endif
    for (int fd = 3; fd < 4096; fd++) close(fd);
  execve(bin, argv, envp);
  static const char m[] = "luacrawl: execve of the browser failed\n";
  ssize_t w = write(2, m, sizeof m - 1);
  (void)w;
  _exit(127);
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
  snprintf(b->port_file, sizeof b->port_file, "%s/DevToolsActivePort", b->profile);
  snprintf(b->log_file, sizeof b->log_file, "%s/chromium.log", b->profile);
  char tmpdir[PATH_MAX + 8];
  snprintf(tmpdir, sizeof tmpdir, "%s/tmp", b->profile);
  mkdir(tmpdir, 0700);

  char **argv = build_argv(bin, b, o->extra_args);
  char **envp = build_envp(b);
  int null_fd = -1, log_fd = -1;
  int sv[2] = {-1, -1}; /* sv[0]: the engine's end, sv[1]: the warden's */
  const char *failed = NULL;
  r = 0;
  if (!argv || !envp) {
    failed = "out of memory";
    r = -ENOMEM;
  } else if ((null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
    failed = "/dev/null";
    r = -errno;
  } else if ((log_fd = open(b->log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0) {
    failed = b->log_file;
    r = -errno;
  } else if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    failed = "socketpair";
    r = -errno;
  } else if ((r = uv_signal_init(loop, &b->sigchld)) < 0) {
    failed = "uv_signal_init";
  }
  if (failed) {
    if (null_fd >= 0) close(null_fd);
    if (log_fd >= 0) close(log_fd);
    if (sv[0] >= 0) close(sv[0]);
    if (sv[1] >= 0) close(sv[1]);
    free_strv(argv);
    free_strv(envp);
    lc_rmtree(b->profile);
    registry_remove(b);
    free(b);
    return launch_fail(err, r, "cannot launch the browser: %s: %s", failed, strerror(-r));
  }
  uv_timer_init(loop, &b->poll);
  uv_timer_init(loop, &b->watch);
  b->sigchld.data = b->poll.data = b->watch.data = b;
  uv_signal_start(&b->sigchld, on_sigchld, SIGCHLD);

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
    if (pid == 0) child_exec(parent, bin, argv, envp, null_fd, log_fd);
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
  close(log_fd);
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

const char *lc_browser_ws_url(const lc_browser *b) { return b && b->ws_url[0] ? b->ws_url : NULL; }

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
