/* hosttab.h: a map from host key ("host[:port]") to the caller's per-host record.
 *
 * Owns: the index only (an open-addressing hash table, linear probing, grows at 70% load), so
 * finding a host's politeness state costs O(1) expected whatever the number of hosts; the job
 * used to scan a list on every admission, O(hosts) per lookup and O(hosts^2) per pop. The
 * records are the caller's: the table keeps a pointer to each and to its key, which must live
 * as long as the record is in the table. Not thread-safe.
 */
#ifndef LC_HOSTTAB_H
#define LC_HOSTTAB_H

#include <stddef.h>

typedef struct lc_hosttab lc_hosttab;

/* An empty table, or NULL when out of memory. Released by lc_hosttab_free(). */
lc_hosttab *lc_hosttab_new(void);
/* The record stored under `key`, or NULL. */
void *lc_hosttab_find(const lc_hosttab *t, const char *key);
/* Store `value` under `key` (which must not be in the table yet). The table keeps both
 * pointers. Returns 0, or -1 when out of memory (nothing stored). */
int lc_hosttab_put(lc_hosttab *t, const char *key, void *value);
size_t lc_hosttab_count(const lc_hosttab *t);
/* Calls fn(value, ud) once for every record, in no particular order; fn must not change the
 * table (freeing the record is fine: lc_hosttab_free is all that may follow). */
void lc_hosttab_each(const lc_hosttab *t, void (*fn)(void *value, void *ud), void *ud);
/* Free the index (not the records); NULL is ignored. */
void lc_hosttab_free(lc_hosttab *t);

#endif
