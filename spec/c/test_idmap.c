/* test_idmap.c: unit tests for engine/base/idmap.c.
 * Owns: the tests of the map contract (insert, find, replace, remove, tombstones, growth,
 * reserve, iteration), and a seeded random walk against a plain array as the reference. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "idmap.h"
#include "test.h"

/* A distinct non-NULL value for key-derived checks. */
static int values[4096];
static void *val(size_t i) { return &values[i % 4096]; }

TEST(test_empty_map_finds_nothing) {
  lc_idmap m;
  lc_idmap_init(&m);
  CHECK(lc_idmap_get(&m, 0) == NULL);
  CHECK(lc_idmap_get(&m, 42) == NULL);
  CHECK(lc_idmap_remove(&m, 42) == NULL);
  CHECK_INT(lc_idmap_count(&m), 0);
  size_t pos = 0;
  CHECK_INT(lc_idmap_next(&m, &pos, NULL, NULL), 0);
  lc_idmap_free(&m);
}

TEST(test_put_get_replace_remove) {
  lc_idmap m;
  lc_idmap_init(&m);
  CHECK_INT(lc_idmap_put(&m, 7, val(1)), 0);
  CHECK_INT(lc_idmap_put(&m, 0, val(2)), 0); /* 0 is an ordinary key */
  CHECK_INT(lc_idmap_put(&m, UINT64_MAX, val(3)), 0);
  CHECK_INT(lc_idmap_count(&m), 3);
  CHECK(lc_idmap_get(&m, 7) == val(1));
  CHECK(lc_idmap_get(&m, 0) == val(2));
  CHECK(lc_idmap_get(&m, UINT64_MAX) == val(3));
  CHECK_INT(lc_idmap_put(&m, 7, val(4)), 0); /* replace keeps the count */
  CHECK_INT(lc_idmap_count(&m), 3);
  CHECK(lc_idmap_get(&m, 7) == val(4));
  CHECK_INT(lc_idmap_put(&m, 8, NULL), -1); /* NULL is not a value */
  CHECK(lc_idmap_get(&m, 8) == NULL);
  CHECK(lc_idmap_remove(&m, 7) == val(4));
  CHECK(lc_idmap_remove(&m, 7) == NULL);
  CHECK(lc_idmap_get(&m, 7) == NULL);
  CHECK_INT(lc_idmap_count(&m), 2);
  lc_idmap_free(&m);
  CHECK_INT(lc_idmap_count(&m), 0);
  CHECK(lc_idmap_get(&m, 0) == NULL);
}

/* Keys that collide in the low bits still find each other past tombstones in their chain. */
TEST(test_tombstones_keep_chains_unbroken) {
  lc_idmap m;
  lc_idmap_init(&m);
  enum { N = 200 };
  for (uint64_t k = 1; k <= N; k++) CHECK_INT(lc_idmap_put(&m, k << 32, val(k)), 0);
  for (uint64_t k = 1; k <= N; k += 2) CHECK(lc_idmap_remove(&m, k << 32) == val(k));
  for (uint64_t k = 1; k <= N; k++) CHECK(lc_idmap_get(&m, k << 32) == (k % 2 ? NULL : val(k)));
  /* Churn on one key: tombstones are reused or dropped by rehash, the table stays small. */
  size_t cap = m.cap;
  for (int i = 0; i < 100000; i++) {
    CHECK_INT(lc_idmap_put(&m, 999, val(5)), 0);
    CHECK(lc_idmap_remove(&m, 999) == val(5));
  }
  CHECK(m.cap <= cap * 2);
  CHECK_INT(lc_idmap_count(&m), N / 2);
  for (uint64_t k = 2; k <= N; k += 2) CHECK(lc_idmap_get(&m, k << 32) == val(k));
  lc_idmap_free(&m);
}

