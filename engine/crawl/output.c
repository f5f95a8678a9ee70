/* output.c: the JSON Lines sink: whole-line writes to a file or stdout, directly or through a
 * bounded queue drained without blocking (see output.h). */
#include "output.h"

#include <fcntl.h>
#include <limits.h>
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
  /* Queued mode (lc_sink_jsonl_queue, not for regular files): whole records wait in q[qoff..qlen)
   * and go out in chunks the fd takes without blocking. */
  int queued;
  size_t max_backlog;
  char *q;
  size_t qoff, qlen, qcap;
  lc_sink_io io;
} jsonl_sink;

static ssize_t sys_write(void *ud, int fd, const void *p, size_t n) {
  (void)ud;
  return write(fd, p, n);
}

/* poll(2) with no wait: 1 if fd takes a write now (or will fail at once: POLLERR, POLLHUP), 0 if
 * not, or -errno. */
static int sys_writable(void *ud, int fd) {
  (void)ud;
  struct pollfd pfd = {.fd = fd, .events = POLLOUT};
  int n = poll(&pfd, 1, 0);
  if (n < 0) return errno == EINTR ? 0 : -errno;
  return n > 0 && (pfd.revents & (POLLOUT | POLLERR | POLLHUP | POLLNVAL)) ? 1 : 0;
}

static const lc_sink_io default_io = {.write = sys_write, .writable = sys_writable, .ud = NULL};

