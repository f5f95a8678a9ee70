/* test_store.c: unit tests for engine/store/store.c: the frontier contract of frontier.h on
 * disk (the cases of test_frontier.c, run against the store), records and the output position,
 * counters, hosts, robots freshness, resume after a crash, every bad input lc_store_open
 * refuses, a full disk, and a child killed with SIGKILL at random moments. Files live in a
 * fresh directory under $TMPDIR, removed at the end. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "test.h"

static char dir[256];
static int file_no;

/* The fake clocks of most tests: wall = a fixed epoch + the monotonic ms. */
static int64_t fake_mono;
static int64_t fake_wall_extra; /* added to the wall clock only (robots age) */
static int64_t fake_clock(void *ud, int wall) {
  (void)ud;
  return wall ? 1700000000000LL + fake_mono + fake_wall_extra : fake_mono;
}

/* A fresh path in the test directory. */
static const char *new_path(char *buf, size_t n) {
  snprintf(buf, n, "%s/state%d.db", dir, ++file_no);
  return buf;
}

static lc_store *open_store(const char *path, const char *hash, int *code, char *err,
                            size_t errlen) {
  lc_store_opts o = {.path = path, .job_hash = hash, .clock_ms = fake_clock};
  return lc_store_open(&o, err, errlen, code);
}

/* The contract tests' frontier: a store in a new file, closed by store_end. */
static lc_store *cur;
static lc_frontier *store_new(size_t max_pages) {
  char path[300], err[512];
  int code = 0;
  cur = open_store(new_path(path, sizeof path), "h1", &code, err, sizeof err);
  if (!cur) {
    fprintf(stderr, "  open: %s\n", err);
    abort();
  }
  return lc_store_frontier(cur, max_pages);
}

static void store_end(lc_frontier *f) {
  lc_frontier_destroy(f); /* only detaches */
  if (!f) return;
  CHECK_INT(lc_store_close(cur), 0);
  cur = NULL;
}

/* The frontier contract's cases (frontier_contract.h), on this backend. */
#define CONTRACT_NEW(max) store_new(max)
#define CONTRACT_END(f) store_end(f)
#include "frontier_contract.h"

/* A naive model of the contract (O(n) scans) to check the heaps against with random steps. */
typedef struct model_req {
  uint64_t id;
  int host;
  int64_t not_before;
  uint64_t seq;
} model_req;

typedef struct model {
  model_req ready[4096], waiting[4096], out[4096];
  int n_ready, n_waiting, n_out;
  uint64_t seq;
} model;

static void model_release(model *m, int64_t now) {
  for (;;) {
    int best = -1;
    for (int i = 0; i < m->n_waiting; i++) {
      if (m->waiting[i].not_before > now) continue;
      if (best < 0 || m->waiting[i].not_before < m->waiting[best].not_before ||
          (m->waiting[i].not_before == m->waiting[best].not_before &&
           m->waiting[i].seq < m->waiting[best].seq))
        best = i;
    }
    if (best < 0) return;
    m->ready[m->n_ready++] = m->waiting[best];
    m->waiting[best] = m->waiting[--m->n_waiting];
  }
}

static int host_of(const char *url) { return atoi(url + strlen("http://h")); }

static int blocked_mask;
static int mask_admit(void *ud, const char *url) {
  (void)ud;
  return !(blocked_mask >> host_of(url) & 1);
}

TEST(random_steps_match_a_model) {
  static model m;
  memset(&m, 0, sizeof m);
  lc_frontier *f = store_new(0);
  lc_request held[4096];
  int n_held = 0, mismatches = 0;
  int64_t now = 0;
  uint64_t next_id = 1;
  srand(12345);
  for (int step = 0; step < 20000 && !mismatches; step++) {
    int op = rand() % 10;
    now += rand() % 3;
    if (op < 4 && next_id < 3000) {
      char url[64];
      int h = rand() % 8;
      snprintf(url, sizeof url, "http://h%d.test/%llu", h, (unsigned long long)next_id);
      if (lc_frontier_push(f, url, 0, NULL, now) != 1) mismatches++;
      model_release(&m, now);
      m.ready[m.n_ready++] = (model_req){next_id++, h, 0, m.seq++};
    } else if (op < 7) {
      blocked_mask = rand() % 256;
      lc_request r;
      int64_t next;
      int rc = lc_frontier_pop(f, now, mask_admit, NULL, &r, &next);
      model_release(&m, now);
      int at = -1;
      for (int i = 0; i < m.n_ready && at < 0; i++)
        if (!(blocked_mask >> m.ready[i].host & 1)) at = i;
      int64_t want_next = -1;
      for (int i = 0; i < m.n_waiting; i++)
        if (want_next < 0 || m.waiting[i].not_before < want_next)
          want_next = m.waiting[i].not_before;
      if (next != want_next) mismatches++;
      if (at < 0) {
        if (rc != 0) mismatches++;
        continue;
      }
      if (rc != 1 || r.id != m.ready[at].id || host_of(r.url) != m.ready[at].host) {
        fprintf(stderr, "    step %d: got id %llu, model says %llu\n", step,
                (unsigned long long)r.id, (unsigned long long)m.ready[at].id);
        mismatches++;
      }
      m.out[m.n_out++] = m.ready[at];
      memmove(&m.ready[at], &m.ready[at + 1], (size_t)(m.n_ready - at - 1) * sizeof m.ready[0]);
      m.n_ready--;
      held[n_held++] = r;
    } else if (n_held > 0) {
      int k = rand() % n_held;
      lc_request r = held[k];
      held[k] = held[--n_held];
      int mo = 0;
      while (m.out[mo].id != r.id) mo++;
      model_req q = m.out[mo];
      m.out[mo] = m.out[--m.n_out];
      if (op < 9) {
        q.not_before = now + rand() % 20;
        q.seq = m.seq++;
        m.waiting[m.n_waiting++] = q;
        if (lc_frontier_retry(f, &r, q.not_before) != 0) mismatches++;
      } else {
        if (lc_frontier_done(f, r.id, 1) != 0) mismatches++;
        lc_request_clear(&r);
      }
    }
    if (lc_frontier_pending(f) != (size_t)(m.n_ready + m.n_waiting)) mismatches++;
    if (step % 97 == 0 && lc_store_flush(cur) != 0) mismatches++;
  }
  CHECK_INT(mismatches, 0);
  for (int i = 0; i < n_held; i++) lc_request_clear(&held[i]);
  store_end(f);
}

