/* pipe.c: CDP over --remote-debugging-pipe (see pipe.h).
 * Chromium reads commands from fd 3 and writes replies and events to fd 4, each message JSON
 * followed by one NUL byte. Both are one end of a socketpair here, so one uv_pipe_t reads and
 * writes. A read may end anywhere, in a message or between several: bytes are appended to one
 * buffer, every complete message in it is handed over in place (its NUL is already there), and
 * the unfinished rest moves to the front. */
#include "pipe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PIPE_READ_CHUNK 65536
#define PIPE_KEEP_CAP (4 * PIPE_READ_CHUNK) /* a bigger buffer is given back when empty */

typedef struct lc_pipe {
  lc_transport base; /* first: an lc_pipe is an lc_transport */
  uv_pipe_t io;
  uv_timer_t opener; /* fires on_open on the next loop turn */
  char *rx;
  size_t rx_len, rx_cap, scanned; /* scanned: bytes of rx known to hold no NUL */
  size_t max_message;
  int skipping;                 /* dropping a message over max_message, up to its NUL */
  size_t skipped;               /* its length so far */
  char head[LC_TRANSPORT_HEAD]; /* its first bytes, for on_oversize */
  size_t head_len;
  int handles; /* open handles; the memory goes when the last one is closed */
  int closing; /* close() was called: no more callbacks */
  int dead;    /* the connection ended (reported once) */
} lc_pipe;

typedef struct pipe_write {
  uv_write_t req;
  lc_pipe *p;
  size_t len;
  char data[]; /* the message and its NUL */
} pipe_write;

static void pipe_handle_closed(uv_handle_t *h) {
  lc_pipe *p = h->data;
  if (--p->handles > 0) return;
  free(p->rx);
  free(p);
}

static void pipe_shutdown_handles(lc_pipe *p) {
  if (!uv_is_closing((uv_handle_t *)&p->io)) {
    uv_read_stop((uv_stream_t *)&p->io);
    uv_close((uv_handle_t *)&p->io, pipe_handle_closed);
  }
  if (!uv_is_closing((uv_handle_t *)&p->opener))
    uv_close((uv_handle_t *)&p->opener, pipe_handle_closed);
}

/* The connection ended: report once (unless the owner let go), stop reading. */
static void pipe_fail(lc_pipe *p, const char *why) {
  if (p->dead) return;
  p->dead = 1;
  uv_read_stop((uv_stream_t *)&p->io);
  if (!p->closing && p->base.cbs.on_close) p->base.cbs.on_close(p->base.cbs.ud, why);
}

static void pipe_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  lc_pipe *p = h->data;
  (void)suggested;
  if (p->rx_cap - p->rx_len < PIPE_READ_CHUNK + 1) {
    size_t cap = p->rx_cap ? p->rx_cap : PIPE_READ_CHUNK * 2;
    while (cap - p->rx_len < PIPE_READ_CHUNK + 1) cap *= 2;
    char *n = realloc(p->rx, cap);
    if (!n) {
      *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS to read_cb */
      return;
    }
    p->rx = n;
    p->rx_cap = cap;
  }
  *buf = uv_buf_init(p->rx + p->rx_len, PIPE_READ_CHUNK);
}

/* Hands over every complete message in rx; keeps the unfinished rest at the front. */
static void pipe_deliver(lc_pipe *p) {
  size_t start = 0;
  while (!p->closing && !p->dead) {
    if (p->skipping) { /* the rest of a message too large to keep: up to its NUL */
      char *end = memchr(p->rx + start, '\0', p->rx_len - start);
      if (!end) {
        p->skipped += p->rx_len - start;
        start = p->rx_len;
        break;
      }
      p->skipped += (size_t)(end - (p->rx + start));
      start = (size_t)(end - p->rx) + 1;
      p->scanned = start;
      p->skipping = 0;
      p->base.cbs.on_oversize(p->base.cbs.ud, p->head, p->head_len, p->skipped);
      continue;
    }
    char *nul = memchr(p->rx + p->scanned, '\0', p->rx_len - p->scanned);
    if (!nul) {
      p->scanned = p->rx_len;
      break;
    }
    size_t end = (size_t)(nul - p->rx);
    size_t len = end - start;
    p->scanned = end + 1;
    /* rx stays valid through the call even if the callback closes us: it is freed only in
     * the close callback, on a later loop turn. */
    if (len > 0 && p->base.cbs.on_message)
      p->base.cbs.on_message(p->base.cbs.ud, p->rx + start, len);
    start = end + 1;
  }
  if (p->closing || p->dead) return;
  /* What is left is one unfinished message: the cap applies to it. */
  size_t rest = p->rx_len - start;
  if (!p->skipping && rest > p->max_message && p->base.cbs.on_oversize) {
    /* Keep its head, drop the rest as it comes: the connection goes on. */
    p->head_len = rest < sizeof p->head ? rest : sizeof p->head;
    memcpy(p->head, p->rx + start, p->head_len);
    p->skipped = rest;
    p->skipping = 1;
    start = p->rx_len;
    rest = 0;
  }
  if (p->skipping) {
    p->rx_len = 0;
    p->scanned = 0;
    return;
  }
  if (rest > p->max_message) {
    char why[160];
    snprintf(why, sizeof why, "a message from the browser is larger than %zu bytes",
             p->max_message);
    pipe_fail(p, why);
    return;
  }
  if (start > 0) {
    memmove(p->rx, p->rx + start, rest);
    p->rx_len = rest;
    p->scanned -= start;
  }
  if (rest == 0 && p->rx_cap > PIPE_KEEP_CAP) {
    free(p->rx); /* a huge message leaves a huge buffer: give it back */
    p->rx = NULL;
    p->rx_cap = 0;
    p->scanned = 0;
  }
}

