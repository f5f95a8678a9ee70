/* json.c: top-level JSON member scanning, surrogate repair and string escaping (see json.h). */
#include "json.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *skip_ws(const char *s, const char *end) {
  while (s < end && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')) s++;
  return s;
}

/* s points at the opening quote; returns the position after the closing quote. */
static const char *skip_string(const char *s, const char *end) {
  for (s++; s < end; s++) {
    if (*s == '\\') {
      s++;
      continue;
    }
    if (*s == '"') return s + 1;
  }
  return NULL;
}

const char *lc_json_skip(const char *s, const char *end) {
  s = skip_ws(s, end);
  if (s >= end) return NULL;
  if (*s == '"') return skip_string(s, end);
  if (*s == '{' || *s == '[') {
    int depth = 0;
    while (s < end) {
      char c = *s;
      if (c == '"') {
        s = skip_string(s, end);
        if (!s) return NULL;
        continue;
      }
      if (c == '{' || c == '[') depth++;
      if (c == '}' || c == ']') {
        if (--depth == 0) return s + 1;
      }
      s++;
    }
    return NULL;
  }
  /* number, true, false, null */
  const char *start = s;
  while (s < end && (isalnum((unsigned char)*s) || *s == '-' || *s == '+' || *s == '.')) s++;
  return s > start ? s : NULL;
}

int lc_json_member(const char *s, size_t n, const char *key, lc_json_span *out) {
  const char *end = s + n;
  size_t klen = strlen(key);
  out->p = NULL;
  out->n = 0;
  s = skip_ws(s, end);
  if (s >= end || *s != '{') return -2;
  s++;
  for (;;) {
    s = skip_ws(s, end);
    if (s >= end) return -2;
    if (*s == '}') return -1;
    if (*s != '"') return -2;
    const char *kstart = s + 1;
    const char *kend = skip_string(s, end);
    if (!kend) return -2;
    int match = (size_t)(kend - 1 - kstart) == klen && memcmp(kstart, key, klen) == 0;
    s = skip_ws(kend, end);
    if (s >= end || *s != ':') return -2;
    s = skip_ws(s + 1, end);
    const char *vend = lc_json_skip(s, end);
    if (!vend) return -2;
    if (match) {
      out->p = s;
      out->n = (size_t)(vend - s);
      return 0;
    }
    s = skip_ws(vend, end);
    if (s < end && *s == ',') {
      s++;
      continue;
    }
    if (s < end && *s == '}') return -1;
    return -2;
  }
}

int lc_json_each_member(const char *s, size_t n, lc_json_member_fn fn, void *ud) {
  const char *end = s + n;
  s = skip_ws(s, end);
  if (s >= end || *s != '{') return -2;
  s = skip_ws(s + 1, end);
  if (s < end && *s == '}') return skip_ws(s + 1, end) == end ? 0 : -2;
  for (;;) {
    if (s >= end || *s != '"') return -2;
    const char *kend = skip_string(s, end);
    if (!kend) return -2;
    lc_json_span key = {s, (size_t)(kend - s)};
    s = skip_ws(kend, end);
    if (s >= end || *s != ':') return -2;
    s = skip_ws(s + 1, end);
    const char *vend = lc_json_skip(s, end);
    if (!vend) return -2;
    lc_json_span val = {s, (size_t)(vend - s)};
    int rc = fn(ud, key, val);
    if (rc) return rc;
    s = skip_ws(vend, end);
    if (s < end && *s == ',') {
      s = skip_ws(s + 1, end);
      continue;
    }
    if (s < end && *s == '}') return skip_ws(s + 1, end) == end ? 0 : -2;
    return -2;
  }
}

int lc_json_each_element(const char *s, size_t n, lc_json_element_fn fn, void *ud) {
  const char *end = s + n;
  s = skip_ws(s, end);
  if (s >= end || *s != '[') return -2;
  s = skip_ws(s + 1, end);
  if (s < end && *s == ']') return skip_ws(s + 1, end) == end ? 0 : -2;
  for (size_t i = 0;; i++) {
    const char *vend = lc_json_skip(s, end);
    if (!vend) return -2;
    lc_json_span val = {s, (size_t)(vend - s)};
    int rc = fn(ud, i, val);
    if (rc) return rc;
    s = skip_ws(vend, end);
    if (s < end && *s == ',') {
      s = skip_ws(s + 1, end);
      continue;
    }
    if (s < end && *s == ']') return skip_ws(s + 1, end) == end ? 0 : -2;
    return -2;
  }
}

int lc_json_int(lc_json_span v, int64_t *out) {
  if (!v.p || v.n == 0 || v.n > 30) return -1;
  char tmp[32];
  memcpy(tmp, v.p, v.n);
  tmp[v.n] = 0;
  char *e;
  long long x = strtoll(tmp, &e, 10);
  if (*e != 0 && *e != '.') return -1;
  *out = x;
  return 0;
}

