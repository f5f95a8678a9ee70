/* robots.c: robots.txt lines to the rules of one crawler, and path matching (see robots.h). */
#include "robots.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "url.h"

typedef struct rule {
  char *pattern; /* canonical encoding; a raw '*' is the wildcard */
  size_t len;
  size_t weight; /* octets that count for "longest match": len, plus 1 for a final '$' */
  int anchored;  /* the pattern ended in '$' */
  int allow;
  size_t order; /* position in the file: ties keep file order */
  size_t head;  /* bytes before the first '*' (len if none) */
} rule;

struct lc_robots {
  rule *rules;
  size_t n;
  size_t max_len;     /* the longest pattern: room for find()'s table */
  double crawl_delay; /* -1: none */
};

/* ---- canonical percent-encoding ------------------------------------------------------------- */

static const char hex[] = "0123456789ABCDEF";

static int hex_value(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int is_unreserved(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

/* Octets never valid raw in a URI. */
static int never_raw(unsigned char c) {
  return c <= 0x20 || c >= 0x7f || c == '"' || c == '<' || c == '>' || c == '\\' || c == '^' ||
         c == '`' || c == '{' || c == '|' || c == '}';
}

/* The canonical form of s[0..n) as a malloc'ed string, after `prefix` ("/" or ""). In a
 * pattern a '*' stays the wildcard; in a path it is compared as %2A, and '$' always as %24. */
static char *canonical(const char *s, size_t n, const char *prefix, int pattern, size_t *len) {
  size_t k = strlen(prefix);
  char *o = malloc(k + 3 * n + 1);
  if (!o) return NULL;
  memcpy(o, prefix, k);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '%' && i + 2 < n && hex_value((unsigned char)s[i + 1]) >= 0 &&
        hex_value((unsigned char)s[i + 2]) >= 0) {
      c = (unsigned char)(hex_value((unsigned char)s[i + 1]) * 16 +
                          hex_value((unsigned char)s[i + 2]));
      i += 2;
      if (is_unreserved(c)) {
        o[k++] = (char)c;
        continue;
      }
    } else if (c == '*' && pattern) {
      o[k++] = '*';
      continue;
    } else if (c != '%' && c != '*' && c != '$' && !never_raw(c)) {
      o[k++] = (char)c;
      continue;
    }
    o[k++] = '%';
    o[k++] = hex[c >> 4];
    o[k++] = hex[c & 15];
  }
  o[k] = '\0';
  *len = k;
  return o;
}

/* ---- matching ------------------------------------------------------------------------------- */

/* Work units left to one check for its wildcard searches; see LC_ROBOTS_MAX_WORK. The
 * prefix compares are not counted: LC_ROBOTS_MAX_RULES and the file cap bound them. */
typedef struct budget {
  size_t left;
} budget;

static int spend(budget *b, size_t units) {
  if (units > b->left) {
    b->left = 0;
    return -1;
  }
  b->left -= units;
  return 0;
}

#define SEARCH_COST 8 /* units per search for a part after a '*', besides its steps */

/* Knuth-Morris-Pratt: where w[0..m) first occurs in s[0..n), or -1; -2 when the budget ran
 * out (every step of building the table and of scanning costs a unit). `fail` has room for m.
 * Not the C library's memmem: some builds of it (the sanitizers' interceptors) are O(n * m). */
static long find(const char *s, size_t n, const char *w, size_t m, uint32_t *fail, budget *b) {
  if (m > n) return -1;
  size_t steps = SEARCH_COST + m;
  fail[0] = 0;
  for (size_t i = 1, k = 0; i < m; i++) {
    while (k > 0 && w[i] != w[k]) k = fail[k - 1], steps++;
    if (w[i] == w[k]) k++;
    fail[i] = (uint32_t)k;
  }
  long at = -1;
  for (size_t i = 0, k = 0; i < n; i++) {
    if (k == 0) { /* skip to the next candidate first byte in one library call */
      const char *c = memchr(s + i, w[0], n - i);
      if (!c) break;
      steps += 1 + (size_t)(c - (s + i)) / 8;
      i = (size_t)(c - s);
    }
    while (k > 0 && s[i] != w[k]) k = fail[k - 1], steps++;
    if (s[i] == w[k]) k++;
    steps++;
    if (k == m) {
      at = (long)(i + 1 - m);
      break;
    }
  }
  return spend(b, steps) < 0 ? -2 : at;
}

