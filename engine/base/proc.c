/* proc.c: process-tree helpers on Linux /proc, and recursive directory removal.
 *
 * The /proc scanning here uses only open/read/close/getdents64/kill and hand-written parsing,
 * with no malloc, so lc_proc_signal_by_cmdline and lc_proc_group_alive may be called from a
 * signal handler or a fatal-error path. Tree walks keep a fixed-size table on the stack.
 */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700 /* nftw, FTW_DEPTH, FTW_PHYS */
#endif

#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---------------------------------------------------------------- reading /proc */

/* Reads up to n-1 bytes of a small file into buf, NUL-terminated; returns the length or -1. */
static ssize_t read_small_file(const char *path, char *buf, size_t n) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t len = 0;
  while (len + 1 < n) {
    ssize_t r = read(fd, buf + len, n - 1 - len);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    len += (size_t)r;
  }
  close(fd);
  buf[len] = '\0';
  return (ssize_t)len;
}

/* Formats "/proc/<pid>/<leaf>" into out (no snprintf: this must stay signal-safe). */
static void proc_path(char *out, size_t n, long pid, const char *leaf) {
  char digits[24];
  int nd = 0;
  do {
    digits[nd++] = (char)('0' + pid % 10);
    pid /= 10;
  } while (pid > 0 && nd < (int)sizeof digits);
  size_t k = 0;
  const char *pre = "/proc/";
  while (*pre && k + 1 < n) out[k++] = *pre++;
  while (nd > 0 && k + 1 < n) out[k++] = digits[--nd];
  if (k + 1 < n) out[k++] = '/';
  while (*leaf && k + 1 < n) out[k++] = *leaf++;
  out[k] = '\0';
}

/* Parses a decimal integer (optionally negative) at *s, advancing *s; signal-safe. Too many
 * digits saturate at LLONG_MAX (no overflow, whatever the text). */
static long long parse_ll(const char **s) {
  const char *p = *s;
  int neg = 0;
  long long v = 0;
  while (*p == ' ') p++;
  if (*p == '-') {
    neg = 1;
    p++;
  }
  for (; *p >= '0' && *p <= '9'; p++) {
    int d = *p - '0';
    v = v <= (LLONG_MAX - d) / 10 ? v * 10 + d : LLONG_MAX;
  }
  *s = p;
  return neg ? -v : v;
}

/* Skips one space-separated field at *s. */
static void skip_field(const char **s) {
  const char *p = *s;
  while (*p == ' ') p++;
  while (*p && *p != ' ') p++;
  *s = p;
}

typedef lc_proc_stat pstat;

int lc_proc_parse_stat(const char *buf, lc_proc_stat *st) {
  /* comm may hold spaces and parentheses: the fields start after the last ')'. */
  const char *p = strrchr(buf, ')');
  if (!p || p[1] != ' ' || p[2] == '\0') return -1; /* no state: the text was cut */
  p += 2;
  st->state = *p;
  p++;
  st->ppid = (pid_t)parse_ll(&p); /* 4 */
  st->pgrp = (pid_t)parse_ll(&p); /* 5 */
  for (int f = 6; f <= 13; f++) skip_field(&p);
  st->utime = parse_ll(&p);  /* 14 */
  st->stime = parse_ll(&p);  /* 15 */
  st->cutime = parse_ll(&p); /* 16 */
  st->cstime = parse_ll(&p); /* 17 */
  for (int f = 18; f <= 23; f++) skip_field(&p);
  st->rss_pages = parse_ll(&p); /* 24 */
  return 0;
}

/* Reads /proc/<pid>/stat into st; returns 0, or -1 if the process is gone or unreadable. */
static int read_pstat(pid_t pid, pstat *st) {
  char path[64], buf[1024];
  proc_path(path, sizeof path, pid, "stat");
  if (read_small_file(path, buf, sizeof buf) <= 0 || lc_proc_parse_stat(buf, st) != 0) return -1;
  st->pid = pid;
  return 0;
}

