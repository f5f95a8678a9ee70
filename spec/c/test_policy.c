/* test_policy.c: unit tests for engine/crawl/policy.c (the policy's fields, defaults, checks
 * and the table policy's decision). */
#include <limits.h>
#include <stdint.h>

#include "policy.h"
#include "test.h"

TEST(defaults) {
  lc_policy p;
  memset(&p, 0x5a, sizeof p); /* every field is set, none left from before */
  lc_policy_defaults(&p, 6);
  CHECK_INT(p.max_contexts, 4);
  CHECK_INT(p.force, 0);
  CHECK_INT(p.idle_ms, 30000);
  CHECK_INT(p.max_pages_per_browser, 0);
  CHECK_INT(p.max_browser_rss_mb, 0);
  CHECK_INT(p.max_browser_pss_mb, 0);
  CHECK_INT(p.max_idle_pages, 6); /* the job's concurrency */
  CHECK_INT(p.adaptive_idle_pages, 1);
  CHECK_INT(p.max_pages_per_context, 0);
  CHECK_INT(p.max_uses_per_page, 12);
  CHECK_INT(p.close_timeout_ms, 5000);
  CHECK_INT(p.hook_ref, LC_POLICY_NO_HOOK);
  lc_policy_defaults(&p, -3);
  CHECK_INT(p.max_idle_pages, 0);
}

TEST(field_table) {
  const char *names[] = {"max_contexts",
                         "force",
                         "idle_ms",
                         "max_pages_per_browser",
                         "max_browser_rss_mb",
                         "max_browser_pss_mb",
                         "max_pages_per_context",
                         "max_uses_per_page",
                         "max_idle_pages",
                         "adaptive_idle_pages",
                         "close_timeout_ms",
                         "on_cleanup"};
  size_t n = 0;
  while (lc_policy_field_at(n)) n++;
  CHECK_INT(n, sizeof names / sizeof names[0]);
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    const lc_policy_field *f = lc_policy_field_find(names[i]);
    CHECK(f != NULL);
    if (f) CHECK_STR(f->name, names[i]);
  }
  CHECK(lc_policy_field_find("max_context") == NULL);
  CHECK(lc_policy_field_find("") == NULL);
  CHECK(lc_policy_field_find(NULL) == NULL);
  CHECK_INT(lc_policy_field_find("on_cleanup")->kind, LC_POLICY_FUNCTION);
  CHECK_INT(lc_policy_field_find("force")->kind, LC_POLICY_BOOL);
  /* What the hook's answer may set for one pass: max_contexts, force, idle_ms, nothing else. */
  int in_answer = 0;
  for (size_t i = 0; lc_policy_field_at(i); i++) in_answer += lc_policy_field_at(i)->in_answer;
  CHECK_INT(in_answer, 3);
  CHECK(lc_policy_field_find("max_contexts")->in_answer);
  CHECK(lc_policy_field_find("idle_ms")->in_answer);
  CHECK(lc_policy_field_find("force")->in_answer);
  CHECK(!lc_policy_field_find("max_idle_pages")->in_answer);
}

/* Each integer field takes its bounds and refuses one past each, leaving the policy as it was. */
TEST(int_bounds) {
  char err[200];
  for (size_t i = 0; lc_policy_field_at(i); i++) {
    const lc_policy_field *f = lc_policy_field_at(i);
    if (f->kind != LC_POLICY_INT) continue;
    lc_policy p, before;
    lc_policy_defaults(&p, 8);
    CHECK_INT(lc_policy_set_int(&p, f->name, f->lo, err, sizeof err), 0);
    CHECK_INT(lc_policy_set_int(&p, f->name, f->hi, err, sizeof err), 0);
    memcpy(&before, &p, sizeof p);
    CHECK_INT(lc_policy_set_int(&p, f->name, f->lo - 1, err, sizeof err), -1);
    CHECK(strncmp(err, "policy.", 7) == 0 && strstr(err, f->name) != NULL);
    CHECK_INT(lc_policy_set_int(&p, f->name, f->hi + 1, err, sizeof err), -1);
    CHECK(memcmp(&p, &before, sizeof p) == 0);
  }
}

