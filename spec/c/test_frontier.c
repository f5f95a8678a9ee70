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

/* The frontier contract's cases (frontier_contract.h), on this backend. */
#define CONTRACT_NEW(max) lc_frontier_memory_new(max)
#define CONTRACT_END(f) lc_frontier_destroy(f)
#include "frontier_contract.h"

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
  CONTRACT_TESTS();
  RUN(many_pushes_are_handled);
  RUN(random_steps_match_a_model);
  RUN(destroy_frees_queued_waiting_and_data);
  RUN(seen_urls_cost_a_fingerprint_not_the_url);
  DONE();
}
