/* frontier.c: lc_request, and the in-memory frontier backend (see frontier.h).
 *
 * Layout: the set of accepted URLs holds only a 64-bit fingerprint of each canonical URL, in
 * an open-addressing table (linear probing, grows at 70% load: 11-23 bytes per URL); the URL
 * itself lives only in its queued request, malloc'ed, and goes to the caller with pop. Host
 * keys are copied once into a string arena. Ready requests wait in one FIFO per host; a binary heap
 * orders the hosts by the ready stamp of their oldest request, so "oldest ready overall" is the
 * heap top and a host refused by admit is skipped whole. Retries wait in a second heap keyed by
 * (not_before_ms, stamp) and move to their host's FIFO once their time has come. The ids
 * handed out and not yet ended live in a hash set of uint64. */
#include "frontier.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "url.h"

void lc_request_clear(lc_request *r) {
  if (!r) return;
  free(r->url);
  free(r->data_json);
  memset(r, 0, sizeof *r);
}

/* ---- types ---------------------------------------------------------------------------------- */

typedef struct item {
  lc_request req; /* owns its url and data_json */
  uint64_t stamp; /* ready order in a host FIFO; tie-break in the retry heap */
  struct host *host;
  struct item *next;
} item;

typedef struct host {
  uint64_t hash;
  const char *key; /* "host[:port]", in the arena */
  item *head, *tail;
  size_t heap_at; /* index in hosts_heap, or NOT_IN_HEAP */
} host;

#define NOT_IN_HEAP ((size_t)-1)

typedef struct chunk {
  struct chunk *next;
  size_t used, cap;
  char data[];
} chunk;

#define ARENA_CHUNK ((size_t)64 * 1024)

typedef struct memory_frontier {
  lc_frontier base;
  size_t max_pages;
  uint64_t next_id, next_stamp;
  uint64_t front_stamp; /* counts down from below next_stamp's start: release's stamps */
  size_t accepted, queued, waiting;

  chunk *arena;

  uint64_t *seen; /* fingerprints of accepted URLs; 0 marks an empty slot */
  size_t seen_cap, seen_n;

  host **hosts; /* host map by key */
  size_t hosts_cap, hosts_n;

  host **hosts_heap; /* hosts with a non-empty FIFO, by head stamp; capacity hosts_n */
  host **aside;      /* pop's list of refused hosts; same capacity */
  size_t heap_n, heap_cap;

  item **retry_heap; /* by (not_before_ms, stamp) */
  size_t retry_cap;

  uint64_t *out_ids; /* handed-out ids; 0 marks an empty slot (ids start at 1) */
  size_t out_cap, out_n;
} memory_frontier;

/* ---- hashing and the string arena ----------------------------------------------------------- */

static uint64_t fnv1a(const char *s, size_t n) {
  uint64_t h = 14695981039346656037ULL;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
  return h;
}

static uint64_t mix64(uint64_t x) { /* splitmix64 finalizer */
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/* The 64-bit fingerprint the seen set keeps for a canonical URL (never 0): eight bytes at a
 * time through the splitmix64 finalizer, a bijection, with the length folded in. Two URLs
 * share one with a chance of about n / 2^64 per push; the later one is then taken as seen. */
uint64_t lc_frontier_fingerprint(const char *s, size_t n) {
  uint64_t h = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)n * 0xff51afd7ed558ccdULL);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t k;
    memcpy(&k, s + i, 8);
    h = mix64(h ^ mix64(k + 0x632be59bd9b4e019ULL));
  }
  uint64_t k = 0;
  memcpy(&k, s + i, n - i);
  h = mix64(h ^ mix64(k ^ 0x8cb92ba72f3d8dd7ULL));
  return h ? h : 1;
}

/* Copy n bytes and a NUL into the arena; NULL when out of memory. Freed only by destroy. */
static char *arena_dup(memory_frontier *m, const char *s, size_t n) {
  chunk *c = m->arena;
  if (!c || c->cap - c->used < n + 1) {
    int own = n + 1 > ARENA_CHUNK / 16; /* a big string gets a chunk of its own */
    size_t cap = own ? n + 1 : ARENA_CHUNK;
    chunk *fresh = malloc(sizeof *fresh + cap);
    if (!fresh) return NULL;
    fresh->used = 0;
    fresh->cap = cap;
    if (c && own) { /* and c stays the chunk being filled */
      fresh->next = c->next;
      c->next = fresh;
    } else {
      fresh->next = c;
      m->arena = fresh;
    }
    c = fresh;
  }
  char *p = c->data + c->used;
  memcpy(p, s, n);
  p[n] = '\0';
  c->used += n + 1;
  return p;
}

