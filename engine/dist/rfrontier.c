/* rfrontier.c: the frontier shared through Redis (rfrontier.h), over one rconn.
 *
 * Local state, all small: `buf` holds requests leased ahead and not handed out (at most
 * `prefetch`); `held` the leases of requests handed out whose end is not sent yet (id and
 * token), and of those in `buf`: both are renewed every lease/3 in one call; `pushed` is a set
 * of the fingerprints this engine pushed, so its own duplicates are answered at once. The
 * server's counts (queued, delayed, leased) come with every pop's answer. The server's side
 * is rlib.lua, built into the binary (lc_rlib_source). */
#include "rfrontier.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uriparser/Uri.h>

#include "log.h"
#include "rconn.h"
#include "url.h"

extern const char lc_rlib_source[]; /* rlib.lua, generated into the build (engine/CMakeLists) */

#define LEASE_MS_DEFAULT 30000
#define BUCKET_SHIFT 49 /* the seen set's buckets: the fingerprint's top 15 bits */
/* A batched call (pushes or commits) is sent once it holds this many, or this many bytes:
 * ~5 ms on the server at most, while every other engine's commands wait. */
#define BATCH_MAX 512
#define BATCH_MAX_BYTES (1 << 20)

typedef struct lease {
  uint64_t id;
  char tok[24];
} lease;

typedef struct buffered {
  lc_request req;
  char tok[24];
} buffered;

/* The arguments of one batched call, copied into one growing buffer (pointers are made at
 * the flush, when the buffer no longer moves). */
typedef struct argbuf {
  char *bytes;
  size_t nbytes, capbytes;
  size_t *off, *len;
  size_t n, cap;
} argbuf;

/* A commit waiting for its answer: whom to tell. */
typedef struct commit_op {
  lc_rfront_commit_fn done;
  void *ud;
} commit_op;

/* A batch of commits sent as one lc_ack, answered by one array (per commit 1, 2 or 0). */
typedef struct ack_op {
  struct rfront *r;
  size_t n;
  commit_op commits[];
} ack_op;

typedef struct rfront {
  lc_frontier base;
  uv_loop_t *loop;
  lc_rfront_addr addr;
  lc_rconn *conn;
  size_t max_pages;
  int prefetch;
  int64_t delay_ms;
  int per_host;
  void (*wake)(void *);
  void *ud;

  buffered *buf;
  size_t nbuf;
  lease *held;
  size_t nheld, capheld;
  lease *starting; /* handed out, lc_started not sent yet (one such call at a time) */
  size_t nstarting, capstarting;
  int marking;      /* an lc_started is on its way */
  uint64_t *pushed; /* open addressing, 0 empty */
  size_t pushed_cap, pushed_n, pushed_max;

  int fetching;   /* a pop is on its way */
  int want_fetch; /* pop handed out this turn: refill at its end (flush_cb) */
  int stopped;    /* lc_rfront_stop: no more pops; what a pop still brings is given back */
  uint64_t empty_at; /* loop ms of the last pop that brought nothing (pops then wait a little) */
  size_t ending;  /* pushes and ends (commit, retry, fail) sent and not answered */
  int known;      /* the server's counts below were heard at least once */
  int64_t queued, delayed, leased;
  int full;       /* the server said max_pages */
  size_t accepted;
  char engine_tok[24]; /* tokens of commits of no request: engine_tok-seq */
  uint64_t tok_seq;
  uv_timer_t *renew; /* malloc'ed, freed in its close callback */
  /* Pushes and commits made in one turn of the loop, sent as one lc_push and one lc_ack just
   * before the loop waits (flush_cb; pushes first). */
  uv_prepare_t *flush;  /* malloc'ed, freed in its close callback */
  argbuf pushes;        /* 7 arguments per push */
  size_t npushes;
  argbuf acks;          /* id, token, nlines, lines... per commit */
  commit_op *commits;   /* the batched commits' callbacks, in order */
  size_t ncommits, capcommits;
  char failure[300];
  lc_rfront_counts n;
} rfront;

/* ---- URL ------------------------------------------------------------------------------------ */

static void range_copy(const UriTextRangeA *r, char *out, size_t n) {
  size_t len = r->first && r->afterLast ? (size_t)(r->afterLast - r->first) : 0;
  if (len >= n) len = n - 1;
  memcpy(out, r->first ? r->first : "", len);
  out[len] = 0;
}

#define CRAWL_NAME_RULE "letters, digits, _ . -; 1 to 100 characters"

int lc_rfront_check_crawl_name(const char *name, char *err, size_t errlen) {
  size_t n = name ? strlen(name) : 0;
  if (n == 0) {
    snprintf(err, errlen, "the crawl name is empty (%s)", CRAWL_NAME_RULE);
    return -1;
  }
  if (n > 100) {
    snprintf(err, errlen, "the crawl name is %zu characters long (%s)", n, CRAWL_NAME_RULE);
    return -1;
  }
  size_t ok = strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-");
  if (ok != n) {
    unsigned char c = (unsigned char)name[ok];
    char what[16];
    if (c >= 0x20 && c < 0x7f) snprintf(what, sizeof what, "'%c'", c);
    else snprintf(what, sizeof what, "byte 0x%02x", c);
    snprintf(err, errlen, "the crawl name '%.100s' has %s (%s)", name, what, CRAWL_NAME_RULE);
    return -1;
  }
  return 0;
}

