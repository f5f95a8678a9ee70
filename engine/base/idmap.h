/* idmap.h: a map from uint64 keys to the caller's pointers.
 *
 * Owns: the index only (open addressing, linear probing, power-of-two capacity, grows or
 * rehashes when live plus deleted slots pass 70 % of it), so finding, adding and removing a
 * key cost O(1) expected whatever the number of keys. Any uint64 is a valid key; values are
 * the caller's and must not be NULL (NULL means "not there"). Removing never allocates and
 * never fails, so it is safe on paths that cannot fail; only lc_idmap_put may. Not
 * thread-safe. Embedded by value: lc_idmap_init before use, lc_idmap_free after.
 */
#ifndef LC_IDMAP_H
#define LC_IDMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct lc_idmap_slot {
  uint64_t key;
  void *value; /* NULL: empty; the map's tombstone: deleted; else live */
} lc_idmap_slot;

typedef struct lc_idmap {
  lc_idmap_slot *slots;
  size_t cap;   /* 0 or a power of two */
  size_t count; /* live keys */
  size_t used;  /* live keys plus tombstones */
} lc_idmap;

/* An empty map; allocates nothing until the first put. */
void lc_idmap_init(lc_idmap *m);
/* Frees the index (not the values) and leaves the map empty and usable. */
void lc_idmap_free(lc_idmap *m);
/* The value stored under `key`, or NULL. */
void *lc_idmap_get(const lc_idmap *m, uint64_t key);
/* Stores `value` (not NULL) under `key`, replacing any value there. Returns 0, or -1 when
 * out of memory or `value` is NULL (the map is then unchanged). */
int lc_idmap_put(lc_idmap *m, uint64_t key, void *value);
/* Removes `key`; returns the value it had, or NULL if it was not there. Never fails. */
void *lc_idmap_remove(lc_idmap *m, uint64_t key);
/* Makes room for `n` keys in all, so that puts up to that count do not allocate. Returns 0
 * or -1 when out of memory. */
int lc_idmap_reserve(lc_idmap *m, size_t n);
static inline size_t lc_idmap_count(const lc_idmap *m) { return m->count; }
/* Iteration: `*pos` starts at 0; each call that returns 1 sets *key and *value to the next
 * entry, in no particular order; 0 at the end. The map must not change meanwhile, except by
 * lc_idmap_remove of the entry just returned. */
int lc_idmap_next(const lc_idmap *m, size_t *pos, uint64_t *key, void **value);

#endif
