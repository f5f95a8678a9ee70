/* serve.c: `luacrawl serve` (see serve.h, docs/SERVICE.md).
 *
 * One process, one loop, one browser pool, one context cache: every HTTP request and every
 * job is a job of the one engine (engine.h). The HTTP/1.1 server is libwebsockets' server role,
 * a vhost on the engine's own lws context (the one --connect uses as a client), so no byte of
 * HTTP is parsed here. lws callbacks never run Lua: they read headers and bodies, decide a
 * response and write it; jobs are made (their Lua loaded and checked) from the callback that
 * completes a body, exactly as the CLI makes its job, and run at the engine's resume point.
 *
 * Ownership:
 *  - srv (one per process) owns the config, the vhost, the tick timer, the job registry and
 *    the metrics; it outlives the engine's shutdown, because late lws close callbacks
 *    reach it.
 *  - A service job (sjob) owns its files under DATA/jobs/ID (script.lua, args, state,
 *    records.jsonl, state.sqlite) and its lc_job while it is queued or running; the lc_job is
 *    given back with lc_engine_remove_job once it ended, so its references are 0. sjobs of
 *    POST /jobs live as long as the server (their registry entry is small); a /crawl sjob is
 *    freed when its job ended and its connection is gone, and its files with it.
 *  - A connection's transaction (conn, lws's per-session data) owns its request body, its
 *    response buffer or stream chunk. A stream reads the job's records file only when lws
 *    says the socket is writeable and its chunk is empty: a slow reader holds at most one
 *    chunk (64 KiB, or one record if larger), never a backlog.
 */
#include "serve.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lauxlib.h>
#include <libwebsockets.h>
#include <lualib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "engine.h"
#include "json.h"
#include "l_policy.h"
#include "log.h"
#include "netguard.h"
#include "rfrontier.h"
#include "ws.h"

#define TICK_MS 50
#define CHUNK (64 * 1024)
#define MAX_RECORD_LINE (64u * 1024 * 1024)
#define MAX_CRAWL_RESPONSE (256u * 1024 * 1024)
#define MAX_BODY_TOP (256 * 1024 * 1024) /* the largest max_body_bytes: bounds DIR/args too */
#define MAX_STATE_FILE 65536             /* DIR/state: save_state writes under 1 KiB */
#define MEM_RING 120 /* browser memory, one sample per 5 s: the last 10 minutes */
#define MEM_EVERY_MS 5000
#define HEALTH_EVERY_MS 2000
#define HEALTH_FRESH_MS 6000

/* ---------------------------------------------------------------- configuration */

typedef struct serve_cfg {
  char listen[300];
  char host[256];
  int port;
  char token_file[1024];
  char token[512];
  char data_dir[1024];
  char browser[1024];
  int allow_private;
  char redis[300];          /* redis://HOST:PORT/DB: jobs naming a crawl share it there */
  int max_running;          /* requests + jobs running at once */
  int max_queue;            /* waiting beyond that; more is 429 */
  int64_t queue_timeout_ms; /* longest wait in the queue */
  int64_t grace_ms;         /* SIGTERM: how long running work may go on */
  int64_t max_body_bytes;   /* a bigger request body is 413 */
  int max_crawl_urls;
  int64_t crawl_timeout_ms; /* default timeout_ms of a /crawl URL */
  int max_browser_pss_mb;   /* the browser's PSS limit: recycle at it (policy) */
  int pss_reject_percent;   /* new work gets 503 at this share of max_browser_pss_mb */
  lc_policy policy;
  int verbose, quiet;
} serve_cfg;

static void cfg_defaults(serve_cfg *c) {
  memset(c, 0, sizeof *c);
  snprintf(c->listen, sizeof c->listen, "127.0.0.1:8080");
  snprintf(c->data_dir, sizeof c->data_dir, "luacrawl-data");
  c->max_running = 4;
  c->max_queue = 16;
  c->queue_timeout_ms = 30000;
  c->grace_ms = 8000;
  c->max_body_bytes = 1024 * 1024;
  c->max_crawl_urls = 100;
  c->crawl_timeout_ms = 30000;
  c->pss_reject_percent = 90;
  lc_policy_defaults(&c->policy, 8);
}

typedef struct cfg_field {
  const char *name;
  char type; /* s string, i integer, b boolean, t table */
  int64_t lo, hi;
} cfg_field;

static const cfg_field cfg_fields[] = {
    {"listen", 's', 0, 0},
    {"token_file", 's', 0, 0},
    {"data_dir", 's', 0, 0},
    {"browser", 's', 0, 0},
    {"allow_private", 'b', 0, 0},
    {"redis", 's', 0, 0},
    {"max_running", 'i', 1, 256},
    {"max_queue", 'i', 0, 100000},
    {"queue_timeout_ms", 'i', 100, 3600000},
    {"grace_ms", 'i', 0, 15000},
    {"max_body_bytes", 'i', 1024, MAX_BODY_TOP},
    {"max_crawl_urls", 'i', 1, 10000},
    {"crawl_timeout_ms", 'i', 100, 300000},
    {"max_browser_pss_mb", 'i', 0, 1 << 20},
    {"pss_reject_percent", 'i', 10, 100},
    {"policy", 't', 0, 0},
    {NULL, 0, 0, 0},
};

/* Protected: read the config table (stack: cfg-lightuserdata, table). Raises with a one-line
 * message naming the field on bad input. */
static int cfg_read(lua_State *L) {
  serve_cfg *c = lua_touserdata(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    if (lua_type(L, -2) != LUA_TSTRING) return luaL_error(L, "a key that is not a string");
    const char *k = lua_tostring(L, -2);
    const cfg_field *f = cfg_fields;
    while (f->name && strcmp(f->name, k)) f++;
    if (!f->name) return luaL_error(L, "unknown field '%s'", k);
    int t = lua_type(L, -1);
    if (f->type == 's') {
      if (t != LUA_TSTRING) return luaL_error(L, "%s must be a string (got %s)", k, luaL_typename(L, -1));
      size_t n;
      const char *v = lua_tolstring(L, -1, &n);
      char *dst = !strcmp(k, "listen")       ? c->listen
                  : !strcmp(k, "token_file") ? c->token_file
                  : !strcmp(k, "data_dir")   ? c->data_dir
                  : !strcmp(k, "redis")      ? c->redis
                                             : c->browser;
      size_t cap = !strcmp(k, "listen")  ? sizeof c->listen
                   : !strcmp(k, "redis") ? sizeof c->redis
                                         : sizeof c->data_dir;
      if (n == 0 || n >= cap) return luaL_error(L, "%s must be a non-empty string under %d bytes", k, (int)cap);
      memcpy(dst, v, n + 1);
    } else if (f->type == 'b') {
      if (t != LUA_TBOOLEAN) return luaL_error(L, "%s must be a boolean (got %s)", k, luaL_typename(L, -1));
      c->allow_private = lua_toboolean(L, -1);
    } else if (f->type == 'i') {
      if (!lua_isinteger(L, -1))
        return luaL_error(L, "%s must be an integer (got %s)", k, luaL_typename(L, -1));
      int64_t v = lua_tointeger(L, -1);
      if (v < f->lo || v > f->hi)
        return luaL_error(L, "%s must be in %I..%I (got %I)", k, (lua_Integer)f->lo,
                          (lua_Integer)f->hi, (lua_Integer)v);
      if (!strcmp(k, "max_running")) c->max_running = (int)v;
      else if (!strcmp(k, "max_queue")) c->max_queue = (int)v;
      else if (!strcmp(k, "queue_timeout_ms")) c->queue_timeout_ms = v;
      else if (!strcmp(k, "grace_ms")) c->grace_ms = v;
      else if (!strcmp(k, "max_body_bytes")) c->max_body_bytes = v;
      else if (!strcmp(k, "max_crawl_urls")) c->max_crawl_urls = (int)v;
      else if (!strcmp(k, "crawl_timeout_ms")) c->crawl_timeout_ms = v;
      else if (!strcmp(k, "max_browser_pss_mb")) c->max_browser_pss_mb = (int)v;
      else if (!strcmp(k, "pss_reject_percent")) c->pss_reject_percent = (int)v;
    } else { /* policy */
      char err[512];
      if (lc_policy_from_lua(L, -1, &c->policy, err, sizeof err) != 0)
        return luaL_error(L, "%s", err);
      if (c->policy.hook_ref != LUA_NOREF)
        return luaL_error(L, "policy.on_cleanup is not supported by the server (use the table fields)");
    }
    lua_pop(L, 1);
  }
  return 0;
}

/* Load the config file (a Lua chunk returning a table) into *c. -1 with a message. */
static int cfg_load(const char *path, serve_cfg *c, char *err, size_t errlen) {
  lua_State *L = luaL_newstate();
  if (!L) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  luaL_openlibs(L);
  int rc = -1;
  if (luaL_loadfile(L, path) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
    snprintf(err, errlen, "--config %s: %s", path, lua_tostring(L, -1));
  } else if (!lua_istable(L, -1)) {
    snprintf(err, errlen, "--config %s: the chunk must return a table (got %s)", path,
             luaL_typename(L, -1));
  } else {
    lua_pushcfunction(L, cfg_read);
    lua_pushlightuserdata(L, c);
    lua_pushvalue(L, -3);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK)
      snprintf(err, errlen, "--config %s: %s", path, lua_tostring(L, -1));
    else
      rc = 0;
  }
  lua_close(L);
  return rc;
}

/* HOST:PORT or [V6]:PORT; port 0 asks the kernel for one. */
static int parse_listen(serve_cfg *c, char *err, size_t errlen) {
  const char *s = c->listen, *colon = strrchr(s, ':');
  if (!colon || colon == s) {
    snprintf(err, errlen, "--listen '%s': expected HOST:PORT", s);
    return -1;
  }
  const char *h = s;
  size_t hn = (size_t)(colon - s);
  if (*h == '[' && hn >= 2 && h[hn - 1] == ']') {
    h++;
    hn -= 2;
  }
  char *end = NULL;
  long port = strtol(colon + 1, &end, 10);
  if (!colon[1] || *end || port < 0 || port > 65535 || hn == 0 || hn >= sizeof c->host) {
    snprintf(err, errlen, "--listen '%s': expected HOST:PORT with a port in 0..65535", s);
    return -1;
  }
  memcpy(c->host, h, hn);
  c->host[hn] = 0;
  c->port = (int)port;
  return 0;
}

static int read_token(serve_cfg *c, char *err, size_t errlen) {
  FILE *f = fopen(c->token_file, "r");
  if (!f) {
    snprintf(err, errlen, "--token-file %.400s: %s", c->token_file, strerror(errno));
    return -1;
  }
  size_t n = fread(c->token, 1, sizeof c->token - 1, f);
  int big = fgetc(f) != EOF;
  fclose(f);
  c->token[n] = 0;
  while (n > 0 && (c->token[n - 1] == '\n' || c->token[n - 1] == '\r' || c->token[n - 1] == ' '))
    c->token[--n] = 0;
  if (big || n < 16) {
    snprintf(err, errlen, "--token-file %.400s: the token must be 16..500 bytes on one line",
             c->token_file);
    return -1;
  }
  return 0;
}