/* Whether pattern p (with '*' wildcards) matches the start of s, or all of s when anchored:
 * 1, 0, or -1 when the budget ran out. Linear: the part before the first '*' (`head` bytes)
 * is a prefix compare, each later part is found at its leftmost occurrence after the previous
 * one (which is optimal for '*'-only globs), and an anchored last part must end the path. No
 * backtracking: O(|p| + |s|) per part. */
static int pattern_matches(const rule *u, const char *s, size_t sn, uint32_t *fail, budget *b) {
  const char *p = u->pattern;
  size_t pn = u->len, head = u->head;
  if (head == pn)
    return u->anchored ? pn == sn && memcmp(p, s, pn) == 0 : pn <= sn && !memcmp(p, s, pn);
  if (head > sn || memcmp(p, s, head) != 0) return 0;
  size_t pos = head, pi = head + 1; /* pi: first byte after a '*' */
  for (;;) {
    const char *next = memchr(p + pi, '*', pn - pi);
    size_t seg = (next ? (size_t)(next - p) : pn) - pi;
    if (!next && u->anchored) { /* the last part must end the path, after what matched */
      if (spend(b, SEARCH_COST + seg) < 0) return -1;
      return sn - pos >= seg && memcmp(s + sn - seg, p + pi, seg) == 0;
    }
    if (seg > 0) {
      long at = find(s + pos, sn - pos, p + pi, seg, fail, b);
      if (at < 0) return at == -2 ? -1 : 0;
      pos += (size_t)at + seg;
    }
    if (!next) return 1;
    pi = (size_t)(next - p) + 1;
  }
}

int lc_robots_allowed(const lc_robots *r, const char *path_and_query) {
  if (!r || !path_and_query) return LC_ROBOTS_EINVAL;
  const char *path = path_and_query[0] ? path_and_query : "/";
  if (r->n == 0 || strcmp(path, "/robots.txt") == 0) return 1;
  size_t sn;
  char *s = canonical(path, strlen(path), "", 0, &sn);
  if (!s) return LC_ROBOTS_ENOMEM;
  /* Rules are sorted by weight, longest first, Allow first on a tie: the first match wins. */
  uint32_t *fail = r->max_len ? malloc(r->max_len * sizeof *fail) : NULL;
  if (r->max_len && !fail) {
    free(s);
    return LC_ROBOTS_ENOMEM;
  }
  budget b = {LC_ROBOTS_MAX_WORK};
  int allow = 1;
  for (size_t i = 0; i < r->n; i++) {
    int m = pattern_matches(&r->rules[i], s, sn, fail, &b);
    if (m < 0) { /* a file built to stall the crawler: refuse rather than spin */
      allow = 0;
      break;
    }
    if (m) {
      allow = r->rules[i].allow;
      break;
    }
  }
  free(fail);
  free(s);
  return allow;
}

int lc_robots_allowed_url(const lc_robots *r, const char *url) {
  if (!r || !url) return LC_ROBOTS_EINVAL;
  size_t n = strlen(url) + 1; /* the path and query are never longer than the URL */
  if (n < 2) return LC_ROBOTS_EINVAL;
  char *pq = malloc(n);
  if (!pq) return LC_ROBOTS_ENOMEM;
  int rc = lc_url_path_query(url, pq, n);
  if (rc == 0)
    rc = lc_robots_allowed(r, pq);
  else
    rc = rc == LC_URL_ENOMEM ? LC_ROBOTS_ENOMEM : LC_ROBOTS_EINVAL;
  free(pq);
  return rc;
}

double lc_robots_crawl_delay(const lc_robots *r) { return r ? r->crawl_delay : -1; }

/* ---- parsing -------------------------------------------------------------------------------- */

/* Rules and delay gathered for one side: the groups naming us, or the "*" groups. */
typedef struct side {
  rule *v;
  size_t n, cap;
  double delay;
  int seen; /* a group for this side exists, with or without rules */
} side;

typedef struct parser {
  const char *agent; /* our product token */
  size_t agent_len;
  int in_group;     /* a user-agent line was seen */
  int in_rules;     /* a member line (rule or crawl-delay) followed the latest user-agent lines:
                     * the next user-agent line starts a new group */
  int cur_ours;     /* the current group names our product token */
  int cur_star;     /* the current group names "*" */
  double cur_delay; /* the current group's crawl-delay, -1 if none */
  side ours, star;
  int oom;
} parser;

static void side_free(side *sd) {
  for (size_t i = 0; i < sd->n; i++) free(sd->v[i].pattern);
  free(sd->v);
  sd->v = NULL;
  sd->n = sd->cap = 0;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\v' || c == '\f'; }

/* The product token at the start of s[0..n): its leading [A-Za-z_-] run. */
static size_t token_len(const char *s, size_t n) {
  size_t i = 0;
  while (i < n && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '_' ||
                   s[i] == '-'))
    i++;
  return i;
}