/* ---- beyond the contract: what the file keeps ---------------------------------------------- */

/* Collects each_record's lines. */
typedef struct seen_records {
  int n;
  uint64_t seq[16];
  char line[16][64];
  int stop_after;
} seen_records;

static int collect(void *ud, uint64_t seq, const char *line, size_t len) {
  seen_records *c = ud;
  if (c->n < 16) {
    c->seq[c->n] = seq;
    snprintf(c->line[c->n], sizeof c->line[0], "%.*s", (int)len, line);
  }
  c->n++;
  return c->stop_after && c->n >= c->stop_after;
}

TEST(commit_records_and_output_position) {
  char path[300], err[512];
  int code = 0;
  lc_store *s = open_store(new_path(path, sizeof path), "h1", &code, err, sizeof err);
  CHECK(s != NULL);
  CHECK_INT(lc_store_resumed(s), 0);
  lc_frontier *f = lc_store_frontier(s, 0);
  lc_request a, b, c;
  lc_frontier_push(f, "http://a.com/1", 0, NULL, 0);
  lc_frontier_push(f, "http://a.com/2", 0, NULL, 0);
  lc_frontier_push(f, "http://a.com/3", 0, NULL, 0);
  CHECK_INT(lc_frontier_pop(f, 0, NULL, NULL, &a, NULL), 1);
  CHECK_INT(lc_frontier_pop(f, 0, NULL, NULL, &b, NULL), 1);
  CHECK_INT(lc_frontier_pop(f, 0, NULL, NULL, &c, NULL), 1);
  const char *lines[] = {"{\"n\":1}", "{\"n\":2}"};
  size_t lens[] = {7, 7};
  CHECK_INT(lc_store_commit(s, a.id, lines, lens, 2), 0);
  CHECK_INT(lc_store_commit(s, a.id, lines, lens, 2), LC_FRONTIER_ENOENT); /* not twice */
  CHECK_INT(lc_store_commit(s, 999, lines, lens, 1), LC_FRONTIER_ENOENT);
  CHECK_INT(lc_frontier_done(f, a.id, 1), LC_FRONTIER_ENOENT); /* committed is ended */
  CHECK_INT(lc_store_commit(s, b.id, NULL, NULL, 0), 0);       /* done, no records */
  CHECK_INT(lc_store_commit(s, c.id, NULL, lens, 1), LC_STORE_EINVAL);
  CHECK(lc_store_unflushed(s) > 0);
  seen_records got = {0};
  CHECK_INT(lc_store_each_record(s, 0, collect, &got), 0);
  CHECK_INT(got.n, 0); /* not flushed yet: could still vanish */
  CHECK_INT(lc_store_flush(s), 0);
  CHECK_INT(lc_store_unflushed(s), 0);
  CHECK_INT(lc_store_each_record(s, 0, collect, &got), 0);
  CHECK_INT(got.n, 2);
  CHECK_INT(got.seq[0], 1);
  CHECK_INT(got.seq[1], 2);
  CHECK_STR(got.line[0], "{\"n\":1}");
  CHECK_STR(got.line[1], "{\"n\":2}");
  memset(&got, 0, sizeof got);
  CHECK_INT(lc_store_each_record(s, 1, collect, &got), 0);
  CHECK_INT(got.n, 1);
  CHECK_INT(got.seq[0], 2);
  memset(&got, 0, sizeof got);
  got.stop_after = 1;
  CHECK_INT(lc_store_each_record(s, 0, collect, &got), 0);
  CHECK_INT(got.n, 1);
  uint64_t seq = 7;
  int64_t off = 7;
  CHECK_INT(lc_store_get_output(s, &seq, &off), 0);
  CHECK_INT(seq, 0);
  CHECK_INT(off, 0);
  char opath[64] = "x";
  CHECK_INT(lc_store_get_output_path(s, opath, sizeof opath), 0); /* none stored yet */
  CHECK_INT(lc_store_set_output(s, 2, 16), 0);
  CHECK_INT(lc_store_set_output_path(s, "/data/out.jsonl"), 0);
  CHECK_INT(lc_frontier_done(f, c.id, 0), 0);
  lc_store_status st;
  CHECK_INT(lc_store_get_status(s, &st), 0);
  CHECK_INT(st.done, 2);
  CHECK_INT(st.failed, 1);
  CHECK_INT(st.queued, 0);
  CHECK_INT(st.leased, 0);
  CHECK_INT(st.records, 2);
  CHECK_STR(st.job_hash, "h1");
  CHECK_INT(st.started_ms, 1700000000000LL + fake_mono);
  lc_request_clear(&a);
  lc_request_clear(&b);
  lc_request_clear(&c);
  CHECK_INT(lc_store_close(s), 0);

  s = open_store(path, "h1", &code, err, sizeof err);
  CHECK(s != NULL);
  CHECK_INT(lc_store_resumed(s), 1);
  CHECK_INT(lc_store_get_output(s, &seq, &off), 0);
  CHECK_INT(seq, 2);
  CHECK_INT(off, 16);
  CHECK_INT(lc_store_get_output_path(s, opath, sizeof opath), 1);
  CHECK_STR(opath, "/data/out.jsonl");
  CHECK_INT(lc_store_get_output_path(s, opath, 6), 1); /* cut to fit, NUL-terminated */
  CHECK_STR(opath, "/data");
  memset(&got, 0, sizeof got);
  CHECK_INT(lc_store_each_record(s, 0, collect, &got), 0);
  CHECK_INT(got.n, 2);
  f = lc_store_frontier(s, 0);
  CHECK_INT(lc_frontier_accepted(f), 3);
  CHECK_INT(lc_frontier_pending(f), 0);
  CHECK_INT(lc_frontier_push(f, "http://a.com/2", 0, NULL, 0), 0); /* seen survives */
  CHECK_INT(lc_frontier_push(f, "http://a.com/4", 0, NULL, 0), 1);
  lc_request d;
  CHECK_INT(lc_frontier_pop(f, 0, NULL, NULL, &d, NULL), 1);
  CHECK_INT(d.id, 4); /* ids go on */
  CHECK_INT(lc_store_commit(s, d.id, lines + 1, lens + 1, 1), 0);
  CHECK_INT(lc_store_flush(s), 0);
  memset(&got, 0, sizeof got);
  CHECK_INT(lc_store_each_record(s, 2, collect, &got), 0);
  CHECK_INT(got.n, 1);
  CHECK_INT(got.seq[0], 3); /* seq goes on from the file */
  lc_request_clear(&d);
  CHECK_INT(lc_store_close(s), 0);
}

