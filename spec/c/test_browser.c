/* test_browser.c: proc helpers and the browser process owner, against real Chromium.
 * Every test makes its own profile root and its own loop, and ends by proving it left nothing
 * behind: no process naming the root, no profile dir, and uv_loop_close() == 0. */
#include "browser.h"
#include "proc.h"
#include "test.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SHELL_BIN "/usr/lib/chromium/chromium-headless-shell"
#define FULL_BIN "/usr/lib/chromium/chromium"

/* ---------------------------------------------------------------- helpers */

typedef struct cb_state {
  int ready_calls, ready_err;
  char ready_msg[4096];
  int cdp_fd; /* taken in on_ready; closed by the test */
  uint64_t ready_ms;
  int exit_calls, exit_status, term_signal;
  int exit_group_alive, exit_mentions, exit_dir_exists; /* as seen inside on_exit */
  const char *root;
  int destroy_in_exit;
  uint64_t t0;
} cb_state;

static uint64_t now_ms(void) { return uv_hrtime() / 1000000; }

static int dir_exists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Processes whose arguments name something under root. */
static int mentions(const char *root) { return lc_proc_signal_by_cmdline(root, 0); }

/* Whether one of pid's command-line arguments contains `path`. */
static int cmdline_mentions(int pid, const char *path) {
  char fn[64], buf[8192] = {0};
  snprintf(fn, sizeof fn, "/proc/%d/cmdline", pid);
  FILE *f = fopen(fn, "r");
  if (!f) return 0;
  size_t len = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  for (size_t i = 0; i < len; i += strlen(buf + i) + 1)
    if (strstr(buf + i, path)) return 1;
  return 0;
}

/* Processes outside group pgid whose command line mentions path (crashpad helpers). */
static int outside_group(const char *path, pid_t pgid) {
  DIR *d = opendir("/proc");
  int n = 0;
  struct dirent *e;
  while (d && (e = readdir(d))) {
    int pid = atoi(e->d_name);
    if (pid <= 0 || pid == getpid()) continue;
    int hit = cmdline_mentions(pid, path);
    if (hit && getpgid(pid) != pgid) n++;
  }
  if (d) closedir(d);
  return n;
}

/* Number of luacrawl-* entries left in root. */
static int profiles_left(const char *root) {
  DIR *d = opendir(root);
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strncmp(e->d_name, "luacrawl-", 9) == 0) n++;
  closedir(d);
  return n;
}

static void make_root(char *out, size_t n) {
  snprintf(out, n, "/tmp/lc-test-XXXXXX");
  if (!mkdtemp(out)) {
    perror("mkdtemp");
    exit(2);
  }
  chmod(out, 0711); /* as root, the browser's own user must get through to its profile dir */
}

/* The end of every test: nothing of ours runs, no profile remains, and this process has no
 * child left, running or zombie (wardens included); then the root goes. */
static void assert_clean(const char *root) {
  CHECK_INT(mentions(root), 0);
  CHECK_INT(profiles_left(root), 0);
  errno = 0;
  CHECK_INT(waitpid(-1, NULL, WNOHANG), -1);
  CHECK_INT(errno, ECHILD);
  CHECK_INT(lc_rmtree(root), 0);
}

static int under_valgrind(void) {
  const char *preload = getenv("LD_PRELOAD");
  return preload && strstr(preload, "vgpreload") != NULL;
}

/* The state letter of pid ('\0' if gone) and its comm. */
static char proc_state(pid_t pid, char *comm, size_t n) {
  char fn[64], buf[512] = {0};
  snprintf(fn, sizeof fn, "/proc/%d/stat", (int)pid);
  if (comm && n) comm[0] = '\0';
  FILE *f = fopen(fn, "r");
  if (!f) return '\0';
  size_t len = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  char *open = strchr(buf, '('), *close = strrchr(buf, ')');
  if (!len || !open || !close || close[1] != ' ') return '\0';
  if (comm && n) snprintf(comm, n, "%.*s", (int)(close - open - 1), open + 1);
  return close[2];
}

/* A live warden: named, in its own session, its command line only its name. */
static void check_warden_running(pid_t w) {
  char comm[64];
  char st = proc_state(w, comm, sizeof comm);
  CHECK(st != '\0' && st != 'Z' && st != 'X');
  CHECK_STR(comm, "luacrawl-warden");
  CHECK_INT(getsid(w), w);
  CHECK_INT(getpgid(w), w);
  char fn[64], buf[4096];
  snprintf(fn, sizeof fn, "/proc/%d/cmdline", (int)w);
  FILE *f = fopen(fn, "r");
  size_t len = f ? fread(buf, 1, sizeof buf, f) : 0;
  if (f) fclose(f);
  CHECK(len > 0);
  if (under_valgrind()) return; /* the command line is valgrind's own, naming no root */
  CHECK(len >= 16 && memcmp(buf, "luacrawl-warden", 16) == 0);
  for (size_t i = 16; i < len; i++) CHECK(buf[i] == '\0');
}

/* Waits up to ms for w to be gone, a zombie, or (pid reused) no longer the warden. */
static int warden_exited_within(pid_t w, int ms) {
  uint64_t end = now_ms() + (uint64_t)ms;
  for (;;) {
    char comm[64];
    char st = proc_state(w, comm, sizeof comm);
    if (st == '\0' || st == 'Z' || st == 'X' || strcmp(comm, "luacrawl-warden") != 0) return 1;
    if (now_ms() >= end) return 0;
    struct timespec ts = {0, 10 * 1000000L};
    nanosleep(&ts, NULL);
  }
}

/* w was our child and has been reaped (by the browser module: nobody else here reaps). */
static void check_warden_reaped(pid_t w) {
  errno = 0;
  CHECK_INT(waitpid(w, NULL, WNOHANG), -1);
  CHECK_INT(errno, ECHILD);
  CHECK(warden_exited_within(w, 0));
}

