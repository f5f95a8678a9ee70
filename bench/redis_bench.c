/* redis_bench.c: a unit benchmark of the shared Redis frontier (engine/dist/rfrontier.c), the
 * real code: lc_frontier ops and lc_rfront_commit over rconn, on one libuv loop, no browser.
 *
 * Owns: for each engine count E (1, 4, 16 by default) one crawl on the server (a name of its
 * own, lc:{bench-PID-E}:, left there for the runner's server to drop), E frontier objects on
 * that crawl, each with its own connection (as E engines would have), and the simulated jobs
 * on them. A simulated engine keeps up to C requests in flight (C is also its prefetch, as the
 * job's concurrency is): each popped request pushes its children and one duplicate (its
 * parent's URL, a seen-set hit on the server or in the engine), holds the request `hold` ms
 * (0: none) and commits it with one ~300-byte record through lc_rfront_commit. The crawl is a
 * forest of P pages over 1,000 hosts (pages 0..999 seeded; page p's children are
 * 1000 + 3p .. 1000 + 3p + 2, those below P), so it ends by itself: the run is over when every
 * engine's pending() is 0, and then the server must hold exactly P records and P pages done,
 * or no figure is printed. Leases are renewed by the frontier's own timer every lease_ms/3
 * (lease_ms 1500 by default, so a run sees renewals).
 *
 * Printed per engine count: one JSON line on stdout, one human line on stderr: acknowledged
 * requests/s, requests popped/s and pop calls/s, pushes/s, the calls sent to the server per
 * acknowledged request (pops, batched pushes, batched commits, renewals, the marks of what
 * a turn handed out: lc_started), renewal calls,
 * p50/p99/max commit latency (lc_rfront_commit to its answer: the queue on the connection
 * included), and the CPU time of this process and of redis-server (its pid from INFO; /proc/PID/stat) over the run.
 *
 * With --seen N instead: the memory of the crawl's seen set, the real structure (rlib.lua's
 * lc_push: SADD of the URL's 64-bit fingerprint, lc_frontier_fingerprint of the normalized URL,
 * as a signed decimal, into the bucket P.s:B, B = its top 15 bits), filled with N URLs by
 * pipelined SADDs (10,000 a batch) into a crawl of its own; INFO used_memory before and at
 * 1M, 2M, 5M, 10M... (and N), and how many buckets left the intset encoding. One JSON line
 * per checkpoint.
 *
 *   redis_bench --port PORT [--engines 1,4,16] [--pages P] [--concurrency C] [--hold MS]
 *               [--lease-ms MS]
 *   redis_bench --port PORT --seen N
 *
 * Defaults: P = 100,000; C = 8; hold 0; lease_ms 1500. Needs a Redis 7 on 127.0.0.1:PORT
 * (bench/redis.sh starts one). */
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "frontier.h"
#include "log.h"
#include "rfrontier.h"

#define HOSTS 1000
#define FANOUT 3

typedef struct engine engine;
typedef struct inflight {
  uv_timer_t hold; /* first: its close callback frees the whole */
  engine *e;
  lc_request req;
  uint64_t sent_ns;
} inflight;

struct run;
struct engine {
  struct run *run;
  lc_frontier *f;
  int inflight;
};

typedef struct run {
  uv_loop_t *loop;
  engine *eng;
  int n;
  int conc, hold_ms;
  uint64_t pages;
  uint64_t acked, refused, pushes, errors;
  double *lat_ms; /* one per acknowledgement */
  size_t nlat, caplat;
  uv_timer_t poll, deadline;
  int timed_out;
} run;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void page_url(uint64_t p, char *out, size_t n) {
  snprintf(out, n, "http://h%" PRIu64 ".bench.test/catalog/item-%" PRIu64 ".html", p % HOSTS, p);
}

/* The page number back from a URL this bench made. */
static uint64_t page_of(const char *url) {
  const char *s = strstr(url, "/item-");
  return s ? strtoull(s + 6, NULL, 10) : 0;
}

static void pump(engine *e);