TEST(counters_hosts_and_robots) {
  char path[300], err[512];
  int code = 0;
  fake_wall_extra = 0;
  lc_store *s = open_store(new_path(path, sizeof path), "h1", &code, err, sizeof err);
  CHECK_INT(lc_store_counter(s, "pages_ok"), 0);
  CHECK_INT(lc_store_counter_add(s, "pages_ok", 3), 0);
  CHECK_INT(lc_store_counter_add(s, "pages_ok", 2), 0);
  CHECK_INT(lc_store_counter_add(s, "retries", -1), 0);
  CHECK_INT(lc_store_counter_add(s, "", 1), LC_STORE_EINVAL);
  CHECK_INT(lc_store_counter(s, "pages_ok"), 5);
  CHECK_INT(lc_store_host_get(s, "a.com"), 0);
  CHECK_INT(lc_store_host_set(s, "a.com", 1700000005000LL), 0);
  CHECK_INT(lc_store_host_set(s, "a.com", 1700000006000LL), 0);
  CHECK_INT(lc_store_host_set(s, "b.com:8080", 42), 0);
  CHECK_INT(lc_store_host_get(s, "a.com"), 1700000006000LL);
  int status = 0;
  char *text = NULL;
  size_t len = 9;
  CHECK_INT(lc_store_robots_get(s, "http://a.com", &status, &text, &len), 0);
  CHECK(text == NULL);
  CHECK_INT(lc_store_robots_put(s, "http://a.com", 200, "User-agent: *\nDisallow: /x\n", 27), 0);
  CHECK_INT(lc_store_robots_put(s, "http://b.com", 404, NULL, 0), 0);
  CHECK_INT(lc_store_robots_get(s, "http://a.com", &status, &text, &len), 1);
  CHECK_INT(status, 200);
  CHECK_INT(len, 27);
  CHECK_STR(text, "User-agent: *\nDisallow: /x\n");
  free(text);
  CHECK_INT(lc_store_close(s), 0);

  fake_wall_extra = 24LL * 3600 * 1000 - 1; /* a day later, less a millisecond */
  s = open_store(path, "h1", &code, err, sizeof err);
  CHECK_INT(lc_store_counter(s, "pages_ok"), 5);
  CHECK_INT(lc_store_counter(s, "retries"), -1);
  CHECK_INT(lc_store_host_get(s, "a.com"), 1700000006000LL);
  CHECK_INT(lc_store_host_get(s, "b.com:8080"), 42);
  CHECK_INT(lc_store_robots_get(s, "http://b.com", &status, &text, &len), 1);
  CHECK_INT(status, 404);
  CHECK_INT(len, 0);
  CHECK_STR(text, "");
  free(text);
  fake_wall_extra++; /* 24 h: stale */
  CHECK_INT(lc_store_robots_get(s, "http://a.com", &status, &text, &len), 0);
  CHECK(text == NULL);
  CHECK_INT(lc_store_robots_put(s, "http://a.com", 200, "new", 3), 0); /* fetched again */
  CHECK_INT(lc_store_robots_get(s, "http://a.com", &status, &text, &len), 1);
  CHECK_STR(text, "new");
  free(text);
  /* a host known only from its politeness time still queues its URLs */
  lc_frontier *f = lc_store_frontier(s, 0);
  CHECK_INT(lc_frontier_push(f, "http://b.com:8080/x", 0, NULL, 0), 1);
  lc_request r;
  CHECK_INT(lc_frontier_pop(f, 0, NULL, NULL, &r, NULL), 1);
  CHECK_STR(r.url, "http://b.com:8080/x");
  lc_request_clear(&r);
  CHECK_INT(lc_store_close(s), 0);
  fake_wall_extra = 0;
}

