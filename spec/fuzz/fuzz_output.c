/* fuzz_output.c: the JSON Lines sink (engine/output.h) while write(2) fails.
 *
 * The seam is the linker's, not the sink's: this target is linked with -Wl,--wrap=write, so
 * output.c's calls to write() land in __wrap_write below, which, for the sink's fd only, does
 * what the input says: write it all, write a short prefix, fail with EINTR, EAGAIN, EPIPE or
 * ENOSPC, or return 0. Writes to a file really reach the file (so the sink's truncate-back is
 * real); writes to stdout are captured in memory and never reach the real stdout.
 *
 * Properties: a write returns 0 exactly when its whole line went out (EINTR, EAGAIN and short
 * writes are retried), or the hard error otherwise; a record with a raw CR or LF, or empty, is
 * refused with -EINVAL before any write; a file holds exactly the acknowledged lines after
 * every write, failed or not; stdout holds the acknowledged lines and, once a write failed part
 * way, that line's prefix and nothing after it, every later write failing with the same error;
 * the record and byte counts agree. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "output.h"

ssize_t __real_write(int fd, const void *buf, size_t n);
ssize_t __wrap_write(int fd, const void *buf, size_t n);

static struct {
  int armed, fd, to_stdout;
  fuzz_in *in;
  int hard_error; /* errno of the failure this write met (EIO for a 0 return), or 0 */
  size_t written; /* bytes this lc_sink_write got out */
  char *captured; /* stdout mode: everything "written" */
  size_t cap_n, cap_cap;
} g;

static void capture(const void *buf, size_t n) {
  if (g.cap_n + n > g.cap_cap) {
    g.cap_cap = (g.cap_n + n) * 2;
    g.captured = realloc(g.captured, g.cap_cap);
    if (!g.captured) abort();
  }
  memcpy(g.captured + g.cap_n, buf, n);
  g.cap_n += n;
}

static ssize_t pass(const void *buf, size_t n) {
  if (g.to_stdout) {
    capture(buf, n);
    return (ssize_t)n;
  }
  return __real_write(g.fd, buf, n);
}

ssize_t __wrap_write(int fd, const void *buf, size_t n) {
  if (!g.armed || fd != g.fd) return __real_write(fd, buf, n);
  FUZZ_CHECK(g.hard_error == 0); /* no write after a hard error within one record */
  uint8_t a = fuzz_u8(g.in);
  ssize_t w;
  switch (a % 8) {
    case 1: /* short write */
      w = pass(buf, n > 1 ? 1 + (size_t)fuzz_u8(g.in) % (n - 1) : n);
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
      w = pass(buf, n);
      break;
  }
  if (w > 0) g.written += (size_t)w;
  return w;
}

static size_t file_size(const char *path) {
  struct stat st;
  FUZZ_CHECK(stat(path, &st) == 0);
  return (size_t)st.st_size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_in in = {data, size, 0};
  g.in = &in;
  g.to_stdout = fuzz_u8(&in) & 1;
  g.cap_n = 0;
  char path[64];
  /* tmpfs when there is one: truncating a file on a journaled disk costs milliseconds */
  snprintf(path, sizeof path, "%s/lc_fuzz_output.%d",
           access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (int)getpid());
  /* The sink's fd: a file it opens gets the lowest free one, which this probe finds. */
  int probe = open("/dev/null", O_RDONLY);
  FUZZ_CHECK(probe >= 0);
  close(probe);
  g.fd = g.to_stdout ? STDOUT_FILENO : probe;
  char *err = NULL;
  lc_sink *s = lc_sink_jsonl_open(g.to_stdout ? "-" : path, &err);
  FUZZ_CHECK(s != NULL && err == NULL);
  char *expect = NULL; /* acknowledged lines */
  size_t exp_n = 0, records = 0;
  int broken = 0; /* stdout: the error that left half a line */
  size_t partial = 0;
  while (!fuzz_done(&in)) {
    uint8_t kind = fuzz_u8(&in);
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
    g.hard_error = 0;
    g.written = 0;
    g.armed = 1;
    int rc = lc_sink_write(s, rec, len);
    g.armed = 0;
    if (invalid) {
      FUZZ_CHECK(rc == -EINVAL && g.written == 0);
    } else if (broken) {
      FUZZ_CHECK(rc == -broken && g.written == 0);
    } else if (g.hard_error) {
      FUZZ_CHECK(rc == -g.hard_error);
      FUZZ_CHECK(g.written <= len); /* the failure came before the newline went out */
      if (g.to_stdout && g.written > 0) {
        broken = g.hard_error;
        partial = g.written;
      }
    } else {
      FUZZ_CHECK(rc == 0 && g.written == len + 1);
      expect = realloc(expect, exp_n + len + 1);
      if (!expect) abort();
      memcpy(expect + exp_n, rec, len);
      expect[exp_n + len] = '\n';
      exp_n += len + 1;
      records++;
    }
    if (!g.to_stdout) FUZZ_CHECK(file_size(path) == exp_n); /* truncated back to whole lines */
    if (g.to_stdout) {
      FUZZ_CHECK(g.cap_n == exp_n + partial);
      FUZZ_CHECK(exp_n == 0 || memcmp(g.captured, expect, exp_n) == 0);
    }
    uint64_t nrec, nbytes;
    FUZZ_CHECK(lc_sink_count(s, &nrec, &nbytes) == 0 && nrec == records && nbytes == exp_n);
    free(rec);
  }
  lc_sink_close(s);
  if (!g.to_stdout) {
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
  return 0;
}
