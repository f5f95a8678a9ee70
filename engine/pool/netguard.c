/* netguard.c: the SOCKS5 guard of a sandboxed job's connections (see netguard.h).
 *
 * One connection's life: GREET (the client's methods; "no authentication" is the one we take)
 * -> REQUEST (CONNECT host:port) -> the host rules on the name, then on every address of its
 * resolution -> CONNECTING to the checked address (the next one on failure) -> RELAY (bytes
 * both ways, a side stops reading while the other has more than NG_HIGH_WATER queued) ->
 * closed. Every exit goes through conn_close; the connection is freed when its last handle
 * and request have called back. */
#include "netguard.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "log.h"

#define NG_READ_SIZE 65536
#define NG_HIGH_WATER (1u << 20)  /* queued bytes to one side before the other stops reading */
#define NG_LOW_WATER (256u << 10) /* ... and starts again */
#define NG_HANDSHAKE_MAX 1024     /* a greeting (<= 257 bytes) and a request (<= 262 bytes) */
#define NG_REFUSALS 16

/* SOCKS5 reply codes (RFC 1928 section 6) */
enum {
  REP_OK = 0,
  REP_FAILURE = 1,
  REP_NOT_ALLOWED = 2,
  REP_HOST_UNREACHABLE = 4,
  REP_CONN_REFUSED = 5,
  REP_CMD_UNSUPPORTED = 7,
  REP_ATYP_UNSUPPORTED = 8,
};

/* C_DRAIN: nothing more is read; closed once what is queued to the client is written. */
enum { C_GREET, C_REQUEST, C_RESOLVING, C_CONNECTING, C_RELAY, C_DRAIN, C_CLOSING };

typedef struct ng_conn ng_conn;

struct lc_netguard {
  uv_loop_t *loop;
  uv_tcp_t listener;
  int port;
  char url[40];
  int allow_private;
  char **allow_hosts; /* NULL-terminated copy, or NULL */
  char *tag;
  int closing;
  int listener_open; /* its close callback has not run yet */
  ng_conn *conns;
  lc_netguard_stats stats;
  struct {
    char host[256];
    char why[160];
  } refusals[NG_REFUSALS];
  int next_refusal;
};

struct ng_conn {
  lc_netguard *g;
  ng_conn *prev, *next;
  uv_tcp_t client;
  uv_tcp_t *up; /* the upstream socket of the current attempt, or NULL */
  int state;
  int pending; /* handles to close and requests to call back before the free */
  unsigned char hs[NG_HANDSHAKE_MAX];
  size_t hs_n;
  char host[256];
  int port;
  uv_getaddrinfo_t gai;
  struct addrinfo *addrs; /* owned (uv_freeaddrinfo) */
  struct addrinfo *next_addr;
  struct sockaddr_storage direct; /* the address of a literal or of localhost */
  int have_direct;
  int eof_client, eof_up;
  int client_paused, up_paused; /* reading stopped by back-pressure */
};

typedef struct {
  uv_write_t req;
  ng_conn *c;
  char *base;
  int to_client;
} ng_write;

static void conn_close(ng_conn *c);
static void start_connect(ng_conn *c);

/* ---------------------------------------------------------------- the decision */

static int host_listed(const char *const *list, const char *host) {
  for (; *list; list++) {
    const char *e = *list;
    if (e[0] == '*' && e[1] == '.') {
      size_t hn = strlen(host), sn = strlen(e + 1); /* ".a.com" */
      if (strcasecmp(host, e + 2) == 0 || (hn > sn && strcasecmp(host + hn - sn, e + 1) == 0))
        return 1;
    } else if (strcasecmp(host, e) == 0) {
      return 1;
    }
  }
  return 0;
}

static int class_refused(const lc_netguard_opts *o, int cls) {
  switch (cls) {
    case LC_ADDR_PUBLIC:
    case LC_ADDR_NAME:
      return 0;
    case LC_ADDR_LOOPBACK:
    case LC_ADDR_PRIVATE:
      return !o->allow_private;
    default:
      return 1;
  }
}

static const char *class_why(int cls) {
  return cls == LC_ADDR_LOOPBACK || cls == LC_ADDR_PRIVATE ? "without --allow-private" : "always";
}