/* A crash: a child pushes, flushes, leases, retries, does more without flushing and dies. */
TEST(resume_keeps_flushed_work_and_requeues_leases) {
  char path[300], err[512];
  int code = 0;
  new_path(path, sizeof path);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    lc_store *s = open_store(path, "h1", &code, err, sizeof err);
    lc_frontier *f = lc_store_frontier(s, 0);
    char url[64];
    for (int i = 0; i < 10; i++) {
      snprintf(url, sizeof url, "http://h%d.com/%d", i % 3, i);
      lc_frontier_push(f, url, i, i == 1 ? "{\"d\":1}" : NULL, 0);
    }
    lc_request r[3];
    for (int i = 0; i < 3; i++) lc_frontier_pop(f, 0, NULL, NULL, &r[i], NULL);
    r[1].throttles = 2;
    r[1].crashes = 1;
    lc_frontier_retry(f, &r[1], 5000); /* waits; attempt 1 */
    const char *line = "{}";
    size_t len = 2;
    lc_store_commit(s, r[2].id, &line, &len, 1);
    lc_store_counter_add(s, "pages_ok", 1);
    if (lc_store_flush(s) != 0) _exit(3);
    /* lost with the crash: */
    lc_frontier_push(f, "http://lost.com/1", 0, NULL, 0);
    lc_frontier_done(f, r[0].id, 1);
    lc_store_counter_add(s, "pages_ok", 1);
    kill(getpid(), SIGKILL); /* a crash: no close, no flush */
    _exit(4);
  }
  int status;
  CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  lc_store *s = open_store(path, "h1", &code, err, sizeof err);
  CHECK(s != NULL);
  if (!s) return;
  CHECK_INT(lc_store_resumed(s), 1);
  CHECK_INT(lc_store_counter(s, "pages_ok"), 1);
  lc_frontier *f = lc_store_frontier(s, 0);
  CHECK_INT(lc_frontier_accepted(f), 10);
  CHECK_INT(lc_frontier_pending(f), 9); /* 7 queued, 1 leased back, 1 waiting */
  lc_store_status st;
  CHECK_INT(lc_store_get_status(s, &st), 0);
  CHECK_INT(st.queued, 9);
  CHECK_INT(st.leased, 0);
  CHECK_INT(st.done, 1);
  CHECK_INT(st.records, 1);
  CHECK_INT(lc_frontier_push(f, "http://lost.com/1", 0, NULL, 0), 1); /* never accepted */
  CHECK_INT(lc_frontier_push(f, "http://h0.com/0", 0, NULL, 0), 0);
  lc_request r;
  int64_t next = 0;
  /* the leased one comes back first (its ready order is kept), then the rest */
  CHECK_INT(lc_frontier_pop(f, 0, NULL, NULL, &r, &next), 1);
  CHECK_INT(r.id, 1);
  CHECK_INT(r.attempt, 0);
  CHECK_INT(r.lost, 1); /* the crash held it: a lost lease, counted */
  CHECK_INT(next, 5000);
  lc_request_clear(&r);
  int n = 1;
  while (lc_frontier_pop(f, 0, NULL, NULL, &r, NULL) == 1) {
    CHECK(r.id != 2 && r.id != 3);
    CHECK_INT(r.lost, 0);
    if (r.id == 4) CHECK_INT(r.depth, 3);
    n++;
    lc_request_clear(&r);
  }
  CHECK_INT(n, 9); /* 1, 4..10 and lost.com */
  CHECK_INT(lc_frontier_pop(f, 5000, NULL, NULL, &r, NULL), 1);
  CHECK_INT(r.id, 2);
  CHECK_INT(r.attempt, 1);
  CHECK_INT(r.throttles, 2);
  CHECK_INT(r.crashes, 1);
  CHECK_INT(r.lost, 0); /* retried before the crash: not held by it */
  CHECK_STR(r.data_json, "{\"d\":1}");
  CHECK_INT(r.not_before_ms, 5000);
  lc_request_clear(&r);
  CHECK_INT(lc_store_close(s), 0);
}

/* A child opens the file, takes `take` requests (flushed: the leases are on disk) and dies by
 * SIGKILL holding them, or closes the store cleanly when `clean`. */
static void run_and_stop(const char *path, int take, int clean) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    char err[512];
    int code = 0;
    lc_store *s = open_store(path, "h1", &code, err, sizeof err);
    if (!s) _exit(2);
    lc_frontier *f = lc_store_frontier(s, 0);
    lc_request r;
    for (int i = 0; i < take; i++) {
      if (lc_frontier_pop(f, 0, NULL, NULL, &r, NULL) != 1) _exit(3);
      lc_request_clear(&r); /* handed out, never ended */
    }
    if (lc_store_flush(s) != 0) _exit(4);
    if (clean) _exit(lc_store_close(s) == 0 ? 0 : 5);
    kill(getpid(), SIGKILL);
    _exit(6);
  }
  int status;
  CHECK(waitpid(pid, &status, 0) == pid);
  if (clean)
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  else
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

/* The lost-lease count: a run killed holding a request (SIGKILL) counts one for it at the next
 * open, per death; a run that closes cleanly (an interrupt: lc_store_close) gives what it
 * holds back uncounted, and so does a release. The count survives retries. */
TEST(lost_leases_count_kills_not_clean_closes) {
  char path[300], err[512];
  int code = 0;
  new_path(path, sizeof path);
  lc_store *s = open_store(path, "h1", &code, err, sizeof err);
  lc_frontier *f = lc_store_frontier(s, 0);
  CHECK_INT(lc_frontier_push(f, "http://poison.com/1", 0, NULL, 0), 1);
  CHECK_INT(lc_frontier_push(f, "http://ok.com/1", 0, NULL, 0), 1);
  CHECK_INT(lc_store_close(s), 0);

  run_and_stop(path, 1, 0); /* killed holding poison.com/1 */
  run_and_stop(path, 1, 0); /* it comes back first: killed again */
  run_and_stop(path, 2, 1); /* both taken, then a clean close */
  s = open_store(path, "h1", &code, err, sizeof err);
  CHECK(s != NULL);
  if (!s) return;
  f = lc_store_frontier(s, 0);
  lc_store_status st;
  CHECK_INT(lc_store_get_status(s, &st), 0);
  CHECK_INT(st.queued, 2);
  CHECK_INT(st.leased, 0);
  lc_request r;
  CHECK_INT(lc_frontier_pop(f, 0, NULL, NULL, &r, NULL), 1);
  CHECK_STR(r.url, "http://poison.com/1");
  CHECK_INT(r.lost, 2); /* two kills; the clean close added nothing */
  CHECK_INT(r.attempt, 0);
  CHECK_INT(lc_frontier_retry(f, &r, 0), 0); /* a retry keeps the count */
  CHECK_INT(lc_frontier_pop(f, 0, NULL, NULL, &r, NULL), 1);
  CHECK_STR(r.url, "http://ok.com/1");
  CHECK_INT(r.lost, 0);
  CHECK_INT(lc_frontier_release(f, &r), 0); /* given back: not lost */
  CHECK_INT(lc_frontier_pop(f, 0, NULL, NULL, &r, NULL), 1);
  CHECK_STR(r.url, "http://ok.com/1");
  CHECK_INT(r.lost, 0);
  CHECK_INT(lc_frontier_done(f, r.id, 1), 0);
  lc_request_clear(&r);
  CHECK_INT(lc_frontier_pop(f, 0, NULL, NULL, &r, NULL), 1);
  CHECK_STR(r.url, "http://poison.com/1");
  CHECK_INT(r.lost, 2);
  CHECK_INT(r.attempt, 1);
  lc_request_clear(&r); /* held at the close below: given back, uncounted */
  CHECK_INT(lc_store_close(s), 0);
  s = open_store(path, "h1", &code, err, sizeof err);
  f = lc_store_frontier(s, 0);
  CHECK_INT(lc_frontier_pop(f, 0, NULL, NULL, &r, NULL), 1);
  CHECK_INT(r.lost, 2);
  lc_request_clear(&r);
  CHECK_INT(lc_store_close(s), 0);
}

