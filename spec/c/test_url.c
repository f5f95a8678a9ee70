/* test_url.c: unit tests for engine/url.c (resolution, normalization, refusals, parts). */
#include <stdlib.h>

#include "test.h"
#include "url.h"

/* Normalize and compare; NULL `want` means the URL must be refused. */
static int norm_is(const char *base, const char *ref, const char *want) {
  char *out = (char *)"sentinel";
  const char *err = NULL;
  int rc = lc_url_normalize(base, ref, &out, &err);
  int ok;
  if (want) {
    ok = rc == 0 && out && strcmp(out, want) == 0 && err == NULL;
    if (!ok)
      fprintf(stderr, "    normalize(%s, %s) = %d \"%s\" (%s), want \"%s\"\n", base ? base : "NULL",
              ref, rc, rc == 0 ? out : "", err ? err : "", want);
  } else {
    ok = rc < 0 && out == NULL && err != NULL && err[0] != '\0';
    if (!ok)
      fprintf(stderr, "    normalize(%s, %s) = %d \"%s\", want a refusal\n", base ? base : "NULL",
              ref, rc, rc == 0 ? out : "");
  }
  if (rc == 0) free(out);
  return ok;
}

TEST(case_and_default_ports) {
  CHECK(norm_is(NULL, "HTTP://Example.COM/Path", "http://example.com/Path"));
  CHECK(norm_is(NULL, "http://example.com:80/a", "http://example.com/a"));
  CHECK(norm_is(NULL, "https://example.com:443/a", "https://example.com/a"));
  CHECK(norm_is(NULL, "https://example.com:80/a", "https://example.com:80/a"));
  CHECK(norm_is(NULL, "http://example.com:443/a", "http://example.com:443/a"));
  CHECK(norm_is(NULL, "http://example.com:0080/a", "http://example.com/a"));
  CHECK(norm_is(NULL, "http://example.com:08080/a", "http://example.com:8080/a"));
  CHECK(norm_is(NULL, "http://example.com:/a", "http://example.com/a"));
  CHECK(norm_is(NULL, "http://example.com:65536/", NULL));
  CHECK(norm_is(NULL, "http://example.com:99999999999999999999/", NULL));
}

TEST(fragment_and_empty_path) {
  CHECK(norm_is(NULL, "http://example.com", "http://example.com/"));
  CHECK(norm_is(NULL, "http://example.com#top", "http://example.com/"));
  CHECK(norm_is(NULL, "http://example.com/a#x#y", "http://example.com/a"));
  CHECK(norm_is(NULL, "http://example.com?q=1", "http://example.com/?q=1"));
  CHECK(norm_is(NULL, "http://example.com/a?b=1#frag", "http://example.com/a?b=1"));
  CHECK(norm_is("http://example.com/a/b?x=1#old", "#new", "http://example.com/a/b?x=1"));
  CHECK(norm_is("http://example.com/a/b?x=1", "", "http://example.com/a/b?x=1"));
}

TEST(query_kept_as_is) {
  CHECK(norm_is(NULL, "http://e.com/p?b=2&a=1&A=%7e%2f", "http://e.com/p?b=2&a=1&A=%7e%2f"));
  CHECK(norm_is(NULL, "http://e.com/p?", "http://e.com/p")); /* an empty query is no query */
  CHECK(norm_is(NULL, "http://e.com/p?x=/../y", "http://e.com/p?x=/../y"));
  /* raw bytes a URI may not hold are escaped, as a browser does */
  CHECK(norm_is(NULL, "http://e.com/p?q=a b", "http://e.com/p?q=a%20b"));
  CHECK(norm_is(NULL, "http://e.com/p?a[]=1&a[]=2", "http://e.com/p?a%5B%5D=1&a%5B%5D=2"));
  CHECK(norm_is(NULL, "http://e.com/100%?x=50%", "http://e.com/100%25?x=50%25"));
}