/* ---------------------------------------------------------------- jobs and connections */

enum { SJ_QUEUED, SJ_RUNNING, SJ_DONE, SJ_FAILED, SJ_CANCELLED, SJ_NSTATES };
static const char *const state_names[SJ_NSTATES] = {"queued", "running", "done", "failed",
                                                    "cancelled"};

typedef struct conn conn;

typedef struct sjob {
  struct sjob *next;
  uint32_t id;
  int crawl;           /* the built-in job of a POST /crawl */
  int stream;          /* /crawl?stream=1 */
  int state;
  int cancel_asked;    /* DELETE: ends cancelled */
  int interrupted;     /* stopped by the server's stop: resumes on the next start */
  int queue_timed_out;
  char tag[32];
  char dir[1100], script[1200], output[1200], statef[1200];
  char **args; /* "name=value", NULL-terminated */
  char rcrawl[128];   /* the Redis crawl it runs on (POST /jobs "crawl"; DIR/crawl), "": none */
  char frontier[512]; /* cfg.redis?crawl=rcrawl, borrowed by the lc_job */
  lc_job *job; /* made (queued) or running; NULL once ended and given back */
  int64_t created_wall_ms;
  uint64_t queued_ms, started_ms, ended_ms; /* loop ms */
  lc_job_counts n;
  char error[512];
  conn *waiter; /* /crawl: the connection waiting for it */
} sjob;

enum { M_GET, M_POST, M_DELETE, M_OTHER };

struct conn {
  conn *next, *prev; /* srv's list of connections that wait for something */
  int listed;
  int live; /* this transaction holds resources (released once) */
  struct lws *wsi;
  int method;
  char path[256];
  uint64_t t0_us;
  /* request body */
  char *body;
  size_t body_len;
  int body_over;
  /* response */
  int status;
  const char *ctype;
  int retry_after;
  int auth_challenge;
  int decided;      /* status and body (or stream) are set */
  int close_after;  /* a POST answered before its body was read: close after the answer */
  size_t body_cap;
  int headers_sent;
  int finished;     /* the last byte went out */
  char *resp;       /* LWS_PRE bytes of headroom, then resp_len bytes */
  size_t resp_len, resp_off;
  /* streaming NDJSON from a job's records file */
  sjob *src;
  int64_t foff;
  uint64_t skip;
  char *chunk; /* LWS_PRE headroom, then chunk_len bytes to send */
  size_t chunk_len, chunk_cap;
  int idle; /* nothing to send now: the tick asks lws for writeable again */
};

#define N_BUCKETS 14
static const double buckets[N_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                          1,     2.5,  5,     10,   30,  60,  120};

typedef struct status_count {
  int code;
  uint64_t n;
} status_count;

typedef struct srv {
  serve_cfg cfg;
  lc_engine *e;
  lc_shared *sh;
  struct lws_vhost *vh;
  int port;
  uv_timer_t tick;
  int tick_on;
  sjob *jobs, *jobs_tail;
  uint32_t next_id;
  /* The network guard of /crawl's partition (its requests share contexts), started at the
   * first /crawl; closed after every job was given back. */
  lc_netguard *crawl_guard;
  int crawl_guard_failed;
  conn *waiting; /* conns in the waiting list */
  /* stop */
  int stopping;
  uint64_t stop_ms;
  int grace_over;
  int done;
  /* metrics */
  status_count statuses[32];
  uint64_t hist[N_BUCKETS + 1];
  double hist_sum;
  uint64_t hist_count;
  uint64_t rej_queue_full, rej_memory, rej_queue_timeout, rej_body, rej_stopping, rej_auth;
  uint64_t jobs_created, crawls;
  /* memory chart */
  long mem_kb[MEM_RING];
  int mem_n, mem_head;
  uint64_t mem_last_ms, mem_sample_ms, started_ms;
  /* health */
  uint64_t health_id;
  int health_gen;
  uint64_t health_sent_ms, health_ok_ms;
} srv;

static srv *g_srv; /* the one server of the process: lws callbacks reach it here */

static uint64_t now_ms(srv *s) {
  uv_update_time(s->sh->loop);
  return uv_now(s->sh->loop);
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static sjob *find_job(srv *s, uint32_t id) {
  for (sjob *j = s->jobs; j; j = j->next)
    if (j->id == id && !j->crawl) return j;
  return NULL;
}

static int count_state(srv *s, int st) {
  int n = 0;
  for (sjob *j = s->jobs; j; j = j->next) n += j->state == st;
  return n;
}

static int terminal(const sjob *j) { return j->state >= SJ_DONE; }

static void list_add(srv *s, conn *c) {
  if (c->listed) return;
  c->listed = 1;
  c->prev = NULL;
  c->next = s->waiting;
  if (s->waiting) s->waiting->prev = c;
  s->waiting = c;
}

static void list_del(srv *s, conn *c) {
  if (!c->listed) return;
  c->listed = 0;
  if (c->prev) c->prev->next = c->next;
  else s->waiting = c->next;
  if (c->next) c->next->prev = c->prev;
  c->next = c->prev = NULL;
}

/* ---------------------------------------------------------------- files of a job */

static int write_file_atomic(const char *path, const char *data, size_t len) {
  char tmp[1300];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return -errno;
  size_t off = 0;
  while (off < len) {
    ssize_t w = write(fd, data + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int e = errno;
      close(fd);
      unlink(tmp);
      return -e;
    }
    off += (size_t)w;
  }
  if (close(fd) != 0 || rename(tmp, path) != 0) return -errno;
  return 0;
}

/* PATH's contents in *out (NUL-terminated; free it) and their length in *len: 0, or -errno:
 * -ENOENT when there is no such file, -EFBIG when it holds more than cap bytes, -EISDIR for
 * a directory in its place (it opens, and its read fails). */
static int read_all(const char *path, size_t cap, char **out, size_t *len) {
  *out = NULL;
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return -errno;
  lc_buf b;
  lc_buf_init(&b);
  char tmp[8192];
  size_t n;
  while ((n = fread(tmp, 1, sizeof tmp, f)) > 0 && b.n <= cap) lc_buf_add(&b, tmp, n);
  int rc = ferror(f) ? -(errno ? errno : EIO) : 0;
  fclose(f);
  if (!rc && b.n > cap) rc = -EFBIG;
  if (!rc && (b.oom || !lc_buf_str(&b))) rc = -ENOMEM;
  if (rc) {
    lc_buf_free(&b);
    return rc;
  }
  *len = b.n;
  *out = b.p;
  return 0;
}

/* One line for read_all's failure on PATH: "cannot read PATH: reason". */
static void read_all_error(const char *path, size_t cap, int rc, char *err, size_t errlen) {
  if (rc == -EFBIG) snprintf(err, errlen, "cannot read %.300s: it holds over %zu bytes", path, cap);
  else snprintf(err, errlen, "cannot read %.300s: %s", path, strerror(-rc));
}

/* 0 when PATH can be opened and read (its first byte), or -1 with "cannot read PATH: reason"
 * in err: a file a job needs later, checked without holding it in memory. */
static int probe_file(const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  int e = f ? 0 : errno;
  if (f) {
    if (fgetc(f) == EOF && ferror(f)) e = errno ? errno : EIO; /* a directory: EISDIR */
    fclose(f);
  }
  if (!e) return 0;
  snprintf(err, errlen, "cannot read %.300s: %s", path, strerror(e));
  return -1;
}

/* DIR/state: what GET /jobs/ID reports after a restart, and what a restart resumes. */
static void save_state(sjob *j) {
  if (j->crawl) return;
  char text[1024];
  int st = j->state == SJ_RUNNING ? SJ_QUEUED : j->state; /* a restart finds it unfinished */
  int n = snprintf(text, sizeof text,
                   "state %s\ncreated %" PRId64 "\npages_ok %" PRIu64 "\npages_failed %" PRIu64
                   "\nretries %" PRIu64 "\nrecords %" PRIu64 "\nerror %s\n",
                   state_names[st], j->created_wall_ms, j->n.pages_ok, j->n.pages_failed,
                   j->n.retries, j->n.emitted, j->error);
  char path[1300];
  snprintf(path, sizeof path, "%s/state", j->dir);
  int rc = write_file_atomic(path, text, (size_t)n);
  if (rc < 0) lc_error("cannot write %.400s: %s", path, strerror(-rc));
}

static void free_args(char **a) {
  for (char **p = a; p && *p; p++) free(*p);
  free(a);
}

static void rm_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *de;
  char p[1600];
  while ((de = readdir(d))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
    unlink(p);
  }
  closedir(d);
  rmdir(dir);
}

static void sjob_paths(srv *s, sjob *j) {
  snprintf(j->dir, sizeof j->dir, "%s/%s/%u", s->cfg.data_dir, j->crawl ? "crawl" : "jobs", j->id);
  snprintf(j->script, sizeof j->script, "%s/script.lua", j->dir);
  snprintf(j->output, sizeof j->output, "%s/records.jsonl", j->dir);
  snprintf(j->statef, sizeof j->statef, "%s/state.sqlite", j->dir);
  snprintf(j->tag, sizeof j->tag, "%s %u", j->crawl ? "crawl" : "job", j->id);
}

static void sjob_append(srv *s, sjob *j) {
  j->next = NULL;
  if (s->jobs_tail) s->jobs_tail->next = j;
  else s->jobs = j;
  s->jobs_tail = j;
}

static void sjob_unlink_free(srv *s, sjob *j) {
  sjob **pp = &s->jobs, *prev = NULL;
  while (*pp && *pp != j) {
    prev = *pp;
    pp = &(*pp)->next;
  }
  if (*pp) *pp = j->next;
  if (s->jobs_tail == j) s->jobs_tail = prev;
  if (j->crawl) rm_dir(j->dir);
  free_args(j->args);
  free(j);
}

/* A /crawl job is freed once it ended and nobody waits for it. */
static void crawl_maybe_free(srv *s, sjob *j) {
  if (j->crawl && terminal(j) && !j->job && !j->waiter) sjob_unlink_free(s, j);
}

/* /crawl requests share one partition of the context cache, so requests with the same
 * context options reuse a context (and its idle pages), as crawl4ai's service does; the
 * policy bounds how many stay open. A request with "isolated": true gets contexts of its own
 * (no cookie of another request reaches it), closed by the policy after it. */
#define CRAWL_PARTITION "serve crawl"

static int crawl_isolated(const sjob *j) {
  const char *body = j->args && j->args[0] ? j->args[0] + strlen("request=") : "";
  lc_json_span v;
  return lc_json_member(body, strlen(body), "isolated", &v) == 0 && v.n == 4 &&
         memcmp(v.p, "true", 4) == 0;
}