/* A state file of schema version 1 (before the lost-lease count): a read-only open reads it
 * as it is; a writer upgrades it in place, and a lease its run held is counted. */
TEST(a_version_1_file_opens_and_is_upgraded) {
  char path[300], err[512];
  int code = 0;
  new_path(path, sizeof path);
  lc_store *s = open_store(path, "h1", &code, err, sizeof err);
  lc_frontier *f = lc_store_frontier(s, 0);
  CHECK_INT(lc_frontier_push(f, "http://a.com/1", 0, NULL, 0), 1);
  CHECK_INT(lc_frontier_push(f, "http://a.com/2", 0, NULL, 0), 1);
  const char *line = "{\"n\":1}";
  size_t len = strlen(line);
  CHECK_INT(lc_store_commit(s, 0, &line, &len, 1), 0);
  CHECK_INT(lc_store_close(s), 0);
  sqlite3 *db;
  CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
  CHECK_INT(sqlite3_exec(db,
                         "ALTER TABLE requests DROP COLUMN lost;"
                         "UPDATE meta SET value = 1 WHERE key = 'schema_version';"
                         "UPDATE requests SET state = 2 WHERE id = 1", /* a v1 run's kill */
                         NULL, NULL, NULL),
            SQLITE_OK);
  sqlite3_close(db);
  lc_store_opts ro = {.path = path, .read_only = 1, .clock_ms = fake_clock};
  s = lc_store_open(&ro, err, sizeof err, &code);
  CHECK(s != NULL);
  if (!s) {
    fprintf(stderr, "  read-only open: %s\n", err);
    return;
  }
  lc_store_status st;
  CHECK_INT(lc_store_get_status(s, &st), 0);
  CHECK_INT(st.leased, 1);
  CHECK_INT(st.queued, 1);
  seen_records c = {0};
  CHECK_INT(lc_store_each_record(s, 0, collect, &c), 0);
  CHECK_INT(c.n, 1);
  CHECK_INT(lc_store_close(s), 0);
  /* Another job's open is refused before it changes anything: still version 1, no column. */
  CHECK(open_store(path, "h2", &code, err, sizeof err) == NULL);
  CHECK(strstr(err, "belongs to another job") != NULL);
  CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_stmt *v1;
  CHECK_INT(sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'schema_version'", -1,
                               &v1, NULL),
            SQLITE_OK);
  CHECK_INT(sqlite3_step(v1), SQLITE_ROW);
  CHECK_INT(sqlite3_column_int(v1, 0), 1);
  sqlite3_finalize(v1);
  CHECK(sqlite3_prepare_v2(db, "SELECT lost FROM requests", -1, &v1, NULL) != SQLITE_OK);
  sqlite3_finalize(v1);
  sqlite3_close(db);
  s = open_store(path, "h1", &code, err, sizeof err);
  CHECK(s != NULL);
  if (!s) {
    fprintf(stderr, "  open: %s\n", err);
    return;
  }
  f = lc_store_frontier(s, 0);
  lc_request r;
  CHECK_INT(lc_frontier_pop(f, 0, NULL, NULL, &r, NULL), 1);
  CHECK_INT(r.id, 1);
  CHECK_INT(r.lost, 1);
  lc_request_clear(&r);
  CHECK_INT(lc_frontier_pop(f, 0, NULL, NULL, &r, NULL), 1);
  CHECK_INT(r.id, 2);
  CHECK_INT(r.lost, 0);
  lc_request_clear(&r);
  CHECK_INT(lc_store_close(s), 0);
  CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_stmt *q;
  CHECK_INT(
      sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'schema_version'", -1, &q, NULL),
      SQLITE_OK);
  CHECK_INT(sqlite3_step(q), SQLITE_ROW);
  CHECK_INT(sqlite3_column_int(q, 0), 2);
  sqlite3_finalize(q);
  sqlite3_close(db);
}

/* ---- what open refuses ---------------------------------------------------------------------- */

static void write_file(const char *path, const char *text, size_t n) {
  FILE *fp = fopen(path, "wb");
  fwrite(text, 1, n, fp);
  fclose(fp);
}

