/* fuzz_output.c: the JSON Lines sink (engine/output.h) while write(2) and poll(2) misbehave.
 *
 * The seam is the sink's own: lc_sink_jsonl_set_io replaces its write and "is the fd writable"
 * calls with the ones below, which do what the input says: write it all, write a short prefix,
 * fail with EINTR, EAGAIN, EPIPE or ENOSPC, or return 0 (EIO); the fd is writable, not
 * writable, or poll fails (EIO). Three sinks, chosen by the first byte:
 *   - a regular file, written directly: writes really reach the file (so the sink's
 *     truncate-back is real), and lc_sink_jsonl_queue leaves it direct (returns 0);
 *   - /dev/null, written directly (a stream: no truncate-back, like stdout or a pipe);
 *   - /dev/null in queued mode with a small max_backlog (from the input), with drain and flush
 *     operations mixed in.
 * Stream writes are captured in memory and never reach the fd.
 *
 * Properties, direct: a write returns 0 exactly when its whole line went out (EINTR, EAGAIN and
 * short writes are retried), or the hard error otherwise; a record with a raw CR or LF, or
 * empty, is refused with -EINVAL before any write; a file holds exactly the acknowledged lines
 * after every write, failed or not; a stream holds the acknowledged lines and, once a write
 * failed part way, that line's prefix and nothing after it, every later write failing with the
 * same error.
 * Queued: a record is accepted whole or refused whole (-ENOBUFS exactly when the backlog is
 * non-empty and the record would take it past max_backlog, with nothing written); no write
 * exceeds PIPE_BUF; what went out is always a prefix of the accepted records (no byte twice,
 * none skipped) and the backlog is exactly the rest; the backlog stays within max_backlog, or
 * one record taken into an empty queue; drain returns 0 exactly when the backlog is empty and
 * -EAGAIN while bytes remain; a hard failure (of write or poll) breaks the sink: backlog 0,
 * nothing more is ever written, every later call returns that error (the one cut line the
 * contract allows); a final flush of a healthy sink puts out every accepted record whole.
 * Both: the record and byte counts agree with the records accepted. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "output.h"

enum { FILE_DIRECT, STREAM_DIRECT, STREAM_QUEUED };

static struct {
  int mode;
  fuzz_in *in;
  int fd;         /* the sink's fd, as seen by the first call */
  int broken;     /* the sink is known broken: no call may reach write any more */
  int hard_error; /* errno of the failure this call met (EIO for a 0 return), or 0 */
  size_t written; /* bytes this call got out */
  char *captured; /* stream modes: everything "written" */
  size_t cap_n, cap_cap;
  size_t checked; /* captured[0..checked) was compared already (both only grow) */
} g;

static void append(char **buf, size_t *n, size_t *cap, const void *p, size_t len) {
  if (*n + len > *cap) {
    *cap = (*n + len) * 2;
    *buf = realloc(*buf, *cap);
    if (!*buf) abort();
  }
  memcpy(*buf + *n, p, len);
  *n += len;
}

static void see_fd(int fd) {
  if (g.fd < 0) g.fd = fd;
  FUZZ_CHECK(fd == g.fd);
}

static ssize_t pass(int fd, const void *buf, size_t n) {
  if (g.mode == FILE_DIRECT) return write(fd, buf, n);
  append(&g.captured, &g.cap_n, &g.cap_cap, buf, n);
  return (ssize_t)n;
}

static ssize_t fake_write(void *ud, int fd, const void *buf, size_t n) {
  (void)ud;
  see_fd(fd);
  FUZZ_CHECK(!g.broken);
  FUZZ_CHECK(g.hard_error == 0); /* no write after a hard error within one call */
  FUZZ_CHECK(n > 0);
  if (g.mode == STREAM_QUEUED) FUZZ_CHECK(n <= PIPE_BUF); /* never blocks on a pipe */
  uint8_t a = fuzz_u8(g.in);
  ssize_t w;
  switch (a % 8) {
    case 1: /* short write */
      w = pass(fd, buf, n > 1 ? 1 + (size_t)fuzz_u8(g.in) % (n - 1) : n);
      break;
    case 2:
      errno = EINTR;
      return -1;
    case 3:
      errno = EAGAIN;
      return -1;
    case 4:
      g.hard_error = errno = EPIPE;
      return -1;
    case 5:
      g.hard_error = errno = ENOSPC;
      return -1;
    case 6:
      g.hard_error = EIO; /* write returned 0: the sink calls that EIO */
      return 0;
    default:
      w = pass(fd, buf, n);
      break;
  }
  if (w > 0) g.written += (size_t)w;
  return w;
}

