/* rfrontier.h: the frontier of frontier.h shared through Redis, so engines on any number of
 * machines that name the same crawl share its queue, its seen set, its counters and its
 * records (--frontier redis://HOST:PORT/DB?crawl=NAME).
 * Owns: the crawl's connection (rconn.h) and the requests this engine holds: a small local
 * buffer of requests leased ahead (at most `prefetch`), fed asynchronously, and the leases of
 * the requests handed out, renewed on a timer until their end is sent. The server's side
 * is one Redis function library (luacrawl, loaded on every connect): every step (push, pop
 * and lease, renew, retry, fail, release, ack with records, host slot, pause) is one atomic
 * function on the server, on the server's clock (TIME), so machines' clocks do not matter.
 *
 * The frontier interface stays synchronous: push answers from a local set of what this engine
 * pushed (the server drops what another engine pushed first; max_pages is counted on the
 * server and learned from its answer), pop hands out from the local buffer (asking `admit`
 * as the in-memory frontier does) and starts a refill, retry and done send their step and
 * return. When an answer changes what pop could hand out, `wake` is called (from a loop
 * callback). pending() counts, as last heard from the server, what is queued or waiting or
 * leased anywhere (other engines' leases included) plus this engine's buffer and the
 * commands not answered yet: the crawl is over for this engine when it is 0.
 *
 * Exactly once: records are committed with the request's acknowledgement in one function
 * (lc_rfront_commit), refused when the request's lease was taken over (a stall longer than
 * the lease): the records of a request are on the server once, whoever ran it, however
 * engines die. A commit whose reply was lost to a disconnect is sent again and recognized
 * (the server keeps one bit per lease token of the last 8 to 25 million leases).
 *
 * Batching: the pushes made in one turn of the loop go to the server as one call, and so do
 * the commits, just before the loop waits (pushes first); retry and done send what is batched
 * before their own step, so a request's end never reaches the server before the links its run
 * pushed. A call's fixed cost on the server is so paid once per turn, not once per URL.
 *
 * Lost leases: a lease that expires (its engine died, or stalled past lease_ms) is taken back
 * by the next pop and, when the request was running (pop tells the server what it hands out:
 * the marks ride on the turn's refill pop, or go as one lc_started), counted in the request
 * (lc_request.lost, the hash field x), so the job can give up on a page that takes every
 * engine down. A clean stop gives its leases back
 * instead (lc_frontier_release, lc_rfront_stop), uncounted. Not thread-safe: the loop's
 * thread. */
#ifndef LC_RFRONTIER_H
#define LC_RFRONTIER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "frontier.h"

typedef struct lc_rfront_opts {
  uv_loop_t *loop;
  const char *url;  /* redis://HOST[:PORT][/DB]?crawl=NAME[&lease_ms=N] */
  size_t max_pages; /* 0: unlimited; counted over the whole crawl, on the server */
  int prefetch;     /* requests leased ahead of the job's need (its concurrency), >= 1 */
  int64_t delay_ms; /* the job's delay_ms: a pop keeps a host back that long */
  int per_host;     /* the job's per_host (0: no cap): a host's leases over all engines */
  void (*wake)(void *ud); /* something arrived: pop may hand out more, or pending() changed */
  void *ud;
  /* No synchronous check (for a server's loop, which must not block): the connection loads
   * the library itself, and when it never comes up within first_give_up_ms the frontier fails
   * (failure() names Redis and its address). */
  int no_check;
  /* How long a Redis never reached is tried for before failure() says so (rconn.h); 0:
   * rconn's default, the minute a lost connection is waited for. */
  int64_t first_give_up_ms;
  /* The fingerprints of what this engine pushed, kept to answer its own duplicates at once,
   * are forgotten all at once when they reach this many (0: 1,000,000, ~16 MB): the server's
   * seen set is the crawl's, and a duplicate sent to it is dropped there. */
  size_t pushed_max;
} lc_rfront_opts;

/* The one rule for a crawl's name, wherever one is given (?crawl=NAME of a frontier URL, the
 * "crawl" of serve's POST /jobs, a job's DATA/jobs/ID/crawl): letters, digits, _ . -; 1 to 100
 * characters. 0, or -1 with one line in err that states the rule. */
int lc_rfront_check_crawl_name(const char *name, char *err, size_t errlen);