static lc_netguard *crawl_guard(srv *s) {
  if (!s->crawl_guard && !s->crawl_guard_failed) {
    char err[200];
    lc_netguard_opts o = {.allow_private = s->cfg.allow_private, .log_tag = "[crawl] "};
    s->crawl_guard = lc_netguard_new(s->sh->loop, &o, err, sizeof err);
    if (!s->crawl_guard) {
      s->crawl_guard_failed = 1; /* each job then starts its own, and says why it cannot */
      lc_error("%s", err);
    }
  }
  return s->crawl_guard;
}

/* How long a job's Redis that was never reached is tried for before the job fails. The CLI
 * checks Redis before it starts; a server cannot block its loop on that check, so it answers
 * a job whose Redis is down (refused, or accepting and never answering) with a failed job in
 * seconds instead of letting it wait rconn's minute. A Redis lost after it was reached is
 * waited for as long as in the CLI. */
#define SERVE_REDIS_FIRST_GIVE_UP_MS 3000

/* Make the engine's job (its Lua loaded and checked in protected calls). */
static int make_job(srv *s, sjob *j, char *err, size_t errlen) {
  lc_job_opts o = {.script = j->script,
                   .args = (const char *const *)j->args,
                   .output = j->output,
                   .quiet = 1,
                   .log_tag = j->tag,
                   .state = j->crawl ? NULL : j->statef,
                   /* The built-in /crawl chunk is the engine's own code; its job table turns the
                    * sandbox on for its handler. A client's script runs in it whole. */
                   .sandbox = !j->crawl,
                   .allow_private = s->cfg.allow_private};
  if (j->rcrawl[0]) {
    if (!s->cfg.redis[0]) {
      snprintf(err, errlen,
               "the job runs on the Redis crawl %s, but the server has no redis configured",
               j->rcrawl);
      return -1;
    }
    snprintf(j->frontier, sizeof j->frontier, "%s?crawl=%s", s->cfg.redis, j->rcrawl);
    o.state = NULL;
    o.frontier = j->frontier;
    o.frontier_async = 1; /* the loop never waits on Redis: a Redis never reached fails it */
    o.frontier_first_give_up_ms = SERVE_REDIS_FIRST_GIVE_UP_MS;
  }
  if (j->crawl && !crawl_isolated(j)) {
    o.partition = CRAWL_PARTITION;
    o.guard = crawl_guard(s);
  }
  j->job = lc_engine_add_job(s->e, &o, err, errlen);
  return j->job ? 0 : -1;
}

static void finish(srv *s, sjob *j, int state, const char *why) {
  /* `why` may point into the job (lc_job_failure): copy it before the job is freed. */
  if (why && !j->error[0]) snprintf(j->error, sizeof j->error, "%s", why);
  if (j->job) {
    lc_job_get_counts(j->job, &j->n);
    lc_engine_remove_job(s->e, j->job); /* every reference it held is given back */
    j->job = NULL;
  }
  j->state = state;
  j->ended_ms = now_ms(s);
  save_state(j);
  if (j->waiter) {
    list_del(s, j->waiter);
    j->waiter->idle = 0;
    lws_callback_on_writable(j->waiter->wsi);
    list_add(s, j->waiter); /* the tick wakes it too, in case */
  }
}

static void start_job(srv *s, sjob *j) {
  char err[1024];
  if (!j->job && make_job(s, j, err, sizeof err) != 0) {
    finish(s, j, SJ_FAILED, err);
    return;
  }
  if (lc_engine_start_job(s->e, j->job, err, sizeof err) != 0) {
    finish(s, j, SJ_FAILED, err);
    return;
  }
  j->state = SJ_RUNNING;
  j->started_ms = now_ms(s);
  save_state(j);
  lc_info("[%s] started", j->tag);
}

/* Jobs that ended; queued ones that waited too long; queued ones a free slot can take. */
static void pump(srv *s) {
  uint64_t now = now_ms(s);
  for (sjob *j = s->jobs, *next; j; j = next) {
    next = j->next;
    if (j->state == SJ_RUNNING && lc_job_ended(j->job)) {
      const char *fail = lc_job_failure(j->job);
      int st = j->cancel_asked ? SJ_CANCELLED : fail ? SJ_FAILED : SJ_DONE;
      if (j->interrupted && !j->cancel_asked) st = j->crawl ? SJ_CANCELLED : SJ_QUEUED;
      finish(s, j, st, j->interrupted ? "the server stopped" : fail);
      lc_info("[%s] %s", j->tag, state_names[st]);
      crawl_maybe_free(s, j);
    } else if (j->state == SJ_QUEUED && j->job && lc_job_failure(j->job)) {
      /* Made, not started, and failed already: a Redis crawl whose Redis was never reached
       * (the connection is made with the job). It fails now with that reason, not when a
       * slot frees (or as a queue timeout). */
      finish(s, j, SJ_FAILED, lc_job_failure(j->job));
      lc_info("[%s] failed in the queue: %s", j->tag, j->error);
      crawl_maybe_free(s, j);
    }
  }
  int running = count_state(s, SJ_RUNNING);
  for (sjob *j = s->jobs, *next; j; j = next) {
    next = j->next;
    if (j->state != SJ_QUEUED || j->interrupted) continue;
    if (s->stopping) {
      if (j->crawl) {
        finish(s, j, SJ_CANCELLED, "the server is stopping");
        crawl_maybe_free(s, j);
      }
      continue;
    }
    if (now - j->queued_ms > (uint64_t)s->cfg.queue_timeout_ms) {
      char why[128];
      snprintf(why, sizeof why, "waited in the queue longer than %" PRId64 " ms",
               s->cfg.queue_timeout_ms);
      j->queue_timed_out = 1;
      s->rej_queue_timeout++;
      finish(s, j, SJ_FAILED, why);
      crawl_maybe_free(s, j);
      continue;
    }
    if (running < s->cfg.max_running && s->sh->cache) {
      start_job(s, j);
      running += j->state == SJ_RUNNING;
    }
  }
}

/* ---------------------------------------------------------------- responses */

static void set_response(conn *c, int status, const char *ctype, const char *body, size_t len) {
  free(c->resp);
  c->resp = malloc(LWS_PRE + len + 1);
  c->resp_len = c->resp ? len : 0;
  if (c->resp) memcpy(c->resp + LWS_PRE, body, len);
  c->resp_off = 0;
  c->status = c->resp ? status : 500;
  c->ctype = ctype;
  c->decided = 1;
  lws_callback_on_writable(c->wsi);
}

static void respond_buf(conn *c, int status, const char *ctype, lc_buf *b) {
  const char *t = lc_buf_str(b);
  if (!t) set_response(c, 500, "application/json", "{\"error\":\"out of memory\"}", 25);
  else set_response(c, status, ctype, t, b->n);
  lc_buf_free(b);
}

static void respond_error(conn *c, int status, const char *msg) {
  lc_buf b;
  lc_buf_init(&b);
  lc_buf_puts(&b, "{\"error\":");
  lc_buf_json_string(&b, msg);
  lc_buf_puts(&b, "}\n");
  respond_buf(c, status, "application/json", &b);
}

/* Start an NDJSON stream of j's records from line `from`. */
static void respond_stream(srv *s, conn *c, sjob *j, uint64_t from) {
  c->src = j;
  c->skip = from;
  c->foff = 0;
  c->status = 200;
  c->ctype = "application/x-ndjson";
  c->decided = 1;
  lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
  list_add(s, c);
  lws_callback_on_writable(c->wsi);
}

static void count_status(srv *s, int code, uint64_t t0_us) {
  size_t i = 0;
  while (i < 32 && s->statuses[i].code && s->statuses[i].code != code) i++;
  if (i < 32) {
    s->statuses[i].code = code;
    s->statuses[i].n++;
  }
  double secs = (double)(mono_us() - t0_us) / 1e6;
  int b = 0;
  while (b < N_BUCKETS && secs > buckets[b]) b++;
  s->hist[b]++;
  s->hist_sum += secs;
  s->hist_count++;
}

/* ---------------------------------------------------------------- JSON of jobs */

static void job_json(lc_buf *b, srv *s, sjob *j) {
  lc_job_counts n = j->n;
  if (j->job && j->state == SJ_RUNNING) lc_job_get_counts(j->job, &n);
  uint64_t now = now_ms(s);
  uint64_t qend = j->started_ms ? j->started_ms : j->ended_ms ? j->ended_ms : now;
  lc_buf_printf(b,
                "{\"id\":%u,\"state\":\"%s\",\"created\":%" PRId64 ",\"stats\":{\"pages_ok\":%" PRIu64
                ",\"pages_failed\":%" PRIu64 ",\"retries\":%" PRIu64 ",\"records\":%" PRIu64
                ",\"robots_skipped\":%" PRIu64 ",\"throttled\":%" PRIu64,
                j->id, state_names[j->state], j->created_wall_ms, n.pages_ok, n.pages_failed,
                n.retries, n.emitted, n.robots_skipped, n.throttled);
  if (j->job && j->state == SJ_RUNNING)
    lc_buf_printf(b, ",\"pending\":%zu,\"tasks\":%d,\"refs\":%d", lc_job_pending(j->job),
                  lc_job_tasks(j->job), lc_job_owns(j->job));
  if (j->queued_ms)
    lc_buf_printf(b, ",\"queue_ms\":%" PRIu64, qend >= j->queued_ms ? qend - j->queued_ms : 0);
  if (j->started_ms)
    lc_buf_printf(b, ",\"run_ms\":%" PRIu64,
                  (j->ended_ms ? j->ended_ms : now) - j->started_ms);
  lc_buf_puts(b, "}");
  if (j->rcrawl[0]) {
    lc_buf_puts(b, ",\"crawl\":");
    lc_buf_json_string(b, j->rcrawl);
  }
  if (j->error[0]) {
    lc_buf_puts(b, ",\"error\":");
    lc_buf_json_string(b, j->error);
  }
  lc_buf_puts(b, "}");
}

/* ---------------------------------------------------------------- admission */

/* 0: admitted (run now or queue); otherwise the response was given (429/503). */
static int admit(srv *s, conn *c) {
  if (s->stopping) {
    s->rej_stopping++;
    c->retry_after = 5;
    respond_error(c, 503, "the server is stopping");
    return -1;
  }
  int limit = s->cfg.max_browser_pss_mb;
  if (limit > 0 && s->sh->browser_pss_kb / 1024 * 100 >= (long)limit * s->cfg.pss_reject_percent) {
    s->rej_memory++;
    c->retry_after = 5;
    respond_error(c, 503, "the browser is near its memory limit; try again shortly");
    return -1;
  }
  int running = count_state(s, SJ_RUNNING), queued = count_state(s, SJ_QUEUED);
  if (running >= s->cfg.max_running && queued >= s->cfg.max_queue) {
    s->rej_queue_full++;
    c->retry_after = 1;
    respond_error(c, 429, "too many requests: the queue is full");
    return -1;
  }
  return 0;
}

