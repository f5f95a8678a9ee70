/* test_frontier.c: unit tests for engine/frontier.c (the in-memory backend, through the ops). */
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#ifdef __SANITIZE_ADDRESS__ /* the sanitizer allocator's own count (gcc ships no header) */
size_t __sanitizer_get_current_allocated_bytes(void);
#define HEAP_IN_USE() __sanitizer_get_current_allocated_bytes()
#else
#include <malloc.h>
#define HEAP_IN_USE() mallinfo2().uordblks
#endif

#include "frontier.h"
#include "test.h"

/* Pop at `now` with no gate; returns the url (owned by *r) or NULL. */
static const char *pop_at(lc_frontier *f, int64_t now, lc_request *r) {
  int rc = lc_frontier_pop(f, now, NULL, NULL, r, NULL);
  return rc == 1 ? r->url : NULL;
}

TEST(dedupe_on_normalized_url) {
  lc_frontier *f = lc_frontier_memory_new(0);
  CHECK_INT(lc_frontier_push(f, "http://a.com/x", 0, NULL, 0), 1);
  CHECK_INT(lc_frontier_push(f, "http://a.com/x", 1, NULL, 0), 0);
  CHECK_INT(lc_frontier_push(f, "HTTP://A.COM:80/x#frag", 0, NULL, 0), 0);
  CHECK_INT(lc_frontier_push(f, "  http://a.com/y/../x\n", 0, NULL, 0), 0);
  CHECK_INT(lc_frontier_push(f, "https://a.com/x", 0, NULL, 0), 1);  /* other scheme */
  CHECK_INT(lc_frontier_push(f, "http://a.com/x?", 0, NULL, 0), 0);  /* empty query: same page */
  CHECK_INT(lc_frontier_push(f, "http://a.com/x?q", 0, NULL, 0), 1); /* other query */
  CHECK_INT(lc_frontier_push(f, "http://a.com/X", 0, NULL, 0), 1);   /* paths are case-sensitive */
  CHECK_INT(lc_frontier_push(f, "file:///etc/passwd", 0, NULL, 0), LC_FRONTIER_EURL);
  CHECK_INT(lc_frontier_push(f, "/relative", 0, NULL, 0), LC_FRONTIER_EURL);
  CHECK_INT(lc_frontier_push(f, NULL, 0, NULL, 0), LC_FRONTIER_EINVAL);
  CHECK_INT(lc_frontier_push(f, "http://a.com/z", -1, NULL, 0), LC_FRONTIER_EINVAL);
  CHECK_INT(lc_frontier_push(NULL, "http://a.com/z", 0, NULL, 0), LC_FRONTIER_EINVAL);
  CHECK_INT(lc_frontier_accepted(f), 4);
  CHECK_INT(lc_frontier_pending(f), 4);
  lc_request r;
  CHECK_STR(pop_at(f, 0, &r), "http://a.com/x");
  CHECK_INT(r.depth, 0); /* the first push wins */
  CHECK_INT(lc_frontier_done(f, r.id, 1), 0);
  lc_request_clear(&r);
  /* still deduped after it was handed out and finished */
  CHECK_INT(lc_frontier_push(f, "http://a.com/x", 0, NULL, 0), 0);
  lc_frontier_destroy(f);
}

TEST(fifo_across_hosts) {
  lc_frontier *f = lc_frontier_memory_new(0);
  const char *urls[] = {"http://a.com/1", "http://b.com/1", "http://a.com/2", "http://c.com/1",
                        "http://b.com/2"};
  for (int i = 0; i < 5; i++)
    CHECK_INT(lc_frontier_push(f, urls[i], i, i == 3 ? "{\"k\":[1,2]}" : NULL, 0), 1);
  for (int i = 0; i < 5; i++) {
    lc_request r;
    int64_t next = 123;
    CHECK_INT(lc_frontier_pop(f, 0, NULL, NULL, &r, &next), 1);
    CHECK_STR(r.url, urls[i]);
    CHECK_INT(r.id, i + 1);
    CHECK_INT(r.depth, i);
    CHECK_INT(r.attempt, 0);
    CHECK_INT(next, -1);
    if (i == 3)
      CHECK_STR(r.data_json, "{\"k\":[1,2]}");
    else
      CHECK(r.data_json == NULL);
    CHECK_INT(lc_frontier_done(f, r.id, 1), 0);
    lc_request_clear(&r);
    CHECK(r.url == NULL && r.data_json == NULL);
    lc_request_clear(&r); /* a cleared request may be cleared again */
  }
  lc_request r;
  CHECK_INT(lc_frontier_pop(f, 0, NULL, NULL, &r, NULL), 0);
  CHECK(r.url == NULL);
  CHECK_INT(lc_frontier_pending(f), 0);
  CHECK_INT(lc_frontier_pop(f, 0, NULL, NULL, NULL, NULL), LC_FRONTIER_EINVAL);
  lc_frontier_destroy(f);
}