static void commit_done(void *ud, int result) {
  inflight *x = ud;
  engine *e = x->e;
  run *r = e->run;
  if (result == 1) {
    r->acked++;
    if (r->nlat < r->caplat) r->lat_ms[r->nlat++] = (double)(uv_hrtime() - x->sent_ns) / 1e6;
  } else if (result == 0) {
    r->refused++;
  }
  e->inflight--;
  lc_request_clear(&x->req);
  uv_close((uv_handle_t *)&x->hold, (uv_close_cb)free);
  if (result >= 0) pump(e);
}

/* The request's page is done: one record, with its acknowledgement. */
static void finish(inflight *x) {
  engine *e = x->e;
  char line[400];
  int len = snprintf(line, sizeof line,
                     "{\"url\":\"%s\",\"status\":200,\"depth\":%d,\"title\":\"Item %" PRIu64
                     " of the catalog\",\"links\":%d,\"bytes\":18342,\"ms\":41,\"text\":\"",
                     x->req.url, x->req.depth, page_of(x->req.url), FANOUT);
  while (len < 296) line[len++] = 'x';
  memcpy(line + len, "\"}", 3);
  len += 2;
  const char *lines[] = {line};
  size_t lens[] = {(size_t)len};
  x->sent_ns = uv_hrtime();
  if (lc_rfront_commit(e->f, x->req.id, lines, lens, 1, commit_done, x) != 0) {
    fprintf(stderr, "redis_bench: commit of %s not taken\n", x->req.url);
    e->run->errors++;
    e->inflight--;
    lc_request_clear(&x->req);
    uv_close((uv_handle_t *)&x->hold, (uv_close_cb)free);
  }
}

static void hold_cb(uv_timer_t *t) { finish(t->data); }

static void start(engine *e, inflight *x) {
  run *r = e->run;
  uint64_t p = page_of(x->req.url);
  char url[160];
  for (int k = 0; k < FANOUT; k++) {
    uint64_t c = HOSTS + p * FANOUT + (uint64_t)k;
    if (c >= r->pages) break;
    page_url(c, url, sizeof url);
    if (lc_frontier_push(e->f, url, x->req.depth + 1, NULL, 0) < 0) r->errors++;
    r->pushes++;
  }
  if (p >= HOSTS) { /* a link back to the parent: already seen */
    page_url((p - HOSTS) / FANOUT, url, sizeof url);
    if (lc_frontier_push(e->f, url, x->req.depth + 1, NULL, 0) < 0) r->errors++;
    r->pushes++;
  }
  if (r->hold_ms > 0)
    uv_timer_start(&x->hold, hold_cb, (uint64_t)r->hold_ms, 0);
  else
    finish(x);
}

static void pump(engine *e) {
  run *r = e->run;
  while (e->inflight < r->conc) {
    inflight *x = calloc(1, sizeof *x);
    if (!x) abort();
    int rc = lc_frontier_pop(e->f, 0, NULL, NULL, &x->req, NULL);
    if (rc != 1) {
      free(x);
      if (rc < 0) r->errors++;
      break;
    }
    x->e = e;
    uv_timer_init(r->loop, &x->hold);
    x->hold.data = x;
    e->inflight++;
    start(e, x);
  }
}

static int over(const run *r) {
  for (int i = 0; i < r->n; i++)
    if (r->eng[i].inflight || lc_frontier_pending(r->eng[i].f)) return 0;
  return 1;
}

static void wake(void *ud) {
  engine *e = ud;
  if (lc_rfront_failure(e->f)) {
    fprintf(stderr, "redis_bench: %s\n", lc_rfront_failure(e->f));
    exit(1);
  }
  pump(e);
}

/* The job's own poll, as the engine has: an empty pop is asked again after a while. */
static void poll_cb(uv_timer_t *t) {
  run *r = t->data;
  for (int i = 0; i < r->n; i++) pump(&r->eng[i]);
  if (over(r)) uv_stop(r->loop);
}

