/* test_rfrontier.c: unit tests for engine/dist/rfrontier.c against a real redis-server this
 * test starts (a free loopback port, appendfsync always, a fresh directory under $TMPDIR,
 * killed and removed at the end; exit 77, a skip, only when redis-server is not installed).
 *
 * Not frontier_contract.h: on Redis the contract is asynchronous, and its cases fail by
 * design, not by bug (each was run through a frontier that waits for the server after every
 * step): push answers 1 before the server decides (EFULL and another engine's duplicate are
 * learned from the answer), pending() is the server's counts as of the last pop (so 1 more
 * before any pop, and stale after done), the server hands out a host's requests together
 * (hosts in the order they became ready, not URLs in push order) and knows no next_ms, a
 * retry's time is the server's clock, and a buffered request refused by admit holds its slot
 * of the prefetch buffer (no other host is fetched while the buffer is full of refused ones).
 * The cases here are the contract's that hold, in the form they take on a shared crawl: the
 * seen set and max_pages across two engines, ends of unknown or ended requests; and a crawl
 * whose redis-server is SIGKILLed with commands outstanding, kept away while the frontier
 * tries to reconnect (connects refused: the regression of the event adapter, commit "rconn:
 * an event adapter that passes socket errors to hiredis"), and started again on the same port
 * and append-only file: every push and commit lands once. */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "log.h"
#include "rfrontier.h"
#include "test.h"

static char dir[256];
static int port;
static pid_t redis_pid;
static uv_loop_t loop;
static int crawl_no;

static int free_port(void) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 ||
      getsockname(s, (struct sockaddr *)&a, &len) != 0) {
    perror("free_port");
    exit(1);
  }
  close(s);
  return ntohs(a.sin_port);
}

static int redis_up(void) {
  struct timeval tv = {0, 200000};
  redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
  int ok = 0;
  if (c && !c->err) {
    redisReply *r = redisCommand(c, "PING");
    ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
    if (r) freeReplyObject(r);
  }
  if (c) redisFree(c);
  return ok;
}

/* CONFIG SET name value on the test's server; 0 or -1. */
static int redis_config(const char *name, const char *value) {
  redisContext *c = redisConnect("127.0.0.1", port);
  int ok = 0;
  if (c && !c->err) {
    redisReply *r = redisCommand(c, "CONFIG SET %s %s", name, value);
    ok = r && r->type == REDIS_REPLY_STATUS;
    if (r) freeReplyObject(r);
  }
  if (c) redisFree(c);
  return ok ? 0 : -1;
}

