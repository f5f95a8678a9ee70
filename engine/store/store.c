/* store.c: the durable crawl state in one SQLite file (see store.h).
 *
 * Layout on disk (schema version 2; a version 1 file gains `lost` when a writer opens it):
 *   meta(key, value)       schema_version, job_hash, started, last_activity, next_ord,
 *                          output_seq, output_offset, output_path, "counter:<name>"
 *   hosts(id, key, next_ok_wall_ms)
 *   requests(id, url, host_id, depth, data, attempt, throttles, crashes, state,
 *            not_before_wall_ms, ord, lost)
 *   seen(fp)               the 64-bit fingerprint of every accepted URL (frontier.h)
 *   records(seq, request_id, line)
 *   robots(origin, status, body, fetched_wall_ms)
 * A request's state is READY or WAITING (both "queued"), LEASED, DONE or FAILED. `ord` is its
 * place in the ready order while READY (and the tie-break among equal not-before times while
 * WAITING): a push takes the next ord at once, a retry takes one when its time comes, exactly as
 * the memory frontier stamps them. `lost` counts the leases a run held when it died: a row
 * found LEASED at open goes back to READY with lost + 1; a clean close (lc_store_close) and a
 * release give their leased rows back uncounted. Partial indexes cover only what the hot paths
 * look up: the ready requests of a host by ord, the waiting ones by time, the leased ones.
 *
 * In memory: per host, its oldest ready request (id and ord), and a binary heap of the hosts
 * that have one, by that ord. So pop reads the heap top, asks admit once per host and skips a
 * refused host whole; taking a request costs three indexed statements (read, lease, the host's
 * next head), never a scan of the queue. The counts (ready, waiting, accepted) are kept here too,
 * loaded once at open.
 *
 * Writes go into one transaction opened by the first write after a flush and committed by
 * lc_store_flush. Any failed write rolls it back and marks the store broken: memory and disk
 * would disagree after a partial rollback, so nothing is written again; the caller stops. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hosttab.h"
#include "url.h"

#define SCHEMA_VERSION 2
#define ROBOTS_FRESH_MS (24LL * 3600 * 1000) /* RFC 9309: a cached answer lasts 24 h at most */

enum { ST_READY = 0, ST_WAITING = 1, ST_LEASED = 2, ST_DONE = 3, ST_FAILED = 4 };

static const char *const schema_sql =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value);"
    "CREATE TABLE hosts(id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE,"
    "  next_ok_wall_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE requests(id INTEGER PRIMARY KEY, url TEXT NOT NULL, host_id INTEGER NOT NULL,"
    "  depth INTEGER NOT NULL, data TEXT, attempt INTEGER NOT NULL DEFAULT 0,"
    "  throttles INTEGER NOT NULL DEFAULT 0, crashes INTEGER NOT NULL DEFAULT 0,"
    "  state INTEGER NOT NULL, not_before_wall_ms INTEGER NOT NULL DEFAULT 0,"
    "  ord INTEGER NOT NULL, lost INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX requests_ready ON requests(host_id, ord) WHERE state = 0;"
    "CREATE INDEX requests_waiting ON requests(not_before_wall_ms, ord) WHERE state = 1;"
    "CREATE INDEX requests_leased ON requests(id) WHERE state = 2;"
    "CREATE TABLE seen(fp INTEGER PRIMARY KEY);"
    "CREATE TABLE records(seq INTEGER PRIMARY KEY, request_id INTEGER NOT NULL,"
    "  line BLOB NOT NULL);"
    "CREATE TABLE robots(origin TEXT PRIMARY KEY, status INTEGER NOT NULL, body BLOB,"
    "  fetched_wall_ms INTEGER NOT NULL);";

/* The prepared statements, kept for the life of the store. */
enum {
  Q_BEGIN,
  Q_COMMIT,
  Q_SEEN_ADD,
  Q_SEEN_HAS,
  Q_REQ_ADD,
  Q_REQ_GET,
  Q_REQ_URL,
  Q_REQ_LEASE,
  Q_REQ_END,
  Q_REQ_RETRY,
  Q_REQ_HELD,
  Q_REQ_RELEASE,
  Q_HOST_HEAD,
  Q_DUE,
  Q_MAKE_READY,
  Q_MIN_WAIT,
  Q_REC_ADD,
  Q_REC_EACH,
  Q_META_SET,
  Q_META_GET,
  Q_META_ADD,
  Q_HOST_ADD,
  Q_HOST_SET,
  Q_HOST_GET,
  Q_ROBOTS_PUT,
  Q_ROBOTS_GET,
  Q_COUNT
};

static const char *const query_sql[Q_COUNT] = {
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_SEEN_ADD] = "INSERT OR IGNORE INTO seen(fp) VALUES(?1)",
    [Q_SEEN_HAS] = "SELECT 1 FROM seen WHERE fp = ?1",
    [Q_REQ_ADD] =
        "INSERT INTO requests(id, url, host_id, depth, data, state, ord)"
        " VALUES(?1, ?2, ?3, ?4, ?5, 0, ?6)",
    [Q_REQ_GET] =
        "SELECT url, data, depth, attempt, throttles, crashes, not_before_wall_ms, lost"
        " FROM requests WHERE id = ?1",
    [Q_REQ_URL] = "SELECT url FROM requests WHERE id = ?1",
    [Q_REQ_LEASE] = "UPDATE requests SET state = 2 WHERE id = ?1 AND state = 0",
    [Q_REQ_END] = "UPDATE requests SET state = ?2 WHERE id = ?1 AND state = 2",
    [Q_REQ_RETRY] =
        "UPDATE requests SET state = 1, attempt = ?2, throttles = ?3, crashes = ?4,"
        " not_before_wall_ms = ?5, ord = ?6 WHERE id = ?1 AND state = 2",
    [Q_REQ_HELD] = "SELECT host_id, ord FROM requests WHERE id = ?1 AND state = 2",
    [Q_REQ_RELEASE] = "UPDATE requests SET state = 0 WHERE id = ?1 AND state = 2",
    [Q_HOST_HEAD] =
        "SELECT id, ord FROM requests WHERE host_id = ?1 AND state = 0"
        " ORDER BY ord LIMIT 1",
    [Q_DUE] =
        "SELECT id, host_id FROM requests WHERE state = 1 AND not_before_wall_ms <= ?1"
        " ORDER BY not_before_wall_ms, ord",
    [Q_MAKE_READY] = "UPDATE requests SET state = 0, ord = ?2 WHERE id = ?1",
    [Q_MIN_WAIT] = "SELECT min(not_before_wall_ms) FROM requests WHERE state = 1",
    [Q_REC_ADD] = "INSERT INTO records(request_id, line) VALUES(?1, ?2)",
    [Q_REC_EACH] = "SELECT seq, line FROM records WHERE seq > ?1 AND seq <= ?2 ORDER BY seq",
    [Q_META_SET] =
        "INSERT INTO meta(key, value) VALUES(?1, ?2)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    [Q_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [Q_META_ADD] =
        "INSERT INTO meta(key, value) VALUES(?1, ?2)"
        " ON CONFLICT(key) DO UPDATE SET value = value + excluded.value",
    [Q_HOST_ADD] = "INSERT INTO hosts(key) VALUES(?1)",
    [Q_HOST_SET] = "UPDATE hosts SET next_ok_wall_ms = ?2 WHERE id = ?1",
    [Q_HOST_GET] = "SELECT next_ok_wall_ms FROM hosts WHERE key = ?1",
    [Q_ROBOTS_PUT] =
        "INSERT INTO robots(origin, status, body, fetched_wall_ms)"
        " VALUES(?1, ?2, ?3, ?4) ON CONFLICT(origin) DO UPDATE SET"
        " status = excluded.status, body = excluded.body,"
        " fetched_wall_ms = excluded.fetched_wall_ms",
    [Q_ROBOTS_GET] = "SELECT status, body, fetched_wall_ms FROM robots WHERE origin = ?1",
};

