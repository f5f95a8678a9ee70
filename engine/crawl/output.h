/* output.h: the output sink interface, and its JSON Lines backend.
 *
 * Owns: where crawl results go and the guarantee that they arrive as whole records. Backends
 * sit behind lc_sink_ops (a database or queue backend can come later); the JSON Lines one
 * writes one record per line to a file or to stdout.
 *
 * Errors are negative errno values (strerror(-rc) describes them), as in libuv.
 */
#ifndef LC_OUTPUT_H
#define LC_OUTPUT_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct lc_sink lc_sink;

typedef struct lc_sink_ops {
  /* Write one record: `len` bytes of JSON text, without a trailing newline. A queued sink
   * takes it whole or refuses it whole (-ENOBUFS when its backlog is full). */
  int (*write)(lc_sink *s, const char *json, size_t len);
  /* Push queued bytes without blocking: 0 when nothing is left, -EAGAIN when bytes remain
   * (call again later), else the failure (-EPIPE: the reader went away). */
  int (*drain)(lc_sink *s);
  /* Bytes accepted but not yet handed to the OS (0 for a sink that does not queue). */
  size_t (*backlog)(const lc_sink *s);
  /* Make what was written durable (or at least handed to the OS). */
  int (*flush)(lc_sink *s);
  /* Release the sink. */
  void (*close)(lc_sink *s);
} lc_sink_ops;

struct lc_sink {
  const lc_sink_ops *ops;
  uint64_t records; /* records written (queued mode: accepted), kept by the backend */
  uint64_t bytes;   /* bytes written, newlines included */
};

/* Open a JSON Lines sink on `path`, or on stdout when path is NULL or "-". A file is
 * truncated (created 0644 if missing: `-o FILE` means this run's records, as users expect of
 * an output option; a resumable frontier will add an explicit append mode), and the sink
 * assumes it is the file's only writer.
 *
 * write: the record plus "\n" goes out in one write(2) (looping on partial writes, EINTR, and
 *   EAGAIN on a non-blocking stdout), so a killed run leaves only whole lines. -EINVAL for
 *   NULL, empty, or JSON holding a raw line break ('\n' or '\r': JSON escapes them in strings,
 *   and a bare '\r' splits lines for many readers); the JSON is not otherwise validated. If a
 *   write fails part way, a file is truncated back to its last whole line and the error
 *   returned; where that is impossible (stdout, a pipe) the sink refuses every later write
 *   with the same error, rather than append to half a line. A closed pipe gives -EPIPE only if
 *   the process ignores SIGPIPE (the engine does).
 * flush: fdatasync() for a regular file (a durability point: call it at checkpoints, not per
 *   record); 0 for anything else.
 * close: closes the file; stdout is left open.
 *
 * Returns NULL on failure with *err (when err is not NULL) set to a malloc'ed message naming
 * the path, which the caller frees. Released by lc_sink_close(). */
lc_sink *lc_sink_jsonl_open(const char *path, char **err);

/* Like lc_sink_jsonl_open, for a resumed crawl: a file is not truncated to empty but to
 * `offset` (the bytes of committed records written before), and appended to. A file shorter
 * than offset, or not a regular file, is refused with a message. stdout (path NULL or "-") or
 * offset < 0 open as lc_sink_jsonl_open does. */
lc_sink *lc_sink_jsonl_open_at(const char *path, int64_t offset, char **err);

/* Queued mode, for a sink on a pipe, socket or terminal that the engine's loop drives: write
 * appends the whole record to a queue of at most `max_backlog` bytes (one record bigger than
 * that is taken when the queue is empty) and pushes what the fd takes without blocking (poll
 * with no wait, then at most PIPE_BUF bytes per write(2); O_NONBLOCK is never set, since the
 * file description may be shared); drain pushes more; backlog tells what waits. The caller
 * pauses its producers while the backlog is high and drains when it can (the engine: a
 * timer). flush waits (poll) until the queue is out; close drops what is still queued. A
 * failed write (EPIPE, ENOSPC, EIO) breaks the sink: the queue is dropped and every later call
 * returns that error. Returns 1 when queued mode is on, 0 for a regular file (written
 * directly, as before: it never blocks), -EINVAL for a bad argument. */
int lc_sink_jsonl_queue(lc_sink *s, size_t max_backlog);

/* The system calls a JSON Lines sink makes, replaceable for tests: write(2), and "does fd take
 * a write now" (poll(2) with no wait: 1 yes, 0 no, -errno). write sets errno on failure. */
typedef struct lc_sink_io {
  ssize_t (*write)(void *ud, int fd, const void *p, size_t n);
  int (*writable)(void *ud, int fd);
  void *ud;
} lc_sink_io;
int lc_sink_jsonl_set_io(lc_sink *s, const lc_sink_io *io);

/* Records and bytes written so far through `s` (either pointer may be NULL). 0 or -EINVAL. */
int lc_sink_count(const lc_sink *s, uint64_t *records, uint64_t *bytes);

/* Wrappers over ops, checking s first. */
static inline int lc_sink_write(lc_sink *s, const char *json, size_t len) {
  return s ? s->ops->write(s, json, len) : -EINVAL;
}
static inline int lc_sink_flush(lc_sink *s) { return s ? s->ops->flush(s) : -EINVAL; }
static inline int lc_sink_drain(lc_sink *s) { return s ? s->ops->drain(s) : -EINVAL; }
static inline size_t lc_sink_backlog(const lc_sink *s) { return s ? s->ops->backlog(s) : 0; }
static inline void lc_sink_close(lc_sink *s) {
  if (s) s->ops->close(s);
}

#endif
