/* base64.h: base64 decoding (RFC 4648 alphabet), for CDP payloads such as response bodies
 * and screenshots.
 * Owns nothing: a pure function over caller buffers. */
#ifndef LC_BASE64_H
#define LC_BASE64_H

#include <stddef.h>

/* The most bytes lc_base64_decode can write for n bytes of text. */
#define LC_BASE64_DECODED_MAX(n) ((n) / 4 * 3 + 3)

/* Decode s[0..n) into out, which has room for LC_BASE64_DECODED_MAX(n) bytes; *out_len gets
 * the decoded length. Lenient as Chromium's output needs: '=', CR and LF are skipped wherever
 * they are, and bits of an incomplete last group are dropped. Returns 0, or -1 on a byte
 * outside the alphabet (out then holds a partial result). */
int lc_base64_decode(const char *s, size_t n, char *out, size_t *out_len);

#endif