int lc_netguard_decide(const lc_netguard_opts *o, const char *host, const struct addrinfo *addrs,
                       char *why, size_t whylen) {
  if (o->allow_hosts && !host_listed(o->allow_hosts, host)) {
    snprintf(why, whylen, "%s is not on the job's allowed_hosts", host);
    return -1;
  }
  int cls = lc_addr_class(host);
  if (class_refused(o, cls)) {
    snprintf(why, whylen, "%s (refused %s)", lc_addr_class_name(cls), class_why(cls));
    return -1;
  }
  for (const struct addrinfo *a = addrs; a; a = a->ai_next) {
    cls = lc_addr_class_sockaddr(a->ai_addr);
    if (!class_refused(o, cls)) continue;
    char ip[INET6_ADDRSTRLEN] = "?";
    if (a->ai_family == AF_INET)
      inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)a->ai_addr)->sin_addr, ip, sizeof ip);
    else if (a->ai_family == AF_INET6)
      inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)a->ai_addr)->sin6_addr, ip, sizeof ip);
    snprintf(why, whylen, "%s resolves to %s: %s (refused %s)", host, ip, lc_addr_class_name(cls),
             class_why(cls));
    return -1;
  }
  return 0;
}

static lc_netguard_opts opts_of(const lc_netguard *g) {
  return (lc_netguard_opts){.allow_private = g->allow_private,
                            .allow_hosts = (const char *const *)g->allow_hosts,
                            .log_tag = g->tag};
}

const char *lc_netguard_refusal(const lc_netguard *g, const char *host) {
  if (!g || !host) return NULL;
  for (int k = 1; k <= NG_REFUSALS; k++) { /* newest first */
    int i = (g->next_refusal - k + NG_REFUSALS) % NG_REFUSALS;
    if (g->refusals[i].host[0] && strcasecmp(g->refusals[i].host, host) == 0)
      return g->refusals[i].why;
  }
  return NULL;
}

static void note_refusal(lc_netguard *g, const char *host, int port, const char *why) {
  g->stats.refused++;
  const char *prev = lc_netguard_refusal(g, host);
  int seen = prev && strcmp(prev, why) == 0;
  if (seen)
    lc_debug("%sconnection to %s:%d refused: %s", g->tag, host, port, why);
  else
    lc_info("%sconnection to %s:%d refused: %s", g->tag, host, port, why);
  int newest = (g->next_refusal + NG_REFUSALS - 1) % NG_REFUSALS;
  if (seen && strcasecmp(g->refusals[newest].host, host) == 0) return; /* already the newest */
  int i = g->next_refusal;
  snprintf(g->refusals[i].host, sizeof g->refusals[i].host, "%s", host);
  snprintf(g->refusals[i].why, sizeof g->refusals[i].why, "%s", why);
  g->next_refusal = (i + 1) % NG_REFUSALS;
}

const char *lc_netguard_last_refusal(const lc_netguard *g, const char **host) {
  if (!g || !g->stats.refused) return NULL;
  int i = (g->next_refusal + NG_REFUSALS - 1) % NG_REFUSALS;
  if (host) *host = g->refusals[i].host;
  return g->refusals[i].why;
}

/* ---------------------------------------------------------------- connection plumbing */

static void guard_maybe_free(lc_netguard *g) {
  if (!g->closing || g->listener_open || g->conns) return;
  if (g->allow_hosts)
    for (char **h = g->allow_hosts; *h; h++) free(*h);
  free(g->allow_hosts);
  free(g->tag);
  free(g);
}

static void conn_unpend(ng_conn *c) {
  if (--c->pending > 0) return;
  lc_netguard *g = c->g;
  if (c->prev)
    c->prev->next = c->next;
  else
    g->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  g->stats.open--;
  if (c->addrs) uv_freeaddrinfo(c->addrs);
  free(c);
  guard_maybe_free(g);
}

static void handle_closed(uv_handle_t *h) {
  ng_conn *c = h->data;
  if (h != (uv_handle_t *)&c->client) free(h); /* an upstream socket */
  conn_unpend(c);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)h;
  (void)hint;
  buf->base = malloc(NG_READ_SIZE);
  buf->len = buf->base ? NG_READ_SIZE : 0;
}

static void client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void up_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static size_t queued(const ng_conn *c) {
  return uv_stream_get_write_queue_size((const uv_stream_t *)&c->client) +
         (c->up ? uv_stream_get_write_queue_size((const uv_stream_t *)c->up) : 0);
}