TEST(open_refuses_what_is_not_a_state_file) {
  char path[300], err[512];
  int code = 0;
  lc_store *s;
  lc_store_opts bad = {.path = NULL};
  CHECK(lc_store_open(&bad, err, sizeof err, &code) == NULL);
  CHECK_INT(code, LC_STORE_EINVAL);
  CHECK(lc_store_open(NULL, err, sizeof err, &code) == NULL);
  lc_store_opts nohash = {.path = "/tmp/x.db"};
  CHECK(lc_store_open(&nohash, err, sizeof err, &code) == NULL);
  CHECK_INT(code, LC_STORE_EINVAL);

  new_path(path, sizeof path);
  const char *text = "this is a text file, and long enough to fill a header\n";
  write_file(path, text, strlen(text));
  CHECK(open_store(path, "h1", &code, err, sizeof err) == NULL);
  CHECK_INT(code, LC_STORE_ENOTDB);
  CHECK(strstr(err, "not a SQLite database") != NULL);

  new_path(path, sizeof path); /* SQLite, someone else's */
  sqlite3 *db;
  CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
  CHECK_INT(sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES(1)", NULL, NULL, NULL), 0);
  sqlite3_close(db);
  CHECK(open_store(path, "h1", &code, err, sizeof err) == NULL);
  CHECK_INT(code, LC_STORE_ENOTDB);
  CHECK(strstr(err, "not a luacrawl state file") != NULL);

  new_path(path, sizeof path); /* a state file, then corrupted past its first page */
  s = open_store(path, "h1", &code, err, sizeof err);
  lc_frontier *f = lc_store_frontier(s, 0);
  char url[64];
  for (int i = 0; i < 3000; i++) {
    snprintf(url, sizeof url, "http://h%d.com/page/%d", i % 20, i);
    lc_frontier_push(f, url, 0, NULL, 0);
  }
  CHECK_INT(lc_store_close(s), 0); /* the last close checkpoints: the WAL is gone */
  struct stat sb;
  CHECK_INT(stat(path, &sb), 0);
  CHECK(sb.st_size > 16 * 4096);
  int fd = open(path, O_WRONLY);
  char junk[4096];
  memset(junk, 0x5a, sizeof junk);
  for (off_t at = 4096; at + 4096 <= sb.st_size; at += 8192) pwrite(fd, junk, sizeof junk, at);
  close(fd);
  CHECK(open_store(path, "h1", &code, err, sizeof err) == NULL);
  CHECK_INT(code, LC_STORE_ENOTDB);
  CHECK(strstr(err, "corrupt") != NULL);

  new_path(path, sizeof path); /* another job's file */
  s = open_store(path, "job-a", &code, err, sizeof err);
  lc_frontier_push(lc_store_frontier(s, 0), "http://a.com/", 0, NULL, 0);
  CHECK_INT(lc_store_close(s), 0);
  CHECK(open_store(path, "job-b", &code, err, sizeof err) == NULL);
  CHECK_INT(code, LC_STORE_EOTHERJOB);
  CHECK(strstr(err, "--state-reuse") != NULL);
  lc_store_opts reuse = {.path = path, .job_hash = "job-b", .reuse = 1};
  s = lc_store_open(&reuse, err, sizeof err, &code);
  CHECK(s != NULL);
  lc_store_status st;
  CHECK_INT(lc_store_get_status(s, &st), 0);
  CHECK_STR(st.job_hash, "job-b");
  CHECK_INT(lc_frontier_accepted(lc_store_frontier(s, 0)), 1); /* taken over as it stands */
  CHECK_INT(lc_store_close(s), 0);
  s = open_store(path, "job-b", &code, err, sizeof err); /* now it is job-b's */
  CHECK(s != NULL);
  CHECK_INT(lc_store_close(s), 0);

  /* read-only: a missing file, and the status of a real one */
  char missing[300];
  snprintf(missing, sizeof missing, "%s/missing.db", dir);
  lc_store_opts ro = {.path = missing, .read_only = 1};
  CHECK(lc_store_open(&ro, err, sizeof err, &code) == NULL);
  CHECK_INT(code, LC_STORE_ENOENT);
  CHECK(access(missing, F_OK) != 0); /* not created */
  ro.path = path;
  s = lc_store_open(&ro, err, sizeof err, &code);
  CHECK(s != NULL);
  CHECK(lc_store_frontier(s, 0) == NULL);
  CHECK_INT(lc_store_get_status(s, &st), 0);
  CHECK_INT(st.queued, 1);
  CHECK_INT(lc_store_counter_add(s, "x", 1), LC_STORE_EINVAL);
  CHECK_INT(lc_store_close(s), 0);
}

/* A child that cannot write (as root, it drops to nobody) meets a read-only directory and an
 * unwritable file. Exits with the number of failed checks. */
static int unwritable_child(const char *rodir, const char *rofile) {
  if (getuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) return 100;
  int bad = 0;
  char path[400], err[512];
  int code = 0;
  snprintf(path, sizeof path, "%s/new.db", rodir);
  if (open_store(path, "h1", &code, err, sizeof err) != NULL || code != LC_STORE_EIO ||
      !strstr(err, "cannot open state file") || !strstr(err, "Permission denied"))
    bad++, fprintf(stderr, "  read-only dir: %d %s\n", code, err);
  if (open_store(rofile, "h1", &code, err, sizeof err) != NULL || code != LC_STORE_EIO ||
      !strstr(err, "Permission denied"))
    bad++, fprintf(stderr, "  read-only file: %d %s\n", code, err);
  /* a writable file in a directory where SQLite cannot create its -wal beside it */
  snprintf(path, sizeof path, "%s/writable.db", rodir);
  if (open_store(path, "h1", &code, err, sizeof err) != NULL || code != LC_STORE_EIO ||
      !strstr(err, "-wal"))
    bad++, fprintf(stderr, "  writable file, read-only dir: %d %s\n", code, err);
  return bad;
}

TEST(open_says_what_cannot_be_written) {
  char rodir[300], rofile[300], path[400], err[512];
  int code = 0;
  snprintf(rodir, sizeof rodir, "%s/ro", dir);
  CHECK_INT(mkdir(rodir, 0755), 0);
  new_path(rofile, sizeof rofile);
  lc_store *s = open_store(rofile, "h1", &code, err, sizeof err);
  CHECK_INT(lc_store_close(s), 0);
  CHECK_INT(chmod(rofile, 0444), 0);
  snprintf(path, sizeof path, "%s/writable.db", rodir);
  s = open_store(path, "h1", &code, err, sizeof err); /* made while the directory is writable */
  CHECK_INT(lc_store_close(s), 0);
  CHECK_INT(chmod(path, 0666), 0);
  CHECK_INT(chmod(dir, 0755), 0); /* nobody must reach it */
  CHECK_INT(chmod(rodir, 0555), 0);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) _exit(unwritable_child(rodir, rofile));
  int status;
  CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status));
  CHECK_INT(WEXITSTATUS(status), 0);
  chmod(rodir, 0755);
  chmod(dir, 0700);
}