static void on_ready(lc_browser *b, int err, const char *msg, void *ud) {
  cb_state *s = ud;
  s->ready_calls++;
  s->ready_err = err;
  s->ready_ms = now_ms() - s->t0;
  snprintf(s->ready_msg, sizeof s->ready_msg, "%s", msg ? msg : "");
  if (err == 0) s->cdp_fd = lc_browser_take_cdp_fd(b);
}

static void on_exit_cb(lc_browser *b, int exit_status, int term_signal, void *ud) {
  cb_state *s = ud;
  s->exit_calls++;
  s->exit_status = exit_status;
  s->term_signal = term_signal;
  s->exit_group_alive = lc_proc_group_alive(lc_browser_pid(b));
  s->exit_mentions = mentions(s->root);
  s->exit_dir_exists = dir_exists(lc_browser_profile_dir(b));
  if (s->cdp_fd >= 0) close(s->cdp_fd); /* the test's end of the pipe goes with the browser */
  s->cdp_fd = -1;
  if (s->destroy_in_exit) lc_browser_destroy(b);
}

/* Runs the loop until *flag is set, the loop has nothing left, or timeout_ms passes. */
static void run_until(uv_loop_t *loop, const int *flag, int timeout_ms) {
  uint64_t end = now_ms() + (uint64_t)timeout_ms;
  while (!*flag && now_ms() < end)
    if (uv_run(loop, UV_RUN_ONCE) == 0 && !*flag) break;
}

/* Runs the loop dry (the browser's close callbacks) and checks that it closes. */
static void close_loop(uv_loop_t *loop) {
  uv_run(loop, UV_RUN_DEFAULT);
  CHECK_INT(uv_loop_close(loop), 0);
}

static int launch(uv_loop_t *loop, const char *path, const char *root, int timeout_ms, cb_state *s,
                  lc_browser **b) {
  memset(s, 0, sizeof *s);
  s->cdp_fd = -1;
  s->root = root;
  s->t0 = now_ms();
  lc_browser_opts o = {path, root, -1, timeout_ms, NULL};
  char *err = NULL;
  int r = lc_browser_launch(loop, &o, on_ready, on_exit_cb, s, b, &err);
  if (r < 0) fprintf(stderr, "  launch failed: %s\n", err ? err : "?");
  free(err);
  return r;
}

/* Sends one CDP command on the pipe and reads the reply (up to its NUL) into out. */
static int pipe_roundtrip(int fd, const char *cmd, char *out, size_t n) {
  size_t len = strlen(cmd) + 1; /* with its NUL */
  if (send(fd, cmd, len, MSG_NOSIGNAL) != (ssize_t)len) return -1;
  size_t got = 0;
  uint64_t end = now_ms() + 10000;
  while (got + 1 < n && now_ms() < end) {
    ssize_t r = recv(fd, out + got, 1, 0); /* byte by byte: stop exactly at the NUL */
    if (r <= 0) return -1;
    if (out[got] == '\0') return 0;
    got++;
  }
  return -1;
}

/* Socket inodes of every fd of the processes naming root (the browser tree). */
static int tree_socket_inodes(const char *root, unsigned long *out, int max) {
  int n = 0;
  DIR *d = opendir("/proc");
  struct dirent *e;
  while (d && (e = readdir(d))) {
    int pid = atoi(e->d_name);
    if (pid <= 0 || pid == getpid()) continue;
    if (!cmdline_mentions(pid, root)) continue;
    char fn[64];
    snprintf(fn, sizeof fn, "/proc/%d/fd", pid);
    DIR *fds = opendir(fn);
    struct dirent *fe;
    while (fds && (fe = readdir(fds))) {
      char link[320], target[128];
      snprintf(link, sizeof link, "/proc/%d/fd/%s", pid, fe->d_name);
      ssize_t t = readlink(link, target, sizeof target - 1);
      if (t <= 0) continue;
      target[t] = 0;
      unsigned long ino;
      if (sscanf(target, "socket:[%lu]", &ino) == 1 && n < max) out[n++] = ino;
    }
    if (fds) closedir(fds);
  }
  if (d) closedir(d);
  return n;
}

/* TCP sockets in LISTEN state (st 0A) owned by the processes naming root. */
static int tree_tcp_listeners(const char *root) {
  unsigned long inodes[4096];
  int ni = tree_socket_inodes(root, inodes, 4096), found = 0;
  static const char *const tables[] = {"/proc/net/tcp", "/proc/net/tcp6"};
  for (int t = 0; t < 2; t++) {
    FILE *f = fopen(tables[t], "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
      char st[8];
      unsigned long ino;
      if (sscanf(line, " %*s %*s %*s %7s %*s %*s %*s %*s %*s %lu", st, &ino) != 2) continue;
      if (strcmp(st, "0A") != 0) continue;
      for (int i = 0; i < ni; i++) found += inodes[i] == ino;
    }
    if (f) fclose(f);
  }
  return found;
}

/* The real uid of pid (from /proc/PID/status), or -1. */
static long proc_uid(pid_t pid) {
  char fn[64], line[256];
  snprintf(fn, sizeof fn, "/proc/%d/status", (int)pid);
  FILE *f = fopen(fn, "r");
  long uid = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "Uid: %ld", &uid) == 1) break;
  if (f) fclose(f);
  return uid;
}

/* 1 if pid's command line has the argument arg. */
static int cmdline_has(pid_t pid, const char *arg) {
  char fn[64], buf[16384] = {0};
  snprintf(fn, sizeof fn, "/proc/%d/cmdline", (int)pid);
  FILE *f = fopen(fn, "r");
  if (!f) return 0;
  size_t len = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  for (size_t i = 0; i < len; i += strlen(buf + i) + 1)
    if (strcmp(buf + i, arg) == 0) return 1;
  return 0;
}

