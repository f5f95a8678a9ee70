/* test_window.c: unit tests for engine/window.c (events in a sliding time window). */
#include "test.h"
#include "window.h"

TEST(counts_within_span) {
  lc_window w = {0};
  CHECK_INT(lc_window_count(&w, 0, 60000), 0);
  for (int i = 0; i < 8; i++) CHECK_INT(lc_window_note(&w, 1000 + i * 1000, 60000), i + 1);
  CHECK_INT(lc_window_note(&w, 9000, 60000), 9);   /* the 9th within 60 s */
  CHECK_INT(lc_window_count(&w, 61000, 60000), 8); /* the one at 1000 s left at 61000 */
  CHECK_INT(lc_window_count(&w, 68999, 60000), 1);
  CHECK_INT(lc_window_count(&w, 69000, 60000), 0);
}

/* Crashes spread out (one hostile page, its retries backing off) never pile up. */
TEST(spread_out_events_stay_few) {
  lc_window w = {0};
  int64_t t = 0, backoff = 250;
  int worst = 0;
  for (int i = 0; i < 40; i++) {
    int n = lc_window_note(&w, t, 60000);
    if (n > worst) worst = n;
    t += backoff + 1000;
    if (backoff < 30000) backoff *= 2;
  }
  CHECK(worst <= 8);
  CHECK(worst >= 3);
}

TEST(saturates_at_capacity) {
  lc_window w = {0};
  for (int i = 0; i < LC_WINDOW_CAP + 10; i++) lc_window_note(&w, i, 1000000);
  CHECK_INT(lc_window_count(&w, LC_WINDOW_CAP + 10, 1000000), LC_WINDOW_CAP);
  /* the ones kept are the newest */
  CHECK_INT(lc_window_count(&w, 1000000 + 10, 1000000), LC_WINDOW_CAP - 1);
}

TEST(same_time_events) {
  lc_window w = {0};
  for (int i = 0; i < 5; i++) lc_window_note(&w, 500, 100);
  CHECK_INT(lc_window_count(&w, 599, 100), 5);
  CHECK_INT(lc_window_count(&w, 600, 100), 0);
}

int main(void) {
  RUN(counts_within_span);
  RUN(spread_out_events_stay_few);
  RUN(saturates_at_capacity);
  RUN(same_time_events);
  DONE();
}
