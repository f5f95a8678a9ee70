/* json.h: the little JSON the C side needs, without decoding whole messages.
 * Owns: scanning a JSON object's top-level members to raw value spans (CDP routing needs only
 * id, method, sessionId; payloads go to Lua undecoded), rewriting lone UTF-16 surrogate
 * escapes that lua-cjson rejects, and escaping strings for commands the engine builds.
 * Decoding of payloads is Lua's job (lua-cjson), once. */
#ifndef LC_JSON_H
#define LC_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef struct lc_json_span {
  const char *p; /* start of the raw value (a string includes its quotes); NULL if absent */
  size_t n;
} lc_json_span;

/* Find the raw value of top-level member `key` in the object `s[0..n)`. Returns 0 and
 * fills *out, -1 if absent, -2 if the text is not a well-formed object as far as scanned. */
int lc_json_member(const char *s, size_t n, const char *key, lc_json_span *out);

/* Skip one JSON value starting at s (after whitespace); returns the position after it, or
 * NULL when malformed or truncated before end. */
const char *lc_json_skip(const char *s, const char *end);

/* Call fn for each top-level member of the object (key span with its quotes, raw value
 * span) or each element of the array in s[0..n), which must hold that one value and nothing
 * else but whitespace. Returns 0, fn's nonzero answer (iteration stops), or -2 when the text
 * is not a well-formed object/array as far as scanned. (A scanner over lc_json_skip: the
 * values themselves are not decoded.) */
typedef int (*lc_json_member_fn)(void *ud, lc_json_span key, lc_json_span val);
typedef int (*lc_json_element_fn)(void *ud, size_t index, lc_json_span val);
int lc_json_each_member(const char *s, size_t n, lc_json_member_fn fn, void *ud);
int lc_json_each_element(const char *s, size_t n, lc_json_element_fn fn, void *ud);

/* A span holding a JSON integer as int64. Returns 0 or -1. */
int lc_json_int(lc_json_span v, int64_t *out);
/* Copy a JSON string span without its quotes, if it has no escapes; returns 0, or -1 when
 * it is not a string, has escapes, or does not fit (`cap` includes the NUL). */
int lc_json_plain_string(lc_json_span v, char *out, size_t cap);
/* Decode a JSON string span (escapes and all, UTF-8 out) into a malloc'ed string; NULL when it
 * is not a string. */
char *lc_json_string_dup(lc_json_span v);

/* Rewrite every \uD800-\uDFFF escape that is not part of a valid pair to \uFFFD, in place
 * (same length). Returns how many were rewritten. */
size_t lc_json_fix_surrogates(char *s, size_t n);

/* Append `str` as a JSON string literal (with quotes) to a growing buffer. */
typedef struct lc_buf {
  char *p;
  size_t n, cap;
  int oom;
} lc_buf;
void lc_buf_init(lc_buf *b);
void lc_buf_free(lc_buf *b);
void lc_buf_add(lc_buf *b, const char *s, size_t n);
void lc_buf_puts(lc_buf *b, const char *s);
void lc_buf_printf(lc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lc_buf_json_string(lc_buf *b, const char *s);
/* NUL-terminated contents, or NULL after an allocation failure. */
const char *lc_buf_str(lc_buf *b);

#endif
