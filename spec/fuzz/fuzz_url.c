/* fuzz_url.c: URL resolution and normalization (engine/url.h). The input is a reference, or
 * "base\nref" when it holds a newline (tab/CR/LF are stripped from hrefs, so a newline never
 * survives in either). Properties: no crash; a result is canonical (normalizing it again, with
 * or without the base, gives the same string), starts with http:// or https://, has no
 * fragment, and its parts agree with it: lc_url_normalize_host's host span is lc_url_host,
 * origin + path_query is the URL (without userinfo), and each part is itself stable. */
#include "fuzz.h"
#include "url.h"

static void check_canonical(const char *url) {
  FUZZ_CHECK(strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0);
  FUZZ_CHECK(strchr(url, '#') == NULL);
  FUZZ_CHECK(strlen(url) <= LC_URL_MAX);

  char *again = NULL;
  int rc = lc_url_normalize(NULL, url, &again, NULL);
  if (rc != 0) fprintf(stderr, "canonical '%s' refused: %d\n", url, rc);
  FUZZ_CHECK(rc == 0);
  if (strcmp(again, url) != 0) fprintf(stderr, "not idempotent:\n  %s\n  %s\n", url, again);
  FUZZ_CHECK(strcmp(again, url) == 0);
  free(again);

  size_t at = 0, len = 0;
  char *with_host = NULL;
  FUZZ_CHECK(lc_url_normalize_host(NULL, url, &with_host, &at, &len, NULL) == 0);
  FUZZ_CHECK(strcmp(with_host, url) == 0 && at + len <= strlen(url));

  static char host[LC_URL_MAX + 1], origin[LC_URL_MAX + 1], pq[LC_URL_MAX + 1];
  FUZZ_CHECK(lc_url_host(url, host, sizeof host) == 0);
  FUZZ_CHECK(strlen(host) == len && memcmp(host, url + at, len) == 0);
  FUZZ_CHECK(lc_url_origin(url, origin, sizeof origin) == 0);
  FUZZ_CHECK(lc_url_path_query(url, pq, sizeof pq) == 0);
  FUZZ_CHECK(pq[0] == '/');
  free(with_host);

  /* Without userinfo, the URL is its origin followed by its path and query. */
  const char *after_scheme = strstr(url, "://") + 3;
  const char *at_sign = strchr(after_scheme, '@');
  const char *slash = strchr(after_scheme, '/');
  if (!at_sign || (slash && slash < at_sign)) {
    size_t no = strlen(origin);
    FUZZ_CHECK(strncmp(url, origin, no) == 0 && strcmp(url + no, pq) == 0);
  }
  /* A buffer one byte short of the part is refused, never cut. */
  char small[8];
  if (strlen(host) >= sizeof small)
    FUZZ_CHECK(lc_url_host(url, small, sizeof small) == LC_URL_ENOSPC);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > LC_URL_MAX + 64) return 0; /* longer than LC_URL_MAX is refused before parsing */
  char *text = fuzz_strndup(data, size);
  char *nl = strchr(text, '\n');
  const char *base = NULL, *ref = text;
  if (nl) {
    *nl = 0;
    base = text;
    ref = nl + 1;
  }
  char *out = NULL;
  const char *err = NULL;
  int rc = lc_url_normalize(base, ref, &out, &err);
  if (rc == 0) {
    FUZZ_CHECK(out != NULL);
    check_canonical(out);
    free(out);
  } else {
    FUZZ_CHECK(rc < 0 && rc >= LC_URL_ENOSPC && out == NULL && err != NULL);
  }
  /* The base on its own, as the crawl normalizes its seeds. */
  if (base && lc_url_normalize(NULL, base, &out, NULL) == 0) {
    check_canonical(out);
    free(out);
  }
  free(text);
  return 0;
}
