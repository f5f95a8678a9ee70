/* log.c: leveled logging to stderr (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>

static int log_level = LC_LOG_INFO;
static void (*clear_hook)(void);
static const char *log_tag; /* the job whose work is running, or NULL */

void lc_log_set_level(int level) { log_level = level; }
int lc_log_level(void) { return log_level; }
void lc_log_set_clear_hook(void (*clear)(void)) { clear_hook = clear; }
const char *lc_log_set_tag(const char *tag) {
  const char *was = log_tag;
  log_tag = tag;
  return was;
}

void lc_log(int level, const char *fmt, ...) {
  static const char *const names[] = {"error", "warn", "info", "debug"};
  if (level > log_level) return;
  if (clear_hook) clear_hook();
  char line[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  const char *name = names[level < 0 ? 0 : level > 3 ? 3 : level];
  if (log_tag)
    fprintf(stderr, "luacrawl: %s: [%s] %s\n", name, log_tag, line);
  else
    fprintf(stderr, "luacrawl: %s: %s\n", name, line);
}