/* Whether a table of `cap` slots holding n entries must grow to take one more (70% load). */
static int need_grow(size_t n, size_t cap) { return (n + 1) * 10 > cap * 7; }

/* ---- the set of accepted URLs --------------------------------------------------------------- */

static int seen_has(const memory_frontier *m, uint64_t fp) {
  if (!m->seen_cap) return 0;
  size_t mask = m->seen_cap - 1;
  for (size_t i = mix64(fp) & mask;; i = (i + 1) & mask) {
    if (!m->seen[i]) return 0;
    if (m->seen[i] == fp) return 1;
  }
}

static void seen_put(uint64_t *tab, size_t cap, uint64_t fp) {
  size_t mask = cap - 1, i = mix64(fp) & mask;
  while (tab[i]) i = (i + 1) & mask;
  tab[i] = fp;
}

/* Make room for one more URL. */
static int seen_reserve(memory_frontier *m) {
  if (!need_grow(m->seen_n, m->seen_cap)) return 0;
  size_t cap = m->seen_cap ? m->seen_cap * 2 : 1024;
  uint64_t *tab = calloc(cap, sizeof *tab);
  if (!tab) return -1;
  for (size_t i = 0; i < m->seen_cap; i++)
    if (m->seen[i]) seen_put(tab, cap, m->seen[i]);
  free(m->seen);
  m->seen = tab;
  m->seen_cap = cap;
  return 0;
}

/* ---- hosts: the map, and the heap by oldest ready request ----------------------------------- */

static void hosts_put(host **tab, size_t cap, host *h) {
  size_t mask = cap - 1, i = h->hash & mask;
  while (tab[i]) i = (i + 1) & mask;
  tab[i] = h;
}

/* Find the host with this key, creating it (and room for it in the heaps) if needed. */
static host *host_get(memory_frontier *m, const char *key) {
  size_t n = strlen(key);
  uint64_t hash = fnv1a(key, n);
  if (m->hosts_cap) {
    size_t mask = m->hosts_cap - 1;
    for (size_t i = hash & mask; m->hosts[i]; i = (i + 1) & mask)
      if (m->hosts[i]->hash == hash && strcmp(m->hosts[i]->key, key) == 0) return m->hosts[i];
  }
  if (need_grow(m->hosts_n, m->hosts_cap)) {
    size_t cap = m->hosts_cap ? m->hosts_cap * 2 : 64;
    host **tab = calloc(cap, sizeof *tab);
    if (!tab) return NULL;
    for (size_t i = 0; i < m->hosts_cap; i++)
      if (m->hosts[i]) hosts_put(tab, cap, m->hosts[i]);
    free(m->hosts);
    m->hosts = tab;
    m->hosts_cap = cap;
  }
  if (m->hosts_n + 1 > m->heap_cap) { /* every host fits in the heap and in aside at once */
    size_t cap = m->heap_cap ? m->heap_cap * 2 : 64;
    host **heap = realloc(m->hosts_heap, cap * sizeof *heap);
    if (!heap) return NULL;
    m->hosts_heap = heap;
    host **aside = realloc(m->aside, cap * sizeof *aside);
    if (!aside) return NULL;
    m->aside = aside;
    m->heap_cap = cap;
  }
  host *h = calloc(1, sizeof *h);
  const char *k = h ? arena_dup(m, key, n) : NULL;
  if (!k) {
    free(h);
    return NULL;
  }
  h->hash = hash;
  h->key = k;
  h->heap_at = NOT_IN_HEAP;
  hosts_put(m->hosts, m->hosts_cap, h);
  m->hosts_n++;
  return h;
}

static int host_before(const host *a, const host *b) { return a->head->stamp < b->head->stamp; }

static void heap_set(memory_frontier *m, size_t i, host *h) {
  m->hosts_heap[i] = h;
  h->heap_at = i;
}

static void heap_up(memory_frontier *m, size_t i) {
  host *h = m->hosts_heap[i];
  while (i > 0 && host_before(h, m->hosts_heap[(i - 1) / 2])) {
    heap_set(m, i, m->hosts_heap[(i - 1) / 2]);
    i = (i - 1) / 2;
  }
  heap_set(m, i, h);
}

static void heap_down(memory_frontier *m, size_t i) {
  host *h = m->hosts_heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= m->heap_n) break;
    if (c + 1 < m->heap_n && host_before(m->hosts_heap[c + 1], m->hosts_heap[c])) c++;
    if (!host_before(m->hosts_heap[c], h)) break;
    heap_set(m, i, m->hosts_heap[c]);
    i = c;
  }
  heap_set(m, i, h);
}