int lc_rfront_parse(const char *url, lc_rfront_addr *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  out->port = 6379;
  out->lease_ms = LEASE_MS_DEFAULT;
  UriUriA uri;
  const char *end = NULL;
  if (uriParseSingleUriA(&uri, url, &end) != URI_SUCCESS) {
    snprintf(err, errlen, "'%s' is not a URL (redis://HOST:PORT/DB?crawl=NAME)", url);
    return -1;
  }
  int rc = -1;
  char scheme[16], port[16], q[32];
  range_copy(&uri.scheme, scheme, sizeof scheme);
  range_copy(&uri.hostText, out->host, sizeof out->host);
  range_copy(&uri.portText, port, sizeof port);
  if (strcmp(scheme, "redis") != 0) {
    snprintf(err, errlen, "'%s': only redis:// frontiers exist", url);
    goto done;
  }
  if (!out->host[0]) {
    snprintf(err, errlen, "'%s' names no host", url);
    goto done;
  }
  if (port[0]) {
    char *e;
    long p = strtol(port, &e, 10);
    if (*e || p < 1 || p > 65535) {
      snprintf(err, errlen, "'%s': bad port", url);
      goto done;
    }
    out->port = (int)p;
  }
  if (uri.pathHead) {
    range_copy(&uri.pathHead->text, q, sizeof q);
    if (uri.pathHead->next || (q[0] && strspn(q, "0123456789") != strlen(q))) {
      snprintf(err, errlen, "'%s': the path is the database number (/0)", url);
      goto done;
    }
    out->db = q[0] ? atoi(q) : 0;
  }
  UriQueryListA *ql = NULL;
  int nq = 0;
  if (uri.query.first && uriDissectQueryMallocA(&ql, &nq, uri.query.first, uri.query.afterLast) !=
                             URI_SUCCESS) {
    snprintf(err, errlen, "'%s': bad query", url);
    goto done;
  }
  int bad = 0, crawl_seen = 0;
  for (UriQueryListA *it = ql; it && !bad; it = it->next) {
    if (!strcmp(it->key, "crawl")) {
      char why[300];
      if (lc_rfront_check_crawl_name(it->value, why, sizeof why) != 0) {
        snprintf(err, errlen, "'%s': %s", url, why);
        bad = 1;
      }
      snprintf(out->crawl, sizeof out->crawl, "%s", it->value ? it->value : "");
      crawl_seen = 1;
    } else if (!strcmp(it->key, "lease_ms") && it->value) {
      char *e;
      long long v = strtoll(it->value, &e, 10);
      if (*e || v < 200 || v > 3600000) {
        snprintf(err, errlen, "'%s': lease_ms must be 200..3600000", url);
        bad = 1;
      }
      out->lease_ms = v;
    } else {
      snprintf(err, errlen, "'%s': unknown parameter '%s' (crawl, lease_ms)", url, it->key);
      bad = 1;
    }
  }
  uriFreeQueryListA(ql);
  if (bad) goto done;
  if (!crawl_seen) {
    snprintf(err, errlen, "'%s' needs ?crawl=NAME (%s)", url, CRAWL_NAME_RULE);
    goto done;
  }
  snprintf(out->prefix, sizeof out->prefix, "lc:{%s}:", out->crawl);
  rc = 0;
done:
  uriFreeUriMembersA(&uri);
  return rc;
}

/* ---- local sets ----------------------------------------------------------------------------- */

static uint64_t mix(uint64_t x) {
  x ^= x >> 31;
  x *= 0x7fb5d329728ea185ULL;
  return x ^ (x >> 27);
}

/* 1 if fp is in the set of pushed fingerprints, else 0. */
static int pushed_has(const rfront *r, uint64_t fp) {
  if (!r->pushed_cap) return 0;
  size_t mask = r->pushed_cap - 1;
  for (size_t i = mix(fp) & mask; r->pushed[i]; i = (i + 1) & mask)
    if (r->pushed[i] == fp) return 1;
  return 0;
}

/* Adds fp to the set of pushed fingerprints (0; the caller checked pushed_has), -1 out of
 * memory. A set at pushed_max starts again empty: its memory stays bounded over a crawl of
 * any length. */
static int pushed_add(rfront *r, uint64_t fp) {
  if (r->pushed_n >= r->pushed_max) {
    memset(r->pushed, 0, r->pushed_cap * sizeof *r->pushed);
    r->pushed_n = 0;
  }
  if ((r->pushed_n + 1) * 10 > r->pushed_cap * 7) {
    size_t cap = r->pushed_cap ? r->pushed_cap * 2 : 1024;
    uint64_t *t = calloc(cap, sizeof *t);
    if (!t) return -1;
    for (size_t i = 0; i < r->pushed_cap; i++) {
      if (!r->pushed[i]) continue;
      size_t j = mix(r->pushed[i]) & (cap - 1);
      while (t[j]) j = (j + 1) & (cap - 1);
      t[j] = r->pushed[i];
    }
    free(r->pushed);
    r->pushed = t;
    r->pushed_cap = cap;
  }
  size_t mask = r->pushed_cap - 1;
  for (size_t i = mix(fp) & mask;; i = (i + 1) & mask) {
    if (r->pushed[i] == fp) return 1;
    if (!r->pushed[i]) {
      r->pushed[i] = fp;
      r->pushed_n++;
      return 0;
    }
  }
}

static int lease_add(lease **v, size_t *n, size_t *capp, uint64_t id, const char *tok) {
  if (*n == *capp) {
    size_t cap = *capp ? *capp * 2 : 16;
    lease *h = realloc(*v, cap * sizeof *h);
    if (!h) return -1;
    *v = h;
    *capp = cap;
  }
  (*v)[*n].id = id;
  snprintf((*v)[*n].tok, sizeof(*v)[*n].tok, "%s", tok);
  (*n)++;
  return 0;
}

static int held_add(rfront *r, uint64_t id, const char *tok) {
  return lease_add(&r->held, &r->nheld, &r->capheld, id, tok);
}

/* Take the lease of a handed-out id out of `held` (its token into tok). 0, or ENOENT. */
static int held_take(rfront *r, uint64_t id, char tok[24]) {
  for (size_t i = 0; i < r->nheld; i++) {
    if (r->held[i].id != id) continue;
    memcpy(tok, r->held[i].tok, 24);
    r->held[i] = r->held[--r->nheld];
    return 0;
  }
  return LC_FRONTIER_ENOENT;
}

/* ---- argument buffers ----------------------------------------------------------------------- */

/* Append one argument (copied). 0, or -1 out of memory (the buffer is unchanged). */
static int argbuf_add(argbuf *b, const char *s, size_t len) {
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 64;
    size_t *off = realloc(b->off, cap * sizeof *off);
    if (!off) return -1;
    b->off = off;
    size_t *l = realloc(b->len, cap * sizeof *l);
    if (!l) return -1;
    b->len = l;
    b->cap = cap;
  }
  if (b->nbytes + len + 1 > b->capbytes) {
    size_t cap = b->capbytes ? b->capbytes : 4096;
    while (cap < b->nbytes + len + 1) cap *= 2;
    char *bytes = realloc(b->bytes, cap);
    if (!bytes) return -1;
    b->bytes = bytes;
    b->capbytes = cap;
  }
  memcpy(b->bytes + b->nbytes, s, len);
  b->bytes[b->nbytes + len] = 0;
  b->off[b->n] = b->nbytes;
  b->len[b->n] = len;
  b->nbytes += len + 1;
  b->n++;
  return 0;
}

/* Append a group of arguments, all or none. */
static int argbuf_add_all(argbuf *b, int n, const char *const *s, const size_t *len) {
  size_t n0 = b->n, bytes0 = b->nbytes;
  for (int i = 0; i < n; i++) {
    if (argbuf_add(b, s[i], len[i]) != 0) {
      b->n = n0;
      b->nbytes = bytes0;
      return -1;
    }
  }
  return 0;
}

