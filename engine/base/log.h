/* log.h: leveled logging to stderr, shared by every module.
 * Owns: the log level and the stderr line discipline (a live progress line on a terminal is
 * cleared before a log line is written, so the two never interleave). */
#ifndef LC_LOG_H
#define LC_LOG_H

enum { LC_LOG_ERROR = 0, LC_LOG_WARN = 1, LC_LOG_INFO = 2, LC_LOG_DEBUG = 3 };

void lc_log_set_level(int level);
int lc_log_level(void);
/* Registers a function that clears the live progress line (NULL for none). */
void lc_log_set_clear_hook(void (*clear)(void));
/* The tag lines carry while a job's work runs ("job 2"), or NULL for none; returns the
 * previous one, which the caller puts back. The string must outlive its use. */
const char *lc_log_set_tag(const char *tag);
void lc_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define lc_error(...) lc_log(LC_LOG_ERROR, __VA_ARGS__)
#define lc_warn(...) lc_log(LC_LOG_WARN, __VA_ARGS__)
#define lc_info(...) lc_log(LC_LOG_INFO, __VA_ARGS__)
#define lc_debug(...) lc_log(LC_LOG_DEBUG, __VA_ARGS__)

#endif
