/* robots.h: robots.txt parsing and matching (RFC 9309).
 *
 * Owns: turning one robots.txt body into the rules that apply to one crawler, and answering
 * whether a path may be fetched and how long to wait between fetches. Pure logic: fetching,
 * caching and per-host bookkeeping are the caller's.
 *
 * Parsing (§2.1, §2.2)
 *   - At most LC_ROBOTS_MAX_BYTES are read (the RFC asks for at least 500 KiB); a line cut by
 *     the limit is dropped. A UTF-8 BOM is skipped; lines end in LF, CRLF or CR; '#' starts a
 *     comment; keys are case-insensitive; "key value" without the colon and the common typos
 *     "useragent", "user agent", "dissallow", "dissalow", "disalow", "diasllow", "disallaw",
 *     "crawldelay" are accepted (§2.2.4 allows leniency). Unknown lines and lines that do not
 *     parse are ignored, and do not end a group.
 *   - A group is one or more user-agent lines followed by member lines (Allow, Disallow,
 *     Crawl-delay); a user-agent line after a member line starts a new group, blank lines do
 *     not. Crawl-delay counts as a member (as Bing and Yandex read it), so "User-agent: *,
 *     Crawl-delay: 10, User-agent: x, Disallow: /" is two groups, not one naming * and x.
 *     Member lines before the first user-agent line are ignored.
 *   - A user-agent value names the product token it starts with (its leading [A-Za-z_-]
 *     characters, so "LuaCrawl/1.0" names "LuaCrawl"), or "*". The groups naming the crawler's
 *     product token (compared case-insensitively and exactly: "luacrawl-news" does not name
 *     "luacrawl") apply, merged into one; only when none does, the "*" groups apply, merged;
 *     when neither exists nothing is disallowed. A specific group without rules allows all.
 *   - Crawl-delay: seconds, fractional allowed ("0.5"), of the applying groups (the largest if
 *     several); malformed or negative values are ignored; values over 1e9 are clamped.
 *
 * Matching (§2.2.2, §2.2.3)
 *   - Work is bounded: at most LC_ROBOTS_MAX_RULES rules per group are kept (the first ones),
 *     matching is linear in pattern plus path (no backtracking: the part before the first '*'
 *     is a prefix, each later part its leftmost occurrence, found by KMP), and a check that would
 * spend more than LC_ROBOTS_MAX_WORK units answers "disallowed". A worst-case check takes well
 * under 1 ms (spec/c/test_robots.c).
 *   - Patterns match from the first octet of the path; '*' matches any run of octets and a
 *     final '$' anchors the end. The rule with the longest pattern (in octets, after the
 *     normalization below, '$' counted) wins; on a tie Allow wins. No matching rule, or an
 *     empty pattern ("Disallow:"), allows. "/robots.txt" is always allowed.
 *   - Both pattern and path are compared in one canonical percent-encoding: %XX of an
 *     unreserved character is decoded, other escapes get uppercase hex, non-ASCII octets and
 *     octets never valid raw in a URI are encoded. A '*' or '$' in the path is compared as
 *     %2A / %24, so a pattern "/a-%2A" matches the path "/a-*" (§2.2.3); a '$' inside a
 *     pattern (not last) is literal. A pattern not starting with '/' or '*' gets a leading
 *     '/'.
 *
 * Fetch status rules for the caller (§2.3.1) -- lc_robots_for_status() applies them:
 *   2xx            parse the body with lc_robots_parse.
 *   3xx            follow at least five redirects, even to other hosts; the rules found apply
 *                  to the original host. More than five: treat as 4xx.
 *   4xx            "unavailable": allow everything (429 Too Many Requests is treated as 5xx,
 *                  as Google does: it asks the crawler to back off, not to go ahead).
 *   5xx, network   "unreachable": disallow everything. After a long outage (30 days) the
 *   error/timeout  crawler may use a cached copy or treat it as 4xx.
 *   Cache a robots.txt for at most 24 hours (unless it is unreachable, §2.4).
 */
#ifndef LC_ROBOTS_H
#define LC_ROBOTS_H

#include <stddef.h>

#define LC_ROBOTS_MAX_BYTES ((size_t)500 * 1024)
/* Rules kept per group (merged): the first ones. */
#define LC_ROBOTS_MAX_RULES 4096
/* Work units one check may spend searching for the parts of patterns after a '*' (about one
 * per byte of path scanned, a few per search): beyond it the URL is refused. Plain prefix
 * rules and "*.ext$" suffix rules cost next to nothing; a file needs dozens of wildcard rules
 * that each scan a long path to get there, which only a file built to stall the crawler has. */
#define LC_ROBOTS_MAX_WORK ((size_t)32 * 1024)

enum {
  LC_ROBOTS_EINVAL = -1, /* a NULL argument */
  LC_ROBOTS_ENOMEM = -2,
};

typedef struct lc_robots lc_robots;

/* Parse `len` bytes of robots.txt for the crawler whose product token `agent` starts with
 * (e.g. "luacrawl" or "luacrawl/0.1"). `text` may be NULL when len is 0. Never fails on
 * content: an empty or garbage file gives rules that allow everything. Returns NULL only for
 * a NULL `agent`, NULL text with len > 0, or out of memory. Released by lc_robots_free(). */
lc_robots *lc_robots_parse(const char *text, size_t len, const char *agent);

/* The rules to use when robots.txt could not be fetched with a 2xx: allow-all for 4xx other
 * than 429, disallow-all for 429, 5xx and `status` <= 0 (network error, timeout). NULL for any
 * other status (2xx: parse the body; 3xx: follow the redirect) and when out of memory.
 * Released by lc_robots_free(). */
lc_robots *lc_robots_for_status(int status);

/* Whether `path_and_query` ("/path?query" as from lc_url_path_query; "" means "/") may be
 * fetched: 1 allowed, 0 disallowed, or LC_ROBOTS_EINVAL / LC_ROBOTS_ENOMEM. Test with == 1. */
int lc_robots_allowed(const lc_robots *r, const char *path_and_query);

/* lc_robots_allowed for the path and query of the absolute URL `url`, whatever its length. */
int lc_robots_allowed_url(const lc_robots *r, const char *url);

/* The crawl delay in seconds of the applying groups, or -1 if none was given (or r is NULL). */
double lc_robots_crawl_delay(const lc_robots *r);

/* Free; NULL is ignored. */
void lc_robots_free(lc_robots *r);

#endif
