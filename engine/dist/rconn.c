/* rconn.c: one asynchronous Redis connection on the loop, reconnected with backoff (rconn.h).
 *
 * Commands live in two FIFOs of our own: `waiting` (not sent on the current connection) and
 * `sent` (written to it, reply not read). hiredis answers in order, so a reply is the head of
 * `sent`. When the connection drops, hiredis runs the callbacks of what it had with a NULL
 * reply (ignored here) and then our disconnect callback, which puts all of `sent` back at the
 * head of `waiting`, in order; the next connection sends them again after its setup. A server
 * still loading its data answers -LOADING: such a command goes back too, and the connection
 * is dropped and made again after the backoff. */
#include "rconn.h"

#include <hiredis/async.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000
#define GIVE_UP_MS 60000
/* How long one connection attempt (TCP connect and the setup commands) may take. */
#define ATTEMPT_MS 3000

/* The event adapter: hiredis's own libuv adapter (hiredis/adapters/libuv.h, 0.14) returns
 * from its poll callback when libuv reports an error, and libuv reports a refused or reset
 * socket (POLLERR) exactly so, after stopping the handle: a connect to a server that is not
 * back yet then never completes nor fails, and the connection hangs for good. This one hands
 * an error to hiredis as readiness, so hiredis reads the socket's error (SO_ERROR, or read's)
 * and fails the attempt or the connection through its own callbacks. */
typedef struct uvev {
  redisAsyncContext *ac; /* NULL once hiredis has cleaned up */
  uv_poll_t poll;
  int events;
} uvev;

static void uvev_cb(uv_poll_t *h, int status, int events) {
  uvev *e = h->data;
  if (status < 0) events = UV_READABLE | UV_WRITABLE; /* hiredis finds the error */
  if (e->ac && (events & UV_READABLE)) redisAsyncHandleRead(e->ac);
  if (e->ac && (events & UV_WRITABLE)) redisAsyncHandleWrite(e->ac);
}

static void uvev_set(uvev *e, int events) {
  e->events = events;
  if (events)
    uv_poll_start(&e->poll, events, uvev_cb);
  else
    uv_poll_stop(&e->poll);
}

static void uvev_add_read(void *p) { uvev_set(p, ((uvev *)p)->events | UV_READABLE); }
static void uvev_del_read(void *p) { uvev_set(p, ((uvev *)p)->events & ~UV_READABLE); }
static void uvev_add_write(void *p) { uvev_set(p, ((uvev *)p)->events | UV_WRITABLE); }
static void uvev_del_write(void *p) { uvev_set(p, ((uvev *)p)->events & ~UV_WRITABLE); }
static void uvev_closed(uv_handle_t *h) { free(h->data); }

static void uvev_cleanup(void *p) {
  uvev *e = p;
  e->ac = NULL;
  uv_close((uv_handle_t *)&e->poll, uvev_closed);
}

static int uvev_attach(redisAsyncContext *ac, uv_loop_t *loop) {
  uvev *e = calloc(1, sizeof *e);
  if (!e) return -1;
  if (uv_poll_init(loop, &e->poll, ac->c.fd) != 0) {
    free(e);
    return -1;
  }
  e->ac = ac;
  e->poll.data = e;
  ac->ev.data = e;
  ac->ev.addRead = uvev_add_read;
  ac->ev.delRead = uvev_del_read;
  ac->ev.addWrite = uvev_add_write;
  ac->ev.delWrite = uvev_del_write;
  ac->ev.cleanup = uvev_cleanup;
  return 0;
}

typedef struct op {
  struct op *next;
  lc_rconn_reply_fn fn;
  void *ud;
  int argc;
  char **argv;
  size_t *lens;
} op;

typedef struct fifo {
  op *head, *tail;
  size_t n;
} fifo;

struct lc_rconn {
  uv_loop_t *loop;
  char *host;
  int port, db;
  char *library;
  int64_t give_up_ms, first_give_up_ms;
  uint64_t born; /* loop ms of lc_rconn_new: first_give_up_ms counts from it */
  void (*down)(void *, const char *);
  void *ud;

  redisAsyncContext *ac; /* NULL while disconnected */
  int ready;             /* connected and set up: commands are sent */
  int dropping;          /* redisAsyncDisconnect was asked (a -LOADING answer) */
  int closing;           /* lc_rconn_free runs: callbacks of hiredis are ignored */
  fifo waiting, sent, back;
  uv_timer_t *timer;   /* the reconnect backoff; malloc'ed, freed in its close callback */
  uv_timer_t *attempt; /* bounds one attempt (ATTEMPT_MS); malloc'ed the same way */
  int64_t backoff_ms;
  uint64_t down_since; /* loop ms when the connection was lost, 0 when up */
  int down_told, ever_up;
  uint64_t reconnects;
};

