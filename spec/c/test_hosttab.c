/* test_hosttab.c: unit tests for engine/hosttab.c (the job's per-host index). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "hosttab.h"
#include "test.h"

typedef struct rec {
  char key[32];
  int n;
} rec;

static double cpu_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void count_each(void *value, void *ud) {
  ((rec *)value)->n++;
  (*(size_t *)ud)++;
}

TEST(find_put_each) {
  lc_hosttab *t = lc_hosttab_new();
  CHECK(t != NULL);
  CHECK(lc_hosttab_find(t, "a.com") == NULL);
  rec a = {"a.com", 0}, b = {"b.com:8080", 0};
  CHECK_INT(lc_hosttab_put(t, a.key, &a), 0);
  CHECK_INT(lc_hosttab_put(t, b.key, &b), 0);
  CHECK(lc_hosttab_find(t, "a.com") == &a);
  CHECK(lc_hosttab_find(t, "b.com:8080") == &b);
  CHECK(lc_hosttab_find(t, "b.com") == NULL);
  CHECK_INT(lc_hosttab_count(t), 2);
  size_t seen = 0;
  lc_hosttab_each(t, count_each, &seen);
  CHECK_INT(seen, 2);
  CHECK_INT(a.n + b.n, 2);
  CHECK(lc_hosttab_find(NULL, "a.com") == NULL);
  CHECK_INT(lc_hosttab_put(NULL, "x", &a), -1);
  lc_hosttab_free(t);
  lc_hosttab_free(NULL);
}

/* Admission looks up the host of every URL it is asked about, for every host pop refuses: a
 * lookup must not grow with the number of hosts (issue 9, item 10). 50,000 hosts, each looked
 * up 4 times: a list scan does 10^10 string compares (minutes), a hash table 2 * 10^5
 * lookups (milliseconds, in the sanitizer build too). Thread CPU time, so a loaded machine
 * does not count; the bound is loose by two orders of magnitude. */
TEST(lookups_do_not_grow_with_hosts) {
  enum { N = 50000 };
  rec *v = calloc(N, sizeof *v);
  lc_hosttab *t = lc_hosttab_new();
  CHECK(v && t);
  if (!v || !t) return;
  double t0 = cpu_ms();
  for (int i = 0; i < N; i++) {
    snprintf(v[i].key, sizeof v[i].key, "host-%d.example:%d", i, 1000 + i % 7);
    if (!lc_hosttab_find(t, v[i].key)) CHECK_INT(lc_hosttab_put(t, v[i].key, &v[i]), 0);
  }
  int wrong = 0;
  for (int round = 0; round < 4; round++)
    for (int i = 0; i < N; i++)
      wrong += lc_hosttab_find(t, v[(i * 7919 + round) % N].key) != &v[(i * 7919 + round) % N];
  double ms = cpu_ms() - t0;
  fprintf(stderr, "    %d hosts, %d lookups: %.1f ms CPU\n", N, 5 * N, ms);
  CHECK_INT(wrong, 0);
  CHECK_INT(lc_hosttab_count(t), N);
  CHECK(ms < 2000);
  lc_hosttab_free(t);
  free(v);
}

int main(void) {
  RUN(find_put_each);
  RUN(lookups_do_not_grow_with_hosts);
  DONE();
}
