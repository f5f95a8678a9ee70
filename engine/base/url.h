/* url.h: URL resolution and normalization for crawling.
 *
 * Owns: the one canonical form of a crawlable URL (the frontier dedupes on it, politeness keys
 * on its host, robots matches its path), and the decision which URLs are crawlable at all:
 * http and https with a host, nothing else. Parsing, reference resolution (RFC 3986 §5) and
 * syntax normalization are uriparser's; this file only prepares the input the way a browser
 * would and composes the result.
 *
 * The canonical form, as produced by lc_url_normalize:
 *   - leading and trailing C0 controls and spaces are trimmed and tab/CR/LF removed anywhere
 *     (as browsers do with an href); bytes that may not appear raw in a URI (space, controls,
 *     non-ASCII, " < > \ ^ ` { | } and a '%' not starting an escape) are percent-encoded, and
 *     so are '[' and ']' outside an IPv6 host literal;
 *   - the fragment is dropped (everything from the first '#');
 *   - scheme and host are lowercased, an IPv6 host is written in RFC 5952 form ("[::1]");
 *   - the port is dropped when it is the default (80 for http, 443 for https), written without
 *     leading zeros otherwise, and must be 0..65535;
 *   - dot segments are removed, escapes of unreserved characters in the path are decoded and
 *     the hex of other escapes in the path is uppercased (RFC 3986 §6.2.2); an empty path
 *     becomes "/";
 *   - the query is kept byte for byte (no reordering, no re-escaping beyond the above);
 *   - userinfo, if any, is kept.
 * Normalizing a canonical URL again gives the same string. Not done: IDN to punycode (a host
 * with non-ASCII or percent-encoded bytes is refused), '\' to '/' conversion, IPv4 shorthand.
 */
#ifndef LC_URL_H
#define LC_URL_H

#include <stddef.h>

#define LC_URL_MAX 8192 /* longest input (after trimming) and longest result, in bytes */

enum {
  LC_URL_EINVAL = -1,   /* a NULL argument or a zero-size buffer */
  LC_URL_EPARSE = -2,   /* not a URL; relative with no usable base */
  LC_URL_ESCHEME = -3,  /* a scheme other than http or https */
  LC_URL_EHOST = -4,    /* no host, an unusable host, or a bad port */
  LC_URL_ETOOLONG = -5, /* longer than LC_URL_MAX */
  LC_URL_ENOMEM = -6,
  LC_URL_ENOSPC = -7, /* the caller's buffer is too small (nothing useful is written) */
};

/* Resolve `ref` against `base` and normalize the result (see above). `base` may be NULL: then
 * `ref` must be absolute. A `base` is only needed, and only checked, when `ref` is relative.
 * On success returns 0 and sets *out to a malloc'ed string the caller releases with free().
 * On failure returns a negative LC_URL_E* code, leaves *out NULL, and, when `err` is not NULL,
 * sets *err to a static message (e.g. "unsupported scheme 'file'"); never free it. */
int lc_url_normalize(const char *base, const char *ref, char **out, const char **err);

/* lc_url_normalize, also telling where the lc_url_host key ("host[:port]") lies in *out: at
 * offset *host_at, *host_len bytes long (either pointer may be NULL). Saves a second parse
 * where both are needed (the frontier's push). */
int lc_url_normalize_host(const char *base, const char *ref, char **out, size_t *host_at,
                          size_t *host_len, const char **err);

/* Parts of an absolute http(s) URL, written NUL-terminated into out[0..n). The URL goes through
 * the same rules as lc_url_normalize, so the parts are canonical even if `url` was not.
 * Each returns 0, or a negative LC_URL_E* code (LC_URL_ENOSPC when `n` is too small). */
int lc_url_origin(const char *url, char *out, size_t n);     /* "https://host[:port]" */
int lc_url_host(const char *url, char *out, size_t n);       /* "host[:port]": politeness key */
int lc_url_path_query(const char *url, char *out, size_t n); /* "/path[?query]": for robots */

#endif