static sjob *new_sjob(srv *s, int crawl) {
  sjob *j = calloc(1, sizeof *j);
  if (!j) return NULL;
  j->id = ++s->next_id;
  j->crawl = crawl;
  j->created_wall_ms = wall_ms();
  j->queued_ms = now_ms(s);
  sjob_paths(s, j);
  return j;
}

/* Write script and args, make the engine's job (bad input: 400), queue it. */
static sjob *create_job(srv *s, conn *c, int crawl, const char *script, size_t script_len,
                        char **args, const char *rcrawl) {
  sjob *j = new_sjob(s, crawl);
  if (!j) {
    free_args(args);
    respond_error(c, 500, "out of memory");
    return NULL;
  }
  j->args = args;
  snprintf(j->rcrawl, sizeof j->rcrawl, "%s", rcrawl);
  char err[1024] = "";
  if (mkdir(j->dir, 0700) != 0) {
    snprintf(err, sizeof err, "cannot create %.400s: %s", j->dir, strerror(errno));
    goto fail500;
  }
  if (script) {
    int rc = write_file_atomic(j->script, script, script_len);
    if (rc < 0) {
      snprintf(err, sizeof err, "cannot write %.400s: %s", j->script, strerror(-rc));
      goto fail500;
    }
  } else {
    const char *lib = getenv("LUACRAWL_LIB");
    snprintf(j->script, sizeof j->script, "%s/luacrawl/serve_crawl.lua",
             lib && *lib ? lib : LC_LIB_DIR);
  }
  if (!crawl) {
    lc_buf a;
    lc_buf_init(&a);
    for (char **p = args; p && *p; p++) lc_buf_add(&a, *p, strlen(*p) + 1);
    char path[1300];
    snprintf(path, sizeof path, "%s/args", j->dir);
    int rc = lc_buf_str(&a) ? write_file_atomic(path, a.p ? a.p : "", a.n) : -ENOMEM;
    lc_buf_free(&a);
    if (rc < 0) {
      snprintf(err, sizeof err, "cannot write %.400s: %s", path, strerror(-rc));
      goto fail500;
    }
    if (j->rcrawl[0]) { /* DIR/crawl: a restart rejoins the same Redis crawl */
      snprintf(path, sizeof path, "%s/crawl", j->dir);
      rc = write_file_atomic(path, j->rcrawl, strlen(j->rcrawl));
      if (rc < 0) {
        snprintf(err, sizeof err, "cannot write %.400s: %s", path, strerror(-rc));
        goto fail500;
      }
    }
  }
  if (make_job(s, j, err, sizeof err) != 0) {
    rm_dir(j->dir);
    respond_error(c, 400, err);
    free_args(j->args);
    free(j);
    return NULL;
  }
  j->state = SJ_QUEUED;
  save_state(j);
  sjob_append(s, j);
  if (crawl) s->crawls++;
  else s->jobs_created++;
  return j;
fail500:
  rm_dir(j->dir);
  lc_error("%s", err);
  respond_error(c, 500, err);
  free_args(j->args);
  free(j);
  return NULL;
}

/* ---------------------------------------------------------------- routes */

typedef struct args_acc {
  char **v;
  size_t n, cap;
  char err[256];
} args_acc;

static int args_push(args_acc *a, char *s) {
  if (!s) return -1;
  if (a->n + 2 > a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 8;
    char **p = realloc(a->v, cap * sizeof *p);
    if (!p) {
      free(s);
      return -1;
    }
    a->v = p;
    a->cap = cap;
  }
  a->v[a->n++] = s;
  a->v[a->n] = NULL;
  return 0;
}

static int arg_member(void *ud, lc_json_span key, lc_json_span val) {
  args_acc *a = ud;
  char *k = lc_json_string_dup(key);
  if (!k || !*k || strchr(k, '=') || strlen(k) > 200) {
    snprintf(a->err, sizeof a->err, "args: names must be non-empty strings without '='");
    free(k);
    return 1;
  }
  if (val.n == 4 && !memcmp(val.p, "null", 4)) {
    free(k);
    return 0;
  }
  char *v = val.p[0] == '"' ? lc_json_string_dup(val) : NULL;
  lc_buf b;
  lc_buf_init(&b);
  lc_buf_puts(&b, k);
  lc_buf_puts(&b, "=");
  if (v) lc_buf_puts(&b, v);
  else lc_buf_add(&b, val.p, val.n); /* numbers, booleans, objects: their JSON text */
  free(k);
  free(v);
  if (!lc_buf_str(&b) || args_push(a, b.p) != 0) {
    lc_buf_free(&b);
    snprintf(a->err, sizeof a->err, "out of memory");
    return 1;
  }
  return 0;
}

/* POST /jobs "crawl": 0 when the server has redis and NAME passes the rule of every crawl name
 * (lc_rfront_check_crawl_name, the CLI's ?crawl=NAME); else -1 with one line in why. */
static int check_crawl_name(srv *s, const char *name, char *why, size_t n) {
  if (!name) {
    snprintf(why, n, "'crawl' must be a string (the name of a Redis crawl)");
    return -1;
  }
  if (!s->cfg.redis[0]) {
    snprintf(why, n,
             "'crawl' needs a Redis: the server has no redis configured (redis = "
             "\"redis://HOST:PORT/DB\" or --redis)");
    return -1;
  }
  char e[300];
  if (lc_rfront_check_crawl_name(name, e, sizeof e) != 0) {
    snprintf(why, n, "'crawl': bad name: %s", e);
    return -1;
  }
  return 0;
}

static int jobs_member_check(void *ud, lc_json_span key, lc_json_span val) {
  (void)val;
  char *k = lc_json_string_dup(key);
  int ok = k && (!strcmp(k, "script") || !strcmp(k, "args") || !strcmp(k, "crawl"));
  if (!ok)
    snprintf(ud, 256, "unknown field %.*s (expected script, args, crawl)", (int)key.n, key.p);
  free(k);
  return !ok;
}

static void post_jobs(srv *s, conn *c) {
  char why[256] = "";
  int rc = lc_json_each_member(c->body, c->body_len, jobs_member_check, why);
  if (rc == -2) {
    respond_error(c, 400, "the body is not a JSON object");
    return;
  }
  if (rc) {
    respond_error(c, 400, why);
    return;
  }
  lc_json_span sp, ap;
  if (lc_json_member(c->body, c->body_len, "script", &sp) != 0 || sp.p[0] != '"') {
    respond_error(c, 400, "'script' (the Lua source of a job) is required, as a string");
    return;
  }
  char *script = lc_json_string_dup(sp);
  if (!script) {
    respond_error(c, 400, "'script' is not a valid JSON string");
    return;
  }
  char rcrawl[128] = "";
  lc_json_span cp;
  if (lc_json_member(c->body, c->body_len, "crawl", &cp) == 0) {
    char *name = cp.p[0] == '"' ? lc_json_string_dup(cp) : NULL;
    char why2[600];
    int bad = check_crawl_name(s, name, why2, sizeof why2);
    if (!bad) snprintf(rcrawl, sizeof rcrawl, "%s", name);
    free(name);
    if (bad) {
      free(script);
      respond_error(c, 400, why2);
      return;
    }
  }
  args_acc a = {0};
  if (lc_json_member(c->body, c->body_len, "args", &ap) == 0) {
    rc = lc_json_each_member(ap.p, ap.n, arg_member, &a);
    if (rc) {
      free(script);
      free_args(a.v);
      respond_error(c, 400, rc == -2 ? "'args' must be an object" : a.err);
      return;
    }
  }
  if (admit(s, c) != 0) {
    free(script);
    free_args(a.v);
    return;
  }
  if (!a.v) a.v = calloc(1, sizeof *a.v); /* a NULL-terminated list even when empty */
  sjob *j = create_job(s, c, 0, script, strlen(script), a.v, rcrawl);
  free(script);
  if (!j) return;
  lc_info("[%s] accepted", j->tag);
  pump(s);
  lc_buf b;
  lc_buf_init(&b);
  lc_buf_printf(&b, "{\"id\":%u,\"state\":\"%s\"}\n", j->id, state_names[j->state]);
  respond_buf(c, 202, "application/json", &b);
}

static void post_crawl(srv *s, conn *c, int stream) {
  lc_json_span u;
  int rc = lc_json_member(c->body, c->body_len, "urls", &u);
  if (rc == -2) {
    respond_error(c, 400, "the body is not a JSON object");
    return;
  }
  if (admit(s, c) != 0) return;
  args_acc a = {0};
  lc_buf b;
  lc_buf_init(&b);
  lc_buf_puts(&b, "request=");
  lc_buf_add(&b, c->body, c->body_len);
  char num[64];
  if (!lc_buf_str(&b) || args_push(&a, b.p) != 0) {
    lc_buf_free(&b);
    respond_error(c, 500, "out of memory");
    return;
  }
  snprintf(num, sizeof num, "max_urls=%d", s->cfg.max_crawl_urls);
  args_push(&a, strdup(num));
  snprintf(num, sizeof num, "timeout_ms=%" PRId64, s->cfg.crawl_timeout_ms);
  args_push(&a, strdup(num));
  sjob *j = create_job(s, c, 1, NULL, 0, a.v, "");
  if (!j) return;
  j->stream = stream;
  j->waiter = c;
  c->src = j;
  lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
  list_add(s, c);
  if (stream) respond_stream(s, c, j, 0);
  pump(s);
}

static int cmp_by_index(const void *a, const void *b) {
  const lc_json_span *x = a, *y = b;
  lc_json_span xi, yi;
  int64_t i = INT64_MAX, k = INT64_MAX;
  if (lc_json_member(x->p, x->n, "index", &xi) == 0) lc_json_int(xi, &i);
  if (lc_json_member(y->p, y->n, "index", &yi) == 0) lc_json_int(yi, &k);
  return i < k ? -1 : i > k;
}