typedef struct shost {
  int64_t id;
  char *key;
  uint64_t head_id; /* its oldest ready request, 0 if it has none */
  int64_t head_ord;
  size_t heap_at;
} shost;

#define NOT_IN_HEAP ((size_t)-1)

typedef struct store_frontier {
  lc_frontier base;
  lc_store *s;
  size_t max_pages;
} store_frontier;

struct lc_store {
  sqlite3 *db;
  sqlite3_stmt *q[Q_COUNT];
  int lock_fd;
  int read_only, resumed, broken, in_tx, iterating;
  int64_t schema_version; /* of the file: 1 only for a read-only open of an old file */
  size_t unflushed;
  char *path;
  char err[512];

  int64_t (*clock_ms)(void *ud, int wall);
  void *clock_ud;
  int64_t offset_ms; /* wall - monotonic, measured at open */

  store_frontier front;
  uint64_t next_id;
  int64_t next_ord;
  size_t accepted, ready, waiting;
  int64_t min_wait; /* earliest not_before_wall_ms of a waiting request, or INT64_MAX */

  lc_hosttab *host_keys;
  shost **host_ids; /* by id; NULL holes are possible */
  size_t host_ids_cap, hosts_n;
  shost **heap, **aside; /* hosts with a ready request, by head_ord; both of hosts_n capacity */
  size_t heap_n, heap_cap;

  int64_t last_seq, committed_seq; /* the last record seq, in the open transaction / flushed */
};

/* ---- errors, clocks, statements ------------------------------------------------------------- */

static void set_err(lc_store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(lc_store *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->err, sizeof s->err, fmt, ap);
  va_end(ap);
}

/* A failed SQLite call: say so, roll the open transaction back, refuse every later write. */
static int fail(lc_store *s, int rc, const char *what) {
  int code = rc & 0xff;
  if (code == SQLITE_FULL)
    set_err(s, "state file %s is full (disk full or its size limit reached) while %s", s->path,
            what);
  else
    set_err(s, "state file %s: %s failed: %s", s->path, what,
            s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
  if (s->db && !sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
  s->in_tx = 0;
  if (!s->read_only) s->broken = 1;
  return LC_STORE_EIO;
}

static int64_t system_clock_ms(void *ud, int wall) {
  (void)ud;
  struct timespec ts;
  clock_gettime(wall ? CLOCK_REALTIME : CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_now(const lc_store *s) { return s->clock_ms(s->clock_ud, 1); }
/* The caller's monotonic ms as wall-clock ms, and back (0 stays 0: "no time set"). */
static int64_t to_wall(const lc_store *s, int64_t mono_ms) { return mono_ms + s->offset_ms; }
static int64_t to_mono(const lc_store *s, int64_t wall_ms) {
  return wall_ms ? wall_ms - s->offset_ms : 0;
}

/* Step a statement that returns no row, and reset it. */
static int run(lc_store *s, sqlite3_stmt *st, const char *what) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : fail(s, rc, what);
}

/* Step a query: 1 with a row (the caller resets), 0 without (reset here), or an error. */
static int row(lc_store *s, sqlite3_stmt *st, const char *what) {
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) return 1;
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : fail(s, rc, what);
}

/* Make sure a write transaction is open; counts one operation. */
static int tx(lc_store *s) {
  if (s->broken) return LC_STORE_EIO;
  if (s->read_only) {
    set_err(s, "state file %s is open read-only", s->path);
    return LC_STORE_EINVAL;
  }
  if (!s->in_tx) {
    int rc = run(s, s->q[Q_BEGIN], "beginning a transaction");
    if (rc < 0) return rc;
    s->in_tx = 1;
  }
  s->unflushed++;
  return 0;
}

static int meta_set_int(lc_store *s, const char *key, int64_t v) {
  sqlite3_stmt *st = s->q[Q_META_SET];
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, v);
  return run(s, st, "writing meta");
}

/* 1 and *v when the key is stored, 0 when not, or an error. */
static int meta_get_int(lc_store *s, const char *key, int64_t *v) {
  sqlite3_stmt *st = s->q[Q_META_GET];
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  int rc = row(s, st, "reading meta");
  if (rc == 1) {
    *v = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
  }
  return rc;
}

/* One integer from a query without parameters (0 when NULL or no row). */
static int query_int(lc_store *s, const char *sql, int64_t *v) {
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK) return fail(s, rc, "preparing a query");
  rc = sqlite3_step(st);
  *v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  sqlite3_finalize(st);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fail(s, rc, "reading counts");
}

/* ---- hosts: the map, and the heap by oldest ready request ----------------------------------- */

static int host_before(const shost *a, const shost *b) { return a->head_ord < b->head_ord; }

static void heap_set(lc_store *s, size_t i, shost *h) {
  s->heap[i] = h;
  h->heap_at = i;
}

static void heap_up(lc_store *s, size_t i) {
  shost *h = s->heap[i];
  while (i > 0 && host_before(h, s->heap[(i - 1) / 2])) {
    heap_set(s, i, s->heap[(i - 1) / 2]);
    i = (i - 1) / 2;
  }
  heap_set(s, i, h);
}

static void heap_down(lc_store *s, size_t i) {
  shost *h = s->heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= s->heap_n) break;
    if (c + 1 < s->heap_n && host_before(s->heap[c + 1], s->heap[c])) c++;
    if (!host_before(s->heap[c], h)) break;
    heap_set(s, i, s->heap[c]);
    i = c;
  }
  heap_set(s, i, h);
}

static void heap_push(lc_store *s, shost *h) { /* capacity is reserved by host_add */
  s->heap[s->heap_n] = h;
  heap_up(s, s->heap_n++);
}

static void heap_pop_top(lc_store *s) {
  s->heap[0]->heap_at = NOT_IN_HEAP;
  if (--s->heap_n > 0) {
    heap_set(s, 0, s->heap[s->heap_n]);
    heap_down(s, 0);
  }
}

