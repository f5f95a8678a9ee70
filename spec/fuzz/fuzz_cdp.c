/* fuzz_cdp.c: the CDP client (engine/cdp.h) over a fake transport, fed arbitrary incoming
 * messages: replies with ids (pending, finished, cancelled, unknown, malformed, over the
 * command's reply cap), events with sessionIds, garbage, and transport open/close, mixed with
 * sends (some capped, some that cannot be queued), cancels, fail_session and loop turns. Reply
 * callbacks themselves send and cancel.
 *
 * The fake is an lc_transport (engine/transport.h) made by the constructor handed to
 * lc_cdp_open, as pipe.c and ws.c are: no link seam. The keepalive (lc_cdp_set_keepalive)
 * is not driven here: it needs the loop's clock to move.
 *
 * Properties: every command gets exactly one reply callback, or none once cancelled; a reply
 * comes with the answer's result (NUL-terminated, the text sent) or the error the message or
 * event calls for (EPROTO for an error object, ECLOSED for fail_session, a lost connection or
 * free, ESEND for a send that could not be queued, on the next loop turn); a callback never
 * runs during lc_cdp_send; events reach on_event once with their session, method and params;
 * on_closed fires once; lc_cdp_pending is the number of commands still waiting; the loop
 * closes cleanly after lc_cdp_free, which closes the transport exactly once (and no transport
 * callback reaches cdp.c after that); a constructor that fails makes lc_cdp_open return NULL
 * with its message. */
#include <inttypes.h>
#include <uv.h>

#include "cdp.h"
#include "fuzz.h"
#include "json.h"

/* ---- the fake transport ---- */

typedef struct fake_transport {
  lc_transport base; /* first: cdp.c sees only this */
  int peer_closed;   /* on_close was delivered: nothing arrives any more */
} fake_transport;

static fake_transport *fake; /* the live one, NULL once cdp.c closed it */
static int fake_closes;      /* close() calls this input */
static int send_fails;       /* the next send refuses */
static int freeing;          /* lc_cdp_free is running: the only time close() may come */
static uint64_t sent_id;

static int fake_send(lc_transport *t, const char *msg, size_t len) {
  FUZZ_CHECK(fake && t == &fake->base && !fake->peer_closed); /* never after on_close */
  FUZZ_CHECK(strlen(msg) == len);
  lc_json_span v;
  int64_t id;
  FUZZ_CHECK(lc_json_member(msg, len, "id", &v) == 0 && lc_json_int(v, &id) == 0);
  FUZZ_CHECK(lc_json_member(msg, len, "method", &v) == 0);
  sent_id = (uint64_t)id;
  return send_fails ? -1 : 0;
}

static void fake_close(lc_transport *t) {
  FUZZ_CHECK(fake && t == &fake->base && freeing); /* once, from lc_cdp_free */
  fake_closes++;
  free(fake); /* ASan reports a second close or any later use */
  fake = NULL;
}

static const lc_transport_ops fake_ops = {"fake", fake_send, fake_close};

/* The constructor lc_cdp_open calls; *arg != 0 makes it fail, as a refused connection does. */
static lc_transport *fake_open(void *arg, const lc_transport_cbs *cbs, char **err) {
  if (*(int *)arg) {
    *err = strdup("fake: connection refused");
    return NULL;
  }
  FUZZ_CHECK(fake == NULL && cbs->on_open && cbs->on_message && cbs->on_close);
  fake = calloc(1, sizeof *fake);
  if (!fake) abort();
  fake->base.ops = &fake_ops;
  fake->base.cbs = *cbs;
  return &fake->base;
}

/* ---- the model ---- */

#define MAX_CMDS 512

enum { PENDING, FAILED_SEND, CANCELLED, DONE };

typedef struct cmd {
  uint64_t id;
  int session, state, calls, err;
  size_t max_reply; /* 0: none */
  char result[128]; /* the reply's text, cut to fit */
} cmd;

static struct {
  cmd cmds[MAX_CMDS];
  size_t n;
  lc_cdp *c;
  fuzz_in *in;
  int in_send, closed_calls, open_calls, events;
  const char *want_session, *want_method, *want_params;
} m;

static const char *const sessions[] = {"", "8B1F2C6E4A9D0E7F3B5C1A2D6E8F0A1B",
                                       "0123456789ABCDEF0123456789ABCDEF", "S"};