/* A /crawl without stream=1 whose job ended: {"results": [...]} in the order of the URLs. */
static void crawl_answer(srv *s, conn *c, sjob *j) {
  (void)s;
  if (j->queue_timed_out || (j->state == SJ_CANCELLED && !j->cancel_asked)) {
    c->retry_after = 1;
    respond_error(c, 503, j->error[0] ? j->error : "not run");
    return;
  }
  size_t len = 0;
  char *text = NULL;
  int rc = read_all(j->output, MAX_CRAWL_RESPONSE, &text, &len);
  if (rc != 0 && j->state == SJ_DONE) {
    char why[512];
    read_all_error(j->output, MAX_CRAWL_RESPONSE, rc, why, sizeof why);
    lc_error("[%s] %s", j->tag, why);
    respond_error(c, 500,
                  rc == -EFBIG ? "the results are too large" : "the results cannot be read");
    return;
  }
  size_t n = 0, cap = 16;
  lc_json_span *lines = malloc(cap * sizeof *lines);
  for (char *p = text, *e = text ? text + len : NULL; p && lines && p < e;) {
    char *nl = memchr(p, '\n', (size_t)(e - p));
    if (!nl) break;
    if (n == cap) {
      lc_json_span *q = realloc(lines, (cap *= 2) * sizeof *lines);
      if (!q) break;
      lines = q;
    }
    lines[n].p = p;
    lines[n++].n = (size_t)(nl - p);
    p = nl + 1;
  }
  if (lines) qsort(lines, n, sizeof *lines, cmp_by_index);
  lc_buf b;
  lc_buf_init(&b);
  lc_buf_puts(&b, "{\"results\":[");
  for (size_t i = 0; lines && i < n; i++) {
    if (i) lc_buf_puts(&b, ",");
    lc_buf_add(&b, lines[i].p, lines[i].n);
  }
  lc_buf_puts(&b, "]");
  if (j->error[0]) {
    lc_buf_puts(&b, ",\"error\":");
    lc_buf_json_string(&b, j->error);
  }
  lc_buf_puts(&b, "}\n");
  free(lines);
  free(text);
  respond_buf(c, j->state == SJ_DONE || n > 0 ? 200 : 500, "application/json", &b);
}

static void get_jobs(srv *s, conn *c) {
  lc_buf b;
  lc_buf_init(&b);
  lc_buf_puts(&b, "{\"jobs\":[");
  int first = 1;
  for (sjob *j = s->jobs; j; j = j->next) {
    if (j->crawl) continue;
    if (!first) lc_buf_puts(&b, ",");
    first = 0;
    job_json(&b, s, j);
  }
  lc_buf_puts(&b, "]}\n");
  respond_buf(c, 200, "application/json", &b);
}