TEST(max_pages_full) {
  lc_frontier *f = lc_frontier_memory_new(3);
  CHECK_INT(lc_frontier_push(f, "http://a.com/1", 0, NULL, 0), 1);
  CHECK_INT(lc_frontier_push(f, "http://a.com/2", 0, NULL, 0), 1);
  CHECK_INT(lc_frontier_push(f, "http://a.com/3", 0, NULL, 0), 1);
  CHECK_INT(lc_frontier_push(f, "http://a.com/4", 0, NULL, 0), LC_FRONTIER_EFULL);
  CHECK_INT(lc_frontier_push(f, "http://a.com/2", 0, NULL, 0), 0); /* seen beats full */
  CHECK_INT(lc_frontier_accepted(f), 3);
  /* handing out and retrying does not count against max_pages */
  lc_request r;
  CHECK(pop_at(f, 0, &r) != NULL);
  CHECK_INT(lc_frontier_retry(f, &r, 0), 0);
  CHECK(r.url == NULL); /* taken over */
  CHECK_INT(lc_frontier_pending(f), 3);
  CHECK_INT(lc_frontier_push(f, "http://a.com/5", 0, NULL, 0), LC_FRONTIER_EFULL);
  CHECK_INT(lc_frontier_accepted(f), 3);
  lc_frontier_destroy(f);
}

TEST(retry_respects_not_before) {
  lc_frontier *f = lc_frontier_memory_new(0);
  lc_request r;
  int64_t next = 0;
  CHECK_INT(lc_frontier_push(f, "http://a.com/1", 2, "{}", 0), 1);
  CHECK(pop_at(f, 0, &r) != NULL);
  uint64_t id = r.id;
  CHECK_INT(lc_frontier_retry(f, &r, 1000), 0);
  CHECK_INT(lc_frontier_pending(f), 1);
  CHECK_INT(lc_frontier_pop(f, 500, NULL, NULL, &r, &next), 0);
  CHECK_INT(next, 1000);
  CHECK_INT(lc_frontier_pop(f, 999, NULL, NULL, &r, &next), 0);
  CHECK_INT(lc_frontier_pop(f, 1000, NULL, NULL, &r, &next), 1);
  CHECK_INT(next, -1);
  CHECK_STR(r.url, "http://a.com/1");
  CHECK_STR(r.data_json, "{}");
  CHECK_INT(r.id, id);
  CHECK_INT(r.attempt, 1);
  CHECK_INT(r.depth, 2);
  CHECK_INT(r.not_before_ms, 1000);
  CHECK_INT(lc_frontier_retry(f, &r, 3000), 0);
  CHECK_INT(lc_frontier_pop(f, 3000, NULL, NULL, &r, NULL), 1);
  CHECK_INT(r.attempt, 2);
  CHECK_INT(lc_frontier_done(f, r.id, 0), 0);
  lc_request_clear(&r);
  CHECK_INT(lc_frontier_pending(f), 0);
  lc_frontier_destroy(f);
}

TEST(retry_order_and_next_ms) {
  lc_frontier *f = lc_frontier_memory_new(0);
  lc_request r1, r2, r;
  int64_t next;
  lc_frontier_push(f, "http://a.com/1", 0, NULL, 0);
  lc_frontier_push(f, "http://a.com/2", 0, NULL, 0);
  CHECK_STR(pop_at(f, 0, &r1), "http://a.com/1");
  CHECK_STR(pop_at(f, 0, &r2), "http://a.com/2");
  CHECK_INT(lc_frontier_retry(f, &r2, 200), 0); /* later retry queued first */
  CHECK_INT(lc_frontier_retry(f, &r1, 100), 0);
  CHECK_INT(lc_frontier_pop(f, 50, NULL, NULL, &r, &next), 0);
  CHECK_INT(next, 100);                                /* the earliest, not the first queued */
  lc_frontier_push(f, "http://a.com/3", 0, NULL, 60);  /* ready before either retry */
  lc_frontier_push(f, "http://a.com/4", 0, NULL, 250); /* both retries are due by now */
  const char *want[] = {"http://a.com/3", "http://a.com/1", "http://a.com/2", "http://a.com/4"};
  for (int i = 0; i < 4; i++) {
    CHECK_INT(lc_frontier_pop(f, 250, NULL, NULL, &r, &next), 1);
    CHECK_STR(r.url, want[i]);
    CHECK_INT(next, -1);
    CHECK_INT(lc_frontier_done(f, r.id, 1), 0);
    lc_request_clear(&r);
  }
  lc_frontier_destroy(f);
}