static void pipe_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  lc_pipe *p = s->data;
  (void)buf;
  if (p->closing || p->dead) return;
  if (n == UV_EOF) {
    pipe_fail(p, "the browser closed the pipe");
    return;
  }
  if (n < 0) {
    char why[160];
    snprintf(why, sizeof why, "reading from the browser pipe failed: %s", uv_strerror((int)n));
    pipe_fail(p, why);
    return;
  }
  p->rx_len += (size_t)n;
  pipe_deliver(p);
}

static void pipe_opened(uv_timer_t *t) {
  lc_pipe *p = t->data;
  if (p->closing || p->dead) return;
  if (p->base.cbs.on_open) p->base.cbs.on_open(p->base.cbs.ud);
}

static void pipe_written(uv_write_t *req, int status) {
  pipe_write *w = req->data;
  lc_pipe *p = w->p; /* alive: libuv runs write callbacks before the close callback */
  free(w);
  if (status < 0 && status != UV_ECANCELED && !p->closing) {
    char why[160];
    snprintf(why, sizeof why, "writing to the browser pipe failed: %s", uv_strerror(status));
    pipe_fail(p, why);
  }
}

static int pipe_send(lc_transport *t, const char *msg, size_t len) {
  lc_pipe *p = (lc_pipe *)t;
  if (p->closing || p->dead) return -EPIPE;
  if (memchr(msg, '\0', len)) return -EINVAL; /* would split into two messages */
  pipe_write *w = malloc(sizeof *w + len + 1);
  if (!w) return -ENOMEM;
  w->p = p;
  w->len = len + 1;
  memcpy(w->data, msg, len);
  w->data[len] = '\0';
  w->req.data = w;
  uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);
  int r = uv_write(&w->req, (uv_stream_t *)&p->io, &b, 1, pipe_written);
  if (r < 0) {
    free(w);
    return r;
  }
  return 0;
}

static void pipe_close(lc_transport *t) {
  lc_pipe *p = (lc_pipe *)t;
  if (p->closing) {
    fprintf(stderr, "lc_pipe: closed twice (%p)\n", (void *)p);
    abort();
  }
  p->closing = 1;
  pipe_shutdown_handles(p);
}

static const lc_transport_ops pipe_ops = {"pipe", pipe_send, pipe_close};

lc_transport *lc_pipe_open(void *arg, const lc_transport_cbs *cbs, char **err) {
  const lc_pipe_args *a = arg;
  lc_pipe *p = calloc(1, sizeof *p);
  if (!p) {
    close(a->fd);
    *err = strdup("out of memory");
    return NULL;
  }
  p->base.ops = &pipe_ops;
  p->base.cbs = *cbs;
  p->max_message = a->max_message ? a->max_message : LC_PIPE_MAX_MESSAGE;
  uv_timer_init(a->loop, &p->opener); /* cannot fail */
  p->opener.data = p;
  p->handles = 1;
  int opened = 0; /* the pipe handle owns the fd */
  int r = uv_pipe_init(a->loop, &p->io, 0);
  if (r == 0) {
    p->io.data = p;
    p->handles++;
    r = uv_pipe_open(&p->io, a->fd);
    opened = r == 0;
  }
  if (r == 0) r = uv_read_start((uv_stream_t *)&p->io, pipe_alloc, pipe_read);
  if (r == 0) r = uv_timer_start(&p->opener, pipe_opened, 0, 0);
  if (r < 0) {
    char buf[160];
    snprintf(buf, sizeof buf, "cannot open the browser pipe: %s", uv_strerror(r));
    *err = strdup(buf);
    if (!opened) close(a->fd);
    p->closing = 1;
    uv_close((uv_handle_t *)&p->opener, pipe_handle_closed);
    if (p->handles == 2) uv_close((uv_handle_t *)&p->io, pipe_handle_closed);
    return NULL; /* p is freed on the loop's next run */
  }
  return &p->base;
}
