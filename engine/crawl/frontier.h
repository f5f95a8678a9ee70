/* frontier.h: the crawl frontier interface, and its in-memory backend.
 *
 * Owns: which URLs a run has accepted (dedupe on the canonical URL of url.h), the queue of
 * requests waiting to be fetched, their ids, and the requests handed out and not yet finished.
 * Backends sit behind lc_frontier_ops so a durable one (SQLite: resume after kill -9) or a
 * shared one (Redis) can replace the in-memory one without touching callers. Time is always a
 * parameter (`now_ms`, any monotonic clock in milliseconds) so tests drive a fake clock.
 *
 * Life of a request
 *   push     a URL is accepted once per run and queued, ready at once, with a new id.
 *   pop      hands it out; the caller now owns the lc_request and must end it with exactly one
 *            of retry() (queue it again, same id), done() (finished for good) or release()
 *            (given back untried: a clean stop), and release its strings with
 *            lc_request_clear() (retry and release take them over instead).
 * A request handed out and never ended (the process died, or stalled past a shared lease) is
 * lost: the backends that outlive the process (SQLite, Redis) queue it again and count it in
 * `lost`, so the caller can give up on a request that takes its engine down every time.
 * Order: requests are handed out in the order they became ready (a push is ready at once, a
 * retry when its not_before_ms passes), skipping hosts the `admit` gate refuses.
 *
 * Errors are negative LC_FRONTIER_E* codes. Not thread-safe: one loop thread uses a frontier.
 */
#ifndef LC_FRONTIER_H
#define LC_FRONTIER_H

#include <stddef.h>
#include <stdint.h>

enum {
  LC_FRONTIER_EINVAL = -1, /* a NULL argument or a negative depth */
  LC_FRONTIER_EFULL = -2,  /* push: max_pages URLs were already accepted */
  LC_FRONTIER_EURL = -3,   /* push: not a crawlable URL (lc_url_normalize says why) */
  LC_FRONTIER_ENOMEM = -4,
  LC_FRONTIER_ENOENT = -5, /* retry/done: that id is not handed out (double or unknown end) */
  LC_FRONTIER_EIO = -6,    /* a durable backend could not read or write (store.h says why) */
};

typedef struct lc_request {
  uint64_t id;     /* assigned by the frontier at push (from 1), unique per run */
  char *url;       /* normalized, owned by the request */
  char *data_json; /* optional user data as JSON text, owned, may be NULL */
  int depth;
  int attempt;           /* 0 on first try; retry() adds one */
  int throttles;         /* 429/503 answers so far (kept by the caller across retries) */
  int crashes;           /* attempts during which the browser crashed (kept by the caller) */
  int64_t not_before_ms; /* not handed out before this time (retry backoff, Retry-After) */
  /* Times it was handed out and never ended: the process holding it died (found at a resume)
   * or its shared lease expired (a dead or stalled engine). Counted by the backend, kept
   * across retries; never by a clean stop (release). */
  int lost;
} lc_request;

/* Free the strings of a request and zero it; a zeroed request may be cleared again. */
void lc_request_clear(lc_request *r);

typedef struct lc_frontier lc_frontier;

/* The admit gate of pop: return nonzero to accept `url`. It is the per-host politeness gate,
 * so its answer must hold for every URL of that host: pop asks it at most once per host per
 * call, with that host's oldest ready URL, and skips the whole host on a refusal. `url` is
 * only valid during the call, and admit must not call the frontier. Per-URL filters (robots,
 * scope) belong before push or after pop. */
typedef int (*lc_frontier_admit_fn)(void *ud, const char *url);