/* Put a host known to the file (id, key) into the map. */
static shost *host_add(lc_store *s, int64_t id, const char *key) {
  if (id <= 0) return NULL;
  if ((size_t)id >= s->host_ids_cap) {
    size_t cap = s->host_ids_cap ? s->host_ids_cap : 64;
    while (cap <= (size_t)id) cap *= 2;
    shost **ids = realloc(s->host_ids, cap * sizeof *ids);
    if (!ids) return NULL;
    memset(ids + s->host_ids_cap, 0, (cap - s->host_ids_cap) * sizeof *ids);
    s->host_ids = ids;
    s->host_ids_cap = cap;
  }
  if (s->hosts_n + 1 > s->heap_cap) { /* every host fits in the heap and in aside at once */
    size_t cap = s->heap_cap ? s->heap_cap * 2 : 64;
    shost **heap = realloc(s->heap, cap * sizeof *heap);
    if (!heap) return NULL;
    s->heap = heap;
    shost **aside = realloc(s->aside, cap * sizeof *aside);
    if (!aside) return NULL;
    s->aside = aside;
    s->heap_cap = cap;
  }
  shost *h = calloc(1, sizeof *h);
  if (!h || !(h->key = strdup(key)) || lc_hosttab_put(s->host_keys, h->key, h) != 0) {
    if (h) free(h->key);
    free(h);
    return NULL;
  }
  h->id = id;
  h->heap_at = NOT_IN_HEAP;
  s->host_ids[id] = h;
  s->hosts_n++;
  return h;
}

/* The host of this key, inserted into the file (in the open transaction) if new. NULL with
 * *rc set on failure. */
static shost *host_obtain(lc_store *s, const char *key, int *rc) {
  shost *h = lc_hosttab_find(s->host_keys, key);
  if (h) return h;
  sqlite3_stmt *st = s->q[Q_HOST_ADD];
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  if ((*rc = run(s, st, "adding a host")) < 0) return NULL;
  h = host_add(s, sqlite3_last_insert_rowid(s->db), key);
  if (!h) { /* the row is in the transaction and memory lacks it: nothing may follow */
    *rc = LC_STORE_EIO;
    set_err(s, "out of memory adding a host");
    if (!sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    s->in_tx = 0;
    s->broken = 1;
  }
  return h;
}

/* Read the host's oldest ready request from the file into h (head_id 0 when none). */
static int host_load_head(lc_store *s, shost *h) {
  sqlite3_stmt *st = s->q[Q_HOST_HEAD];
  sqlite3_bind_int64(st, 1, h->id);
  int rc = row(s, st, "reading a host's queue");
  if (rc < 0) return rc;
  h->head_id = 0;
  if (rc == 1) {
    h->head_id = (uint64_t)sqlite3_column_int64(st, 0);
    h->head_ord = sqlite3_column_int64(st, 1);
    sqlite3_reset(st);
  }
  return 0;
}

/* A request of h became ready with this ord: it is the head if h had none. */
static void host_ready(lc_store *s, shost *h, uint64_t id, int64_t ord) {
  if (h->head_id) return; /* its head is older */
  h->head_id = id;
  h->head_ord = ord;
  heap_push(s, h);
}

/* ---- the frontier --------------------------------------------------------------------------- */

static int frontier_code(int rc) {
  return rc == LC_STORE_EINVAL ? LC_FRONTIER_EINVAL : LC_FRONTIER_EIO;
}

/* Make ready every waiting request whose time has come, earliest first (ties by ord). */
static int release_due(lc_store *s, int64_t now_wall) {
  if (!s->waiting || s->min_wait > now_wall) return 0;
  int rc = tx(s);
  if (rc < 0) return rc;
  size_t n = 0, cap = 0;
  int64_t(*due)[2] = NULL;
  sqlite3_stmt *st = s->q[Q_DUE];
  sqlite3_bind_int64(st, 1, now_wall);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      void *grown = realloc(due, cap * sizeof *due);
      if (!grown) { /* nothing written yet */
        sqlite3_reset(st);
        free(due);
        set_err(s, "out of memory reading due retries");
        return LC_STORE_EIO;
      }
      due = grown;
    }
    due[n][0] = sqlite3_column_int64(st, 0);
    due[n][1] = sqlite3_column_int64(st, 1);
    n++;
  }
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) {
    free(due);
    return fail(s, rc, "reading due retries");
  }
  for (size_t i = 0; i < n && rc >= 0; i++) {
    int64_t ord = s->next_ord++;
    st = s->q[Q_MAKE_READY];
    sqlite3_bind_int64(st, 1, due[i][0]);
    sqlite3_bind_int64(st, 2, ord);
    rc = run(s, st, "requeueing a retry");
    shost *h = (size_t)due[i][1] < s->host_ids_cap ? s->host_ids[due[i][1]] : NULL;
    if (rc >= 0 && h) host_ready(s, h, (uint64_t)due[i][0], ord);
    s->waiting--;
    s->ready++;
  }
  free(due);
  if (rc < 0) return rc;
  s->min_wait = INT64_MAX;
  if (s->waiting) {
    st = s->q[Q_MIN_WAIT];
    if ((rc = row(s, st, "reading the next retry time")) < 0) return rc;
    if (rc == 1) {
      s->min_wait = sqlite3_column_int64(st, 0);
      sqlite3_reset(st);
    }
  }
  return 0;
}

static int store_push(lc_frontier *f, const char *url, int depth, const char *data_json,
                      int64_t now_ms) {
  store_frontier *sf = (store_frontier *)f;
  if (!sf || !url || depth < 0) return LC_FRONTIER_EINVAL;
  lc_store *s = sf->s;
  if (s->broken) return LC_FRONTIER_EIO;
  char *norm = NULL;
  size_t host_at, host_len;
  int rc = lc_url_normalize_host(NULL, url, &norm, &host_at, &host_len, NULL);
  if (rc < 0) return rc == LC_URL_ENOMEM ? LC_FRONTIER_ENOMEM : LC_FRONTIER_EURL;
  size_t len = strlen(norm);
  int64_t fp = (int64_t)lc_frontier_fingerprint(norm, len);
  sqlite3_stmt *st;
  if (sf->max_pages && s->accepted >= sf->max_pages) { /* seen is checked before fullness */
    st = s->q[Q_SEEN_HAS];
    sqlite3_bind_int64(st, 1, fp);
    rc = row(s, st, "reading the seen set");
    sqlite3_reset(st);
    free(norm);
    return rc < 0 ? frontier_code(rc) : rc == 1 ? 0 : LC_FRONTIER_EFULL;
  }
  char key[LC_URL_MAX + 1]; /* the host key, "host[:port]" */
  memcpy(key, norm + host_at, host_len);
  key[host_len] = '\0';
  shost *h = NULL;
  if ((rc = tx(s)) < 0 || !(h = host_obtain(s, key, &rc)) ||
      (rc = release_due(s, to_wall(s, now_ms))) < 0) {
    free(norm);
    return frontier_code(rc);
  }
  st = s->q[Q_SEEN_ADD];
  sqlite3_bind_int64(st, 1, fp);
  if ((rc = run(s, st, "adding to the seen set")) < 0 || sqlite3_changes(s->db) == 0) {
    free(norm);
    return rc < 0 ? frontier_code(rc) : 0;
  }
  uint64_t id = s->next_id;
  int64_t ord = s->next_ord;
  st = s->q[Q_REQ_ADD];
  sqlite3_bind_int64(st, 1, (int64_t)id);
  sqlite3_bind_text(st, 2, norm, (int)len, free);
  sqlite3_bind_int64(st, 3, h->id);
  sqlite3_bind_int(st, 4, depth);
  if (data_json)
    sqlite3_bind_text(st, 5, data_json, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, 5);
  sqlite3_bind_int64(st, 6, ord);
  rc = run(s, st, "adding a request");
  sqlite3_bind_null(st, 2); /* drop the URL now, not at the next push */
  if (rc < 0) return frontier_code(rc);
  s->next_id++;
  s->next_ord++;
  s->accepted++;
  s->ready++;
  host_ready(s, h, id, ord);
  return 1;
}