/* Calls fn(pid, ctx) for every numeric entry of /proc, until fn returns nonzero. Signal-safe. */
static void for_each_pid(int (*fn)(pid_t pid, void *ctx), void *ctx) {
  int fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  _Alignas(8) char buf[8192];
  for (;;) {
    long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (long off = 0; off < n;) {
      /* struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, char name[] */
      unsigned short reclen;
      memcpy(&reclen, buf + off + 16, sizeof reclen);
      const char *name = buf + off + 19;
      off += reclen;
      if (name[0] < '1' || name[0] > '9') continue;
      const char *q = name;
      long long pid = parse_ll(&q);
      if (*q != '\0' || pid <= 0) continue;
      if (fn((pid_t)pid, ctx)) {
        close(fd);
        return;
      }
    }
  }
  close(fd);
}

/* ---------------------------------------------------------------- the tree of a root */

enum { TREE_MAX = 16384 }; /* processes read per tree walk; beyond that, ignored */

typedef struct tree_scan {
  pstat all[TREE_MAX];
  int n;
} tree_scan;

static int collect_one(pid_t pid, void *ctx) {
  tree_scan *t = ctx;
  if (t->n >= TREE_MAX) return 1;
  if (read_pstat(pid, &t->all[t->n]) == 0) t->n++;
  return 0;
}

static int pstat_by_pid(const void *a, const void *b) {
  pid_t x = ((const pstat *)a)->pid, y = ((const pstat *)b)->pid;
  return (x > y) - (x < y);
}

/* The index of pid in t (sorted by pid), or -1. */
static int scan_index(const tree_scan *t, pid_t pid) {
  int lo = 0, hi = t->n - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2;
    if (t->all[mid].pid == pid) return mid;
    if (t->all[mid].pid < pid)
      lo = mid + 1;
    else
      hi = mid - 1;
  }
  return -1;
}

enum { MARK_UNKNOWN = 0, MARK_IN = 1, MARK_OUT = 2 };

/* Fills t with every process and marks the tree of root in mark[] (MARK_IN); returns the member
 * count. O(n log n) in the processes listed: sorted by pid, each one's parent found by binary
 * search, and every ancestor chain walked once (answers are remembered along it). */
static int scan_tree(pid_t root, tree_scan *t, unsigned char *mark) {
  t->n = 0;
  for_each_pid(collect_one, t);
  qsort(t->all, (size_t)t->n, sizeof t->all[0], pstat_by_pid);
  pid_t group = root; /* root gone: its group may live on */
  int r = scan_index(t, root);
  if (r >= 0) group = t->all[r].pgrp == root ? root : 0;
  for (int i = 0; i < t->n; i++)
    mark[i] =
        t->all[i].pid == root || (group > 0 && t->all[i].pgrp == group) ? MARK_IN : MARK_UNKNOWN;
  int members = 0;
  for (int i = 0; i < t->n; i++) {
    /* Up the chain to the first process whose answer is known (or to no parent: out)... */
    int j = i, answer = MARK_OUT;
    for (int depth = 0; depth < t->n; depth++) {
      if (mark[j] != MARK_UNKNOWN) {
        answer = mark[j];
        break;
      }
      j = scan_index(t, t->all[j].ppid);
      if (j < 0) break;
    }
    /* ...then down the same chain again, writing the answer. */
    for (j = i; j >= 0 && mark[j] == MARK_UNKNOWN; j = scan_index(t, t->all[j].ppid))
      mark[j] = (unsigned char)answer;
    members += mark[i] == MARK_IN;
  }
  return members;
}

/* The scan table is large (~900 KB of BSS, touched only as far as used): not on the stack. Not
 * reentrant; the engine is single-threaded, and these two are not for signal handlers. */
static tree_scan g_scan;
static unsigned char g_mark[TREE_MAX];

/* The value in kB of the line starting with `key` (e.g. "Pss:") of a /proc status-like text,
 * or -1. */
static long kb_field(const char *text, const char *key) {
  size_t k = strlen(key);
  const char *line = text;
  while (line && *line) {
    if (strncmp(line, key, k) == 0) {
      const char *p = line + k;
      return (long)parse_ll(&p);
    }
    line = strchr(line, '\n');
    if (line) line++;
  }
  return -1;
}

long lc_proc_pss_kb(pid_t pid) {
  char path[64], buf[4096];
  proc_path(path, sizeof path, pid, "smaps_rollup");
  if (read_small_file(path, buf, sizeof buf) <= 0) return -1;
  return kb_field(buf, "Pss:");
}

