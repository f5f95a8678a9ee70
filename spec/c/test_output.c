/* test_output.c: unit tests for engine/output.c (the JSON Lines sink). */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "output.h"
#include "test.h"

/* A fresh temporary path (the file is removed; the sink creates it). */
static void temp_path(char *path, size_t n) {
  snprintf(path, n, "/tmp/lc_test_output_XXXXXX");
  int fd = mkstemp(path);
  if (fd >= 0) close(fd);
  unlink(path);
}

/* The whole file as a malloc'ed string; *n gets its length. */
static char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, len = 0;
  char *p = malloc(cap);
  size_t got;
  while ((got = fread(p + len, 1, cap - len - 1, f)) > 0) {
    len += got;
    if (cap - len - 1 == 0) p = realloc(p, cap *= 2);
  }
  fclose(f);
  p[len] = '\0';
  if (n) *n = len;
  return p;
}

TEST(lines_whole_and_read_back) {
  char path[64];
  temp_path(path, sizeof path);
  char *err = NULL;
  lc_sink *s = lc_sink_jsonl_open(path, &err);
  CHECK(s != NULL);
  CHECK(err == NULL);
  const char *a = "{\"url\":\"http://a.com/\",\"n\":1}", *b = "{\"text\":\"line\\nbreak\"}";
  CHECK_INT(lc_sink_write(s, a, strlen(a)), 0);
  CHECK_INT(lc_sink_write(s, b, strlen(b)), 0);
  CHECK_INT(lc_sink_write(s, "[1,2]xyz", 5), 0); /* len counts, not the NUL */
  CHECK_INT(lc_sink_flush(s), 0);
  uint64_t records = 0, bytes = 0;
  CHECK_INT(lc_sink_count(s, &records, &bytes), 0);
  CHECK_INT(records, 3);
  CHECK_INT(bytes, strlen(a) + strlen(b) + 5 + 3);
  lc_sink_close(s);
  size_t n;
  char *got = slurp(path, &n);
  CHECK_STR(got, "{\"url\":\"http://a.com/\",\"n\":1}\n{\"text\":\"line\\nbreak\"}\n[1,2]\n");
  CHECK_INT(n, bytes);
  free(got);
  struct stat st;
  mode_t mask = umask(0);
  umask(mask);
  CHECK_INT(stat(path, &st), 0);
  CHECK_INT(st.st_mode & 0777, 0644 & ~mask);
  unlink(path);
}

TEST(raw_newline_rejected) {
  char path[64];
  temp_path(path, sizeof path);
  lc_sink *s = lc_sink_jsonl_open(path, NULL);
  CHECK_INT(lc_sink_write(s, "{\"a\":\n1}", 8), -EINVAL);
  CHECK_INT(lc_sink_write(s, "{\"a\":1}\n", 8), -EINVAL);
  CHECK_INT(lc_sink_write(s, "{\"a\":\r1}", 8), -EINVAL);
  CHECK_INT(lc_sink_write(s, "", 0), -EINVAL);
  CHECK_INT(lc_sink_write(s, NULL, 3), -EINVAL);
  CHECK_INT(lc_sink_write(NULL, "{}", 2), -EINVAL);
  CHECK_INT(lc_sink_write(s, "{}", 2), 0); /* still usable */
  uint64_t records = 9;
  CHECK_INT(lc_sink_count(s, &records, NULL), 0);
  CHECK_INT(records, 1);
  CHECK_INT(lc_sink_count(NULL, &records, NULL), -EINVAL);
  lc_sink_close(s);
  char *got = slurp(path, NULL);
  CHECK_STR(got, "{}\n");
  free(got);
  unlink(path);
}

