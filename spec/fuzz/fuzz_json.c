/* fuzz_json.c: the JSON scanner of engine/json.h on raw CDP messages, the way cdp.c reads
 * them: surrogate repair in place, then top-level members, nested error members, integers and
 * strings. Properties: repair keeps the length, only rewrites hex digits to "FFFD" and is
 * idempotent; every member span lies inside the message and is exactly one value
 * (lc_json_skip agrees); decoded strings of ASCII text are valid UTF-8 with no surrogates; and
 * escaping any C string with lc_buf_json_string then decoding it gives the string back. */
#include <ctype.h>

#include "fuzz.h"
#include "json.h"

/* 1 if s[0..n) is valid UTF-8 without surrogate code points or overlong forms. */
static int valid_utf8(const unsigned char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    unsigned c = s[i];
    size_t k;
    unsigned long cp, min;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      k = 1, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      k = 2, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      k = 3, cp = c & 0x07, min = 0x10000;
    } else {
      return 0;
    }
    for (size_t j = 1; j <= k; j++) {
      if (i + j >= n || (s[i + j] & 0xC0) != 0x80) return 0;
      cp = cp << 6 | (s[i + j] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    i += k + 1;
  }
  return 1;
}

/* Checks one member span of the object text[0..n) and what cdp.c would do with it. */
static void check_span(const char *text, size_t n, lc_json_span v) {
  FUZZ_CHECK(v.p != NULL && v.n > 0);
  FUZZ_CHECK(v.p >= text && v.p + v.n <= text + n);
  FUZZ_CHECK(lc_json_skip(v.p, v.p + v.n) == v.p + v.n);
  int64_t i;
  (void)lc_json_int(v, &i);
  char plain[128];
  if (lc_json_plain_string(v, plain, sizeof plain) == 0) {
    FUZZ_CHECK(strlen(plain) <= v.n - 2);
    FUZZ_CHECK(memchr(v.p + 1, '\\', v.n - 2) == NULL);
  }
  char *dup = lc_json_string_dup(v);
  if (v.p[0] == '"') FUZZ_CHECK(dup != NULL); /* a span from member ends in its quote */
  if (dup) {
    int ascii = 1;
    for (size_t k = 0; k < v.n; k++) ascii &= (unsigned char)v.p[k] < 0x80;
    /* strlen stops at an escaped NUL: check the bytes up to there */
    if (ascii) FUZZ_CHECK(valid_utf8((const unsigned char *)dup, strlen(dup)));
    FUZZ_CHECK(strlen(dup) <= v.n);
    free(dup);
  }
}

static void scan_message(const char *msg, size_t n) {
  static const char *const keys[] = {"id", "method", "sessionId", "params", "result", "error"};
  for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
    lc_json_span v;
    int rc = lc_json_member(msg, n, keys[k], &v);
    FUZZ_CHECK(rc == 0 || rc == -1 || rc == -2);
    if (rc != 0) {
      FUZZ_CHECK(v.p == NULL);
      continue;
    }
    check_span(msg, n, v);
    if (v.p[0] == '{') { /* as cdp.c reads error.message and error.data */
      lc_json_span inner;
      if (lc_json_member(v.p, v.n, "message", &inner) == 0) check_span(v.p, v.n, inner);
      if (lc_json_member(v.p, v.n, "data", &inner) == 0) check_span(v.p, v.n, inner);
    }
  }
}

/* Escape the input as a C string, wrap it in an object, and read it back. */
static void round_trip(const uint8_t *data, size_t size) {
  char *s = fuzz_strndup(data, size); /* stops at the first NUL, as C strings do */
  lc_buf b;
  lc_buf_init(&b);
  lc_buf_puts(&b, "{\"k\":");
  lc_buf_json_string(&b, s);
  lc_buf_puts(&b, "}");
  const char *obj = lc_buf_str(&b);
  FUZZ_CHECK(obj != NULL);
  lc_json_span v;
  FUZZ_CHECK(lc_json_member(obj, b.n, "k", &v) == 0);
  FUZZ_CHECK(v.p + v.n == obj + b.n - 1);
  char *back = lc_json_string_dup(v);
  FUZZ_CHECK(back != NULL && strcmp(back, s) == 0);
  free(back);
  lc_buf_free(&b);
  free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* A writable, NUL-terminated message, as ws.c hands it to cdp.c. */
  char *msg = fuzz_strndup(data, size);
  size_t fixed = lc_json_fix_surrogates(msg, size);
  FUZZ_CHECK(fixed <= size / 6);
  size_t changed = 0;
  for (size_t i = 0; i < size; i++) {
    if (msg[i] == (char)data[i]) continue;
    FUZZ_CHECK(isxdigit(data[i]) && strchr("FD", msg[i]) != NULL);
    changed++;
  }
  FUZZ_CHECK(changed <= 4 * fixed);
  FUZZ_CHECK(lc_json_fix_surrogates(msg, size) == 0); /* idempotent */
  scan_message(msg, size);
  free(msg);
  round_trip(data, size);
  return 0;
}
