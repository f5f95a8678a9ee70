/* policy.c: the policy's fields, defaults, checks and the table policy's decision (see
 * policy.h). */
#include "policy.h"

#include <stdio.h>
#include <string.h>

/* A field and where its value lives in an lc_policy. */
typedef struct field_slot {
  lc_policy_field f;
  size_t offset;
  size_t size; /* sizeof (int) or sizeof (int64_t); booleans are ints */
} field_slot;

#define SLOT(name, kind, lo, hi, in_answer) \
  { {#name, kind, lo, hi, in_answer}, offsetof(lc_policy, name), sizeof(((lc_policy *)0)->name) }

static const field_slot fields[] = {
    SLOT(max_contexts, LC_POLICY_INT, 0, 1000000, 1),
    SLOT(force, LC_POLICY_BOOL, 0, 1, 1),
    SLOT(idle_ms, LC_POLICY_INT, 0, INT64_MAX / 2, 1),
    SLOT(max_pages_per_browser, LC_POLICY_INT, 0, INT64_MAX / 2, 0),
    SLOT(max_browser_rss_mb, LC_POLICY_INT, 0, 1 << 30, 0),
    SLOT(max_browser_pss_mb, LC_POLICY_INT, 0, 1 << 30, 0),
    SLOT(max_pages_per_context, LC_POLICY_INT, 0, 1 << 30, 0),
    SLOT(max_uses_per_page, LC_POLICY_INT, 0, 1 << 30, 0),
    SLOT(max_idle_pages, LC_POLICY_INT, 0, 10000, 0),
    SLOT(adaptive_idle_pages, LC_POLICY_BOOL, 0, 1, 0),
    SLOT(close_timeout_ms, LC_POLICY_INT, 1, 600000, 0),
    {{"on_cleanup", LC_POLICY_FUNCTION, 0, 0, 0}, offsetof(lc_policy, hook_ref), sizeof(int)},
};
#define N_FIELDS (sizeof fields / sizeof fields[0])

const lc_policy_field *lc_policy_field_at(size_t i) { return i < N_FIELDS ? &fields[i].f : NULL; }

static const field_slot *slot_find(const char *name) {
  for (size_t i = 0; name && i < N_FIELDS; i++)
    if (strcmp(fields[i].f.name, name) == 0) return &fields[i];
  return NULL;
}

const lc_policy_field *lc_policy_field_find(const char *name) {
  const field_slot *s = slot_find(name);
  return s ? &s->f : NULL;
}

void lc_policy_defaults(lc_policy *p, int concurrency) {
  memset(p, 0, sizeof *p);
  p->max_contexts = 4;
  p->idle_ms = 30000;
  p->max_idle_pages = concurrency < 0 ? 0 : concurrency;
  p->adaptive_idle_pages = 1;
  p->max_uses_per_page = LC_POLICY_MAX_USES_PER_PAGE;
  p->close_timeout_ms = 5000;
  p->hook_ref = LC_POLICY_NO_HOOK;
}

static void store(lc_policy *p, const field_slot *s, int64_t v) {
  char *at = (char *)p + s->offset;
  if (s->size == sizeof(int64_t)) {
    memcpy(at, &v, sizeof v);
  } else {
    int i = (int)v; /* in range: every int field's hi fits an int */
    memcpy(at, &i, sizeof i);
  }
}

/* The slot named `name` if it has kind `kind`; else NULL with the message in err. */
static const field_slot *slot_of_kind(const char *name, lc_policy_kind kind, char *err,
                                      size_t errlen) {
  const field_slot *s = slot_find(name);
  if (!s)
    snprintf(err, errlen, "policy has an unknown field '%s'", name ? name : "(null)");
  else if (s->f.kind != kind)
    snprintf(err, errlen, "engine bug: policy.%s set as the wrong kind", name);
  return s && s->f.kind == kind ? s : NULL;
}

int lc_policy_set_int(lc_policy *p, const char *name, int64_t v, char *err, size_t errlen) {
  const field_slot *s = slot_of_kind(name, LC_POLICY_INT, err, errlen);
  if (!s) return -1;
  if (v < s->f.lo || v > s->f.hi) {
    char got[32];
    snprintf(got, sizeof got, "%lld", (long long)v);
    lc_policy_type_error(&s->f, got, err, errlen);
    return -1;
  }
  store(p, s, v);
  return 0;
}

int lc_policy_set_bool(lc_policy *p, const char *name, int v, char *err, size_t errlen) {
  const field_slot *s = slot_of_kind(name, LC_POLICY_BOOL, err, errlen);
  if (!s) return -1;
  store(p, s, v != 0);
  return 0;
}

void lc_policy_type_error(const lc_policy_field *f, const char *got, char *err, size_t errlen) {
  switch (f->kind) {
    case LC_POLICY_INT:
      snprintf(err, errlen, "policy.%s must be an integer from %lld to %lld (got %s)", f->name,
               (long long)f->lo, (long long)f->hi, got);
      break;
    case LC_POLICY_BOOL:
      snprintf(err, errlen, "policy.%s must be a boolean (got %s)", f->name, got);
      break;
    case LC_POLICY_FUNCTION:
      snprintf(err, errlen, "policy.%s must be a function (got %s)", f->name, got);
      break;
  }
}

void lc_policy_decide_table(const lc_policy *p, lc_cleanup_params *out, uint64_t *ids) {
  memset(out, 0, sizeof *out);
  out->max_contexts = p->max_contexts;
  out->force = p->force;
  out->idle_ms = p->idle_ms;
  out->close_ids = ids;
  out->n_close_ids = 0;
}

int lc_policy_add_close(lc_cleanup_params *out, uint64_t *ids, size_t cap, int64_t id) {
  if (id <= 0) return -1;
  if (out->n_close_ids >= cap) return 1;
  ids[out->n_close_ids++] = (uint64_t)id;
  out->close_ids = ids;
  return 0;
}
