/* pipe.h: the CDP transport to a browser we launched with --remote-debugging-pipe.
 * Owns: the engine's end of the socketpair whose other end is the browser's fds 3 and 4, its
 * receive buffer (split on NUL across reads, each message capped) and its write queue. */
#ifndef LC_PIPE_H
#define LC_PIPE_H

#include <stddef.h>
#include <uv.h>

#include "transport.h"

/* The default cap on one message from the browser (a 10 MB page is a 10+ MB message). */
#define LC_PIPE_MAX_MESSAGE (256u * 1024 * 1024)

typedef struct lc_pipe_args {
  uv_loop_t *loop;
  int fd;             /* the engine's end (read and write); owned by the transport from here on,
                         also when opening fails */
  size_t max_message; /* 0: LC_PIPE_MAX_MESSAGE */
} lc_pipe_args;

/* An lc_transport_open_fn: arg is an lc_pipe_args. on_open fires on the next loop turn; a
 * message longer than max_message is dropped as it arrives (never buffered whole) and
 * reported to on_oversize, or, without that callback, ends the connection (on_close). */
lc_transport *lc_pipe_open(void *arg, const lc_transport_cbs *cbs, char **err);

#endif