static void heap_push(memory_frontier *m, host *h) { /* capacity is reserved by host_get */
  m->hosts_heap[m->heap_n] = h;
  heap_up(m, m->heap_n++);
}

static void heap_pop_top(memory_frontier *m) {
  m->hosts_heap[0]->heap_at = NOT_IN_HEAP;
  if (--m->heap_n > 0) {
    heap_set(m, 0, m->hosts_heap[m->heap_n]);
    heap_down(m, 0);
  }
}

/* Queue a ready item at the tail of its host's FIFO. */
static void host_append(memory_frontier *m, item *it) {
  host *h = it->host;
  it->stamp = m->next_stamp++;
  it->next = NULL;
  if (h->tail) {
    h->tail->next = it;
    h->tail = it;
  } else {
    h->head = h->tail = it;
    heap_push(m, h);
  }
  m->queued++;
}

/* ---- retries waiting for their time --------------------------------------------------------- */

static int retry_before(const item *a, const item *b) {
  if (a->req.not_before_ms != b->req.not_before_ms)
    return a->req.not_before_ms < b->req.not_before_ms;
  return a->stamp < b->stamp;
}

static int retry_reserve(memory_frontier *m) {
  if (m->waiting < m->retry_cap) return 0;
  size_t cap = m->retry_cap ? m->retry_cap * 2 : 64;
  item **heap = realloc(m->retry_heap, cap * sizeof *heap);
  if (!heap) return -1;
  m->retry_heap = heap;
  m->retry_cap = cap;
  return 0;
}

static void retry_push(memory_frontier *m, item *it) {
  size_t i = m->waiting++;
  while (i > 0 && retry_before(it, m->retry_heap[(i - 1) / 2])) {
    m->retry_heap[i] = m->retry_heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  m->retry_heap[i] = it;
}

static item *retry_pop(memory_frontier *m) {
  item *top = m->retry_heap[0], *last = m->retry_heap[--m->waiting];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= m->waiting) break;
    if (c + 1 < m->waiting && retry_before(m->retry_heap[c + 1], m->retry_heap[c])) c++;
    if (!retry_before(m->retry_heap[c], last)) break;
    m->retry_heap[i] = m->retry_heap[c];
    i = c;
  }
  if (m->waiting > 0) m->retry_heap[i] = last;
  return top;
}

/* Move every retry whose time has come to its host's FIFO, earliest first. */
static void release_due(memory_frontier *m, int64_t now_ms) {
  while (m->waiting > 0 && m->retry_heap[0]->req.not_before_ms <= now_ms)
    host_append(m, retry_pop(m));
}

/* ---- handed-out ids ------------------------------------------------------------------------- */

static size_t out_find(const memory_frontier *m, uint64_t id) { /* slot index or out_cap */
  if (!m->out_cap || id == 0) return m->out_cap;
  size_t mask = m->out_cap - 1;
  for (size_t i = mix64(id) & mask; m->out_ids[i]; i = (i + 1) & mask)
    if (m->out_ids[i] == id) return i;
  return m->out_cap;
}

static void out_put(uint64_t *tab, size_t cap, uint64_t id) {
  size_t mask = cap - 1, i = mix64(id) & mask;
  while (tab[i]) i = (i + 1) & mask;
  tab[i] = id;
}

static int out_reserve(memory_frontier *m) {
  if (!need_grow(m->out_n, m->out_cap)) return 0;
  size_t cap = m->out_cap ? m->out_cap * 2 : 64;
  uint64_t *tab = calloc(cap, sizeof *tab);
  if (!tab) return -1;
  for (size_t i = 0; i < m->out_cap; i++)
    if (m->out_ids[i]) out_put(tab, cap, m->out_ids[i]);
  free(m->out_ids);
  m->out_ids = tab;
  m->out_cap = cap;
  return 0;
}

/* Delete slot i by shifting later members of its probe run back (no tombstones). */
static void out_delete(memory_frontier *m, size_t i) {
  size_t mask = m->out_cap - 1;
  for (size_t j = (i + 1) & mask; m->out_ids[j]; j = (j + 1) & mask) {
    size_t home = mix64(m->out_ids[j]) & mask;
    /* the member at j may move to i unless its home lies cyclically in (i, j] */
    int stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
    if (!stays) {
      m->out_ids[i] = m->out_ids[j];
      i = j;
    }
  }
  m->out_ids[i] = 0;
  m->out_n--;
}

/* ---- the backend operations ----------------------------------------------------------------- */