#define N_SESSIONS 4
static const char *const methods[] = {"Page.navigate", "Runtime.evaluate", "Target.createTarget",
                                      "Network.enable"};

static void on_reply(void *ud, int err, char *result, size_t len);

static cmd *send_one(int session, int fails, size_t max_reply) {
  if (m.n == MAX_CMDS) return NULL;
  cmd *k = &m.cmds[m.n++];
  memset(k, 0, sizeof *k);
  k->session = session;
  send_fails = fails;
  sent_id = 0;
  m.in_send = 1;
  k->max_reply = max_reply;
  k->id = max_reply
              ? lc_cdp_send_capped(m.c, sessions[session], methods[session], NULL, 600000,
                                   max_reply, on_reply, k)
              : lc_cdp_send(m.c, sessions[session], methods[session], NULL, 600000, on_reply, k);
  m.in_send = 0;
  FUZZ_CHECK(k->id > 0);
  FUZZ_CHECK(k == m.cmds || k->id > k[-1].id); /* ids grow */
  int reached = sent_id == k->id;
  k->state = (fails || !reached) ? FAILED_SEND : PENDING;
  return k;
}

static size_t model_waiting(void) {
  size_t w = 0;
  for (size_t i = 0; i < m.n; i++)
    w += m.cmds[i].state == PENDING || m.cmds[i].state == FAILED_SEND;
  return w;
}

/* The n-th waiting command, or NULL. */
static cmd *nth_waiting(size_t k) {
  size_t w = model_waiting();
  if (w == 0) return NULL;
  k %= w;
  for (size_t i = 0; i < m.n; i++)
    if ((m.cmds[i].state == PENDING || m.cmds[i].state == FAILED_SEND) && k-- == 0)
      return &m.cmds[i];
  return NULL;
}

static void on_reply(void *ud, int err, char *result, size_t len) {
  cmd *k = ud;
  FUZZ_CHECK(!m.in_send);
  FUZZ_CHECK(k->state == PENDING || k->state == FAILED_SEND); /* never after cancel or done */
  FUZZ_CHECK(++k->calls == 1);
  FUZZ_CHECK(result != NULL && result[len] == 0);
  if (err < 0) FUZZ_CHECK(strlen(result) == len);
  if (err == LC_CDP_ESEND) FUZZ_CHECK(k->state == FAILED_SEND);
  snprintf(k->result, sizeof k->result, "%s", result);
  k->state = DONE;
  k->err = err;
  FUZZ_CHECK(lc_cdp_cancel(m.c, k->id) == -1); /* no longer pending */
  if (freeing) return;
  uint8_t act = fuzz_u8(m.in);
  if (act % 4 == 1) send_one(fuzz_u8(m.in) % N_SESSIONS, 0, 0); /* send from a callback */
  if (act % 4 == 2) {
    cmd *other = nth_waiting(fuzz_u8(m.in));
    if (other) {
      FUZZ_CHECK(lc_cdp_cancel(m.c, other->id) == 0);
      other->state = CANCELLED;
    }
  }
}

static void on_event(void *ud, const char *session, const char *method, char *params, size_t len) {
  (void)ud;
  FUZZ_CHECK(session && method && params && params[len] == 0);
  m.events++;
  if (m.want_method) {
    FUZZ_CHECK(strcmp(session, m.want_session) == 0 && strcmp(method, m.want_method) == 0);
    FUZZ_CHECK(strcmp(params, m.want_params) == 0);
  }
}

static void on_closed(void *ud, const char *why) {
  (void)ud;
  FUZZ_CHECK(why != NULL);
  FUZZ_CHECK(++m.closed_calls == 1);
}

static void on_open(void *ud) {
  (void)ud;
  m.open_calls++;
}

/* Deliver one message as a transport does: writable, NUL-terminated, valid during the call. */
static void deliver(const char *text, size_t n) {
  if (fake->peer_closed) return; /* nothing arrives after the transport closed */
  char *msg = fuzz_strndup((const uint8_t *)text, n);
  fake->base.cbs.on_message(fake->base.cbs.ud, msg, n);
  free(msg);
}