TEST(dot_segments_and_relative) {
  const char *base = "http://a.com/b/c/d;p?q";
  CHECK(norm_is(NULL, "http://a.com/x/./y/../z", "http://a.com/x/z"));
  CHECK(norm_is(NULL, "http://a.com/../../x", "http://a.com/x"));
  CHECK(norm_is(NULL, "http://a.com/b/%2e%2E/c", "http://a.com/c"));
  CHECK(norm_is(base, "g", "http://a.com/b/c/g"));
  CHECK(norm_is(base, "./g/", "http://a.com/b/c/g/"));
  CHECK(norm_is(base, "../g", "http://a.com/b/g"));
  CHECK(norm_is(base, "../../../../g", "http://a.com/g"));
  CHECK(norm_is(base, "/g?y#s", "http://a.com/g?y"));
  CHECK(norm_is(base, "?y", "http://a.com/b/c/d;p?y"));
  CHECK(norm_is(base, "..", "http://a.com/b/"));
  CHECK(norm_is(base, "http:g", "http://a.com/b/c/g"));
  CHECK(norm_is(base, "https://Other.org:443", "https://other.org/"));
  /* the base is not needed, so not checked, for an absolute reference */
  CHECK(norm_is("not a url at all", "http://a.com/x", "http://a.com/x"));
  CHECK(norm_is("not a url at all", "x", NULL));
  CHECK(norm_is(NULL, "/relative/without/base", NULL));
  CHECK(norm_is("/relative/base", "x", NULL));
}

TEST(scheme_relative) {
  CHECK(norm_is("https://a.com/x", "//Cdn.B.com/lib.js", "https://cdn.b.com/lib.js"));
  CHECK(norm_is("http://a.com/x", "//b.com", "http://b.com/"));
  CHECK(norm_is("https://a.com/x", "//b.com:443/", "https://b.com/"));
}

TEST(ipv6_and_ipv4) {
  CHECK(norm_is(NULL, "http://[::1]:8080/x", "http://[::1]:8080/x"));
  CHECK(norm_is(NULL, "http://[::1]:80/x", "http://[::1]/x"));
  CHECK(norm_is(NULL, "http://[2001:DB8:0:0:0:0:0:A]/", "http://[2001:db8::a]/"));
  CHECK(norm_is(NULL, "http://127.0.0.1:3000", "http://127.0.0.1:3000/"));
  CHECK(norm_is(NULL, "http://[::1/", NULL));
  CHECK(norm_is(NULL, "http://[v1.x]/", NULL));
}

TEST(path_escapes) {
  CHECK(norm_is(NULL, "http://e.com/%7euser/%41%2f%2a", "http://e.com/~user/A%2F%2A"));
  CHECK(norm_is(NULL, "http://e.com/a b/c\"d", "http://e.com/a%20b/c%22d"));
  CHECK(norm_is(NULL, "http://e.com/caf\xc3\xa9", "http://e.com/caf%C3%A9"));
  CHECK(norm_is(NULL, "http://e.com/a[1]", "http://e.com/a%5B1%5D"));
  CHECK(norm_is(NULL, "http://e.com/a|b{c}", "http://e.com/a%7Cb%7Bc%7D"));
  CHECK(norm_is(NULL, "http://user:Pw@E.com/", "http://user:Pw@e.com/"));
}

TEST(whitespace_like_browsers) {
  CHECK(norm_is(NULL, "  http://e.com/a  ", "http://e.com/a"));
  CHECK(norm_is(NULL, "\t\n http://e.com/a\r\n", "http://e.com/a"));
  CHECK(norm_is(NULL, "http://e.com/a\nb\tc\rd", "http://e.com/abcd"));
  CHECK(norm_is(NULL, "\x01\x1fhttp://e.com/\x7f", "http://e.com/%7F"));
  CHECK(norm_is("http://e.com/dir/", "  page.html\n", "http://e.com/dir/page.html"));
  CHECK(norm_is("http://e.com/dir/", "   ", "http://e.com/dir/"));
}