int lc_json_plain_string(lc_json_span v, char *out, size_t cap) {
  if (!v.p || v.n < 2 || v.p[0] != '"' || v.p[v.n - 1] != '"') return -1;
  size_t len = v.n - 2;
  if (len + 1 > cap || memchr(v.p + 1, '\\', len)) return -1;
  memcpy(out, v.p + 1, len);
  out[len] = 0;
  return 0;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static long read_u4(const char *p, const char *end) {
  if (end - p < 4) return -1;
  long v = 0;
  for (int i = 0; i < 4; i++) {
    int h = hexval((unsigned char)p[i]);
    if (h < 0) return -1;
    v = v * 16 + h;
  }
  return v;
}

static size_t put_utf8(char *o, unsigned long cp) {
  if (cp < 0x80) {
    o[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (char)(0xC0 | (cp >> 6));
    o[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | (cp >> 18));
  o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

char *lc_json_string_dup(lc_json_span v) {
  if (!v.p || v.n < 2 || v.p[0] != '"' || v.p[v.n - 1] != '"') return NULL;
  const char *s = v.p + 1, *end = v.p + v.n - 1;
  char *out = malloc(v.n + 1), *o = out;
  if (!out) return NULL;
  while (s < end) {
    if (*s != '\\') {
      *o++ = *s++;
      continue;
    }
    s++;
    if (s >= end) break;
    char c = *s++;
    switch (c) {
      case 'n':
        *o++ = '\n';
        break;
      case 't':
        *o++ = '\t';
        break;
      case 'r':
        *o++ = '\r';
        break;
      case 'b':
        *o++ = '\b';
        break;
      case 'f':
        *o++ = '\f';
        break;
      case 'u': {
        long cp = read_u4(s, end);
        if (cp < 0) {
          *o++ = '?';
          break;
        }
        s += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF && end - s >= 6 && s[0] == '\\' && s[1] == 'u') {
          long lo = read_u4(s + 2, end);
          if (lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            s += 6;
          }
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
        o += put_utf8(o, (unsigned long)cp); /* at most 4 bytes for 6 escaped: fits */
        break;
      }
      default:
        *o++ = c;
        break;
    }
  }
  *o = 0;
  return out;
}

size_t lc_json_fix_surrogates(char *s, size_t n) {
  size_t fixed = 0;
  char *end = s + n;
  for (char *p = s; p + 6 <= end; p++) {
    if (p[0] != '\\') continue;
    if (p[1] != 'u') {
      p++; /* skip the escaped character, so "\\u" is not read as an escape */
      continue;
    }
    long cp = read_u4(p + 2, end);
    if (cp < 0xD800 || cp > 0xDFFF) {
      p += 5;
      continue;
    }
    if (cp <= 0xDBFF && p + 12 <= end && p[6] == '\\' && p[7] == 'u') {
      long lo = read_u4(p + 8, end);
      if (lo >= 0xDC00 && lo <= 0xDFFF) {
        p += 11;
        continue;
      }
    }
    memcpy(p + 2, "FFFD", 4);
    fixed++;
    p += 5;
  }
  return fixed;
}

void lc_buf_init(lc_buf *b) { memset(b, 0, sizeof *b); }
void lc_buf_free(lc_buf *b) {
  free(b->p);
  lc_buf_init(b);
}

static int buf_reserve(lc_buf *b, size_t more) {
  if (b->oom) return -1;
  if (b->n + more + 1 <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->n + more + 1) cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) {
    b->oom = 1;
    return -1;
  }
  b->p = p;
  b->cap = cap;
  return 0;
}

void lc_buf_add(lc_buf *b, const char *s, size_t n) {
  if (buf_reserve(b, n) < 0) return;
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}

void lc_buf_puts(lc_buf *b, const char *s) { lc_buf_add(b, s, strlen(s)); }

void lc_buf_printf(lc_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int need = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (need < 0 || buf_reserve(b, (size_t)need) < 0) return;
  va_start(ap, fmt);
  vsnprintf(b->p + b->n, (size_t)need + 1, fmt, ap);
  va_end(ap);
  b->n += (size_t)need;
}

void lc_buf_json_string(lc_buf *b, const char *s) {
  lc_buf_add(b, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
      case '"':
        lc_buf_add(b, "\\\"", 2);
        break;
      case '\\':
        lc_buf_add(b, "\\\\", 2);
        break;
      case '\n':
        lc_buf_add(b, "\\n", 2);
        break;
      case '\r':
        lc_buf_add(b, "\\r", 2);
        break;
      case '\t':
        lc_buf_add(b, "\\t", 2);
        break;
      default:
        if (*p < 0x20)
          lc_buf_printf(b, "\\u%04x", *p);
        else
          lc_buf_add(b, (const char *)p, 1);
    }
  }
  lc_buf_add(b, "\"", 1);
}

const char *lc_buf_str(lc_buf *b) {
  if (b->oom) return NULL;
  if (!b->p) lc_buf_add(b, "", 0);
  return b->oom ? NULL : b->p;
}
