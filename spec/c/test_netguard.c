/* test_netguard.c: the network guard (engine/pool/netguard.h) without a browser: its decision
 * on names, literals and resolved answers, and the SOCKS5 proxy itself on a real loop: relay
 * through it to a local echo server (megabytes, so back-pressure pauses and resumes), refusals
 * with their reply codes, a refused connection upstream, a client that is not SOCKS5, and a
 * close with connections open that still lets the loop close. Loopback only. */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "netguard.h"
#include "test.h"

/* ---------------------------------------------------------------- the decision */

/* One answer of a resolution: an IPv4 or IPv6 address (by the text's form), before `next`. */
static struct addrinfo *ai_new(const char *ip, struct addrinfo *next) {
  struct addrinfo *a = calloc(1, sizeof *a);
  struct sockaddr_in6 *sa = calloc(1, sizeof *sa); /* large enough for either family */
  int v6 = strchr(ip, ':') != NULL;
  a->ai_family = v6 ? AF_INET6 : AF_INET;
  sa->sin6_family = (sa_family_t)a->ai_family;
  inet_pton(a->ai_family, ip,
            v6 ? (void *)&sa->sin6_addr : (void *)&((struct sockaddr_in *)(void *)sa)->sin_addr);
  a->ai_addr = (struct sockaddr *)sa;
  a->ai_addrlen = v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  a->ai_next = next;
  return a;
}

static void ai_free(struct addrinfo *a) {
  while (a) {
    struct addrinfo *n = a->ai_next;
    free(a->ai_addr);
    free(a);
    a = n;
  }
}

TEST(decides_on_names_literals_and_answers) {
  lc_netguard_opts strict = {0}, priv = {.allow_private = 1};
  char why[200];
  struct addrinfo *pub = ai_new("93.184.216.34", NULL);
  CHECK_INT(lc_netguard_decide(&strict, "example.com", pub, why, sizeof why), 0);
  /* One refused address in the answer refuses the name: the browser could get any of them. */
  struct addrinfo *mixed = ai_new("8.8.8.8", ai_new("10.1.2.3", NULL));
  CHECK_INT(lc_netguard_decide(&strict, "rebind.example", mixed, why, sizeof why), -1);
  CHECK_STR(why, "rebind.example resolves to 10.1.2.3: private address (refused without --allow-private)");
  CHECK_INT(lc_netguard_decide(&priv, "rebind.example", mixed, why, sizeof why), 0);
  struct addrinfo *meta = ai_new("169.254.169.254", NULL);
  CHECK_INT(lc_netguard_decide(&priv, "metadata.internal", meta, why, sizeof why), -1);
  CHECK_STR(why, "metadata.internal resolves to 169.254.169.254: link-local address (refused always)");
  struct addrinfo *mapped = ai_new("::ffff:127.0.0.1", NULL);
  CHECK_INT(lc_netguard_decide(&strict, "v6.example", mapped, why, sizeof why), -1);
  CHECK(strstr(why, "loopback address") != NULL);
  struct addrinfo *ula = ai_new("fd00::1", NULL);
  CHECK_INT(lc_netguard_decide(&strict, "ula.example", ula, why, sizeof why), -1);
  CHECK(strstr(why, "private address") != NULL);
  struct addrinfo *v6pub = ai_new("2001:4860:4860::8888", NULL);
  CHECK_INT(lc_netguard_decide(&strict, "dns.example", v6pub, why, sizeof why), 0);
  /* Literals and names the rules know without resolving. */
  CHECK_INT(lc_netguard_decide(&strict, "127.0.0.1", NULL, why, sizeof why), -1);
  CHECK_INT(lc_netguard_decide(&strict, "localhost", NULL, why, sizeof why), -1);
  CHECK_INT(lc_netguard_decide(&strict, "a.b.localhost", NULL, why, sizeof why), -1);
  CHECK_INT(lc_netguard_decide(&priv, "localhost", NULL, why, sizeof why), 0);
  CHECK_INT(lc_netguard_decide(&priv, "[::ffff:169.254.169.254]", NULL, why, sizeof why), -1);
  CHECK_INT(lc_netguard_decide(&priv, "0.0.0.0", NULL, why, sizeof why), -1);
  CHECK_STR(why, "special-purpose address (refused always)");
  ai_free(pub);
  ai_free(mixed);
  ai_free(meta);
  ai_free(mapped);
  ai_free(ula);
  ai_free(v6pub);
}