/* ---- a full disk ---------------------------------------------------------------------------- */

TEST(full_disk_fails_loudly_and_keeps_what_was_flushed) {
  char path[300], err[512];
  int code = 0;
  new_path(path, sizeof path);
  lc_store_opts o = {
      .path = path, .job_hash = "h1", .max_bytes = 160 * 1024, .clock_ms = fake_clock};
  lc_store *s = lc_store_open(&o, err, sizeof err, &code);
  CHECK(s != NULL);
  if (!s) return;
  lc_frontier *f = lc_store_frontier(s, 0);
  char url[160];
  int flushed = 0, i = 0, rc = 0;
  for (; i < 100000; i++) {
    snprintf(url, sizeof url, "http://h%d.com/a/fairly/long/path/to/fill/pages/quickly/%d", i % 9,
             i);
    rc = lc_frontier_push(f, url, 0, NULL, 0);
    if (rc != 1) break;
    if (i % 50 == 49) {
      if ((rc = lc_store_flush(s)) != 0) break;
      flushed = i + 1;
    }
  }
  CHECK(i < 100000);
  CHECK(rc == LC_FRONTIER_EIO || rc == LC_STORE_EIO);
  CHECK(strstr(lc_store_error(s), "is full") != NULL);
  fprintf(stderr, "    full after %d pushes (%d flushed): %s\n", i, flushed, lc_store_error(s));
  /* nothing more is written */
  CHECK_INT(lc_frontier_push(f, "http://z.com/", 0, NULL, 0), LC_FRONTIER_EIO);
  lc_request r;
  CHECK_INT(lc_frontier_pop(f, 0, NULL, NULL, &r, NULL), LC_FRONTIER_EIO);
  CHECK_INT(lc_store_counter_add(s, "x", 1), LC_STORE_EIO);
  CHECK_INT(lc_store_flush(s), LC_STORE_EIO);
  CHECK_INT(lc_store_close(s), LC_STORE_EIO);

  s = open_store(path, "h1", &code, err, sizeof err); /* no limit now */
  CHECK(s != NULL);
  if (!s) return;
  f = lc_store_frontier(s, 0);
  CHECK(flushed > 0);
  CHECK_INT(lc_frontier_accepted(f), flushed);
  CHECK_INT(lc_frontier_pending(f), flushed);
  int n = 0;
  while (lc_frontier_pop(f, 0, NULL, NULL, &r, NULL) == 1) {
    n++;
    lc_request_clear(&r);
  }
  CHECK_INT(n, flushed);
  CHECK_INT(lc_store_close(s), 0);
}

/* ---- SIGKILL at random moments -------------------------------------------------------------- */

/* The child: crawls forever, committing 0-3 records per request (each line names its request and
 * how many lines it has), failing, retrying or holding some, flushing now and then. Tells the
 * parent through `ready_fd` once the store is open. */
static void kill_child(const char *path, int ready_fd, unsigned seed) {
  char err[512];
  int code = 0;
  lc_store_opts o = {.path = path, .job_hash = "kill"};
  lc_store *s = lc_store_open(&o, err, sizeof err, &code);
  if (!s) {
    fprintf(stderr, "  child: %s\n", err);
    _exit(2);
  }
  if (write(ready_fd, "k", 1) != 1) _exit(2);
  lc_frontier *f = lc_store_frontier(s, 0);
  srand(seed);
  char url[96];
  lc_request held[8];
  int n_held = 0;
  uint64_t out_seq = 0;
  lc_store_get_output(s, &out_seq, &(int64_t){0});
  for (unsigned step = 0;; step++) {
    if (lc_frontier_accepted(f) < 20000)
      for (int i = 0, n = rand() % 4; i < n; i++) {
        snprintf(url, sizeof url, "http://h%d.test/%u/%u/%d", rand() % 7, seed, step, i);
        if (lc_frontier_push(f, url, 0, NULL, 0) < 0) _exit(4);
      }
    lc_request r;
    if (n_held < 8 && lc_frontier_pop(f, 0, NULL, NULL, &r, NULL) == 1) held[n_held++] = r;
    if (n_held > 0 && rand() % 3) {
      int k = rand() % n_held;
      r = held[k];
      held[k] = held[--n_held];
      int what = rand() % 10;
      if (what < 6) {
        char lines[3][64];
        const char *p[3];
        size_t lens[3];
        int n = rand() % 4;
        for (int j = 0; j < n; j++) {
          lens[j] = (size_t)snprintf(lines[j], sizeof lines[j],
                                     "{\"id\":%" PRIu64 ",\"j\":%d,\"n\":%d}", r.id, j, n);
          p[j] = lines[j];
        }
        if (lc_store_commit(s, r.id, p, lens, (size_t)n) != 0) _exit(5);
      } else if (what < 8) {
        if (lc_frontier_done(f, r.id, 0) != 0) _exit(6);
      } else {
        lc_frontier_retry(f, &r, 0);
      }
      lc_request_clear(&r);
    }
    if (rand() % 8 == 0) {
      if (lc_store_flush(s) != 0) _exit(7);
      lc_store_status st;
      lc_store_get_status(s, &st);
      lc_store_set_output(s, (uint64_t)st.records, st.records * 10);
    }
  }
}