TEST(test_grows_to_many_keys_and_iterates_each_once) {
  lc_idmap m;
  lc_idmap_init(&m);
  enum { N = 200000 };
  for (uint64_t k = 1; k <= N; k++) CHECK_INT(lc_idmap_put(&m, k * 3, val(k)), 0);
  CHECK_INT(lc_idmap_count(&m), N);
  CHECK(m.used * 10 < m.cap * 7);
  for (uint64_t k = 1; k <= N; k++) {
    if (lc_idmap_get(&m, k * 3) != val(k)) {
      CHECK(lc_idmap_get(&m, k * 3) == val(k));
      break;
    }
  }
  CHECK(lc_idmap_get(&m, 1) == NULL);
  unsigned char *seen = calloc(N + 1, 1);
  size_t pos = 0, n = 0;
  uint64_t key;
  void *v;
  while (lc_idmap_next(&m, &pos, &key, &v)) {
    CHECK(key % 3 == 0 && key / 3 >= 1 && key / 3 <= N);
    if (key % 3 == 0 && key / 3 <= N) seen[key / 3]++;
    n++;
  }
  CHECK_INT(n, N);
  for (size_t k = 1; k <= N; k++)
    if (seen[k] != 1) {
      CHECK_INT(seen[k], 1);
      break;
    }
  free(seen);
  /* Removing the entry just returned is allowed while iterating. */
  pos = 0;
  while (lc_idmap_next(&m, &pos, &key, NULL))
    if (key % 2 == 0) lc_idmap_remove(&m, key);
  CHECK_INT(lc_idmap_count(&m), N / 2);
  CHECK(lc_idmap_get(&m, 6) == NULL);
  CHECK(lc_idmap_get(&m, 3) == val(1));
  lc_idmap_free(&m);
}

TEST(test_reserve_means_puts_do_not_allocate) {
  lc_idmap m;
  lc_idmap_init(&m);
  CHECK_INT(lc_idmap_reserve(&m, 1000), 0);
  lc_idmap_slot *slots = m.slots;
  for (uint64_t k = 0; k < 1000; k++) CHECK_INT(lc_idmap_put(&m, k, val(k)), 0);
  CHECK(m.slots == slots);
  CHECK_INT(lc_idmap_count(&m), 1000);
  lc_idmap_free(&m);
}

static uint64_t rng_next(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* Random puts and removes over a small key space, checked against a plain array. */
TEST(test_random_ops_match_a_reference) {
  enum { KEYS = 512, STEPS = 200000 };
  void *ref[KEYS] = {0};
  size_t ref_count = 0;
  lc_idmap m;
  lc_idmap_init(&m);
  uint64_t seed = 0x9e3779b97f4a7c15u;
  int bad = 0;
  for (int step = 0; step < STEPS && !bad; step++) {
    uint64_t r = rng_next(&seed);
    size_t k = (size_t)(r % KEYS);
    uint64_t key = (uint64_t)k * UINT64_C(0x100000001); /* spread, and colliding low words */
    switch ((r >> 20) % 3) {
      case 0:
      case 1: {
        void *v = val((size_t)(r >> 32));
        if (lc_idmap_put(&m, key, v) != 0) bad = 1;
        if (!ref[k]) ref_count++;
        ref[k] = v;
        break;
      }
      default:
        if (lc_idmap_remove(&m, key) != ref[k]) bad = 2;
        if (ref[k]) ref_count--;
        ref[k] = NULL;
    }
    if (lc_idmap_count(&m) != ref_count) bad = 3;
    if (step % 1000 == 0)
      for (size_t j = 0; j < KEYS; j++)
        if (lc_idmap_get(&m, (uint64_t)j * UINT64_C(0x100000001)) != ref[j]) bad = 4;
  }
  CHECK_INT(bad, 0);
  lc_idmap_free(&m);
}

int main(void) {
  RUN(test_empty_map_finds_nothing);
  RUN(test_put_get_replace_remove);
  RUN(test_tombstones_keep_chains_unbroken);
  RUN(test_grows_to_many_keys_and_iterates_each_once);
  RUN(test_reserve_means_puts_do_not_allocate);
  RUN(test_random_ops_match_a_reference);
  DONE();
}