TEST(allow_list_matches_hosts_and_subdomains) {
  const char *hosts[] = {"*.a.com", "b.org", "127.0.0.1", NULL};
  lc_netguard_opts o = {.allow_private = 1, .allow_hosts = hosts};
  char why[200];
  CHECK_INT(lc_netguard_decide(&o, "x.a.com", NULL, why, sizeof why), 0);
  CHECK_INT(lc_netguard_decide(&o, "deep.x.A.COM", NULL, why, sizeof why), 0);
  CHECK_INT(lc_netguard_decide(&o, "a.com", NULL, why, sizeof why), 0);
  CHECK_INT(lc_netguard_decide(&o, "xa.com", NULL, why, sizeof why), -1);
  CHECK_STR(why, "xa.com is not on the job's allowed_hosts");
  CHECK_INT(lc_netguard_decide(&o, "B.org", NULL, why, sizeof why), 0);
  CHECK_INT(lc_netguard_decide(&o, "c.b.org", NULL, why, sizeof why), -1);
  CHECK_INT(lc_netguard_decide(&o, "127.0.0.1", NULL, why, sizeof why), 0);
  CHECK_INT(lc_netguard_decide(&o, "127.0.0.2", NULL, why, sizeof why), -1);
  /* The list does not lift the address rules. */
  const char *meta[] = {"169.254.169.254", NULL};
  lc_netguard_opts m = {.allow_private = 1, .allow_hosts = meta};
  CHECK_INT(lc_netguard_decide(&m, "169.254.169.254", NULL, why, sizeof why), -1);
}

/* ---------------------------------------------------------------- a loop: echo server, clients */

static uv_loop_t loop;

typedef struct {
  uv_tcp_t server;
  int port;
  int connections;
} echo_srv;

static void alloc_buf(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  (void)h;
  (void)hint;
  b->base = malloc(65536);
  b->len = 65536;
}

static void echo_written(uv_write_t *w, int status) {
  (void)status;
  free(w->data);
  free(w);
}

static void close_free(uv_handle_t *h) { free(h); }

static void echo_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  if (n > 0) {
    uv_write_t *w = malloc(sizeof *w);
    w->data = b->base;
    uv_buf_t out = uv_buf_init(b->base, (unsigned)n);
    uv_write(w, s, &out, 1, echo_written);
    return;
  }
  free(b->base);
  if (n < 0 && !uv_is_closing((uv_handle_t *)s)) uv_close((uv_handle_t *)s, close_free);
}

static void echo_conn(uv_stream_t *server, int status) {
  echo_srv *e = server->data;
  if (status < 0) return;
  uv_tcp_t *c = malloc(sizeof *c);
  uv_tcp_init(&loop, c);
  if (uv_accept(server, (uv_stream_t *)c) == 0) {
    e->connections++;
    uv_read_start((uv_stream_t *)c, alloc_buf, echo_read);
  } else {
    uv_close((uv_handle_t *)c, close_free);
  }
}

static int listen_any(uv_tcp_t *t, void *data, uv_connection_cb cb) {
  uv_tcp_init(&loop, t);
  t->data = data;
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  uv_tcp_bind(t, (struct sockaddr *)&a, 0);
  uv_listen((uv_stream_t *)t, 16, cb);
  struct sockaddr_storage s;
  int len = sizeof s;
  uv_tcp_getsockname(t, (struct sockaddr *)&s, &len);
  return ntohs(((struct sockaddr_in *)&s)->sin_port);
}

typedef struct {
  uv_tcp_t sock;
  unsigned char req[300];
  size_t req_n;
  char *payload;
  size_t payload_n;
  char *got;
  size_t got_n, got_cap;
  int reply; /* the CONNECT reply's code, -1 until read */
  int eof, done, closed;
  int hold; /* stay open after the echo: only the guard's close ends it */
} client;

static void client_closed(uv_handle_t *h) {
  client *c = h->data;
  c->closed = 1;
}

static void client_finish(client *c) {
  if (c->done) return;
  c->done = 1;
  uv_close((uv_handle_t *)&c->sock, client_closed);
}

static void wrote(uv_write_t *w, int status) {
  (void)status;
  free(w);
}

static void client_send(client *c, char *p, size_t n) {
  uv_write_t *w = malloc(sizeof *w);
  uv_buf_t b = uv_buf_init(p, (unsigned)n);
  uv_write(w, (uv_stream_t *)&c->sock, &b, 1, wrote);
}

static void client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  client *c = s->data;
  if (n > 0) {
    if (c->got_n + (size_t)n > c->got_cap) {
      c->got_cap = (c->got_n + (size_t)n) * 2;
      c->got = realloc(c->got, c->got_cap);
    }
    memcpy(c->got + c->got_n, b->base, (size_t)n);
    c->got_n += (size_t)n;
  }
  free(b->base);
  if (n < 0) {
    c->eof = 1;
    client_finish(c);
    return;
  }
  if (c->reply < 0 && c->got_n >= 12) { /* method reply (2) + CONNECT reply (10) */
    c->reply = (unsigned char)c->got[3];
    if (c->reply == 0 && c->payload_n) client_send(c, c->payload, c->payload_n);
  }
  if (c->reply == 0 && !c->hold && c->got_n >= 12 + c->payload_n) client_finish(c);
}