int lc_proc_tree_mem(pid_t root, int want_pss, lc_proc_mem *out) {
  memset(out, 0, sizeof *out);
  if (root <= 0) return 0;
  if (scan_tree(root, &g_scan, g_mark) == 0) return 0;
  long long pages = 0;
  for (int i = 0; i < g_scan.n; i++) {
    if (g_mark[i] != MARK_IN) continue;
    out->procs++;
    pages += g_scan.all[i].rss_pages;
    if (!want_pss) continue;
    long pss = lc_proc_pss_kb(g_scan.all[i].pid);
    if (pss > 0) out->pss_kb += pss; /* a process that exited mid-walk is skipped */
  }
  out->rss_kb = (long)(pages * (sysconf(_SC_PAGESIZE) / 1024));
  return out->procs;
}

long lc_proc_tree_rss_kb(pid_t root) {
  lc_proc_mem m;
  lc_proc_tree_mem(root, 0, &m);
  return m.rss_kb;
}

double lc_proc_cpu_seconds(pid_t root) {
  if (root <= 0) return 0.0;
  if (scan_tree(root, &g_scan, g_mark) == 0) return 0.0;
  long long ticks = 0;
  for (int i = 0; i < g_scan.n; i++) {
    const pstat *s = &g_scan.all[i];
    if (g_mark[i] == MARK_IN) ticks += s->utime + s->stime + s->cutime + s->cstime;
  }
  long hz = sysconf(_SC_CLK_TCK);
  return (double)ticks / (double)(hz > 0 ? hz : 100);
}

/* ---------------------------------------------------------------- groups and command lines */

typedef struct group_count {
  pid_t pgid;
  int alive;
} group_count;

static int count_group_one(pid_t pid, void *ctx) {
  group_count *g = ctx;
  pstat st;
  if (read_pstat(pid, &st) == 0 && st.pgrp == g->pgid && st.state != 'Z' && st.state != 'X')
    g->alive++;
  return 0;
}

int lc_proc_group_alive(pid_t pgid) {
  if (pgid <= 0) return 0;
  group_count g = {pgid, 0};
  for_each_pid(count_group_one, &g);
  return g.alive;
}

typedef struct cmdline_kill {
  const char *path;
  size_t len;
  int sig;
  pid_t self;
  int count;
} cmdline_kill;

/* True if some NUL-separated argument in buf[0..n) holds needle at its start or right after an
 * '=', followed by '/' or the argument's end. */
static int args_mention(const char *buf, size_t n, const char *needle, size_t len) {
  if (len == 0 || n < len) return 0;
  for (size_t i = 0; i + len <= n; i++) {
    if (buf[i] != needle[0] || memcmp(buf + i, needle, len) != 0) continue;
    char before = i > 0 ? buf[i - 1] : '\0';
    char after = i + len < n ? buf[i + len] : '\0';
    if ((before == '\0' || before == '=') && (after == '/' || after == '\0')) return 1;
  }
  return 0;
}

static int kill_cmdline_one(pid_t pid, void *ctx) {
  cmdline_kill *k = ctx;
  if (pid == k->self) return 0;
  char path[64], buf[16384];
  proc_path(path, sizeof path, pid, "cmdline");
  ssize_t n = read_small_file(path, buf, sizeof buf);
  if (n > 0 && args_mention(buf, (size_t)n, k->path, k->len) && kill(pid, k->sig) == 0) k->count++;
  return 0;
}

int lc_proc_signal_by_cmdline(const char *path, int sig) {
  if (!path || !*path) return 0;
  cmdline_kill k = {path, strlen(path), sig, getpid(), 0};
  for_each_pid(kill_cmdline_one, &k);
  return k.count;
}

/* ---------------------------------------------------------------- this process */

/* Reads a "Key:   N kB" line of /proc/self/status; -1 if absent. */
static long self_status_kb(const char *key) {
  char buf[4096];
  if (read_small_file("/proc/self/status", buf, sizeof buf) <= 0) return -1;
  size_t klen = strlen(key);
  for (const char *line = buf; line && *line;) {
    if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
      const char *p = line + klen + 1;
      while (*p == ' ' || *p == '\t') p++;
      return (long)parse_ll(&p);
    }
    line = strchr(line, '\n');
    if (line) line++;
  }
  return -1;
}

long lc_proc_self_rss_kb(void) { return self_status_kb("VmRSS"); }

