/* rconn.h: one asynchronous connection to a Redis server on the engine's libuv loop (hiredis,
 * with an event adapter of its own: rconn.c says why), which survives the server going away.
 * An attempt to connect is bounded (3 s) and made again with backoff (50 ms doubling to 2 s).
 * Owns: the hiredis context, the reconnect timer and its backoff, and every command given to
 * it until its reply: a command is copied, sent when the connection is up, and sent again
 * after a reconnect when its reply never came (so commands must be idempotent or checked on
 * the server, as the frontier's functions are). Commands go out and are answered in the order
 * they were given. On every (re)connect the setup commands run first (SELECT, FUNCTION LOAD).
 *
 * Every command's callback is called exactly once: with its reply, or with reply NULL and
 * LC_RCONN_CANCELLED when the connection is freed before the reply came. No call blocks the
 * loop (the host name is resolved by hiredis with getaddrinfo: give an address to be sure).
 * Not thread-safe. */
#ifndef LC_RCONN_H
#define LC_RCONN_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

enum { LC_RCONN_OK = 0, LC_RCONN_CANCELLED = -1 };

typedef struct lc_rconn lc_rconn;
/* `reply` is hiredis's (freed after the call), NULL when cancelled. */
typedef void (*lc_rconn_reply_fn)(void *ud, redisReply *reply, int status);

typedef struct lc_rconn_opts {
  uv_loop_t *loop;
  const char *host;
  int port;
  int db;
  const char *library; /* a Redis function library, FUNCTION LOAD REPLACE'd on every connect */
  /* How long the server may stay unreachable before `down` is called (ms; 0: 60 s). */
  int64_t give_up_ms;
  /* The same bound before the first connection ever came up (0: give_up_ms). A server that
   * must not wait long on a Redis that was never reachable sets it short. */
  int64_t first_give_up_ms;
  void (*down)(void *ud, const char *why); /* once; commands keep waiting */
  void *ud;
} lc_rconn_opts;

/* Start connecting (asynchronously). NULL when out of memory. Released by lc_rconn_free. */
lc_rconn *lc_rconn_new(const lc_rconn_opts *o);
/* Cancel every command (their callbacks run with LC_RCONN_CANCELLED) and close the
 * connection; its libuv handles close on the next loop turns. */
void lc_rconn_free(lc_rconn *c);
/* Give a command (copied). 0, or -1 when out of memory (the callback is not called then). */
int lc_rconn_cmd(lc_rconn *c, lc_rconn_reply_fn fn, void *ud, int argc, const char *const *argv,
                 const size_t *lens);
/* Commands given and not answered yet. */
size_t lc_rconn_outstanding(const lc_rconn *c);
int lc_rconn_connected(const lc_rconn *c);
/* Times the connection was lost and made again. */
uint64_t lc_rconn_reconnects(const lc_rconn *c);

/* The synchronous check a CLI does before anything starts: connect (2 s timeout), SELECT db,
 * load the library when not NULL. 0, or -1 with one line in err. Not for the loop. */
int lc_rconn_check(const char *host, int port, int db, const char *library, char *err,
                   size_t errlen);

#endif
