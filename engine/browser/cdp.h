/* cdp.h: a Chrome DevTools Protocol client over one transport (transport.h: the pipe to a
 * browser we launched, or a WebSocket to one someone else runs).
 * Owns: command ids, the pending table and every command's deadline, and the routing of
 * events by sessionId. Every command gets exactly one reply callback: the answer, a CDP
 * error, a timeout, or "connection lost" -- unless the caller cancels it first. Payloads are
 * handed over as raw JSON text (decoded once, by whoever needs them). */
#ifndef LC_CDP_H
#define LC_CDP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "transport.h"

typedef struct lc_cdp lc_cdp;

enum {
  LC_CDP_OK = 0,
  LC_CDP_EPROTO = -1,   /* CDP answered with an error object, or a reply that does not parse */
  LC_CDP_ETIMEOUT = -2, /* no answer before the deadline */
  LC_CDP_ECLOSED = -3,  /* the connection closed or was never open */
  LC_CDP_ESEND = -4,    /* could not queue the command */
  LC_CDP_ETOOBIG = -5,  /* the reply was larger than the command's max_reply */
};

/* err == 0: `result` is the raw JSON of the "result" member (len bytes, writable, valid only
 * during the call). err < 0: `result` is a NUL-terminated message. */
typedef void (*lc_cdp_reply_fn)(void *ud, int err, char *result, size_t len);
/* An event: `session` is "" for browser-level events; params is raw JSON (writable). */
typedef void (*lc_cdp_event_fn)(void *ud, const char *session, const char *method, char *params,
                                size_t len);
/* The connection is gone (crash, close, hang-up). Fired once, after pending replies failed. */
typedef void (*lc_cdp_closed_fn)(void *ud, const char *why);
typedef void (*lc_cdp_open_fn)(void *ud);

typedef struct lc_cdp_cbs {
  lc_cdp_open_fn on_open;
  lc_cdp_event_fn on_event;
  lc_cdp_closed_fn on_closed;
  void *ud;
} lc_cdp_cbs;

/* Open a connection over the transport that open(arg, ...) makes (lc_pipe_open, lc_ws_open,
 * or a fake). Returns NULL with *err (malloc'ed) if the transport cannot be made. Released by
 * lc_cdp_free (exactly once), which closes the transport and fails every pending command with
 * LC_CDP_ECLOSED ("shutting down") before returning. */
lc_cdp *lc_cdp_open(uv_loop_t *loop, lc_transport_open_fn open, void *arg, const lc_cdp_cbs *cbs,
                    char **err);
void lc_cdp_free(lc_cdp *c);

/* Send a command; `params_json` may be NULL ("{}"); `session` may be NULL or "" for the browser
 * target. Returns the command id (> 0). The reply always comes later, never during this call
 * (a send that cannot be queued is failed on the next loop turn). */
uint64_t lc_cdp_send(lc_cdp *c, const char *session, const char *method, const char *params_json,
                     int timeout_ms, lc_cdp_reply_fn fn, void *ud);
/* The same, with a cap on the reply: a reply message longer than `max_reply` bytes (0: no
 * cap) fails this command alone with LC_CDP_ETOOBIG ("reply exceeds max_bytes (N)"); the
 * connection and every other command go on. The cap is checked here, on the whole message
 * the transport hands over, so nothing the page runs can lift it. */
uint64_t lc_cdp_send_capped(lc_cdp *c, const char *session, const char *method,
                            const char *params_json, int timeout_ms, size_t max_reply,
                            lc_cdp_reply_fn fn, void *ud);
/* Forget a pending command: its reply callback will not fire. Returns 0, or -1 if unknown. */
int lc_cdp_cancel(lc_cdp *c, uint64_t id);
/* Fail every pending command of a session (a crashed or closed page) with `why`. */
void lc_cdp_fail_session(lc_cdp *c, const char *session, const char *why);
/* After idle_ms without a message, send Browser.getVersion; no answer within timeout_ms ends
 * the connection as lost ("the browser stopped answering"): a stopped or hung browser is found
 * on a transport without pings of its own (the pipe; lws pings WebSockets itself). */
void lc_cdp_set_keepalive(lc_cdp *c, int idle_ms, int timeout_ms);
int lc_cdp_is_open(const lc_cdp *c);
size_t lc_cdp_pending(const lc_cdp *c);

#endif