static int store_retry(lc_frontier *f, lc_request *r, int64_t not_before_ms) {
  if (!r) return LC_FRONTIER_EINVAL;
  store_frontier *sf = (store_frontier *)f;
  int rc = 0;
  if (!sf || !r->url) {
    rc = LC_FRONTIER_EINVAL;
  } else if ((rc = tx(sf->s)) < 0) {
    rc = frontier_code(rc);
  } else {
    lc_store *s = sf->s;
    int64_t wall = to_wall(s, not_before_ms);
    sqlite3_stmt *st = s->q[Q_REQ_RETRY];
    sqlite3_bind_int64(st, 1, (int64_t)r->id);
    sqlite3_bind_int(st, 2, r->attempt < INT_MAX ? r->attempt + 1 : INT_MAX);
    sqlite3_bind_int(st, 3, r->throttles);
    sqlite3_bind_int(st, 4, r->crashes);
    sqlite3_bind_int64(st, 5, wall);
    sqlite3_bind_int64(st, 6, s->next_ord);
    if ((rc = run(s, st, "requeueing a request")) < 0) {
      rc = frontier_code(rc);
    } else if (sqlite3_changes(s->db) == 0) {
      rc = LC_FRONTIER_ENOENT;
    } else {
      s->next_ord++;
      s->waiting++;
      if (wall < s->min_wait) s->min_wait = wall;
    }
  }
  lc_request_clear(r); /* the strings are ours in every case */
  return rc;
}

/* Hand out h's head (h is the heap top). */
static int take(lc_store *s, shost *h, lc_request *out) {
  int rc = tx(s);
  if (rc < 0) return frontier_code(rc);
  sqlite3_stmt *st = s->q[Q_REQ_GET];
  sqlite3_bind_int64(st, 1, (int64_t)h->head_id);
  if ((rc = row(s, st, "reading a request")) <= 0) {
    if (rc == 0) rc = fail(s, SQLITE_CORRUPT, "reading a queued request (it is missing)");
    return frontier_code(rc);
  }
  const char *url = (const char *)sqlite3_column_text(st, 0);
  const char *data = (const char *)sqlite3_column_text(st, 1);
  out->id = h->head_id;
  out->url = url ? strdup(url) : NULL;
  out->data_json = data ? strdup(data) : NULL;
  out->depth = sqlite3_column_int(st, 2);
  out->attempt = sqlite3_column_int(st, 3);
  out->throttles = sqlite3_column_int(st, 4);
  out->crashes = sqlite3_column_int(st, 5);
  out->not_before_ms = to_mono(s, sqlite3_column_int64(st, 6));
  out->lost = sqlite3_column_int(st, 7);
  int nomem = !out->url || (data && !out->data_json);
  sqlite3_reset(st);
  if (nomem) {
    lc_request_clear(out);
    return LC_FRONTIER_ENOMEM;
  }
  st = s->q[Q_REQ_LEASE];
  sqlite3_bind_int64(st, 1, (int64_t)h->head_id);
  if ((rc = run(s, st, "leasing a request")) == 0 && sqlite3_changes(s->db) != 1)
    rc = fail(s, SQLITE_CORRUPT, "leasing a request (it was not queued)");
  if (rc < 0 || (rc = host_load_head(s, h)) < 0) {
    lc_request_clear(out);
    return frontier_code(rc);
  }
  if (h->head_id)
    heap_down(s, 0); /* its new head is younger */
  else
    heap_pop_top(s);
  s->ready--;
  return 1;
}

static int store_pop(lc_frontier *f, int64_t now_ms, lc_frontier_admit_fn admit, void *ud,
                     lc_request *out, int64_t *next_ms) {
  store_frontier *sf = (store_frontier *)f;
  if (next_ms) *next_ms = -1;
  if (!sf || !out) return LC_FRONTIER_EINVAL;
  memset(out, 0, sizeof *out);
  lc_store *s = sf->s;
  if (s->broken) return LC_FRONTIER_EIO;
  int rc = release_due(s, to_wall(s, now_ms));
  if (rc < 0) return frontier_code(rc);
  size_t refused = 0;
  while (s->heap_n > 0) {
    shost *h = s->heap[0];
    if (admit) {
      sqlite3_stmt *st = s->q[Q_REQ_URL];
      sqlite3_bind_int64(st, 1, (int64_t)h->head_id);
      int found = row(s, st, "reading a request's URL");
      if (found <= 0) {
        if (found == 0) found = fail(s, SQLITE_CORRUPT, "reading a queued request (it is missing)");
        rc = frontier_code(found);
        break;
      }
      int ok = admit(ud, (const char *)sqlite3_column_text(st, 0));
      sqlite3_reset(st);
      if (!ok) {
        heap_pop_top(s);
        s->aside[refused++] = h;
        continue;
      }
    }
    rc = take(s, h, out);
    break;
  }
  for (size_t i = 0; i < refused; i++) heap_push(s, s->aside[i]);
  if (next_ms && s->waiting > 0) *next_ms = to_mono(s, s->min_wait);
  return rc;
}

/* End a leased request with this state; ENOENT when it is not leased. */
static int end_request(lc_store *s, uint64_t id, int state) {
  int rc = tx(s);
  if (rc < 0) return rc;
  sqlite3_stmt *st = s->q[Q_REQ_END];
  sqlite3_bind_int64(st, 1, (int64_t)id);
  sqlite3_bind_int(st, 2, state);
  if ((rc = run(s, st, "ending a request")) < 0) return rc;
  return sqlite3_changes(s->db) ? 0 : LC_FRONTIER_ENOENT;
}

static int store_done(lc_frontier *f, uint64_t id, int ok) {
  store_frontier *sf = (store_frontier *)f;
  if (!sf) return LC_FRONTIER_EINVAL;
  int rc = end_request(sf->s, id, ok ? ST_DONE : ST_FAILED);
  return rc == LC_FRONTIER_ENOENT || rc >= 0 ? rc : frontier_code(rc);
}

/* Back to READY with its ord (older than anything queued after it was, so the first of its
 * host again), counts unchanged. */
