/* main.c: the luacrawl command line. Owns only argument parsing and usage text; a run is
 * lc_engine_run's. Bad input gets one clear line on stderr and exit code 2. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "rfrontier.h"
#include "serve.h"
#include "store.h"
#include "ws.h"

static void usage(FILE *f) {
  fputs(
      "usage: luacrawl run SCRIPT [name=value ...] [options]\n"
      "       luacrawl serve [--listen 127.0.0.1:8080] [--config serve.lua]\n"
      "                      [--token-file F] [--data-dir DIR] [--allow-private]\n"
      "                      [--redis redis://HOST:PORT/DB]\n"
      "                      (an HTTP service: docs/SERVICE.md)\n"
      "       luacrawl status STATE_FILE|redis://... [--json]\n"
      "       luacrawl export STATE_FILE|redis://... [-o FILE]\n"
      "       luacrawl --help | --version\n"
      "\n"
      "Runs a crawl job written in Lua. name=value pairs reach the script as `args`.\n"
      "Records go to stdout as JSON Lines; logs, progress and the summary go to stderr.\n"
      "\n"
      "options:\n"
      "  -o, --output FILE   write records to FILE instead of stdout\n"
      "  --stats FILE        write run statistics (a JSON object) to FILE at the end\n"
      "  --state FILE        keep the crawl's state in FILE (SQLite): the same command\n"
      "                      resumes it after any stop, kill -9 included\n"
      "  --state-reuse       let --state take over a file made by another script or\n"
      "                      other arguments\n"
      "  --frontier URL      share the crawl with other engines through Redis:\n"
      "                      redis://HOST[:PORT][/DB]?crawl=NAME[&lease_ms=N]; engines naming\n"
      "                      the same crawl share its queue, seen set, politeness and records\n"
      "                      (docs/DISTRIBUTED.md); -o gets what this engine did\n"
      "  --browser PATH      Chromium binary (default: $LUACRAWL_CHROMIUM, then\n"
      "                      chromium-headless-shell, then /usr/lib/chromium/chromium)\n"
      "  --connect URL       attach to a browser someone else runs, at its DevTools URL\n"
      "                      ws://HOST:PORT/devtools/browser/ID (nothing is launched; the\n"
      "                      engine never kills it)\n"
      "  --sandbox           run the script in the sandbox: an allow list of globals,\n"
      "                      budgets, read-only CDP, http(s) to public addresses only\n"
      "  --allow-private     in the sandbox, let loopback and private addresses through\n"
      "  -q, --quiet         no progress, warnings and errors only\n"
      "  -v, --verbose       debug logging\n"
      "\n"
      "exit codes: 0 the job ran (even with failed pages), 1 it could not run to its end,\n"
      "            2 bad input, 130 interrupted (SIGINT), 143 terminated (SIGTERM)\n",
      f);
}

/* One line on stderr for bad input: "luacrawl: <what><rest> (see luacrawl --help)". */
static int bad(const char *before, const char *what, const char *after) {
  fprintf(stderr, "luacrawl: %s%s%s (see luacrawl --help)\n", before, what, after);
  return LC_EXIT_BADINPUT;
}

/* luacrawl status FILE [--json] and luacrawl export FILE [-o OUT]: read-only tools. */
static lc_store *open_state_read(const char *path, int *empty) {
  char err[512];
  int code = 0;
  lc_store_opts so = {.path = path, .read_only = 1};
  lc_store *st = lc_store_open(&so, err, sizeof err, &code);
  *empty = !st && code == LC_STORE_EEMPTY;
  if (!st && !*empty) fprintf(stderr, "luacrawl: %s: %s\n", path, err);
  return st;
}

static int is_redis(const char *s) { return strncmp(s, "redis://", 8) == 0; }

