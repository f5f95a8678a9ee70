/* policy.h: the cleanup policy as values: its fields, their defaults and valid ranges, and
 * the table policy's decision for one cleanup pass.
 * Owns: the one list of policy fields (name, kind, range, whether the on_cleanup hook may
 * override it for a pass), the defaults, and the check every value passes on its way in,
 * from the job's `policy` table or from the hook's answer. Pure C: reading the Lua table and
 * calling the hook are l_policy.c's (engine/lua). */
#ifndef LC_POLICY_H
#define LC_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "ctxcache.h"

/* hook_ref when there is no on_cleanup hook (equal to Lua's LUA_NOREF; l_policy.c checks). */
#define LC_POLICY_NO_HOOK (-2)

/* The default of max_uses_per_page: a renderer reused for navigation after navigation grows
 * (about 17 MB fresh, 75-100 MB after a few hundred; bench/RESULTS.md, issue 8), so a page is
 * retired after this many uses and a fresh one takes its place. 12 rather than 25: at
 * concurrency 8 it holds the browser at ~320 MB instead of ~355 for no pages/s we could measure
 * (bench/RESULTS.md, issue 8, 2026-12-03). */
#define LC_POLICY_MAX_USES_PER_PAGE 12

typedef struct lc_policy {
  int max_contexts;              /* idle contexts kept open, >= 0 */
  int force;                     /* may close refcount-0 contexts that still keep idle pages */
  int64_t idle_ms;               /* close contexts (and idle pages) unused this long; 0: never */
  int64_t max_pages_per_browser; /* recycle the browser after this many pages; 0: never */
  int64_t max_browser_rss_mb;    /* recycle when the browser tree's RSS passes this; 0: never */
  int64_t max_browser_pss_mb;    /* recycle when the browser tree's PSS passes this; 0: never */
  int max_idle_pages;            /* idle pages kept for reuse, all contexts together */
  int adaptive_idle_pages;       /* keep fewer while they are not reused (default on) */
  int64_t max_pages_per_context; /* retire a context after this many pages; 0: never */
  int max_uses_per_page;         /* close a page after this many uses instead of keeping it */
  int close_timeout_ms;          /* a close the browser does not answer within this is lost */
  /* The on_cleanup hook: a reference only the Lua layer makes and reads (l_policy.h);
   * LC_POLICY_NO_HOOK when none. Copying an lc_policy does not copy the hook's ownership. */
  int hook_ref;
} lc_policy;

/* What a cleanup pass knows besides the cache (the hook's `state` shows it). */
typedef struct lc_policy_state {
  double browser_rss_mb, browser_pss_mb; /* the last sample; 0 when not sampled */
  uint64_t pages_served;                 /* by the current browser */
} lc_policy_state;

typedef enum { LC_POLICY_INT, LC_POLICY_BOOL, LC_POLICY_FUNCTION } lc_policy_kind;

typedef struct lc_policy_field {
  const char *name;
  lc_policy_kind kind;
  int64_t lo, hi; /* LC_POLICY_INT: the valid range, both included */
  int in_answer;  /* the hook's answer may set it for one pass */
} lc_policy_field;

/* The fields, i = 0, 1, ... until NULL. */
const lc_policy_field *lc_policy_field_at(size_t i);
/* The field named `name`, or NULL. */
const lc_policy_field *lc_policy_field_find(const char *name);

/* The defaults, the one place they are set: max_contexts 4, force false, idle_ms 30000, no
 * recycling, max_idle_pages = `concurrency` (the job's), adaptive idle pages on,
 * close_timeout_ms 5000, no hook. */
void lc_policy_defaults(lc_policy *p, int concurrency);

/* Set one field after checking it. Return 0, or -1 with p unchanged and a message in `err`
 * naming the field and the value: "policy.NAME must be an integer from LO to HI (got V)",
 * "policy has an unknown field 'NAME'", or a kind mismatch (an engine bug). */
int lc_policy_set_int(lc_policy *p, const char *name, int64_t v, char *err, size_t errlen);
int lc_policy_set_bool(lc_policy *p, const char *name, int v, char *err, size_t errlen);
/* The message for a value of the wrong type, `got` describing it:
 * "policy.NAME must be <an integer from LO to HI | a boolean | a function> (got GOT)". */
void lc_policy_type_error(const lc_policy_field *f, const char *got, char *err, size_t errlen);

/* The table policy's decision for one cleanup pass (what applies when there is no hook, or it
 * fails, or answers nil): the policy's max_contexts, force and idle_ms, and an empty close
 * list that lc_policy_add_close fills from `ids`. */
void lc_policy_decide_table(const lc_policy *p, lc_cleanup_params *out, uint64_t *ids);
/* Add a context id the hook asked to close to `out` (built by lc_policy_decide_table over
 * `ids`, capacity `cap`). Returns 0 added, 1 when the list is full (the id waits for a later
 * pass), -1 when `id` cannot be a context id (ids start at 1). */
int lc_policy_add_close(lc_cleanup_params *out, uint64_t *ids, size_t cap, int64_t id);

#endif
