/* store.h: a crawl's durable state in one SQLite file (--state FILE), so a crawl resumes after
 * any kill with nothing lost and nothing written twice.
 * Owns: the database connection (WAL, prepared statements, one transaction batched over many
 * operations), the file lock that keeps a second luacrawl out, the job's identity (a hash of
 * the script and its arguments), and these tables: requests (URL, depth, data, attempt and
 * throttle counts, lost leases, state queued/leased/done/failed, not-before in wall-clock ms), seen (a
 * 64-bit fingerprint per accepted URL), records (committed JSON lines, in commit order), hosts
 * (politeness times in wall-clock ms), robots (answers with their fetch time), meta (counters,
 * times, the output position).
 *
 * Exactly once: a request's records are inserted in the same transaction that marks it done
 * (lc_store_commit); output is written from committed records only (lc_store_each_record after
 * lc_store_flush), and the position written so far is itself stored (lc_store_set_output).
 * Batching: writes go into an open transaction that lc_store_flush commits (the caller calls
 * it on a timer and before writing output); nothing is visible after a crash unless flushed.
 *
 * Time: the frontier interface passes the loop's monotonic ms; the store keeps wall-clock ms
 * (CLOCK_REALTIME), converting with the offset it measures at open, because a monotonic clock
 * means nothing after a restart.
 *
 * Errors: negative LC_STORE_E* codes (and a message through lc_store_error). A failed write
 * (a full disk) is reported, never swallowed: the caller stops the run; what was committed
 * survives. Not thread-safe: one loop thread uses a store. */
#ifndef LC_STORE_H
#define LC_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "frontier.h"

enum {
  LC_STORE_EINVAL = -1,
  LC_STORE_EIO = -2,      /* SQLite failed (full disk, I/O error): lc_store_error says why */
  LC_STORE_ELOCKED = -3,  /* another process holds the state file */
  LC_STORE_EOTHERJOB = -4,/* the file belongs to another job script or other arguments */
  LC_STORE_ENOTDB = -5,   /* not a SQLite file, or corrupt, or not a luacrawl state file */
  LC_STORE_ENOENT = -6,
  LC_STORE_EEMPTY = -7,   /* read_only: an empty SQLite file (a run killed before its first commit) */
};

typedef struct lc_store lc_store;

typedef struct lc_store_opts {
  const char *path;     /* the state file; created if missing */
  const char *job_hash; /* identity of the job (script + arguments), hex; NULL for read-only tools */
  int reuse;            /* --state-reuse: take over a file of another job_hash */
  int read_only;        /* luacrawl status / export: no lock, no writes */
  /* The state file may not grow past this many bytes (PRAGMA max_page_count); 0: no limit. A
   * write past it fails with LC_STORE_EIO exactly as a full disk does (the tests use it so). */
  int64_t max_bytes;
  /* Tests: the clocks in ms, wall (CLOCK_REALTIME) when `wall` is nonzero, else monotonic;
   * NULL for the system's. */
  int64_t (*clock_ms)(void *ud, int wall);
  void *clock_ud;
} lc_store_opts;

/* Open (or create) the state file. On open, every request still leased (its run died: a
 * clean close gives leases back) goes back to the queue first of its host, its attempt count
 * kept and its lost-lease count (lc_request.lost) one more. A version 1 file (before that
 * count) is upgraded by a writer, read as it is by a read-only open. NULL with a one-line message in err (and *code set to an
 * LC_STORE_E* code when code is not NULL). Released by lc_store_close (which flushes).
 * With `reuse`, a file of another job_hash is taken over as it stands (its seen set, queue and
 * records kept) and stamped with the new job_hash. A read-only open of a missing file is
 * LC_STORE_ENOENT. The lock is a flock(2) on the state file itself (close-on-exec), released
 * by close or by the death of the process. */
lc_store *lc_store_open(const lc_store_opts *o, char *err, size_t errlen, int *code);
/* Gives every request still leased back uncounted (this process is alive: they did not kill
 * it), flushes; returns 0 or the flush's error. */
