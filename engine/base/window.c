/* window.c: events in a sliding time window (see window.h). */
#include "window.h"

/* Forget the events at or before now - span. */
static void expire(lc_window *w, int64_t now, int64_t span) {
  while (w->n > 0 && w->t[w->head] <= now - span) {
    w->head = (w->head + 1) % LC_WINDOW_CAP;
    w->n--;
  }
}

int lc_window_count(lc_window *w, int64_t now, int64_t span) {
  expire(w, now, span);
  return w->n;
}

int lc_window_note(lc_window *w, int64_t now, int64_t span) {
  expire(w, now, span);
  if (w->n == LC_WINDOW_CAP) { /* saturated: the oldest makes room */
    w->head = (w->head + 1) % LC_WINDOW_CAP;
    w->n--;
  }
  w->t[(w->head + w->n) % LC_WINDOW_CAP] = now;
  w->n++;
  return w->n;
}
