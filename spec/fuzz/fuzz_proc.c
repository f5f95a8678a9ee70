/* fuzz_proc.c: /proc/<pid>/stat parsing (lc_proc_parse_stat, engine/proc.h).
 *
 * First byte even: the rest of the input is the file's text (any bytes; parsed up to its first
 * NUL, as read_small_file hands it over) and must not crash or read past its end. First byte
 * odd: the input chooses a comm (any bytes but NUL: spaces, ')' and "(x) R 1" included, as a
 * process can name itself with prctl) and the numeric fields; the line is written the way the
 * kernel writes it, and the parse must give back exactly those fields. */
#include <sys/types.h>

#include "fuzz.h"
#include "proc.h"

static long long pick(fuzz_in *in, int may_be_negative) {
  long long v = 0;
  for (int i = 0; i < 4; i++) v = v << 8 | fuzz_u8(in);
  if (fuzz_u8(in) & 1) v = v << 31 | v; /* sometimes a 63-bit value */
  if (may_be_negative && (fuzz_u8(in) & 1)) v = -v;
  return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  lc_proc_stat st;
  if (!(data[0] & 1)) {
    const uint8_t *nul = memchr(data + 1, 0, size - 1);
    size_t n = nul ? (size_t)(nul - data - 1) : size - 1;
    char *text = fuzz_strndup(data + 1, n); /* exactly n + 1 bytes */
    int rc = lc_proc_parse_stat(text, &st);
    FUZZ_CHECK(rc == 0 || rc == -1);
    free(text);
    return 0;
  }
  fuzz_in in = {data, size, 1};
  size_t clen;
  const uint8_t *craw = fuzz_bytes(&in, 64, &clen);
  char comm[65];
  for (size_t i = 0; i < clen; i++) comm[i] = craw[i] ? (char)craw[i] : ')';
  comm[clen] = 0;
  static const char states[] = "RSDZTtXxKWIP";
  char state = states[fuzz_u8(&in) % (sizeof states - 1)];
  long long f[53] = {0}; /* f[k]: field k (1-based) */
  for (int k = 4; k <= 52; k++) f[k] = pick(&in, k == 18 || k == 19 || (k >= 5 && k <= 8));
  f[4] = f[4] & 0x7fffffff; /* pid_t fields */
  f[5] = (int)f[5];
  char line[2048];
  int w = snprintf(line, sizeof line, "%d (%s) %c", 12345, comm, state);
  for (int k = 4; k <= 52; k++) w += snprintf(line + w, sizeof line - (size_t)w, " %lld", f[k]);
  snprintf(line + w, sizeof line - (size_t)w, "\n");
  memset(&st, 0, sizeof st);
  FUZZ_CHECK(lc_proc_parse_stat(line, &st) == 0);
  FUZZ_CHECK(st.state == state);
  FUZZ_CHECK(st.ppid == (pid_t)f[4] && st.pgrp == (pid_t)f[5]);
  FUZZ_CHECK(st.utime == f[14] && st.stime == f[15] && st.cutime == f[16] && st.cstime == f[17]);
  FUZZ_CHECK(st.rss_pages == f[24]);
  return 0;
}