/* A reply to some id, in one of several shapes; checks the callback when its outcome is known. */
static void op_reply(void) {
  uint8_t pick = fuzz_u8(m.in), shape = fuzz_u8(m.in) % 7;
  cmd *k = nth_waiting(pick);
  uint64_t id =
      k && pick < 0xC0 ? k->id : (m.n && (pick & 1) ? m.cmds[pick % m.n].id : pick + 1000u);
  int was_waiting = 0;
  for (size_t i = 0; i < m.n; i++)
    if (m.cmds[i].id == id) {
      k = &m.cmds[i];
      was_waiting = k->state == PENDING || k->state == FAILED_SEND;
    }
  char msg[256];
  const char *want = NULL, *want_text = NULL;
  int want_err = 0, fires = was_waiting;
  switch (shape) {
    case 0:
      snprintf(msg, sizeof msg, "{\"id\":%" PRIu64 ",\"result\":{\"frameId\":\"F\",\"n\":[1,{}]}}",
               id);
      want = "{\"frameId\":\"F\",\"n\":[1,{}]}";
      break;
    case 1:
      snprintf(msg, sizeof msg,
               "{\"id\":%" PRIu64
               ",\"error\":{\"code\":-32000,\"message\":\"No target\",\"data\":\"x\\\"y\"}}",
               id);
      want_err = LC_CDP_EPROTO;
      want_text = "No target: x\"y";
      break;
    case 2:
      snprintf(msg, sizeof msg, " { \"sessionId\" : \"S\" , \"id\" : %" PRIu64 " } ", id);
      want = "{}";
      break;
    case 3:
      snprintf(msg, sizeof msg, "{\"id\":%" PRIu64 ",\"result\":{\"v\":\"\\ud800\\u00e9\"}}", id);
      want = "{\"v\":\"\\uFFFD\\u00e9\"}";
      break;
    case 4: /* an id that is a string: not a reply at all */
      snprintf(msg, sizeof msg, "{\"id\":\"%" PRIu64 "\",\"result\":{}}", id);
      fires = 0;
      break;
    case 5: /* cut short: a malformed answer is an error, not an empty result */
      snprintf(msg, sizeof msg, "{\"id\":%" PRIu64 ",\"result\":{\"a\":[1,2", id);
      want_err = LC_CDP_EPROTO;
      want_text = "malformed reply";
      break;
    default:
      snprintf(msg, sizeof msg, "{\"id\":%" PRIu64 ",\"result\":\"plain\"}", id);
      want = "\"plain\"";
      break;
  }
  char toobig[96];
  if (fires && k->max_reply && strlen(msg) > k->max_reply) { /* the cap comes first */
    snprintf(toobig, sizeof toobig, "reply exceeds max_bytes (%zu)", k->max_reply);
    want = NULL;
    want_err = LC_CDP_ETOOBIG;
    want_text = toobig;
  }
  int calls = k ? k->calls : 0;
  deliver(msg, strlen(msg));
  if (fake->peer_closed || !k) return;
  if (!fires) {
    FUZZ_CHECK(k->calls == calls);
    return;
  }
  FUZZ_CHECK(k->calls == 1 && k->state == DONE && k->err == want_err);
  if (want) FUZZ_CHECK(strcmp(k->result, want) == 0);
  if (want_text) FUZZ_CHECK(strstr(k->result, want_text) != NULL);
}

static void op_event(void) {
  int s = fuzz_u8(m.in) % N_SESSIONS;
  const char *method = methods[fuzz_u8(m.in) % 4];
  char msg[256];
  int with_params = fuzz_u8(m.in) & 1;
  if (*sessions[s])
    snprintf(msg, sizeof msg, "{\"method\":\"%s\",\"sessionId\":\"%s\"%s}", method, sessions[s],
             with_params ? ",\"params\":{\"a\":\"\\udc00\"}" : "");
  else
    snprintf(msg, sizeof msg, "{\"method\":\"%s\"%s}", method,
             with_params ? ",\"params\":{\"a\":\"\\udc00\"}" : "");
  m.want_session = sessions[s];
  m.want_method = method;
  m.want_params = with_params ? "{\"a\":\"\\uFFFD\"}" : "{}";
  int before = m.events;
  deliver(msg, strlen(msg));
  m.want_method = NULL;
  if (!fake->peer_closed) FUZZ_CHECK(m.events == before + 1);
}