/* Start redis-server on `port` with the append-only file in `dir`; exits the test on failure. */
static void redis_start(void) {
  char portstr[16], log[300];
  snprintf(portstr, sizeof portstr, "%d", port);
  snprintf(log, sizeof log, "%s/redis.log", dir);
  redis_pid = fork();
  if (redis_pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* a test killed by its timeout leaves no server */
    execlp("redis-server", "redis-server", "--port", portstr, "--bind", "127.0.0.1", "--dir", dir,
           "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--logfile", log,
           (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 200; i++) {
    if (redis_up()) return;
    usleep(25000);
  }
  fprintf(stderr, "redis-server did not answer on 127.0.0.1:%d (see %s)\n", port, log);
  kill(redis_pid, SIGKILL);
  exit(1);
}

static void redis_kill(void) {
  if (redis_pid <= 0) return;
  kill(redis_pid, SIGKILL);
  waitpid(redis_pid, NULL, 0);
  redis_pid = 0;
}

static void url_of(char *out, size_t n, const char *crawl, size_t max_pages) {
  (void)max_pages;
  snprintf(out, n, "redis://127.0.0.1:%d/0?crawl=%s-%d", port, crawl, ++crawl_no);
}

/* Run the loop for about ms milliseconds. */
static void timer_stop_cb(uv_timer_t *t) { uv_stop(t->loop); }
static void run_for(int ms) {
  uv_timer_t t;
  uv_timer_init(&loop, &t);
  uv_timer_start(&t, timer_stop_cb, (uint64_t)ms, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
}

/* Run the loop until the server answered every command given, at most ms; 0 or -1. */
static int settle_within(lc_frontier *f, int ms) {
  for (int waited = 0; lc_rfront_outstanding(f) > 0; waited += 5) {
    if (waited >= ms) return -1;
    run_for(5);
  }
  return 0;
}

static lc_frontier *open_url(const char *url, size_t max_pages, int prefetch) {
  char err[512];
  lc_rfront_opts o = {.loop = &loop, .url = url, .max_pages = max_pages, .prefetch = prefetch};
  lc_frontier *f = lc_rfront_open(&o, err, sizeof err);
  if (!f) {
    fprintf(stderr, "  lc_rfront_open: %s\n", err);
    abort();
  }
  return f;
}

static void settle(lc_frontier *f) {
  if (settle_within(f, 10000) != 0) {
    fprintf(stderr, "  the server did not answer within 10 s\n");
    t_current_failed = 1;
  }
}

/* Pop with the loop run until the buffer's refill was answered: 1 with *r, or 0 (nothing on
 * the server now). The server's counts (pending) are fresh after it. */
static int pop_settled(lc_frontier *f, lc_request *r) {
  for (int i = 0; i < 3; i++) {
    int rc = lc_frontier_pop(f, 0, NULL, NULL, r, NULL);
    if (rc != 0) return rc;
    settle(f);
    run_for(45); /* the frontier's pause after a pop that brought nothing */
  }
  return lc_frontier_pop(f, 0, NULL, NULL, r, NULL);
}

static void end_frontier(lc_frontier *f) {
  settle(f);
  lc_frontier_destroy(f);
  uv_run(&loop, UV_RUN_NOWAIT); /* the connection's handles close */
}

/* The seen set is the server's: a URL pushed by one engine, in any spelling, is dropped when
 * another pushes it (its own push says 1: it cannot know before the answer), and the request
 * is handed out once over both. */
TEST(dedupe_on_normalized_url_across_engines) {
  char url[300];
  url_of(url, sizeof url, "dedupe", 0);
  lc_frontier *a = open_url(url, 0, 4), *b = open_url(url, 0, 4);
  CHECK_INT(lc_frontier_push(a, "http://a.com/x", 0, NULL, 0), 1);
  CHECK_INT(lc_frontier_push(a, "HTTP://A.COM:80/x#frag", 0, NULL, 0), 0); /* its own: at once */
  settle(a);
  CHECK_INT(lc_frontier_push(b, "  http://a.com/y/../x\n", 0, NULL, 0), 1);
  CHECK_INT(lc_frontier_push(b, "http://a.com/x?", 0, NULL, 0), 0);
  CHECK_INT(lc_frontier_push(b, "http://a.com/x?q", 0, NULL, 0), 1);
  CHECK_INT(lc_frontier_push(b, "file:///etc/passwd", 0, NULL, 0), LC_FRONTIER_EURL);
  CHECK_INT(lc_frontier_push(b, NULL, 0, NULL, 0), LC_FRONTIER_EINVAL);
  settle(b);
  CHECK_INT(lc_frontier_accepted(a), 1);
  CHECK_INT(lc_frontier_accepted(b), 1); /* x?q only */
  lc_request r;
  int got = 0;
  lc_frontier *both[] = {b, a};
  for (int k = 0; k < 2; k++) {
    while (pop_settled(both[k], &r) == 1) {
      got++;
      CHECK(strcmp(r.url, "http://a.com/x") == 0 || strcmp(r.url, "http://a.com/x?q") == 0);
      CHECK_INT(lc_frontier_done(both[k], r.id, 1), 0);
      lc_request_clear(&r);
    }
  }
  CHECK_INT(got, 2);
  CHECK_INT(pop_settled(a, &r), 0);
  CHECK_INT(lc_frontier_pending(a), 0);
  CHECK_INT(lc_frontier_push(b, "http://a.com/x", 0, NULL, 0), 0); /* still seen when done */
  end_frontier(a);
  end_frontier(b);
}

/* max_pages counts the crawl on the server: two engines get 3 accepted in all, and an engine
 * learns it is full from the server's answer. */
TEST(max_pages_counts_the_whole_crawl) {
  char url[300];
  url_of(url, sizeof url, "full", 0);
  lc_frontier *a = open_url(url, 3, 2), *b = open_url(url, 3, 2);
  CHECK_INT(lc_frontier_push(a, "http://a.com/1", 0, NULL, 0), 1);
  CHECK_INT(lc_frontier_push(a, "http://a.com/2", 0, NULL, 0), 1);
  settle(a);
  CHECK_INT(lc_frontier_push(b, "http://a.com/3", 0, NULL, 0), 1);
  CHECK_INT(lc_frontier_push(b, "http://a.com/4", 0, NULL, 0), 1); /* sent: the server refuses */
  settle(b);
  CHECK_INT(lc_frontier_push(b, "http://a.com/5", 0, NULL, 0), LC_FRONTIER_EFULL);
  CHECK_INT(lc_frontier_accepted(a) + lc_frontier_accepted(b), 3);
  lc_rfront_status st;
  char err[512];
  CHECK_INT(lc_rfront_get_status(url, &st, err, sizeof err), 0);
  CHECK_INT(st.accepted, 3);
  CHECK_INT(st.queued, 3);
  /* An engine with a lower max_pages joining a crawl that already has more is full too. */
  lc_frontier *c = open_url(url, 2, 2);
  CHECK_INT(lc_frontier_push(c, "http://a.com/6", 0, NULL, 0), 1); /* sent: the server refuses */
  settle(c);
  CHECK_INT(lc_frontier_push(c, "http://a.com/7", 0, NULL, 0), LC_FRONTIER_EFULL);
  CHECK_INT(lc_rfront_get_status(url, &st, err, sizeof err), 0);
  CHECK_INT(st.accepted, 3);
  end_frontier(c);
  end_frontier(a);
  end_frontier(b);
}

TEST(ending_twice_or_unknown_fails_loudly) {
  char url[300];
  url_of(url, sizeof url, "ends", 0);
  lc_frontier *f = open_url(url, 0, 1);
  lc_frontier_push(f, "http://a.com/1", 0, "{\"a\":1}", 0);
  lc_frontier_push(f, "http://a.com/2", 0, NULL, 0);
  lc_request r, r2;
  CHECK_INT(pop_settled(f, &r), 1);
  CHECK_STR(r.data_json, "{\"a\":1}");
  uint64_t id = r.id;
  CHECK_INT(lc_frontier_done(f, 999, 1), LC_FRONTIER_ENOENT);
  CHECK_INT(lc_frontier_done(f, 0, 1), LC_FRONTIER_ENOENT);
  CHECK_INT(lc_frontier_done(f, id, 1), 0);
  CHECK_INT(lc_frontier_done(f, id, 1), LC_FRONTIER_ENOENT);
  CHECK_INT(lc_frontier_retry(f, &r, 0), LC_FRONTIER_ENOENT); /* takes the strings still */
  CHECK(r.url == NULL && r.data_json == NULL);
  CHECK_INT(pop_settled(f, &r2), 1);
  const char *line[] = {"{}"};
  size_t len[] = {2};
  CHECK_INT(lc_rfront_commit(f, id, line, len, 1, NULL, NULL), LC_FRONTIER_ENOENT);
  CHECK_INT(lc_frontier_done(f, r2.id, 0), 0);
  CHECK_INT(lc_rfront_commit(f, r2.id, line, len, 1, NULL, NULL), LC_FRONTIER_ENOENT);
  lc_request_clear(&r2);
  CHECK_INT(pop_settled(f, &r), 0);
  CHECK_INT(lc_frontier_pending(f), 0);
  lc_rfront_status st;
  char err[512];
  CHECK_INT(lc_rfront_get_status(url, &st, err, sizeof err), 0);
  CHECK_INT(st.done, 1);
  CHECK_INT(st.failed, 1);
  CHECK_INT(st.records, 0);
  end_frontier(f);
}

/* ---- beyond the contract -------------------------------------------------------------------- */

typedef struct commit_wait {
  int result, called;
} commit_wait;

static void commit_cb(void *ud, int result) {
  commit_wait *w = ud;
  w->result = result;
  w->called++;
}

static int count_record(void *ud, const char *line, size_t len) {
  (void)line;
  (void)len;
  (*(int *)ud)++;
  return 0;
}

/* The commits made in one turn of the loop go as one lc_ack, and each gets its own answer: a
 * late one (its lease passed to another engine while this engine's loop stood still) is
 * refused and writes nothing, one on time is committed, in the same call. */
TEST(commits_in_one_turn_are_answered_each) {
  char url[300], aurl[340], burl[340], err[512];
  url_of(url, sizeof url, "batch", 0);
  snprintf(aurl, sizeof aurl, "%s&lease_ms=600", url);
  snprintf(burl, sizeof burl, "%s&lease_ms=30000", url);
  lc_frontier *a = open_url(aurl, 0, 1);
  CHECK_INT(lc_frontier_push(a, "http://a.test/late", 0, NULL, 0), 1);
  lc_request late, fresh, taken;
  CHECK_INT(pop_settled(a, &late), 1);
  usleep(900 * 1000); /* a's loop stands still: no renewal, and its lease expires */

  /* Another engine on a loop of its own takes the request over. */
  uv_loop_t loop2;
  uv_loop_init(&loop2);
  lc_rfront_opts o = {.loop = &loop2, .url = burl, .prefetch = 1};
  lc_frontier *b = lc_rfront_open(&o, err, sizeof err);
  CHECK(b != NULL);
  if (!b) return;
  int got = 0;
  for (int i = 0; i < 400 && !got; i++) {
    got = lc_frontier_pop(b, 0, NULL, NULL, &taken, NULL) == 1;
    if (!got) {
      uv_run(&loop2, UV_RUN_NOWAIT);
      usleep(5000);
    }
  }
  CHECK(got);
  if (!got) return;
  CHECK_STR(taken.url, "http://a.test/late");

  CHECK_INT(lc_frontier_push(a, "http://x.test/fresh", 0, NULL, 0), 1);
  settle(a);
  CHECK_INT(pop_settled(a, &fresh), 1);
  CHECK_STR(fresh.url, "http://x.test/fresh");
  lc_rfront_counts before, after;
  lc_rfront_get_counts(a, &before);
  commit_wait wl = {0, 0}, wf = {0, 0}, wb = {0, 0};
  const char *line[] = {"{\"n\":1}"};
  size_t len[] = {7};
  CHECK_INT(lc_rfront_commit(a, late.id, line, len, 1, commit_cb, &wl), 0);
  CHECK_INT(lc_rfront_commit(a, fresh.id, line, len, 1, commit_cb, &wf), 0);
  CHECK_INT(wl.called + wf.called, 0); /* answered later, from the loop */
  settle(a);
  lc_rfront_get_counts(a, &after);
  CHECK_INT(after.ack_calls - before.ack_calls, 1);
  CHECK_INT(wl.called, 1);
  CHECK_INT(wl.result, 0);
  CHECK_INT(wf.called, 1);
  CHECK_INT(wf.result, 1);
  CHECK_INT(after.refused - before.refused, 1);

  CHECK_INT(lc_rfront_commit(b, taken.id, line, len, 1, commit_cb, &wb), 0);
  for (int i = 0; i < 400 && !wb.called; i++) {
    uv_run(&loop2, UV_RUN_NOWAIT);
    usleep(5000);
  }
  CHECK_INT(wb.result, 1);
  lc_rfront_status st;
  CHECK_INT(lc_rfront_get_status(url, &st, err, sizeof err), 0);
  CHECK_INT(st.records, 2);
  CHECK_INT(st.done, 2);
  CHECK_INT(st.refused, 1);
  lc_request_clear(&late);
  lc_request_clear(&fresh);
  lc_request_clear(&taken);
  lc_frontier_destroy(b);
  uv_run(&loop2, UV_RUN_DEFAULT);
  CHECK_INT(uv_loop_close(&loop2), 0);
  end_frontier(a);
}

/* A step the server refuses (here every write, at maxmemory) stops the crawl with the
 * server's reason: the links or records it carried would be lost if the crawl went on. The
 * commit sent with it is neither committed nor refused (-1), and nothing was written. */
TEST(a_step_the_server_refuses_stops_the_crawl) {
  char url[300], err[512];
  url_of(url, sizeof url, "refused", 0);
  lc_frontier *f = open_url(url, 0, 2);
  CHECK_INT(lc_frontier_push(f, "http://a.test/1", 0, NULL, 0), 1);
  lc_request r;
  CHECK_INT(pop_settled(f, &r), 1);
  CHECK(lc_rfront_failure(f) == NULL);
  CHECK_INT(redis_config("maxmemory", "1"), 0);
  CHECK_INT(lc_frontier_push(f, "http://a.test/2", 1, NULL, 0), 1);
  commit_wait w = {0, 0};
  const char *line[] = {"{}"};
  size_t len[] = {2};
  CHECK_INT(lc_rfront_commit(f, r.id, line, len, 1, commit_cb, &w), 0);
  settle(f);
  CHECK_INT(redis_config("maxmemory", "0"), 0);
  CHECK_INT(w.called, 1);
  CHECK_INT(w.result, -1);
  const char *why = lc_rfront_failure(f);
  CHECK(why != NULL);
  if (why) {
    CHECK(strstr(why, "Redis refused a push") != NULL);
    CHECK(strstr(why, "OOM") != NULL);
  }
  lc_rfront_status st;
  CHECK_INT(lc_rfront_get_status(url, &st, err, sizeof err), 0);
  CHECK_INT(st.records, 0);
  CHECK_INT(st.accepted, 1);
  lc_request_clear(&r);
  end_frontier(f);
}

/* A commit is marked by one bit of a bitmap per 2^23 lease tokens, and a pop that starts a
 * range drops the one two ranges older: the marks stay a few MB however long a crawl runs,
 * and a commit in the new range is marked and recognized as before. */
TEST(commit_marks_of_old_leases_are_dropped) {
  char url[300], err[512];
  url_of(url, sizeof url, "marks", 0);
  lc_rfront_addr a;
  CHECK_INT(lc_rfront_parse(url, &a, err, sizeof err), 0);
  redisContext *c = redisConnect("127.0.0.1", port);
  CHECK(c && !c->err);
  if (!c || c->err) return;
  freeReplyObject(redisCommand(c, "HSET %sn lease_seq %d", a.prefix, 2 * 8388608 - 2));
  freeReplyObject(redisCommand(c, "SETBIT %sacked:0 5 1", a.prefix));
  freeReplyObject(redisCommand(c, "SETBIT %sacked:1 5 1", a.prefix));
  lc_frontier *f = open_url(url, 0, 4);
  for (int i = 0; i < 3; i++) {
    char u[64];
    snprintf(u, sizeof u, "http://a%d.test/", i);
    CHECK_INT(lc_frontier_push(f, u, 0, NULL, 0), 1);
  }
  settle(f);
  lc_request r[3];
  for (int i = 0; i < 3; i++) CHECK_INT(pop_settled(f, &r[i]), 1); /* tokens 2^24-1 .. 2^24+1 */
  redisReply *e0 = redisCommand(c, "EXISTS %sacked:0", a.prefix);
  redisReply *e1 = redisCommand(c, "EXISTS %sacked:1", a.prefix);
  CHECK(e0 && e0->integer == 0); /* range 2 started: range 0 dropped */
  CHECK(e1 && e1->integer == 1);
  if (e0) freeReplyObject(e0);
  if (e1) freeReplyObject(e1);
  commit_wait w[3];
  memset(w, 0, sizeof w);
  const char *line[] = {"{}"};
  size_t len[] = {2};
  for (int i = 0; i < 3; i++)
    CHECK_INT(lc_rfront_commit(f, r[i].id, line, len, 1, commit_cb, &w[i]), 0);
  settle(f);
  for (int i = 0; i < 3; i++) {
    CHECK_INT(w[i].result, 1);
    lc_request_clear(&r[i]);
  }
  redisReply *bits = redisCommand(c, "BITCOUNT %sacked:2", a.prefix);
  CHECK(bits && bits->integer == 2); /* tokens 2^24 and 2^24+1 */
  if (bits) freeReplyObject(bits);
  lc_rfront_status st;
  CHECK_INT(lc_rfront_get_status(url, &st, err, sizeof err), 0);
  CHECK_INT(st.records, 3);
  redisFree(c);
  end_frontier(f);
}

/* A turn that pushes a whole start list goes in calls of at most 512 pushes (one call runs
 * alone on the server while every other engine waits), in order, each URL once. */
TEST(a_long_turn_of_pushes_goes_in_bounded_calls) {
  char url[300], err[512];
  url_of(url, sizeof url, "bounded", 0);
  lc_frontier *f = open_url(url, 0, 4);
  lc_rfront_counts before, after;
  lc_rfront_get_counts(f, &before);
  for (int i = 0; i < 1300; i++) {
    char u[64];
    snprintf(u, sizeof u, "http://h%d.test/p%d", i % 7, i);
    CHECK_INT(lc_frontier_push(f, u, 0, NULL, 0), 1);
  }
  CHECK_INT(lc_rfront_outstanding(f) >= 2, 1); /* two full calls are on their way already */
  settle(f);
  lc_rfront_get_counts(f, &after);
  CHECK_INT(after.push_calls - before.push_calls, 3); /* 512 + 512 + 276 */
  CHECK_INT(lc_frontier_accepted(f), 1300);
  lc_rfront_status st;
  CHECK_INT(lc_rfront_get_status(url, &st, err, sizeof err), 0);
  CHECK_INT(st.accepted, 1300);
  CHECK_INT(st.queued, 1300);
  end_frontier(f);
}

/* The engine's own set of what it pushed is bounded: at pushed_max it starts again empty, and
 * a duplicate it no longer knows goes to the server, which drops it. */
TEST(the_set_of_own_pushes_is_bounded) {
  char url[300], err[512];
  url_of(url, sizeof url, "ownset", 0);
  lc_rfront_opts o = {.loop = &loop, .url = url, .prefetch = 2, .pushed_max = 4};
  lc_frontier *f = lc_rfront_open(&o, err, sizeof err);
  CHECK(f != NULL);
  if (!f) return;
  CHECK_INT(lc_frontier_push(f, "http://a.test/1", 0, NULL, 0), 1);
  CHECK_INT(lc_frontier_push(f, "http://a.test/1", 0, NULL, 0), 0); /* its own: at once */
  for (int i = 2; i <= 5; i++) {
    char u[64];
    snprintf(u, sizeof u, "http://a.test/%d", i);
    CHECK_INT(lc_frontier_push(f, u, 0, NULL, 0), 1); /* the 5th starts the set again */
  }
  CHECK_INT(lc_frontier_push(f, "http://a.test/5", 0, NULL, 0), 0);
  CHECK_INT(lc_frontier_push(f, "http://a.test/1", 0, NULL, 0), 1); /* forgotten: sent */
  settle(f);
  CHECK_INT(lc_frontier_accepted(f), 5); /* the server dropped the duplicate */
  lc_rfront_status st;
  CHECK_INT(lc_rfront_get_status(url, &st, err, sizeof err), 0);
  CHECK_INT(st.accepted, 5);
  end_frontier(f);
}

/* Redis SIGKILLed with pushes and commits outstanding, away while the frontier retries (its
 * connects refused), then back on the same port and append-only file: the frontier
 * reconnects, resends, and every page is committed exactly once. */
TEST(redis_killed_and_restarted_with_commands_outstanding) {
  char url[300], err[512];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d/0?crawl=restart", port);
  lc_rfront_opts o = {.loop = &loop, .url = url, .prefetch = 8};
  lc_frontier *f = lc_rfront_open(&o, err, sizeof err);
  CHECK(f != NULL);
  if (!f) return;
  char u[100];
  for (int i = 0; i < 40; i++) {
    snprintf(u, sizeof u, "http://h%d.test/page-%d", i % 5, i);
    CHECK_INT(lc_frontier_push(f, u, 0, NULL, 0), 1);
  }
  CHECK_INT(settle_within(f, 10000), 0);
  CHECK_INT(lc_frontier_accepted(f), 40);

  /* Take 20 requests; commit 10 and give the next 10 pushes of new pages, then kill Redis
   * before it can answer all of that (the commands are written, not answered). */
  lc_request reqs[20];
  int got = 0;
  for (int tries = 0; got < 20 && tries < 400; tries++) {
    if (lc_frontier_pop(f, 0, NULL, NULL, &reqs[got], NULL) == 1)
      got++;
    else
      run_for(5);
  }
  CHECK_INT(got, 20);
  commit_wait w[20];
  memset(w, 0, sizeof w);
  for (int i = 0; i < got; i++) {
    if (i >= 10) {
      snprintf(u, sizeof u, "http://h%d.test/found-%d", i % 5, i);
      CHECK_INT(lc_frontier_push(f, u, 1, NULL, 0), 1);
    }
    char line[200];
    int len = snprintf(line, sizeof line, "{\"url\":\"%s\"}", reqs[i].url);
    const char *lines[] = {line};
    size_t lens[] = {(size_t)len};
    CHECK_INT(lc_rfront_commit(f, reqs[i].id, lines, lens, 1, commit_cb, &w[i]), 0);
    if (i == 9) redis_kill(); /* the first 10 may or may not have been applied */
  }
  CHECK(lc_rfront_outstanding(f) > 0);
  run_for(400); /* refused connects, with backoff: the adapter must report each */
  CHECK(lc_rfront_outstanding(f) > 0);
  redis_start();
  CHECK_INT(settle_within(f, 20000), 0);
  for (int i = 0; i < got; i++) {
    CHECK_INT(w[i].called, 1);
    CHECK_INT(w[i].result, 1); /* committed, or recognized as committed before the kill */
    lc_request_clear(&reqs[i]);
  }
  lc_rfront_counts c;
  lc_rfront_get_counts(f, &c);
  CHECK(c.reconnects >= 1);

  /* The rest of the crawl: 20 queued + 10 found, each committed once. */
  int rest = 0;
  for (int tries = 0; rest < 30 && tries < 2000; tries++) {
    lc_request r;
    if (lc_frontier_pop(f, 0, NULL, NULL, &r, NULL) != 1) {
      run_for(5);
      continue;
    }
    commit_wait cw = {0, 0};
    const char *lines[] = {r.url};
    size_t lens[] = {strlen(r.url)};
    CHECK_INT(lc_rfront_commit(f, r.id, lines, lens, 1, commit_cb, &cw), 0);
    lc_request_clear(&r);
    if (settle_within(f, 10000) != 0) {
      fprintf(stderr, "  a commit was not answered within 10 s\n");
      t_current_failed = 1;
      break;
    }
    CHECK_INT(cw.result, 1);
    rest++;
  }
  CHECK_INT(rest, 30);
  lc_request none;
  CHECK_INT(pop_settled(f, &none), 0); /* and the server's counts heard again */
  CHECK_INT(lc_frontier_pending(f), 0);
  lc_rfront_status st;
  CHECK_INT(lc_rfront_get_status(url, &st, err, sizeof err), 0);
  CHECK_INT(st.records, 50);
  CHECK_INT(st.done, 50);
  CHECK_INT(st.accepted, 50);
  int n = 0;
  CHECK_INT(lc_rfront_each_record(url, count_record, &n, err, sizeof err), 0);
  CHECK_INT(n, 50);
  lc_frontier_destroy(f);
  uv_run(&loop, UV_RUN_NOWAIT);
}

/* ---- lost leases --------------------------------------------------------------------------- */

static void lease_url(char *out, size_t n, const char *crawl, int lease_ms) {
  snprintf(out, n, "redis://127.0.0.1:%d/0?crawl=%s-%d&lease_ms=%d", port, crawl, ++crawl_no,
           lease_ms);
}

/* An engine that dies holding a request it runs (destroyed without ending it: its renewals
 * stop) loses the lease when it expires; the next pop takes it back and counts it (x, reported
 * as lost), once per death, and a retry keeps the count. A request that only waited in the dead
 * engine's prefetch buffer (never handed out: lc_started never named it) is taken back
 * uncounted. The crawl counts every expiry in `reclaimed`. */
TEST(an_expired_lease_is_counted_and_reported_on_the_next_pop) {
  char url[300], err[512];
  lease_url(url, sizeof url, "lost", 600);
  lc_frontier *a = open_url(url, 0, 2);
  CHECK_INT(lc_frontier_push(a, "http://poison.test/1", 0, "{\"p\":1}", 0), 1);
  CHECK_INT(lc_frontier_push(a, "http://poison.test/2", 0, NULL, 0), 1);
  settle(a);
  lc_request r;
  CHECK_INT(pop_settled(a, &r), 1);
  CHECK_STR(r.url, "http://poison.test/1");
  CHECK_INT(r.lost, 0);
  uint64_t id = r.id;
  lc_request_clear(&r);
  end_frontier(a); /* dies running /1, with /2 in its buffer */
  for (int death = 1; death <= 2; death++) {
    run_for(800); /* past the lease */
    lc_frontier *b = open_url(url, 0, 2);
    int ran = 0, other = 0;
    while (pop_settled(b, &r) == 1) {
      if (r.id == id) { /* /1: counted, and b dies running it */
        ran++;
        CHECK_INT(r.lost, death);
        CHECK_INT(r.attempt, 0);
        CHECK_STR(r.data_json, "{\"p\":1}");
      } else { /* /2 (after a's death only): uncounted, done */
        other++;
        CHECK_STR(r.url, "http://poison.test/2");
        CHECK_INT(r.lost, 0);
        CHECK_INT(lc_frontier_done(b, r.id, 1), 0);
      }
      lc_request_clear(&r);
    }
    CHECK_INT(ran, 1);
    CHECK_INT(other, death == 1 ? 1 : 0);
    end_frontier(b); /* dies running /1 */
  }
  lc_rfront_status st;
  CHECK_INT(lc_rfront_get_status(url, &st, err, sizeof err), 0);
  CHECK_INT(st.reclaimed, 3); /* /1 and /2 after a's death, /1 after the first b's */
  CHECK_INT(st.done, 1);
  run_for(800);
  lc_frontier *c = open_url(url, 0, 1);
  CHECK_INT(pop_settled(c, &r), 1);
  CHECK_INT(r.lost, 3);
  CHECK_INT(lc_frontier_retry(c, &r, 0), 0);
  settle(c);
  CHECK_INT(pop_settled(c, &r), 1);
  CHECK_INT(r.lost, 3); /* kept across the retry */
  CHECK_INT(r.attempt, 1);
  CHECK_INT(lc_frontier_done(c, r.id, 0), 0);
  lc_request_clear(&r);
  settle(c);
  CHECK_INT(lc_rfront_get_status(url, &st, err, sizeof err), 0);
  CHECK_INT(st.reclaimed, 4);
  CHECK_INT(st.failed, 1);
  CHECK_INT(st.leased, 0);
  CHECK_INT(st.queued, 0);
  end_frontier(c);
}

/* A clean stop gives its leases back: a request handed out (lc_frontier_release) and the
 * requests of the prefetch buffer (lc_rfront_stop) are queued again at once, uncounted, so
 * another engine takes them without waiting for the lease (a minute here) to expire. A
 * release of a lease that already passed on is ignored on the server. */
TEST(a_released_lease_is_not_counted_and_handed_out_again_at_once) {
  char url[300], err[512];
  lease_url(url, sizeof url, "release", 60000);
  lc_frontier *a = open_url(url, 0, 3);
  CHECK_INT(lc_frontier_push(a, "http://a.test/1", 0, NULL, 0), 1);
  CHECK_INT(lc_frontier_push(a, "http://b.test/1", 0, NULL, 0), 1);
  CHECK_INT(lc_frontier_push(a, "http://c.test/1", 0, NULL, 0), 1);
  settle(a);
  lc_request r;
  CHECK_INT(pop_settled(a, &r), 1);
  settle(a); /* the refill: the other two wait in a's buffer, leased */
  lc_rfront_status st;
  CHECK_INT(lc_rfront_get_status(url, &st, err, sizeof err), 0);
  CHECK_INT(st.leased, 3);
  CHECK_INT(lc_frontier_release(a, &r), 0);
  CHECK(r.url == NULL);
  CHECK_INT(lc_frontier_release(a, &r), LC_FRONTIER_EINVAL); /* zeroed: no url */
  lc_request bogus = {.id = 999, .url = strdup("http://a.test/1")};
  CHECK_INT(lc_frontier_release(a, &bogus), LC_FRONTIER_ENOENT);
  lc_rfront_stop(a);
  /* idempotent */
  lc_rfront_stop(a);
  CHECK_INT(lc_frontier_pop(a, 0, NULL, NULL, &r, NULL), 0); /* stopped: nothing more */
  settle(a);
  CHECK_INT(lc_rfront_get_status(url, &st, err, sizeof err), 0);
  CHECK_INT(st.leased, 0);
  CHECK_INT(st.queued, 3);
  end_frontier(a);
  lc_frontier *b = open_url(url, 0, 3);
  int got = 0;
  while (pop_settled(b, &r) == 1) {
    got++;
    CHECK_INT(r.lost, 0);
    CHECK_INT(r.attempt, 0);
    CHECK_INT(lc_frontier_done(b, r.id, 1), 0);
    lc_request_clear(&r);
  }
  CHECK_INT(got, 3);
  settle(b);
  CHECK_INT(lc_rfront_get_status(url, &st, err, sizeof err), 0);
  CHECK_INT(st.reclaimed, 0);
  CHECK_INT(st.done, 3);
  CHECK_INT(st.leased, 0);
  CHECK_INT(st.queued, 0);
  end_frontier(b);
}

static void cleanup(void) {
  redis_kill();
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (dir[0] && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
  if (system("command -v redis-server >/dev/null 2>&1") != 0) {
    printf("SKIP: redis-server is not installed (the Debian package redis-server)\n");
    return 77;
  }
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/test_rfrontier.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  lc_log_set_level(LC_LOG_ERROR);
  port = free_port();
  redis_start();
  uv_loop_init(&loop);
  RUN(dedupe_on_normalized_url_across_engines);
  RUN(max_pages_counts_the_whole_crawl);
  RUN(ending_twice_or_unknown_fails_loudly);
  RUN(commits_in_one_turn_are_answered_each);
  RUN(a_step_the_server_refuses_stops_the_crawl);
  RUN(an_expired_lease_is_counted_and_reported_on_the_next_pop);
  RUN(a_released_lease_is_not_counted_and_handed_out_again_at_once);
  RUN(commit_marks_of_old_leases_are_dropped);
  RUN(a_long_turn_of_pushes_goes_in_bounded_calls);
  RUN(the_set_of_own_pushes_is_bounded);
  RUN(redis_killed_and_restarted_with_commands_outstanding);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  cleanup();
  DONE();
}
