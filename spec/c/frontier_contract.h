/* frontier_contract.h: the frontier contract of frontier.h as unit tests, shared by every
 * backend's test: test_frontier.c (memory) and test_store.c (SQLite). The including file
 * defines CONTRACT_NEW(max_pages) -> lc_frontier * and CONTRACT_END(f) before including it,
 * and RUNs each TEST listed in CONTRACT_TESTS. */
#ifndef LC_FRONTIER_CONTRACT_H
#define LC_FRONTIER_CONTRACT_H

#include "frontier.h"
#include "test.h"

static const char *pop_at(lc_frontier *f, int64_t now, lc_request *r) {
  int rc = lc_frontier_pop(f, now, NULL, NULL, r, NULL);
  return rc == 1 ? r->url : NULL;
}

TEST(dedupe_on_normalized_url) {
  lc_frontier *f = CONTRACT_NEW(0);
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
  CONTRACT_END(f);
}

TEST(fifo_across_hosts) {
  lc_frontier *f = CONTRACT_NEW(0);
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
  CONTRACT_END(f);
}

TEST(max_pages_full) {
  lc_frontier *f = CONTRACT_NEW(3);
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
  CONTRACT_END(f);
}

TEST(retry_respects_not_before) {
  lc_frontier *f = CONTRACT_NEW(0);
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
  CONTRACT_END(f);
}

TEST(retry_order_and_next_ms) {
  lc_frontier *f = CONTRACT_NEW(0);
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
  CONTRACT_END(f);
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
  lc_frontier *f = CONTRACT_NEW(0);
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
  CONTRACT_END(f);
}

/* With the gate refusing every host but one, pop takes the oldest ready URL of that host. */
TEST(admit_interleaved_hosts_keep_fifo) {
  lc_frontier *f = CONTRACT_NEW(0);
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
  CONTRACT_END(f); /* ids still handed out: the frontier frees only what it holds */
}

TEST(ending_twice_or_unknown_fails_loudly) {
  lc_frontier *f = CONTRACT_NEW(0);
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
  CONTRACT_END(f);
  lc_frontier_destroy(NULL);
}

/* A request given back untried (a clean stop: frontier.h, release) is handed out again at
 * once, first, as it was: same id, data, counts; giving back what is not handed out fails
 * loudly and still takes the strings. */
TEST(release_gives_a_request_back_untried) {
  lc_frontier *f = CONTRACT_NEW(0);
  lc_request r;
  lc_frontier_push(f, "http://a.com/1", 2, "{\"a\":1}", 0);
  lc_frontier_push(f, "http://b.com/1", 0, NULL, 0);
  lc_frontier_push(f, "http://a.com/2", 0, NULL, 0);
  CHECK_STR(pop_at(f, 0, &r), "http://a.com/1");
  uint64_t id = r.id;
  CHECK_INT(lc_frontier_pending(f), 2);
  CHECK_INT(lc_frontier_release(f, &r), 0);
  CHECK(r.url == NULL && r.data_json == NULL);
  CHECK_INT(lc_frontier_pending(f), 3);
  CHECK_INT(lc_frontier_done(f, id, 1), LC_FRONTIER_ENOENT); /* not handed out any more */
  CHECK_STR(pop_at(f, 0, &r), "http://a.com/1");
  CHECK_INT(r.id, id);
  CHECK_INT(r.depth, 2);
  CHECK_INT(r.attempt, 0);
  CHECK_INT(r.lost, 0);
  CHECK_STR(r.data_json, "{\"a\":1}");
  /* after a retry too: the attempt it was handed out with is kept */
  CHECK_INT(lc_frontier_retry(f, &r, 0), 0);
  CHECK_STR(pop_at(f, 0, &r), "http://b.com/1");
  CHECK_INT(lc_frontier_done(f, r.id, 1), 0);
  lc_request_clear(&r);
  CHECK_STR(pop_at(f, 0, &r), "http://a.com/2");
  lc_request a2 = r;
  CHECK_STR(pop_at(f, 0, &r), "http://a.com/1");
  CHECK_INT(r.attempt, 1);
  CHECK_INT(lc_frontier_release(f, &r), 0);
  CHECK_STR(pop_at(f, 0, &r), "http://a.com/1");
  CHECK_INT(r.attempt, 1);
  CHECK_INT(lc_frontier_done(f, r.id, 1), 0);
  CHECK_INT(lc_frontier_release(f, &r), LC_FRONTIER_ENOENT); /* ended: takes the strings */
  CHECK(r.url == NULL && r.data_json == NULL);
  CHECK_INT(lc_frontier_release(f, &a2), 0);
  CHECK_STR(pop_at(f, 0, &r), "http://a.com/2");
  CHECK_INT(lc_frontier_done(f, r.id, 0), 0);
  lc_request_clear(&r);
  CHECK_INT(lc_frontier_pending(f), 0);
  CHECK_INT(lc_frontier_release(f, NULL), LC_FRONTIER_EINVAL);
  lc_request bogus = {.id = 1, .url = NULL};
  CHECK_INT(lc_frontier_release(f, &bogus), LC_FRONTIER_EINVAL);
  CONTRACT_END(f);
}

#define CONTRACT_TESTS()                                \
  do {                                                  \
    RUN(dedupe_on_normalized_url);                      \
    RUN(fifo_across_hosts);                             \
    RUN(max_pages_full);                                \
    RUN(retry_respects_not_before);                     \
    RUN(retry_order_and_next_ms);                       \
    RUN(admit_skips_blocked_hosts_without_losing_them); \
    RUN(admit_interleaved_hosts_keep_fifo);             \
    RUN(ending_twice_or_unknown_fails_loudly);          \
    RUN(release_gives_a_request_back_untried);          \
  } while (0)

#endif
