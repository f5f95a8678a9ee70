/* test_rfront_name.c: unit tests for the one rule of a crawl's name
 * (lc_rfront_check_crawl_name, engine/dist/rfrontier.c) and for lc_rfront_parse, which applies
 * it to ?crawl=NAME. Pure logic: no Redis, no loop. */
#include <stdio.h>
#include <string.h>

#include "rfrontier.h"
#include "test.h"

/* The rule is named in every refusal, so a user learns what a name may be. */
#define RULE "letters, digits, _ . -; 1 to 100 characters"

static char name100[101], name101[102];

static void make_long_names(void) {
  memset(name100, 'a', 100);
  name100[100] = 0;
  memset(name101, 'b', 101);
  name101[101] = 0;
}

TEST(good_names_pass) {
  const char *good[] = {"a", "crawl", "Crawl-2026.12_03", "0", "...", "-_-", "A.b-C_d9"};
  char err[300];
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
    strcpy(err, "untouched");
    CHECK_INT(lc_rfront_check_crawl_name(good[i], err, sizeof err), 0);
    CHECK_STR(err, "untouched");
  }
  CHECK_INT(lc_rfront_check_crawl_name(name100, err, sizeof err), 0);
}

TEST(empty_null_and_too_long_fail_naming_the_rule) {
  char err[300];
  CHECK_INT(lc_rfront_check_crawl_name("", err, sizeof err), -1);
  CHECK_STR(err, "the crawl name is empty (" RULE ")");
  CHECK_INT(lc_rfront_check_crawl_name(NULL, err, sizeof err), -1);
  CHECK_STR(err, "the crawl name is empty (" RULE ")");
  CHECK_INT(lc_rfront_check_crawl_name(name101, err, sizeof err), -1);
  CHECK_STR(err, "the crawl name is 101 characters long (" RULE ")");
}

TEST(each_forbidden_character_fails_and_is_named) {
  const char *forbidden = "&?=#% /{}!:;,'\"\\+*@[]";
  char err[300], name[8], want[300];
  for (const char *c = forbidden; *c; c++) {
    snprintf(name, sizeof name, "ab%cc", *c);
    CHECK_INT(lc_rfront_check_crawl_name(name, err, sizeof err), -1);
    snprintf(want, sizeof want, "the crawl name '%s' has '%c' (" RULE ")", name, *c);
    CHECK_STR(err, want);
  }
  /* Bytes that do not print are named by value (a UTF-8 letter, a tab, a newline). */
  CHECK_INT(lc_rfront_check_crawl_name("caf\xc3\xa9", err, sizeof err), -1);
  CHECK(strstr(err, "has byte 0xc3 (" RULE ")") != NULL);
  CHECK_INT(lc_rfront_check_crawl_name("a\tb", err, sizeof err), -1);
  CHECK(strstr(err, "has byte 0x09") != NULL);
  CHECK_INT(lc_rfront_check_crawl_name("a\n", err, sizeof err), -1);
  CHECK(strstr(err, "has byte 0x0a") != NULL);
}

TEST(an_err_buffer_too_small_is_cut_not_overrun) {
  char err[8];
  CHECK_INT(lc_rfront_check_crawl_name("a b", err, sizeof err), -1);
  CHECK_STR(err, "the cra");
}

TEST(parse_applies_the_rule_to_the_decoded_name) {
  lc_rfront_addr a;
  char err[600], url[400];
  CHECK_INT(lc_rfront_parse("redis://127.0.0.1:6390/2?crawl=Shop-1.x_y", &a, err, sizeof err), 0);
  CHECK_STR(a.crawl, "Shop-1.x_y");
  CHECK_STR(a.prefix, "lc:{Shop-1.x_y}:");
  CHECK_INT(a.port, 6390);
  CHECK_INT(a.db, 2);
  snprintf(url, sizeof url, "redis://h/0?crawl=%s", name100);
  CHECK_INT(lc_rfront_parse(url, &a, err, sizeof err), 0);
  CHECK_STR(a.crawl, name100);

  /* The query is decoded first: %26 is '&', %7B is '{', + is a space. */
  CHECK_INT(lc_rfront_parse("redis://h/0?crawl=a%26b", &a, err, sizeof err), -1);
  CHECK_STR(err, "'redis://h/0?crawl=a%26b': the crawl name 'a&b' has '&' (" RULE ")");
  CHECK_INT(lc_rfront_parse("redis://h/0?crawl=a%7Bb", &a, err, sizeof err), -1);
  CHECK(strstr(err, "has '{' (" RULE ")") != NULL);
  CHECK_INT(lc_rfront_parse("redis://h/0?crawl=a+b", &a, err, sizeof err), -1);
  CHECK(strstr(err, "the crawl name 'a b' has ' ' (" RULE ")") != NULL);

  /* Longer than the address holds: the length is the given one, not a truncated copy's. */
  snprintf(url, sizeof url, "redis://h/0?crawl=%s%s", name101, name101);
  CHECK_INT(lc_rfront_parse(url, &a, err, sizeof err), -1);
  CHECK(strstr(err, "the crawl name is 202 characters long (" RULE ")") != NULL);

  CHECK_INT(lc_rfront_parse("redis://h/0?crawl=", &a, err, sizeof err), -1);
  CHECK_STR(err, "'redis://h/0?crawl=': the crawl name is empty (" RULE ")");
  CHECK_INT(lc_rfront_parse("redis://h/0?crawl", &a, err, sizeof err), -1);
  CHECK(strstr(err, "the crawl name is empty") != NULL);
  CHECK_INT(lc_rfront_parse("redis://h/0", &a, err, sizeof err), -1);
  CHECK_STR(err, "'redis://h/0' needs ?crawl=NAME (" RULE ")");
  CHECK_INT(lc_rfront_parse("redis://h/0?lease_ms=1000", &a, err, sizeof err), -1);
  CHECK_STR(err, "'redis://h/0?lease_ms=1000' needs ?crawl=NAME (" RULE ")");
}

int main(void) {
  make_long_names();
  RUN(good_names_pass);
  RUN(empty_null_and_too_long_fail_naming_the_rule);
  RUN(each_forbidden_character_fails_and_is_named);
  RUN(an_err_buffer_too_small_is_cut_not_overrun);
  RUN(parse_applies_the_rule_to_the_decoded_name);
  DONE();
}
