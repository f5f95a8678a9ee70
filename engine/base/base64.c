/* base64.c: base64 decoding (see base64.h). */
#include "base64.h"

static signed char value_of(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return (signed char)(c - 'A');
  if (c >= 'a' && c <= 'z') return (signed char)(c - 'a' + 26);
  if (c >= '0' && c <= '9') return (signed char)(c - '0' + 52);
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

int lc_base64_decode(const char *s, size_t n, char *out, size_t *out_len) {
  size_t o = 0;
  unsigned acc = 0;
  int bits = 0;
  *out_len = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '=' || c == '\n' || c == '\r') continue;
    signed char v = value_of(c);
    if (v < 0) {
      *out_len = o;
      return -1;
    }
    acc = (acc << 6) | (unsigned)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (char)((acc >> bits) & 0xFF);
    }
  }
  *out_len = o;
  return 0;
}