static void fifo_push(fifo *f, op *o) {
  o->next = NULL;
  if (f->tail)
    f->tail->next = o;
  else
    f->head = o;
  f->tail = o;
  f->n++;
}

static op *fifo_shift(fifo *f) {
  op *o = f->head;
  if (!o) return NULL;
  f->head = o->next;
  if (!f->head) f->tail = NULL;
  f->n--;
  o->next = NULL;
  return o;
}

/* Put all of `front` before `f`, emptying front. */
static void fifo_prepend(fifo *f, fifo *front) {
  if (!front->head) return;
  front->tail->next = f->head;
  if (!f->tail) f->tail = front->tail;
  f->head = front->head;
  f->n += front->n;
  front->head = front->tail = NULL;
  front->n = 0;
}

static void op_free(op *o) {
  for (int i = 0; i < o->argc; i++) free(o->argv[i]);
  free(o->argv);
  free(o->lens);
  free(o);
}

static void connect_now(lc_rconn *c);

static void timer_cb(uv_timer_t *t) { connect_now(t->data); }

/* The connection is gone (or never came): try again after the backoff, and say so once when
 * the server stays away past give_up_ms. */
static void schedule_reconnect(lc_rconn *c) {
  c->ready = 0;
  c->ac = NULL;
  c->dropping = 0;
  if (c->closing) return;
  uv_timer_stop(c->attempt);
  uint64_t now = uv_now(c->loop);
  if (!c->down_since) c->down_since = now ? now : 1;
  int first = !c->ever_up && c->first_give_up_ms > 0;
  int64_t limit = first ? c->first_give_up_ms : c->give_up_ms;
  if (!c->down_told && (int64_t)(now - (first ? c->born : c->down_since)) >= limit) {
    c->down_told = 1;
    char why[300];
    if (c->ever_up)
      snprintf(why, sizeof why, "Redis at %s:%d unreachable for %lld s", c->host, c->port,
               (long long)(limit / 1000));
    else
      snprintf(why, sizeof why, "cannot connect to Redis at %s:%d (tried for %lld s)", c->host,
               c->port, (long long)((limit + 999) / 1000));
    if (c->down) c->down(c->ud, why);
  }
  uv_timer_start(c->timer, timer_cb, (uint64_t)c->backoff_ms, 0);
  c->backoff_ms *= 2;
  if (c->backoff_ms > BACKOFF_MAX_MS) c->backoff_ms = BACKOFF_MAX_MS;
}

static int is_loading(const redisReply *r) {
  return r && r->type == REDIS_REPLY_ERROR && r->str &&
         (strncmp(r->str, "LOADING", 7) == 0 || strncmp(r->str, "BUSY", 4) == 0);
}

/* Drop the connection to make it again (the server is loading): what is sent comes back. */
static void drop(lc_rconn *c) {
  if (c->dropping || !c->ac) return;
  c->dropping = 1;
  c->ready = 0;
  redisAsyncDisconnect(c->ac);
}

static void reply_cb(redisAsyncContext *ac, void *r, void *priv) {
  lc_rconn *c = priv;
  (void)ac;
  if (c->closing || !r) return; /* the connection is going: the disconnect callback requeues */
  op *o = fifo_shift(&c->sent);
  if (!o) {
    lc_error("engine bug: a Redis reply with no command waiting for it");
    return;
  }
  if (is_loading(r)) {
    fifo_push(&c->back, o);
    drop(c);
    return;
  }
  o->fn(o->ud, r, LC_RCONN_OK);
  op_free(o);
}

static void send_op(lc_rconn *c, op *o) {
  if (redisAsyncCommandArgv(c->ac, reply_cb, c, o->argc, (const char **)o->argv, o->lens) !=
      REDIS_OK) {
    fifo_push(&c->back, o); /* the context refuses (it is disconnecting): sent again later */
    drop(c);
    return;
  }
  fifo_push(&c->sent, o);
}

static void flush_waiting(lc_rconn *c) {
  while (c->ready && c->waiting.head) send_op(c, fifo_shift(&c->waiting));
}