static void argbuf_free(argbuf *b) {
  free(b->bytes);
  free(b->off);
  free(b->len);
  memset(b, 0, sizeof *b);
}

/* ---- commands ------------------------------------------------------------------------------- */

static void wake(rfront *r) {
  if (r->wake) r->wake(r->ud);
}

/* FCALL name 1 prefix args...: argv[0..3] are filled here. */
static int fcall(rfront *r, const char *name, lc_rconn_reply_fn fn, void *ud, int argc,
                 const char **argv, size_t *lens) {
  argv[0] = "FCALL";
  argv[1] = name;
  argv[2] = "1";
  argv[3] = r->addr.prefix;
  for (int i = 0; i < 4; i++) lens[i] = strlen(argv[i]);
  for (int i = 4; i < argc; i++)
    if (lens[i] == (size_t)-1) lens[i] = strlen(argv[i]);
  return lc_rconn_cmd(r->conn, fn, ud, argc, argv, lens);
}

/* An error answer: the server refused a step (a write at maxmemory, a function missing or
 * failing). What the step carried (links, records, an end) may be lost, so the crawl stops
 * here with the server's reason (failure(); the job fails with it) instead of going on
 * without it. 1 if rep is an error. */
static int reply_error(rfront *r, const char *what, const redisReply *rep) {
  if (rep->type != REDIS_REPLY_ERROR) return 0;
  if (!r->failure[0])
    snprintf(r->failure, sizeof r->failure, "Redis refused %s (%.200s): the crawl cannot go on",
             what, rep->str ? rep->str : "?");
  wake(r);
  return 1;
}

/* An answer of a shape luacrawl's functions never send (the library loaded by an engine of
 * another version?): as fatal as an error. */
static void bad_answer(rfront *r, const char *what) {
  if (!r->failure[0])
    snprintf(r->failure, sizeof r->failure,
             "Redis answered %s with something else than this luacrawl's functions send (does "
             "an engine of another version share the crawl?): the crawl cannot go on",
             what);
  wake(r);
}

/* The answer to a retry or a fail: nothing to do but count it. */
static void end_cb(void *ud, redisReply *rep, int status) {
  rfront *r = ud;
  if (status != LC_RCONN_OK) return;
  r->ending--;
  if (!reply_error(r, "the end of a request", rep)) wake(r);
}

static void pause_cb(void *ud, redisReply *rep, int status) {
  if (status == LC_RCONN_OK) reply_error(ud, "a pause of a host", rep);
}

static long long int_of(const redisReply *e) {
  if (!e) return 0;
  if (e->type == REDIS_REPLY_INTEGER) return e->integer;
  if (e->type == REDIS_REPLY_STRING) return strtoll(e->str, NULL, 10);
  return 0;
}

static char *dup_of(const redisReply *e) {
  if (!e || e->type != REDIS_REPLY_STRING) return NULL;
  char *s = malloc(e->len + 1);
  if (s) {
    memcpy(s, e->str, e->len);
    s[e->len] = 0;
  }
  return s;
}

/* A batch of n pushes, answered by one array: per push its id, 0 seen or -1 full. */
typedef struct push_op {
  rfront *r;
  size_t n;
} push_op;

static void push_cb(void *ud, redisReply *rep, int status) {
  push_op *p = ud;
  rfront *r = p->r;
  size_t n = p->n;
  free(p);
  if (status != LC_RCONN_OK) return;
  r->ending -= n;
  if (reply_error(r, "a push", rep)) return;
  if (rep->type != REDIS_REPLY_ARRAY || rep->elements != n) {
    bad_answer(r, "a push");
    return;
  }
  /* A batch sent again after a lost reply finds its URLs seen: accepted then undercounts
   * (a local figure only; the server's count is the crawl's). */
  for (size_t i = 0; i < n; i++) {
    long long v = int_of(rep->element[i]);
    if (v > 0) {
      r->accepted++;
      r->n.pushed++;
    } else if (v < 0) {
      r->full = 1;
    }
  }
  wake(r);
}

static void flush_cb(uv_prepare_t *h);

static void schedule_flush(rfront *r) {
  if (!uv_is_active((uv_handle_t *)r->flush)) uv_prepare_start(r->flush, flush_cb);
}

static void commit_cb(void *ud, redisReply *rep, int status);

/* Send the batched pushes, then the batched commits: a request's end never reaches the
 * server before the pushes made while it ran. Out of memory leaves a batch for the next turn
 * (its count stays in `ending`, so the job waits for it). */
static int flush_batches(rfront *r) {
  if (r->npushes) {
    size_t argc = 5 + r->pushes.n;
    const char **argv = malloc(argc * sizeof *argv);
    size_t *lens = malloc(argc * sizeof *lens);
    push_op *p = malloc(sizeof *p);
    char maxp[24];
    snprintf(maxp, sizeof maxp, "%zu", r->max_pages);
    if (argv && lens && p) {
      argv[4] = maxp;
      lens[4] = strlen(maxp);
      for (size_t i = 0; i < r->pushes.n; i++) {
        argv[5 + i] = r->pushes.bytes + r->pushes.off[i];
        lens[5 + i] = r->pushes.len[i];
      }
      p->r = r;
      p->n = r->npushes;
      if (fcall(r, "lc_push", push_cb, p, (int)argc, argv, lens) == 0) {
        p = NULL;
        r->n.push_calls++;
        r->pushes.n = r->pushes.nbytes = 0;
        r->npushes = 0;
      }
    }
    free(argv);
    free(lens);
    free(p);
    if (r->npushes) {
      lc_warn("out of memory sending %zu pushes: trying again", r->npushes);
      schedule_flush(r);
      return -1; /* the commits, and any end, wait behind them */
    }
  }
  if (r->ncommits) {
    size_t argc = 4 + r->acks.n;
    const char **argv = malloc(argc * sizeof *argv);
    size_t *lens = malloc(argc * sizeof *lens);
    ack_op *op = malloc(sizeof *op + r->ncommits * sizeof op->commits[0]);
    if (argv && lens && op) {
      for (size_t i = 0; i < r->acks.n; i++) {
        argv[4 + i] = r->acks.bytes + r->acks.off[i];
        lens[4 + i] = r->acks.len[i];
      }
      op->r = r;
      op->n = r->ncommits;
      memcpy(op->commits, r->commits, r->ncommits * sizeof op->commits[0]);
      if (fcall(r, "lc_ack", commit_cb, op, (int)argc, argv, lens) == 0) {
        op = NULL;
        r->n.ack_calls++;
        r->acks.n = r->acks.nbytes = 0;
        r->ncommits = 0;
      }
    }
    free(argv);
    free(lens);
    free(op);
    if (r->ncommits) {
      lc_warn("out of memory sending %zu commits: trying again", r->ncommits);
      schedule_flush(r);
    }
  }
  return 0;
}

