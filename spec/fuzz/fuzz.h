/* fuzz.h: what every fuzz target shares: the libFuzzer entry point's prototype, a property
 * check that aborts (libFuzzer and the corpus replay both report an abort as a failure), and a
 * reader that turns the input bytes into operations. Header-only: each target is one file. */
#ifndef LC_FUZZ_H
#define LC_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property of the code under test: a failure is a finding, like a crash. */
#define FUZZ_CHECK(cond)                                                          \
  do {                                                                            \
    if (!(cond)) {                                                                \
      fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                    \
    }                                                                             \
  } while (0)

/* The input as a stream of choices; reads past the end give zeros (and `fuzz_done` says so). */
typedef struct fuzz_in {
  const uint8_t *p;
  size_t n, at;
} fuzz_in;

static inline int fuzz_done(const fuzz_in *in) { return in->at >= in->n; }

static inline uint8_t fuzz_u8(fuzz_in *in) { return in->at < in->n ? in->p[in->at++] : 0; }

static inline uint16_t fuzz_u16(fuzz_in *in) {
  uint16_t hi = fuzz_u8(in);
  return (uint16_t)(hi << 8 | fuzz_u8(in));
}

/* Up to `max` raw bytes (the count comes from the input); *n gets how many. */
static inline const uint8_t *fuzz_bytes(fuzz_in *in, size_t max, size_t *n) {
  size_t want = fuzz_u8(in);
  if (want > max) want = max;
  size_t left = in->n - (in->at < in->n ? in->at : in->n);
  if (want > left) want = left;
  const uint8_t *p = in->p + (in->at < in->n ? in->at : in->n);
  in->at += want;
  *n = want;
  return p;
}

/* A malloc'ed NUL-terminated copy of data[0..n) (the code under test wants C strings, and
 * ASan then sees any read past the end). */
static inline char *fuzz_strndup(const uint8_t *data, size_t n) {
  char *s = malloc(n + 1);
  if (!s) abort();
  memcpy(s, data, n);
  s[n] = 0;
  return s;
}

#endif
