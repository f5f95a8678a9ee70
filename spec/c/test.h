/* test.h: a minimal unit-test harness for luacrawl's C tests.
 * Each test binary defines tests with TEST(name), lists them in main with RUN(name),
 * and ends with DONE(), which prints "N passed, M failed" and sets the exit code. */
#ifndef LC_TEST_H
#define LC_TEST_H

#include <stdio.h>
#include <string.h>

static int t_passed, t_failed, t_current_failed;

#define TEST(name) static void name(void)

#define CHECK(cond)                                                              \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
      t_current_failed = 1;                                                      \
    }                                                                            \
  } while (0)

#define CHECK_INT(a, b)                                                                         \
  do {                                                                                          \
    long long a_ = (long long)(a), b_ = (long long)(b);                                         \
    if (a_ != b_) {                                                                             \
      fprintf(stderr, "  %s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, #a, a_, \
              #b, b_);                                                                          \
      t_current_failed = 1;                                                                     \
    }                                                                                           \
  } while (0)

#define CHECK_STR(a, b)                                                                   \
  do {                                                                                    \
    const char *a_ = (a), *b_ = (b);                                                      \
    if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                              \
      fprintf(stderr, "  %s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a, \
              a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                    \
      t_current_failed = 1;                                                               \
    }                                                                                     \
  } while (0)

#define RUN(name)                          \
  do {                                     \
    t_current_failed = 0;                  \
    name();                                \
    if (t_current_failed) {                \
      t_failed++;                          \
      fprintf(stderr, "FAIL %s\n", #name); \
    } else {                               \
      t_passed++;                          \
      fprintf(stderr, "ok   %s\n", #name); \
    }                                      \
  } while (0)

#define DONE()                                            \
  do {                                                    \
    printf("%d passed, %d failed\n", t_passed, t_failed); \
    return t_failed ? 1 : 0;                              \
  } while (0)

#endif