static int store_release(lc_frontier *f, lc_request *r) {
  if (!r) return LC_FRONTIER_EINVAL;
  store_frontier *sf = (store_frontier *)f;
  int rc = 0;
  if (!sf || !r->url) {
    rc = LC_FRONTIER_EINVAL;
  } else if ((rc = tx(sf->s)) < 0) {
    rc = frontier_code(rc);
  } else {
    lc_store *s = sf->s;
    sqlite3_stmt *st = s->q[Q_REQ_HELD];
    sqlite3_bind_int64(st, 1, (int64_t)r->id);
    int found = row(s, st, "reading a leased request");
    int64_t host_id = 0, ord = 0;
    if (found == 1) {
      host_id = sqlite3_column_int64(st, 0);
      ord = sqlite3_column_int64(st, 1);
      sqlite3_reset(st);
      st = s->q[Q_REQ_RELEASE];
      sqlite3_bind_int64(st, 1, (int64_t)r->id);
      found = run(s, st, "giving a request back");
    } else if (found == 0) {
      rc = LC_FRONTIER_ENOENT;
    }
    if (found < 0) {
      rc = frontier_code(found);
    } else if (rc == 0) {
      shost *h = host_id > 0 && (size_t)host_id < s->host_ids_cap ? s->host_ids[host_id] : NULL;
      s->ready++;
      if (h && !h->head_id) {
        host_ready(s, h, r->id, ord);
      } else if (h && ord < h->head_ord) { /* the new head is older: up the heap */
        h->head_id = r->id;
        h->head_ord = ord;
        if (h->heap_at != NOT_IN_HEAP) heap_up(s, h->heap_at);
      }
    }
  }
  lc_request_clear(r); /* the strings are ours in every case */
  return rc;
}

static size_t store_pending(const lc_frontier *f) {
  const store_frontier *sf = (const store_frontier *)f;
  return sf ? sf->s->ready + sf->s->waiting : 0;
}

static size_t store_accepted(const lc_frontier *f) {
  const store_frontier *sf = (const store_frontier *)f;
  return sf ? sf->s->accepted : 0;
}

static void store_destroy(lc_frontier *f) { (void)f; /* the store owns it */ }

static const lc_frontier_ops store_ops = {
    .push = store_push,
    .retry = store_retry,
    .pop = store_pop,
    .done = store_done,
    .release = store_release,
    .pending = store_pending,
    .accepted = store_accepted,
    .destroy = store_destroy,
};

lc_frontier *lc_store_frontier(lc_store *s, size_t max_pages) {
  if (!s || s->read_only) return NULL;
  s->front.base.ops = &store_ops;
  s->front.s = s;
  s->front.max_pages = max_pages;
  return &s->front.base;
}

/* ---- open and close ------------------------------------------------------------------------- */

static void free_host(void *value, void *ud) {
  (void)ud;
  shost *h = value;
  free(h->key);
  free(h);
}

static void store_free(lc_store *s) {
  for (int i = 0; i < Q_COUNT; i++) sqlite3_finalize(s->q[i]);
  if (s->db) sqlite3_close(s->db);
  if (s->lock_fd >= 0) close(s->lock_fd); /* after SQLite let go of the file: see lock_file */
  if (s->host_keys) {
    lc_hosttab_each(s->host_keys, free_host, NULL);
    lc_hosttab_free(s->host_keys);
  }
  free(s->host_ids);
  free(s->heap);
  free(s->aside);
  free(s->path);
  free(s);
}

/* Take the file's lock: flock(2) on a descriptor of our own, independent of SQLite's fcntl
 * locks. It is closed only after sqlite3_close, because closing any descriptor of a file drops
 * the process's fcntl locks on it. Close-on-exec, so a browser we exec does not inherit it. */
static int lock_file(lc_store *s) {
  s->lock_fd = open(s->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (s->lock_fd < 0) {
    set_err(s, "cannot open state file %s for writing: %s", s->path, strerror(errno));
    return LC_STORE_EIO;
  }
  struct stat st;
  if (fstat(s->lock_fd, &st) == 0 && !S_ISREG(st.st_mode)) {
    set_err(s, "state file %s is not a regular file", s->path);
    return LC_STORE_EINVAL;
  }
  if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      set_err(s,
              "state file %s is in use by another luacrawl; wait for it to end or choose "
              "another --state file",
              s->path);
      return LC_STORE_ELOCKED;
    }
    set_err(s, "cannot lock state file %s: %s", s->path, strerror(errno));
    return LC_STORE_EIO;
  }
  return 0;
}

/* The first bytes of a non-empty file must be SQLite's header. */
static int check_header(lc_store *s) {
  int fd = open(s->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    set_err(s, "cannot read state file %s: %s", s->path, strerror(errno));
    return errno == ENOENT ? LC_STORE_ENOENT : LC_STORE_EIO;
  }
  char head[16];
  ssize_t n = read(fd, head, sizeof head);
  close(fd);
  if (n == 0) return 0; /* empty: a new database */
  if (n != (ssize_t)sizeof head || memcmp(head, "SQLite format 3", 16) != 0) {
    set_err(s, "%s is not a SQLite database (so not a luacrawl state file)", s->path);
    return LC_STORE_ENOTDB;
  }
  return 0;
}

/* An error while opening: a corrupt file is ENOTDB, a directory we cannot write in says so. */
static int open_fail(lc_store *s, int rc, const char *what) {
  int code = rc & 0xff;
  if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT) {
    set_err(s, "state file %s is corrupt or not a database (%s: %s)", s->path, what,
            sqlite3_errmsg(s->db));
    return LC_STORE_ENOTDB;
  }
  if (code == SQLITE_CANTOPEN || code == SQLITE_READONLY || code == SQLITE_PERM) {
    set_err(s,
            "cannot write state file %s or its -wal and -shm files beside it (%s: %s); the "
            "file and its directory must be writable",
            s->path, what, sqlite3_errmsg(s->db));
    return LC_STORE_EIO;
  }
  return fail(s, rc, what);
}

static int exec(lc_store *s, const char *sql, const char *what) {
  int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? 0 : open_fail(s, rc, what);
}

/* The first row's first column of a PRAGMA, copied into buf. */
static int pragma_text(lc_store *s, const char *sql, char *buf, size_t n, const char *what) {
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK) return open_fail(s, rc, what);
  rc = sqlite3_step(st);
  buf[0] = '\0';
  if (rc == SQLITE_ROW) {
    const char *t = (const char *)sqlite3_column_text(st, 0);
    snprintf(buf, n, "%s", t ? t : "");
  }
  sqlite3_finalize(st);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : open_fail(s, rc, what);
}

/* Create the schema in a new file, or check that an old one is a luacrawl state file of this
 * job (taking it over with reuse). */