/* luacrawl status redis://...?crawl=NAME: the shared crawl's counts, on the server. */
static int status_redis(const char *url, int json) {
  lc_rfront_status s;
  char err[512];
  if (lc_rfront_get_status(url, &s, err, sizeof err) != 0) {
    fprintf(stderr, "luacrawl: %s\n", err);
    return LC_EXIT_BADINPUT;
  }
  int64_t queued = s.queued + s.delayed;
  const char *where = s.accepted == 0                    ? "new"
                      : queued == 0 && s.leased == 0 ? "done"
                                                         : "unfinished";
  if (json) {
    printf("{\"state\":\"%s\",\"queued\":%lld,\"leased\":%lld,\"done\":%lld,\"failed\":%lld,"
           "\"records\":%lld,\"accepted\":%lld,\"started\":%lld,\"last_activity\":%lld,"
           "\"reclaimed\":%lld,\"refused\":%lld}\n",
           where, (long long)queued, (long long)s.leased, (long long)s.done, (long long)s.failed,
           (long long)s.records, (long long)s.accepted, (long long)s.started_ms,
           (long long)s.last_activity_ms, (long long)s.reclaimed, (long long)s.refused);
  } else {
    printf("%s: %s: %lld done, %lld failed, %lld queued, %lld leased now; %lld records; "
           "%lld leases expired and taken over, %lld late acknowledgements refused\n",
           url, where, (long long)s.done, (long long)s.failed, (long long)queued,
           (long long)s.leased, (long long)s.records, (long long)s.reclaimed,
           (long long)s.refused);
  }
  return 0;
}

static int export_redis_one(void *ud, const char *line, size_t len) {
  FILE *f = ud;
  return fwrite(line, 1, len, f) != len || fputc('\n', f) == EOF;
}

static int cmd_status(int argc, char **argv) {
  const char *path = NULL;
  int json = 0;
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--json"))
      json = 1;
    else if (argv[i][0] == '-')
      return bad("unknown option '", argv[i], "'");
    else if (!path)
      path = argv[i];
    else
      return bad("status takes one STATE_FILE, not '", argv[i], "'");
  }
  if (!path) return bad("status needs a STATE_FILE", "", "");
  if (is_redis(path)) return status_redis(path, json);
  int empty = 0;
  lc_store *st = open_state_read(path, &empty);
  if (!st && !empty) return LC_EXIT_BADINPUT;
  lc_store_status s;
  memset(&s, 0, sizeof s);
  int rc = st ? lc_store_get_status(st, &s) : 0;
  if (st) lc_store_close(st);
  if (rc != 0) {
    fprintf(stderr, "luacrawl: %s: cannot read the crawl's state\n", path);
    return LC_EXIT_FAILED;
  }
  /* An empty file: its first run was killed before it committed anything. */
  const char *where = empty ? "new" : s.queued == 0 && s.leased == 0 ? "done" : "unfinished";
  for (char *c = s.job_hash; *c; c++) /* ours are hex; a foreign file's may be anything */
    if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f'))) *c = '?';
  if (json) {
    printf("{\"state\":\"%s\",\"queued\":%lld,\"leased\":%lld,\"done\":%lld,\"failed\":%lld,"
           "\"records\":%lld,\"started\":%lld,\"last_activity\":%lld,\"job\":\"%s\"}\n",
           where, (long long)s.queued, (long long)s.leased, (long long)s.done, (long long)s.failed,
           (long long)s.records, (long long)s.started_ms, (long long)s.last_activity_ms,
           s.job_hash);
  } else {
    printf("%s: %s: %lld done, %lld failed, %lld queued, %lld in progress when it stopped; "
           "%lld records\n",
           path, where, (long long)s.done, (long long)s.failed, (long long)s.queued,
           (long long)s.leased, (long long)s.records);
  }
  return 0;
}

static int export_one(void *ud, uint64_t seq, const char *line, size_t len) {
  (void)seq;
  FILE *f = ud;
  return fwrite(line, 1, len, f) != len || fputc('\n', f) == EOF;
}