/* Writes an executable shell script root/name. */
static void write_script(const char *root, const char *name, const char *body, char *path,
                         size_t n) {
  snprintf(path, n, "%s/%s", root, name);
  FILE *f = fopen(path, "w");
  fprintf(f, "#!/bin/sh\n%s", body);
  fclose(f);
  chmod(path, 0755);
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* ---------------------------------------------------------------- proc */

TEST(test_proc_self) {
  long rss = lc_proc_self_rss_kb(), peak = lc_proc_self_peak_rss_kb();
  CHECK(rss > 0);
  CHECK(peak >= rss);
  CHECK(lc_proc_tree_rss_kb(getpid()) > 0);
  CHECK(lc_proc_cpu_seconds(getpid()) >= 0.0);
  CHECK(lc_proc_group_alive(getpgrp()) >= 1);
  CHECK_INT(lc_proc_tree_rss_kb(0), 0);
}

TEST(test_proc_group_tree) {
  /* A group leader with a child that burns 50 ms of CPU, then both wait. Measured, not
   * counted in loop turns: on a fast machine 30 million turns took 7 ms, under one clock tick
   * (10 ms), and the tree's CPU read 0. */
  pid_t leader = fork();
  if (leader == 0) {
    setpgid(0, 0);
    if (fork() == 0) {
      struct timespec used = {0, 0};
      while (used.tv_sec == 0 && used.tv_nsec < 50000000) {
        for (volatile long i = 0; i < 100000; i++) {
        }
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &used);
      }
      pause();
      _exit(0);
    }
    pause();
    _exit(0);
  }
  setpgid(leader, leader);
  for (int i = 0; i < 200 && lc_proc_group_alive(leader) < 2; i++) sleep_ms(5);
  CHECK_INT(lc_proc_group_alive(leader), 2);
  CHECK(lc_proc_tree_rss_kb(leader) > 0);
  /* The child's CPU shows once it has run for a clock tick: on a loaded machine that may take
   * a while. */
  for (int i = 0; i < 500 && lc_proc_cpu_seconds(leader) <= 0.0; i++) sleep_ms(10);
  CHECK(lc_proc_cpu_seconds(leader) > 0.0);
  kill(-leader, SIGKILL);
  int st = 0;
  CHECK_INT(waitpid(leader, &st, 0), leader);
  for (int i = 0; i < 200 && lc_proc_group_alive(leader) > 0; i++) sleep_ms(5);
  CHECK_INT(lc_proc_group_alive(leader), 0);
  CHECK_INT(lc_proc_tree_rss_kb(leader), 0);
}

/* Members found only through their parent links (they left the group), several levels down;
 * and PSS, which counts shared pages once, is positive and at most the summed RSS. */
TEST(test_proc_tree_mem_and_pss) {
  int fds[2];
  CHECK_INT(pipe(fds), 0);
  pid_t leader = fork();
  if (leader == 0) {
    setpgid(0, 0);
    for (int level = 0; level < 3; level++) {
      if (fork() != 0) break;        /* each level forks the next and stays */
      if (level == 0) setpgid(0, 0); /* out of the leader's group: reachable by ppid only */
    }
    pid_t me = getpid();
    if (write(fds[1], &me, sizeof me) != (ssize_t)sizeof me) _exit(1);
    pause();
    _exit(0);
  }
  setpgid(leader, leader);
  pid_t pids[4];
  for (int i = 0; i < 4; i++) CHECK_INT(read(fds[0], &pids[i], sizeof pids[i]), sizeof pids[i]);
  close(fds[0]);
  close(fds[1]);
  lc_proc_mem m;
  CHECK_INT(lc_proc_tree_mem(leader, 1, &m), 4);
  CHECK_INT(m.procs, 4);
  CHECK(m.rss_kb > 0);
  CHECK(m.pss_kb > 0);
  CHECK(m.pss_kb <= m.rss_kb);
  CHECK(lc_proc_pss_kb(getpid()) > 0);
  CHECK_INT(lc_proc_tree_mem(leader, 0, &m), 4);
  CHECK_INT(m.pss_kb, 0); /* not asked for */
  for (int i = 0; i < 4; i++) kill(pids[i], SIGKILL);
  int st = 0;
  CHECK_INT(waitpid(leader, &st, 0), leader);
  CHECK_INT(lc_proc_tree_mem(leader, 0, &m), 0);
}

static void rmtree_case(int (*rm)(const char *)) {
  char root[64], p[256];
  make_root(root, sizeof root);
  snprintf(p, sizeof p, "%s/keep", root); /* outside the tree: must survive */
  mkdir(p, 0700);
  snprintf(p, sizeof p, "%s/keep/file", root);
  fclose(fopen(p, "w"));
  snprintf(p, sizeof p, "%s/t/a/b/c", root);
  char q[256];
  snprintf(q, sizeof q, "%s/t", root);
  mkdir(q, 0700);
  snprintf(q, sizeof q, "%s/t/a", root);
  mkdir(q, 0700);
  snprintf(q, sizeof q, "%s/t/a/b", root);
  mkdir(q, 0700);
  mkdir(p, 0700);
  for (int i = 0; i < 50; i++) {
    snprintf(q, sizeof q, "%s/t/a/b/c/f%d", root, i);
    fclose(fopen(q, "w"));
  }
  snprintf(q, sizeof q, "%s/t/a/.hidden", root);
  fclose(fopen(q, "w"));
  snprintf(p, sizeof p, "%s/keep", root);
  snprintf(q, sizeof q, "%s/t/a/link-to-dir", root);
  CHECK_INT(symlink(p, q), 0);
  snprintf(p, sizeof p, "%s/keep/file", root);
  snprintf(q, sizeof q, "%s/t/link-to-file", root);
  CHECK_INT(symlink(p, q), 0);
  snprintf(q, sizeof q, "%s/t", root);
  CHECK_INT(rm(q), 0);
  CHECK(!dir_exists(q));
  CHECK_INT(access(p, F_OK), 0); /* the symlinks' targets are untouched */
  CHECK_INT(rm(q), -ENOENT);
  CHECK_INT(rm(root), 0);
  CHECK(!dir_exists(root));
}

