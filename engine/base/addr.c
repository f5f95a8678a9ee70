/* addr.c: the class of a URL's host address (see addr.h). */
#include "addr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdint.h>
#include <string.h>

/* An IPv4 address (host order) by range. */
static int class_v4(uint32_t a) {
  uint32_t b0 = a >> 24, b1 = (a >> 16) & 0xff;
  if (b0 == 127) return LC_ADDR_LOOPBACK;
  if (b0 == 10 || (b0 == 172 && (b1 & 0xf0) == 16) || (b0 == 192 && b1 == 168) ||
      (b0 == 100 && (b1 & 0xc0) == 64))
    return LC_ADDR_PRIVATE;
  if (b0 == 169 && b1 == 254) return LC_ADDR_LINKLOCAL;
  if (b0 == 0 || b0 >= 224) return LC_ADDR_SPECIAL;
  return LC_ADDR_PUBLIC;
}

static int class_v6(const unsigned char *p) {
  static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  static const unsigned char zero[16] = {0};
  if (memcmp(p, mapped, 12) == 0 || (memcmp(p, zero, 12) == 0 && (p[12] | p[13]))) {
    uint32_t a = (uint32_t)p[12] << 24 | (uint32_t)p[13] << 16 | (uint32_t)p[14] << 8 | p[15];
    return class_v4(a); /* IPv4-mapped (and the old IPv4-compatible form) */
  }
  if (memcmp(p, zero, 15) == 0) return p[15] == 1 ? LC_ADDR_LOOPBACK : LC_ADDR_SPECIAL;
  if ((p[0] & 0xfe) == 0xfc) return LC_ADDR_PRIVATE;
  if (p[0] == 0xfe && (p[1] & 0xc0) == 0x80) return LC_ADDR_LINKLOCAL;
  if (p[0] == 0xff) return LC_ADDR_SPECIAL;
  return LC_ADDR_PUBLIC;
}

/* WHATWG: a host whose last label is a number (decimal, 0x-hex, or octal) is an IPv4 host. */
static int last_label_numeric(const char *h, size_t n) {
  while (n > 0 && h[n - 1] == '.') n--;
  size_t i = n;
  while (i > 0 && h[i - 1] != '.') i--;
  const char *l = h + i;
  size_t ln = n - i;
  if (ln == 0) return 0;
  if (ln >= 2 && l[0] == '0' && (l[1] == 'x' || l[1] == 'X')) {
    for (size_t k = 2; k < ln; k++)
      if (!isxdigit((unsigned char)l[k])) return 0;
    return 1;
  }
  for (size_t k = 0; k < ln; k++)
    if (!isdigit((unsigned char)l[k])) return 0;
  return 1;
}

int lc_addr_class(const char *host) {
  char h[256];
  size_t n = strlen(host);
  if (n == 0) return LC_ADDR_NOHOST;
  if (host[0] == '[') {
    const char *end = strchr(host, ']');
    if (!end || (size_t)(end - host - 1) >= sizeof h) return LC_ADDR_SPECIAL;
    memcpy(h, host + 1, (size_t)(end - host - 1));
    h[end - host - 1] = 0;
    char *zone = strchr(h, '%');
    if (zone) *zone = 0;
    unsigned char a6[16];
    if (inet_pton(AF_INET6, h, a6) != 1) return LC_ADDR_SPECIAL;
    return class_v6(a6);
  }
  if (n >= sizeof h) return LC_ADDR_NAME;
  for (size_t i = 0; i < n; i++) h[i] = (char)tolower((unsigned char)host[i]);
  h[n] = 0;
  while (n > 0 && h[n - 1] == '.') h[--n] = 0; /* "localhost." is localhost */
  if (!strcmp(h, "localhost") || (n > 10 && !strcmp(h + n - 10, ".localhost")))
    return LC_ADDR_LOOPBACK;
  if (!last_label_numeric(h, n)) return LC_ADDR_NAME;
  struct in_addr a4;
  if (inet_aton(h, &a4) == 0) return LC_ADDR_SPECIAL; /* numeric but not an address: refuse */
  return class_v4(ntohl(a4.s_addr));
}

int lc_addr_class_of_url(const char *url) {
  const char *p = strstr(url, "://");
  if (!p) return LC_ADDR_NOHOST;
  p += 3;
  size_t end = strcspn(p, "/?#\\");
  const char *at = NULL;
  for (size_t i = 0; i < end; i++)
    if (p[i] == '@') at = p + i;
  const char *h = at ? at + 1 : p;
  size_t hn = (size_t)(p + end - h);
  char host[256];
  if (hn == 0) return LC_ADDR_NOHOST;
  if (hn >= sizeof host) return LC_ADDR_NAME;
  memcpy(host, h, hn);
  host[hn] = 0;
  if (host[0] == '[') {
    char *close = strchr(host, ']');
    if (close) close[1] = 0;
  } else {
    char *colon = strchr(host, ':');
    if (colon) *colon = 0;
  }
  return lc_addr_class(host);
}

int lc_addr_class_sockaddr(const struct sockaddr *sa) {
  if (!sa) return LC_ADDR_SPECIAL;
  if (sa->sa_family == AF_INET)
    return class_v4(ntohl(((const struct sockaddr_in *)(const void *)sa)->sin_addr.s_addr));
  if (sa->sa_family == AF_INET6)
    return class_v6(((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr);
  return LC_ADDR_SPECIAL;
}

const char *lc_addr_class_name(int cls) {
  switch (cls) {
    case LC_ADDR_NAME:
      return "host name";
    case LC_ADDR_PUBLIC:
      return "public address";
    case LC_ADDR_LOOPBACK:
      return "loopback address";
    case LC_ADDR_PRIVATE:
      return "private address";
    case LC_ADDR_LINKLOCAL:
      return "link-local address";
    case LC_ADDR_SPECIAL:
      return "special-purpose address";
    default:
      return "no host";
  }
}