static int cmd_export(int argc, char **argv) {
  const char *path = NULL, *out = NULL;
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) {
      if (i + 1 >= argc) return bad("option '", argv[i], "' needs a value");
      out = argv[++i];
    } else if (argv[i][0] == '-') {
      return bad("unknown option '", argv[i], "'");
    } else if (!path) {
      path = argv[i];
    } else {
      return bad("export takes one STATE_FILE, not '", argv[i], "'");
    }
  }
  if (!path) return bad("export needs a STATE_FILE", "", "");
  if (is_redis(path)) {
    lc_rfront_addr a;
    char err[512];
    if (lc_rfront_parse(path, &a, err, sizeof err) != 0) return bad(err, "", "");
    FILE *f = out && strcmp(out, "-") != 0 ? fopen(out, "w") : stdout;
    if (!f) {
      fprintf(stderr, "luacrawl: cannot open %s for writing\n", out);
      return LC_EXIT_BADINPUT;
    }
    int rc = lc_rfront_each_record(path, export_redis_one, f, err, sizeof err);
    int werr = ferror(f) || fflush(f) != 0;
    if (f != stdout) werr |= fclose(f) != 0;
    if (rc < 0) {
      fprintf(stderr, "luacrawl: %s\n", err);
      return LC_EXIT_BADINPUT;
    }
    if (werr) {
      fprintf(stderr, "luacrawl: export of %s failed (cannot write)\n", path);
      return LC_EXIT_FAILED;
    }
    return 0;
  }
  int empty = 0;
  lc_store *st = open_state_read(path, &empty);
  if (empty) return 0; /* no record committed yet */
  if (!st) return LC_EXIT_BADINPUT;
  FILE *f = out && strcmp(out, "-") != 0 ? fopen(out, "w") : stdout;
  if (!f) {
    fprintf(stderr, "luacrawl: cannot open %s for writing\n", out);
    lc_store_close(st);
    return LC_EXIT_BADINPUT;
  }
  int rc = lc_store_each_record(st, 0, export_one, f);
  int werr = ferror(f) || fflush(f) != 0;
  if (f != stdout) werr |= fclose(f) != 0;
  lc_store_close(st);
  if (rc < 0 || werr) {
    fprintf(stderr, "luacrawl: export of %s failed%s\n", path, werr ? " (cannot write)" : "");
    return LC_EXIT_FAILED;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return LC_EXIT_BADINPUT;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
      strcmp(argv[1], "help") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
    printf("luacrawl %s\n", LC_VERSION);
    return 0;
  }
  if (strcmp(argv[1], "status") == 0) return cmd_status(argc, argv);
  if (strcmp(argv[1], "export") == 0) return cmd_export(argc, argv);
  if (strcmp(argv[1], "serve") == 0) return lc_serve_main(argc - 1, argv + 1);
  if (strcmp(argv[1], "run") != 0) {
    return bad(argv[1][0] == '-' ? "unknown option '" : "unknown command '", argv[1], "'");
  }
  lc_run_opts o;
  memset(&o, 0, sizeof o);
  const char **args = calloc((size_t)argc, sizeof *args);
  if (!args) return LC_EXIT_FAILED;
  int nargs = 0;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    const char **slot = NULL;
    if (!strcmp(a, "-o") || !strcmp(a, "--output"))
      slot = &o.output;
    else if (!strcmp(a, "--stats"))
      slot = &o.stats;
    else if (!strcmp(a, "--browser"))
      slot = &o.browser;
    else if (!strcmp(a, "--connect"))
      slot = &o.connect;
    else if (!strcmp(a, "--state"))
      slot = &o.state;
    else if (!strcmp(a, "--frontier"))
      slot = &o.frontier;
    if (slot) {
      if (i + 1 >= argc) {
        free(args);
        return bad("option '", a, "' needs a value");
      }
      *slot = argv[++i];
      continue;
    }
    if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
      o.quiet = 1;
    } else if (!strcmp(a, "--state-reuse")) {
      o.state_reuse = 1;
    } else if (!strcmp(a, "--sandbox")) {
      o.sandbox = 1;
    } else if (!strcmp(a, "--allow-private")) {
      o.allow_private = 1;
    } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
      o.verbose = 1;
    } else if (a[0] == '-' && a[1] != 0) {
      free(args);
      return bad("unknown option '", a, "'");
    } else if (!o.script) {
      o.script = a;
    } else if (strchr(a, '=') && a[0] != '=') {
      args[nargs++] = a;
    } else {
      free(args);
      return bad("'", a, "' is not a name=value argument");
    }
  }
  if (!o.script) {
    free(args);
    return bad("run needs a SCRIPT", "", "");
  }
  if (o.state_reuse && !o.state) {
    free(args);
    return bad("--state-reuse needs --state FILE", "", "");
  }
  if (o.frontier && o.state) {
    free(args);
    return bad("--frontier and --state exclude each other (the shared frontier is the state)", "", "");
  }
  if (o.frontier) {
    lc_rfront_addr a;
    char err[512];
    if (lc_rfront_parse(o.frontier, &a, err, sizeof err) != 0) {
      free(args);
      char what[600];
      snprintf(what, sizeof what, "--frontier: %s", err);
      return bad(what, "", "");
    }
  }
  const char *why = NULL;
  if (o.connect && lc_ws_url_check(o.connect, &why) != 0) {
    char what[600];
    snprintf(what, sizeof what, "--connect '%.300s': %s", o.connect, why);
    free(args);
    return bad(what, "", "");
  }
  o.args = args;
  int code = lc_engine_run(&o);
  free(args);
  return code;
}