TEST(test_rmtree) {
  rmtree_case(lc_rmtree);
  rmtree_case(lc_rmtree_signal_safe);
}

/* ---------------------------------------------------------------- finding */

TEST(test_find_order) {
  char root[64], fake[256], plain[256], out[512];
  make_root(root, sizeof root);
  write_script(root, "fake", "exit 0\n", fake, sizeof fake);
  snprintf(plain, sizeof plain, "%s/plain", root);
  fclose(fopen(plain, "w"));
  const char *err = NULL;
  char *saved = getenv("LUACRAWL_CHROMIUM") ? strdup(getenv("LUACRAWL_CHROMIUM")) : NULL;

  unsetenv("LUACRAWL_CHROMIUM");
  CHECK_INT(lc_browser_find(NULL, out, sizeof out, &err), 0);
  CHECK_STR(out, access(SHELL_BIN, X_OK) == 0 ? SHELL_BIN : FULL_BIN);
  CHECK_INT(lc_browser_find(fake, out, sizeof out, &err), 0); /* explicit wins */
  CHECK_STR(out, fake);
  CHECK_INT(lc_browser_find(plain, out, sizeof out, &err), -ENOENT); /* not executable */
  CHECK(err != NULL);
  CHECK_INT(lc_browser_find("/nonexistent/chromium", out, sizeof out, &err), -ENOENT);
  CHECK_INT(lc_browser_find(root, out, sizeof out, &err), -ENOENT); /* a directory */
  CHECK_INT(lc_browser_find(fake, out, 4, &err), -ENAMETOOLONG);

  setenv("LUACRAWL_CHROMIUM", fake, 1);
  CHECK_INT(lc_browser_find(NULL, out, sizeof out, &err), 0); /* env before the defaults */
  CHECK_STR(out, fake);
  CHECK_INT(lc_browser_find(SHELL_BIN, out, sizeof out, &err), 0); /* explicit before env */
  CHECK_STR(out, SHELL_BIN);
  setenv("LUACRAWL_CHROMIUM", plain, 1);
  CHECK_INT(lc_browser_find(NULL, out, sizeof out, &err), -ENOENT); /* wrong env: an error */
  CHECK(err && strstr(err, "LUACRAWL_CHROMIUM"));
  setenv("LUACRAWL_CHROMIUM", "", 1); /* empty: as if unset */
  CHECK_INT(lc_browser_find(NULL, out, sizeof out, &err), 0);

  if (saved)
    setenv("LUACRAWL_CHROMIUM", saved, 1);
  else
    unsetenv("LUACRAWL_CHROMIUM");
  free(saved);
  CHECK_INT(lc_rmtree(root), 0);
}

TEST(test_bad_path_no_fork) {
  char root[64];
  make_root(root, sizeof root);
  uv_loop_t loop;
  uv_loop_init(&loop);
  cb_state s;
  lc_browser *b = (lc_browser *)&s; /* must be reset to NULL */
  memset(&s, 0, sizeof s);
  lc_browser_opts o = {"/nonexistent/chromium", root, -1, 1000, NULL};
  char *err = NULL;
  int r = lc_browser_launch(&loop, &o, on_ready, on_exit_cb, &s, &b, &err);
  CHECK_INT(r, -ENOENT);
  CHECK(b == NULL);
  CHECK(err && strstr(err, "/nonexistent/chromium"));
  free(err);
  CHECK_INT(profiles_left(root), 0); /* nothing made */
  errno = 0;
  CHECK_INT(waitpid(-1, NULL, WNOHANG), -1); /* nothing forked: this process has no children */
  CHECK_INT(errno, ECHILD);
  CHECK_INT(uv_run(&loop, UV_RUN_NOWAIT), 0); /* and no handle made */
  CHECK_INT(s.ready_calls + s.exit_calls, 0);
  close_loop(&loop);
  assert_clean(root);
}

/* ---------------------------------------------------------------- real Chromium */

