/* test_pipe.c: the --remote-debugging-pipe transport (engine/pipe.c) against a forked writer:
 * messages split across reads and several in one read arrive whole and in order, a 12 MB
 * message too, one over the cap ends the connection with a clear reason (or, with on_oversize,
 * is dropped while the connection goes on), sends get their NUL,
 * and every test ends with the loop closing cleanly. */
#include "pipe.h"
#include "test.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct seen {
  int opened, closed;
  char why[256];
  int n;
  size_t lens[16];
  char heads[16][32];
  int nul_terminated;
  int oversize;
  char over_head[LC_TRANSPORT_HEAD + 1];
  size_t over_total;
} seen;

static void on_oversize(void *ud, const char *head, size_t len, size_t total) {
  seen *s = ud;
  s->oversize++;
  snprintf(s->over_head, sizeof s->over_head, "%.*s", (int)len, head);
  s->over_total = total;
}

static void on_open(void *ud) { ((seen *)ud)->opened++; }

static void on_message(void *ud, char *msg, size_t len) {
  seen *s = ud;
  if (s->n < 16) {
    s->lens[s->n] = len;
    snprintf(s->heads[s->n], sizeof s->heads[0], "%.*s", (int)(len < 31 ? len : 31), msg);
    s->nul_terminated += msg[len] == '\0';
    s->n++;
  }
}

static void on_close(void *ud, const char *why) {
  seen *s = ud;
  s->closed++;
  snprintf(s->why, sizeof s->why, "%s", why);
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) _exit(3);
    p += w;
    n -= (size_t)w;
  }
}

/* Runs the loop until the transport reported its close (or 20 s). */
static void run_until_closed(uv_loop_t *loop, seen *s) {
  for (int i = 0; i < 20000 && !s->closed; i++) uv_run(loop, UV_RUN_ONCE);
}

/* A pipe transport on a fresh loop for the engine's end `fd`, reporting to `s`. */
static lc_transport *open_on(uv_loop_t *loop, int fd, size_t cap, seen *s,
                             void (*oversize)(void *, const char *, size_t, size_t)) {
  uv_loop_init(loop);
  memset(s, 0, sizeof *s);
  lc_transport_cbs cbs = {on_open, on_message, on_close, s, oversize};
  lc_pipe_args a = {loop, fd, cap};
  char *err = NULL;
  lc_transport *t = lc_pipe_open(&a, &cbs, &err);
  CHECK(t != NULL);
  return t;
}