static int key_is(const char *k, size_t n, const char *name) {
  return strlen(name) == n && strncasecmp(k, name, n) == 0;
}

enum { KEY_OTHER, KEY_AGENT, KEY_ALLOW, KEY_DISALLOW, KEY_DELAY };

static int classify(const char *k, size_t n) {
  static const struct {
    const char *name;
    int key;
  } keys[] = {
      {"user-agent", KEY_AGENT},  {"useragent", KEY_AGENT},   {"user agent", KEY_AGENT},
      {"allow", KEY_ALLOW},       {"disallow", KEY_DISALLOW}, {"dissallow", KEY_DISALLOW},
      {"dissalow", KEY_DISALLOW}, {"disalow", KEY_DISALLOW},  {"diasllow", KEY_DISALLOW},
      {"disallaw", KEY_DISALLOW}, {"crawl-delay", KEY_DELAY}, {"crawldelay", KEY_DELAY},
  };
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    if (key_is(k, n, keys[i].name)) return keys[i].key;
  return KEY_OTHER;
}

/* Seconds as "12", "0.5" or ".5" (anything after the number is ignored); -1 if malformed. */
static double parse_delay(const char *s, size_t n) {
  double v = 0, scale = 1;
  size_t i = 0, digits = 0;
  for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++)
    if (v < 1e9) v = v * 10 + (s[i] - '0');
  if (i < n && s[i] == '.')
    for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++) v += (s[i] - '0') * (scale /= 10);
  if (!digits) return -1;
  return v > 1e9 ? 1e9 : v;
}

static void side_add(parser *p, side *sd, const rule *u) {
  if (p->oom || sd->n >= LC_ROBOTS_MAX_RULES) return; /* the first rules of a group are kept */
  if (sd->n == sd->cap) {
    size_t cap = sd->cap ? sd->cap * 2 : 16;
    rule *v = realloc(sd->v, cap * sizeof *v);
    if (!v) {
      p->oom = 1;
      return;
    }
    sd->v = v;
    sd->cap = cap;
  }
  rule copy = *u;
  copy.order = sd->n;
  copy.pattern = malloc(u->len + 1);
  if (!copy.pattern) {
    p->oom = 1;
    return;
  }
  memcpy(copy.pattern, u->pattern, u->len + 1);
  sd->v[sd->n++] = copy;
}

static void add_rule(parser *p, int allow, const char *v, size_t n) {
  if (n == 0) return; /* "Disallow:" matches nothing */
  rule u = {.allow = allow};
  if (v[n - 1] == '$') {
    u.anchored = 1;
    n--;
  }
  const char *prefix = n > 0 && (v[0] == '/' || v[0] == '*') ? "" : "/";
  u.pattern = canonical(v, n, prefix, 1, &u.len);
  if (!u.pattern) {
    p->oom = 1;
    return;
  }
  u.weight = u.len + (size_t)u.anchored;
  const char *star = memchr(u.pattern, '*', u.len);
  u.head = star ? (size_t)(star - u.pattern) : u.len;
  if (p->cur_ours) side_add(p, &p->ours, &u);
  if (p->cur_star) side_add(p, &p->star, &u);
  free(u.pattern);
}

/* The current group is complete: give its crawl-delay to the sides it names. */
static void end_group(parser *p) {
  if (p->cur_delay >= 0 && p->cur_ours && p->cur_delay > p->ours.delay)
    p->ours.delay = p->cur_delay;
  if (p->cur_delay >= 0 && p->cur_star && p->cur_delay > p->star.delay)
    p->star.delay = p->cur_delay;
  p->cur_ours = p->cur_star = p->in_rules = 0;
  p->cur_delay = -1;
}

