/* fuzz_base64.c: base64 decoding (engine/base64.h), the C decoder behind core.b64decode
 * (page:screenshot, response bodies). Properties: decoding any text writes at most
 * LC_BASE64_DECODED_MAX(n) bytes (the buffer is exactly that size, so ASan sees an overrun);
 * it fails exactly when the text holds a byte outside the alphabet, '=', CR and LF; and
 * encoding the input (with a reference encoder here, with line breaks every 76 characters as
 * MIME does) then decoding gives the input back. */
#include "base64.h"
#include "fuzz.h"

static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard padded base64 of data[0..n), a CRLF after every 76 characters when `wrap`. */
static char *encode(const uint8_t *data, size_t n, int wrap, size_t *len) {
  char *o = malloc((n + 2) / 3 * 4 * 2 + 3);
  if (!o) abort();
  size_t k = 0, col = 0;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)data[i] << 16;
    if (i + 1 < n) v |= (unsigned)data[i + 1] << 8;
    if (i + 2 < n) v |= data[i + 2];
    char q[4] = {abc[v >> 18 & 63], abc[v >> 12 & 63], i + 1 < n ? abc[v >> 6 & 63] : '=',
                 i + 2 < n ? abc[v & 63] : '='};
    for (int j = 0; j < 4; j++) {
      o[k++] = q[j];
      if (wrap && ++col == 76) {
        o[k++] = '\r';
        o[k++] = '\n';
        col = 0;
      }
    }
  }
  *len = k;
  return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* Any text. */
  char *text = malloc(size ? size : 1);
  char *out = malloc(LC_BASE64_DECODED_MAX(size));
  if (!text || !out) abort();
  memcpy(text, data, size);
  size_t olen = 12345;
  int rc = lc_base64_decode(text, size, out, &olen);
  int foreign = 0;
  for (size_t i = 0; i < size; i++)
    foreign |= !memchr(abc, data[i], 64) && data[i] != '=' && data[i] != '\r' && data[i] != '\n';
  FUZZ_CHECK(rc == (foreign ? -1 : 0));
  FUZZ_CHECK(olen <= LC_BASE64_DECODED_MAX(size));
  free(out);
  free(text);

  /* The input as bytes, round trip. */
  for (int wrap = 0; wrap <= 1; wrap++) {
    size_t elen;
    char *enc = encode(data, size, wrap, &elen);
    char *back = malloc(LC_BASE64_DECODED_MAX(elen));
    if (!back) abort();
    FUZZ_CHECK(lc_base64_decode(enc, elen, back, &olen) == 0);
    FUZZ_CHECK(olen == size && memcmp(back, data, size) == 0);
    free(back);
    free(enc);
  }
  return 0;
}