static void write_done(uv_write_t *req, int status) {
  ng_write *w = (ng_write *)req;
  ng_conn *c = w->c;
  int to_client = w->to_client;
  free(w->base);
  free(w);
  if (c->state == C_CLOSING) return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  if (c->state == C_DRAIN) {
    if (queued(c) == 0) conn_close(c);
    return;
  }
  /* The side that feeds this one may read again once the queue has drained enough. */
  uv_stream_t *dst = to_client ? (uv_stream_t *)&c->client : (uv_stream_t *)c->up;
  if (!dst || uv_stream_get_write_queue_size(dst) > NG_LOW_WATER) return;
  if (to_client && c->up_paused && c->up && !c->eof_up) {
    c->up_paused = 0;
    if (uv_read_start((uv_stream_t *)c->up, alloc_cb, up_read) != 0) conn_close(c);
  } else if (!to_client && c->client_paused && !c->eof_client) {
    c->client_paused = 0;
    if (uv_read_start((uv_stream_t *)&c->client, alloc_cb, client_read) != 0) conn_close(c);
  }
}

/* Queue `n` bytes of `base` (taken over) to one side. 0, or -1 (the connection is closed). */
static int send_to(ng_conn *c, int to_client, char *base, size_t n) {
  uv_stream_t *dst = to_client ? (uv_stream_t *)&c->client : (uv_stream_t *)c->up;
  ng_write *w = malloc(sizeof *w);
  if (!w) {
    free(base);
    conn_close(c);
    return -1;
  }
  w->c = c;
  w->base = base;
  w->to_client = to_client;
  uv_buf_t b = uv_buf_init(base, (unsigned)n);
  if (uv_write(&w->req, dst, &b, 1, write_done) != 0) {
    free(base);
    free(w);
    conn_close(c);
    return -1;
  }
  c->g->stats.bytes += n;
  if (uv_stream_get_write_queue_size(dst) > NG_HIGH_WATER) {
    /* Back-pressure: the side feeding dst stops until it drains (write_done). */
    if (to_client && c->up && !c->up_paused) {
      c->up_paused = 1;
      uv_read_stop((uv_stream_t *)c->up);
    } else if (!to_client && !c->client_paused) {
      c->client_paused = 1;
      uv_read_stop((uv_stream_t *)&c->client);
    }
  }
  return 0;
}

static void reply(ng_conn *c, int code) {
  unsigned char r[10] = {5, (unsigned char)code, 0, 1, 0, 0, 0, 0, 0, 0};
  char *b = malloc(sizeof r);
  if (!b) {
    conn_close(c);
    return;
  }
  memcpy(b, r, sizeof r);
  send_to(c, 1, b, sizeof r);
}

/* Stop reading, and close once what is queued to the client (a reply) is written. */
static void drain(ng_conn *c) {
  if (c->state == C_CLOSING || c->state == C_DRAIN) return;
  uv_read_stop((uv_stream_t *)&c->client);
  if (c->up) uv_read_stop((uv_stream_t *)c->up);
  c->state = C_DRAIN;
  if (queued(c) == 0) conn_close(c);
}

/* Answer the CONNECT with a failure `code`, then close. */
static void fail(ng_conn *c, int code) {
  if (c->state == C_CLOSING || c->state == C_DRAIN) return;
  reply(c, code);
  drain(c);
}

static void shutdown_done(uv_shutdown_t *req, int status) {
  (void)status;
  ng_conn *c = req->data;
  free(req);
  conn_unpend(c);
}

static void shutdown_side(ng_conn *c, uv_stream_t *s) {
  uv_shutdown_t *sd = malloc(sizeof *sd);
  if (!sd) {
    conn_close(c);
    return;
  }
  sd->data = c;
  if (uv_shutdown(sd, s, shutdown_done) != 0) {
    free(sd);
    conn_close(c);
    return;
  }
  c->pending++;
}

static void conn_close(ng_conn *c) {
  if (c->state == C_CLOSING) return;
  int was = c->state;
  c->state = C_CLOSING;
  if (was == C_RESOLVING) uv_cancel((uv_req_t *)&c->gai); /* its callback still comes */
  if (!uv_is_closing((uv_handle_t *)&c->client)) {
    c->pending++;
    uv_close((uv_handle_t *)&c->client, handle_closed);
  }
  if (c->up && !uv_is_closing((uv_handle_t *)c->up)) {
    c->pending++;
    uv_close((uv_handle_t *)c->up, handle_closed);
  }
  c->up = NULL;
  conn_unpend(c); /* the connection's own hold, taken at accept */
}

/* ---------------------------------------------------------------- relay */