static void fetch(rfront *r);

static void mark_started(rfront *r);

static void flush_cb(uv_prepare_t *h) {
  rfront *r = h->data;
  uv_prepare_stop(h);
  flush_batches(r);
  if (r->want_fetch) {
    r->want_fetch = 0;
    fetch(r); /* with the marks of what this turn handed out */
  }
  mark_started(r); /* marks no pop took: in a call of their own */
}

static int rf_push(lc_frontier *f, const char *url, int depth, const char *data_json,
                   int64_t now_ms) {
  rfront *r = (rfront *)f;
  (void)now_ms;
  if (!r || !url || depth < 0) return LC_FRONTIER_EINVAL;
  char *norm = NULL;
  size_t host_at, host_len;
  int rc = lc_url_normalize_host(NULL, url, &norm, &host_at, &host_len, NULL);
  if (rc < 0) return rc == LC_URL_ENOMEM ? LC_FRONTIER_ENOMEM : LC_FRONTIER_EURL;
  uint64_t fp = lc_frontier_fingerprint(norm, strlen(norm));
  if (pushed_has(r, fp)) {
    free(norm);
    return 0;
  }
  if (r->full) {
    free(norm);
    return LC_FRONTIER_EFULL;
  }
  char fps[24], bucket[16], dep[16];
  snprintf(fps, sizeof fps, "%" PRId64, (int64_t)fp); /* an int64: the set stays an intset */
  snprintf(bucket, sizeof bucket, "%u", (unsigned)(fp >> BUCKET_SHIFT));
  snprintf(dep, sizeof dep, "%d", depth);
  const char *args[7] = {fps, bucket, norm + host_at, norm, dep, data_json ? "1" : "0",
                         data_json ? data_json : ""};
  size_t lens[7];
  for (int i = 0; i < 7; i++) lens[i] = strlen(args[i]);
  lens[2] = host_len;
  /* Remembered as pushed only once it is in the batch: out of memory forgets nothing sent. */
  size_t n0 = r->pushes.n, bytes0 = r->pushes.nbytes;
  rc = argbuf_add_all(&r->pushes, 7, args, lens);
  free(norm);
  if (rc != 0) return LC_FRONTIER_ENOMEM;
  if (pushed_add(r, fp) < 0) {
    r->pushes.n = n0;
    r->pushes.nbytes = bytes0;
    return LC_FRONTIER_ENOMEM;
  }
  r->npushes++;
  r->ending++;
  schedule_flush(r);
  /* A turn that pushes a whole start list or sitemap goes in calls of a bounded size: one call
   * runs alone on the server, and every other engine waits for it. */
  if (r->npushes >= BATCH_MAX || r->pushes.nbytes >= BATCH_MAX_BYTES) flush_batches(r);
  return 1;
}

static size_t rf_pending(const lc_frontier *f);
#define EMPTY_POP_PAUSE_MS 40

/* Give n leases back to the server untried (lc_release): one call, answered in end_cb. 0, or
 * LC_FRONTIER_ENOMEM (the leases then expire, and count as lost). */
static int send_release(rfront *r, const uint64_t *ids, const char (*toks)[24], size_t n) {
  if (n == 0) return 0;
  int argc = 4 + 2 * (int)n;
  const char **argv = calloc((size_t)argc, sizeof *argv);
  size_t *lens = calloc((size_t)argc, sizeof *lens);
  char (*idstr)[24] = calloc(n, sizeof *idstr);
  int rc = LC_FRONTIER_ENOMEM;
  if (argv && lens && idstr) {
    for (size_t i = 0; i < n; i++) {
      snprintf(idstr[i], sizeof idstr[i], "%" PRIu64, ids[i]);
      argv[4 + 2 * i] = idstr[i];
      lens[4 + 2 * i] = (size_t)-1;
      argv[5 + 2 * i] = toks[i];
      lens[5 + 2 * i] = (size_t)-1;
    }
    if (fcall(r, "lc_release", end_cb, r, argc, argv, lens) == 0) {
      r->ending++;
      rc = 0;
    }
  }
  if (rc != 0) lc_warn("out of memory giving %zu lease(s) back: they expire instead", n);
  free(argv);
  free(lens);
  free(idstr);
  return rc;
}

/* Give back every request in the buffer (a stop), emptying it. */
static void release_buffer(rfront *r) {
  if (r->nbuf == 0) return;
  uint64_t *ids = calloc(r->nbuf, sizeof *ids);
  char (*toks)[24] = calloc(r->nbuf, sizeof *toks);
  if (ids && toks) {
    for (size_t i = 0; i < r->nbuf; i++) {
      ids[i] = r->buf[i].req.id;
      memcpy(toks[i], r->buf[i].tok, sizeof toks[i]);
    }
    send_release(r, ids, (const char (*)[24])toks, r->nbuf);
  } else {
    lc_warn("out of memory giving %zu lease(s) back: they expire instead", r->nbuf);
  }
  free(ids);
  free(toks);
  for (size_t i = 0; i < r->nbuf; i++) lc_request_clear(&r->buf[i].req);
  r->nbuf = 0;
}

