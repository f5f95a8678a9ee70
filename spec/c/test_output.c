/* test_output.c: unit tests for engine/output.c (the JSON Lines sink). */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
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
  DONE();
}