static void client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void relay_read(ng_conn *c, int from_client, ssize_t nread, const uv_buf_t *buf) {
  if (nread > 0) {
    send_to(c, !from_client, buf->base, (size_t)nread);
    return;
  }
  free(buf->base);
  if (nread == 0) return;
  if (nread != UV_EOF) {
    conn_close(c);
    return;
  }
  /* One side is done sending: pass the end on, close when both are. */
  uv_stream_t *src = from_client ? (uv_stream_t *)&c->client : (uv_stream_t *)c->up;
  uv_read_stop(src);
  if (from_client)
    c->eof_client = 1;
  else
    c->eof_up = 1;
  if (c->eof_client && c->eof_up) {
    drain(c); /* both ends are done: close once the last bytes are written */
    return;
  }
  shutdown_side(c, from_client ? (uv_stream_t *)c->up : (uv_stream_t *)&c->client);
}

static void up_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  ng_conn *c = s->data;
  if (c->state != C_RELAY) {
    free(buf->base);
    return;
  }
  relay_read(c, 0, nread, buf);
}

static void connected(uv_connect_t *req, int status) {
  ng_conn *c = req->data;
  uv_tcp_t *up = (uv_tcp_t *)req->handle;
  free(req);
  if (c->state == C_CLOSING || up != c->up) {
    conn_unpend(c);
    return;
  }
  if (status < 0) {
    /* This address did not answer: the next one, else the client learns it failed. */
    c->pending++;
    uv_close((uv_handle_t *)c->up, handle_closed);
    c->up = NULL;
    if (c->next_addr) {
      conn_unpend(c);
      start_connect(c);
      return;
    }
    c->g->stats.failed++;
    lc_debug("%sconnection to %s:%d failed: %s", c->g->tag, c->host, c->port, uv_strerror(status));
    conn_unpend(c);
    fail(c, status == UV_ECONNREFUSED ? REP_CONN_REFUSED : REP_HOST_UNREACHABLE);
    return;
  }
  conn_unpend(c);
  c->g->stats.allowed++;
  uv_tcp_nodelay(c->up, 1);
  c->state = C_RELAY;
  reply(c, REP_OK);
  if (c->state != C_RELAY) return;
  if (uv_read_start((uv_stream_t *)c->up, alloc_cb, up_read) != 0 ||
      uv_read_start((uv_stream_t *)&c->client, alloc_cb, client_read) != 0) {
    conn_close(c);
    return;
  }
  if (c->hs_n > 0) { /* bytes the client sent after its request: the first of the stream */
    char *early = malloc(c->hs_n);
    if (!early) {
      conn_close(c);
      return;
    }
    memcpy(early, c->hs, c->hs_n);
    size_t n = c->hs_n;
    c->hs_n = 0;
    send_to(c, 0, early, n);
  }
}

static void start_connect(ng_conn *c) {
  const struct sockaddr *sa = NULL;
  if (c->have_direct) {
    sa = (const struct sockaddr *)&c->direct;
    c->have_direct = 0;
  } else if (c->next_addr) {
    sa = c->next_addr->ai_addr;
    c->next_addr = c->next_addr->ai_next;
  }
  if (!sa) {
    fail(c, REP_HOST_UNREACHABLE);
    return;
  }
  c->state = C_CONNECTING;
  c->up = malloc(sizeof *c->up);
  uv_connect_t *req = malloc(sizeof *req);
  if (!c->up || !req || uv_tcp_init(c->g->loop, c->up) != 0) {
    free(c->up);
    free(req);
    c->up = NULL;
    fail(c, REP_FAILURE);
    return;
  }
  c->up->data = c;
  req->data = c;
  c->pending++;
  if (uv_tcp_connect(req, c->up, sa, connected) != 0) {
    free(req); /* its hold on the connection passes to the socket's close */
    uv_close((uv_handle_t *)c->up, handle_closed);
    c->up = NULL;
    if (c->next_addr) {
      start_connect(c);
      return;
    }
    c->g->stats.failed++;
    fail(c, REP_HOST_UNREACHABLE);
  }
}

/* IPv4 answers first: a name that also has an IPv6 address is most often served on IPv4. */
static struct addrinfo *v4_first(struct addrinfo *list) {
  struct addrinfo *v4 = NULL, **v4t = &v4, *other = NULL, **ot = &other;
  for (struct addrinfo *a = list, *n; a; a = n) {
    n = a->ai_next;
    a->ai_next = NULL;
    if (a->ai_family == AF_INET) {
      *v4t = a;
      v4t = &a->ai_next;
    } else {
      *ot = a;
      ot = &a->ai_next;
    }
  }
  *v4t = other;
  return v4;
}