static void pop_cb(void *ud, redisReply *rep, int status) {
  rfront *r = ud;
  if (status != LC_RCONN_OK) return;
  r->fetching = 0;
  if (reply_error(r, "a pop", rep)) return;
  if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 || (rep->elements - 3) % 9 != 0) {
    bad_answer(r, "a pop");
    return;
  }
  for (size_t i = 3; i + 9 <= rep->elements; i += 9) {
    redisReply **e = rep->element + i;
    if (r->nbuf >= (size_t)r->prefetch) break; /* more than asked: those leases expire */
    buffered *b = &r->buf[r->nbuf];
    memset(b, 0, sizeof *b);
    b->req.id = (uint64_t)int_of(e[0]);
    if (e[1]->type == REDIS_REPLY_STRING)
      snprintf(b->tok, sizeof b->tok, "%.*s", (int)e[1]->len, e[1]->str);
    b->req.url = dup_of(e[2]);
    b->req.depth = (int)int_of(e[3]);
    b->req.attempt = (int)int_of(e[4]);
    b->req.throttles = (int)int_of(e[5]);
    b->req.crashes = (int)int_of(e[6]);
    b->req.data_json = dup_of(e[7]);
    b->req.lost = (int)int_of(e[8]);
    if (!b->req.url || (e[7]->type == REDIS_REPLY_STRING && !b->req.data_json)) {
      /* Out of memory: the lease expires and another pop takes it. */
      lc_request_clear(&b->req);
      continue;
    }
    r->nbuf++;
    r->n.popped++;
  }
  /* Leased after the stop: not this engine's to run any more; given back at once. */
  if (r->stopped) release_buffer(r);
  size_t before = rf_pending(&r->base);
  r->queued = int_of(rep->element[0]);
  r->delayed = int_of(rep->element[1]);
  r->leased = int_of(rep->element[2]);
  r->known = 1;
  if (rep->elements == 3) r->empty_at = uv_now(r->loop);
  /* Wake the job when there is something to hand out or the crawl's end came into sight; an
   * empty answer otherwise waits for the job's own poll (a loop of pops would spin). */
  if (rep->elements > 3 || (rf_pending(&r->base) == 0 && before != 0)) wake(r);
}

/* Ask the server for requests to fill the buffer (one pop at a time). */
static void fetch(rfront *r) {
  if (r->fetching || r->stopped || r->failure[0] || r->nbuf >= (size_t)r->prefetch) return;
  if (r->empty_at && uv_now(r->loop) - r->empty_at < EMPTY_POP_PAUSE_MS) return;
  char count[24], lease_ms[24], delay[24], per[16];
  snprintf(count, sizeof count, "%zu", (size_t)r->prefetch - r->nbuf);
  snprintf(lease_ms, sizeof lease_ms, "%" PRId64, r->addr.lease_ms);
  snprintf(delay, sizeof delay, "%" PRId64, r->delay_ms);
  snprintf(per, sizeof per, "%d", r->per_host > 0 ? r->per_host : 0);
  /* The requests started since the last mark ride with the pop (lc_pop marks them first),
   * unless an lc_started is on its way: marks then wait for it, in order. */
  size_t marks = r->marking ? 0 : r->nstarting;
  int argc = 8 + 2 * (int)marks;
  const char **argv = calloc((size_t)argc, sizeof *argv);
  size_t *lens = calloc((size_t)argc, sizeof *lens);
  char (*ids)[24] = marks ? calloc(marks, sizeof *ids) : NULL;
  if (!argv || !lens || (marks && !ids)) {
    free(argv);
    free(lens);
    free(ids);
    return; /* out of memory: the next pop asks again */
  }
  const char *head[4] = {count, lease_ms, delay, per};
  for (int i = 0; i < 4; i++) {
    argv[4 + i] = head[i];
    lens[4 + i] = strlen(head[i]);
  }
  for (size_t i = 0; i < marks; i++) {
    snprintf(ids[i], sizeof ids[i], "%" PRIu64, r->starting[i].id);
    argv[8 + 2 * i] = ids[i];
    lens[8 + 2 * i] = strlen(ids[i]);
    argv[9 + 2 * i] = r->starting[i].tok;
    lens[9 + 2 * i] = strlen(r->starting[i].tok);
  }
  if (fcall(r, "lc_pop", pop_cb, r, argc, argv, lens) == 0) {
    r->fetching = 1;
    r->n.pop_calls++;
    if (marks) r->nstarting = 0;
  }
  free(argv);
  free(lens);
  free(ids);
}

/* Tell the server which leases now run (lc_started: only their expiry counts as a lost lease,
 * not that of a request that waited in the buffer of an engine that died). Sent at the end of
 * the turn that handed them out (flush_cb) with its refill pop, or, when no pop goes, in a
 * call of their own, one at a time: what is handed out while one is on its way goes with the
 * next. */
static void started_cb(void *ud, redisReply *rep, int status);
static void mark_started(rfront *r) {
  if (r->marking || r->nstarting == 0 || r->failure[0]) return;
  int argc = 4 + 2 * (int)r->nstarting;
  const char **argv = calloc((size_t)argc, sizeof *argv);
  size_t *lens = calloc((size_t)argc, sizeof *lens);
  char (*ids)[24] = calloc(r->nstarting, sizeof *ids);
  if (argv && lens && ids) {
    for (size_t i = 0; i < r->nstarting; i++) {
      snprintf(ids[i], sizeof ids[i], "%" PRIu64, r->starting[i].id);
      argv[4 + 2 * i] = ids[i];
      lens[4 + 2 * i] = (size_t)-1;
      argv[5 + 2 * i] = r->starting[i].tok;
      lens[5 + 2 * i] = (size_t)-1;
    }
    if (fcall(r, "lc_started", started_cb, r, argc, argv, lens) == 0) {
      r->n.started_calls++;
      r->marking = 1;
      r->nstarting = 0;
    }
  }
  if (!r->marking) lc_warn("out of memory marking %zu request(s) as running", r->nstarting);
  free(argv);
  free(lens);
  free(ids);
}

static void started_cb(void *ud, redisReply *rep, int status) {
  rfront *r = ud;
  if (status != LC_RCONN_OK) return;
  r->marking = 0;
  reply_error(r, "marking requests as running", rep);
  mark_started(r);
}

static int rf_pop(lc_frontier *f, int64_t now_ms, lc_frontier_admit_fn admit, void *ud,
                  lc_request *out, int64_t *next_ms) {
  rfront *r = (rfront *)f;
  (void)now_ms;
  if (next_ms) *next_ms = -1;
  if (!r || !out) return LC_FRONTIER_EINVAL;
  memset(out, 0, sizeof *out);
  int rc = 0;
  /* Ask admit once per host: the buffer is small, so a list of refused hosts is enough. */
  char refused[16][256];
  int nref = 0;
  for (size_t i = 0; i < r->nbuf; i++) {
    char host[256];
    if (lc_url_host(r->buf[i].req.url, host, sizeof host) != 0) host[0] = 0;
    int skip = 0;
    for (int k = 0; k < nref && !skip; k++) skip = strcmp(refused[k], host) == 0;
    if (skip) continue;
    if (admit && !admit(ud, r->buf[i].req.url)) {
      if (nref < 16) snprintf(refused[nref++], sizeof refused[0], "%s", host);
      continue;
    }
    if (held_add(r, r->buf[i].req.id, r->buf[i].tok) != 0) {
      rc = LC_FRONTIER_ENOMEM;
      break;
    }
    if (lease_add(&r->starting, &r->nstarting, &r->capstarting, r->buf[i].req.id,
                  r->buf[i].tok) != 0)
      lc_warn("out of memory: request %" PRIu64 " runs unmarked (its loss would not count)",
              r->buf[i].req.id);
    *out = r->buf[i].req;
    memmove(r->buf + i, r->buf + i + 1, (r->nbuf - i - 1) * sizeof *r->buf);
    r->nbuf--;
    rc = 1;
    break;
  }
  /* The refill goes at the end of the turn, after its pushes and commits: it asks for what
   * the whole turn took, and sees the links those pages found. */
  r->want_fetch = 1;
  schedule_flush(r);
  return rc;
}