TEST(reopen_truncates) {
  char path[64];
  temp_path(path, sizeof path);
  lc_sink *s = lc_sink_jsonl_open(path, NULL);
  CHECK_INT(lc_sink_write(s, "{\"run\":1}", 9), 0);
  lc_sink_close(s);
  s = lc_sink_jsonl_open(path, NULL);
  CHECK_INT(lc_sink_write(s, "{\"run\":2}", 9), 0);
  uint64_t records;
  lc_sink_count(s, &records, NULL);
  CHECK_INT(records, 1); /* counts are per sink */
  lc_sink_close(s);
  char *got = slurp(path, NULL);
  CHECK_STR(got, "{\"run\":2}\n");
  free(got);
  unlink(path);
}

TEST(open_failure_names_path) {
  char *err = NULL;
  lc_sink *s = lc_sink_jsonl_open("/nonexistent-dir-lc/out.jsonl", &err);
  CHECK(s == NULL);
  CHECK(err != NULL && strstr(err, "/nonexistent-dir-lc/out.jsonl") != NULL);
  CHECK(err != NULL && strstr(err, "No such file") != NULL);
  free(err);
  CHECK(lc_sink_jsonl_open("/nonexistent-dir-lc/out.jsonl", NULL) == NULL);
  lc_sink_close(NULL);
}

TEST(big_record_is_one_line) {
  char path[64];
  temp_path(path, sizeof path);
  size_t n = (size_t)3 << 20;
  char *rec = malloc(n);
  memset(rec, 'x', n);
  rec[0] = '"';
  rec[n - 1] = '"';
  lc_sink *s = lc_sink_jsonl_open(path, NULL);
  CHECK_INT(lc_sink_write(s, rec, n), 0);
  CHECK_INT(lc_sink_write(s, "1", 1), 0); /* after the big buffer was given back */
  lc_sink_close(s);
  size_t got_n;
  char *got = slurp(path, &got_n);
  CHECK_INT(got_n, n + 3);
  CHECK(got && got[n] == '\n' && got[n + 1] == '1' && got[n + 2] == '\n');
  CHECK(got && memchr(got, '\n', n) == NULL);
  free(got);
  free(rec);
  unlink(path);
}

/* Redirect fd 1 to `fd` for a test; returns the saved stdout. */
static int stdout_to(int fd) {
  fflush(stdout);
  int saved = dup(STDOUT_FILENO);
  dup2(fd, STDOUT_FILENO);
  return saved;
}

static void stdout_restore(int saved) {
  dup2(saved, STDOUT_FILENO);
  close(saved);
}

TEST(stdout_not_closed) {
  char path[64];
  temp_path(path, sizeof path);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  int saved = stdout_to(fd);
  close(fd);
  lc_sink *s = lc_sink_jsonl_open(NULL, NULL);
  CHECK_INT(lc_sink_write(s, "{\"to\":\"stdout\"}", 15), 0);
  CHECK_INT(lc_sink_flush(s), 0);
  lc_sink_close(s);
  CHECK(fcntl(STDOUT_FILENO, F_GETFD) != -1); /* still open */
  s = lc_sink_jsonl_open("-", NULL);
  CHECK_INT(lc_sink_write(s, "{\"dash\":true}", 13), 0);
  lc_sink_close(s);
  CHECK(write(STDOUT_FILENO, "ok\n", 3) == 3);
  stdout_restore(saved);
  char *got = slurp(path, NULL);
  CHECK_STR(got, "{\"to\":\"stdout\"}\n{\"dash\":true}\nok\n");
  free(got);
  unlink(path);
}

/* A slow reader on a non-blocking pipe: the writer meets partial writes and EAGAIN, and
 * every line must still arrive whole and in order. */