static void metrics(srv *s, conn *c) {
  lc_cache_stats cs;
  memset(&cs, 0, sizeof cs);
  if (s->sh->cache) lc_cache_get_stats(s->sh->cache, &cs);
  lc_buf b;
  lc_buf_init(&b);
  lc_buf_printf(&b,
                "# HELP luacrawl_contexts_open Browser contexts open (all generations).\n"
                "# TYPE luacrawl_contexts_open gauge\nluacrawl_contexts_open %d\n"
                "# HELP luacrawl_refs_outstanding Context references held (live handles).\n"
                "# TYPE luacrawl_refs_outstanding gauge\nluacrawl_refs_outstanding %d\n"
                "# TYPE luacrawl_idle_pages gauge\nluacrawl_idle_pages %d\n"
                "# TYPE luacrawl_pages_created_total counter\nluacrawl_pages_created_total %" PRIu64
                "\n# TYPE luacrawl_pages_reused_total counter\nluacrawl_pages_reused_total %" PRIu64
                "\n# TYPE luacrawl_contexts_created_total counter\nluacrawl_contexts_created_total %" PRIu64
                "\n# TYPE luacrawl_bad_releases_total counter\nluacrawl_bad_releases_total %" PRIu64 "\n",
                cs.contexts_open, cs.refs_outstanding, cs.idle_pages, cs.pages_created,
                cs.pages_reused, cs.contexts_created, cs.bad_releases);
  lc_buf_printf(&b,
                "# HELP luacrawl_browser_pss_bytes Proportional set size of the browser process trees.\n"
                "# TYPE luacrawl_browser_pss_bytes gauge\nluacrawl_browser_pss_bytes %ld\n"
                "# TYPE luacrawl_browser_rss_bytes gauge\nluacrawl_browser_rss_bytes %ld\n"
                "# TYPE luacrawl_browser_restarts_total counter\nluacrawl_browser_restarts_total %d\n"
                "# TYPE luacrawl_browser_recycles_total counter\nluacrawl_browser_recycles_total %d\n",
                s->sh->browser_pss_kb * 1024, s->sh->browser_rss_kb * 1024, s->sh->restarts,
                s->sh->browser_recycles);
  lc_buf_puts(&b, "# HELP luacrawl_jobs Service jobs (POST /jobs and /crawl) by state.\n"
                  "# TYPE luacrawl_jobs gauge\n");
  for (int st = 0; st < SJ_NSTATES; st++)
    lc_buf_printf(&b, "luacrawl_jobs{state=\"%s\"} %d\n", state_names[st], count_state(s, st));
  lc_buf_printf(&b, "# TYPE luacrawl_queue_depth gauge\nluacrawl_queue_depth %d\n",
                count_state(s, SJ_QUEUED));
  lc_buf_printf(&b, "# TYPE luacrawl_running gauge\nluacrawl_running %d\n",
                count_state(s, SJ_RUNNING));
  lc_buf_printf(&b, "# TYPE luacrawl_jobs_created_total counter\nluacrawl_jobs_created_total %" PRIu64
                    "\n# TYPE luacrawl_crawl_requests_total counter\nluacrawl_crawl_requests_total %" PRIu64 "\n",
                s->jobs_created, s->crawls);
  lc_buf_printf(&b,
                "# HELP luacrawl_admission_rejections_total Work refused or dropped by admission control.\n"
                "# TYPE luacrawl_admission_rejections_total counter\n"
                "luacrawl_admission_rejections_total{reason=\"queue_full\"} %" PRIu64 "\n"
                "luacrawl_admission_rejections_total{reason=\"memory\"} %" PRIu64 "\n"
                "luacrawl_admission_rejections_total{reason=\"queue_timeout\"} %" PRIu64 "\n"
                "luacrawl_admission_rejections_total{reason=\"body_too_large\"} %" PRIu64 "\n"
                "luacrawl_admission_rejections_total{reason=\"stopping\"} %" PRIu64 "\n"
                "luacrawl_admission_rejections_total{reason=\"unauthorized\"} %" PRIu64 "\n",
                s->rej_queue_full, s->rej_memory, s->rej_queue_timeout, s->rej_body,
                s->rej_stopping, s->rej_auth);
  lc_buf_puts(&b, "# HELP luacrawl_http_requests_total HTTP responses by status (499: the client "
                  "went away first).\n# TYPE luacrawl_http_requests_total counter\n");
  for (int i = 0; i < 32 && s->statuses[i].code; i++)
    lc_buf_printf(&b, "luacrawl_http_requests_total{code=\"%d\"} %" PRIu64 "\n",
                  s->statuses[i].code, s->statuses[i].n);
  lc_buf_puts(&b, "# HELP luacrawl_http_request_duration_seconds From the request's headers to "
                  "its last byte.\n# TYPE luacrawl_http_request_duration_seconds histogram\n");
  uint64_t cum = 0;
  for (int i = 0; i < N_BUCKETS; i++) {
    cum += s->hist[i];
    lc_buf_printf(&b, "luacrawl_http_request_duration_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                  buckets[i], cum);
  }
  cum += s->hist[N_BUCKETS];
  lc_buf_printf(&b,
                "luacrawl_http_request_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n"
                "luacrawl_http_request_duration_seconds_sum %.6f\n"
                "luacrawl_http_request_duration_seconds_count %" PRIu64 "\n",
                cum, s->hist_sum, s->hist_count);
  respond_buf(c, 200, "text/plain; version=0.0.4", &b);
}

static void html_escape(lc_buf *b, const char *t) {
  for (; *t; t++) {
    if (*t == '<') lc_buf_puts(b, "&lt;");
    else if (*t == '>') lc_buf_puts(b, "&gt;");
    else if (*t == '&') lc_buf_puts(b, "&amp;");
    else if (*t == '"') lc_buf_puts(b, "&quot;");
    else lc_buf_add(b, t, 1);
  }
}

static void status_page(srv *s, conn *c) {
  lc_cache_stats cs;
  memset(&cs, 0, sizeof cs);
  if (s->sh->cache) lc_cache_get_stats(s->sh->cache, &cs);
  lc_buf b;
  lc_buf_init(&b);
  uint64_t up = (now_ms(s) - s->started_ms) / 1000;
  lc_buf_printf(&b,
                "<!doctype html><html><head><meta charset=utf-8><title>luacrawl serve</title>"
                "<style>body{font:14px sans-serif;margin:2em}td,th{padding:2px 10px;text-align:left}"
                "svg{border:1px solid #ccc;background:#fafafa}</style></head><body>"
                "<h1>luacrawl serve</h1><p id=summary>up %" PRIu64 " s &middot; running <b>%d</b> "
                "&middot; queued <b>%d</b> &middot; contexts open <b>%d</b> &middot; refs "
                "outstanding <b>%d</b> &middot; browser PSS <b>%ld MB</b> (RSS %ld MB) &middot; "
                "restarts %d</p>",
                up, count_state(s, SJ_RUNNING), count_state(s, SJ_QUEUED), cs.contexts_open,
                cs.refs_outstanding, s->sh->browser_pss_kb / 1024, s->sh->browser_rss_kb / 1024,
                s->sh->restarts);
  /* The memory chart: the last MEM_RING samples, one per 5 s. */
  long max = 1;
  for (int i = 0; i < s->mem_n; i++)
    if (s->mem_kb[i] > max) max = s->mem_kb[i];
  long top_mb = (max / 1024 / 100 + 1) * 100;
  lc_buf_printf(&b,
                "<h2>Browser memory (PSS), last %d min</h2><svg id=memchart width=620 height=220 "
                "viewBox=\"0 0 620 220\"><text x=4 y=14 font-size=11>%ld MB</text><text x=4 "
                "y=214 font-size=11>0</text><polyline fill=none stroke=#1565c0 stroke-width=2 "
                "points=\"",
                MEM_RING * MEM_EVERY_MS / 60000, top_mb);
  for (int i = 0; i < s->mem_n; i++) {
    int idx = (s->mem_head - s->mem_n + i + MEM_RING) % MEM_RING;
    double x = 40 + 575.0 * i / (MEM_RING - 1);
    double y = 210 - 200.0 * (double)s->mem_kb[idx] / 1024.0 / (double)top_mb;
    lc_buf_printf(&b, "%.1f,%.1f ", x, y);
  }
  lc_buf_puts(&b, "\"/></svg><h2>Jobs</h2><table><tr><th>id</th><th>state</th><th>pages</th>"
                  "<th>records</th><th>error</th></tr>");
  int shown = 0;
  for (sjob *j = s->jobs; j && shown < 50; j = j->next) {
    if (j->crawl) continue;
    shown++;
    lc_job_counts n = j->n;
    if (j->job && j->state == SJ_RUNNING) lc_job_get_counts(j->job, &n);
    lc_buf_printf(&b, "<tr><td>%u</td><td>%s</td><td>%" PRIu64 "</td><td>%" PRIu64 "</td><td>",
                  j->id, state_names[j->state], n.pages_ok + n.pages_failed, n.emitted);
    html_escape(&b, j->error);
    lc_buf_puts(&b, "</td></tr>");
  }
  lc_buf_puts(&b, "</table></body></html>\n");
  respond_buf(c, 200, "text/html; charset=utf-8", &b);
}

static void health(srv *s, conn *c) {
  uint64_t now = now_ms(s);
  int ok = s->health_ok_ms && now - s->health_ok_ms < HEALTH_FRESH_MS && s->sh->pool &&
           lc_bpool_ready(s->sh->pool, s->sh->gen) && !lc_engine_failure(s->e);
  if (ok) {
    set_response(c, 200, "application/json", "{\"status\":\"ok\"}\n", 16);
  } else {
    c->retry_after = 1;
    respond_error(c, 503, "no browser answered lately");
  }
}

/* /jobs/ID[/records]: the id, and what follows it. */
static sjob *job_of_path(srv *s, const char *path, const char **rest) {
  const char *p = path + 6; /* after "/jobs/" */
  char *end = NULL;
  unsigned long id = strtoul(p, &end, 10);
  if (end == p || id == 0 || id > UINT32_MAX) return NULL;
  *rest = end;
  return find_job(s, (uint32_t)id);
}

static int query_arg(struct lws *wsi, const char *name, char *buf, int len) {
  const char *v = lws_get_urlarg_by_name(wsi, name, buf, len);
  if (!v) return 0;
  memmove(buf, v, strlen(v) + 1);
  return 1;
}

/* Route a request whose headers (and body) are in. */
static void dispatch(srv *s, conn *c) {
  const char *p = c->path;
  char q[64];
  if (!strcmp(p, "/")) {
    if (c->method != M_GET) goto method;
    status_page(s, c);
  } else if (!strcmp(p, "/health")) {
    if (c->method != M_GET) goto method;
    health(s, c);
  } else if (!strcmp(p, "/metrics")) {
    if (c->method != M_GET) goto method;
    metrics(s, c);
  } else if (!strcmp(p, "/jobs") || !strcmp(p, "/jobs/")) {
    if (c->method == M_GET) get_jobs(s, c);
    else if (c->method == M_POST) post_jobs(s, c);
    else goto method;
  } else if (!strcmp(p, "/crawl")) {
    if (c->method != M_POST) goto method;
    int stream = query_arg(c->wsi, "stream=", q, sizeof q) && (!strcmp(q, "1") || !strcmp(q, "true"));
    post_crawl(s, c, stream);
  } else if (!strncmp(p, "/jobs/", 6)) {
    const char *rest = NULL;
    sjob *j = job_of_path(s, p, &rest);
    if (!j) {
      respond_error(c, 404, "no such job");
      return;
    }
    if (!*rest || !strcmp(rest, "/")) {
      if (c->method == M_GET) {
        lc_buf b;
        lc_buf_init(&b);
        job_json(&b, s, j);
        lc_buf_puts(&b, "\n");
        respond_buf(c, 200, "application/json", &b);
      } else if (c->method == M_DELETE) {
        if (j->state == SJ_QUEUED) {
          j->cancel_asked = 1;
          finish(s, j, SJ_CANCELLED, NULL);
        } else if (j->state == SJ_RUNNING && !j->cancel_asked) {
          j->cancel_asked = 1;
          lc_engine_cancel_job(s->e, j->job);
          lc_info("[%s] cancel requested", j->tag);
        }
        lc_buf b;
        lc_buf_init(&b);
        lc_buf_printf(&b, "{\"id\":%u,\"state\":\"%s\",\"cancel\":%s}\n", j->id,
                      state_names[j->state], j->cancel_asked ? "true" : "false");
        respond_buf(c, 202, "application/json", &b);
      } else {
        goto method;
      }
    } else if (!strcmp(rest, "/records")) {
      if (c->method != M_GET) goto method;
      uint64_t from = 0;
      if (query_arg(c->wsi, "from=", q, sizeof q)) {
        char *end = NULL;
        from = strtoull(q, &end, 10);
        if (!q[0] || *end || q[0] == '-') {
          respond_error(c, 400, "from must be a record offset (0, 1, ...)");
          return;
        }
      }
      respond_stream(s, c, j, from);
    } else {
      respond_error(c, 404, "not found");
    }
  } else {
    respond_error(c, 404, "not found");
  }
  return;
method:
  respond_error(c, 405, "method not allowed");
}

/* ---------------------------------------------------------------- the HTTP transaction */

static void conn_release(srv *s, conn *c) {
  if (!c->live) return;
  c->live = 0;
  if (s) {
    list_del(s, c);
    if (!c->finished) count_status(s, c->decided && c->headers_sent ? c->status : 499, c->t0_us);
    sjob *j = c->src;
    if (j && j->crawl && j->waiter == c) {
      j->waiter = NULL;
      if (j->state == SJ_RUNNING && !j->cancel_asked) { /* the client went away: stop it */
        j->cancel_asked = 1;
        lc_engine_cancel_job(s->e, j->job);
      } else if (j->state == SJ_QUEUED) {
        j->cancel_asked = 1;
        finish(s, j, SJ_CANCELLED, "the client went away");
      }
      crawl_maybe_free(s, j);
    }
  }
  c->src = NULL;
  free(c->body);
  free(c->resp);
  free(c->chunk);
  c->body = c->resp = c->chunk = NULL;
}

static int auth_ok(srv *s, struct lws *wsi) {
  if (!s->cfg.token[0]) return 1;
  char h[600];
  int n = lws_hdr_copy(wsi, h, sizeof h, WSI_TOKEN_HTTP_AUTHORIZATION);
  if (n <= 7 || strncmp(h, "Bearer ", 7) != 0) return 0;
  const char *t = h + 7, *want = s->cfg.token;
  size_t tl = strlen(t), wl = strlen(want);
  unsigned diff = (unsigned)(tl ^ wl);
  for (size_t i = 0; i < wl; i++) diff |= (unsigned char)want[i] ^ (unsigned char)(i < tl ? t[i] : 0);
  return diff == 0;
}

/* Fill the stream's chunk with whole lines from the records file. Returns the bytes ready. */
static size_t stream_fill(conn *c) {
  sjob *j = c->src;
  int fd = open(j->output, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  size_t want = CHUNK;
  for (;;) {
    if (c->chunk_cap < LWS_PRE + want) {
      char *p = realloc(c->chunk, LWS_PRE + want);
      if (!p) break;
      c->chunk = p;
      c->chunk_cap = LWS_PRE + want;
    }
    char *buf = c->chunk + LWS_PRE;
    ssize_t r = pread(fd, buf, want, c->foff);
    if (r <= 0) break;
    char *last = NULL;
    for (char *q = buf + r - 1; q >= buf; q--)
      if (*q == '\n') {
        last = q;
        break;
      }
    if (!last) { /* one record longer than the chunk, or one still being written */
      if ((size_t)r < want || want >= MAX_RECORD_LINE) break;
      want *= 4;
      continue;
    }
    size_t whole = (size_t)(last + 1 - buf), start = 0;
    while (c->skip > 0 && start < whole) {
      char *nl = memchr(buf + start, '\n', whole - start);
      start = (size_t)(nl + 1 - buf);
      c->skip--;
    }
    c->foff += (int64_t)whole;
    if (start < whole) {
      memmove(buf, buf + start, whole - start);
      c->chunk_len = whole - start;
      break;
    }
  }
  close(fd);
  return c->chunk_len;
}

static int write_headers(conn *c) {
  unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
  lws_filepos_t len = c->src && !c->resp ? LWS_ILLEGAL_HTTP_CONTENT_LEN : (lws_filepos_t)c->resp_len;
  if (lws_add_http_common_headers(c->wsi, (unsigned)c->status, c->ctype, len, &p, end)) return -1;
  if (c->retry_after) {
    char v[16];
    int n = snprintf(v, sizeof v, "%d", c->retry_after);
    if (lws_add_http_header_by_name(c->wsi, (const unsigned char *)"retry-after:",
                                    (const unsigned char *)v, n, &p, end))
      return -1;
  }
  if (c->auth_challenge &&
      lws_add_http_header_by_name(c->wsi, (const unsigned char *)"www-authenticate:",
                                  (const unsigned char *)"Bearer", 6, &p, end))
    return -1;
  if (lws_add_http_header_by_name(c->wsi, (const unsigned char *)"cache-control:",
                                  (const unsigned char *)"no-store", 8, &p, end))
    return -1;
  if (lws_finalize_write_http_header(c->wsi, start, &p, end)) return -1;
  c->headers_sent = 1;
  return 0;
}

/* One write per WRITEABLE. Returns -1 to close the connection. */
static int on_writeable(srv *s, conn *c) {
  if (!c->live || c->finished) return 0;
  /* A /crawl waiting for its job: answer once it ended. */
  if (!c->decided && c->src && c->src->crawl && !c->src->stream) {
    if (!terminal(c->src)) return 0;
    crawl_answer(s, c, c->src);
    return 0;
  }
  if (!c->decided) return 0;
  if (!c->headers_sent) {
    if (write_headers(c) != 0) return -1;
    lws_callback_on_writable(c->wsi);
    return 0;
  }
  if (c->resp) {
    size_t n = c->resp_len - c->resp_off;
    if (n > CHUNK) n = CHUNK;
    int last = c->resp_off + n == c->resp_len;
    unsigned char *p = (unsigned char *)c->resp + LWS_PRE + c->resp_off;
    if (lws_write(c->wsi, p, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < (int)n) return -1;
    c->resp_off += n;
    if (!last) {
      lws_callback_on_writable(c->wsi);
      return 0;
    }
    c->finished = 1;
    count_status(s, c->status, c->t0_us);
    list_del(s, c);
    if (c->close_after) return -1; /* answered before reading its body: do not read it */
    return lws_http_transaction_completed(c->wsi) ? -1 : 0;
  }
  /* A stream. */
  sjob *j = c->src;
  int ended = terminal(j) && !j->job; /* its file is complete */
  if (c->chunk_len == 0) stream_fill(c);
  if (c->chunk_len > 0) {
    size_t n = c->chunk_len;
    if (lws_write(c->wsi, (unsigned char *)c->chunk + LWS_PRE, n, LWS_WRITE_HTTP) < (int)n) return -1;
    c->chunk_len = 0;
    if (c->chunk_cap > LWS_PRE + 4 * CHUNK) { /* one huge record: give the buffer back */
      free(c->chunk);
      c->chunk = NULL;
      c->chunk_cap = 0;
    }
    c->idle = 0;
    lws_callback_on_writable(c->wsi);
    return 0;
  }
  if (ended) {
    c->finished = 1;
    count_status(s, c->status, c->t0_us);
    list_del(s, c);
    return -1; /* close-delimited body (no length): the end of the stream */
  }
  c->idle = 1; /* the tick asks again */
  list_add(s, c);
  return 0;
}

static int http_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len) {
  srv *s = g_srv;
  conn *c = user;
  switch (reason) {
    case LWS_CALLBACK_HTTP: {
      if (!s || !c) return -1;
      if (c->live) conn_release(s, c); /* a transaction before it on this connection */
      memset(c, 0, sizeof *c);
      c->live = 1;
      c->wsi = wsi;
      c->t0_us = mono_us();
      char *uri = NULL;
      int ulen = 0;
      int m = lws_http_get_uri_and_method(wsi, &uri, &ulen);
      c->method = m == LWSHUMETH_GET ? M_GET : m == LWSHUMETH_POST ? M_POST
                  : m == LWSHUMETH_DELETE ? M_DELETE : M_OTHER;
      snprintf(c->path, sizeof c->path, "%s", in ? (const char *)in : "/");
      if (strcmp(c->path, "/health") != 0 && !auth_ok(s, wsi)) {
        s->rej_auth++;
        c->auth_challenge = 1;
        c->close_after = c->method == M_POST;
        respond_error(c, 401, "a bearer token is required (Authorization: Bearer TOKEN)");
        return 0;
      }
      if (c->method == M_POST) {
        char cl[32] = "";
        int have = lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0;
        long long n = have ? atoll(cl) : 0;
        c->close_after = 1; /* until the body is in */
        if (!have || n <= 0) {
          respond_error(c, 411, "a request body with a Content-Length is required");
          return 0;
        }
        if (n > s->cfg.max_body_bytes) {
          s->rej_body++;
          char msg[128];
          snprintf(msg, sizeof msg, "the request body is over %" PRId64 " bytes",
                   s->cfg.max_body_bytes);
          respond_error(c, 413, msg);
          /* lws would read the body next; closing after the answer is simpler for both sides */
          return 0;
        }
        c->body = malloc((size_t)n + 1);
        if (!c->body) {
          respond_error(c, 500, "out of memory");
          return 0;
        }
        c->body_cap = (size_t)n;
        c->close_after = 0;
        return 0; /* the body follows */
      }
      dispatch(s, c);
      return 0;
    }
    case LWS_CALLBACK_HTTP_BODY:
      if (!s || !c || !c->live || c->decided) return 0;
      if (c->body_len + len > c->body_cap) {
        c->body_over = 1;
        return 0;
      }
      memcpy(c->body + c->body_len, in, len);
      c->body_len += len;
      return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
      if (!s || !c || !c->live || c->decided) return 0;
      if (c->body_over) {
        s->rej_body++;
        respond_error(c, 413, "the request body is too large");
        return 0;
      }
      c->body[c->body_len] = 0;
      lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
      dispatch(s, c);
      return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
      if (!s || !c) return 0;
      return on_writeable(s, c);
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
      if (c) conn_release(s, c);
      return 0;
    default:
      break;
  }
  return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols http_protocols[] = {
    {"luacrawl-http", http_cb, sizeof(conn), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---------------------------------------------------------------- the tick */

static void health_cb(void *ud, int err, char *result, size_t len) {
  (void)result;
  (void)len;
  srv *s = ud;
  s->health_id = 0;
  if (err == 0) s->health_ok_ms = now_ms(s);
}

static void tick_cb(uv_timer_t *t) {
  srv *s = t->data;
  pump(s);
  uint64_t now = now_ms(s);
  /* Streams and crawls that wait: ask lws whether they can go on. */
  for (conn *c = s->waiting; c; c = c->next) lws_callback_on_writable(c->wsi);
  /* Browser memory for the chart and the PSS admission rule. */
  if (now - s->mem_sample_ms >= 1000) {
    s->mem_sample_ms = now;
    if (s->sh->ops && s->sh->pool) s->sh->ops->sample_mem(s->sh->ud);
  }
  if (!s->mem_last_ms || now - s->mem_last_ms >= MEM_EVERY_MS) {
    s->mem_last_ms = now;
    s->mem_kb[s->mem_head] = s->sh->browser_pss_kb ? s->sh->browser_pss_kb : s->sh->browser_rss_kb;
    s->mem_head = (s->mem_head + 1) % MEM_RING;
    if (s->mem_n < MEM_RING) s->mem_n++;
  }
  /* Does the browser answer? */
  if (!s->health_id && s->sh->pool && !s->stopping && now - s->health_sent_ms >= HEALTH_EVERY_MS &&
      lc_bpool_ready(s->sh->pool, s->sh->gen)) {
    s->health_sent_ms = now;
    s->health_gen = s->sh->gen;
    s->health_id = lc_bpool_send(s->sh->pool, s->sh->gen, "Browser.getVersion", "{}", 3000,
                                 health_cb, s);
  }
  /* The stop: running work has grace_ms, then it is cancelled (and resumes next start). */
  if (s->stopping) {
    if (!s->grace_over && now - s->stop_ms >= (uint64_t)s->cfg.grace_ms) {
      s->grace_over = 1;
      for (sjob *j = s->jobs; j; j = j->next)
        if (j->state == SJ_RUNNING) {
          j->interrupted = 1;
          lc_engine_cancel_job(s->e, j->job);
          lc_info("[%s] stopped by the server's stop; it resumes at the next start", j->tag);
        }
    }
    int busy = count_state(s, SJ_RUNNING) > 0;
    for (conn *c = s->waiting; c && !busy; c = c->next)
      busy = c->src && c->src->crawl; /* a /crawl answer still going out */
    if (!busy || now - s->stop_ms >= (uint64_t)s->cfg.grace_ms + 4000) s->done = 1;
  }
}

static void on_signal(void *ud, int sig) {
  srv *s = ud;
  if (s->stopping) return;
  s->stopping = 1;
  s->stop_ms = now_ms(s);
  lc_info("%s: not accepting new work; running work has %" PRId64 " ms to finish",
          sig == SIGINT ? "interrupt" : "terminate", s->cfg.grace_ms);
}

static int serve_done(void *ud) { return ((srv *)ud)->done; }

/* ---------------------------------------------------------------- the data directory */

static int mkdir_p(const char *dir) {
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s", dir);
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  return mkdir(tmp, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

/* DIR/crawl, the Redis crawl a job runs on: 0 with the name in out ("" when there is no such
 * file: the job runs on its own state.sqlite), or -1 with one line in err naming the file when
 * it exists and cannot be read or holds no crawl name (lc_rfront_check_crawl_name). */
static int read_crawl_file(const char *path, char *out, size_t n, char *err, size_t errlen) {
  out[0] = 0;
  char *text;
  size_t len;
  int rc = read_all(path, 255, &text, &len);
  if (rc == -ENOENT) return 0;
  if (rc) {
    read_all_error(path, 255, rc, err, errlen);
    return -1;
  }
  char why[200];
  if (memchr(text, 0, len)) snprintf(why, sizeof why, "it holds a NUL byte");
  else if (lc_rfront_check_crawl_name(text, why, sizeof why) == 0 && len < n) {
    memcpy(out, text, len + 1);
    free(text);
    return 0;
  }
  free(text);
  snprintf(err, errlen, "%.300s holds no crawl name: %s", path, why);
  return -1;
}

/* Jobs of an earlier run: finished ones are listed again, unfinished ones queued (their state
 * file resumes them where the run stopped: nothing done is done again). A file of the job that
 * is there and cannot be read (a directory in its place, over its size, EACCES, EIO), or one
 * it needs that is absent, is logged with the path and the reason, and lists the job failed
 * for this run with that reason instead of running it on a guess (as queued again, without
 * its args, or on a state.sqlite instead of its Redis crawl). That failure is not saved: a
 * restart after the file is mended runs the job. What "absent" means, file by file:
 *   state:      written last when the job is made, so absent only when the server stopped
 *               before (the client had no answer) or that write failed (logged then): queued.
 *   args:       written before state by every version, "" for no args: absent is an error.
 *   script.lua: written first: absent is an error.
 *   crawl:      absent: the job runs on its own state.sqlite (no Redis crawl named).
 * A state that cannot be read lists the job failed whatever it was; the others matter only to
 * an unfinished job. */
static void load_jobs(srv *s) {
  char path[1200];
  snprintf(path, sizeof path, "%s/crawl", s->cfg.data_dir);
  DIR *cd = opendir(path);
  if (cd) { /* /crawl requests of a run that died: their clients are gone */
    struct dirent *de;
    char p[1600];
    while ((de = readdir(cd))) {
      if (de->d_name[0] == '.') continue;
      snprintf(p, sizeof p, "%s/%s", path, de->d_name);
      rm_dir(p);
    }
    closedir(cd);
  }
  snprintf(path, sizeof path, "%s/jobs", s->cfg.data_dir);
  struct dirent **names = NULL;
  int n = scandir(path, &names, NULL, alphasort);
  uint32_t *ids = calloc(n > 0 ? (size_t)n : 1, sizeof *ids);
  int k = 0;
  for (int i = 0; i < n; i++) {
    char *end = NULL;
    unsigned long id = strtoul(names[i]->d_name, &end, 10);
    if (ids && *end == 0 && id > 0 && id < UINT32_MAX) ids[k++] = (uint32_t)id;
    free(names[i]);
  }
  free(names);
  for (int a = 1; a < k; a++) /* numeric order */
    for (int b = a; b > 0 && ids[b - 1] > ids[b]; b--) {
      uint32_t t = ids[b];
      ids[b] = ids[b - 1];
      ids[b - 1] = t;
    }
  int resumed = 0;
  for (int i = 0; i < k; i++) {
    sjob *j = calloc(1, sizeof *j);
    if (!j) break;
    j->id = ids[i];
    if (j->id > s->next_id) s->next_id = j->id;
    sjob_paths(s, j);
    char sp[1300], why[600] = "";
    snprintf(sp, sizeof sp, "%s/state", j->dir);
    size_t len = 0;
    char *text = NULL;
    int rc = read_all(sp, MAX_STATE_FILE, &text, &len);
    char st[32] = "queued";
    j->state = SJ_QUEUED;
    if (rc != 0 && rc != -ENOENT) {
      read_all_error(sp, MAX_STATE_FILE, rc, why, sizeof why);
      j->state = SJ_FAILED;
    } else if (text) {
      int named = 0;
      for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        unsigned long long v;
        if (sscanf(line, "state %31s", st) == 1) named = 1;
        else if (sscanf(line, "created %llu", &v) == 1) j->created_wall_ms = (int64_t)v;
        else if (sscanf(line, "pages_ok %llu", &v) == 1) j->n.pages_ok = v;
        else if (sscanf(line, "pages_failed %llu", &v) == 1) j->n.pages_failed = v;
        else if (sscanf(line, "retries %llu", &v) == 1) j->n.retries = v;
        else if (sscanf(line, "records %llu", &v) == 1) j->n.emitted = v;
        else if (!strncmp(line, "error ", 6)) snprintf(j->error, sizeof j->error, "%s", line + 6);
      }
      free(text);
      j->state = -1;
      for (int x = 0; named && x < SJ_NSTATES; x++)
        if (!strcmp(st, state_names[x])) j->state = x;
      if (j->state < 0) {
        snprintf(why, sizeof why, "%.300s holds no job state ('%s')", sp, named ? st : "");
        j->state = SJ_FAILED;
      }
    }
    if (why[0]) {
      lc_error("[%s] %s", j->tag, why);
      snprintf(j->error, sizeof j->error, "%.440s; the job's state is unknown: not run", why);
    }
    if (j->state == SJ_RUNNING) j->state = SJ_QUEUED;
    /* args: NUL-separated name=value */
    snprintf(sp, sizeof sp, "%s/args", j->dir);
    char *av = NULL;
    rc = read_all(sp, MAX_BODY_TOP, &av, &len);
    if (rc != 0) {
      read_all_error(sp, MAX_BODY_TOP, rc, why, sizeof why);
      lc_error("[%s] %s", j->tag, why);
      if (j->state == SJ_QUEUED) { /* not saved: a restart after the file is mended runs it */
        j->state = SJ_FAILED;
        snprintf(j->error, sizeof j->error, "%.440s; the job's args are unknown: not run", why);
      }
    }
    args_acc a = {0};
    for (size_t off = 0; av && off < len;) {
      size_t l = strlen(av + off);
      args_push(&a, strdup(av + off));
      off += l + 1;
    }
    free(av);
    if (!a.v) a.v = calloc(1, sizeof *a.v);
    j->args = a.v;
    /* script.lua: loaded when the job starts; a failure then would be saved */
    if (j->state == SJ_QUEUED && probe_file(j->script, why, sizeof why) != 0) {
      lc_error("[%s] %s", j->tag, why);
      j->state = SJ_FAILED;
      snprintf(j->error, sizeof j->error, "%.440s; the job's script is unknown: not run", why);
    }
    snprintf(sp, sizeof sp, "%s/crawl", j->dir);
    if (read_crawl_file(sp, j->rcrawl, sizeof j->rcrawl, why, sizeof why) != 0) {
      lc_error("[%s] %s", j->tag, why);
      if (j->state == SJ_QUEUED) { /* not saved: a restart after the file is mended runs it */
        j->state = SJ_FAILED;
        snprintf(j->error, sizeof j->error, "%.440s; the job's Redis crawl is unknown: not run",
                 why);
      }
    }
    if (j->state == SJ_QUEUED) {
      j->error[0] = 0;
      j->queued_ms = now_ms(s);
      resumed++;
    }
    sjob_append(s, j);
  }
  free(ids);
  if (resumed) lc_info("%d unfinished job(s) of an earlier run queued again", resumed);
}

/* ---------------------------------------------------------------- main */

static int usage_bad(const char *a, const char *b) {
  fprintf(stderr, "luacrawl: %s%s (see luacrawl --help)\n", a, b);
  return LC_EXIT_BADINPUT;
}

int lc_serve_main(int argc, char **argv) {
  serve_cfg cfg;
  cfg_defaults(&cfg);
  const char *config = NULL, *listen = NULL, *token_file = NULL, *data_dir = NULL, *browser = NULL,
             *redis = NULL;
  int allow_private = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char **slot = !strcmp(a, "--listen")       ? &listen
                        : !strcmp(a, "--config")     ? &config
                        : !strcmp(a, "--token-file") ? &token_file
                        : !strcmp(a, "--data-dir")   ? &data_dir
                        : !strcmp(a, "--browser")    ? &browser
                        : !strcmp(a, "--redis")      ? &redis
                                                     : NULL;
    if (slot) {
      if (i + 1 >= argc) return usage_bad("option needs a value: ", a);
      *slot = argv[++i];
    } else if (!strcmp(a, "--allow-private")) {
      allow_private = 1;
    } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
      cfg.verbose = 1;
    } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
      cfg.quiet = 1;
    } else {
      return usage_bad("serve: unknown argument '", a[0] ? a : "");
    }
  }
  char err[1024];
  if (config && cfg_load(config, &cfg, err, sizeof err) != 0) {
    fprintf(stderr, "luacrawl: %s\n", err);
    return LC_EXIT_BADINPUT;
  }
  if (listen) snprintf(cfg.listen, sizeof cfg.listen, "%s", listen);
  if (token_file) snprintf(cfg.token_file, sizeof cfg.token_file, "%s", token_file);
  if (data_dir) snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", data_dir);
  if (browser) snprintf(cfg.browser, sizeof cfg.browser, "%s", browser);
  if (allow_private) cfg.allow_private = 1;
  if (redis) {
    if (strlen(redis) >= sizeof cfg.redis) return usage_bad("--redis: the URL is too long", "");
    snprintf(cfg.redis, sizeof cfg.redis, "%s", redis);
  }
  if (cfg.redis[0]) { /* the URL of the server; each job names its crawl */
    char url[400];
    lc_rfront_addr ra;
    if (strchr(cfg.redis, '?')) {
      snprintf(err, sizeof err,
               "redis: '%.300s' has a query; give redis://HOST:PORT/DB (each job names its crawl)",
               cfg.redis);
      return usage_bad(err, "");
    }
    snprintf(url, sizeof url, "%s?crawl=check", cfg.redis);
    if (lc_rfront_parse(url, &ra, err, sizeof err) != 0) {
      char e2[1100];
      snprintf(e2, sizeof e2, "redis: '%.300s' is not a Redis URL (redis://HOST:PORT/DB)",
               cfg.redis);
      return usage_bad(e2, "");
    }
  }
  if (cfg.max_browser_pss_mb > 0) cfg.policy.max_browser_pss_mb = cfg.max_browser_pss_mb;
  if (parse_listen(&cfg, err, sizeof err) != 0) return usage_bad(err, "");
  if (cfg.token_file[0] && read_token(&cfg, err, sizeof err) != 0) return usage_bad(err, "");
  int cls = lc_addr_class(cfg.host);
  if (cls != LC_ADDR_LOOPBACK && !cfg.token[0])
    return usage_bad("--listen ", "on an address other than loopback needs --token-file");
  if (mkdir_p(cfg.data_dir) != 0) {
    snprintf(err, sizeof err, "--data-dir %.400s: %s", cfg.data_dir, strerror(errno));
    return usage_bad(err, "");
  }
  char sub[1200];
  snprintf(sub, sizeof sub, "%s/jobs", cfg.data_dir);
  int mk = mkdir_p(sub);
  snprintf(sub, sizeof sub, "%s/crawl", cfg.data_dir);
  if (mk != 0 || mkdir_p(sub) != 0) {
    snprintf(err, sizeof err, "--data-dir %.400s: %s", cfg.data_dir, strerror(errno));
    return usage_bad(err, "");
  }
  if (cfg.verbose) lc_log_set_level(LC_LOG_DEBUG);
  if (cfg.quiet) lc_log_set_level(LC_LOG_WARN);

  srv *s = calloc(1, sizeof *s);
  if (!s) return LC_EXIT_FAILED;
  s->cfg = cfg;
  lc_engine_opts eo = {.browser = cfg.browser[0] ? cfg.browser : NULL,
                       .on_signal = on_signal,
                       .signal_ud = s};
  s->e = lc_engine_new(&eo, err, sizeof err);
  if (!s->e) {
    fprintf(stderr, "luacrawl: %s\n", err);
    free(s);
    return LC_EXIT_BADINPUT;
  }
  s->sh = lc_engine_shared(s->e);
  g_srv = s;
  s->started_ms = now_ms(s);
  load_jobs(s);
  int code = LC_EXIT_OK;
  if (lc_engine_start(s->e, &s->cfg.policy, NULL, err, sizeof err) != 0) {
    fprintf(stderr, "luacrawl: %s\n", err);
    code = LC_EXIT_FAILED;
    goto out;
  }
  struct lws_context_creation_info vi;
  memset(&vi, 0, sizeof vi);
  vi.port = cfg.port;
  vi.iface = cfg.host;
  vi.protocols = http_protocols;
  vi.vhost_name = "luacrawl-serve";
  vi.keepalive_timeout = 30;
  vi.timeout_secs = 30;
  vi.options = LWS_SERVER_OPTION_DISABLE_IPV6 * (strchr(cfg.host, ':') == NULL);
  s->vh = lws_create_vhost(lc_ws_lws(lc_engine_ws(s->e)), &vi);
  if (!s->vh) {
    fprintf(stderr, "luacrawl: cannot listen on %s (in use, or not an address of this host)\n",
            cfg.listen);
    code = LC_EXIT_FAILED;
    goto out;
  }
  s->port = lws_get_vhost_listen_port(s->vh);
  lc_info("serving on http://%s%s%s:%d/ (data in %s)", strchr(cfg.host, ':') ? "[" : "", cfg.host,
          strchr(cfg.host, ':') ? "]" : "", s->port, cfg.data_dir);
  uv_timer_init(s->sh->loop, &s->tick);
  s->tick.data = s;
  s->tick_on = 1;
  uv_timer_start(&s->tick, tick_cb, TICK_MS, TICK_MS);
  while (!s->done) {
    lc_engine_run_until(s->e, serve_done, s, 0);
    if (lc_engine_failure(s->e)) {
      fprintf(stderr, "luacrawl: %s\n", lc_engine_failure(s->e));
      code = LC_EXIT_FAILED;
      break;
    }
  }
out:
  /* Stop: cancel what still runs (it resumes next start), give every job back, close the
   * listener and its connections, then the engine's own shutdown. */
  for (sjob *j = s->jobs; j; j = j->next)
    if (j->state == SJ_RUNNING && !lc_job_ended(j->job)) {
      j->interrupted = 1;
      lc_engine_cancel_job(s->e, j->job);
    }
  for (int i = 0; i < 100 && count_state(s, SJ_RUNNING) > 0; i++) {
    lc_engine_run_until(s->e, NULL, NULL, 20);
    pump(s);
  }
  for (sjob *j = s->jobs; j; j = j->next) {
    if (j->job) { /* queued with a made job, or one that never ended */
      if (j->state == SJ_RUNNING) j->interrupted = 1;
      int st = j->state;
      finish(s, j, st == SJ_RUNNING ? SJ_QUEUED : st, NULL);
      if (j->crawl && !terminal(j)) j->state = SJ_CANCELLED;
    }
  }
  if (s->health_id && s->sh->pool) lc_bpool_cancel(s->sh->pool, s->health_gen, s->health_id);
  s->health_id = 0;
  if (s->tick_on) uv_close((uv_handle_t *)&s->tick, NULL);
  if (s->vh) {
    lws_vhost_destroy(s->vh);
    s->vh = NULL;
    lc_engine_run_until(s->e, NULL, NULL, 200);
  }
  lc_netguard_close(s->crawl_guard); /* no job is left to use it */
  s->crawl_guard = NULL;
  int refs = lc_engine_free(s->e);
  lc_info("stopped: refs_outstanding %d", refs);
  g_srv = NULL;
  while (s->jobs) {
    sjob *j = s->jobs;
    s->jobs = j->next;
    free_args(j->args);
    free(j);
  }
  free(s);
  if (refs != 0 && code == LC_EXIT_OK) code = LC_EXIT_FAILED;
  return code;
}