/* The setup's last reply (FUNCTION LOAD, or SELECT without a library): the connection is up. */
/* Whether a setup reply ends the attempt: no reply, or an error (the connection is dropped). */
static int setup_failed(lc_rconn *c, const redisReply *rep) {
  if (c->closing || !rep) return 1;
  if (rep->type != REDIS_REPLY_ERROR) return 0;
  if (!is_loading(rep)) lc_warn("Redis at %s:%d refused the setup: %s", c->host, c->port, rep->str);
  drop(c);
  return 1;
}

static void setup_cb(redisAsyncContext *ac, void *r, void *priv) {
  lc_rconn *c = priv;
  (void)ac;
  if (setup_failed(c, r) || c->ready) return;
  c->ready = 1;
  if (c->down_since && c->ever_up) {
    c->reconnects++;
    lc_info("reconnected to Redis at %s:%d after %llu ms", c->host, c->port,
            (unsigned long long)(uv_now(c->loop) - c->down_since));
  }
  c->ever_up = 1;
  c->down_since = 0;
  c->down_told = 0;
  c->backoff_ms = BACKOFF_MIN_MS;
  uv_timer_stop(c->attempt);
  flush_waiting(c);
}

/* An intermediate setup reply (SELECT before FUNCTION LOAD): only errors matter. */
static void setup_step_cb(redisAsyncContext *ac, void *r, void *priv) {
  lc_rconn *c = priv;
  (void)ac;
  setup_failed(c, r);
}

static void on_connect(const redisAsyncContext *cac, int status) {
  lc_rconn *c = cac->data;
  if (c->closing) return;
  if (status != REDIS_OK) { /* hiredis frees the context after this call */
    lc_debug("cannot connect to Redis at %s:%d: %s", c->host, c->port, cac->errstr);
    schedule_reconnect(c);
    return;
  }
  redisAsyncContext *ac = (redisAsyncContext *)cac;
  char db[16];
  snprintf(db, sizeof db, "%d", c->db);
  const char *sel[2] = {"SELECT", db};
  const char *fl[4] = {"FUNCTION", "LOAD", "REPLACE", c->library};
  if (c->library) {
    redisAsyncCommandArgv(ac, setup_step_cb, c, 2, sel, NULL);
    redisAsyncCommandArgv(ac, setup_cb, c, 4, fl, NULL);
  } else {
    redisAsyncCommandArgv(ac, setup_cb, c, 2, sel, NULL);
  }
}

static void on_disconnect(const redisAsyncContext *cac, int status) {
  lc_rconn *c = cac->data;
  (void)status;
  if (c->closing) return;
  if (!c->dropping)
    lc_warn("lost the connection to Redis at %s:%d (%s); reconnecting", c->host, c->port,
            cac->err ? cac->errstr : "closed by the server");
  /* What was sent and not answered goes first, after what came back -LOADING. */
  fifo_prepend(&c->waiting, &c->sent);
  fifo_prepend(&c->waiting, &c->back);
  schedule_reconnect(c); /* hiredis frees the context after this call */
}

/* An attempt that neither succeeded nor failed in ATTEMPT_MS (a host that drops the SYN, a
 * server that accepts and never answers the setup) is given up and made again. */
static void attempt_cb(uv_timer_t *t) {
  lc_rconn *c = t->data;
  if (c->closing || c->ready || !c->ac) return;
  lc_debug("connecting to Redis at %s:%d took over %d ms; trying again", c->host, c->port,
           ATTEMPT_MS);
  redisAsyncContext *ac = c->ac;
  int connected = (ac->c.flags & REDIS_CONNECTED) != 0;
  c->dropping = 1; /* no warning: this is not a lost connection */
  redisAsyncFree(ac); /* a connected context calls on_disconnect, which reschedules */
  if (!connected) {
    fifo_prepend(&c->waiting, &c->back);
    schedule_reconnect(c);
  }
}

static void connect_now(lc_rconn *c) {
  if (c->closing || c->ac) return;
  redisAsyncContext *ac = redisAsyncConnect(c->host, c->port);
  if (!ac || ac->err) {
    lc_debug("cannot connect to Redis at %s:%d: %s", c->host, c->port,
             ac ? ac->errstr : "out of memory");
    if (ac) redisAsyncFree(ac);
    schedule_reconnect(c);
    return;
  }
  ac->data = c;
  if (uvev_attach(ac, c->loop) != 0) {
    redisAsyncFree(ac);
    schedule_reconnect(c);
    return;
  }
  redisEnableKeepAlive(&ac->c); /* a peer gone without a word is found within minutes */
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  c->ac = ac;
  uv_timer_start(c->attempt, attempt_cb, ATTEMPT_MS, 0);
}

static void timer_free(uv_handle_t *h) { free(h); }