static void resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  ng_conn *c = req->data;
  if (res) c->addrs = v4_first(res);
  if (c->state == C_CLOSING) {
    conn_unpend(c);
    return;
  }
  conn_unpend(c);
  if (status < 0 || !c->addrs) {
    c->g->stats.failed++;
    lc_debug("%scannot resolve %s: %s", c->g->tag, c->host, uv_strerror(status));
    fail(c, REP_HOST_UNREACHABLE);
    return;
  }
  char why[200];
  lc_netguard_opts o = opts_of(c->g);
  if (lc_netguard_decide(&o, c->host, c->addrs, why, sizeof why) != 0) {
    note_refusal(c->g, c->host, c->port, why);
    fail(c, REP_NOT_ALLOWED);
    return;
  }
  c->next_addr = c->addrs;
  start_connect(c);
}

/* ---------------------------------------------------------------- handshake */

/* The CONNECT request is complete: the rules, then a resolution or a connection. */
static void on_request(ng_conn *c) {
  uv_read_stop((uv_stream_t *)&c->client); /* nothing more is read until the answer */
  char why[200];
  lc_netguard_opts o = opts_of(c->g);
  if (lc_netguard_decide(&o, c->host, NULL, why, sizeof why) != 0) {
    note_refusal(c->g, c->host, c->port, why);
    fail(c, REP_NOT_ALLOWED);
    return;
  }
  /* localhost and *.localhost are loopback by name (as Chromium answers them). */
  if (lc_addr_class(c->host) == LC_ADDR_LOOPBACK && c->host[0] != '[' &&
      !isdigit((unsigned char)c->host[0])) {
    struct sockaddr_in *in = (struct sockaddr_in *)&c->direct;
    memset(&c->direct, 0, sizeof c->direct);
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)c->port);
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->have_direct = 1;
    start_connect(c);
    return;
  }
  char name[256], port[8];
  snprintf(name, sizeof name, "%s", c->host);
  if (name[0] == '[') { /* an IPv6 literal: without its brackets */
    size_t n = strlen(name);
    memmove(name, name + 1, n);
    if (n >= 2) name[n - 2] = 0;
  }
  snprintf(port, sizeof port, "%d", c->port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  c->state = C_RESOLVING;
  c->gai.data = c;
  c->pending++;
  if (uv_getaddrinfo(c->g->loop, &c->gai, resolved, name, port, &hints) != 0) {
    c->pending--;
    c->g->stats.failed++;
    fail(c, REP_FAILURE);
  }
}

/* Consume what the handshake buffer holds. */
static void handshake(ng_conn *c) {
  if (c->state == C_GREET) {
    if (c->hs_n < 2) return;
    if (c->hs[0] != 5) {
      conn_close(c);
      return;
    }
    size_t need = 2 + (size_t)c->hs[1];
    if (c->hs_n < need) return;
    int ok = 0;
    for (size_t i = 2; i < need; i++) ok |= c->hs[i] == 0;
    memmove(c->hs, c->hs + need, c->hs_n - need);
    c->hs_n -= need;
    char *r = malloc(2);
    if (!r) {
      conn_close(c);
      return;
    }
    r[0] = 5;
    r[1] = ok ? 0 : (char)0xff;
    if (send_to(c, 1, r, 2) != 0) return;
    if (!ok) { /* no method we take: the client reads 0xff, then the end */
      drain(c);
      return;
    }
    c->state = C_REQUEST;
  }
  if (c->state != C_REQUEST || c->hs_n < 5) return;
  const unsigned char *h = c->hs;
  if (h[0] != 5) {
    conn_close(c);
    return;
  }
  size_t need;
  switch (h[3]) {
    case 1:
      need = 4 + 4 + 2;
      break;
    case 3:
      need = 4 + 1 + (size_t)h[4] + 2;
      break;
    case 4:
      need = 4 + 16 + 2;
      break;
    default:
      fail(c, REP_ATYP_UNSUPPORTED);
      return;
  }
  if (c->hs_n < need) return;
  c->g->stats.connections++;
  if (h[1] != 1) { /* CONNECT only: no BIND, no UDP ASSOCIATE */
    fail(c, REP_CMD_UNSUPPORTED);
    return;
  }
  c->port = h[need - 2] << 8 | h[need - 1];
  if (h[3] == 1) {
    inet_ntop(AF_INET, h + 4, c->host, sizeof c->host);
  } else if (h[3] == 4) {
    char ip[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, h + 4, ip, sizeof ip);
    snprintf(c->host, sizeof c->host, "[%s]", ip);
  } else {
    size_t n = h[4];
    if (n == 0 || memchr(h + 5, 0, n)) {
      fail(c, REP_HOST_UNREACHABLE);
      return;
    }
    memcpy(c->host, h + 5, n);
    c->host[n] = 0;
  }
  memmove(c->hs, c->hs + need, c->hs_n - need);
  c->hs_n -= need;
  on_request(c);
}

