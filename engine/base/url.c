/* url.c: preparing hrefs, resolving and normalizing them with uriparser, refusing what is not
 * crawlable, and composing the canonical form and its parts (see url.h). */
#include "url.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uriparser/Uri.h>

enum { PART_FULL, PART_ORIGIN, PART_HOST, PART_PATH_QUERY };

/* ---- a small growable string ---------------------------------------------------------------- */

typedef struct sbuf {
  char *p;
  size_t n, cap;
  int oom;
} sbuf;

/* Append n bytes; on allocation failure set oom and keep what is there. */
static void sb_add(sbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = '\0';
}

static void sb_range(sbuf *b, const UriTextRangeA *r) {
  if (r->first && r->afterLast > r->first) sb_add(b, r->first, (size_t)(r->afterLast - r->first));
}

/* ---- preparing input the way a browser treats an href --------------------------------------- */

static const char hex[] = "0123456789ABCDEF";

static int is_hex(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Bytes that may not appear raw anywhere in an RFC 3986 URI ('#' is handled by the caller,
 * '[' and ']' by parse_uri, '%' by prepare). */
static int never_raw(unsigned char c) {
  return c <= 0x20 || c >= 0x7f || c == '"' || c == '<' || c == '>' || c == '\\' || c == '^' ||
         c == '`' || c == '{' || c == '|' || c == '}';
}

/* Copy `s` trimmed of leading and trailing C0 controls and spaces, without tab/CR/LF, up to the
 * first '#', with bytes that cannot appear raw percent-encoded. */
static int prepare(const char *s, sbuf *out) {
  const unsigned char *p = (const unsigned char *)s, *end = p + strlen(s);
  while (p < end && *p <= 0x20) p++;
  while (end > p && end[-1] <= 0x20) end--;
  if ((size_t)(end - p) > LC_URL_MAX) return LC_URL_ETOOLONG;
  size_t cap = 3 * (size_t)(end - p) + 1; /* every byte escaped, and the NUL */
  char *o = malloc(cap);
  if (!o) return LC_URL_ENOMEM;
  size_t n = 0;
  for (; p < end && *p != '#'; p++) {
    unsigned char c = *p;
    if (c == '\t' || c == '\n' || c == '\r') continue;
    if (never_raw(c) || (c == '%' && !(p + 2 < end && is_hex(p[1]) && is_hex(p[2])))) {
      o[n++] = '%';
      o[n++] = hex[c >> 4];
      o[n++] = hex[c & 15];
    } else {
      o[n++] = (char)c;
    }
  }
  o[n] = '\0';
  *out = (sbuf){o, n, cap, 0};
  return 0;
}

/* Parse b->p into *uri (which then points into b). '[' and ']' are legal raw only around an
 * IPv6 host literal, but browsers pass them in paths and queries ("?a[]=1"): where uriparser
 * stops at one, it is percent-encoded and parsing starts over. */
static int parse_uri(sbuf *b, UriUriA *uri) {
  for (;;) {
    const char *errpos = NULL;
    int rc = uriParseSingleUriExA(uri, b->p, b->p + b->n, &errpos);
    if (rc == URI_SUCCESS) return 0;
    if (rc == URI_ERROR_MALLOC) return LC_URL_ENOMEM;
    if (rc != URI_ERROR_SYNTAX || !errpos || errpos < b->p || errpos >= b->p + b->n ||
        (*errpos != '[' && *errpos != ']'))
      return LC_URL_EPARSE;
    size_t at = (size_t)(errpos - b->p), tail = b->n - at - 1;
    unsigned char c = (unsigned char)*errpos;
    sb_add(b, "..", 2); /* room for two more bytes */
    if (b->oom) return LC_URL_ENOMEM;
    memmove(b->p + at + 3, b->p + at + 1, tail);
    b->p[at] = '%';
    b->p[at + 1] = hex[c >> 4];
    b->p[at + 2] = hex[c & 15];
  }
}

/* ---- validation ----------------------------------------------------------------------------- */

static size_t range_len(const UriTextRangeA *r) {
  return r->first && r->afterLast > r->first ? (size_t)(r->afterLast - r->first) : 0;
}

static int range_is(const UriTextRangeA *r, const char *s) {
  size_t n = strlen(s);
  return range_len(r) == n && strncasecmp(r->first, s, n) == 0;
}

#define UNSUPPORTED(s) \
  { s, "unsupported scheme '" s "'" }
static const struct {
  const char *scheme, *msg;
} scheme_msgs[] = {
    UNSUPPORTED("about"),       UNSUPPORTED("blob"),
    UNSUPPORTED("chrome"),      UNSUPPORTED("chrome-extension"),
    UNSUPPORTED("data"),        UNSUPPORTED("file"),
    UNSUPPORTED("ftp"),         UNSUPPORTED("intent"),
    UNSUPPORTED("javascript"),  UNSUPPORTED("mailto"),
    UNSUPPORTED("sms"),         UNSUPPORTED("tel"),
    UNSUPPORTED("view-source"), UNSUPPORTED("ws"),
    UNSUPPORTED("wss"),
};
#undef UNSUPPORTED

/* 0 for http, 1 for https, LC_URL_ESCHEME (with a message naming common schemes) otherwise. */
static int check_scheme(const UriUriA *u, const char **msg) {
  if (range_is(&u->scheme, "http")) return 0;
  if (range_is(&u->scheme, "https")) return 1;
  *msg = "unsupported scheme (only http and https are crawled)";
  for (size_t i = 0; i < sizeof scheme_msgs / sizeof scheme_msgs[0]; i++)
    if (range_is(&u->scheme, scheme_msgs[i].scheme)) *msg = scheme_msgs[i].msg;
  return LC_URL_ESCHEME;
}

/* ---- composition ---------------------------------------------------------------------------- */

/* Append "host[:port]" of a normalized URI, dropping the default port. */
static int add_host_port(sbuf *b, const UriUriA *u, int https, const char **msg) {
  if (u->hostData.ipFuture.first) {
    *msg = "unsupported IPvFuture host";
    return LC_URL_EHOST;
  }
  if (u->hostData.ip6) {
    char text[INET6_ADDRSTRLEN];
    if (!inet_ntop(AF_INET6, u->hostData.ip6->data, text, sizeof text)) {
      *msg = "bad IPv6 address";
      return LC_URL_EHOST;
    }
    sb_add(b, "[", 1);
    sb_add(b, text, strlen(text));
    sb_add(b, "]", 1);
  } else {
    size_t n = range_len(&u->hostText);
    if (n == 0) {
      *msg = "URL has no host";
      return LC_URL_EHOST;
    }
    if (memchr(u->hostText.first, '%', n)) {
      *msg = "non-ASCII or percent-encoded host (IDN) is not supported";
      return LC_URL_EHOST;
    }
    sb_range(b, &u->hostText);
  }
  size_t n = range_len(&u->portText);
  if (n > 0) {
    long port = 0;
    for (size_t i = 0; i < n; i++) {
      port = port * 10 + (u->portText.first[i] - '0'); /* uriparser admits digits only */
      if (port > 65535) {
        *msg = "port out of range";
        return LC_URL_EHOST;
      }
    }
    if (port != (https ? 443 : 80)) {
      char text[8];
      int len = 0;
      do text[sizeof text - 1 - len++] = (char)('0' + port % 10);
      while ((port /= 10) > 0);
      sb_add(b, ":", 1);
      sb_add(b, text + sizeof text - len, (size_t)len);
    }
  }
  return 0;
}

/* Append "/path[?query]"; an empty path is "/". An empty query ("/p?") is dropped: servers
 * answer it as "/p", and a crawler that kept it would fetch the same page twice. */
static void add_path_query(sbuf *b, const UriUriA *u) {
  if (!u->pathHead) sb_add(b, "/", 1);
  for (const UriPathSegmentA *s = u->pathHead; s; s = s->next) {
    sb_add(b, "/", 1);
    sb_range(b, &s->text);
  }
  if (u->query.first && u->query.afterLast > u->query.first) {
    sb_add(b, "?", 1);
    sb_range(b, &u->query);
  }
}

/* Append `part` of u; host[0..1] get the offset and length of "host[:port]" in b. */
static int compose(sbuf *b, const UriUriA *u, int part, int https, size_t host[2],
                   const char **msg) {
  if (part == PART_FULL || part == PART_ORIGIN) {
    sb_add(b, https ? "https://" : "http://", https ? 8 : 7);
    if (part == PART_FULL && range_len(&u->userInfo) > 0) {
      sb_range(b, &u->userInfo);
      sb_add(b, "@", 1);
    }
  }
  host[0] = host[1] = 0;
  if (part != PART_PATH_QUERY) {
    host[0] = b->n;
    int rc = add_host_port(b, u, https, msg);
    if (rc < 0) return rc;
    host[1] = b->n - host[0];
  }
  if (part == PART_FULL || part == PART_PATH_QUERY) add_path_query(b, u);
  sb_add(b, "", 0);
  if (b->oom) return LC_URL_ENOMEM;
  if (b->n > LC_URL_MAX) {
    *msg = "URL too long";
    return LC_URL_ETOOLONG;
  }
  return 0;
}

/* ---- the pipeline --------------------------------------------------------------------------- */

/* Prepare, parse, resolve, check, normalize and compose `part`. *out gets a malloc'ed string,
 * host[0..1] the span of "host[:port]" in it. */
static int url_build(const char *base, const char *ref, int part, char **out, size_t host[2],
                     const char **msg) {
  const unsigned mask =
      URI_NORMALIZE_SCHEME | URI_NORMALIZE_USER_INFO | URI_NORMALIZE_HOST | URI_NORMALIZE_PATH;
  sbuf rbuf = {0}, bbuf = {0}, res = {0};
  UriUriA ruri, buri, resolved;
  int have_ruri = 0, have_buri = 0, have_resolved = 0, https, rc;
  UriUriA *u = &ruri;

  *msg = "not a URL";
  rc = prepare(ref, &rbuf);
  if (rc == LC_URL_ETOOLONG) *msg = "URL too long";
  if (rc < 0 || (rc = parse_uri(&rbuf, &ruri)) < 0) goto done;
  have_ruri = 1;

  /* A relative reference needs the base; so does "http:foo" (a browser reads it as relative
   * when the base has the same scheme). Otherwise the base is not looked at. */
  if (!ruri.scheme.first || (base && !ruri.hostText.first && check_scheme(&ruri, msg) >= 0)) {
    rc = LC_URL_EPARSE;
    *msg = "relative URL and no base URL";
    if (!base) goto done;
    *msg = "invalid base URL";
    if ((rc = prepare(base, &bbuf)) < 0 || (rc = parse_uri(&bbuf, &buri)) < 0) goto done;
    have_buri = 1;
    rc = LC_URL_EPARSE;
    if (!buri.scheme.first) goto done;
    rc = uriAddBaseUriExA(&resolved, &ruri, &buri, URI_RESOLVE_IDENTICAL_SCHEME_COMPAT);
    if (rc != URI_SUCCESS) {
      rc = rc == URI_ERROR_MALLOC ? LC_URL_ENOMEM : LC_URL_EPARSE;
      goto done;
    }
    have_resolved = 1;
    u = &resolved;
  }

  if ((rc = https = check_scheme(u, msg)) < 0) goto done;
  if (!u->hostText.first) {
    *msg = "URL has no host";
    rc = LC_URL_EHOST;
    goto done;
  }
  if (uriNormalizeSyntaxExA(u, mask) != URI_SUCCESS) {
    rc = LC_URL_ENOMEM;
    goto done;
  }
  if ((rc = compose(&res, u, part, https, host, msg)) < 0) goto done;
  *out = res.p;
  res.p = NULL;

done:
  if (rc == LC_URL_ENOMEM) *msg = "out of memory";
  if (have_resolved) uriFreeUriMembersA(&resolved);
  if (have_buri) uriFreeUriMembersA(&buri);
  if (have_ruri) uriFreeUriMembersA(&ruri);
  free(rbuf.p);
  free(bbuf.p);
  free(res.p);
  return rc < 0 ? rc : 0;
}

int lc_url_normalize_host(const char *base, const char *ref, char **out, size_t *host_at,
                          size_t *host_len, const char **err) {
  const char *msg = NULL;
  size_t host[2] = {0, 0};
  if (err) *err = NULL;
  if (host_at) *host_at = 0;
  if (host_len) *host_len = 0;
  if (!out || !ref) {
    if (err) *err = "NULL argument";
    return LC_URL_EINVAL;
  }
  *out = NULL;
  int rc = url_build(base, ref, PART_FULL, out, host, &msg);
  if (rc < 0) {
    if (err) *err = msg;
    return rc;
  }
  if (host_at) *host_at = host[0];
  if (host_len) *host_len = host[1];
  return 0;
}

int lc_url_normalize(const char *base, const char *ref, char **out, const char **err) {
  return lc_url_normalize_host(base, ref, out, NULL, NULL, err);
}

/* Build one part of `url` into the caller's buffer. */
static int url_part(const char *url, int part, char *out, size_t n) {
  if (!url || !out || n == 0) return LC_URL_EINVAL;
  out[0] = '\0';
  char *s = NULL;
  const char *msg;
  size_t host[2];
  int rc = url_build(NULL, url, part, &s, host, &msg);
  if (rc < 0) return rc;
  size_t len = strlen(s);
  if (len >= n) {
    rc = LC_URL_ENOSPC;
  } else {
    memcpy(out, s, len + 1);
  }
  free(s);
  return rc;
}

int lc_url_origin(const char *url, char *out, size_t n) {
  return url_part(url, PART_ORIGIN, out, n);
}

int lc_url_host(const char *url, char *out, size_t n) { return url_part(url, PART_HOST, out, n); }

int lc_url_path_query(const char *url, char *out, size_t n) {
  return url_part(url, PART_PATH_QUERY, out, n);
}