static void client_connected(uv_connect_t *req, int status) {
  client *c = req->data;
  free(req);
  if (status < 0) {
    client_finish(c);
    return;
  }
  uv_read_start((uv_stream_t *)&c->sock, alloc_buf, client_read);
  client_send(c, (char *)c->req, c->req_n);
}

/* A client that asks the guard on `port` to CONNECT to host (a name, or an IPv4 literal when
 * `literal`) : dport, then sends `payload` (may be NULL) and waits for its echo. */
static void client_start(client *c, int port, const char *host, int literal, int dport,
                         const char *payload, size_t payload_n, int cmd) {
  memset(c, 0, sizeof *c);
  c->reply = -1;
  unsigned char *r = c->req;
  size_t n = 0;
  r[n++] = 5, r[n++] = 1, r[n++] = 0; /* greeting: no authentication */
  r[n++] = 5, r[n++] = (unsigned char)cmd, r[n++] = 0;
  if (literal) {
    r[n++] = 1;
    inet_pton(AF_INET, host, r + n);
    n += 4;
  } else {
    r[n++] = 3;
    r[n++] = (unsigned char)strlen(host);
    memcpy(r + n, host, strlen(host));
    n += strlen(host);
  }
  r[n++] = (unsigned char)(dport >> 8), r[n++] = (unsigned char)dport;
  c->req_n = n;
  c->payload = (char *)payload;
  c->payload_n = payload_n;
  uv_tcp_init(&loop, &c->sock);
  c->sock.data = c;
  uv_connect_t *req = malloc(sizeof *req);
  req->data = c;
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", port, &a);
  uv_tcp_connect(req, &c->sock, (struct sockaddr *)&a, client_connected);
}

/* Turn the loop until every client is done (10 s at most). */
static void run_clients(client *cs, int n) {
  uint64_t until = uv_now(&loop) + 10000;
  for (;;) {
    int open = 0;
    for (int i = 0; i < n; i++) open += !cs[i].closed;
    if (!open || uv_now(&loop) > until) break;
    uv_run(&loop, UV_RUN_ONCE);
  }
}

static void close_loop(void) {
  for (int i = 0; i < 100 && uv_loop_alive(&loop); i++) uv_run(&loop, UV_RUN_NOWAIT);
  CHECK_INT(uv_loop_close(&loop), 0);
}

TEST(relays_both_ways_with_back_pressure) {
  uv_loop_init(&loop);
  echo_srv e = {0};
  e.port = listen_any(&e.server, &e, echo_conn);
  char err[200];
  lc_netguard_opts o = {.allow_private = 1};
  lc_netguard *g = lc_netguard_new(&loop, &o, err, sizeof err);
  CHECK(g != NULL);
  CHECK(lc_netguard_port(g) > 0);
  char url[64];
  snprintf(url, sizeof url, "socks5://127.0.0.1:%d", lc_netguard_port(g));
  CHECK_STR(lc_netguard_url(g), url);
  size_t big = 6u << 20; /* several times the guard's high-water mark */
  char *payload = malloc(big);
  for (size_t i = 0; i < big; i++) payload[i] = (char)(i * 131 + (i >> 12));
  client cs[2];
  client_start(&cs[0], lc_netguard_port(g), "localhost", 0, e.port, payload, big, 1);
  client_start(&cs[1], lc_netguard_port(g), "127.0.0.1", 1, e.port, "hello", 5, 1);
  run_clients(cs, 2);
  CHECK_INT(cs[0].reply, 0);
  CHECK_INT(cs[0].got_n, 12 + big);
  CHECK(cs[0].got_n == 12 + big && memcmp(cs[0].got + 12, payload, big) == 0);
  CHECK_INT(cs[1].reply, 0);
  CHECK(cs[1].got_n == 17 && memcmp(cs[1].got + 12, "hello", 5) == 0);
  lc_netguard_stats st;
  lc_netguard_stats_get(g, &st);
  CHECK_INT(st.connections, 2);
  CHECK_INT(st.allowed, 2);
  CHECK_INT(st.refused, 0);
  CHECK(st.bytes >= 2 * (uint64_t)big);
  CHECK_INT(e.connections, 2);
  lc_netguard_close(g);
  uv_close((uv_handle_t *)&e.server, NULL);
  close_loop();
  free(payload);
  free(cs[0].got);
  free(cs[1].got);
}