static int rf_retry(lc_frontier *f, lc_request *req, int64_t not_before_ms) {
  rfront *r = (rfront *)f;
  if (!req) return LC_FRONTIER_EINVAL;
  char tok[24];
  int rc = r ? held_take(r, req->id, tok) : LC_FRONTIER_EINVAL;
  if (rc == 0) {
    int64_t delay = not_before_ms - (int64_t)uv_now(r->loop);
    char id[24], d[24], a[16], t[16], c[16];
    snprintf(id, sizeof id, "%" PRIu64, req->id);
    snprintf(d, sizeof d, "%" PRId64, delay > 0 ? delay : 0);
    snprintf(a, sizeof a, "%d", req->attempt + 1);
    snprintf(t, sizeof t, "%d", req->throttles);
    snprintf(c, sizeof c, "%d", req->crashes);
    const char *argv[10] = {0, 0, 0, 0, id, tok, d, a, t, c};
    size_t lens[10];
    for (int i = 0; i < 10; i++) lens[i] = (size_t)-1;
    /* The pushes its run made go first; when they cannot, neither does the end (the lease
     * then expires and the request comes back). */
    if (flush_batches(r) != 0 || fcall(r, "lc_retry", end_cb, r, 10, argv, lens) != 0)
      rc = LC_FRONTIER_ENOMEM;
    else
      r->ending++;
  }
  lc_request_clear(req);
  return rc;
}

static int rf_done(lc_frontier *f, uint64_t rid, int ok) {
  rfront *r = (rfront *)f;
  char tok[24];
  int rc = r ? held_take(r, rid, tok) : LC_FRONTIER_EINVAL;
  if (rc != 0) return rc;
  char id[24];
  snprintf(id, sizeof id, "%" PRIu64, rid);
  const char *argv[7] = {0, 0, 0, 0, id, tok, ok ? "1" : "0"};
  size_t lens[7];
  for (int i = 0; i < 7; i++) lens[i] = (size_t)-1;
  /* the pushes its run made go first (or, out of memory, neither) */
  if (flush_batches(r) != 0 || fcall(r, "lc_fail", end_cb, r, 7, argv, lens) != 0)
    return LC_FRONTIER_ENOMEM;
  r->ending++;
  return 0;
}

static int rf_release(lc_frontier *f, lc_request *req) {
  rfront *r = (rfront *)f;
  if (!req) return LC_FRONTIER_EINVAL;
  uint64_t id = req->id;
  char tok[24];
  int rc = r && req->url ? held_take(r, id, tok) : LC_FRONTIER_EINVAL;
  lc_request_clear(req);
  if (rc != 0) return rc;
  /* the pushes its run made go first, as for retry and done */
  if (flush_batches(r) != 0) return LC_FRONTIER_ENOMEM;
  return send_release(r, &id, (const char (*)[24])&tok, 1);
}

static size_t rf_pending(const lc_frontier *f) {
  const rfront *r = (const rfront *)f;
  if (!r) return 0;
  size_t n = r->nbuf + r->ending;
  if (!r->known) return n + 1; /* the server's counts are not known yet */
  int64_t others = r->leased - (int64_t)r->nheld - (int64_t)r->nbuf;
  return n + (size_t)(r->queued > 0 ? r->queued : 0) + (size_t)(r->delayed > 0 ? r->delayed : 0) +
         (size_t)(others > 0 ? others : 0);
}

static size_t rf_accepted(const lc_frontier *f) {
  const rfront *r = (const rfront *)f;
  return r ? r->accepted : 0;
}

static void timer_free(uv_handle_t *h) { free(h); }

static void rf_destroy(lc_frontier *f) {
  rfront *r = (rfront *)f;
  if (!r) return;
  lc_rconn_free(r->conn); /* cancels: callbacks given a frontier's own ud return at once */
  for (size_t i = 0; i < r->ncommits; i++) r->commits[i].done(r->commits[i].ud, -1);
  for (size_t i = 0; i < r->nbuf; i++) lc_request_clear(&r->buf[i].req);
  if (r->renew) {
    uv_timer_stop(r->renew);
    uv_close((uv_handle_t *)r->renew, timer_free);
  }
  if (r->flush) {
    uv_prepare_stop(r->flush);
    uv_close((uv_handle_t *)r->flush, timer_free);
  }
  argbuf_free(&r->pushes);
  argbuf_free(&r->acks);
  free(r->commits);
  free(r->buf);
  free(r->held);
  free(r->starting);
  free(r->pushed);
  free(r);
}

static const lc_frontier_ops rfront_ops = {
    .push = rf_push,
    .retry = rf_retry,
    .pop = rf_pop,
    .done = rf_done,
    .release = rf_release,
    .pending = rf_pending,
    .accepted = rf_accepted,
    .destroy = rf_destroy,
};

/* ---- leases --------------------------------------------------------------------------------- */

static void renew_cb(void *ud, redisReply *rep, int status) {
  rfront *r = ud;
  if (status != LC_RCONN_OK || reply_error(r, "a lease renewal", rep)) return;
  if (rep->type != REDIS_REPLY_ARRAY) return;
  for (size_t i = 0; i < rep->elements; i++) {
    uint64_t id = (uint64_t)int_of(rep->element[i]);
    r->n.lost++;
    /* A buffered request whose lease passed on is not ours to run. */
    for (size_t k = 0; k < r->nbuf; k++) {
      if (r->buf[k].req.id != id) continue;
      lc_request_clear(&r->buf[k].req);
      memmove(r->buf + k, r->buf + k + 1, (r->nbuf - k - 1) * sizeof *r->buf);
      r->nbuf--;
      break;
    }
    lc_debug("the lease of request %" PRIu64 " passed to another engine", id);
  }
}

