/* dist.c: a job on the shared frontier (--frontier redis://...; engine/dist/rfrontier.h).
 * Owns: opening it with the job's output, the acknowledgement of a request with its records
 * (held by the request as with --state, committed on the server in one step, written to this
 * engine's own output only once the server took them), records of no request, and the host
 * slot taken on the server when a request goes out. */
#include <errno.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "job_int.h"
#include "log.h"
#include "rfrontier.h"

/* Something arrived from the server: the crawl may hand out more, may be over, or cannot go
 * on. Called from a loop callback. */
static void dist_wake(void *ud) {
  lc_job *j = ud;
  const char *why = lc_rfront_failure(j->frontier);
  if (why && !j->failed) {
    lc_job_fail(j, why);
    return;
  }
  lc_job_pump(j);
}

int lc_job_dist_open(lc_job *j, char *err, size_t errlen) {
  lc_rfront_opts ro = {.loop = j->sh->loop,
                       .url = j->opts.frontier,
                       .max_pages = j->cfg.max_pages > 0 ? (size_t)j->cfg.max_pages : 0,
                       .prefetch = j->cfg.concurrency,
                       .delay_ms = j->cfg.delay_ms,
                       .per_host = j->cfg.per_host,
                       .wake = dist_wake,
                       .ud = j,
                       .no_check = j->opts.frontier_async,
                       .first_give_up_ms = j->opts.frontier_first_give_up_ms};
  char why[512];
  j->frontier = lc_rfront_open(&ro, why, sizeof why);
  if (!j->frontier) {
    snprintf(err, errlen, "--frontier: %s", why);
    return -1;
  }
  j->dist = 1;
  char *oerr = NULL;
  j->sink = lc_sink_jsonl_open(j->opts.output, &oerr);
  if (!j->sink) {
    snprintf(err, errlen, "cannot open output %s: %s", j->opts.output ? j->opts.output : "-",
             oerr ? oerr : "out of memory");
    free(oerr);
    return -1;
  }
  return 0;
}

typedef struct dist_commit {
  lc_job *j;
  int request; /* a request's acknowledgement (else records of no request) */
  char *url;
  char **lines;
  size_t *lens, n;
} dist_commit;

static void commit_free(dist_commit *c) {
  for (size_t i = 0; i < c->n; i++) free(c->lines[i]);
  free(c->lines);
  free(c->lens);
  free(c->url);
  free(c);
}

/* The server's answer to a commit. On a cancel (the job is being freed) nothing of the job is
 * touched. */
static void commit_done(void *ud, int result) {
  dist_commit *c = ud;
  lc_job *j = c->j;
  if (result == 1) {
    if (c->request) j->n.pages_ok++;
    for (size_t i = 0; i < c->n && !j->output_err; i++) {
      int rc = lc_sink_write(j->sink, c->lines[i], c->lens[i]);
      if (rc == 0) {
        j->n.emitted++;
      } else if (rc == -ENOBUFS) {
        lc_warn("the output backlog is full: a record of %s is on the server only",
                c->url ? c->url : "the job");
      } else {
        lc_job_output_failed(j, rc);
      }
    }
    lc_job_output_kick(j);
  } else if (result == 0) {
    if (c->request)
      lc_warn("late acknowledgement of %s refused: its lease had passed to another engine, which "
              "does it (nothing written)",
              c->url);
    else
      lc_error("the server refused records of no request");
  }
  if (result >= 0) lc_job_pump(j); /* what pending() counts changed: maybe the end */
  commit_free(c);
}

static int commit(lc_job *j, uint64_t id, const char *url, char **lines, size_t *lens, size_t n) {
  dist_commit *c = calloc(1, sizeof *c);
  if (!c || (url && !(c->url = strdup(url)))) {
    free(c);
    for (size_t i = 0; i < n; i++) free(lines[i]);
    free(lines);
    free(lens);
    return -ENOMEM;
  }
  c->j = j;
  c->request = id != 0;
  c->lines = lines;
  c->lens = lens;
  c->n = n;
  int rc = lc_rfront_commit(j->frontier, id, (const char *const *)lines, lens, n, commit_done, c);
  if (rc != 0) commit_free(c);
  return rc;
}

int lc_job_dist_commit(lc_job *j, const lc_request *req, char **lines, size_t *lens, size_t n) {
  return commit(j, req->id, req->url, lines, lens, n);
}

int lc_job_dist_commit_record(lc_job *j, const char *line, size_t len) {
  char **lines = malloc(sizeof *lines);
  size_t *lens = malloc(sizeof *lens);
  char *copy = malloc(len + 1);
  if (!lines || !lens || !copy) {
    free(lines);
    free(lens);
    free(copy);
    return -ENOMEM;
  }
  memcpy(copy, line, len);
  copy[len] = 0;
  lines[0] = copy;
  lens[0] = len;
  return commit(j, 0, NULL, lines, lens, 1);
}

/* ---- the host slot, on the server ---------------------------------------------------------- */

typedef struct slot_wait {
  lc_task *t; /* NULL once the task was stopped */
} slot_wait;

static void slot_cancel(lc_task *t, void *data) {
  (void)t;
  ((slot_wait *)data)->t = NULL; /* the answer frees it */
}

static void slot_done(void *ud, int64_t wait) {
  slot_wait *w = ud;
  if (w->t) {
    lua_pushinteger(lc_task_thread(w->t), wait < 0 ? 1000 : wait);
    lc_task_op_complete(w->t, 1);
  }
  free(w);
}

int lc_job_dist_host_slot(lua_State *L, lc_job *j, const char *url) {
  char name[256];
  int64_t delay = 0;
  int64_t wait = lc_job_host_local(j, url, name, sizeof name, &delay);
  lc_task *t = wait == 0 ? lc_task_current(L) : NULL;
  if (!t) { /* this engine's own pause, no host, or outside a task: decided here */
    lua_pushinteger(L, wait > 0 ? wait : wait < 0 ? 0 : lc_job_host_slot(j, url));
    return 1;
  }
  slot_wait *w = malloc(sizeof *w);
  if (!w) return luaL_error(L, "out of memory");
  w->t = t;
  lc_task_op_begin(t, slot_cancel, w);
  if (lc_rfront_slot(j->frontier, name, delay, slot_done, w) != 0) {
    lc_task_op_abort(t);
    free(w);
    return luaL_error(L, "out of memory");
  }
  return lc_task_op_await(L, t);
}