/* Each refusal names its reason in a static message. */
static void check_refused(const char *ref, int want_rc, const char *want_err) {
  char *out = NULL;
  const char *err = NULL;
  int rc = lc_url_normalize("http://base.com/", ref, &out, &err);
  CHECK_INT(rc, want_rc);
  CHECK(out == NULL);
  if (want_err) CHECK_STR(err, want_err);
  CHECK(err != NULL);
  free(out);
}

TEST(refusals) {
  check_refused("file:///etc/passwd", LC_URL_ESCHEME, "unsupported scheme 'file'");
  check_refused("javascript:alert(1)", LC_URL_ESCHEME, "unsupported scheme 'javascript'");
  check_refused("  JavaScript:void(0)", LC_URL_ESCHEME, "unsupported scheme 'javascript'");
  check_refused("javascript: alert('a b')", LC_URL_ESCHEME, "unsupported scheme 'javascript'");
  check_refused("data:text/html,<b>hi</b>", LC_URL_ESCHEME, "unsupported scheme 'data'");
  check_refused("data:,", LC_URL_ESCHEME, "unsupported scheme 'data'");
  check_refused("chrome://settings", LC_URL_ESCHEME, "unsupported scheme 'chrome'");
  check_refused("mailto:someone@example.com", LC_URL_ESCHEME, "unsupported scheme 'mailto'");
  check_refused("about:blank", LC_URL_ESCHEME, "unsupported scheme 'about'");
  check_refused("ftp://ftp.example.com/x", LC_URL_ESCHEME, "unsupported scheme 'ftp'");
  check_refused("gopher://x/", LC_URL_ESCHEME, NULL);
  check_refused("http://", LC_URL_EHOST, "URL has no host");
  check_refused("http:///path", LC_URL_EHOST, "URL has no host");
  check_refused("https:foo", LC_URL_EHOST, "URL has no host");
  check_refused("http://exa mple.com/", LC_URL_EHOST, NULL);
  check_refused("http://b\xc3\xbc\x63her.de/", LC_URL_EHOST, NULL); /* IDN */
  check_refused("::::", LC_URL_EPARSE, NULL);
  check_refused("ht tp://x/", LC_URL_EPARSE, NULL);
  check_refused("http://a.com:port/", LC_URL_EPARSE, NULL);
  check_refused("http://[::1]]/", LC_URL_EPARSE, NULL);
  CHECK(norm_is(NULL, "", NULL));
  CHECK(norm_is(NULL, "\x80\xff", NULL));
}

TEST(too_long_and_bad_args) {
  size_t n = LC_URL_MAX + 10;
  char *big = malloc(n + 1);
  memcpy(big, "http://e.com/", 13);
  memset(big + 13, 'a', n - 13);
  big[n] = '\0';
  char *out = NULL;
  const char *err = NULL;
  CHECK_INT(lc_url_normalize(NULL, big, &out, &err), LC_URL_ETOOLONG);
  CHECK(out == NULL);
  CHECK_STR(err, "URL too long");
  /* short enough to read, too long once escaped */
  memset(big + 13, ' ', LC_URL_MAX - 100 - 13);
  big[LC_URL_MAX - 100] = 'x';
  big[LC_URL_MAX - 99] = '\0';
  CHECK_INT(lc_url_normalize(NULL, big, &out, &err), LC_URL_ETOOLONG);
  free(big);
  CHECK_INT(lc_url_normalize(NULL, NULL, &out, &err), LC_URL_EINVAL);
  CHECK_INT(lc_url_normalize(NULL, "http://a/", NULL, NULL), LC_URL_EINVAL);
  CHECK_INT(lc_url_normalize(NULL, "file:///x", &out, NULL), LC_URL_ESCHEME); /* err optional */
}