/* Write all of p[0..n) to fd. Returns 0 or an errno value; *done gets the bytes written. */
static int write_all(jsonl_sink *s, const char *p, size_t n, size_t *done) {
  int fd = s->fd;
  *done = 0;
  while (*done < n) {
    ssize_t w = s->io.write(s->io.ud, fd, p + *done, n - *done);
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

/* Push queued bytes while the fd takes them without blocking: after poll(2) reports room, a
 * write of at most PIPE_BUF bytes does not block on a pipe (a reader can always take that
 * much at once, and we never set O_NONBLOCK on a file description others may share; if someone
 * else did, EAGAIN and short writes are handled too). 0: the queue is empty; -EAGAIN: bytes
 * are left; else the failure (the sink is then broken and the queue dropped). */
static int queue_drain(jsonl_sink *s) {
  if (s->broken) return -s->broken;
  while (s->qoff < s->qlen) {
    int ok = s->io.writable(s->io.ud, s->fd);
    if (ok < 0) {
      s->broken = -ok;
      break;
    }
    if (ok == 0) return -EAGAIN;
    size_t n = s->qlen - s->qoff;
    if (n > PIPE_BUF) n = PIPE_BUF;
    ssize_t w = s->io.write(s->io.ud, s->fd, s->q + s->qoff, n);
    if (w > 0) {
      s->qoff += (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return -EAGAIN;
    s->broken = w < 0 ? errno : EIO;
    break;
  }
  if (s->broken) {
    free(s->q);
    s->q = NULL;
    s->qoff = s->qlen = s->qcap = 0;
    return -s->broken;
  }
  /* Empty: start over at the front, and give back a buffer a burst grew. */
  s->qoff = s->qlen = 0;
  if (s->qcap > KEEP_BUFFER) {
    free(s->q);
    s->q = NULL;
    s->qcap = 0;
  }
  return 0;
}

/* Queue the record whole (or refuse it whole), then push what the fd takes now. */
static int queue_write(jsonl_sink *s, const char *json, size_t len) {
  size_t backlog = s->qlen - s->qoff;
  if (backlog > 0 && backlog + len + 1 > s->max_backlog) return -ENOBUFS;
  if (s->qoff > 0 && s->qlen + len + 1 > s->qcap) { /* slide the backlog to the front */
    memmove(s->q, s->q + s->qoff, backlog);
    s->qoff = 0;
    s->qlen = backlog;
  }
  if (s->qlen + len + 1 > s->qcap) {
    size_t cap = s->qcap ? s->qcap : 64 * 1024;
    while (cap < s->qlen + len + 1) cap *= 2;
    char *q = realloc(s->q, cap);
    if (!q) return -ENOMEM;
    s->q = q;
    s->qcap = cap;
  }
  memcpy(s->q + s->qlen, json, len);
  s->q[s->qlen + len] = '\n';
  s->qlen += len + 1;
  int rc = queue_drain(s);
  if (rc != 0 && rc != -EAGAIN) return rc; /* broken: this record did not get through */
  s->base.records++;
  s->base.bytes += len + 1;
  return 0;
}

static int jsonl_write(lc_sink *base, const char *json, size_t len) {
  jsonl_sink *s = (jsonl_sink *)base;
  if (!s || !json || len == 0 || memchr(json, '\n', len) || memchr(json, '\r', len)) return -EINVAL;
  if (s->broken) return -s->broken;
  if (s->queued) return queue_write(s, json, len);
  if (len + 1 > s->cap) {
    char *buf = realloc(s->buf, len + 1);
    if (!buf) return -ENOMEM;
    s->buf = buf;
    s->cap = len + 1;
  }
  memcpy(s->buf, json, len);
  s->buf[len] = '\n';
  size_t done;
  int err = write_all(s, s->buf, len + 1, &done);
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

static int jsonl_drain(lc_sink *base) {
  jsonl_sink *s = (jsonl_sink *)base;
  if (!s) return -EINVAL;
  if (s->broken) return -s->broken;
  return s->queued ? queue_drain(s) : 0;
}

static size_t jsonl_backlog(const lc_sink *base) {
  const jsonl_sink *s = (const jsonl_sink *)base;
  return s && s->queued ? s->qlen - s->qoff : 0;
}

static int jsonl_flush(lc_sink *base) {
  jsonl_sink *s = (jsonl_sink *)base;
  if (!s) return -EINVAL;
  if (s->queued) { /* blocking: wait for the reader */
    int rc;
    while ((rc = queue_drain(s)) == -EAGAIN) {
      struct pollfd pfd = {.fd = s->fd, .events = POLLOUT};
      if (poll(&pfd, 1, -1) < 0 && errno != EINTR) return -errno;
    }
    return rc;
  }
  if (s->regular && fdatasync(s->fd) < 0) return -errno;
  return 0;
}

static void jsonl_close(lc_sink *base) {
  jsonl_sink *s = (jsonl_sink *)base;
  if (!s) return;
  if (s->owns_fd) close(s->fd);
  free(s->buf);
  free(s->q);
  free(s);
}

static const lc_sink_ops jsonl_ops = {
    .write = jsonl_write,
    .drain = jsonl_drain,
    .backlog = jsonl_backlog,
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
  s->io = default_io;
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

lc_sink *lc_sink_jsonl_open_at(const char *path, int64_t offset, char **err) {
  if (err) *err = NULL;
  if (!path || strcmp(path, "-") == 0 || offset < 0) return lc_sink_jsonl_open(path, err);
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0) {
    if (err) *err = describe("cannot open", path, errno);
    if (fd >= 0) close(fd);
    return NULL;
  }
  if (!S_ISREG(st.st_mode) || st.st_size < offset) {
    if (err) {
      char why[600];
      snprintf(why, sizeof why,
               "%s holds %lld bytes, fewer than the %lld the state file says were written: it "
               "was changed since (remove the state file to start again)",
               path, (long long)st.st_size, (long long)offset);
      *err = strdup(why);
    }
    close(fd);
    return NULL;
  }
  /* Lines written after the last commit are written again from the committed records. */
  if (st.st_size > offset && ftruncate(fd, offset) != 0) {
    if (err) *err = describe("cannot truncate", path, errno);
    close(fd);
    return NULL;
  }
  jsonl_sink *s = calloc(1, sizeof *s);
  if (!s) {
    if (err) *err = describe("cannot open", path, ENOMEM);
    close(fd);
    return NULL;
  }
  s->base.ops = &jsonl_ops;
  s->io = default_io;
  s->fd = fd;
  s->owns_fd = 1;
  s->regular = 1;
  s->rollback = 1;
  s->size = offset;
  return &s->base;
}

int lc_sink_jsonl_queue(lc_sink *base, size_t max_backlog) {
  jsonl_sink *s = (jsonl_sink *)base;
  if (!s || s->base.ops != &jsonl_ops || max_backlog == 0) return -EINVAL;
  if (s->regular) return 0; /* a regular file takes every write at once */
  s->queued = 1;
  s->max_backlog = max_backlog;
  return 1;
}

int lc_sink_jsonl_set_io(lc_sink *base, const lc_sink_io *io) {
  jsonl_sink *s = (jsonl_sink *)base;
  if (!s || s->base.ops != &jsonl_ops || !io || !io->write || !io->writable) return -EINVAL;
  s->io = *io;
  return 0;
}

int lc_sink_count(const lc_sink *s, uint64_t *records, uint64_t *bytes) {
  if (!s) return -EINVAL;
  if (records) *records = s->records;
  if (bytes) *bytes = s->bytes;
  return 0;
}
