/* idmap.c: a uint64-keyed open-addressing hash map (the contract is idmap.h).
 *
 * Owns: the slot array of each lc_idmap. Linear probing from a mixed hash of the key (the
 * splitmix64 finalizer: ids are sequential, so the low bits alone would cluster). A removed
 * key leaves a tombstone, so probe chains stay unbroken; tombstones count towards the load,
 * and the rehash that a put triggers past 70 % drops them all (doubling only when the live
 * keys alone need it).
 */
#include "idmap.h"

#include <stdlib.h>

/* The value of a deleted slot: an address no caller's value can have. */
static char idmap_tombstone_byte;
#define IDMAP_TOMBSTONE ((void *)&idmap_tombstone_byte)

/* Mixes all 64 bits of `key` into the low ones. */
static uint64_t idmap_hash(uint64_t key) {
  key ^= key >> 30;
  key *= UINT64_C(0xbf58476d1ce4e5b9);
  key ^= key >> 27;
  key *= UINT64_C(0x94d049bb133111eb);
  key ^= key >> 31;
  return key;
}

/* Whether `used` slots of `cap` are past the 70 % load limit. */
static int idmap_too_full(size_t used, size_t cap) { return used * 10 >= cap * 7; }

void lc_idmap_init(lc_idmap *m) {
  m->slots = NULL;
  m->cap = m->count = m->used = 0;
}

void lc_idmap_free(lc_idmap *m) {
  free(m->slots);
  lc_idmap_init(m);
}

/* The slot holding `key`, or NULL. */
static lc_idmap_slot *idmap_find(const lc_idmap *m, uint64_t key) {
  if (m->count == 0) return NULL;
  size_t mask = m->cap - 1;
  for (size_t i = (size_t)idmap_hash(key) & mask;; i = (i + 1) & mask) {
    lc_idmap_slot *s = &m->slots[i];
    if (!s->value) return NULL;
    if (s->value != IDMAP_TOMBSTONE && s->key == key) return s;
  }
}

void *lc_idmap_get(const lc_idmap *m, uint64_t key) {
  lc_idmap_slot *s = idmap_find(m, key);
  return s ? s->value : NULL;
}

/* Moves every live entry into a fresh array of `cap` slots (no tombstones). */
static int idmap_rehash(lc_idmap *m, size_t cap) {
  lc_idmap_slot *slots = calloc(cap, sizeof *slots);
  if (!slots) return -1;
  size_t mask = cap - 1;
  for (size_t j = 0; j < m->cap; j++) {
    lc_idmap_slot *s = &m->slots[j];
    if (!s->value || s->value == IDMAP_TOMBSTONE) continue;
    size_t i = (size_t)idmap_hash(s->key) & mask;
    while (slots[i].value) i = (i + 1) & mask;
    slots[i] = *s;
  }
  free(m->slots);
  m->slots = slots;
  m->cap = cap;
  m->used = m->count;
  return 0;
}

/* The smallest capacity that holds `n` live keys under the load limit. */
static size_t idmap_cap_for(size_t n) {
  size_t cap = 8;
  while (idmap_too_full(n + 1, cap)) cap *= 2;
  return cap;
}

int lc_idmap_reserve(lc_idmap *m, size_t n) {
  if (n < m->count) n = m->count;
  size_t cap = idmap_cap_for(n);
  if (cap <= m->cap && !idmap_too_full(m->used + (n - m->count) + 1, m->cap)) return 0;
  return idmap_rehash(m, cap > m->cap ? cap : m->cap);
}

int lc_idmap_put(lc_idmap *m, uint64_t key, void *value) {
  if (!value || value == IDMAP_TOMBSTONE) return -1;
  lc_idmap_slot *s = idmap_find(m, key);
  if (s) {
    s->value = value;
    return 0;
  }
  if (m->cap == 0 || idmap_too_full(m->used + 1, m->cap)) {
    /* Double only if the live keys need it; otherwise the rehash just drops tombstones. */
    size_t cap = idmap_cap_for(m->count + 1);
    if (cap < m->cap) cap = m->cap;
    if (idmap_rehash(m, cap) < 0) return -1;
  }
  size_t mask = m->cap - 1;
  size_t i = (size_t)idmap_hash(key) & mask;
  while (m->slots[i].value && m->slots[i].value != IDMAP_TOMBSTONE) i = (i + 1) & mask;
  if (!m->slots[i].value) m->used++; /* a tombstone reused keeps `used` as it was */
  m->slots[i].key = key;
  m->slots[i].value = value;
  m->count++;
  return 0;
}

void *lc_idmap_remove(lc_idmap *m, uint64_t key) {
  lc_idmap_slot *s = idmap_find(m, key);
  if (!s) return NULL;
  void *v = s->value;
  s->value = IDMAP_TOMBSTONE;
  m->count--;
  return v;
}

int lc_idmap_next(const lc_idmap *m, size_t *pos, uint64_t *key, void **value) {
  for (; *pos < m->cap; (*pos)++) {
    lc_idmap_slot *s = &m->slots[*pos];
    if (!s->value || s->value == IDMAP_TOMBSTONE) continue;
    if (key) *key = s->key;
    if (value) *value = s->value;
    (*pos)++;
    return 1;
  }
  return 0;
}