/* Closes the transport, checks the loop closes cleanly and the writer `child` exited 0. */
static void close_and_reap(lc_transport *t, uv_loop_t *loop, pid_t child) {
  lc_transport_close(t);
  uv_run(loop, UV_RUN_DEFAULT);
  CHECK_INT(uv_loop_close(loop), 0);
  int st = 0;
  CHECK_INT(waitpid(child, &st, 0), child);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

TEST(test_split_and_joined_messages) {
  int sv[2];
  CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  pid_t child = fork();
  if (child == 0) {
    close(sv[0]);
    const char *pieces[] = {"{\"id\":1,", "\"result\":", "{}}"};
    for (int i = 0; i < 3; i++) {
      write_all(sv[1], pieces[i], strlen(pieces[i]));
      sleep_ms(30); /* separate reads */
    }
    write_all(sv[1], "\0{\"a\":2}\0{\"b\":3}\0{\"c\":", 22); /* ends inside the 4th */
    sleep_ms(30);
    write_all(sv[1], "4}\0", 3);
    size_t big = 12u * 1024 * 1024; /* a 10 MB page's HTML is a message this size */
    char *m = malloc(big + 1);
    memset(m, 'x', big);
    m[0] = '{';
    m[big] = '\0';
    write_all(sv[1], m, big + 1);
    free(m);
    _exit(0); /* EOF */
  }
  close(sv[1]);
  uv_loop_t loop;
  seen s;
  lc_transport *t = open_on(&loop, sv[0], 0, &s, NULL);
  CHECK_INT(s.opened, 0); /* never during the call */
  run_until_closed(&loop, &s);
  CHECK_INT(s.opened, 1);
  CHECK_INT(s.n, 5);
  CHECK_STR(s.heads[0], "{\"id\":1,\"result\":{}}");
  CHECK_STR(s.heads[1], "{\"a\":2}");
  CHECK_STR(s.heads[2], "{\"b\":3}");
  CHECK_STR(s.heads[3], "{\"c\":4}");
  CHECK_INT(s.lens[4], 12u * 1024 * 1024);
  CHECK_INT(s.nul_terminated, 5);
  CHECK_INT(s.closed, 1);
  CHECK(strstr(s.why, "closed the pipe") != NULL);
  close_and_reap(t, &loop, child);
}

TEST(test_message_over_cap) {
  int sv[2];
  CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  pid_t child = fork();
  if (child == 0) {
    close(sv[0]);
    signal(SIGPIPE, SIG_IGN);
    write_all(sv[1], "{\"ok\":1}\0", 9);
    char buf[65536];
    memset(buf, 'y', sizeof buf);
    /* No NUL, ever: the reader must give up at the cap, not grow without bound. */
    for (int i = 0; i < 64 * 16; i++)
      if (write(sv[1], buf, sizeof buf) < 0) _exit(0); /* the reader hung up: good */
    _exit(1);
  }
  close(sv[1]);
  uv_loop_t loop;
  seen s;
  lc_transport *t = open_on(&loop, sv[0], 1024 * 1024, &s, NULL);
  run_until_closed(&loop, &s);
  CHECK_INT(s.n, 1); /* the good one before it */
  CHECK_INT(s.closed, 1);
  CHECK(strstr(s.why, "larger than 1048576 bytes") != NULL);
  if (!strstr(s.why, "larger than")) fprintf(stderr, "  why: %s\n", s.why);
  CHECK(lc_transport_send(t, "{}", 2) < 0); /* a dead connection takes nothing */
  close_and_reap(t, &loop, child);          /* the child's writes now fail: it exits 0 */
}

/* With on_oversize, a message over the cap is dropped as it arrives (the buffer never grows to
 * it) and reported with its head and length; the messages around it arrive and the
 * connection goes on. */
TEST(test_message_over_cap_dropped) {
  int sv[2];
  CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  size_t big = 5u * 1024 * 1024 + 17;
  pid_t child = fork();
  if (child == 0) {
    close(sv[0]);
    write_all(sv[1], "{\"ok\":1}\0", 9);
    char *m = malloc(big + 1);
    memset(m, 'z', big);
    memcpy(m, "{\"id\":42,\"result\":", 18);
    m[big] = '\0';
    for (size_t off = 0; off <= big; off += 70000) { /* in many reads */
      size_t n = big + 1 - off < 70000 ? big + 1 - off : 70000;
      write_all(sv[1], m + off, n);
    }
    free(m);
    write_all(sv[1], "{\"after\":1}\0", 12);
    _exit(0);
  }
  close(sv[1]);
  uv_loop_t loop;
  seen s;
  lc_transport *t = open_on(&loop, sv[0], 1024 * 1024, &s, on_oversize);
  run_until_closed(&loop, &s); /* ends with the writer's EOF */
  CHECK_INT(s.oversize, 1);
  CHECK_INT(s.over_total, big);
  CHECK(strncmp(s.over_head, "{\"id\":42,\"result\":zz", 20) == 0);
  CHECK_INT(s.n, 2);
  CHECK_STR(s.heads[0], "{\"ok\":1}");
  CHECK_STR(s.heads[1], "{\"after\":1}");
  CHECK(strstr(s.why, "closed the pipe") != NULL); /* not the cap */
  close_and_reap(t, &loop, child);
}

TEST(test_send_and_close) {
  int sv[2];
  CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  uv_loop_t loop;
  seen s;
  lc_transport *t = open_on(&loop, sv[0], 0, &s, NULL);
  CHECK_INT(lc_transport_send(t, "{\"id\":1}", 8), 0);
  CHECK_INT(lc_transport_send(t, "a\0b", 3), -EINVAL); /* a NUL would split it in two */
  CHECK_INT(lc_transport_send(t, "{\"id\":2}", 8), 0);
  for (int i = 0; i < 10; i++) uv_run(&loop, UV_RUN_NOWAIT);
  char buf[64] = {0};
  size_t got = 0;
  while (got < 18) {
    ssize_t r = recv(sv[1], buf + got, sizeof buf - 1 - got, 0);
    if (r <= 0) break;
    got += (size_t)r;
  }
  CHECK_INT(got, 18);
  CHECK(memcmp(buf, "{\"id\":1}\0{\"id\":2}\0", 18) == 0);
  /* Close with a write still queued and data arriving: no callback after close. */
  CHECK_INT(lc_transport_send(t, "{\"id\":3}", 8), 0);
  CHECK_INT(write(sv[1], "{}\0", 3), 3);
  int before = s.n;
  lc_transport_close(t);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT(s.n, before);
  CHECK_INT(s.closed, 0);
  CHECK_INT(uv_loop_close(&loop), 0);
  close(sv[1]);
}

int main(void) {
  RUN(test_split_and_joined_messages);
  RUN(test_message_over_cap);
  RUN(test_message_over_cap_dropped);
  RUN(test_send_and_close);
  DONE();
}