TEST(set_stores_the_named_field_only) {
  char err[200];
  lc_policy p, q;
  lc_policy_defaults(&p, 8);
  memcpy(&q, &p, sizeof p);
  CHECK_INT(lc_policy_set_int(&p, "max_contexts", 1000000, err, sizeof err), 0);
  CHECK_INT(p.max_contexts, 1000000);
  q.max_contexts = 1000000;
  CHECK(memcmp(&p, &q, sizeof p) == 0);
  CHECK_INT(lc_policy_set_int(&p, "idle_ms", INT64_MAX / 2, err, sizeof err), 0);
  CHECK(p.idle_ms == INT64_MAX / 2); /* a 64-bit field keeps all its bits */
  CHECK_INT(lc_policy_set_int(&p, "max_pages_per_context", 7, err, sizeof err), 0);
  CHECK_INT(p.max_pages_per_context, 7);
  CHECK_INT(lc_policy_set_int(&p, "close_timeout_ms", 1, err, sizeof err), 0);
  CHECK_INT(p.close_timeout_ms, 1);
  CHECK_INT(lc_policy_set_bool(&p, "force", 42, err, sizeof err), 0);
  CHECK_INT(p.force, 1); /* any true value is stored as 1 */
  CHECK_INT(lc_policy_set_bool(&p, "adaptive_idle_pages", 0, err, sizeof err), 0);
  CHECK_INT(p.adaptive_idle_pages, 0);
  CHECK_INT(p.max_contexts, 1000000);
  CHECK_INT(p.hook_ref, LC_POLICY_NO_HOOK);
}

TEST(messages) {
  char err[200];
  lc_policy p;
  lc_policy_defaults(&p, 8);
  CHECK_INT(lc_policy_set_int(&p, "max_contexts", -1, err, sizeof err), -1);
  CHECK_STR(err, "policy.max_contexts must be an integer from 0 to 1000000 (got -1)");
  CHECK_INT(lc_policy_set_int(&p, "close_timeout_ms", 0, err, sizeof err), -1);
  CHECK_STR(err, "policy.close_timeout_ms must be an integer from 1 to 600000 (got 0)");
  CHECK_INT(lc_policy_set_int(&p, "max_context", 1, err, sizeof err), -1);
  CHECK_STR(err, "policy has an unknown field 'max_context'");
  CHECK_INT(lc_policy_set_bool(&p, "nope", 1, err, sizeof err), -1);
  CHECK_STR(err, "policy has an unknown field 'nope'");
  /* A field set as the wrong kind is refused, never stored through the wrong width. */
  CHECK_INT(lc_policy_set_int(&p, "force", 1, err, sizeof err), -1);
  CHECK(strstr(err, "engine bug") != NULL);
  CHECK_INT(lc_policy_set_bool(&p, "idle_ms", 1, err, sizeof err), -1);
  CHECK_INT(lc_policy_set_int(&p, "on_cleanup", 1, err, sizeof err), -1);
  CHECK_INT(p.force, 0);
  CHECK_INT(p.idle_ms, 30000);
  CHECK_INT(p.hook_ref, LC_POLICY_NO_HOOK);
  lc_policy_type_error(lc_policy_field_find("force"), "'yes'", err, sizeof err);
  CHECK_STR(err, "policy.force must be a boolean (got 'yes')");
  lc_policy_type_error(lc_policy_field_find("on_cleanup"), "42", err, sizeof err);
  CHECK_STR(err, "policy.on_cleanup must be a function (got 42)");
  lc_policy_type_error(lc_policy_field_find("max_idle_pages"), "a table", err, sizeof err);
  CHECK_STR(err, "policy.max_idle_pages must be an integer from 0 to 10000 (got a table)");
  /* A short buffer truncates, never overflows. */
  char tiny[8];
  CHECK_INT(lc_policy_set_int(&p, "max_contexts", -1, tiny, sizeof tiny), -1);
  CHECK_STR(tiny, "policy.");
}