static int check_schema(lc_store *s, const lc_store_opts *o) {
  int64_t tables = 0;
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(s->db, "SELECT count(*) FROM sqlite_schema", -1, &st, NULL);
  if (rc != SQLITE_OK) return open_fail(s, rc, "reading the schema");
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) tables = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  if (rc != SQLITE_ROW) return open_fail(s, rc, "reading the schema");
  if (tables == 0) {
    if (s->read_only) {
      /* Made by a run killed before its first commit: no crawl is recorded yet. */
      set_err(s, "%s holds no crawl yet (its run stopped before the first commit)", s->path);
      return LC_STORE_EEMPTY;
    }
    char sql[160];
    snprintf(sql, sizeof sql,
             "INSERT INTO meta(key, value) VALUES('schema_version', %d), ('started', %" PRId64 ")",
             SCHEMA_VERSION, wall_now(s));
    if ((rc = exec(s, "BEGIN IMMEDIATE", "creating the schema")) < 0 ||
        (rc = exec(s, schema_sql, "creating the schema")) < 0 ||
        (rc = exec(s, sql, "creating the schema")) < 0)
      return rc;
    rc = sqlite3_prepare_v2(s->db, "INSERT INTO meta(key, value) VALUES('job_hash', ?1)", -1, &st,
                            NULL);
    if (rc != SQLITE_OK) return open_fail(s, rc, "creating the schema");
    sqlite3_bind_text(st, 1, o->job_hash, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return open_fail(s, rc, "creating the schema");
    s->schema_version = SCHEMA_VERSION;
    return exec(s, "COMMIT", "creating the schema");
  }
  rc = sqlite3_prepare_v2(s->db,
                          "SELECT key, value FROM meta WHERE key IN "
                          "('schema_version', 'job_hash')",
                          -1, &st, NULL);
  if (rc != SQLITE_OK) {
    set_err(s, "%s is a SQLite database but not a luacrawl state file (no meta table)", s->path);
    return LC_STORE_ENOTDB;
  }
  int64_t version = -1;
  char hash[72] = "";
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *k = (const char *)sqlite3_column_text(st, 0);
    if (k && strcmp(k, "schema_version") == 0) version = sqlite3_column_int64(st, 1);
    const char *v = (const char *)sqlite3_column_text(st, 1);
    if (k && strcmp(k, "job_hash") == 0) snprintf(hash, sizeof hash, "%s", v ? v : "");
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return open_fail(s, rc, "reading meta");
  if (version < 0) {
    set_err(s, "%s is a SQLite database but not a luacrawl state file (no schema version)",
            s->path);
    return LC_STORE_ENOTDB;
  }
  if (version != SCHEMA_VERSION && version != 1) {
    set_err(s, "state file %s has schema version %" PRId64 "; this luacrawl reads versions 1-%d",
            s->path, version, SCHEMA_VERSION);
    return LC_STORE_ENOTDB;
  }
  s->schema_version = version;
  s->resumed = 1;
  /* Another job's file is refused before anything in it changes (a mistyped script must not
   * upgrade a file an older luacrawl still runs), or taken over with --state-reuse. */
  if (!s->read_only && o->job_hash && strcmp(hash, o->job_hash) != 0) {
    if (!o->reuse) {
      set_err(s,
              "state file %s belongs to another job (job hash %.16s, this one is %.16s): use "
              "--state-reuse to take it over, or another --state file",
              s->path, hash, o->job_hash);
      return LC_STORE_EOTHERJOB;
    }
    rc = sqlite3_prepare_v2(s->db, "UPDATE meta SET value = ?1 WHERE key = 'job_hash'", -1, &st,
                            NULL);
    if (rc != SQLITE_OK) return open_fail(s, rc, "taking the file over");
    sqlite3_bind_text(st, 1, o->job_hash, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return open_fail(s, rc, "taking the file over");
  }
  /* Version 1 had no lost-lease count: a writer adds it (every request at 0); a read-only open
   * leaves the file as it is and prepares no statement that reads it (prepare_all). */
  if (version == 1 && !s->read_only) {
    char sql[200];
    snprintf(sql, sizeof sql,
             "BEGIN IMMEDIATE; ALTER TABLE requests ADD COLUMN lost INTEGER NOT NULL DEFAULT 0;"
             " UPDATE meta SET value = %d WHERE key = 'schema_version'; COMMIT",
             SCHEMA_VERSION);
    if ((rc = exec(s, sql, "upgrading the schema to version 2")) < 0) {
      if (!sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
      return rc;
    }
    s->schema_version = SCHEMA_VERSION;
  }
  return 0;
}

/* Rebuild what lives in memory from the file: leased requests back to the queue, the hosts and
 * their heads, the counts, the next id and ord, the records flushed. A request still leased
 * here was held by a run that died (a clean close gives its leases back): its lease is lost,
 * and counted, so a page that kills the engine every time is given up (lc_request.lost). */
static int load_state(lc_store *s) {
  int rc;
  int64_t v;
  if ((rc = tx(s)) < 0 ||
      (rc = exec(s, "UPDATE requests SET state = 0, lost = lost + 1 WHERE state = 2",
                 "requeueing leased")) < 0)
    return rc;
  sqlite3_stmt *st;
  rc = sqlite3_prepare_v2(s->db, "SELECT id, key FROM hosts", -1, &st, NULL);
  if (rc != SQLITE_OK) return fail(s, rc, "reading hosts");
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (!host_add(s, sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1))) {
      sqlite3_finalize(st);
      set_err(s, "out of memory reading hosts");
      return LC_STORE_EIO;
    }
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return fail(s, rc, "reading hosts");
  for (size_t i = 0; i < s->host_ids_cap; i++) {
    shost *h = s->host_ids[i];
    if (!h) continue;
    if ((rc = host_load_head(s, h)) < 0) return rc;
    if (h->head_id) heap_push(s, h);
  }
  if ((rc = query_int(s, "SELECT max(id) FROM requests", &v)) < 0) return rc;
  s->accepted = (size_t)v;
  s->next_id = (uint64_t)v + 1;
  if ((rc = query_int(s, "SELECT count(*) FROM requests WHERE state = 0", &v)) < 0) return rc;
  s->ready = (size_t)v;
  if ((rc = query_int(s, "SELECT count(*) FROM requests WHERE state = 1", &v)) < 0) return rc;
  s->waiting = (size_t)v;
  s->min_wait = INT64_MAX;
  if (s->waiting) {
    if ((rc = query_int(s, query_sql[Q_MIN_WAIT], &v)) < 0) return rc;
    s->min_wait = v;
  }
  if ((rc = query_int(s, "SELECT max(seq) FROM records", &v)) < 0) return rc;
  s->last_seq = s->committed_seq = v;
  s->next_ord = 1;
  if ((rc = meta_get_int(s, "next_ord", &v)) < 0) return rc;
  if (rc == 1) s->next_ord = v;
  return 0;
}

static int prepare_all(lc_store *s) {
  for (int i = 0; i < Q_COUNT; i++) {
    /* A read-only open of a version 1 file: no `lost` column, and no frontier to read it. */
    if (i == Q_REQ_GET && s->schema_version < 2) continue;
    int rc = sqlite3_prepare_v3(s->db, query_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->q[i], NULL);
    if (rc != SQLITE_OK) return open_fail(s, rc, "preparing statements");
  }
  return 0;
}

lc_store *lc_store_open(const lc_store_opts *o, char *err, size_t errlen, int *code) {
  int rc = 0;
  lc_store *s = NULL;
  if (err && errlen) err[0] = '\0';
  if (!o || !o->path || !o->path[0] || (!o->read_only && !o->job_hash)) {
    if (err && errlen) snprintf(err, errlen, "lc_store_open: no path, or no job hash to write");
    if (code) *code = LC_STORE_EINVAL;
    return NULL;
  }
  s = calloc(1, sizeof *s);
  if (!s || !(s->path = strdup(o->path)) || !(s->host_keys = lc_hosttab_new())) {
    if (s) free(s->path);
    free(s);
    if (err && errlen) snprintf(err, errlen, "out of memory opening the state file");
    if (code) *code = LC_STORE_EIO;
    return NULL;
  }
  s->lock_fd = -1;
  s->read_only = o->read_only != 0;
  s->clock_ms = o->clock_ms ? o->clock_ms : system_clock_ms;
  s->clock_ud = o->clock_ud;
  s->offset_ms = s->clock_ms(s->clock_ud, 1) - s->clock_ms(s->clock_ud, 0);
  s->min_wait = INT64_MAX;

  if (s->read_only && access(s->path, F_OK) != 0) {
    set_err(s, "no state file %s", s->path);
    rc = LC_STORE_ENOENT;
    goto out;
  }
  if (!s->read_only && (rc = lock_file(s)) < 0) goto out;
  if ((rc = check_header(s)) < 0) goto out;
  int flags = s->read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
  int src = sqlite3_open_v2(s->path, &s->db, flags, NULL);
  if (src != SQLITE_OK) {
    rc = open_fail(s, src, "opening");
    goto out;
  }
  sqlite3_extended_result_codes(s->db, 1);
  sqlite3_busy_timeout(s->db, 2000); /* a reader's checkpoint or recovery, never a writer */
  char buf[256];
  if (!s->read_only) {
    if ((rc = pragma_text(s, "PRAGMA journal_mode=WAL", buf, sizeof buf, "entering WAL mode")) < 0)
      goto out;
    if (strcmp(buf, "wal") != 0) {
      set_err(s, "state file %s: cannot use WAL mode (journal mode stays '%s')", s->path, buf);
      rc = LC_STORE_EIO;
      goto out;
    }
  }
  if ((rc = pragma_text(s, "PRAGMA quick_check", buf, sizeof buf, "checking the file")) < 0)
    goto out;
  if (strcmp(buf, "ok") != 0) {
    set_err(s, "state file %s is corrupt (quick_check: %s)", s->path, buf);
    rc = LC_STORE_ENOTDB;
    goto out;
  }
  if ((rc = check_schema(s, o)) < 0) goto out;
  /* A 32 MiB page cache and a checkpoint every 8,192 pages (32 MiB of WAL, truncated back to
   * 64 MiB at most): the seen set's keys are random, so every flush dirties pages all over its
   * B-tree, and checkpointing each flush's pages again at the default 1,000 cost a quarter of
   * the push rate (bench/RESULTS.md, issue 11). */
  if ((rc = exec(s,
                 "PRAGMA synchronous=NORMAL; PRAGMA cache_size=-32768; "
                 "PRAGMA temp_store=MEMORY; PRAGMA wal_autocheckpoint=8192; PRAGMA "
                 "journal_size_limit=67108864",
                 "setting pragmas")) < 0)
    goto out;
  if (o->max_bytes > 0) {
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA max_page_count=%" PRId64,
             (o->max_bytes + 4095) / 4096); /* the default page size */
    if ((rc = pragma_text(s, sql, buf, sizeof buf, "limiting the size")) < 0) goto out;
  }
  if ((rc = prepare_all(s)) < 0) goto out;
  if (!s->read_only && ((rc = load_state(s)) < 0 || (rc = lc_store_flush(s)) < 0)) goto out;
  return s;

out:
  if (err && errlen) snprintf(err, errlen, "%s", s->err[0] ? s->err : "cannot open state file");
  if (code) *code = rc < 0 ? rc : LC_STORE_EIO;
  store_free(s);
  return NULL;
}