/* One line, without its terminator. */
static void parse_line(parser *p, const char *s, const char *e) {
  const char *hash = memchr(s, '#', (size_t)(e - s));
  if (hash) e = hash;
  while (s < e && is_space(*s)) s++;
  while (e > s && is_space(e[-1])) e--;
  if (s == e) return;
  const char *key_end, *val;
  const char *colon = memchr(s, ':', (size_t)(e - s));
  if (colon) {
    key_end = colon;
    val = colon + 1;
  } else { /* "disallow /x": the colon forgotten */
    key_end = s;
    while (key_end < e && !is_space(*key_end)) key_end++;
    if (key_end == e) return;
    val = key_end;
  }
  while (key_end > s && is_space(key_end[-1])) key_end--;
  while (val < e && is_space(*val)) val++;
  size_t vn = (size_t)(e - val);

  int key = classify(s, (size_t)(key_end - s));
  switch (key) {
    case KEY_AGENT:
      if (p->in_rules) end_group(p);
      p->in_group = 1;
      if (vn > 0 && val[0] == '*') {
        p->cur_star = p->star.seen = 1;
      } else {
        size_t t = token_len(val, vn);
        if (t > 0 && t == p->agent_len && strncasecmp(val, p->agent, t) == 0)
          p->cur_ours = p->ours.seen = 1;
      }
      break;
    case KEY_ALLOW:
    case KEY_DISALLOW:
      if (!p->in_group) break; /* rules before any user-agent line belong to no group */
      p->in_rules = 1;
      if (p->cur_ours || p->cur_star) add_rule(p, key == KEY_ALLOW, val, vn);
      break;
    case KEY_DELAY: {
      if (!p->in_group) break;
      p->in_rules = 1; /* a group member, like a rule: "User-agent: *, Crawl-delay: 10" ends */
      double d = parse_delay(val, vn);
      if (d > p->cur_delay) p->cur_delay = d;
      break;
    }
    default:
      break; /* sitemap, host, and anything unknown: not ours to interpret, and no group end */
  }
}

/* Longest pattern first, Allow before Disallow on a tie, then file order: the first rule that
 * matches a path is the one RFC 9309 picks. */
static int rule_order(const void *a, const void *b) {
  const rule *x = a, *y = b;
  if (x->weight != y->weight) return x->weight > y->weight ? -1 : 1;
  if (x->allow != y->allow) return x->allow ? -1 : 1;
  return x->order < y->order ? -1 : x->order > y->order;
}

lc_robots *lc_robots_parse(const char *text, size_t len, const char *agent) {
  if (!agent || (!text && len > 0)) return NULL;
  if (len > LC_ROBOTS_MAX_BYTES) { /* keep only whole lines within the limit */
    size_t cut = LC_ROBOTS_MAX_BYTES;
    if (text[cut] != '\n' && text[cut] != '\r')
      while (cut > 0 && text[cut - 1] != '\n' && text[cut - 1] != '\r') cut--;
    len = cut;
  }
  parser p = {.agent = agent, .agent_len = token_len(agent, strlen(agent))};
  p.ours.delay = p.star.delay = p.cur_delay = -1;
  const char *s = text, *end = text ? text + len : text;
  if (len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) s += 3;
  while (s < end && !p.oom) {
    const char *e = s;
    while (e < end && *e != '\n' && *e != '\r') e++;
    parse_line(&p, s, e);
    if (e < end && *e == '\r' && e + 1 < end && e[1] == '\n') e++;
    s = e + 1;
  }
  end_group(&p);

  lc_robots *r = p.oom ? NULL : calloc(1, sizeof *r);
  if (!r) {
    side_free(&p.ours);
    side_free(&p.star);
    return NULL;
  }
  side *use = p.ours.seen ? &p.ours : p.star.seen ? &p.star : NULL;
  if (use && use->n > 1) qsort(use->v, use->n, sizeof *use->v, rule_order);
  r->crawl_delay = -1;
  if (use) {
    r->rules = use->v;
    r->n = use->n;
    for (size_t i = 0; i < r->n; i++)
      if (r->rules[i].len > r->max_len) r->max_len = r->rules[i].len;
    r->crawl_delay = use->delay;
    use->v = NULL;
    use->n = 0;
  }
  side_free(&p.ours);
  side_free(&p.star);
  return r;
}

lc_robots *lc_robots_for_status(int status) {
  int allow_all = status >= 400 && status <= 499 && status != 429;
  int disallow_all = status <= 0 || status == 429 || (status >= 500 && status <= 599);
  if (!allow_all && !disallow_all) return NULL;
  lc_robots *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->crawl_delay = -1;
  if (disallow_all) {
    r->rules = calloc(1, sizeof *r->rules);
    char *slash = malloc(2);
    if (!r->rules || !slash) {
      free(slash);
      free(r->rules);
      free(r);
      return NULL;
    }
    memcpy(slash, "/", 2);
    r->rules[0] = (rule){.pattern = slash, .len = 1, .weight = 1, .allow = 0, .head = 1};
    r->max_len = 1;
    r->n = 1;
  }
  return r;
}

void lc_robots_free(lc_robots *r) {
  if (!r) return;
  for (size_t i = 0; i < r->n; i++) free(r->rules[i].pattern);
  free(r->rules);
  free(r);
}