/* The admit gate of the tests: refuses one host and counts its calls. */
typedef struct gate {
  const char *blocked_prefix;
  int calls;
} gate;

static int gate_admit(void *ud, const char *url) {
  gate *g = ud;
  g->calls++;
  return !(g->blocked_prefix && strncmp(url, g->blocked_prefix, strlen(g->blocked_prefix)) == 0);
}

TEST(admit_skips_blocked_hosts_without_losing_them) {
  lc_frontier *f = lc_frontier_memory_new(0);
  char url[64];
  for (int i = 0; i < 1000; i++) {
    snprintf(url, sizeof url, "http://slow.com/%d", i);
    CHECK_INT(lc_frontier_push(f, url, 0, NULL, 0), 1);
  }
  lc_frontier_push(f, "http://fast.com/1", 0, NULL, 0);
  lc_frontier_push(f, "http://fast.com/2", 0, NULL, 0);
  lc_frontier_push(f, "http://other.com:8080/1", 0, NULL, 0);
  gate g = {"http://slow.com/", 0};
  lc_request r;
  const char *want[] = {"http://fast.com/1", "http://fast.com/2", "http://other.com:8080/1"};
  for (int i = 0; i < 3; i++) {
    g.calls = 0;
    CHECK_INT(lc_frontier_pop(f, 0, gate_admit, &g, &r, NULL), 1);
    CHECK_STR(r.url, want[i]);
    CHECK(g.calls <= 3); /* asked once per host, not once per queued URL */
    lc_frontier_done(f, r.id, 1);
    lc_request_clear(&r);
  }
  g.calls = 0;
  int64_t next = 0;
  CHECK_INT(lc_frontier_pop(f, 0, gate_admit, &g, &r, &next), 0);
  CHECK_INT(g.calls, 1);
  CHECK_INT(next, -1);
  CHECK_INT(lc_frontier_pending(f), 1000);
  g.blocked_prefix = NULL; /* the host's delay has passed */
  for (int i = 0; i < 1000; i++) {
    snprintf(url, sizeof url, "http://slow.com/%d", i);
    CHECK_INT(lc_frontier_pop(f, 0, gate_admit, &g, &r, NULL), 1);
    CHECK_STR(r.url, url);
    lc_frontier_done(f, r.id, 1);
    lc_request_clear(&r);
  }
  CHECK_INT(lc_frontier_pending(f), 0);
  lc_frontier_destroy(f);
}

/* With the gate refusing every host but one, pop takes the oldest ready URL of that host. */
TEST(admit_interleaved_hosts_keep_fifo) {
  lc_frontier *f = lc_frontier_memory_new(0);
  lc_frontier_push(f, "http://a.com/1", 0, NULL, 0);
  lc_frontier_push(f, "http://b.com/1", 0, NULL, 0);
  lc_frontier_push(f, "http://a.com/2", 0, NULL, 0);
  lc_frontier_push(f, "http://b.com/2", 0, NULL, 0);
  gate g = {"http://a.com/", 0};
  lc_request r;
  CHECK_INT(lc_frontier_pop(f, 0, gate_admit, &g, &r, NULL), 1);
  CHECK_STR(r.url, "http://b.com/1");
  lc_request_clear(&r);
  g.blocked_prefix = "http://b.com/";
  CHECK_INT(lc_frontier_pop(f, 0, gate_admit, &g, &r, NULL), 1);
  CHECK_STR(r.url, "http://a.com/1");
  lc_request_clear(&r);
  g.blocked_prefix = NULL;
  CHECK_INT(lc_frontier_pop(f, 0, gate_admit, &g, &r, NULL), 1);
  CHECK_STR(r.url, "http://a.com/2");
  lc_request_clear(&r);
  CHECK_INT(lc_frontier_pop(f, 0, gate_admit, &g, &r, NULL), 1);
  CHECK_STR(r.url, "http://b.com/2");
  lc_request_clear(&r);
  lc_frontier_destroy(f); /* ids still handed out: the frontier frees only what it holds */
}