long lc_proc_self_peak_rss_kb(void) { return self_status_kb("VmHWM"); }

/* ---------------------------------------------------------------- renaming this process */

/* argv[0] as the C library found it at start-up (glibc and musl): where the argument strings
 * begin in our memory, which is what /proc/self/stat's arg_start must say too. */
extern char *program_invocation_name;

int lc_proc_self_rename(const char *name) {
  if (!name || !*name) return -EINVAL;
  prctl(PR_SET_NAME, name, 0, 0, 0);
  /* Fields 48 and 49 of /proc/self/stat: where the argument strings live (Linux >= 3.5). */
  char buf[2048];
  if (read_small_file("/proc/self/stat", buf, sizeof buf) <= 0) return -EIO;
  const char *p = strrchr(buf, ')');
  if (!p || p[1] != ' ') return -EIO;
  p += 2;
  for (int f = 3; f <= 47; f++) skip_field(&p);
  long long start = parse_ll(&p), end = parse_ll(&p);
  if (start <= 0 || end <= start || end - start > (1 << 20)) return -ERANGE;
  /* The area must be our own argv (under valgrind, say, the kernel's numbers are the host's and
   * not ours to touch), and the kernel must show exactly its bytes as our command line. */
  if ((uintptr_t)start != (uintptr_t)program_invocation_name) return -ERANGE;
  size_t len = (size_t)(end - start);
  char shown[4096];
  ssize_t n = read_small_file("/proc/self/cmdline", shown, sizeof shown);
  size_t want = len < sizeof shown - 1 ? len : sizeof shown - 1;
  if (n < 0 || (size_t)n != want) return -ERANGE;
  volatile char *area = (volatile char *)(uintptr_t)start;
  for (size_t i = 0; i < want; i++)
    if (area[i] != shown[i]) return -ERANGE;
  size_t nl = strlen(name);
  for (size_t i = 0; i < len; i++) area[i] = i + 1 < len && i < nl ? name[i] : '\0';
  return 0;
}

/* ---------------------------------------------------------------- rmtree */

static _Thread_local int rmtree_first_err;

static int rmtree_one(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
  int r = (type == FTW_DP || type == FTW_DNR) ? rmdir(path) : unlink(path);
  if (r != 0 && errno != ENOENT && rmtree_first_err == 0) rmtree_first_err = -errno;
  return 0; /* keep going: remove as much as possible */
}

int lc_rmtree(const char *path) {
  if (!path || !*path) return -EINVAL;
  rmtree_first_err = 0;
  if (nftw(path, rmtree_one, 16, FTW_DEPTH | FTW_PHYS) != 0) return errno ? -errno : -EIO;
  return rmtree_first_err;
}

/* Removes name (relative to dirfd) and, if a directory, its contents; records the first error. */
static void rm_at(int dirfd, const char *name, int depth, int *first_err) {
  if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT) return;
  if (errno != EISDIR) {
    if (*first_err == 0) *first_err = -errno;
    return;
  }
  if (depth >= 32) {
    if (*first_err == 0) *first_err = -ELOOP;
    return;
  }
  int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT && *first_err == 0) *first_err = -errno;
    return;
  }
  _Alignas(8) char buf[2048];
  /* Deleting while reading a directory may skip entries: read it again until rmdir works. */
  for (int pass = 0; pass < 4; pass++) {
    lseek(fd, 0, SEEK_SET);
    for (;;) {
      long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      for (long off = 0; off < n;) {
        unsigned short reclen;
        memcpy(&reclen, buf + off + 16, sizeof reclen);
        const char *child = buf + off + 19;
        off += reclen;
        if (child[0] == '.' && (child[1] == '\0' || (child[1] == '.' && child[2] == '\0')))
          continue;
        rm_at(fd, child, depth + 1, first_err);
      }
    }
    if (unlinkat(dirfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT) break;
    if (errno != ENOTEMPTY || pass == 3) {
      if (*first_err == 0) *first_err = -errno;
      break;
    }
  }
  close(fd);
}

int lc_rmtree_signal_safe(const char *path) {
  if (!path || !*path) return -EINVAL;
  if (access(path, F_OK) != 0 && errno == ENOENT) return -ENOENT;
  int first_err = 0;
  rm_at(AT_FDCWD, path, 0, &first_err);
  return first_err;
}