/* Launch, ready, measure, terminate: the whole happy path, on the given build. */
static void lifecycle(const char *bin, const char *label, int use_kill) {
  char root[64];
  make_root(root, sizeof root);
  uv_loop_t loop;
  uv_loop_init(&loop);
  cb_state s;
  lc_browser *b = NULL;
  if (launch(&loop, bin, root, 30000, &s, &b) != 0) {
    CHECK(0);
    close_loop(&loop);
    return;
  }
  CHECK_INT(lc_browser_take_cdp_fd(b), -1); /* not before ready */
  CHECK(lc_browser_pid(b) > 0);
  CHECK_INT(getpgid(lc_browser_pid(b)), lc_browser_pid(b)); /* its own group */
  pid_t warden = lc_browser_warden_pid(b);
  CHECK(warden > 0 && warden != lc_browser_pid(b));
  CHECK_INT(lc_browser_is_headless_shell(b), strstr(bin, "headless-shell") != NULL);
  const char *prof = lc_browser_profile_dir(b);
  CHECK(strncmp(prof, root, strlen(root)) == 0 && strstr(prof, "/luacrawl-") != NULL);
  CHECK(dir_exists(prof));
  char profile[512];
  snprintf(profile, sizeof profile, "%s", prof);

  run_until(&loop, &s.ready_calls, 30000);
  CHECK_INT(s.ready_calls, 1);
  CHECK_INT(s.ready_err, 0);
  if (s.ready_err) fprintf(stderr, "  ready error: %s\n", s.ready_msg);
  fprintf(stderr, "  %s: ready in %llu ms\n", label, (unsigned long long)s.ready_ms);
  /* CDP on the pipe: ours alone (taken once), answering, and no TCP port anywhere in the tree. */
  CHECK(s.cdp_fd >= 0);
  CHECK_INT(lc_browser_take_cdp_fd(b), -1);
  char reply[4096];
  CHECK_INT(
      pipe_roundtrip(s.cdp_fd, "{\"id\":7,\"method\":\"Browser.getVersion\"}", reply, sizeof reply),
      0);
  CHECK(strncmp(reply, "{\"id\":7,", 8) == 0 && strstr(reply, "\"product\"") != NULL);
  CHECK_INT(tree_tcp_listeners(root), 0);
  CHECK(!cmdline_has(lc_browser_pid(b), "--remote-debugging-port=0"));
  CHECK(cmdline_has(lc_browser_pid(b), "--remote-debugging-pipe"));
  /* As root: an unprivileged user, with Chromium's own sandbox (this kernel allows it). */
  if (geteuid() == 0) {
    CHECK(proc_uid(lc_browser_pid(b)) > 0);
    CHECK(lc_browser_uid(b) != 0);
  } else {
    CHECK_INT(proc_uid(lc_browser_pid(b)), (long)geteuid());
  }
  CHECK_INT(lc_browser_sandboxed(b), 1);
  CHECK(!cmdline_has(lc_browser_pid(b), "--no-sandbox"));
  CHECK_INT(lc_browser_alive(b), 1);
  CHECK(lc_browser_rss_kb(b) > 0);
  CHECK(lc_browser_cpu_seconds(b) > 0.0);
  fprintf(stderr, "  %s: tree rss %ld KiB, cpu %.2f s, %d in group, %d naming the profile\n", label,
          lc_browser_rss_kb(b), lc_browser_cpu_seconds(b), lc_proc_group_alive(lc_browser_pid(b)),
          mentions(profile));
  CHECK(mentions(root) > 0);
  check_warden_running(warden);

  int full = strstr(bin, "headless-shell") == NULL;
  if (full) {
    /* crashpad helpers leave the group but name the profile (XDG_CONFIG_HOME points in it). */
    int outside = 0;
    for (int i = 0; i < 100 && outside == 0; i++) {
      outside = outside_group(profile, lc_browser_pid(b));
      if (outside == 0) sleep_ms(10);
    }
    fprintf(stderr, "  %s: %d processes outside the group name the profile\n", label, outside);
    CHECK(outside > 0);
  }

  pid_t pid = lc_browser_pid(b);
  uint64_t t = now_ms();
  if (use_kill)
    lc_browser_kill(b);
  else
    lc_browser_terminate(b, 5000);
  run_until(&loop, &s.exit_calls, 10000);
  fprintf(stderr, "  %s: %s -> exit callback in %llu ms\n", label, use_kill ? "kill" : "terminate",
          (unsigned long long)(now_ms() - t));
  CHECK_INT(s.exit_calls, 1);
  if (use_kill)
    CHECK_INT(s.term_signal, SIGKILL);
  else
    CHECK(s.term_signal == 0 || s.term_signal == SIGTERM);
  CHECK_INT(s.exit_group_alive, 0); /* all of it was gone when on_exit ran */
  CHECK_INT(s.exit_mentions, 0);
  CHECK_INT(s.exit_dir_exists, 0);
  CHECK_INT(lc_browser_alive(b), 0);
  CHECK_INT(lc_browser_rss_kb(b), 0);
  CHECK_INT(lc_proc_group_alive(pid), 0);
  CHECK(!dir_exists(profile));
  lc_browser_destroy(b);
  CHECK_INT(s.ready_calls, 1);
  close_loop(&loop);
  check_warden_reaped(warden);
  assert_clean(root);
}

TEST(test_shell_terminate) { lifecycle(SHELL_BIN, "headless-shell", 0); }

TEST(test_shell_kill) { lifecycle(SHELL_BIN, "headless-shell", 1); }

TEST(test_full_build) {
  if (access(FULL_BIN, X_OK) != 0) {
    fprintf(stderr, "  (skipped: no %s)\n", FULL_BIN);
    return;
  }
  /* The full build also starts crashpad helpers outside the group; lifecycle() checks that
   * nothing naming the profile survives. (Whether its ProcessSingleton dir lands in the
   * profile is not checked here: /tmp is shared with whatever else runs on the machine.) */
  lifecycle(FULL_BIN, "chromium (full)", 0);
}

/* Destroy in on_exit, after a kill from outside (as a crash would look). */
TEST(test_crash_destroy_in_exit) {
  char root[64];
  make_root(root, sizeof root);
  uv_loop_t loop;
  uv_loop_init(&loop);
  cb_state s;
  lc_browser *b = NULL;
  CHECK_INT(launch(&loop, SHELL_BIN, root, 30000, &s, &b), 0);
  s.destroy_in_exit = 1;
  run_until(&loop, &s.ready_calls, 30000);
  CHECK_INT(s.ready_err, 0);
  kill(lc_browser_pid(b), SIGKILL); /* only the main process: the drain must get the rest */
  run_until(&loop, &s.exit_calls, 10000);
  CHECK_INT(s.exit_calls, 1);
  CHECK_INT(s.term_signal, SIGKILL);
  CHECK_INT(s.exit_group_alive, 0);
  CHECK_INT(s.exit_mentions, 0);
  close_loop(&loop);
  assert_clean(root);
}