static void deadline_cb(uv_timer_t *t) {
  run *r = t->data;
  r->timed_out = 1;
  uv_stop(r->loop);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double cpu_of_self(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

/* utime + stime of a process, in seconds; -1 when unreadable. */
static double cpu_of_pid(long pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  FILE *fp = fopen(path, "r");
  if (!fp) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, fp);
  fclose(fp);
  buf[n] = 0;
  char *s = strrchr(buf, ')');
  unsigned long ut, st;
  if (!s || sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
    return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static redisContext *sync_conn(int port) {
  redisContext *c = redisConnect("127.0.0.1", port);
  if (!c || c->err) {
    fprintf(stderr, "redis_bench: cannot connect to 127.0.0.1:%d\n", port);
    exit(1);
  }
  return c;
}

static long long info_field(redisContext *c, const char *section, const char *field) {
  redisReply *rep = redisCommand(c, "INFO %s", section);
  long long v = -1;
  if (rep && rep->type == REDIS_REPLY_STRING) {
    char key[64];
    snprintf(key, sizeof key, "\r\n%s:", field);
    const char *s = strstr(rep->str, key);
    if (s) v = strtoll(s + strlen(key), NULL, 10);
  }
  if (rep) freeReplyObject(rep);
  return v;
}

static int bench(int port, int n, uint64_t pages, int conc, int hold_ms, int lease_ms) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  run r = {.loop = &loop, .n = n, .conc = conc, .hold_ms = hold_ms, .pages = pages};
  r.caplat = pages;
  r.lat_ms = malloc(pages * sizeof *r.lat_ms);
  r.eng = calloc((size_t)n, sizeof *r.eng);
  if (!r.lat_ms || !r.eng) abort();
  char url[256];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d/0?crawl=bench-%d-%d&lease_ms=%d", port,
           (int)getpid(), n, lease_ms);
  for (int i = 0; i < n; i++) {
    char err[512];
    lc_rfront_opts o = {.loop = &loop, .url = url, .prefetch = conc, .wake = wake, .ud = &r.eng[i]};
    r.eng[i].run = &r;
    r.eng[i].f = lc_rfront_open(&o, err, sizeof err);
    if (!r.eng[i].f) {
      fprintf(stderr, "redis_bench: %s\n", err);
      return 1;
    }
  }
  /* The seeds, pushed by engine 0 and flushed before the clock starts. */
  for (uint64_t p = 0; p < HOSTS && p < pages; p++) {
    char u[160];
    page_url(p, u, sizeof u);
    if (lc_frontier_push(r.eng[0].f, u, 0, NULL, 0) != 1) {
      fprintf(stderr, "redis_bench: seed %s refused\n", u);
      return 1;
    }
  }
  while (lc_frontier_accepted(r.eng[0].f) < (pages < HOSTS ? pages : HOSTS))
    uv_run(&loop, UV_RUN_ONCE);

  redisContext *sc = sync_conn(port);
  long pid = (long)info_field(sc, "server", "process_id");
  double srv0 = cpu_of_pid(pid), me0 = cpu_of_self(), t0 = now_s();
  uv_timer_init(&loop, &r.poll);
  r.poll.data = &r;
  uv_timer_start(&r.poll, poll_cb, 0, 10);
  uv_timer_init(&loop, &r.deadline);
  r.deadline.data = &r;
  uv_timer_start(&r.deadline, deadline_cb, 600000, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  double secs = now_s() - t0, me = cpu_of_self() - me0, srv = cpu_of_pid(pid) - srv0;

  lc_rfront_counts tot = {0};
  for (int i = 0; i < n; i++) {
    lc_rfront_counts c;
    lc_rfront_get_counts(r.eng[i].f, &c);
    tot.popped += c.popped;
    tot.pop_calls += c.pop_calls;
    tot.renew_calls += c.renew_calls;
    tot.renewed += c.renewed;
    tot.lost += c.lost;
    tot.pushed += c.pushed;
    tot.push_calls += c.push_calls;
    tot.ack_calls += c.ack_calls;
    tot.started_calls += c.started_calls;
  }
  double calls_per_ack = (double)(tot.pop_calls + tot.push_calls + tot.ack_calls +
                                  tot.renew_calls + tot.started_calls) /
                         (double)(r.acked ? r.acked : 1);
  lc_rfront_status st;
  char err[512];
  if (lc_rfront_get_status(url, &st, err, sizeof err) != 0) {
    fprintf(stderr, "redis_bench: %s\n", err);
    return 1;
  }
  long long mem = info_field(sc, "memory", "used_memory");
  redisFree(sc);
  uv_timer_stop(&r.poll);
  uv_timer_stop(&r.deadline);
  uv_close((uv_handle_t *)&r.poll, NULL);
  uv_close((uv_handle_t *)&r.deadline, NULL);
  for (int i = 0; i < n; i++) lc_frontier_destroy(r.eng[i].f);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);

  /* A refused commit is the contract at work (a lease expired: another engine did the page),
   * so it is reported, not fatal; every page must still be on the server once. */
  if (r.timed_out || r.errors || (uint64_t)st.records != pages || (uint64_t)st.done != pages ||
      r.acked != pages) {
    fprintf(stderr,
            "redis_bench: %d engines: the crawl did not end as the contract says (timed out %d, "
            "errors %" PRIu64 ", refused %" PRIu64 ", acked %" PRIu64 ", server: %" PRId64
            " records, %" PRId64 " done, of %" PRIu64 " pages)\n",
            n, r.timed_out, r.errors, r.refused, r.acked, st.records, st.done, pages);
    return 1;
  }
  qsort(r.lat_ms, r.nlat, sizeof *r.lat_ms, cmp_double);
  double p50 = r.lat_ms[r.nlat / 2], p99 = r.lat_ms[(size_t)((double)r.nlat * 0.99)],
         pmax = r.lat_ms[r.nlat - 1];
  printf("{\"engines\":%d,\"concurrency\":%d,\"hold_ms\":%d,\"lease_ms\":%d,\"pages\":%" PRIu64
         ",\"s\":%.3f,\"acked_per_s\":%.0f,\"popped_per_s\":%.0f,\"pop_calls_per_s\":%.0f,"
         "\"pushes_per_s\":%.0f,\"push_calls\":%" PRIu64 ",\"ack_calls\":%" PRIu64
         ",\"started_calls\":%" PRIu64 ",\"calls_per_ack\":%.3f,\"renew_calls\":%" PRIu64 ",\"leases_renewed\":%" PRIu64
         ",\"leases_lost\":%" PRIu64 ",\"refused\":%" PRIu64
         ",\"commit_ms_p50\":%.3f,\"commit_ms_p99\":%.3f,"
         "\"commit_ms_max\":%.3f,\"cpu_bench_s\":%.2f,\"cpu_redis_s\":%.2f,"
         "\"redis_used_memory\":%lld}\n",
         n, conc, hold_ms, lease_ms, pages, secs, (double)r.acked / secs, (double)tot.popped / secs,
         (double)tot.pop_calls / secs, (double)r.pushes / secs, tot.push_calls, tot.ack_calls,
         tot.started_calls, calls_per_ack, tot.renew_calls, tot.renewed,
         tot.lost, r.refused, p50, p99, pmax, me, srv, mem);
  fprintf(stderr,
          "%2d engines x C=%d: %7" PRIu64
          " acks in %6.2f s = %7.0f acks/s, %7.0f popped/s (%6.0f "
          "pop calls/s), %7.0f pushes/s, %.2f server calls per ack, %" PRIu64 " renewals, %" PRIu64
          " refused; commit p50 %.2f ms p99 %.2f ms "
          "max %.1f ms; cpu bench %.0f%% redis %.0f%%\n",
          n, conc, r.acked, secs, (double)r.acked / secs, (double)tot.popped / secs,
          (double)tot.pop_calls / secs, (double)r.pushes / secs, calls_per_ack, tot.renew_calls,
          r.refused, p50,
          p99, pmax, 100 * me / secs, 100 * srv / secs);
  fflush(stdout);
  free(r.lat_ms);
  free(r.eng);
  return 0;
}

/* Buckets of the seen set not (or no longer) intset-encoded, and the largest bucket. */
static void bucket_census(redisContext *c, const char *prefix, long *not_intset, long *largest) {
  *not_intset = *largest = 0;
  for (unsigned b = 0; b < (1u << 15); b++) {
    redisAppendCommand(c, "OBJECT ENCODING %ss:%u", prefix, b);
    redisAppendCommand(c, "SCARD %ss:%u", prefix, b);
  }
  for (unsigned b = 0; b < (1u << 15); b++) {
    redisReply *e = NULL, *n = NULL;
    if (redisGetReply(c, (void **)&e) != REDIS_OK || redisGetReply(c, (void **)&n) != REDIS_OK) {
      fprintf(stderr, "redis_bench: census: %s\n", c->errstr);
      exit(1);
    }
    if (e->type == REDIS_REPLY_STRING && strcmp(e->str, "intset") != 0) (*not_intset)++;
    if (n->type == REDIS_REPLY_INTEGER && n->integer > *largest) *largest = (long)n->integer;
    freeReplyObject(e);
    freeReplyObject(n);
  }
}

static int seen(int port, uint64_t n) {
  redisContext *c = sync_conn(port);
  char prefix[64];
  snprintf(prefix, sizeof prefix, "lc:{seen-%d}:", (int)getpid());
  long long base = info_field(c, "memory", "used_memory");
  uint64_t marks[] = {1000000, 2000000, 5000000, 10000000, 20000000, 50000000, 100000000};
  size_t mi = 0;
  double t0 = now_s();
  const uint64_t batch = 10000;
  for (uint64_t i = 0; i < n;) {
    uint64_t end = i + batch < n ? i + batch : n;
    for (uint64_t k = i; k < end; k++) {
      char url[160];
      int len = snprintf(url, sizeof url,
                         "https://host%" PRIu64 ".example.com/catalog/item-%" PRIu64 ".html",
                         k % 1000, k);
      uint64_t fp = lc_frontier_fingerprint(url, (size_t)len);
      redisAppendCommand(c, "SADD %ss:%u %" PRId64, prefix, (unsigned)(fp >> 49), (int64_t)fp);
    }
    for (uint64_t k = i; k < end; k++) {
      redisReply *rep = NULL;
      if (redisGetReply(c, (void **)&rep) != REDIS_OK || rep->type != REDIS_REPLY_INTEGER) {
        fprintf(stderr, "redis_bench: SADD: %s\n", rep && rep->str ? rep->str : c->errstr);
        return 1;
      }
      freeReplyObject(rep);
    }
    i = end;
    while (mi < sizeof marks / sizeof *marks && marks[mi] < i) mi++;
    if (i == n || (mi < sizeof marks / sizeof *marks && marks[mi] == i)) {
      long long mem = info_field(c, "memory", "used_memory");
      long not_intset, largest;
      bucket_census(c, prefix, &not_intset, &largest);
      printf("{\"urls\":%" PRIu64
             ",\"used_memory_delta\":%lld,\"bytes_per_url\":%.2f,"
             "\"buckets_not_intset\":%ld,\"largest_bucket\":%ld,\"s\":%.1f}\n",
             i, mem - base, (double)(mem - base) / (double)i, not_intset, largest, now_s() - t0);
      fprintf(stderr,
              "seen set: %10" PRIu64
              " URLs  %8.1f MB  %6.2f B/URL  %ld buckets not "
              "intset, largest %ld\n",
              i, (double)(mem - base) / 1048576.0, (double)(mem - base) / (double)i, not_intset,
              largest);
      fflush(stdout);
    }
  }
  redisFree(c);
  return 0;
}

int main(int argc, char **argv) {
  int port = 0, conc = 8, hold = 0, lease = 1500;
  uint64_t pages = 100000, nseen = 0;
  const char *engines = "1,4,16";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--port") && i + 1 < argc)
      port = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--engines") && i + 1 < argc)
      engines = argv[++i];
    else if (!strcmp(argv[i], "--pages") && i + 1 < argc)
      pages = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--concurrency") && i + 1 < argc)
      conc = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--hold") && i + 1 < argc)
      hold = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--lease-ms") && i + 1 < argc)
      lease = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--seen") && i + 1 < argc)
      nseen = strtoull(argv[++i], NULL, 10);
    else
      port = -1;
  }
  if (port <= 0 || conc < 1 || pages < 1 || lease < 200) {
    fprintf(stderr,
            "usage: redis_bench --port PORT [--engines 1,4,16] [--pages P] "
            "[--concurrency C] [--hold MS] [--lease-ms MS] | --seen N\n");
    return 2;
  }
  if (nseen) return seen(port, nseen);
  lc_log_set_level(LC_LOG_WARN);
  for (const char *s = engines; *s;) {
    int n = atoi(s);
    if (n < 1) {
      fprintf(stderr, "redis_bench: bad --engines %s\n", engines);
      return 2;
    }
    if (bench(port, n, pages, conc, hold, lease) != 0) return 1;
    s = strchr(s, ',');
    if (!s) break;
    s++;
  }
  return 0;
}