TEST(nonblocking_pipe_partial_writes) {
  int p[2];
  CHECK_INT(pipe(p), 0);
  pid_t child = fork();
  if (child == 0) { /* the reader: checks each line is "[i,xxxx...]" of the expected length */
    close(p[1]);
    FILE *in = fdopen(p[0], "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int i = 0, bad = 0;
    while ((got = getline(&line, &cap, in)) > 0) {
      usleep(i % 5 == 0 ? 2000 : 0);
      size_t want = 100000 + (size_t)i * 7 + 1;
      if ((size_t)got != want || line[got - 1] != '\n' || atoi(line + 1) != i) bad++;
      i++;
    }
    free(line);
    fclose(in);
    _exit(bad == 0 && i == 20 ? 0 : 1);
  }
  close(p[0]);
  fcntl(p[1], F_SETFL, fcntl(p[1], F_GETFL) | O_NONBLOCK);
  int saved = stdout_to(p[1]);
  close(p[1]);
  lc_sink *s = lc_sink_jsonl_open(NULL, NULL);
  char *rec = malloc(100000 + 20 * 7);
  int failures = 0;
  for (int i = 0; i < 20; i++) {
    size_t n = 100000 + (size_t)i * 7;
    memset(rec, 'x', n);
    int k = snprintf(rec, 16, "[%d,", i);
    rec[k] = '"';
    rec[n - 2] = '"';
    rec[n - 1] = ']';
    failures += lc_sink_write(s, rec, n) != 0;
  }
  lc_sink_close(s);
  stdout_restore(saved); /* closes the pipe's write end: the reader sees EOF */
  free(rec);
  int status = -1;
  waitpid(child, &status, 0);
  CHECK_INT(failures, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* A write that fails part way (here: the file-size limit) leaves no half line in the file. */
TEST(failed_write_rolls_back_to_whole_lines) {
  char path[64];
  temp_path(path, sizeof path);
  struct rlimit old, small;
  getrlimit(RLIMIT_FSIZE, &old);
  void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
  lc_sink *s = lc_sink_jsonl_open(path, NULL);
  char rec[60];
  memset(rec, '1', sizeof rec);
  CHECK_INT(lc_sink_write(s, rec, sizeof rec), 0); /* 61 bytes */
  small = old;
  small.rlim_cur = 100;
  CHECK_INT(setrlimit(RLIMIT_FSIZE, &small), 0);
  int rc = lc_sink_write(s, rec, sizeof rec); /* 39 bytes fit, then EFBIG */
  setrlimit(RLIMIT_FSIZE, &old);
  signal(SIGXFSZ, old_handler);
  CHECK_INT(rc, -EFBIG);
  CHECK_INT(lc_sink_write(s, "2", 1), 0); /* the sink goes on after a rollback */
  uint64_t records, bytes;
  lc_sink_count(s, &records, &bytes);
  CHECK_INT(records, 2);
  CHECK_INT(bytes, 63);
  lc_sink_close(s);
  size_t n;
  char *got = slurp(path, &n);
  CHECK_INT(n, 63);
  CHECK(got && got[60] == '\n' && got[61] == '2' && got[62] == '\n');
  free(got);
  unlink(path);
}

/* On a pipe a half-written line cannot be taken back: the sink refuses further writes. */
TEST(broken_stream_refuses_more) {
  void (*old_handler)(int) = signal(SIGPIPE, SIG_IGN);
  int p[2];
  CHECK_INT(pipe(p), 0);
  pid_t child = fork();
  if (child == 0) { /* reads a little of the line, then goes away */
    close(p[1]);
    char buf[1000];
    ssize_t n = read(p[0], buf, sizeof buf);
    _exit(n > 0 ? 0 : 1);
  }
  close(p[0]);
  int saved = stdout_to(p[1]);
  close(p[1]);
  lc_sink *s = lc_sink_jsonl_open("-", NULL);
  size_t n = (size_t)1 << 20; /* far more than the pipe holds */
  char *rec = malloc(n);
  memset(rec, '7', n);
  CHECK_INT(lc_sink_write(s, rec, n), -EPIPE);
  free(rec);
  int status = -1;
  waitpid(child, &status, 0);
  /* even with a healthy pipe behind stdout again, no line follows the half one */
  int q[2];
  CHECK_INT(pipe(q), 0);
  dup2(q[1], STDOUT_FILENO);
  close(q[1]);
  CHECK_INT(lc_sink_write(s, "{}", 2), -EPIPE);
  uint64_t records = 9;
  lc_sink_count(s, &records, NULL);
  CHECK_INT(records, 0);
  lc_sink_close(s);
  stdout_restore(saved);
  char buf[8];
  CHECK_INT(read(q[0], buf, sizeof buf), 0); /* EOF at once: nothing was written there */
  close(q[0]);
  signal(SIGPIPE, old_handler);
  /* and with nothing written at all, a failure is plain and the sink stays usable */
  CHECK_INT(pipe(p), 0);
  old_handler = signal(SIGPIPE, SIG_IGN);
  saved = stdout_to(p[1]);
  close(p[1]);
  close(p[0]);
  s = lc_sink_jsonl_open(NULL, NULL);
  CHECK_INT(lc_sink_write(s, "{}", 2), -EPIPE);
  lc_sink_close(s);
  stdout_restore(saved);
  signal(SIGPIPE, old_handler);
}

/* ---------------------------------------------------------------- queued mode (item 14) */

/* A scripted fd: takes at most `chunk` bytes per write, says "not now" (writable 0, or EAGAIN
 * from write) on the calls listed, and fails with `fail_errno` once `fail_after` bytes went
 * through. Everything it took is in out[0..len). */
typedef struct fake_fd {
  char out[1 << 16];
  size_t len;
  size_t chunk;
  int calls, eagain_every, stalled;
  size_t fail_after;
  int fail_errno;
  int max_write_seen; /* the largest write asked for */
} fake_fd;

static ssize_t fake_write(void *ud, int fd, const void *p, size_t n) {
  (void)fd;
  fake_fd *f = ud;
  f->calls++;
  if ((int)n > f->max_write_seen) f->max_write_seen = (int)n;
  if (f->eagain_every && f->calls % f->eagain_every == 0) {
    errno = EAGAIN;
    return -1;
  }
  if (f->fail_errno && f->len >= f->fail_after) {
    errno = f->fail_errno;
    return -1;
  }
  size_t take = n < f->chunk ? n : f->chunk;
  if (f->fail_errno && f->len + take > f->fail_after) take = f->fail_after - f->len;
  if (f->len + take > sizeof f->out) take = sizeof f->out - f->len;
  memcpy(f->out + f->len, p, take);
  f->len += take;
  return (ssize_t)take;
}

static int fake_writable(void *ud, int fd) {
  (void)fd;
  fake_fd *f = ud;
  return f->stalled ? 0 : 1;
}

/* A sink on a pipe (stdout redirected to it) in queued mode, talking to `f`. */
static lc_sink *fake_sink(fake_fd *f, size_t max_backlog, int *saved, int p[2]) {
  CHECK_INT(pipe(p), 0);
  *saved = stdout_to(p[1]);
  lc_sink *s = lc_sink_jsonl_open(NULL, NULL);
  CHECK_INT(lc_sink_jsonl_queue(s, max_backlog), 1);
  lc_sink_io io = {.write = fake_write, .writable = fake_writable, .ud = f};
  CHECK_INT(lc_sink_jsonl_set_io(s, &io), 0);
  return s;
}

static void fake_done(lc_sink *s, int saved, int p[2]) {
  lc_sink_close(s);
  stdout_restore(saved);
  close(p[0]);
  close(p[1]);
}

TEST(queued_short_writes_and_eagain) {
  fake_fd *f = calloc(1, sizeof *f);
  f->chunk = 3;
  f->eagain_every = 4;
  int saved, p[2];
  lc_sink *s = fake_sink(f, 1 << 20, &saved, p);
  char want[8192], rec[64];
  size_t wlen = 0;
  for (int i = 0; i < 50; i++) {
    int n =
        snprintf(rec, sizeof rec, "{\"i\":%d,\"pad\":\"%.*s\"}", i, i % 17, "abcdefghijklmnopq");
    CHECK_INT(lc_sink_write(s, rec, (size_t)n), 0); /* queued: never blocks, never fails */
    memcpy(want + wlen, rec, (size_t)n);
    wlen += (size_t)n;
    want[wlen++] = '\n';
  }
  int rounds = 0, rc;
  while ((rc = lc_sink_drain(s)) == -EAGAIN && rounds < 100000) rounds++;
  CHECK_INT(rc, 0);
  CHECK_INT(lc_sink_backlog(s), 0);
  CHECK_INT(f->len, wlen);
  CHECK(f->len == wlen && memcmp(f->out, want, wlen) == 0); /* whole lines, in order, once */
  uint64_t records = 0;
  lc_sink_count(s, &records, NULL);
  CHECK_INT(records, 50);
  fake_done(s, saved, p);
  free(f);
}

TEST(queued_backlog_is_bounded) {
  fake_fd *f = calloc(1, sizeof *f);
  f->chunk = 1 << 20;
  f->stalled = 1; /* a reader that stopped reading */
  int saved, p[2];
  lc_sink *s = fake_sink(f, 1000, &saved, p);
  char rec[100];
  memset(rec, '7', sizeof rec);
  int accepted = 0;
  for (int i = 0; i < 50; i++)
    if (lc_sink_write(s, rec, sizeof rec) == 0) accepted++;
  CHECK_INT(accepted, 9); /* 9 x 101 bytes fit in 1000 */
  CHECK_INT(lc_sink_backlog(s), 909);
  CHECK_INT(lc_sink_write(s, rec, sizeof rec), -ENOBUFS); /* refused whole */
  CHECK_INT(lc_sink_drain(s), -EAGAIN);
  CHECK_INT(f->calls, 0); /* nothing was written to an fd that had no room */
  f->stalled = 0;
  CHECK_INT(lc_sink_drain(s), 0);
  CHECK_INT(f->len, 909);
  CHECK(f->max_write_seen <= PIPE_BUF);
  /* one record bigger than the cap goes through an empty queue */
  char *big = malloc(5000);
  memset(big, '8', 5000);
  f->stalled = 1;
  CHECK_INT(lc_sink_write(s, big, 5000), 0);
  CHECK_INT(lc_sink_backlog(s), 5001);
  CHECK_INT(lc_sink_write(s, rec, sizeof rec), -ENOBUFS);
  f->stalled = 0;
  CHECK_INT(lc_sink_drain(s), 0);
  CHECK_INT(f->len, 909 + 5001);
  CHECK(f->max_write_seen <= PIPE_BUF); /* a blocking fd never gets more than PIPE_BUF at once */
  CHECK(f->out[909 + 5000] == '\n');
  free(big);
  fake_done(s, saved, p);
  free(f);
}

/* EPIPE and ENOSPC part way: the error comes back, the sink is broken, nothing more is written
 * (no line after half a line), and the queue is let go. */
static void queued_failure(int err) {
  fake_fd *f = calloc(1, sizeof *f);
  f->chunk = 1 << 20;
  f->fail_errno = err;
  f->fail_after = 30;
  int saved, p[2];
  lc_sink *s = fake_sink(f, 1 << 20, &saved, p);
  CHECK_INT(lc_sink_write(s, "{\"a\":1}", 7), 0);
  char rec[100];
  memset(rec, '5', sizeof rec);
  CHECK_INT(lc_sink_write(s, rec, sizeof rec), -err);
  CHECK_INT(f->len, 30);
  CHECK_INT(lc_sink_backlog(s), 0);
  CHECK_INT(lc_sink_write(s, "{}", 2), -err);
  CHECK_INT(lc_sink_drain(s), -err);
  f->fail_errno = 0;
  CHECK_INT(lc_sink_write(s, "{}", 2), -err); /* broken stays broken */
  CHECK_INT(f->len, 30);
  uint64_t records = 9;
  lc_sink_count(s, &records, NULL);
  CHECK_INT(records, 1);
  fake_done(s, saved, p);
  free(f);
}

TEST(queued_epipe) { queued_failure(EPIPE); }
TEST(queued_enospc) { queued_failure(ENOSPC); }

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A real pipe nobody reads (its default blocking mode): writes return at once, the backlog
 * stops at its cap; once a reader comes, drain delivers every line whole. */
TEST(queued_real_pipe_never_blocks) {
  void (*old_handler)(int) = signal(SIGPIPE, SIG_IGN);
  int p[2];
  CHECK_INT(pipe(p), 0);
  int saved = stdout_to(p[1]);
  close(p[1]);
  lc_sink *s = lc_sink_jsonl_open("-", NULL);
  CHECK_INT(lc_sink_jsonl_queue(s, (size_t)1 << 20), 1);
  size_t n = 64 * 1024 - 1;
  char *rec = malloc(n);
  memset(rec, 'r', n);
  double t0 = now_ms(), worst = 0;
  int accepted = 0, refused = 0;
  for (int i = 0; i < 40; i++) {
    rec[0] = (char)('a' + i % 26);
    double a = now_ms();
    int rc = lc_sink_write(s, rec, n);
    double took = now_ms() - a;
    if (took > worst) worst = took;
    if (rc == 0) accepted++;
    if (rc == -ENOBUFS) refused++;
  }
  CHECK(worst < 100); /* never waited for the reader */
  CHECK(now_ms() - t0 < 1000);
  CHECK(accepted >= 16 && accepted <= 17); /* 1 MiB of backlog + what the pipe took (64 KiB) */
  CHECK_INT(accepted + refused, 40);
  CHECK(lc_sink_backlog(s) <= ((size_t)1 << 20));
  pid_t child = fork();
  if (child == 0) { /* the reader, late: every line whole */
    close(STDOUT_FILENO);
    FILE *in = fdopen(p[0], "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int lines = 0, bad = 0;
    while ((got = getline(&line, &cap, in)) > 0) {
      if ((size_t)got != n + 1 || line[got - 1] != '\n') bad++;
      lines++;
    }
    _exit(bad == 0 && lines == accepted ? 0 : 1);
  }
  close(p[0]);
  int rc;
  while ((rc = lc_sink_drain(s)) == -EAGAIN) {
    struct pollfd pfd = {.fd = STDOUT_FILENO, .events = POLLOUT};
    poll(&pfd, 1, 1000);
  }
  CHECK_INT(rc, 0);
  lc_sink_close(s);
  stdout_restore(saved); /* the reader sees EOF */
  int status = -1;
  waitpid(child, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  free(rec);
  signal(SIGPIPE, old_handler);
}

TEST(queued_mode_leaves_regular_files_direct) {
  char path[64];
  temp_path(path, sizeof path);
  lc_sink *s = lc_sink_jsonl_open(path, NULL);
  CHECK_INT(lc_sink_jsonl_queue(s, 100), 0);
  CHECK_INT(lc_sink_write(s, "{\"x\":1}", 7), 0);
  CHECK_INT(lc_sink_backlog(s), 0);
  CHECK_INT(lc_sink_drain(s), 0);
  CHECK_INT(lc_sink_jsonl_queue(NULL, 100), -EINVAL);
  lc_sink_close(s);
  char *got = slurp(path, NULL);
  CHECK_STR(got, "{\"x\":1}\n");
  free(got);
  unlink(path);
}

int main(void) {
  RUN(lines_whole_and_read_back);
  RUN(raw_newline_rejected);
  RUN(reopen_truncates);
  RUN(open_failure_names_path);
  RUN(big_record_is_one_line);
  RUN(stdout_not_closed);
  RUN(nonblocking_pipe_partial_writes);
  RUN(failed_write_rolls_back_to_whole_lines);
  RUN(broken_stream_refuses_more);
  RUN(queued_short_writes_and_eagain);
  RUN(queued_backlog_is_bounded);
  RUN(queued_epipe);
  RUN(queued_enospc);
  RUN(queued_real_pipe_never_blocks);
  RUN(queued_mode_leaves_regular_files_direct);
  DONE();
}