TEST(decide_table) {
  lc_policy p;
  lc_policy_defaults(&p, 8);
  uint64_t ids[4] = {9, 9, 9, 9};
  lc_cleanup_params out;
  memset(&out, 0x5a, sizeof out);
  lc_policy_decide_table(&p, &out, ids);
  CHECK_INT(out.max_contexts, 4);
  CHECK_INT(out.force, 0);
  CHECK_INT(out.idle_ms, 30000);
  CHECK(out.close_ids == ids);
  CHECK_INT(out.n_close_ids, 0);
  /* Edge values pass through as they are: 0 contexts kept, idle expiry off. */
  char err[200];
  CHECK_INT(lc_policy_set_int(&p, "max_contexts", 0, err, sizeof err), 0);
  CHECK_INT(lc_policy_set_int(&p, "idle_ms", 0, err, sizeof err), 0);
  CHECK_INT(lc_policy_set_bool(&p, "force", 1, err, sizeof err), 0);
  lc_policy_decide_table(&p, &out, ids);
  CHECK_INT(out.max_contexts, 0);
  CHECK_INT(out.force, 1);
  CHECK_INT(out.idle_ms, 0);
  CHECK_INT(out.n_close_ids, 0);
  /* Knobs that are not the pass's (recycling, the idle pool) do not leak into it. */
  CHECK_INT(lc_policy_set_int(&p, "max_pages_per_browser", 3, err, sizeof err), 0);
  lc_cleanup_params again;
  lc_policy_decide_table(&p, &again, ids);
  CHECK(memcmp(&out, &again, sizeof out) == 0);
}

/* The hook's answer is applied as the table's values are: a bad override is refused and the
 * table's value stays; a good one replaces it for this pass only. */
TEST(answer_overrides) {
  char err[200];
  lc_policy p, pass;
  lc_policy_defaults(&p, 8);
  pass = p;
  CHECK_INT(lc_policy_set_int(&pass, "max_contexts", 1000001, err, sizeof err), -1);
  CHECK_INT(lc_policy_set_int(&pass, "idle_ms", -5, err, sizeof err), -1);
  CHECK_INT(lc_policy_set_int(&pass, "max_contexts", 1, err, sizeof err), 0);
  uint64_t ids[2];
  lc_cleanup_params out;
  lc_policy_decide_table(&pass, &out, ids);
  CHECK_INT(out.max_contexts, 1);
  CHECK_INT(out.idle_ms, 30000);
  lc_policy_decide_table(&p, &out, ids);
  CHECK_INT(out.max_contexts, 4);
}

TEST(close_list) {
  lc_policy p;
  lc_policy_defaults(&p, 8);
  uint64_t ids[3] = {0, 0, 0};
  lc_cleanup_params out;
  lc_policy_decide_table(&p, &out, ids);
  CHECK_INT(lc_policy_add_close(&out, ids, 3, 0), -1); /* ids start at 1 */
  CHECK_INT(lc_policy_add_close(&out, ids, 3, -7), -1);
  CHECK_INT(lc_policy_add_close(&out, ids, 3, INT64_MIN), -1);
  CHECK_INT(out.n_close_ids, 0);
  CHECK_INT(lc_policy_add_close(&out, ids, 3, 1), 0);
  CHECK_INT(lc_policy_add_close(&out, ids, 3, INT64_MAX), 0);
  CHECK_INT(lc_policy_add_close(&out, ids, 3, 5), 0);
  CHECK_INT(lc_policy_add_close(&out, ids, 3, 6), 1); /* full: waits for a later pass */
  CHECK_INT(out.n_close_ids, 3);
  CHECK(out.close_ids == ids);
  CHECK(ids[0] == 1 && ids[1] == (uint64_t)INT64_MAX && ids[2] == 5);
  /* Capacity 0: nothing fits, nothing is written. */
  uint64_t none[1] = {77};
  lc_policy_decide_table(&p, &out, none);
  CHECK_INT(lc_policy_add_close(&out, none, 0, 3), 1);
  CHECK_INT(out.n_close_ids, 0);
  CHECK(none[0] == 77);
  /* A new decision starts an empty list again. */
  lc_policy_decide_table(&p, &out, ids);
  CHECK_INT(out.n_close_ids, 0);
}

int main(void) {
  RUN(defaults);
  RUN(field_table);
  RUN(int_bounds);
  RUN(set_stores_the_named_field_only);
  RUN(messages);
  RUN(decide_table);
  RUN(answer_overrides);
  RUN(close_list);
  DONE();
}