lc_rconn *lc_rconn_new(const lc_rconn_opts *o) {
  lc_rconn *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->loop = o->loop;
  c->host = strdup(o->host);
  c->library = o->library ? strdup(o->library) : NULL;
  c->timer = malloc(sizeof *c->timer);
  c->attempt = malloc(sizeof *c->attempt);
  if (!c->host || (o->library && !c->library) || !c->timer || !c->attempt) {
    free(c->host);
    free(c->library);
    free(c->timer);
    free(c->attempt);
    free(c);
    return NULL;
  }
  c->port = o->port;
  c->db = o->db;
  c->give_up_ms = o->give_up_ms > 0 ? o->give_up_ms : GIVE_UP_MS;
  c->first_give_up_ms = o->first_give_up_ms;
  c->born = uv_now(c->loop);
  c->down = o->down;
  c->ud = o->ud;
  c->backoff_ms = BACKOFF_MIN_MS;
  uv_timer_init(c->loop, c->timer);
  c->timer->data = c;
  uv_timer_init(c->loop, c->attempt);
  c->attempt->data = c;
  connect_now(c);
  return c;
}

static void cancel_all(fifo *f) {
  op *o;
  while ((o = fifo_shift(f))) {
    o->fn(o->ud, NULL, LC_RCONN_CANCELLED);
    op_free(o);
  }
}

void lc_rconn_free(lc_rconn *c) {
  if (!c) return;
  c->closing = 1;
  if (c->ac) redisAsyncFree(c->ac); /* its callbacks see `closing`; the adapter closes its poll */
  c->ac = NULL;
  cancel_all(&c->back);
  cancel_all(&c->sent);
  cancel_all(&c->waiting);
  uv_close((uv_handle_t *)c->timer, timer_free);
  uv_close((uv_handle_t *)c->attempt, timer_free);
  free(c->host);
  free(c->library);
  free(c);
}

int lc_rconn_cmd(lc_rconn *c, lc_rconn_reply_fn fn, void *ud, int argc, const char *const *argv,
                 const size_t *lens) {
  op *o = calloc(1, sizeof *o);
  if (!o) return -1;
  o->fn = fn;
  o->ud = ud;
  o->argv = calloc((size_t)argc, sizeof *o->argv);
  o->lens = calloc((size_t)argc, sizeof *o->lens);
  if (!o->argv || !o->lens) {
    op_free(o);
    return -1;
  }
  for (int i = 0; i < argc; i++) {
    size_t n = lens ? lens[i] : strlen(argv[i]);
    o->argv[i] = malloc(n + 1);
    if (!o->argv[i]) {
      op_free(o);
      return -1;
    }
    o->argc = i + 1;
    memcpy(o->argv[i], argv[i], n);
    o->argv[i][n] = 0;
    o->lens[i] = n;
  }
  if (c->ready && !c->waiting.head)
    send_op(c, o);
  else
    fifo_push(&c->waiting, o);
  return 0;
}

size_t lc_rconn_outstanding(const lc_rconn *c) {
  return c->waiting.n + c->sent.n + c->back.n;
}

int lc_rconn_connected(const lc_rconn *c) { return c->ready; }
uint64_t lc_rconn_reconnects(const lc_rconn *c) { return c->reconnects; }

int lc_rconn_check(const char *host, int port, int db, const char *library, char *err,
                   size_t errlen) {
  struct timeval tv = {2, 0};
  redisContext *rc = redisConnectWithTimeout(host, port, tv);
  if (!rc || rc->err) {
    snprintf(err, errlen, "cannot connect to Redis at %s:%d: %s", host, port,
             rc ? rc->errstr : "out of memory");
    if (rc) redisFree(rc);
    return -1;
  }
  redisReply *r = redisCommand(rc, "SELECT %d", db);
  int ok = r && r->type != REDIS_REPLY_ERROR;
  if (!ok)
    snprintf(err, errlen, "Redis at %s:%d: SELECT %d: %s", host, port, db,
             r && r->str ? r->str : rc->errstr);
  if (r) freeReplyObject(r);
  if (ok && library) {
    r = redisCommand(rc, "FUNCTION LOAD REPLACE %s", library);
    ok = r && r->type != REDIS_REPLY_ERROR;
    if (!ok)
      snprintf(err, errlen, "Redis at %s:%d cannot load luacrawl's functions (Redis 7 needed): %s",
               host, port, r && r->str ? r->str : rc->errstr);
    if (r) freeReplyObject(r);
  }
  redisFree(rc);
  return ok ? 0 : -1;
}