static void renew_timer_cb(uv_timer_t *t) {
  rfront *r = t->data;
  size_t n = r->nheld + r->nbuf;
  if (n == 0 || r->failure[0]) return;
  int argc = 5 + 2 * (int)n;
  const char **argv = calloc((size_t)argc, sizeof *argv);
  size_t *lens = calloc((size_t)argc, sizeof *lens);
  char (*ids)[24] = calloc(n, sizeof *ids);
  char lease_ms[24];
  if (argv && lens && ids) {
    snprintf(lease_ms, sizeof lease_ms, "%" PRId64, r->addr.lease_ms);
    argv[4] = lease_ms;
    lens[4] = strlen(lease_ms);
    for (size_t i = 0; i < n; i++) {
      uint64_t id = i < r->nheld ? r->held[i].id : r->buf[i - r->nheld].req.id;
      const char *tok = i < r->nheld ? r->held[i].tok : r->buf[i - r->nheld].tok;
      snprintf(ids[i], sizeof ids[i], "%" PRIu64, id);
      argv[5 + 2 * i] = ids[i];
      lens[5 + 2 * i] = strlen(ids[i]);
      argv[6 + 2 * i] = tok;
      lens[6 + 2 * i] = strlen(tok);
    }
    if (fcall(r, "lc_renew", renew_cb, r, argc, argv, lens) != 0) {
      lc_warn("out of memory renewing leases");
    } else {
      r->n.renew_calls++;
      r->n.renewed += n;
    }
  }
  free(argv);
  free(lens);
  free(ids);
}

/* ---- commits, slots, pauses ----------------------------------------------------------------- */

/* The answer to a batch of commits: each commit's callback, in order, exactly once. */
static void commit_cb(void *ud, redisReply *rep, int status) {
  ack_op *op = ud;
  rfront *r = op->r;
  int whole = 2; /* 2: each its own; else one result for all (cancelled, an error, ...) */
  if (status != LC_RCONN_OK) {
    whole = -1;
  } else {
    r->ending -= op->n;
    if (reply_error(r, "a commit", rep)) {
      whole = -1; /* not committed, not refused: the crawl fails with the server's reason */
    } else if (rep->type != REDIS_REPLY_ARRAY || rep->elements != op->n) {
      bad_answer(r, "a commit");
      whole = -1;
    }
  }
  for (size_t i = 0; i < op->n; i++) {
    int result = whole;
    if (whole == 2) result = int_of(rep->element[i]) > 0 ? 1 : 0;
    if (result == 0) r->n.refused++;
    op->commits[i].done(op->commits[i].ud, result);
  }
  free(op);
}

int lc_rfront_commit(lc_frontier *f, uint64_t request_id, const char *const *lines,
                     const size_t *lens, size_t n, lc_rfront_commit_fn done, void *ud) {
  rfront *r = (rfront *)f;
  char tok[24];
  if (request_id) {
    int rc = held_take(r, request_id, tok);
    if (rc != 0) return rc;
  } else {
    snprintf(tok, sizeof tok, "%.12s-%" PRIu64, r->engine_tok, ++r->tok_seq);
  }
  if (r->ncommits == r->capcommits) {
    size_t cap = r->capcommits ? r->capcommits * 2 : 16;
    commit_op *c = realloc(r->commits, cap * sizeof *c);
    if (!c) goto nomem;
    r->commits = c;
    r->capcommits = cap;
  }
  char id[24], nl[24];
  snprintf(id, sizeof id, "%" PRIu64, request_id);
  snprintf(nl, sizeof nl, "%zu", n);
  size_t n0 = r->acks.n, bytes0 = r->acks.nbytes;
  const char *head[3] = {id, tok, nl};
  size_t hlen[3] = {strlen(id), strlen(tok), strlen(nl)};
  if (argbuf_add_all(&r->acks, 3, head, hlen) != 0 ||
      argbuf_add_all(&r->acks, (int)n, lines, lens) != 0) {
    r->acks.n = n0;
    r->acks.nbytes = bytes0;
    goto nomem;
  }
  r->commits[r->ncommits].done = done;
  r->commits[r->ncommits].ud = ud;
  r->ncommits++;
  r->ending++;
  schedule_flush(r);
  if (r->ncommits >= BATCH_MAX || r->acks.nbytes >= BATCH_MAX_BYTES) flush_batches(r);
  return 0;
nomem:
  /* the lease stays ours: given back, it is renewed until the caller decides */
  if (request_id) held_add(r, request_id, tok);
  return LC_FRONTIER_ENOMEM;
}

typedef struct slot_op {
  rfront *r;
  lc_rfront_slot_fn done;
  void *ud;
} slot_op;

static void slot_cb(void *ud, redisReply *rep, int status) {
  slot_op *s = ud;
  int64_t wait = -1;
  if (status == LC_RCONN_OK && !reply_error(s->r, "a host slot", rep))
    wait = rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
  s->done(s->ud, wait);
  free(s);
}

int lc_rfront_slot(lc_frontier *f, const char *host, int64_t delay_ms, lc_rfront_slot_fn done,
                   void *ud) {
  rfront *r = (rfront *)f;
  slot_op *s = malloc(sizeof *s);
  if (!s) return -1;
  s->r = r;
  s->done = done;
  s->ud = ud;
  char d[24];
  snprintf(d, sizeof d, "%" PRId64, delay_ms > 0 ? delay_ms : 0);
  const char *argv[6] = {0, 0, 0, 0, host, d};
  size_t lens[6] = {0, 0, 0, 0, (size_t)-1, (size_t)-1};
  if (fcall(r, "lc_slot", slot_cb, s, 6, argv, lens) != 0) {
    free(s);
    return -1;
  }
  return 0;
}

void lc_rfront_pause(lc_frontier *f, const char *host, int64_t ms) {
  rfront *r = (rfront *)f;
  char d[24];
  snprintf(d, sizeof d, "%" PRId64, ms > 0 ? ms : 0);
  const char *argv[6] = {0, 0, 0, 0, host, d};
  size_t lens[6] = {0, 0, 0, 0, (size_t)-1, (size_t)-1};
  if (fcall(r, "lc_pause", pause_cb, r, 6, argv, lens) != 0)
    lc_warn("out of memory sharing a pause of %s", host);
}

void lc_rfront_stop(lc_frontier *f) {
  rfront *r = (rfront *)f;
  if (!r || r->stopped) return;
  r->stopped = 1;
  release_buffer(r);
}

size_t lc_rfront_outstanding(const lc_frontier *f) {
  const rfront *r = (const rfront *)f;
  return lc_rconn_outstanding(r->conn) + (r->npushes ? 1 : 0) + (r->ncommits ? 1 : 0) +
         (r->want_fetch ? 1 : 0);
}

