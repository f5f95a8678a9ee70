/* addr.h: what kind of address a URL's host names, for the sandbox's host rules.
 * Owns: the one reading of a host as a browser would read it (an IPv4 literal in any of the
 * forms WHATWG URL parsing accepts: "127.1", "2130706433", "0x7f.0.0.1"; an IPv6 literal,
 * IPv4-mapped ones by their IPv4 address; "localhost" and "*.localhost", which Chromium
 * answers with loopback) and the ranges each class holds. Host names are not resolved: a
 * name is LC_ADDR_NAME whatever its DNS answer. No libuv, no Lua. */
#ifndef LC_ADDR_H
#define LC_ADDR_H

enum {
  LC_ADDR_NAME = 0,      /* a host name (not resolved) */
  LC_ADDR_PUBLIC = 1,    /* a public IP literal */
  LC_ADDR_LOOPBACK = 2,  /* 127/8, ::1, localhost, *.localhost */
  LC_ADDR_PRIVATE = 3,   /* 10/8, 172.16/12, 192.168/16, 100.64/10 (CGNAT), fc00::/7 */
  LC_ADDR_LINKLOCAL = 4, /* 169.254/16 (cloud metadata endpoints), fe80::/10 */
  LC_ADDR_SPECIAL = 5,   /* 0/8, ::, multicast, 240/4, broadcast, a malformed numeric host */
  LC_ADDR_NOHOST = -1,   /* no host in the URL */
};

/* The class of the host of an absolute URL ("scheme://[userinfo@]host[:port]..."). */
int lc_addr_class_of_url(const char *url);
/* The class of a bare host ("127.0.0.1", "[::1]", "example.com"). */
int lc_addr_class(const char *host);
/* The class of a resolved address (AF_INET or AF_INET6; anything else is special-purpose). */
struct sockaddr;
int lc_addr_class_sockaddr(const struct sockaddr *sa);
/* A short name of a class, for messages ("loopback", "link-local", ...). */
const char *lc_addr_class_name(int cls);

#endif