/* The parts of a frontier URL (its crawl name checked by lc_rfront_check_crawl_name). 0, or -1
 * with one line in err. */
typedef struct lc_rfront_addr {
  char host[256];
  int port, db;
  char crawl[128];
  int64_t lease_ms;
  char prefix[160]; /* "lc:{NAME}:": every key of the crawl starts so */
} lc_rfront_addr;
int lc_rfront_parse(const char *url, lc_rfront_addr *out, char *err, size_t errlen);

/* Unless o->no_check: check the server synchronously (connect, SELECT, FUNCTION LOAD; before the
 * loop runs, so a crawl whose Redis is unreachable never starts) and open the frontier on the loop.
 * NULL with one line in err. Released by lc_frontier_destroy (pending callbacks run, cancelled). */
lc_frontier *lc_rfront_open(const lc_rfront_opts *o, char *err, size_t errlen);

/* Why the crawl cannot go on, or NULL: Redis unreachable for a minute (3 s when it was never
 * reached and first_give_up_ms says so), or a step the server refused (an error answer, e.g.
 * a write at maxmemory) or answered in a shape this build's functions never send. */
const char *lc_rfront_failure(const lc_frontier *f);

/* Acknowledge a handed-out request and append its records (n JSON lines) in one atomic step
 * on the server; request_id 0 appends records of no request. `done` is called once: 1
 * committed, 0 refused (the lease had passed to another engine: nothing was written), -1
 * not committed: cancelled (the frontier was destroyed before the answer) or the server
 * refused the step (failure() then says why). Returns 0, or
 * LC_FRONTIER_ENOENT when the id is not handed out (done is not called then). */
typedef void (*lc_rfront_commit_fn)(void *ud, int result);
int lc_rfront_commit(lc_frontier *f, uint64_t request_id, const char *const *lines,
                     const size_t *lens, size_t n, lc_rfront_commit_fn done, void *ud);

/* Politeness across engines: take the host's slot on the server. `done` gets 0 (go now: the
 * next slot is now + delay_ms), the ms to wait, or -1 when cancelled. 0 or -1 (no memory). */
typedef void (*lc_rfront_slot_fn)(void *ud, int64_t wait_ms);
int lc_rfront_slot(lc_frontier *f, const char *host, int64_t delay_ms, lc_rfront_slot_fn done,
                   void *ud);
/* A 429/503 answer: no engine sends to the host for ms. */
void lc_rfront_pause(lc_frontier *f, const char *host, int64_t ms);

/* A clean stop (an interrupt, a cancelled job): pop no more, and give every request of the
 * buffer back to the server untried (one lc_release; a pop still on its way gives back what
 * it brings), their counts unchanged, so they are not counted as lost leases. Requests handed
 * out are given back with lc_frontier_release. Before destroy, run the loop until
 * lc_rfront_outstanding is 0 (bounded: a server that is away never answers, and those leases
 * then expire and count as lost). Idempotent. */
void lc_rfront_stop(lc_frontier *f);

/* Commands given to the server and not answered yet (a test runs the loop until 0; a job
 * stopping waits for it, bounded). */
size_t lc_rfront_outstanding(const lc_frontier *f);

/* Counters of this frontier: leases it lost, commits refused, reconnects, pushes the server
 * accepted, requests popped; pop and renewal calls sent, and the leases those renewals named. */
typedef struct lc_rfront_counts {
  uint64_t refused, lost, reconnects, pushed, popped;
  uint64_t pop_calls, renew_calls, renewed;
  uint64_t push_calls, ack_calls; /* batched calls sent: several pushes or commits each */
  uint64_t started_calls;         /* lc_started calls: the requests a turn handed out */
} lc_rfront_counts;
void lc_rfront_get_counts(const lc_frontier *f, lc_rfront_counts *out);

/* The read-only tools (luacrawl status / export), synchronous. */
typedef struct lc_rfront_status {
  int64_t queued, delayed, leased, done, failed, records, accepted;
  int64_t started_ms, last_activity_ms, reclaimed, refused;
} lc_rfront_status;
int lc_rfront_get_status(const char *url, lc_rfront_status *out, char *err, size_t errlen);
/* Every committed record in commit order; fn returns nonzero to stop. 0, or -1 with err. */
int lc_rfront_each_record(const char *url, int (*fn)(void *ud, const char *line, size_t len),
                          void *ud, char *err, size_t errlen);

#endif
