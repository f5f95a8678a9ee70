/* fuzz_robots.c: robots.txt parsing and matching (engine/robots.h), with a time limit.
 *
 * Input: up to 8 paths, one per line, then a NUL byte, then the robots.txt body; without a NUL
 * the whole input is the body and a fixed set of paths is checked. Properties: no crash; the
 * answers are 0 or 1; "/robots.txt" is always allowed and "" is "/"; an empty body allows
 * everything; the crawl delay is -1 or in [0, 1e9]; lc_robots_allowed_url on http://example.com
 * plus a path of plain characters answers as lc_robots_allowed on the path; and one parse plus all
 * matches of an input of at most LC_ROBOTS_MAX_BYTES takes at most FUZZ_ROBOTS_MS (100 ms) of CPU
 * time, the fastest of three runs: slower is a finding (issue 9, item 6: a hostile robots.txt must
 * not stall the loop). */
#include <time.h>

#include "fuzz.h"
#include "robots.h"

#ifndef FUZZ_ROBOTS_MS
#define FUZZ_ROBOTS_MS 100.0
#endif

/* CPU time of this thread: other processes on a shared machine do not count. */
static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* A path of plain characters, which URL normalization leaves as it is. */
static int plain_path(const char *p) {
  if (*p != '/') return 0;
  for (; *p; p++)
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-", *p)) return 0;
  return 1;
}

static int check_path(const lc_robots *r, const char *path) {
  int a = lc_robots_allowed(r, path);
  FUZZ_CHECK(a == 0 || a == 1);
  if (plain_path(path)) { /* the URL form answers the same, whatever the path's length */
    size_t n = strlen(path) + 32;
    char *url = malloc(n);
    if (!url) abort();
    snprintf(url, n, "http://example.com%s", path);
    FUZZ_CHECK(lc_robots_allowed_url(r, url) == a);
    free(url);
  }
  return a;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const fixed[] = {"/",    "/a",      "/private/x",     "/search?q=1",  "/a-*",
                                      "/$",   "/%7Efoo", "/fish.php?id=1", "/x/y/z/w/v/u", "/%2F",
                                      "/a%2a"};
  const uint8_t *nul = memchr(data, 0, size);
  const char *body = (const char *)data;
  size_t blen = size;
  char *paths[8];
  size_t npaths = 0;
  char *head = NULL;
  if (nul) {
    head = fuzz_strndup(data, (size_t)(nul - data));
    body = (const char *)nul + 1;
    blen = size - (size_t)(nul - data) - 1;
    for (char *save = NULL, *line = strtok_r(head, "\n", &save); line && npaths < 8;
         line = strtok_r(NULL, "\n", &save))
      paths[npaths++] = line;
  }
  char *text = malloc(blen ? blen : 1); /* exact size: the parser must stay inside it */
  if (!text) abort();
  memcpy(text, body, blen);

  /* One parse and every check; timed, and run again (up to 3 times) when over the limit but
   * under 10 times it, so a scheduling hiccup is not taken for a slow input: the fastest run
   * counts. */
  double took = 0;
  int answers = 0;
  for (int run = 0; run < 3; run++) {
    double t0 = now_ms();
    lc_robots *r = lc_robots_parse(text, blen, "luacrawl/0.1");
    FUZZ_CHECK(r != NULL);
    answers = 0;
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) answers += check_path(r, fixed[i]);
    for (size_t i = 0; i < npaths; i++) answers += check_path(r, paths[i]);
    FUZZ_CHECK(check_path(r, "/robots.txt") == 1);
    FUZZ_CHECK(check_path(r, "") == check_path(r, "/"));
    double d = lc_robots_crawl_delay(r);
    FUZZ_CHECK(d == -1 || (d >= 0 && d <= 1e9));
    lc_robots_free(r);
    double t = now_ms() - t0;
    if (run == 0 || t < took) took = t;
    if (took <= FUZZ_ROBOTS_MS || took > 10 * FUZZ_ROBOTS_MS) break; /* a hiccup is not 10x */
  }
  if (size <= LC_ROBOTS_MAX_BYTES && took > FUZZ_ROBOTS_MS) {
    fprintf(stderr, "robots: one parse and %zu checks of %zu bytes took %.1f ms (limit %.0f)\n",
            sizeof fixed / sizeof *fixed + npaths + 4, size, took, FUZZ_ROBOTS_MS);
    abort();
  }
  if (blen == 0) FUZZ_CHECK(answers == (int)(sizeof fixed / sizeof *fixed + npaths));
  free(text);
  free(head);
  return 0;
}