const char *lc_rfront_failure(const lc_frontier *f) {
  const rfront *r = (const rfront *)f;
  return r->failure[0] ? r->failure : NULL;
}

void lc_rfront_get_counts(const lc_frontier *f, lc_rfront_counts *out) {
  const rfront *r = (const rfront *)f;
  *out = r->n;
  out->reconnects = lc_rconn_reconnects(r->conn);
}

static void conn_down(void *ud, const char *why) {
  rfront *r = ud;
  snprintf(r->failure, sizeof r->failure, "%s: the crawl cannot go on", why);
  wake(r);
}

/* ---- open ----------------------------------------------------------------------------------- */

lc_frontier *lc_rfront_open(const lc_rfront_opts *o, char *err, size_t errlen) {
  lc_rfront_addr addr;
  if (lc_rfront_parse(o->url, &addr, err, errlen) != 0) return NULL;
  if (!o->no_check &&
      lc_rconn_check(addr.host, addr.port, addr.db, lc_rlib_source, err, errlen) != 0)
    return NULL;
  rfront *r = calloc(1, sizeof *r);
  int prefetch = o->prefetch > 0 ? o->prefetch : 1;
  if (r) r->buf = calloc((size_t)prefetch, sizeof *r->buf);
  if (r) r->renew = malloc(sizeof *r->renew);
  if (r) r->flush = malloc(sizeof *r->flush);
  if (!r || !r->buf || !r->renew || !r->flush) {
    if (r) {
      free(r->buf);
      free(r->renew);
      free(r->flush);
    }
    free(r);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  r->base.ops = &rfront_ops;
  r->loop = o->loop;
  r->addr = addr;
  r->max_pages = o->max_pages;
  r->prefetch = prefetch;
  r->delay_ms = o->delay_ms;
  r->per_host = o->per_host;
  r->pushed_max = o->pushed_max ? o->pushed_max : 1000000;
  r->wake = o->wake;
  r->ud = o->ud;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  snprintf(r->engine_tok, sizeof r->engine_tok, "e%08lx%04x",
           (unsigned long)(ts.tv_nsec ^ ts.tv_sec), (unsigned)(getpid() & 0xffff));
  lc_rconn_opts co = {.loop = o->loop, .host = addr.host, .port = addr.port, .db = addr.db,
                      .library = lc_rlib_source, .first_give_up_ms = o->first_give_up_ms,
                      .down = conn_down, .ud = r};
  r->conn = lc_rconn_new(&co);
  if (!r->conn) {
    free(r->buf);
    free(r->renew);
    free(r->flush);
    free(r);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  uv_timer_init(o->loop, r->renew);
  r->renew->data = r;
  uv_prepare_init(o->loop, r->flush);
  r->flush->data = r;
  uint64_t every = (uint64_t)(addr.lease_ms / 3);
  uv_timer_start(r->renew, renew_timer_cb, every, every);
  return &r->base;
}

/* ---- the read-only tools -------------------------------------------------------------------- */

static redisContext *connect_sync(const char *url, lc_rfront_addr *a, char *err, size_t errlen) {
  if (lc_rfront_parse(url, a, err, errlen) != 0) return NULL;
  struct timeval tv = {2, 0};
  redisContext *c = redisConnectWithTimeout(a->host, a->port, tv);
  if (!c || c->err) {
    snprintf(err, errlen, "cannot connect to Redis at %s:%d: %s", a->host, a->port,
             c ? c->errstr : "out of memory");
    if (c) redisFree(c);
    return NULL;
  }
  redisReply *rep = redisCommand(c, "SELECT %d", a->db);
  int ok = rep && rep->type != REDIS_REPLY_ERROR;
  if (!ok) snprintf(err, errlen, "Redis: SELECT %d failed", a->db);
  if (rep) freeReplyObject(rep);
  if (!ok) {
    redisFree(c);
    return NULL;
  }
  return c;
}

int lc_rfront_get_status(const char *url, lc_rfront_status *out, char *err, size_t errlen) {
  lc_rfront_addr a;
  memset(out, 0, sizeof *out);
  redisContext *c = connect_sync(url, &a, err, errlen);
  if (!c) return -1;
  redisReply *h = redisCommand(c, "HMGET %sn queued pages_ok pages_failed records accepted started last reclaimed refused", a.prefix);
  redisReply *d = redisCommand(c, "ZCARD %sdelayed", a.prefix);
  redisReply *l = redisCommand(c, "ZCARD %sleases", a.prefix);
  int ok = h && d && l && h->type == REDIS_REPLY_ARRAY && h->elements == 9;
  if (ok) {
    out->queued = int_of(h->element[0]);
    out->done = int_of(h->element[1]);
    out->failed = int_of(h->element[2]);
    out->records = int_of(h->element[3]);
    out->accepted = int_of(h->element[4]);
    out->started_ms = int_of(h->element[5]);
    out->last_activity_ms = int_of(h->element[6]);
    out->reclaimed = int_of(h->element[7]);
    out->refused = int_of(h->element[8]);
    out->delayed = int_of(d);
    out->leased = int_of(l);
  } else {
    snprintf(err, errlen, "cannot read the crawl %s: %s", a.crawl, c->err ? c->errstr : "bad answer");
  }
  if (h) freeReplyObject(h);
  if (d) freeReplyObject(d);
  if (l) freeReplyObject(l);
  redisFree(c);
  return ok ? 0 : -1;
}

int lc_rfront_each_record(const char *url, int (*fn)(void *ud, const char *line, size_t len),
                          void *ud, char *err, size_t errlen) {
  lc_rfront_addr a;
  redisContext *c = connect_sync(url, &a, err, errlen);
  if (!c) return -1;
  int rc = 0;
  for (long long at = 0;; at += 1000) {
    redisReply *rep = redisCommand(c, "LRANGE %srec %lld %lld", a.prefix, at, at + 999);
    if (!rep || rep->type != REDIS_REPLY_ARRAY) {
      snprintf(err, errlen, "cannot read the records of %s: %s", a.crawl,
               c->err ? c->errstr : "bad answer");
      if (rep) freeReplyObject(rep);
      rc = -1;
      break;
    }
    int stop = 0;
    for (size_t i = 0; i < rep->elements && !stop; i++)
      if (rep->element[i]->type == REDIS_REPLY_STRING)
        stop = fn(ud, rep->element[i]->str, rep->element[i]->len);
    size_t got = rep->elements;
    freeReplyObject(rep);
    if (stop) {
      rc = 1;
      break;
    }
    if (got < 1000) break;
  }
  redisFree(c);
  return rc < 0 ? -1 : 0;
}