int lc_store_flush(lc_store *s) {
  if (!s) return LC_STORE_EINVAL;
  if (s->broken) return LC_STORE_EIO;
  if (!s->in_tx) return 0;
  int rc;
  if ((rc = meta_set_int(s, "next_ord", s->next_ord)) < 0 ||
      (rc = meta_set_int(s, "last_activity", wall_now(s))) < 0 ||
      (rc = run(s, s->q[Q_COMMIT], "committing")) < 0)
    return rc;
  s->in_tx = 0;
  s->unflushed = 0;
  s->committed_seq = s->last_seq;
  return 0;
}

int lc_store_close(lc_store *s) {
  if (!s) return LC_STORE_EINVAL;
  int rc = 0;
  /* A clean close: this run is alive, so whatever it still holds did not kill it. Given back
   * uncounted; only a death leaves leases for the next open to count. */
  if (!s->read_only && !s->broken && (rc = tx(s)) == 0)
    rc = exec(s, "UPDATE requests SET state = 0 WHERE state = 2", "giving leased requests back");
  if (rc == 0) rc = lc_store_flush(s);
  store_free(s);
  return rc;
}

const char *lc_store_error(const lc_store *s) { return s ? s->err : "no store"; }
int lc_store_resumed(const lc_store *s) { return s ? s->resumed : 0; }
size_t lc_store_unflushed(const lc_store *s) { return s ? s->unflushed : 0; }

/* ---- records and the output position -------------------------------------------------------- */

int lc_store_commit(lc_store *s, uint64_t request_id, const char *const *lines, const size_t *lens,
                    size_t n) {
  if (!s || (n && (!lines || !lens))) return LC_STORE_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (!lines[i] || lens[i] > INT_MAX) return LC_STORE_EINVAL;
  int rc = request_id ? end_request(s, request_id, ST_DONE) : 0; /* 0: records of no request */
  if (rc < 0) return rc;
  sqlite3_stmt *st = s->q[Q_REC_ADD];
  for (size_t i = 0; i < n; i++) {
    sqlite3_bind_int64(st, 1, (int64_t)request_id);
    sqlite3_bind_blob(st, 2, lines[i], (int)lens[i], SQLITE_STATIC);
    if ((rc = run(s, st, "adding a record")) < 0) return rc;
    s->last_seq = sqlite3_last_insert_rowid(s->db);
  }
  return 0;
}

int lc_store_each_record(lc_store *s, uint64_t after_seq, lc_store_record_fn fn, void *ud) {
  if (!s || !fn || s->iterating) return LC_STORE_EINVAL;
  sqlite3_stmt *st = s->q[Q_REC_EACH];
  sqlite3_bind_int64(st, 1, after_seq > INT64_MAX ? INT64_MAX : (int64_t)after_seq);
  sqlite3_bind_int64(st, 2, s->read_only ? INT64_MAX : s->committed_seq);
  s->iterating = 1;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const void *line = sqlite3_column_blob(st, 1);
    size_t len = (size_t)sqlite3_column_bytes(st, 1);
    if (fn(ud, (uint64_t)sqlite3_column_int64(st, 0), line ? line : "", len)) {
      rc = SQLITE_DONE;
      break;
    }
  }
  sqlite3_reset(st);
  s->iterating = 0;
  return rc == SQLITE_DONE ? 0 : fail(s, rc, "reading records");
}