TEST(idempotent) {
  const char *urls[] = {"HTTP://A.com:80/./x/../y?q=a b#f", "http://[::1]:8080/%7e?a[]=1",
                        "https://e.com/100%/caf\xc3\xa9"};
  for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
    char *once = NULL, *twice = NULL;
    CHECK_INT(lc_url_normalize(NULL, urls[i], &once, NULL), 0);
    CHECK_INT(lc_url_normalize(NULL, once, &twice, NULL), 0);
    CHECK_STR(twice, once);
    free(once);
    free(twice);
  }
}

TEST(parts) {
  char buf[64];
  CHECK_INT(lc_url_origin("HTTPS://Example.com:443/a?b#c", buf, sizeof buf), 0);
  CHECK_STR(buf, "https://example.com");
  CHECK_INT(lc_url_origin("http://user:pw@example.com:8080/a", buf, sizeof buf), 0);
  CHECK_STR(buf, "http://example.com:8080");
  CHECK_INT(lc_url_host("http://Example.com:8080/a", buf, sizeof buf), 0);
  CHECK_STR(buf, "example.com:8080");
  CHECK_INT(lc_url_host("http://example.com:80/a", buf, sizeof buf), 0);
  CHECK_STR(buf, "example.com");
  CHECK_INT(lc_url_host("http://[::1]:8080/", buf, sizeof buf), 0);
  CHECK_STR(buf, "[::1]:8080");
  CHECK_INT(lc_url_path_query("http://e.com/a/b?x=1&y#z", buf, sizeof buf), 0);
  CHECK_STR(buf, "/a/b?x=1&y");
  CHECK_INT(lc_url_path_query("http://e.com", buf, sizeof buf), 0);
  CHECK_STR(buf, "/");
  CHECK_INT(lc_url_path_query("http://e.com?q", buf, sizeof buf), 0);
  CHECK_STR(buf, "/?q");
  /* buffer exactly big enough, then one short */
  CHECK_INT(lc_url_host("http://abc.de/", buf, 7), 0);
  CHECK_STR(buf, "abc.de");
  CHECK_INT(lc_url_host("http://abc.de/", buf, 6), LC_URL_ENOSPC);
  CHECK_STR(buf, "");
  CHECK_INT(lc_url_host("file:///etc/passwd", buf, sizeof buf), LC_URL_ESCHEME);
  CHECK_INT(lc_url_host("/relative", buf, sizeof buf), LC_URL_EPARSE);
  CHECK_INT(lc_url_host("http://e.com/", buf, 0), LC_URL_EINVAL);
  CHECK_INT(lc_url_host(NULL, buf, sizeof buf), LC_URL_EINVAL);
}

TEST(normalize_with_host_span) {
  char *out = NULL;
  size_t at = 99, len = 99;
  CHECK_INT(lc_url_normalize_host(NULL, "HTTP://u:p@Example.com:8080/a?b", &out, &at, &len, NULL),
            0);
  CHECK_STR(out, "http://u:p@example.com:8080/a?b");
  CHECK(out && at == strlen("http://u:p@") && len == strlen("example.com:8080"));
  free(out);
  CHECK_INT(lc_url_normalize_host("https://[::1]:443/x", "y", &out, &at, &len, NULL), 0);
  CHECK_STR(out, "https://[::1]/y");
  CHECK(out && at == 8 && len == 5);
  free(out);
  CHECK_INT(lc_url_normalize_host(NULL, "mailto:x@y", &out, &at, &len, NULL), LC_URL_ESCHEME);
  CHECK(out == NULL && at == 0 && len == 0);
  CHECK_INT(lc_url_normalize_host(NULL, "http://a.b/", &out, NULL, NULL, NULL), 0);
  free(out);
}

int main(void) {
  RUN(case_and_default_ports);
  RUN(fragment_and_empty_path);
  RUN(query_kept_as_is);
  RUN(dot_segments_and_relative);
  RUN(scheme_relative);
  RUN(ipv6_and_ipv4);
  RUN(path_escapes);
  RUN(whitespace_like_browsers);
  RUN(refusals);
  RUN(too_long_and_bad_args);
  RUN(idempotent);
  RUN(parts);
  RUN(normalize_with_host_span);
  DONE();
}