TEST(test_destroy_running) {
  char root[64];
  make_root(root, sizeof root);
  uv_loop_t loop;
  uv_loop_init(&loop);
  cb_state s;
  lc_browser *b = NULL;
  CHECK_INT(launch(&loop, SHELL_BIN, root, 30000, &s, &b), 0);
  run_until(&loop, &s.ready_calls, 30000);
  CHECK_INT(s.ready_err, 0);
  pid_t pid = lc_browser_pid(b), warden = lc_browser_warden_pid(b);
  /* What a terminal or a careless kill would send: the warden must stay to clean up. */
  kill(warden, SIGINT);
  kill(warden, SIGTERM);
  kill(warden, SIGHUP);
  sleep_ms(50);
  check_warden_running(warden);
  lc_browser_destroy(b);
  close_loop(&loop);          /* returns only once reaped and freed, the warden too */
  CHECK_INT(s.exit_calls, 0); /* no callback after destroy */
  CHECK_INT(lc_proc_group_alive(pid), 0);
  check_warden_reaped(warden);
  assert_clean(root);
}

TEST(test_destroy_starting) {
  char root[64];
  make_root(root, sizeof root);
  uv_loop_t loop;
  uv_loop_init(&loop);
  cb_state s;
  lc_browser *b = NULL;
  CHECK_INT(launch(&loop, SHELL_BIN, root, 30000, &s, &b), 0);
  sleep_ms(50); /* let it get going */
  pid_t pid = lc_browser_pid(b), warden = lc_browser_warden_pid(b);
  lc_browser_destroy(b);
  close_loop(&loop);
  CHECK_INT(s.ready_calls + s.exit_calls, 0);
  CHECK_INT(lc_proc_group_alive(pid), 0);
  check_warden_reaped(warden);
  assert_clean(root);
}

static void kill_all_handler(int sig) { lc_browser_kill_all_now(); }

TEST(test_kill_all_now) {
  char root[64];
  make_root(root, sizeof root);
  uv_loop_t loop;
  uv_loop_init(&loop);
  cb_state s1, s2;
  lc_browser *b1 = NULL, *b2 = NULL;
  CHECK_INT(launch(&loop, SHELL_BIN, root, 30000, &s1, &b1), 0);
  CHECK_INT(launch(&loop, SHELL_BIN, root, 30000, &s2, &b2), 0);
  run_until(&loop, &s1.ready_calls, 30000);
  run_until(&loop, &s2.ready_calls, 30000);
  CHECK_INT(s1.ready_err + s2.ready_err, 0);
  pid_t p1 = lc_browser_pid(b1), p2 = lc_browser_pid(b2);
  pid_t w1 = lc_browser_warden_pid(b1), w2 = lc_browser_warden_pid(b2);
  /* From a signal handler, as the engine's SIGTERM/SIGINT path would. */
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = kill_all_handler;
  sigaction(SIGUSR1, &sa, &old);
  raise(SIGUSR1);
  sigaction(SIGUSR1, &old, NULL);
  /* Synchronously: everything dead, the profiles gone. */
  CHECK_INT(lc_proc_group_alive(p1) + lc_proc_group_alive(p2), 0);
  CHECK_INT(mentions(root), 0);
  CHECK_INT(profiles_left(root), 0);
  /* The wardens were let go: they exit without the loop running (zombies until reaped). */
  CHECK(warden_exited_within(w1, 2000));
  CHECK(warden_exited_within(w2, 2000));
  /* The loop still gets its exits, and destroy is still due. */
  run_until(&loop, &s1.exit_calls, 5000);
  run_until(&loop, &s2.exit_calls, 5000);
  CHECK_INT(s1.exit_calls + s2.exit_calls, 2);
  CHECK_INT(s1.term_signal, SIGKILL);
  lc_browser_destroy(b1);
  lc_browser_destroy(b2);
  close_loop(&loop);
  check_warden_reaped(w1);
  check_warden_reaped(w2);
  assert_clean(root);
}

/* ---------------------------------------------------------------- fakes */

static void fake_case(const char *body, int timeout_ms, int want_err, const char *want_text,
                      int want_status, int want_signal) {
  char root[64], fake[256];
  make_root(root, sizeof root);
  write_script(root, "fake-browser", body, fake, sizeof fake);
  uv_loop_t loop;
  uv_loop_init(&loop);
  cb_state s;
  lc_browser *b = NULL;
  CHECK_INT(launch(&loop, fake, root, timeout_ms, &s, &b), 0);
  pid_t pid = lc_browser_pid(b);
  run_until(&loop, &s.exit_calls, timeout_ms + 5000);
  CHECK_INT(s.ready_calls, 1);
  CHECK_INT(s.ready_err, want_err);
  CHECK(strstr(s.ready_msg, want_text) != NULL);
  if (!strstr(s.ready_msg, want_text)) fprintf(stderr, "  msg: %s\n", s.ready_msg);
  CHECK(strstr(s.ready_msg, "D-Bus noise") == NULL && strstr(s.ready_msg, "dbus") == NULL);
  CHECK_INT(s.exit_calls, 1);
  CHECK_INT(s.exit_status, want_status);
  CHECK_INT(s.term_signal, want_signal);
  CHECK_INT(s.exit_group_alive, 0);
  CHECK_INT(s.exit_dir_exists, 0);
  CHECK_INT(lc_proc_group_alive(pid), 0);
  pid_t warden = lc_browser_warden_pid(b);
  lc_browser_destroy(b);
  close_loop(&loop);
  check_warden_reaped(warden);
  assert_clean(root);
}

TEST(test_start_timeout) {
  /* A "browser" that never writes the port file, with a child of its own in the group. */
  uint64_t t = now_ms();
  fake_case(
      "echo '[1:2:ERROR:dbus/bus.cc] noise' >&2\n"
      "echo 'fake browser starting' >&2\n"
      "sleep 30 &\n"
      "sleep 30\n",
      400, -ETIMEDOUT, "fake browser starting", -1, SIGKILL);
  CHECK(now_ms() - t < 2000);
}