TEST(ending_twice_or_unknown_fails_loudly) {
  lc_frontier *f = lc_frontier_memory_new(0);
  lc_request r;
  lc_frontier_push(f, "http://a.com/1", 0, "{\"a\":1}", 0);
  CHECK(pop_at(f, 0, &r) != NULL);
  uint64_t id = r.id;
  CHECK_INT(lc_frontier_done(f, 999, 1), LC_FRONTIER_ENOENT);
  CHECK_INT(lc_frontier_done(f, 0, 1), LC_FRONTIER_ENOENT);
  CHECK_INT(lc_frontier_done(f, id, 1), 0);
  CHECK_INT(lc_frontier_done(f, id, 1), LC_FRONTIER_ENOENT);
  /* a retry after done is refused, and still takes the strings (no leak under ASan) */
  CHECK_INT(lc_frontier_retry(f, &r, 0), LC_FRONTIER_ENOENT);
  CHECK(r.url == NULL && r.data_json == NULL);
  CHECK_INT(lc_frontier_pending(f), 0);
  CHECK_INT(lc_frontier_retry(f, NULL, 0), LC_FRONTIER_EINVAL);
  lc_request bogus = {.id = 1, .url = NULL};
  CHECK_INT(lc_frontier_retry(f, &bogus, 0), LC_FRONTIER_EINVAL);
  lc_frontier_destroy(f);
  lc_frontier_destroy(NULL);
}

/* Push n URLs over 97 hosts, push every 7th again (deduped), pop all, retry every other one,
 * pop and finish those. Returns the seconds taken; *bad counts wrong answers. */
static double push_pop_cycle(int n, int *bad) {
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  lc_frontier *f = lc_frontier_memory_new(0);
  char url[96];
  for (int i = 0; i < n; i++) {
    snprintf(url, sizeof url, "https://host%d.example.com/path/page-%d.html?q=%d", i % 97, i, i);
    *bad += lc_frontier_push(f, url, 1, NULL, 0) != 1;
  }
  for (int i = 0; i < n; i += 7) {
    snprintf(url, sizeof url, "https://HOST%d.example.com:443/path/page-%d.html?q=%d#x", i % 97, i,
             i);
    *bad += lc_frontier_push(f, url, 1, NULL, 0) != 0;
  }
  *bad += lc_frontier_accepted(f) != (size_t)n || lc_frontier_pending(f) != (size_t)n;
  uint64_t last = 0;
  lc_request r;
  for (int i = 0; i < n; i++) {
    if (lc_frontier_pop(f, 0, NULL, NULL, &r, NULL) != 1 || r.id != last + 1) (*bad)++;
    last = r.id;
    if (i % 2)
      *bad += lc_frontier_done(f, r.id, 1) != 0;
    else
      *bad += lc_frontier_retry(f, &r, 10) != 0;
    lc_request_clear(&r);
  }
  for (int i = 0; i < (n + 1) / 2; i++) {
    if (lc_frontier_pop(f, 10, NULL, NULL, &r, NULL) != 1 || r.attempt != 1) (*bad)++;
    *bad += lc_frontier_done(f, r.id, 0) != 0;
    lc_request_clear(&r);
  }
  *bad += lc_frontier_pending(f) != 0;
  lc_frontier_destroy(f);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  return (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
}

/* 100k URLs go through push, pop, retry and done with every id accounted for. How fast is
 * the benchmarks' business (bench/), not a test's: the timings are printed, not asserted. */
TEST(many_pushes_are_handled) {
  int bad = 0;
  double small = push_pop_cycle(10000, &bad);
  double big = push_pop_cycle(100000, &bad);
  fprintf(stderr, "    10k cycle %.3f s, 100k cycle %.3f s\n", small, big);
  CHECK_INT(bad, 0);
}

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
  lc_frontier *f = lc_frontier_memory_new(0);
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
  }
  CHECK_INT(mismatches, 0);
  for (int i = 0; i < n_held; i++) lc_request_clear(&held[i]);
  lc_frontier_destroy(f);
}