typedef struct lc_frontier_ops {
  /* Add a new URL, normalized here again (lc_url_normalize without a base; normalize
   * relative links yourself first, and to learn why one is refused). Returns 1 if added, 0 if
   * already seen this run (checked before fullness), LC_FRONTIER_EFULL when max_pages URLs
   * were already accepted, <0 on error. `data_json` is copied, not validated. */
  int (*push)(lc_frontier *f, const char *url, int depth, const char *data_json, int64_t now_ms);
  /* Put back a handed-out request for another attempt: same id, attempt + 1, not handed out
   * before not_before_ms. Not deduped, not counted against max_pages. Always takes ownership of
   * r's strings (frees them on error too) and zeroes *r. LC_FRONTIER_ENOENT if r->id is not
   * handed out; after any other error the id stays handed out: end it with done(id, 0). */
  int (*retry)(lc_frontier *f, lc_request *r, int64_t not_before_ms);
  /* Hand out the oldest ready request whose not_before_ms <= now_ms and whose host `admit`
   * accepts (admit may be NULL). Returns 1 and fills *out (the caller owns it; see the life
   * of a request), 0 if none is ready now (*out zeroed). `*next_ms` (if not NULL) gets the
   * earliest not_before_ms among requests still waiting for their time, or -1: when pop
   * returns 0 with ready requests refused by admit, the caller's politeness timer decides
   * when to ask again. */
  int (*pop)(lc_frontier *f, int64_t now_ms, lc_frontier_admit_fn admit, void *ud, lc_request *out,
             int64_t *next_ms);
  /* Mark a handed-out request finished for good (ok or failed); a durable backend records
   * it. LC_FRONTIER_ENOENT if `id` is not handed out. */
  int (*done)(lc_frontier *f, uint64_t id, int ok);
  /* Give a handed-out request back untried, because the caller stops (an interrupt, a job
   * cancelled), not because of the request: same id, its counts (attempt, throttles,
   * crashes, lost) unchanged, ready at once as the first of its host. Always takes ownership
   * of r's strings and zeroes *r. LC_FRONTIER_ENOENT if r->id is not handed out. The shared
   * backend sends it and returns (rfrontier.h: wait for its answer before destroy). */
  int (*release)(lc_frontier *f, lc_request *r);
  size_t (*pending)(const lc_frontier *f);  /* queued: ready or waiting (not handed out) */
  size_t (*accepted)(const lc_frontier *f); /* URLs accepted by push so far */
  /* Free the frontier and every queued request. Handed-out requests stay the caller's. */
  void (*destroy)(lc_frontier *f);
} lc_frontier_ops;

struct lc_frontier {
  const lc_frontier_ops *ops;
};

/* The 64-bit fingerprint the seen set keeps for a canonical URL of `len` bytes (never 0). Every
 * backend uses this one, so a URL is "seen" the same way in memory and on disk. */
uint64_t lc_frontier_fingerprint(const char *url, size_t len);

/* The in-memory backend: a hash set of accepted URLs, one FIFO per host, a heap of hosts by
 * their oldest ready request and a heap of retries by not_before_ms. Beyond parsing the URL,
 * push and done are O(1) amortized (plus O(log hosts) when a host's queue was empty), retry
 * O(log waiting), pop O(log hosts) plus O(log hosts) per host refused by admit; never O(queued).
 * What stays for the run is a 64-bit fingerprint per accepted URL (11-23 bytes per URL with
 * the table's slack: about 16 MB per million; spec/c/test_frontier.c measures it); the URL
 * itself is kept only while queued. Two URLs whose fingerprints collide (a chance of about
 * n / 2^64 per push) count as one: the later is "already seen". max_pages 0 means
 * unlimited. Returns NULL when out of memory. Released by lc_frontier_destroy(). */
lc_frontier *lc_frontier_memory_new(size_t max_pages);

/* Wrappers over ops, checking f first. */
static inline int lc_frontier_push(lc_frontier *f, const char *url, int depth,
                                   const char *data_json, int64_t now_ms) {
  return f ? f->ops->push(f, url, depth, data_json, now_ms) : LC_FRONTIER_EINVAL;
}
static inline int lc_frontier_retry(lc_frontier *f, lc_request *r, int64_t not_before_ms) {
  if (!f) {
    if (r) lc_request_clear(r);
    return LC_FRONTIER_EINVAL;
  }
  return f->ops->retry(f, r, not_before_ms);
}
static inline int lc_frontier_pop(lc_frontier *f, int64_t now_ms, lc_frontier_admit_fn admit,
                                  void *ud, lc_request *out, int64_t *next_ms) {
  return f ? f->ops->pop(f, now_ms, admit, ud, out, next_ms) : LC_FRONTIER_EINVAL;
}
static inline int lc_frontier_done(lc_frontier *f, uint64_t id, int ok) {
  return f ? f->ops->done(f, id, ok) : LC_FRONTIER_EINVAL;
}
static inline int lc_frontier_release(lc_frontier *f, lc_request *r) {
  if (!f) {
    if (r) lc_request_clear(r);
    return LC_FRONTIER_EINVAL;
  }
  return f->ops->release(f, r);
}
static inline size_t lc_frontier_pending(const lc_frontier *f) {
  return f ? f->ops->pending(f) : 0;
}
static inline size_t lc_frontier_accepted(const lc_frontier *f) {
  return f ? f->ops->accepted(f) : 0;
}
static inline void lc_frontier_destroy(lc_frontier *f) {
  if (f) f->ops->destroy(f);
}

#endif
