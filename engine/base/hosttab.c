/* hosttab.c: host key -> record index (see hosttab.h). */
#include "hosttab.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct slot {
  uint64_t hash;
  const char *key; /* NULL: empty */
  void *value;
} slot;

struct lc_hosttab {
  slot *v;
  size_t cap, n; /* cap is 0 or a power of two */
};

static uint64_t hash_key(const char *s) { /* FNV-1a, then the splitmix64 finalizer */
  uint64_t h = 14695981039346656037ULL;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  return h ^ (h >> 31);
}

lc_hosttab *lc_hosttab_new(void) { return calloc(1, sizeof(lc_hosttab)); }

void *lc_hosttab_find(const lc_hosttab *t, const char *key) {
  if (!t || !key || !t->cap) return NULL;
  uint64_t h = hash_key(key);
  size_t mask = t->cap - 1;
  for (size_t i = h & mask; t->v[i].key; i = (i + 1) & mask)
    if (t->v[i].hash == h && strcmp(t->v[i].key, key) == 0) return t->v[i].value;
  return NULL;
}

static void place(slot *v, size_t cap, slot s) {
  size_t mask = cap - 1, i = s.hash & mask;
  while (v[i].key) i = (i + 1) & mask;
  v[i] = s;
}

int lc_hosttab_put(lc_hosttab *t, const char *key, void *value) {
  if (!t || !key) return -1;
  if ((t->n + 1) * 10 > t->cap * 7) {
    size_t cap = t->cap ? t->cap * 2 : 64;
    slot *v = calloc(cap, sizeof *v);
    if (!v) return -1;
    for (size_t i = 0; i < t->cap; i++)
      if (t->v[i].key) place(v, cap, t->v[i]);
    free(t->v);
    t->v = v;
    t->cap = cap;
  }
  place(t->v, t->cap, (slot){hash_key(key), key, value});
  t->n++;
  return 0;
}

size_t lc_hosttab_count(const lc_hosttab *t) { return t ? t->n : 0; }

void lc_hosttab_each(const lc_hosttab *t, void (*fn)(void *value, void *ud), void *ud) {
  if (!t) return;
  for (size_t i = 0; i < t->cap; i++)
    if (t->v[i].key) fn(t->v[i].value, ud);
}

void lc_hosttab_free(lc_hosttab *t) {
  if (!t) return;
  free(t->v);
  free(t);
}
