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

typedef struct lc_sink lc_sink;

typedef struct lc_sink_ops {
  /* Write one record: `len` bytes of JSON text, without a trailing newline. */
  int (*write)(lc_sink *s, const char *json, size_t len);
  /* Make what was written durable (or at least handed to the OS). */
  int (*flush)(lc_sink *s);
  /* Release the sink. */
  void (*close)(lc_sink *s);
} lc_sink_ops;

struct lc_sink {
  const lc_sink_ops *ops;
  uint64_t records; /* records written, kept by the backend; read with lc_sink_count */
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

/* Records and bytes written so far through `s` (either pointer may be NULL). 0 or -EINVAL. */
int lc_sink_count(const lc_sink *s, uint64_t *records, uint64_t *bytes);

/* Wrappers over ops, checking s first. */
static inline int lc_sink_write(lc_sink *s, const char *json, size_t len) {
  return s ? s->ops->write(s, json, len) : -EINVAL;
}
static inline int lc_sink_flush(lc_sink *s) { return s ? s->ops->flush(s) : -EINVAL; }
static inline void lc_sink_close(lc_sink *s) {
  if (s) s->ops->close(s);
}

#endif