int lc_store_close(lc_store *s);
const char *lc_store_error(const lc_store *s); /* the last error's message */
/* 1 if the file already held a crawl when opened (a resume), 0 if new. */
int lc_store_resumed(const lc_store *s);

/* Commit the open transaction (durable per the synchronous setting: NORMAL). After a failed
 * write (LC_STORE_EIO from any call) the open transaction is rolled back and every later write
 * and flush fails with LC_STORE_EIO: what the last successful flush committed is the state. */
int lc_store_flush(lc_store *s);
/* Operations since the last flush (the caller flushes at a count or a time). */
size_t lc_store_unflushed(const lc_store *s);

/* The frontier over this store: the same interface and contract as the in-memory one
 * (frontier.h), the queue and the seen set on disk. pop leases; retry requeues (attempt + 1);
 * release requeues it as it was; done(id, 0) marks failed; done(id, 1) marks done without records (use lc_store_commit to
 * attach records). Owned by the store: destroy() only detaches it. A failed write is
 * LC_FRONTIER_EIO (lc_store_error says why). NULL for a read-only store. Calling it again
 * returns the same frontier with the new max_pages; accepted() counts every URL the file
 * ever accepted, so max_pages bounds the whole crawl across resumes. */
lc_frontier *lc_store_frontier(lc_store *s, size_t max_pages);

/* Mark a leased request done and append its records (n JSON lines without newline) in one
 * step of the open transaction. LC_FRONTIER_ENOENT if the id is not leased. request_id 0
 * appends records that belong to no request (job:emit outside a handler). */
int lc_store_commit(lc_store *s, uint64_t request_id, const char *const *lines,
                    const size_t *lens, size_t n);

/* Committed records with seq > after_seq, in order: fn returns nonzero to stop. Only flushed
 * records are seen (one committed by lc_store_commit but not yet flushed could still vanish
 * in a crash); fn must not call lc_store_each_record. */
typedef int (*lc_store_record_fn)(void *ud, uint64_t seq, const char *line, size_t len);
int lc_store_each_record(lc_store *s, uint64_t after_seq, lc_store_record_fn fn, void *ud);
/* The output position: the last record seq written and the file's byte offset after it
 * (-1 for a stream). Stored in the open transaction. */
int lc_store_set_output(lc_store *s, uint64_t seq, int64_t offset);
int lc_store_get_output(lc_store *s, uint64_t *seq, int64_t *offset);
/* The output that position is in: a path as the job resolved it, "-" for stdout. set stores
 * it in the open transaction; get copies it into buf (NUL-terminated) and returns 1, or 0 when
 * none is stored (a new file, or one of a version that did not store it). Errors: negative. */
int lc_store_set_output_path(lc_store *s, const char *path);
int lc_store_get_output_path(lc_store *s, char *buf, size_t n);

/* Counters that survive resumes (pages_ok, pages_failed, retries, ...): add and read. */
int lc_store_counter_add(lc_store *s, const char *name, int64_t delta);
int64_t lc_store_counter(lc_store *s, const char *name);

/* Politeness of a host in wall-clock ms (0 if unknown). */
int lc_store_host_set(lc_store *s, const char *host, int64_t next_ok_wall_ms);
int64_t lc_store_host_get(lc_store *s, const char *host);
/* robots.txt answers of an origin: status and text, fresh for 24 h (RFC 9309). get returns 1
 * and a malloc'ed *text (caller frees) when a fresh answer is stored, 0 when none. */
int lc_store_robots_put(lc_store *s, const char *origin, int status, const char *text,
                        size_t len);
int lc_store_robots_get(lc_store *s, const char *origin, int *status, char **text, size_t *len);

/* Where a crawl stands (luacrawl status). */
typedef struct lc_store_status {
  int64_t queued, leased, done, failed, records;
  int64_t started_ms, last_activity_ms; /* wall clock */
  char job_hash[72];
} lc_store_status;
int lc_store_get_status(lc_store *s, lc_store_status *out);

#endif
