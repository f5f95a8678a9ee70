/* store_bench.c: a unit benchmark of the SQLite store (engine/store/store.c).
 *
 * Owns: state files in a temporary directory (removed at the end), and these phases, each timed
 * with CLOCK_MONOTONIC and printed as one JSON line on stdout and one human line on stderr:
 *   enqueue      N URLs over 1,000 hosts pushed through the store's frontier, flushed every
 *                10,000 (the batching the job does), then the process RSS and peak RSS
 *   reopen       close and open again: quick_check, leased back to queued, hosts and counts
 *   pop_commit   at Q queued (Q in 10k, 100k and N), 10,000 pops each committed with one
 *                record, flushed every 100
 * It measures and reports; it asserts only that the store answered as the contract says (every
 * push accepted, every pop a request, every commit 0), so a broken store posts no figure.
 *
 *   store_bench [--urls N] [--dir DIR]
 *
 * Defaults: N = 1,000,000; DIR = $TMPDIR or /tmp. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* VmRSS and VmHWM of this process, in MB. */
static void rss_mb(double *rss, double *hwm) {
  *rss = *hwm = 0;
  FILE *fp = fopen("/proc/self/status", "r");
  if (!fp) return;
  char line[256];
  long kb;
  while (fgets(line, sizeof line, fp)) {
    if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) *rss = kb / 1024.0;
    if (sscanf(line, "VmHWM: %ld kB", &kb) == 1) *hwm = kb / 1024.0;
  }
  fclose(fp);
}

static void remove_state(const char *path) {
  char p[600];
  unlink(path);
  snprintf(p, sizeof p, "%s-wal", path);
  unlink(p);
  snprintf(p, sizeof p, "%s-shm", path);
  unlink(p);
}

static lc_store *open_or_die(const char *path) {
  char err[512];
  int code = 0;
  lc_store_opts o = {.path = path, .job_hash = "bench"};
  lc_store *s = lc_store_open(&o, err, sizeof err, &code);
  if (!s) {
    fprintf(stderr, "store_bench: %s\n", err);
    exit(1);
  }
  return s;
}

/* Push n URLs; returns the seconds taken. */
static double enqueue(lc_store *s, size_t n) {
  lc_frontier *f = lc_store_frontier(s, 0);
  char url[160];
  double t0 = now_s();
  for (size_t i = 0; i < n; i++) {
    snprintf(url, sizeof url, "https://host%zu.example.com/catalog/item-%zu.html?ref=list&p=%zu",
             i % 1000, i, i % 13);
    if (lc_frontier_push(f, url, 1, NULL, 0) != 1) {
      fprintf(stderr, "store_bench: push %zu refused: %s\n", i, lc_store_error(s));
      exit(1);
    }
    if (i % 10000 == 9999 && lc_store_flush(s) != 0) {
      fprintf(stderr, "store_bench: flush: %s\n", lc_store_error(s));
      exit(1);
    }
  }
  if (lc_store_flush(s) != 0) exit(1);
  return now_s() - t0;
}

/* Pop and commit m requests with one record each; returns the seconds taken. */
static double pop_commit(lc_store *s, size_t m) {
  lc_frontier *f = lc_store_frontier(s, 0);
  char line[160];
  double t0 = now_s();
  for (size_t i = 0; i < m; i++) {
    lc_request r;
    if (lc_frontier_pop(f, 0, NULL, NULL, &r, NULL) != 1) {
      fprintf(stderr, "store_bench: pop %zu found nothing: %s\n", i, lc_store_error(s));
      exit(1);
    }
    int len = snprintf(line, sizeof line, "{\"url\":\"%s\",\"status\":200}", r.url);
    const char *lines[] = {line};
    size_t lens[] = {(size_t)len};
    if (lc_store_commit(s, r.id, lines, lens, 1) != 0) {
      fprintf(stderr, "store_bench: commit: %s\n", lc_store_error(s));
      exit(1);
    }
    lc_request_clear(&r);
    if (i % 100 == 99 && lc_store_flush(s) != 0) exit(1);
  }
  if (lc_store_flush(s) != 0) exit(1);
  return now_s() - t0;
}

static void report(const char *phase, size_t queued, size_t ops, double secs, const char *extra) {
  printf(
      "{\"phase\":\"%s\",\"queued\":%zu,\"ops\":%zu,\"ms\":%.1f,\"us_per_op\":%.2f,"
      "\"ops_per_s\":%.0f%s}\n",
      phase, queued, ops, secs * 1e3, secs * 1e6 / (double)ops, (double)ops / secs, extra);
  fprintf(stderr, "%-11s %8zu queued %8zu ops %9.1f ms %8.2f us/op %9.0f ops/s\n", phase, queued,
          ops, secs * 1e3, secs * 1e6 / (double)ops, (double)ops / secs);
  fflush(stdout);
}

int main(int argc, char **argv) {
  size_t n = 1000000;
  const char *dir = getenv("TMPDIR");
  if (!dir || !dir[0]) dir = "/tmp";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--urls") && i + 1 < argc)
      n = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
      dir = argv[++i];
    else {
      fprintf(stderr, "usage: store_bench [--urls N] [--dir DIR]\n");
      return 2;
    }
  }
  size_t sizes[] = {10000, 100000, n};
  for (size_t k = 0; k < 3; k++) {
    size_t q = sizes[k];
    if (q > n || (k < 2 && q == n)) continue; /* each size once, none above N */
    char path[512];
    snprintf(path, sizeof path, "%s/store_bench.%d.%zu.db", dir, (int)getpid(), q);
    remove_state(path);
    lc_store *s = open_or_die(path);
    double secs = enqueue(s, q);
    double rss, hwm;
    rss_mb(&rss, &hwm);
    char extra[96];
    snprintf(extra, sizeof extra, ",\"rss_mb\":%.1f,\"peak_rss_mb\":%.1f", rss, hwm);
    report("enqueue", q, q, secs, extra);
    fprintf(stderr, "            rss %.1f MB, peak %.1f MB\n", rss, hwm);
    if (q == n) { /* the biggest: how long a resume's open takes */
      double t0 = now_s();
      if (lc_store_close(s) != 0) return 1;
      s = open_or_die(path);
      report("reopen", q, 1, now_s() - t0, "");
    }
    size_t m = q < 10000 ? q : 10000;
    report("pop_commit", q, m, pop_commit(s, m), "");
    if (lc_store_close(s) != 0) return 1;
    remove_state(path);
  }
  double rss, hwm;
  rss_mb(&rss, &hwm);
  fprintf(stderr, "peak rss %.1f MB\n", hwm);
  return 0;
}
