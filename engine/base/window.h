/* window.h: how many events happened within the last `span` ms (a sliding time window).
 *
 * Owns: nothing but the times it keeps. Pure: time is passed in, so tests control the clock.
 * Used for browser crashes: more than N within a window is a crash loop that ends the job;
 * crashes spread out (one hostile page now and then) are not.
 */
#ifndef LC_WINDOW_H
#define LC_WINDOW_H

#include <stdint.h>

#define LC_WINDOW_CAP 32 /* events kept; a count saturates here */

typedef struct lc_window {
  int64_t t[LC_WINDOW_CAP]; /* ring of event times, oldest at `head` */
  int head, n;
} lc_window;

/* Record an event at `now` and return how many happened in (now - span, now], this one
 * included (at most LC_WINDOW_CAP). Times must not go backwards; span > 0. */
int lc_window_note(lc_window *w, int64_t now, int64_t span);

/* Events in (now - span, now] without recording one. */
int lc_window_count(lc_window *w, int64_t now, int64_t span);

#endif