/* Past the end of the input the fd is always writable and writes succeed: flush ends. */
static int fake_writable(void *ud, int fd) {
  (void)ud;
  see_fd(fd);
  FUZZ_CHECK(!g.broken);
  FUZZ_CHECK(g.hard_error == 0);
  uint8_t a = fuzz_u8(g.in) % 8;
  if (a == 7) {
    g.hard_error = EIO;
    return -EIO;
  }
  return a < 5;
}

/* captured[0..upto) == expect[0..upto), for upto <= cap_n; compares only what was not
 * compared yet (captured and expect only grow, upto never shrinks). */
static int same_prefix(const char *expect, size_t upto) {
  FUZZ_CHECK(upto <= g.cap_n && upto >= g.checked);
  int same = memcmp(g.captured + g.checked, expect + g.checked, upto - g.checked) == 0;
  g.checked = upto;
  return same;
}

static size_t file_size(const char *path) {
  struct stat st;
  FUZZ_CHECK(stat(path, &st) == 0);
  return (size_t)st.st_size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_in in = {data, size, 0};
  memset(&g, 0, sizeof g);
  g.in = &in;
  g.fd = -1;
  g.mode = fuzz_u8(&in) % 3;
  char path[64];
  /* tmpfs when there is one: truncating a file on a journaled disk costs milliseconds */
  snprintf(path, sizeof path, "%s/lc_fuzz_output.%d",
           access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (int)getpid());
  char *err = NULL;
  lc_sink *s = lc_sink_jsonl_open(g.mode == FILE_DIRECT ? path : "/dev/null", &err);
  FUZZ_CHECK(s != NULL && err == NULL);
  lc_sink_io io = {fake_write, fake_writable, NULL};
  FUZZ_CHECK(lc_sink_jsonl_set_io(s, &io) == 0);
  size_t max_backlog = 0, bound = 0;
  if (g.mode == FILE_DIRECT) FUZZ_CHECK(lc_sink_jsonl_queue(s, 4096) == 0); /* stays direct */
  if (g.mode == STREAM_QUEUED) {
    max_backlog = 1 + fuzz_u16(&in) % 2048;
    bound = max_backlog;
    FUZZ_CHECK(lc_sink_jsonl_queue(s, max_backlog) == 1);
  }
  char *expect = NULL; /* direct: acknowledged lines; queued: accepted lines (+ the failed one) */
  size_t exp_n = 0, exp_cap = 0, records = 0, bytes = 0;
  int broken = 0; /* the error that broke the sink */
  size_t partial = 0;
  while (!fuzz_done(&in)) {
    uint8_t kind = fuzz_u8(&in);
    g.hard_error = 0;
    g.written = 0;
    if (g.mode == STREAM_QUEUED && (kind == 0xFE || kind == 0xFD)) { /* drain, or flush */
      size_t before = lc_sink_backlog(s);
      int rc = kind == 0xFE ? lc_sink_drain(s) : lc_sink_flush(s);
      if (broken) {
        FUZZ_CHECK(rc == -broken && g.written == 0);
      } else if (g.hard_error) {
        FUZZ_CHECK(rc == -g.hard_error);
        broken = g.hard_error;
      } else {
        size_t after = lc_sink_backlog(s);
        FUZZ_CHECK(after <= before);
        FUZZ_CHECK(rc == (after == 0 ? 0 : -EAGAIN));
        if (kind == 0xFD) FUZZ_CHECK(rc == 0); /* flush waits it out */
      }
    } else {
      size_t len;
      char *rec;
      if (kind == 0xFF && fuzz_u8(&in) == 0xFF) { /* past the sink's kept buffer (1 MiB) */
        len = ((size_t)1 << 20) + fuzz_u8(&in);
        rec = malloc(len);
        if (!rec) abort();
        memset(rec, 'x', len);
      } else {
        const uint8_t *p = fuzz_bytes(&in, 200, &len);
        rec = malloc(len ? len : 1);
        if (!rec) abort();
        memcpy(rec, p, len);
      }
      int invalid = len == 0 || memchr(rec, '\n', len) || memchr(rec, '\r', len);
      size_t before = lc_sink_backlog(s);
      int full = g.mode == STREAM_QUEUED && before > 0 && before + len + 1 > max_backlog;
      int rc = lc_sink_write(s, rec, len);
      if (invalid) {
        FUZZ_CHECK(rc == -EINVAL && g.written == 0);
      } else if (broken) {
        FUZZ_CHECK(rc == -broken && g.written == 0);
      } else if (full) {
        FUZZ_CHECK(rc == -ENOBUFS && g.written == 0 && lc_sink_backlog(s) == before);
      } else {
        if (g.mode == STREAM_QUEUED) { /* queued whole; what went out comes from the front */
          append(&expect, &exp_n, &exp_cap, rec, len);
          append(&expect, &exp_n, &exp_cap, "\n", 1);
        }
        if (g.hard_error) {
          FUZZ_CHECK(rc == -g.hard_error);
          if (g.mode != STREAM_QUEUED)
            FUZZ_CHECK(g.written <= len); /* the failure came before the newline went out */
          if (g.mode == STREAM_DIRECT && g.written > 0) {
            broken = g.hard_error;
            partial = g.written;
          }
          if (g.mode == STREAM_QUEUED) broken = g.hard_error;
        } else {
          FUZZ_CHECK(rc == 0);
          if (g.mode != STREAM_QUEUED) {
            FUZZ_CHECK(g.written == len + 1);
            append(&expect, &exp_n, &exp_cap, rec, len);
            append(&expect, &exp_n, &exp_cap, "\n", 1);
          } else {
            if (before == 0 && len + 1 > bound) bound = len + 1; /* one big record, alone */
            if (before > 0) FUZZ_CHECK(lc_sink_backlog(s) <= max_backlog);
          }
          records++;
          bytes += len + 1;
        }
      }
      free(rec);
    }
    g.broken = broken;
    if (g.mode == FILE_DIRECT) FUZZ_CHECK(file_size(path) == exp_n); /* truncated back */
    if (g.mode == STREAM_DIRECT) {
      FUZZ_CHECK(g.cap_n == exp_n + partial);
      FUZZ_CHECK(exp_n == 0 || same_prefix(expect, exp_n));
    }
    if (g.mode == STREAM_QUEUED) {
      size_t backlog = lc_sink_backlog(s);
      FUZZ_CHECK(g.cap_n <= exp_n && (g.cap_n == 0 || same_prefix(expect, g.cap_n)));
      if (broken) {
        FUZZ_CHECK(backlog == 0); /* the queue was dropped */
      } else {
        FUZZ_CHECK(backlog == exp_n - g.cap_n);
        FUZZ_CHECK(backlog <= bound);
      }
    }
    uint64_t nrec, nbytes;
    FUZZ_CHECK(lc_sink_count(s, &nrec, &nbytes) == 0 && nrec == records && nbytes == bytes);
  }
  if (g.mode == STREAM_QUEUED && !broken) { /* the input is spent: every call succeeds now */
    g.hard_error = 0;
    FUZZ_CHECK(lc_sink_flush(s) == 0 && lc_sink_backlog(s) == 0);
    FUZZ_CHECK(g.cap_n == exp_n && (exp_n == 0 || same_prefix(expect, exp_n)));
  }
  lc_sink_close(s);
  if (g.mode == FILE_DIRECT) {
    FILE *f = fopen(path, "rb");
    FUZZ_CHECK(f != NULL);
    char *got = malloc(exp_n + 1);
    if (!got) abort();
    size_t n = fread(got, 1, exp_n + 1, f);
    fclose(f);
    FUZZ_CHECK(n == exp_n && (exp_n == 0 || memcmp(got, expect, exp_n) == 0));
    free(got);
    unlink(path);
  }
  free(expect);
  free(g.captured);
  return 0;
}
