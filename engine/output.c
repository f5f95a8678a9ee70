/* output.c: the JSON Lines sink: whole-line writes to a file or stdout (see output.h). */
#include "output.h"

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEEP_BUFFER ((size_t)1 << 20) /* a line buffer grown past this is freed after use */

typedef struct jsonl_sink {
  lc_sink base;
  int fd;
  int owns_fd;  /* 0 for stdout, which close leaves open */
  int regular;  /* a regular file: flush syncs it */
  int rollback; /* a file we opened for appending: a failed write can be truncated away */
  off_t size;   /* its size as far as we know (we are its only writer) */
  int broken;   /* errno of a failed write that left half a line; 0 while healthy */
  char *buf;    /* the record and its newline, for one write(2) */
  size_t cap;
} jsonl_sink;

/* Write all of p[0..n) to fd. Returns 0 or an errno value; *done gets the bytes written. */
static int write_all(int fd, const char *p, size_t n, size_t *done) {
  *done = 0;
  while (*done < n) {
    ssize_t w = write(fd, p + *done, n - *done);
    if (w > 0) {
      *done += (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) { /* a non-blocking stdout */
      struct pollfd pfd = {.fd = fd, .events = POLLOUT};
      if (poll(&pfd, 1, -1) < 0 && errno != EINTR) return errno;
      continue;
    }
    return w < 0 ? errno : EIO;
  }
  return 0;
}

static int jsonl_write(lc_sink *base, const char *json, size_t len) {
  jsonl_sink *s = (jsonl_sink *)base;
  if (!s || !json || len == 0 || memchr(json, '\n', len) || memchr(json, '\r', len)) return -EINVAL;
  if (s->broken) return -s->broken;
  if (len + 1 > s->cap) {
    char *buf = realloc(s->buf, len + 1);
    if (!buf) return -ENOMEM;
    s->buf = buf;
    s->cap = len + 1;
  }
  memcpy(s->buf, json, len);
  s->buf[len] = '\n';
  size_t done;
  int err = write_all(s->fd, s->buf, len + 1, &done);
  if (s->cap > KEEP_BUFFER) {
    free(s->buf);
    s->buf = NULL;
    s->cap = 0;
  }
  if (err) {
    /* Half a line must not stay, nor be followed by another line. */
    if (done > 0 && !(s->rollback && ftruncate(s->fd, s->size) == 0)) s->broken = err;
    return -err;
  }
  s->size += (off_t)(len + 1);
  s->base.records++;
  s->base.bytes += len + 1;
  return 0;
}

static int jsonl_flush(lc_sink *base) {
  jsonl_sink *s = (jsonl_sink *)base;
  if (!s) return -EINVAL;
  if (s->regular && fdatasync(s->fd) < 0) return -errno;
  return 0;
}

static void jsonl_close(lc_sink *base) {
  jsonl_sink *s = (jsonl_sink *)base;
  if (!s) return;
  if (s->owns_fd) close(s->fd);
  free(s->buf);
  free(s);
}

static const lc_sink_ops jsonl_ops = {
    .write = jsonl_write,
    .flush = jsonl_flush,
    .close = jsonl_close,
};

/* A malloc'ed "what 'path': reason", or NULL. */
static char *describe(const char *what, const char *path, int err) {
  const char *reason = strerror(err);
  size_t n = strlen(what) + strlen(path) + strlen(reason) + 8;
  char *msg = malloc(n);
  if (msg) snprintf(msg, n, "%s '%s': %s", what, path, reason);
  return msg;
}

lc_sink *lc_sink_jsonl_open(const char *path, char **err) {
  if (err) *err = NULL;
  int to_stdout = !path || strcmp(path, "-") == 0;
  const char *name = to_stdout ? "-" : path;
  jsonl_sink *s = calloc(1, sizeof *s);
  if (!s) {
    if (err) *err = describe("cannot open", name, ENOMEM);
    return NULL;
  }
  s->base.ops = &jsonl_ops;
  s->fd = STDOUT_FILENO;
  if (!to_stdout) {
    s->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (s->fd < 0) {
      if (err) *err = describe("cannot open", name, errno);
      free(s);
      return NULL;
    }
    s->owns_fd = 1;
  }
  struct stat st;
  if (fstat(s->fd, &st) < 0) {
    if (err) *err = describe("cannot stat", name, errno);
    if (s->owns_fd) close(s->fd);
    free(s);
    return NULL;
  }
  s->regular = S_ISREG(st.st_mode);
  s->rollback = s->regular && s->owns_fd;
  s->size = st.st_size;
  return &s->base;
}

int lc_sink_count(const lc_sink *s, uint64_t *records, uint64_t *bytes) {
  if (!s) return -EINVAL;
  if (records) *records = s->records;
  if (bytes) *bytes = s->bytes;
  return 0;
}
