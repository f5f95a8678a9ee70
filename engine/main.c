/* main.c: the luacrawl command line. Owns only argument parsing and usage text; a run is
 * lc_engine_run's. Bad input gets one clear line on stderr and exit code 2. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "ws.h"

static void usage(FILE *f) {
  fputs(
      "usage: luacrawl run SCRIPT [name=value ...] [options]\n"
      "       luacrawl --help | --version\n"
      "\n"
      "Runs a crawl job written in Lua. name=value pairs reach the script as `args`.\n"
      "Records go to stdout as JSON Lines; logs, progress and the summary go to stderr.\n"
      "\n"
      "options:\n"
      "  -o, --output FILE   write records to FILE instead of stdout\n"
      "  --stats FILE        write run statistics (a JSON object) to FILE at the end\n"
      "  --browser PATH      Chromium binary (default: $LUACRAWL_CHROMIUM, then\n"
      "                      chromium-headless-shell, then /usr/lib/chromium/chromium)\n"
      "  --connect URL       attach to a browser someone else runs, at its DevTools URL\n"
      "                      ws://HOST:PORT/devtools/browser/ID (nothing is launched; the\n"
      "                      engine never kills it)\n"
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