static uv_loop_t *loop(void) {
  static uv_loop_t l;
  static int init;
  if (!init && uv_loop_init(&l) != 0) abort();
  init = 1;
  return &l;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_in in = {data, size, 0};
  memset(&m, 0, sizeof m);
  m.in = &in;
  fake_closes = 0;
  freeing = 0;
  lc_cdp_cbs cbs = {on_open, on_event, on_closed, NULL};
  char *err = NULL;
  int refuse = 1; /* a transport that cannot be made: NULL and its message, nothing leaks */
  FUZZ_CHECK(lc_cdp_open(loop(), fake_open, &refuse, &cbs, &err) == NULL);
  FUZZ_CHECK(err && strcmp(err, "fake: connection refused") == 0);
  free(err);
  err = NULL;
  refuse = 0;
  m.c = lc_cdp_open(loop(), fake_open, &refuse, &cbs, &err);
  FUZZ_CHECK(m.c != NULL && err == NULL && fake != NULL);
  FUZZ_CHECK(m.open_calls == 0 && !lc_cdp_is_open(m.c)); /* nothing fires during open */
  while (!fuzz_done(&in)) {
    uint8_t op = fuzz_u8(&in);
    switch (op % 10) {
      case 0:
      case 1:
        send_one(fuzz_u8(&in) % N_SESSIONS, (op & 0x80) && (op & 0x40),
                 (op & 0x20) ? fuzz_u8(&in) : 0);
        break;
      case 2:
      case 3:
        op_reply();
        break;
      case 4:
        op_event();
        break;
      case 5: { /* garbage */
        size_t n;
        const uint8_t *p = fuzz_bytes(&in, 255, &n);
        deliver((const char *)p, n);
        break;
      }
      case 6: {
        cmd *k = nth_waiting(fuzz_u8(&in));
        if (k && !(op & 0x80)) {
          FUZZ_CHECK(lc_cdp_cancel(m.c, k->id) == 0);
          k->state = CANCELLED;
        } else {
          FUZZ_CHECK(lc_cdp_cancel(m.c, 1000000 + op) == -1);
        }
        break;
      }
      case 7: {
        int s = fuzz_u8(&in) % N_SESSIONS;
        lc_cdp_fail_session(m.c, sessions[s], "target crashed");
        for (size_t i = 0; i < m.n; i++)
          if (m.cmds[i].session == s && m.cmds[i].state != CANCELLED)
            FUZZ_CHECK(m.cmds[i].state == DONE); /* those sent by callbacks just now, too */
        break;
      }
      case 8: /* a loop turn: sends that could not be queued fail now */
        uv_run(loop(), UV_RUN_NOWAIT);
        for (size_t i = 0; i < m.n; i++) {
          FUZZ_CHECK(m.cmds[i].state != FAILED_SEND);
        }
        break;
      default:
        if (op & 0x80) {
          if (!fake->peer_closed && !lc_cdp_is_open(m.c)) {
            fake->base.cbs.on_open(fake->base.cbs.ud);
            FUZZ_CHECK(lc_cdp_is_open(m.c) && m.open_calls == 1);
          }
        } else if (!fake->peer_closed) {
          fake->peer_closed = 1; /* the browser went away */
          fake->base.cbs.on_close(fake->base.cbs.ud, "EOF");
          FUZZ_CHECK(m.closed_calls == 1 && !lc_cdp_is_open(m.c));
          for (size_t i = 0; i < m.n; i++) /* all that waited failed, before on_closed */
            FUZZ_CHECK(m.cmds[i].state == DONE || m.cmds[i].state == CANCELLED ||
                       m.cmds[i].state == FAILED_SEND);
        }
        break;
    }
    FUZZ_CHECK(lc_cdp_pending(m.c) == model_waiting());
  }
  freeing = 1;
  lc_cdp_free(m.c);
  FUZZ_CHECK(fake == NULL && fake_closes == 1);
  for (size_t i = 0; i < m.n; i++) {
    cmd *k = &m.cmds[i];
    FUZZ_CHECK(k->calls == (k->state == CANCELLED ? 0 : 1));
  }
  uv_run(loop(), UV_RUN_NOWAIT); /* the sweep timer's close callback frees it */
  FUZZ_CHECK(!uv_loop_alive(loop()));
  FUZZ_CHECK(m.closed_calls <= 1);
  return 0;
}