/* The invariants of a state file, read with SQLite directly. Returns the number broken. */
static int check_invariants(const char *path, int64_t *records, int64_t *requests) {
  sqlite3 *db;
  int bad = 0;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) return 1;
  struct {
    const char *sql;
    int64_t want;
  } zero[] = {
      /* every request in exactly one of the states */
      {"SELECT count(*) FROM requests WHERE state NOT IN (0, 1, 2, 3, 4)", 0},
      /* an accepted URL is one request */
      {"SELECT (SELECT count(*) FROM seen) - (SELECT count(*) FROM requests)", 0},
      {"SELECT (SELECT count(*) FROM requests) - (SELECT coalesce(max(id), 0) FROM requests)", 0},
      /* records only of done requests */
      {"SELECT count(*) FROM records JOIN requests ON requests.id = records.request_id"
       " WHERE requests.state != 3",
       0},
      {"SELECT count(*) FROM records WHERE request_id NOT IN (SELECT id FROM requests)", 0},
      /* no record twice, and a request's records all or none */
      {"SELECT count(*) - count(DISTINCT line) FROM records", 0},
      {"SELECT count(*) FROM (SELECT request_id, count(*) AS c,"
       " max(json_extract(line, '$.n')) AS n FROM records GROUP BY request_id) WHERE c != n",
       0},
      /* seq contiguous from 1 */
      {"SELECT coalesce(max(seq), 0) - count(*) FROM records", 0},
      {"SELECT count(*) FROM records WHERE seq < 1", 0},
      /* the output position never points past the committed records */
      {"SELECT count(*) FROM meta WHERE key = 'output_seq'"
       " AND value > (SELECT coalesce(max(seq), 0) FROM records)",
       0},
  };
  for (size_t i = 0; i < sizeof zero / sizeof zero[0]; i++) {
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, zero[i].sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
      v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (v != zero[i].want) {
      fprintf(stderr, "  invariant broken (%" PRId64 "): %s\n", v, zero[i].sql);
      bad++;
    }
  }
  sqlite3_stmt *st;
  sqlite3_prepare_v2(db, "SELECT (SELECT count(*) FROM records), (SELECT count(*) FROM requests)",
                     -1, &st, NULL);
  if (sqlite3_step(st) == SQLITE_ROW) {
    *records = sqlite3_column_int64(st, 0);
    *requests = sqlite3_column_int64(st, 1);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return bad;
}

TEST(sigkill_at_random_moments_keeps_the_invariants) {
  char path[300], err[512];
  int code = 0;
  new_path(path, sizeof path);
  srand((unsigned)time(NULL));
  int64_t records = 0, requests = 0, last_records = 0;
  for (int round = 0; round < 8; round++) {
    int fds[2];
    CHECK_INT(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
      close(fds[0]);
      kill_child(path, fds[1], (unsigned)round * 7919u + (unsigned)rand());
    }
    close(fds[1]);
    char c;
    CHECK_INT(read(fds[0], &c, 1), 1);
    close(fds[0]);
    lc_store_opts o = {.path = path, .job_hash = "kill"};
    CHECK(lc_store_open(&o, err, sizeof err, &code) == NULL); /* the child holds it */
    CHECK_INT(code, LC_STORE_ELOCKED);
    CHECK(strstr(err, "in use") != NULL);
    lc_store_opts ro = {.path = path, .read_only = 1}; /* status needs no lock */
    lc_store *r = lc_store_open(&ro, err, sizeof err, &code);
    CHECK(r != NULL);
    lc_store_status st;
    if (r) CHECK_INT(lc_store_get_status(r, &st), 0);
    lc_store_close(r);
    usleep((useconds_t)(20000 + rand() % 150000));
    kill(pid, SIGKILL);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status));
    CHECK_INT(check_invariants(path, &records, &requests), 0);
    CHECK(records >= last_records); /* what was flushed stays */
    last_records = records;
    /* reopen: the lock died with the child; leased requests are queued again */
    lc_store *s = lc_store_open(&o, err, sizeof err, &code);
    CHECK(s != NULL);
    if (!s) break;
    CHECK_INT(lc_store_get_status(s, &st), 0);
    CHECK_INT(st.leased, 0);
    CHECK_INT(st.records, records);
    CHECK_INT(st.queued + st.done + st.failed, requests);
    lc_frontier *f = lc_store_frontier(s, 0);
    CHECK_INT(lc_frontier_pending(f), st.queued);
    CHECK_INT(lc_frontier_accepted(f), requests);
    CHECK_INT(lc_store_close(s), 0);
  }
  fprintf(stderr, "    after 8 kills: %" PRId64 " requests, %" PRId64 " records\n", requests,
          records);
  CHECK(records > 0);
}

/* rm -r of the test directory (flat, plus the ro/ subdirectory). */
static void remove_dir(const char *path) {
  DIR *d = opendir(path);
  if (!d) return;
  struct dirent *e;
  char p[600];
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(p, sizeof p, "%s/%s", path, e->d_name);
    struct stat sb;
    if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
      remove_dir(p);
    else
      unlink(p);
  }
  closedir(d);
  rmdir(path);
}

int main(void) {
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/lc-store-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  CONTRACT_TESTS();
  RUN(random_steps_match_a_model);
  RUN(commit_records_and_output_position);
  RUN(counters_hosts_and_robots);
  RUN(resume_keeps_flushed_work_and_requeues_leases);
  RUN(lost_leases_count_kills_not_clean_closes);
  RUN(a_version_1_file_opens_and_is_upgraded);
  RUN(open_refuses_what_is_not_a_state_file);
  RUN(open_says_what_cannot_be_written);
  RUN(full_disk_fails_loudly_and_keeps_what_was_flushed);
  RUN(sigkill_at_random_moments_keeps_the_invariants);
  remove_dir(dir);
  DONE();
}