TEST(refuses_with_socks_reply_codes) {
  uv_loop_init(&loop);
  echo_srv e = {0};
  e.port = listen_any(&e.server, &e, echo_conn);
  /* A port nobody listens on: bound, then closed. */
  uv_tcp_t tmp;
  int dead = listen_any(&tmp, NULL, echo_conn);
  uv_close((uv_handle_t *)&tmp, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
  char err[200];
  lc_netguard_opts strict = {0}, priv = {.allow_private = 1};
  lc_netguard *gs = lc_netguard_new(&loop, &strict, err, sizeof err);
  lc_netguard *gp = lc_netguard_new(&loop, &priv, err, sizeof err);
  client cs[4];
  client_start(&cs[0], lc_netguard_port(gs), "127.0.0.1", 1, e.port, "x", 1, 1);
  client_start(&cs[1], lc_netguard_port(gs), "localhost", 0, e.port, "x", 1, 1);
  client_start(&cs[2], lc_netguard_port(gp), "127.0.0.1", 1, dead, "x", 1, 1);
  client_start(&cs[3], lc_netguard_port(gp), "127.0.0.1", 1, e.port, NULL, 0, 2); /* BIND */
  run_clients(cs, 4);
  CHECK_INT(cs[0].reply, 2); /* not allowed by the ruleset */
  CHECK_INT(cs[1].reply, 2);
  CHECK_INT(cs[2].reply, 5); /* connection refused */
  CHECK_INT(cs[3].reply, 7); /* command not supported */
  for (int i = 0; i < 4; i++) CHECK(cs[i].eof);
  CHECK_INT(e.connections, 0); /* nothing refused reached the server */
  lc_netguard_stats st;
  lc_netguard_stats_get(gs, &st);
  CHECK_INT(st.refused, 2);
  CHECK_INT(st.allowed, 0);
  CHECK(lc_netguard_refusal(gs, "LOCALHOST") != NULL);
  CHECK(lc_netguard_refusal(gs, "example.com") == NULL);
  const char *host = NULL;
  CHECK_STR(lc_netguard_last_refusal(gs, &host), "loopback address (refused without --allow-private)");
  CHECK_STR(host, "localhost");
  lc_netguard_stats_get(gp, &st);
  CHECK_INT(st.failed, 1);
  lc_netguard_close(gs);
  lc_netguard_close(gp);
  uv_close((uv_handle_t *)&e.server, NULL);
  close_loop();
  for (int i = 0; i < 4; i++) free(cs[i].got);
}

static void garbage_connected(uv_connect_t *req, int status) {
  client *c = req->data;
  free(req);
  if (status < 0) {
    client_finish(c);
    return;
  }
  uv_read_start((uv_stream_t *)&c->sock, alloc_buf, client_read);
  static char http[2048];
  memset(http, 'A', sizeof http); /* more than any handshake */
  memcpy(http, "GET / HTTP/1.1\r\n", 16);
  client_send(c, http, sizeof http);
}

TEST(closes_a_client_that_is_not_socks5_and_closes_with_connections_open) {
  uv_loop_init(&loop);
  echo_srv e = {0};
  e.port = listen_any(&e.server, &e, echo_conn);
  char err[200];
  lc_netguard_opts o = {.allow_private = 1};
  lc_netguard *g = lc_netguard_new(&loop, &o, err, sizeof err);
  client bad;
  memset(&bad, 0, sizeof bad);
  bad.reply = -1;
  uv_tcp_init(&loop, &bad.sock);
  bad.sock.data = &bad;
  uv_connect_t *req = malloc(sizeof *req);
  req->data = &bad;
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", lc_netguard_port(g), &a);
  uv_tcp_connect(req, &bad.sock, (struct sockaddr *)&a, garbage_connected);
  run_clients(&bad, 1);
  CHECK(bad.eof);
  CHECK_INT(bad.got_n, 0);
  /* A relayed connection still open when the guard closes: everything goes, the loop closes. */
  client open;
  client_start(&open, lc_netguard_port(g), "127.0.0.1", 1, e.port, "ping", 4, 1);
  open.hold = 1;
  uint64_t until = uv_now(&loop) + 5000;
  while (open.got_n < 16 && uv_now(&loop) < until) uv_run(&loop, UV_RUN_ONCE);
  CHECK_INT(open.got_n, 16);
  lc_netguard_stats st;
  lc_netguard_stats_get(g, &st);
  CHECK_INT(st.open, 1);
  lc_netguard_close(g);
  run_clients(&open, 1);
  CHECK(open.eof);
  uv_close((uv_handle_t *)&e.server, NULL);
  close_loop();
  free(bad.got);
  free(open.got);
}

int main(void) {
  RUN(decides_on_names_literals_and_answers);
  RUN(allow_list_matches_hosts_and_subdomains);
  RUN(relays_both_ways_with_back_pressure);
  RUN(refuses_with_socks_reply_codes);
  RUN(closes_a_client_that_is_not_socks5_and_closes_with_connections_open);
  DONE();
}