TEST(destroy_frees_queued_waiting_and_data) {
  lc_frontier *f = lc_frontier_memory_new(0);
  char url[64];
  for (int i = 0; i < 300; i++) { /* spills over several arena chunks and table growths */
    snprintf(url, sizeof url, "http://h%d.com/%d", i % 70, i);
    lc_frontier_push(f, url, 0, "{\"data\":true}", 0);
  }
  char *big = malloc(6000);
  memcpy(big, "http://big.com/", 15);
  memset(big + 15, 'x', 6000 - 16);
  big[6000 - 1] = '\0';
  CHECK_INT(lc_frontier_push(f, big, 0, NULL, 0), 1); /* gets an arena chunk of its own */
  free(big);
  lc_request r;
  for (int i = 0; i < 50; i++) {
    CHECK(pop_at(f, 0, &r) != NULL);
    CHECK_INT(lc_frontier_retry(f, &r, 1000 + i), 0);
  }
  CHECK(pop_at(f, 0, &r) != NULL); /* handed out: the caller's to free */
  lc_request_clear(&r);
  CHECK_INT(lc_frontier_pending(f), 300);
  lc_frontier_destroy(f); /* ASan and valgrind report anything left behind */
}

/* What the frontier keeps per URL once it has been crawled (issue 9, item 10): the seen set
 * only, not the URL. Measured as heap bytes in use (the sanitizer allocator's count, or
 * mallinfo2) after N realistic URLs were pushed, handed out and done, divided by N. The old
 * layout (every URL copied into an arena for the whole run, plus a 16-byte slot) kept 190-211
 * bytes per URL; a 64-bit fingerprint per URL in an open-addressing set keeps 8-23. */
TEST(seen_urls_cost_a_fingerprint_not_the_url) {
  const int n = 200000;
  size_t before = HEAP_IN_USE();
  lc_frontier *f = lc_frontier_memory_new(0);
  char url[160];
  lc_request r;
  int bad = 0;
  for (int i = 0; i < n; i++) {
    snprintf(url, sizeof url,
             "https://shop%d.example.com/catalog/category-%d/products/item-%d.html?ref=list&p=%d",
             i % 50, i % 977, i, i % 13);
    bad += lc_frontier_push(f, url, 1, NULL, 0) != 1;
    if (i % 4 == 3) /* crawl as it goes: a queue that stays short */
      while (lc_frontier_pop(f, 0, NULL, NULL, &r, NULL) == 1) {
        bad += lc_frontier_done(f, r.id, 1) != 0;
        lc_request_clear(&r);
      }
  }
  while (lc_frontier_pop(f, 0, NULL, NULL, &r, NULL) == 1) {
    bad += lc_frontier_done(f, r.id, 1) != 0;
    lc_request_clear(&r);
  }
  size_t held = HEAP_IN_USE() - before;
  double per_url = (double)held / n;
  fprintf(stderr, "    %d URLs seen and done: %zu bytes held, %.1f bytes per URL\n", n, held,
          per_url);
  CHECK_INT(bad, 0);
  CHECK_INT(lc_frontier_accepted(f), n);
  CHECK_INT(lc_frontier_pending(f), 0);
  CHECK(per_url < 32);
  /* still deduped after the URL itself is gone */
  snprintf(url, sizeof url,
           "https://shop%d.example.com/catalog/category-%d/products/item-%d.html?ref=list&p=%d",
           7 % 50, 7 % 977, 7, 7 % 13);
  CHECK_INT(lc_frontier_push(f, url, 1, NULL, 0), 0);
  CHECK_INT(lc_frontier_push(f,
                             "HTTPS://SHOP7.example.com:443/catalog/category-7/products/"
                             "item-7.html?ref=list&p=7#top",
                             1, NULL, 0),
            0);
  lc_frontier_destroy(f);
}

int main(void) {
  RUN(dedupe_on_normalized_url);
  RUN(fifo_across_hosts);
  RUN(max_pages_full);
  RUN(retry_respects_not_before);
  RUN(retry_order_and_next_ms);
  RUN(admit_skips_blocked_hosts_without_losing_them);
  RUN(admit_interleaved_hosts_keep_fifo);
  RUN(ending_twice_or_unknown_fails_loudly);
  RUN(many_pushes_are_handled);
  RUN(random_steps_match_a_model);
  RUN(destroy_frees_queued_waiting_and_data);
  RUN(seen_urls_cost_a_fingerprint_not_the_url);
  DONE();
}