int lc_store_set_output(lc_store *s, uint64_t seq, int64_t offset) {
  if (!s || seq > INT64_MAX) return LC_STORE_EINVAL;
  int rc = tx(s);
  if (rc < 0 || (rc = meta_set_int(s, "output_seq", (int64_t)seq)) < 0) return rc;
  return meta_set_int(s, "output_offset", offset);
}

int lc_store_get_output(lc_store *s, uint64_t *seq, int64_t *offset) {
  if (!s || !seq || !offset) return LC_STORE_EINVAL;
  int64_t v = 0, off = 0;
  int rc = meta_get_int(s, "output_seq", &v);
  if (rc < 0 || (rc = meta_get_int(s, "output_offset", &off)) < 0) return rc;
  *seq = (uint64_t)v;
  *offset = off;
  return 0;
}

int lc_store_set_output_path(lc_store *s, const char *path) {
  if (!s || !path) return LC_STORE_EINVAL;
  int rc = tx(s);
  if (rc < 0) return rc;
  sqlite3_stmt *st = s->q[Q_META_SET];
  sqlite3_bind_text(st, 1, "output_path", -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, path, -1, SQLITE_TRANSIENT);
  return run(s, st, "writing the output path");
}

int lc_store_get_output_path(lc_store *s, char *buf, size_t n) {
  if (!s || !buf || n == 0) return LC_STORE_EINVAL;
  sqlite3_stmt *st = s->q[Q_META_GET];
  sqlite3_bind_text(st, 1, "output_path", -1, SQLITE_STATIC);
  int rc = row(s, st, "reading the output path");
  if (rc != 1) return rc;
  const char *v = (const char *)sqlite3_column_text(st, 0);
  snprintf(buf, n, "%s", v ? v : "");
  sqlite3_reset(st);
  return 1;
}

/* ---- counters, hosts, robots ---------------------------------------------------------------- */

static int counter_key(const char *name, char *key, size_t n) {
  return name && name[0] && (size_t)snprintf(key, n, "counter:%s", name) < n ? 0 : -1;
}

int lc_store_counter_add(lc_store *s, const char *name, int64_t delta) {
  char key[128];
  if (!s || counter_key(name, key, sizeof key) < 0) return LC_STORE_EINVAL;
  int rc = tx(s);
  if (rc < 0) return rc;
  sqlite3_stmt *st = s->q[Q_META_ADD];
  sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 2, delta);
  return run(s, st, "adding to a counter");
}

int64_t lc_store_counter(lc_store *s, const char *name) {
  char key[128];
  int64_t v = 0;
  if (!s || counter_key(name, key, sizeof key) < 0) return 0;
  return meta_get_int(s, key, &v) == 1 ? v : 0;
}

int lc_store_host_set(lc_store *s, const char *host, int64_t next_ok_wall_ms) {
  if (!s || !host || !host[0]) return LC_STORE_EINVAL;
  int rc = tx(s);
  if (rc < 0) return rc;
  shost *h = host_obtain(s, host, &rc);
  if (!h) return rc;
  sqlite3_stmt *st = s->q[Q_HOST_SET];
  sqlite3_bind_int64(st, 1, h->id);
  sqlite3_bind_int64(st, 2, next_ok_wall_ms);
  return run(s, st, "setting a host's time");
}

int64_t lc_store_host_get(lc_store *s, const char *host) {
  if (!s || !host) return 0;
  sqlite3_stmt *st = s->q[Q_HOST_GET];
  sqlite3_bind_text(st, 1, host, -1, SQLITE_TRANSIENT);
  if (row(s, st, "reading a host") != 1) return 0;
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  return v;
}

int lc_store_robots_put(lc_store *s, const char *origin, int status, const char *text, size_t len) {
  if (!s || !origin || (len && !text) || len > INT_MAX) return LC_STORE_EINVAL;
  int rc = tx(s);
  if (rc < 0) return rc;
  sqlite3_stmt *st = s->q[Q_ROBOTS_PUT];
  sqlite3_bind_text(st, 1, origin, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(st, 2, status);
  sqlite3_bind_blob(st, 3, text ? text : "", (int)len, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, wall_now(s));
  return run(s, st, "storing robots.txt");
}

int lc_store_robots_get(lc_store *s, const char *origin, int *status, char **text, size_t *len) {
  if (!s || !origin || !status || !text || !len) return LC_STORE_EINVAL;
  *text = NULL;
  *len = 0;
  sqlite3_stmt *st = s->q[Q_ROBOTS_GET];
  sqlite3_bind_text(st, 1, origin, -1, SQLITE_TRANSIENT);
  int rc = row(s, st, "reading robots.txt");
  if (rc <= 0) return rc;
  int64_t age = wall_now(s) - sqlite3_column_int64(st, 2);
  if (age < 0 || age >= ROBOTS_FRESH_MS) { /* stale, or from a clock that went back */
    sqlite3_reset(st);
    return 0;
  }
  size_t n = (size_t)sqlite3_column_bytes(st, 1);
  const void *body = sqlite3_column_blob(st, 1);
  char *copy = malloc(n + 1);
  if (!copy) {
    sqlite3_reset(st);
    return LC_STORE_EIO;
  }
  if (n) memcpy(copy, body, n);
  copy[n] = '\0';
  *status = sqlite3_column_int(st, 0);
  *text = copy;
  *len = n;
  sqlite3_reset(st);
  return 1;
}

/* ---- status --------------------------------------------------------------------------------- */

int lc_store_get_status(lc_store *s, lc_store_status *out) {
  if (!s || !out) return LC_STORE_EINVAL;
  memset(out, 0, sizeof *out);
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(s->db, "SELECT state, count(*) FROM requests GROUP BY state", -1, &st,
                              NULL);
  if (rc != SQLITE_OK) return fail(s, rc, "reading the status");
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t n = sqlite3_column_int64(st, 1);
    switch (sqlite3_column_int(st, 0)) {
      case ST_READY:
      case ST_WAITING:
        out->queued += n;
        break;
      case ST_LEASED:
        out->leased += n;
        break;
      case ST_DONE:
        out->done += n;
        break;
      case ST_FAILED:
        out->failed += n;
        break;
    }
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return fail(s, rc, "reading the status");
  if ((rc = query_int(s, "SELECT count(*) FROM records", &out->records)) < 0) return rc;
  int64_t v;
  if ((rc = meta_get_int(s, "started", &v)) < 0) return rc;
  if (rc == 1) out->started_ms = v;
  if ((rc = meta_get_int(s, "last_activity", &v)) < 0) return rc;
  if (rc == 1) out->last_activity_ms = v;
  st = s->q[Q_META_GET];
  sqlite3_bind_text(st, 1, "job_hash", -1, SQLITE_STATIC);
  if ((rc = row(s, st, "reading the job hash")) < 0) return rc;
  if (rc == 1) {
    const char *h = (const char *)sqlite3_column_text(st, 0);
    snprintf(out->job_hash, sizeof out->job_hash, "%s", h ? h : "");
    sqlite3_reset(st);
  }
  return 0;
}