TEST(test_early_exit) { fake_case("echo boom >&2\nexit 3\n", 5000, -ECHILD, "boom", 3, 0); }

TEST(test_exec_failure) {
  /* An interpreter that does not exist: execve fails in the child. */
  char root[64], fake[256];
  make_root(root, sizeof root);
  snprintf(fake, sizeof fake, "%s/badinterp", root);
  FILE *f = fopen(fake, "w");
  fprintf(f, "#!/nonexistent/interpreter\n");
  fclose(f);
  chmod(fake, 0755);
  uv_loop_t loop;
  uv_loop_init(&loop);
  cb_state s;
  lc_browser *b = NULL;
  CHECK_INT(launch(&loop, fake, root, 5000, &s, &b), 0);
  run_until(&loop, &s.exit_calls, 5000);
  CHECK_INT(s.ready_err, -ECHILD);
  if (under_valgrind()) {
    CHECK(s.exit_status != 0); /* valgrind cannot survive a failed execve: it exits 101 itself */
  } else {
    CHECK(strstr(s.ready_msg, "execve") != NULL);
    CHECK_INT(s.exit_status, 127);
  }
  lc_browser_destroy(b);
  close_loop(&loop);
  assert_clean(root);
}

TEST(test_partial_probe_reply) {
  /* The probe's reply comes in pieces on fd 4; ready waits for its NUL, and what follows it is
   * left for the owner (peeked, never consumed). */
  char root[64], fake[256];
  make_root(root, sizeof root);
  write_script(root, "fake-browser",
               "printf '{\"id\":0,' >&4; sleep 0.15\n"
               "printf '\"result\":{\"product\":\"Fake' >&4; sleep 0.15\n"
               "printf '/1\"}}' >&4; sleep 0.15\n"
               "printf '\\000{\"method\":\"after\"}\\000' >&4\n"
               "exec sleep 30\n",
               fake, sizeof fake);
  uv_loop_t loop;
  uv_loop_init(&loop);
  cb_state s;
  lc_browser *b = NULL;
  CHECK_INT(launch(&loop, fake, root, 5000, &s, &b), 0);
  run_until(&loop, &s.ready_calls, 5000);
  CHECK_INT(s.ready_err, 0);
  CHECK(s.ready_ms >= 400);
  CHECK(s.cdp_fd >= 0);
  char next[64] = {0};
  size_t got = 0;
  while (got < sizeof next - 1) {
    ssize_t r = recv(s.cdp_fd, next + got, 1, 0);
    if (r <= 0 || next[got] == '\0') break;
    got++;
  }
  CHECK_STR(next, "{\"method\":\"after\"}");
  close(s.cdp_fd);
  s.cdp_fd = -1;
  lc_browser_terminate(b, 200);
  run_until(&loop, &s.exit_calls, 5000);
  CHECK_INT(s.exit_calls, 1);
  CHECK_INT(s.term_signal, SIGTERM);
  lc_browser_destroy(b);
  close_loop(&loop);
  assert_clean(root);
}

TEST(test_wrong_probe_reply) {
  /* Something that is not the probe's answer: a clear start-up error, and the browser killed. */
  fake_case("printf '{\"id\":5,\"result\":{}}\\000' >&4\nexec sleep 30\n", 5000, -EPROTO,
            "not the probe's", -1, SIGKILL);
}

TEST(test_log_ring) {
  /* 3 MiB of output, then a last word and an exit: the ring keeps 256 KiB and the tail. */
  char root[64], fake[256];
  make_root(root, sizeof root);
  write_script(root, "fake-browser",
               "head -c 3145728 /dev/zero | tr '\\0' x | fold -w 1023 >&2\n"
               "echo 'the last word' >&2\nexit 4\n",
               fake, sizeof fake);
  uv_loop_t loop;
  uv_loop_init(&loop);
  cb_state s;
  lc_browser *b = NULL;
  CHECK_INT(launch(&loop, fake, root, 30000, &s, &b), 0);
  run_until(&loop, &s.exit_calls, 30000);
  CHECK_INT(s.ready_err, -ECHILD);
  CHECK(strstr(s.ready_msg, "the last word") != NULL);
  fprintf(stderr, "  log: %llu bytes written, %zu kept\n",
          (unsigned long long)lc_browser_log_bytes(b), lc_browser_log_kept(b));
  CHECK(lc_browser_log_bytes(b) >= 3u * 1024 * 1024);
  CHECK(lc_browser_log_kept(b) <= 256u * 1024);
  char tail[2048];
  CHECK(lc_browser_log_tail(b, tail, sizeof tail) > 0);
  CHECK(strstr(tail, "the last word") != NULL);
  lc_browser_destroy(b);
  close_loop(&loop);
  assert_clean(root);
}

TEST(test_terminate_grace_then_kill) {
  /* Ignores SIGTERM: the grace runs out and SIGKILL follows. */
  char root[64], fake[256];
  make_root(root, sizeof root);
  write_script(root, "fake-browser",
               "trap '' TERM\n"
               "printf '{\"id\":0,\"result\":{}}\\000' >&4\n"
               "while :; do sleep 1; done\n",
               fake, sizeof fake);
  uv_loop_t loop;
  uv_loop_init(&loop);
  cb_state s;
  lc_browser *b = NULL;
  CHECK_INT(launch(&loop, fake, root, 5000, &s, &b), 0);
  run_until(&loop, &s.ready_calls, 5000);
  CHECK_INT(s.ready_err, 0);
  uint64_t t = now_ms();
  lc_browser_terminate(b, 300);
  run_until(&loop, &s.exit_calls, 5000);
  uint64_t took = now_ms() - t;
  CHECK_INT(s.term_signal, SIGKILL); /* it ignored SIGTERM: the grace ran out */
  CHECK(took >= 290);                /* not before the grace (how long after depends on load) */
  CHECK_INT(s.exit_group_alive, 0);
  lc_browser_destroy(b);
  close_loop(&loop);
  assert_clean(root);
}