static void item_free(item *it) {
  free(it->req.url);
  free(it->req.data_json);
  free(it);
}

static int memory_push(lc_frontier *f, const char *url, int depth, const char *data_json,
                       int64_t now_ms) {
  memory_frontier *m = (memory_frontier *)f;
  if (!m || !url || depth < 0) return LC_FRONTIER_EINVAL;
  char *norm = NULL;
  size_t host_at, host_len;
  int rc = lc_url_normalize_host(NULL, url, &norm, &host_at, &host_len, NULL);
  if (rc < 0) return rc == LC_URL_ENOMEM ? LC_FRONTIER_ENOMEM : LC_FRONTIER_EURL;
  uint64_t fp = lc_frontier_fingerprint(norm, strlen(norm));
  if (seen_has(m, fp)) {
    free(norm);
    return 0;
  }
  if (m->max_pages && m->accepted >= m->max_pages) {
    free(norm);
    return LC_FRONTIER_EFULL;
  }
  char key[LC_URL_MAX + 1]; /* the host key, "host[:port]" */
  memcpy(key, norm + host_at, host_len);
  key[host_len] = '\0';
  /* Everything that can fail happens before anything is committed. */
  item *it = calloc(1, sizeof *it);
  char *data = NULL;
  host *h = NULL;
  if (!it || (data_json && !(data = strdup(data_json))) || !(h = host_get(m, key)) ||
      seen_reserve(m) != 0) {
    free(norm);
    free(data);
    free(it);
    return LC_FRONTIER_ENOMEM;
  }
  seen_put(m->seen, m->seen_cap, fp);
  m->seen_n++;
  m->accepted++;
  it->req.id = m->next_id++;
  it->req.url = norm; /* the only copy, handed to the caller by pop */
  it->req.data_json = data;
  it->req.depth = depth;
  it->host = h;
  release_due(m, now_ms); /* retries already due queue ahead of this push */
  host_append(m, it);
  return 1;
}

/* The first half of ending a handed-out r by queueing it again (retry, release): a new item
 * holding r's request and its host, r's id no longer handed out. NULL with *rc on failure,
 * when nothing changed (r untouched, its id still handed out: the caller can still end it
 * with done). `for_retry` also reserves the retry heap's room first. */
static item *take_back(memory_frontier *m, lc_request *r, int for_retry, int *rc) {
  *rc = 0;
  if (!r->url) {
    *rc = LC_FRONTIER_EINVAL;
    return NULL;
  }
  size_t at = out_find(m, r->id);
  if (at == m->out_cap) {
    *rc = LC_FRONTIER_ENOENT;
    return NULL;
  }
  char key[LC_URL_MAX + 1];
  int urc = lc_url_host(r->url, key, sizeof key);
  if (urc < 0) {
    *rc = urc == LC_URL_ENOMEM ? LC_FRONTIER_ENOMEM : LC_FRONTIER_EURL;
    return NULL;
  }
  item *it = !for_retry || retry_reserve(m) == 0 ? calloc(1, sizeof *it) : NULL;
  host *h = it ? host_get(m, key) : NULL;
  if (!h) {
    free(it);
    *rc = LC_FRONTIER_ENOMEM;
    return NULL;
  }
  out_delete(m, at);
  it->req = *r;
  it->host = h;
  return it;
}

/* Queue r again; on success r's strings are taken, on failure r is untouched (take_back). */
static int retry_enqueue(memory_frontier *m, lc_request *r, int64_t not_before_ms) {
  int rc;
  item *it = take_back(m, r, 1, &rc);
  if (!it) return rc;
  if (it->req.attempt < INT_MAX) it->req.attempt++;
  it->req.not_before_ms = not_before_ms;
  it->stamp = m->next_stamp++;
  retry_push(m, it);
  return 0;
}

/* Give r back untried: the first of its host's FIFO, ready at once, its counts unchanged. Its
 * stamp is older than any queued (front_stamp counts down below every stamp next_stamp gives),
 * so it is the oldest ready request and its host moves up the heap; of two given back, the
 * later is older. r's strings are taken on success; on failure r is untouched. */
static int release_enqueue(memory_frontier *m, lc_request *r) {
  int rc;
  item *it = take_back(m, r, 0, &rc);
  if (!it) return rc;
  host *h = it->host;
  it->req.not_before_ms = 0;
  it->next = h->head;
  it->stamp = m->front_stamp--;
  if (h->head) {
    h->head = it;
    heap_up(m, h->heap_at);
  } else {
    h->head = h->tail = it;
    heap_push(m, h);
  }
  m->queued++;
  return 0;
}

