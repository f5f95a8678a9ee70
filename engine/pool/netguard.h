/* netguard.h: the host rules on every connection a browser context makes.
 *
 * A SOCKS5 proxy (RFC 1928, CONNECT only, no authentication) on 127.0.0.1 that a sandboxed
 * job's browser contexts are created with (`proxyServer`, bypass list `<-loopback>`), so every
 * TCP connection their pages open -- documents, redirects, subresources, iframes, fetch/XHR,
 * WebSockets, workers -- reaches it first. Chromium hands a SOCKS5 proxy the host *name*; the
 * guard resolves it itself (uv_getaddrinfo, off the loop), refuses the connection when any
 * address of the answer is in a refused class (addr.h) or the name is not on the allow list,
 * and otherwise connects to the very address it checked: a DNS answer that changes between the
 * check and the connection (rebinding) cannot get past, since the browser never resolves.
 *
 * Owns: its listening socket, every connection (client and upstream sockets, their buffers),
 * the pending resolutions, and the last refusals (a small ring the job reads to explain a
 * failed navigation). Not thread-safe: one loop. No Lua.
 *
 * Release: lc_netguard_close() closes everything; the memory goes when the loop has run the
 * handles' close callbacks (the engine's shutdown runs the loop to its end). */
#ifndef LC_NETGUARD_H
#define LC_NETGUARD_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct lc_netguard lc_netguard;

typedef struct lc_netguard_opts {
  int allow_private;              /* loopback and private addresses pass (--allow-private) */
  const char *const *allow_hosts; /* NULL-terminated: only these hosts ("a.com", "*.a.com"); NULL: any */
  const char *log_tag;            /* prefix of its log lines (the job's), may be NULL */
} lc_netguard_opts;

typedef struct lc_netguard_stats {
  uint64_t connections; /* CONNECT requests seen */
  uint64_t allowed;     /* connected upstream */
  uint64_t refused;     /* refused by the host rules */
  uint64_t failed;      /* could not resolve or connect (not a refusal) */
  uint64_t bytes;       /* bytes relayed, both ways */
  int open;             /* connections open now */
} lc_netguard_stats;

/* Listen on 127.0.0.1 on a free port. NULL with err. */
lc_netguard *lc_netguard_new(uv_loop_t *loop, const lc_netguard_opts *o, char *err, size_t errlen);
/* The port it listens on. */
int lc_netguard_port(const lc_netguard *g);
/* "socks5://127.0.0.1:PORT", for Target.createBrowserContext's proxyServer. */
const char *lc_netguard_url(const lc_netguard *g);
void lc_netguard_stats_get(const lc_netguard *g, lc_netguard_stats *out);
/* Why the last connection to `host` (a bare host, any case) was refused, or NULL: "resolves to
 * 10.0.0.1: private address". Kept for the last few refused hosts. */
const char *lc_netguard_refusal(const lc_netguard *g, const char *host);
/* The newest refusal: its reason, and its host in *host; NULL when none. */
const char *lc_netguard_last_refusal(const lc_netguard *g, const char **host);
/* Stop listening and close every connection. NULL is a no-op. */
void lc_netguard_close(lc_netguard *g);

/* The decision alone, for tests and for checks before anything is sent: 0 when a connection to
 * `host` (a bare name or IP literal) whose answer is `addrs` (NULL for a literal) may go, else
 * -1 with the reason in why. */
int lc_netguard_decide(const lc_netguard_opts *o, const char *host, const struct addrinfo *addrs,
                       char *why, size_t whylen);

#endif