/* ---------------------------------------------------------------- parent death */

enum { ENGINE_SIGKILLED, ENGINE_EXITS_DIRTY, ENGINE_KILL_ALL_THEN_EXITS };

/* A forked "engine" launches a browser, reports it, then dies: SIGKILLed by us, or _exit with
 * no cleanup at all, or _exit after lc_browser_kill_all_now (the engine's signal path). Within
 * 3 s no process names the root and the profile dir is gone; the warden exits soon after. */
static void engine_dies(int how, const char *label) {
  char root[64];
  make_root(root, sizeof root);
  int fds[2], go[2];
  CHECK_INT(pipe(fds), 0);
  CHECK_INT(pipe(go), 0);
  fflush(NULL);
  pid_t engine = fork();
  if (engine == 0) {
    close(fds[0]);
    close(go[1]);
    uv_loop_t loop;
    uv_loop_init(&loop);
    cb_state s;
    lc_browser *b = NULL;
    if (launch(&loop, SHELL_BIN, root, 30000, &s, &b) != 0) _exit(1);
    run_until(&loop, &s.ready_calls, 30000);
    char line[700];
    int n = snprintf(line, sizeof line, "%d %d %d %s\n", s.ready_err, (int)lc_browser_pid(b),
                     (int)lc_browser_warden_pid(b), lc_browser_profile_dir(b));
    if (write(fds[1], line, (size_t)n) != n) _exit(1);
    char c;
    if (read(go[0], &c, 1) != 1) _exit(1); /* until told how to die */
    if (how == ENGINE_KILL_ALL_THEN_EXITS) lc_browser_kill_all_now();
    if (how != ENGINE_SIGKILLED) _exit(0);
    for (;;) pause();
  }
  close(fds[1]);
  close(go[0]);
  char line[700] = {0};
  ssize_t n = read(fds[0], line, sizeof line - 1);
  close(fds[0]);
  int ready_err = -1, bpid = 0, wpid = 0;
  char profile[512] = {0};
  CHECK(n > 0 && sscanf(line, "%d %d %d %511s", &ready_err, &bpid, &wpid, profile) == 4);
  CHECK_INT(ready_err, 0);
  CHECK(bpid > 0 && kill(bpid, 0) == 0);
  CHECK(wpid > 0);
  CHECK(mentions(root) > 0);
  CHECK(dir_exists(profile));
  check_warden_running(wpid);

  uint64_t t = now_ms();
  if (how == ENGINE_SIGKILLED)
    kill(engine, SIGKILL);
  else
    CHECK(write(go[1], "x", 1) == 1);
  close(go[1]);
  int st = 0;
  CHECK_INT(waitpid(engine, &st, 0), engine);
  if (how == ENGINE_SIGKILLED)
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  else
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  uint64_t tree_ms = 0;
  while (now_ms() - t < 5000) {
    int tree = mentions(root) + lc_proc_group_alive(bpid);
    if (tree == 0 && !tree_ms) tree_ms = now_ms() - t;
    if (tree == 0 && profiles_left(root) == 0) break;
    sleep_ms(10);
  }
  uint64_t took = now_ms() - t;
  int warden_gone = warden_exited_within(wpid, 3000);
  fprintf(stderr, "  %s: tree gone after %llu ms, profile dir after %llu ms, warden exited: %s\n",
          label, (unsigned long long)tree_ms, (unsigned long long)took, warden_gone ? "yes" : "no");
  CHECK_INT(mentions(root), 0);
  CHECK_INT(lc_proc_group_alive(bpid), 0);
  CHECK(tree_ms < 2000);
  CHECK(!dir_exists(profile));
  CHECK_INT(profiles_left(root), 0); /* removed by the warden (or by kill_all_now) */
  CHECK(took < 3000);
  CHECK(warden_gone);
  if (!warden_gone) kill(wpid, SIGKILL); /* leave nothing running, even on failure */
  assert_clean(root);
}

TEST(test_parent_sigkilled) { engine_dies(ENGINE_SIGKILLED, "engine SIGKILLed"); }

TEST(test_parent_exits_without_cleanup) {
  engine_dies(ENGINE_EXITS_DIRTY, "engine _exit without cleanup");
}

TEST(test_parent_kill_all_then_exits) {
  engine_dies(ENGINE_KILL_ALL_THEN_EXITS, "engine kill_all_now + _exit");
}

int main(void) {
  signal(SIGPIPE, SIG_IGN); /* ignored dispositions are inherited: the child must reset them */
  RUN(test_proc_self);
  RUN(test_proc_group_tree);
  RUN(test_proc_tree_mem_and_pss);
  RUN(test_rmtree);
  RUN(test_find_order);
  RUN(test_bad_path_no_fork);
  RUN(test_shell_terminate);
  RUN(test_shell_kill);
  RUN(test_crash_destroy_in_exit);
  RUN(test_destroy_running);
  RUN(test_destroy_starting);
  RUN(test_kill_all_now);
  RUN(test_start_timeout);
  RUN(test_early_exit);
  RUN(test_exec_failure);
  RUN(test_partial_probe_reply);
  RUN(test_wrong_probe_reply);
  RUN(test_log_ring);
  RUN(test_terminate_grace_then_kill);
  RUN(test_parent_sigkilled);
  RUN(test_parent_exits_without_cleanup);
  RUN(test_parent_kill_all_then_exits);
  RUN(test_full_build);
  DONE();
}