/* retry and release always take r's strings: cleared on failure, moved on success. */
static int memory_retry(lc_frontier *f, lc_request *r, int64_t not_before_ms) {
  if (!r) return LC_FRONTIER_EINVAL;
  int rc = f ? retry_enqueue((memory_frontier *)f, r, not_before_ms) : LC_FRONTIER_EINVAL;
  if (rc < 0)
    lc_request_clear(r);
  else
    memset(r, 0, sizeof *r);
  return rc;
}

static int memory_release(lc_frontier *f, lc_request *r) {
  if (!r) return LC_FRONTIER_EINVAL;
  int rc = f ? release_enqueue((memory_frontier *)f, r) : LC_FRONTIER_EINVAL;
  if (rc < 0)
    lc_request_clear(r);
  else
    memset(r, 0, sizeof *r);
  return rc;
}

/* Hand out the head of h, which is the heap top. */
static int take(memory_frontier *m, host *h, lc_request *out) {
  item *it = h->head;
  if (out_reserve(m) < 0) return LC_FRONTIER_ENOMEM;
  h->head = it->next;
  if (h->head) {
    heap_down(m, 0); /* its new head is younger */
  } else {
    h->tail = NULL;
    heap_pop_top(m);
  }
  m->queued--;
  *out = it->req; /* the url and data move to the caller */
  out_put(m->out_ids, m->out_cap, out->id);
  m->out_n++;
  free(it);
  return 1;
}

static int memory_pop(lc_frontier *f, int64_t now_ms, lc_frontier_admit_fn admit, void *ud,
                      lc_request *out, int64_t *next_ms) {
  memory_frontier *m = (memory_frontier *)f;
  if (next_ms) *next_ms = -1;
  if (!m || !out) return LC_FRONTIER_EINVAL;
  memset(out, 0, sizeof *out);
  release_due(m, now_ms);
  int rc = 0;
  size_t refused = 0;
  while (m->heap_n > 0) {
    host *h = m->hosts_heap[0];
    if (admit && !admit(ud, h->head->req.url)) {
      heap_pop_top(m);
      m->aside[refused++] = h;
      continue;
    }
    rc = take(m, h, out);
    break;
  }
  for (size_t i = 0; i < refused; i++) heap_push(m, m->aside[i]);
  if (next_ms && m->waiting > 0) *next_ms = m->retry_heap[0]->req.not_before_ms;
  return rc;
}

static int memory_done(lc_frontier *f, uint64_t id, int ok) {
  memory_frontier *m = (memory_frontier *)f;
  (void)ok; /* nothing outlives the run here, so the outcome is not recorded */
  if (!m) return LC_FRONTIER_EINVAL;
  size_t at = out_find(m, id);
  if (at == m->out_cap) return LC_FRONTIER_ENOENT;
  out_delete(m, at);
  return 0;
}

static size_t memory_pending(const lc_frontier *f) {
  const memory_frontier *m = (const memory_frontier *)f;
  return m ? m->queued + m->waiting : 0;
}

static size_t memory_accepted(const lc_frontier *f) {
  const memory_frontier *m = (const memory_frontier *)f;
  return m ? m->accepted : 0;
}

static void memory_destroy(lc_frontier *f) {
  memory_frontier *m = (memory_frontier *)f;
  if (!m) return;
  for (size_t i = 0; i < m->hosts_cap; i++) {
    host *h = m->hosts[i];
    if (!h) continue;
    for (item *it = h->head, *next; it; it = next) {
      next = it->next;
      item_free(it);
    }
    free(h);
  }
  for (size_t i = 0; i < m->waiting; i++) item_free(m->retry_heap[i]);
  for (chunk *c = m->arena, *next; c; c = next) {
    next = c->next;
    free(c);
  }
  free(m->seen);
  free(m->hosts);
  free(m->hosts_heap);
  free(m->aside);
  free(m->retry_heap);
  free(m->out_ids);
  free(m);
}

static const lc_frontier_ops memory_ops = {
    .push = memory_push,
    .retry = memory_retry,
    .pop = memory_pop,
    .done = memory_done,
    .release = memory_release,
    .pending = memory_pending,
    .accepted = memory_accepted,
    .destroy = memory_destroy,
};

lc_frontier *lc_frontier_memory_new(size_t max_pages) {
  memory_frontier *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->base.ops = &memory_ops;
  m->max_pages = max_pages;
  m->next_id = 1;
  m->next_stamp = (uint64_t)1 << 62; /* 2^62 stamps up for pushes and retries, down for releases */
  m->front_stamp = m->next_stamp - 1;
  return &m->base;
}
