/* test_jobs.c: two jobs at once in one engine, sharing the browser pool and the context cache,
 * against a local site (spec/support/server.py on 127.0.0.1). One is cancelled mid-crawl: the
 * other finishes whole, and every reference of both is given back. Needs Chromium (a browser
 * test, labelled so in spec/CMakeLists.txt). */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine.h"
#include "test.h"

static char dir[] = "/tmp/luacrawl-test-jobs.XXXXXX";
static pid_t server_pid;
static int port;

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f) abort();
  fputs(text, f);
  fclose(f);
}

static int count_lines(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  int n = 0, c;
  while ((c = fgetc(f)) != EOF) n += c == '\n';
  fclose(f);
  return n;
}

/* server.py on port 0; it writes the port it got into a file once listening. */
static int start_server(void) {
  char port_file[512];
  snprintf(port_file, sizeof port_file, "%s/port", dir);
  server_pid = fork();
  if (server_pid == 0) {
    char watch[32];
    snprintf(watch, sizeof watch, "%d", (int)getppid());
    const char *src = getenv("LUACRAWL_SRC");
    char script[1024], root[1024];
    snprintf(script, sizeof script, "%s/spec/support/server.py", src ? src : ".");
    snprintf(root, sizeof root, "%s/spec/fixtures/site", src ? src : ".");
    execlp("python3", "python3", script, "--root", root, "--port-file", port_file, "--watch-pid",
           watch, (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 200; i++) {
    FILE *f = fopen(port_file, "r");
    if (f) {
      int ok = fscanf(f, "%d", &port) == 1;
      fclose(f);
      if (ok) return 0;
    }
    usleep(50 * 1000);
  }
  return -1;
}

/* A job visiting /_/page?id=FIRST..FIRST+N-1 at concurrency 2, one record per page. */
static void write_job(const char *path, int first, int n) {
  char text[2048];
  snprintf(text, sizeof text,
           "local start = {}\n"
           "for i = %d, %d do start[#start + 1] = 'http://127.0.0.1:%d/_/page?id=' .. i end\n"
           "return {\n"
           "  start = start, max_depth = 0, concurrency = 2, retries = 0,\n"
           "  handle = function(page, req, job)\n"
           "    local res = assert(page:navigate(req.url))\n"
           "    job:emit { url = req.url, status = res.status, title = page:title() }\n"
           "    if req.url:match('id=%d$') then job:log('first page done') end\n"
           "  end,\n"
           "}\n",
           first, first + n - 1, port, first);
  write_file(path, text);
}

typedef struct watch {
  lc_job *a, *b;
  int cancelled;
} watch;

/* Cancel b once it has emitted 4 records; done when both jobs ended. */
static int both_ended(void *ud) {
  watch *w = ud;
  lc_job_counts n;
  lc_job_get_counts(w->b, &n);
  if (!w->cancelled && n.emitted >= 4) {
    lc_job_cancel(w->b, 0);
    w->cancelled = 1;
  }
  return lc_job_ended(w->a) && lc_job_ended(w->b);
}

TEST(two_jobs_share_the_engine_and_one_is_cancelled) {
  char ja[600], jb[600], oa[600], ob[600], err[1024];
  snprintf(ja, sizeof ja, "%s/a.lua", dir);
  snprintf(jb, sizeof jb, "%s/b.lua", dir);
  snprintf(oa, sizeof oa, "%s/a.jsonl", dir);
  snprintf(ob, sizeof ob, "%s/b.jsonl", dir);
  write_job(ja, 1, 30);
  write_job(jb, 1001, 400);

  /* Log lines go to stderr: keep them in a file to see which job wrote them. */
  char logf[600];
  snprintf(logf, sizeof logf, "%s/stderr.log", dir);
  fflush(stderr);
  int saved = dup(2), lfd = open(logf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (lfd >= 0) dup2(lfd, 2);
  lc_engine_opts eo = {0};
  lc_engine *e = lc_engine_new(&eo, err, sizeof err);
  if (!e) {
    dup2(saved, 2);
    fprintf(stderr, "  engine: %s\n", err);
  }
  CHECK(e != NULL);
  if (!e) return;
  lc_job_opts oa_ = {.script = ja, .output = oa, .quiet = 1, .log_tag = "job a"};
  lc_job_opts ob_ = {.script = jb, .output = ob, .quiet = 1, .log_tag = "job b"};
  lc_job *a = lc_engine_add_job(e, &oa_, err, sizeof err);
  lc_job *b = a ? lc_engine_add_job(e, &ob_, err, sizeof err) : NULL;
  if (!a || !b) fprintf(stderr, "  job: %s\n", err);
  CHECK(a != NULL && b != NULL);
  CHECK(lc_job_id(a) != lc_job_id(b));
  int rc = a && b ? lc_engine_start(e, NULL, NULL, err, sizeof err) : -1;
  if (rc) fprintf(stderr, "  start: %s\n", err);
  CHECK_INT(rc, 0);
  if (rc == 0) {
    CHECK_INT(lc_engine_start_job(e, a, err, sizeof err), 0);
    CHECK_INT(lc_engine_start_job(e, b, err, sizeof err), 0);
    watch w = {.a = a, .b = b};
    lc_engine_run_until(e, both_ended, &w, 90 * 1000);
    CHECK(w.cancelled);
    CHECK(lc_job_ended(a));
    CHECK(lc_job_ended(b));
    CHECK(lc_engine_failure(e) == NULL);

    lc_job_counts na, nb;
    lc_job_get_counts(a, &na);
    lc_job_get_counts(b, &nb);
    /* a finished whole, b stopped part way and lost nothing it had emitted */
    CHECK_INT(na.pages_ok, 30);
    CHECK_INT(na.pages_failed, 0);
    CHECK_INT(na.emitted, 30);
    CHECK(nb.emitted >= 4 && nb.emitted < 400);
    CHECK(lc_job_stopping(b));
    CHECK(!lc_job_stopping(a));

    /* every reference of both is released; the cache holds nothing for them */
    CHECK_INT(lc_job_owns(a), 0);
    CHECK_INT(lc_job_owns(b), 0);
    lc_cache_stats cs;
    lc_cache_get_stats(lc_engine_cache(e), &cs);
    CHECK_INT(cs.refs_outstanding, 0);
    CHECK_INT(cs.bad_releases, 0);
    /* b goes while the engine goes on */
    lc_engine_remove_job(e, b);
    char why[256];
    CHECK_INT(lc_cache_check(lc_engine_cache(e), why, sizeof why), 0);
    lc_engine_remove_job(e, a);
  }
  CHECK_INT(lc_engine_free(e), 0);
  fflush(stderr);
  if (lfd >= 0) {
    dup2(saved, 2);
    close(lfd);
  }
  close(saved);
  /* Each job's lines carry its tag. */
  FILE *lf = fopen(logf, "r");
  char buf[1 << 16];
  size_t got = lf ? fread(buf, 1, sizeof buf - 1, lf) : 0;
  buf[got] = 0;
  if (lf) fclose(lf);
  CHECK(strstr(buf, "[job a] first page done") != NULL);
  CHECK(strstr(buf, "[job b] first page done") != NULL);
  CHECK_INT(count_lines(oa), 30);
  int lb = count_lines(ob);
  CHECK(lb >= 4 && lb < 400);
}

int main(void) {
  if (!mkdtemp(dir)) return 1;
  chmod(dir, 0711); /* as root the browser runs as luacrawl-chrome, who must reach its profile */
  setenv("TMPDIR", dir, 1);
  if (start_server() != 0) {
    fprintf(stderr, "cannot start spec/support/server.py\n");
    return 1;
  }
  RUN(two_jobs_share_the_engine_and_one_is_cancelled);
  kill(server_pid, SIGTERM);
  waitpid(server_pid, NULL, 0);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
  DONE();
}
