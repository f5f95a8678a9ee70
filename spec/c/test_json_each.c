/* test_json_each.c: lc_json_each_member and lc_json_each_element (base/json.c), the scanners
 * luacrawl serve reads request bodies with: every member and element once, in order, raw
 * spans; malformed text and trailing garbage refused. */
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "test.h"

typedef struct acc {
  char text[512];
  int n;
  int stop_at;
} acc;

static int on_member(void *ud, lc_json_span k, lc_json_span v) {
  acc *a = ud;
  a->n++;
  size_t len = strlen(a->text);
  snprintf(a->text + len, sizeof a->text - len, "%.*s=%.*s;", (int)k.n, k.p, (int)v.n, v.p);
  return a->stop_at && a->n == a->stop_at ? 7 : 0;
}

static int on_element(void *ud, size_t i, lc_json_span v) {
  acc *a = ud;
  a->n++;
  size_t len = strlen(a->text);
  snprintf(a->text + len, sizeof a->text - len, "%zu:%.*s;", i, (int)v.n, v.p);
  return 0;
}

static int members(const char *s, acc *a) { return lc_json_each_member(s, strlen(s), on_member, a); }
static int elements(const char *s, acc *a) { return lc_json_each_element(s, strlen(s), on_element, a); }

TEST(members_in_order_with_raw_values) {
  acc a = {0};
  CHECK_INT(members(" {\"a\": 1, \"b\":\"x\\\"y\" ,\"c\":{\"d\":[1,2]}, \"e\":null} ", &a), 0);
  CHECK_INT(a.n, 4);
  CHECK_STR(a.text, "\"a\"=1;\"b\"=\"x\\\"y\";\"c\"={\"d\":[1,2]};\"e\"=null;");
}

TEST(empty_object_and_array) {
  acc a = {0};
  CHECK_INT(members("{}", &a), 0);
  CHECK_INT(elements(" [ ] ", &a), 0);
  CHECK_INT(a.n, 0);
}

TEST(elements_in_order) {
  acc a = {0};
  CHECK_INT(elements("[\"u1\", 2, {\"k\":[3]}]", &a), 0);
  CHECK_STR(a.text, "0:\"u1\";1:2;2:{\"k\":[3]};");
}

TEST(malformed_refused) {
  acc a = {0};
  CHECK_INT(members("{\"a\":1,}", &a), -2);
  CHECK_INT(members("{\"a\" 1}", &a), -2);
  CHECK_INT(members("{\"a\":1} x", &a), -2);
  CHECK_INT(members("[1]", &a), -2);
  CHECK_INT(members("{\"a\":", &a), -2);
  CHECK_INT(elements("[1,,2]", &a), -2);
  CHECK_INT(elements("{}", &a), -2);
  CHECK_INT(elements("[1] [2]", &a), -2);
}

TEST(callback_stops_iteration) {
  acc a = {.stop_at = 2};
  CHECK_INT(members("{\"a\":1,\"b\":2,\"c\":3}", &a), 7);
  CHECK_INT(a.n, 2);
}

int main(void) {
  RUN(members_in_order_with_raw_values);
  RUN(empty_object_and_array);
  RUN(elements_in_order);
  RUN(malformed_refused);
  RUN(callback_stops_iteration);
  DONE();
}