static void client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  ng_conn *c = s->data;
  if (c->state == C_RELAY) {
    relay_read(c, 1, nread, buf);
    return;
  }
  if (nread <= 0 || c->state == C_CLOSING) {
    free(buf->base);
    if (nread < 0) conn_close(c);
    return;
  }
  if (c->hs_n + (size_t)nread > sizeof c->hs) { /* not SOCKS5, or more than a handshake */
    free(buf->base);
    conn_close(c);
    return;
  }
  memcpy(c->hs + c->hs_n, buf->base, (size_t)nread);
  c->hs_n += (size_t)nread;
  free(buf->base);
  handshake(c);
}

static void on_connection(uv_stream_t *server, int status) {
  lc_netguard *g = server->data;
  if (status < 0 || g->closing) return;
  ng_conn *c = calloc(1, sizeof *c);
  if (!c) return;
  c->g = g;
  c->pending = 1; /* released by conn_close */
  c->state = C_GREET;
  uv_tcp_init(g->loop, &c->client);
  c->client.data = c;
  c->next = g->conns;
  if (g->conns) g->conns->prev = c;
  g->conns = c;
  g->stats.open++;
  if (uv_accept(server, (uv_stream_t *)&c->client) != 0 ||
      uv_read_start((uv_stream_t *)&c->client, alloc_cb, client_read) != 0) {
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->client, 1);
}

/* ---------------------------------------------------------------- the guard */

static void listener_closed(uv_handle_t *h) {
  lc_netguard *g = h->data;
  g->listener_open = 0;
  guard_maybe_free(g);
}

lc_netguard *lc_netguard_new(uv_loop_t *loop, const lc_netguard_opts *o, char *err,
                             size_t errlen) {
  lc_netguard *g = calloc(1, sizeof *g);
  if (!g) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  g->loop = loop;
  g->allow_private = o->allow_private;
  g->tag = strdup(o->log_tag ? o->log_tag : "");
  int oom = !g->tag;
  if (o->allow_hosts) {
    size_t n = 0;
    while (o->allow_hosts[n]) n++;
    g->allow_hosts = calloc(n + 1, sizeof *g->allow_hosts);
    oom |= !g->allow_hosts;
    for (size_t i = 0; !oom && i < n; i++) oom |= !(g->allow_hosts[i] = strdup(o->allow_hosts[i]));
  }
  if (oom) {
    g->closing = 1;
    guard_maybe_free(g);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  uv_tcp_init(loop, &g->listener);
  g->listener.data = g;
  g->listener_open = 1;
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  struct sockaddr_storage bound;
  int blen = sizeof bound;
  int rc = uv_tcp_bind(&g->listener, (const struct sockaddr *)&a, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&g->listener, 128, on_connection);
  if (rc == 0) rc = uv_tcp_getsockname(&g->listener, (struct sockaddr *)&bound, &blen);
  if (rc != 0) {
    snprintf(err, errlen, "cannot listen on 127.0.0.1 for the network guard: %s", uv_strerror(rc));
    lc_netguard_close(g);
    return NULL;
  }
  g->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
  snprintf(g->url, sizeof g->url, "socks5://127.0.0.1:%d", g->port);
  return g;
}

int lc_netguard_port(const lc_netguard *g) { return g ? g->port : 0; }
const char *lc_netguard_url(const lc_netguard *g) { return g ? g->url : NULL; }

void lc_netguard_stats_get(const lc_netguard *g, lc_netguard_stats *out) {
  if (g)
    *out = g->stats;
  else
    memset(out, 0, sizeof *out);
}

void lc_netguard_close(lc_netguard *g) {
  if (!g || g->closing) return;
  g->closing = 1;
  for (ng_conn *c = g->conns, *n; c; c = n) {
    n = c->next;
    conn_close(c);
  }
  uv_close((uv_handle_t *)&g->listener, listener_closed);
}
