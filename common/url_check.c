/* url_check.c -- where a webhook may point: the URL's form and the addresses it may reach
 * (see cp_url_check.h for the rules). */
#include "cp_url_check.h"
#include "cp_config.h"
#include "cp_log.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- address classes ------------------------------------------------------- */

/* The class of a forbidden IPv4 address (host byte order), or NULL when it is public. */
static const char *v4_class(uint32_t a) {
  static const struct {
    uint32_t net;      // network address
    int bits;          // prefix length
    const char *what;  // the class, as the refusal names it
  } T[] = {
      {0x00000000u, 8, "reserved (0.0.0.0/8)"},
      {0x0a000000u, 8, "private (10.0.0.0/8)"},
      {0x64400000u, 10, "shared address space (100.64.0.0/10)"},
      {0x7f000000u, 8, "loopback"},
      {0xa9fe0000u, 16, "link-local"},
      {0xac100000u, 12, "private (172.16.0.0/12)"},
      {0xc0000000u, 24, "reserved (192.0.0.0/24)"},
      {0xc0000200u, 24, "documentation (192.0.2.0/24)"},
      {0xc0586300u, 24, "reserved (192.88.99.0/24)"},
      {0xc0a80000u, 16, "private (192.168.0.0/16)"},
      {0xc6120000u, 15, "benchmarking (198.18.0.0/15)"},
      {0xc6336400u, 24, "documentation (198.51.100.0/24)"},
      {0xcb007100u, 24, "documentation (203.0.113.0/24)"},
      {0xe0000000u, 4, "multicast"},
      {0xf0000000u, 4, "reserved (240.0.0.0/4, broadcast)"},
  };
  for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
    uint32_t mask = T[i].bits == 0 ? 0 : 0xffffffffu << (32 - T[i].bits);
    if ((a & mask) == T[i].net) return T[i].what;
  }
  return NULL;
}

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static bool zero(const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != 0) return false;
  return true;
}

/* The class of a forbidden address in 16-byte form (IPv4 as ::ffff:a.b.c.d), or NULL. IPv6
 * forms that carry an IPv4 address (mapped, compatible, NAT64 64:ff9b::/96, 6to4 2002::/16)
 * are judged by the IPv4 address they carry. */
static const char *addr_class(const unsigned char a[16]) {
  if (cp_addr_is_v4(a)) return v4_class(be32(a + 12));
  if (zero(a, 16)) return "unspecified";
  if (zero(a, 15) && a[15] == 1) return "loopback";
  if (zero(a, 12)) return v4_class(be32(a + 12)) ? v4_class(be32(a + 12)) : "reserved (::/96)";
  static const unsigned char nat64[12] = {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  if (memcmp(a, nat64, 12) == 0) return v4_class(be32(a + 12));
  if (a[0] == 0x00 && a[1] == 0x64 && a[2] == 0xff && a[3] == 0x9b && a[4] == 0x00 && a[5] == 0x01)
    return "private (64:ff9b:1::/48)";
  if (a[0] == 0x20 && a[1] == 0x02) return v4_class(be32(a + 2));
  if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x00 && a[3] == 0x00) return "tunnel (Teredo 2001::/32)";
  if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8) return "documentation (2001:db8::/32)";
  if (a[0] == 0x01 && a[1] == 0x00 && zero(a + 2, 6)) return "reserved (discard 100::/64)";
  if ((a[0] & 0xfe) == 0xfc) return "private (unique local fc00::/7)";
  if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) return "link-local";
  if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0) return "private (site-local fec0::/10)";
  if (a[0] == 0xff) return "multicast";
  return NULL;
}

/* Whether an address (16-byte form) may be reached: public, or inside an allowed range. For an
 * IPv6 form carrying an IPv4 address, an allowed IPv4 range admits it too. */
static bool allowed16(const unsigned char a[16], const cp_url_allow_t *allow, const char **why) {
  const char *c = addr_class(a);
  if (c == NULL) return true;
  if (allow != NULL && cp_cidr_contains(&allow->nets, a)) return true;
  if (allow != NULL && !cp_addr_is_v4(a)) {
    unsigned char v4[16];
    const unsigned char *inner = NULL;
    static const unsigned char nat64[12] = {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    if (zero(a, 12) || memcmp(a, nat64, 12) == 0) inner = a + 12;
    else if (a[0] == 0x20 && a[1] == 0x02) inner = a + 2;
    if (inner != NULL) {
      cp_addr_to16(AF_INET, inner, v4);
      if (cp_cidr_contains(&allow->nets, v4)) return true;
    }
  }
  if (why != NULL) *why = c;
  return false;
}

bool cp_url_addr_allowed(const struct sockaddr *sa, const cp_url_allow_t *allow, const char **why) {
  unsigned char a[16];
  if (!cp_addr_from_sa(sa, a)) {
    if (why != NULL) *why = "not an internet address";
    return false;
  }
  return allowed16(a, allow, why);
}

bool cp_url_host_allowed(const char *host, const cp_url_allow_t *allow) {
  if (allow == NULL) return false;
  for (size_t i = 0; i < allow->nhosts; i++)
    if (strcmp(allow->hosts[i], host) == 0) return true;
  return false;
}

/* ---- the allow list -------------------------------------------------------- */

/* A host name's characters: letters, digits, '-', '.', '_' (lower-cased into out). */
static bool host_name(const char *s, size_t n, char *out, size_t outlen) {
  if (n == 0 || n >= outlen) return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!isalnum(c) && c != '-' && c != '.' && c != '_') return false;
    out[i] = (char)tolower(c);
  }
  out[n] = '\0';
  return true;
}

int cp_url_allow_parse(const char *spec, cp_url_allow_t *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  const char *p = spec != NULL ? spec : "";
  int entry = 0;
  while (*p != '\0') {
    while (*p == ',' || *p == ' ' || *p == '\t') p++;
    size_t n = strcspn(p, ", \t");
    if (n == 0) break;
    entry++;
    cp_cidr_t c;
    if (cp_cidr_parse_one(p, n, &c)) {
      if (out->nets.n >= CP_CIDR_MAX)
        return cp_err(err, errlen, "CAREPASS_WEBHOOK_ALLOW_HOSTS: more than %d ranges", CP_CIDR_MAX);
      out->nets.r[out->nets.n++] = c;
    } else if (memchr(p, '/', n) == NULL && memchr(p, ':', n) == NULL &&
               out->nhosts < CP_URL_ALLOW_MAX &&
               host_name(p, n, out->hosts[out->nhosts], sizeof out->hosts[0])) {
      out->nhosts++;
    } else {
      return cp_err(err, errlen,
                    "CAREPASS_WEBHOOK_ALLOW_HOSTS: entry %d is not a host name, an address or an "
                    "address/prefix-length range (at most %d host names)",
                    entry, CP_URL_ALLOW_MAX);
    }
    p += n;
  }
  return 0;
}

static cp_url_allow_t config_allow;        /* CAREPASS_WEBHOOK_ALLOW_HOSTS, parsed once */
static pthread_once_t config_once = PTHREAD_ONCE_INIT;

static void config_parse(void) {
  char err[256];
  if (cp_url_allow_parse(cp_cfg_str(CP_OPT_WEBHOOK_ALLOW_HOSTS), &config_allow, err, sizeof err) != 0) {
    /* the table's validator ran the same parse, so this is a bug: allow nothing extra */
    cp_log_error("webhook allow list ignored", CP_KV_STR("error", err), CP_KV_END);
    memset(&config_allow, 0, sizeof config_allow);
  }
}

const cp_url_allow_t *cp_url_allow_config(void) {
  pthread_once(&config_once, config_parse);
  return &config_allow;
}

/* ---- the URL ---------------------------------------------------------------- */

/* Whether a host is meant as an IPv4 number: its last label (after a trailing dot is dropped)
 * is all decimal digits or 0x-hex, as URL parsers read it (WHATWG "ends in a number"). */
static bool ends_in_number(const char *h) {
  size_t n = strlen(h);
  if (n > 0 && h[n - 1] == '.') n--;
  size_t s = n;
  while (s > 0 && h[s - 1] != '.') s--;
  if (s == n) return false;
  const char *l = h + s;
  size_t ln = n - s;
  if (ln >= 2 && l[0] == '0' && (l[1] == 'x' || l[1] == 'X')) {
    for (size_t i = 2; i < ln; i++)
      if (!isxdigit((unsigned char)l[i])) return false;
    return true;
  }
  for (size_t i = 0; i < ln; i++)
    if (!isdigit((unsigned char)l[i])) return false;
  return true;
}

int cp_url_check(const char *url, const cp_url_allow_t *allow, cp_url_t *out, char *err,
                 size_t errlen) {
  memset(out, 0, sizeof *out);
  if (url == NULL || url[0] == '\0') return cp_err(err, errlen, "the URL is empty");
  for (const unsigned char *q = (const unsigned char *)url; *q; q++) {
    if (*q <= 0x20 || *q >= 0x7f)
      return cp_err(err, errlen, "the URL has a space, a control or a non-ASCII character: percent-encode it");
    if (*q == '\\') return cp_err(err, errlen, "the URL has a backslash: use '/'");
  }
  const char *p;
  if (strncasecmp(url, "https://", 8) == 0) {
    p = url + 8;
    out->port = 443;
  } else if (strncasecmp(url, "http://", 7) == 0) {
    p = url + 7;
    out->port = 80;
  } else {
    return cp_err(err, errlen, "the URL must start with https:// (or http://)");
  }
  if (strchr(url, '#') != NULL) return cp_err(err, errlen, "the URL must not have a fragment (#...)");
  size_t alen = strcspn(p, "/?");
  if (alen == 0) return cp_err(err, errlen, "the URL has no host");
  if (memchr(p, '@', alen) != NULL)
    return cp_err(err, errlen, "the URL must not carry a user name or password (user@host)");
  const char *hs = p, *he;    /* host [hs, he) */
  const char *port = NULL;    /* after ':' */
  if (*p == '[') {
    const char *close = memchr(p, ']', alen);
    if (close == NULL) return cp_err(err, errlen, "the URL's IPv6 address has no closing ']'");
    hs = p + 1;
    he = close;
    if (close + 1 < p + alen) {
      if (close[1] != ':') return cp_err(err, errlen, "the URL has characters after its IPv6 address");
      port = close + 2;
    }
  } else {
    const char *colon = memchr(p, ':', alen);
    he = colon != NULL ? colon : p + alen;
    if (colon != NULL) port = colon + 1;
  }
  if (port != NULL) {
    size_t pl = (size_t)(p + alen - port);
    long v = 0;
    if (pl == 0 || pl > 5) return cp_err(err, errlen, "the URL's port must be a number from 1 to 65535");
    for (size_t i = 0; i < pl; i++) {
      if (!isdigit((unsigned char)port[i]))
        return cp_err(err, errlen, "the URL's port must be a number from 1 to 65535");
      v = v * 10 + (port[i] - '0');
    }
    if (v < 1 || v > 65535) return cp_err(err, errlen, "the URL's port must be a number from 1 to 65535");
    out->port = (int)v;
  }
  size_t hl = (size_t)(he - hs);
  if (hl == 0) return cp_err(err, errlen, "the URL has no host");
  if (hl >= sizeof out->host) return cp_err(err, errlen, "the URL's host is longer than %d characters",
                                            (int)sizeof out->host - 1);
  unsigned char a16[16];
  if (*p == '[') {
    memcpy(out->host, hs, hl);
    out->host[hl] = '\0';
    struct in6_addr a6;
    if (inet_pton(AF_INET6, out->host, &a6) != 1)
      return cp_err(err, errlen, "the URL's host in brackets is not an IPv6 address");
    for (char *c = out->host; *c; c++) *c = (char)tolower((unsigned char)*c);
    cp_addr_to16(AF_INET6, &a6, a16);
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->addr;
    s6->sin6_family = AF_INET6;
    s6->sin6_addr = a6;
    out->literal = true;
  } else {
    if (!host_name(hs, hl, out->host, sizeof out->host))
      return cp_err(err, errlen, "the URL's host may have only letters, digits, '-', '.' and '_'");
    size_t n = strlen(out->host);
    while (n > 0 && out->host[n - 1] == '.') out->host[--n] = '\0';
    if (n == 0 || out->host[0] == '.' || strstr(out->host, "..") != NULL)
      return cp_err(err, errlen, "the URL's host has an empty label");
    if (ends_in_number(out->host)) {
      struct in_addr a4;
      if (inet_aton(out->host, &a4) == 0)
        return cp_err(err, errlen, "the URL's host looks like an IPv4 address but is not one");
      cp_addr_to16(AF_INET, &a4, a16);
      struct sockaddr_in *s4 = (struct sockaddr_in *)&out->addr;
      s4->sin_family = AF_INET;
      s4->sin_addr = a4;
      out->literal = true;
    }
  }
  if (cp_url_host_allowed(out->host, allow)) return 0;
  if (out->literal) {
    const char *why = NULL;
    if (!allowed16(a16, allow, &why))
      return cp_err(err, errlen,
                    "the URL points at a %s address, which carepass does not send to; give a public "
                    "address or host name (an operator can allow an internal one with "
                    "CAREPASS_WEBHOOK_ALLOW_HOSTS)",
                    why);
    return 0;
  }
  size_t n = strlen(out->host);
  if (strcmp(out->host, "localhost") == 0 || (n > 10 && strcmp(out->host + n - 10, ".localhost") == 0))
    return cp_err(err, errlen,
                  "the URL's host is a loopback name (localhost), which carepass does not send to; "
                  "an operator can allow it with CAREPASS_WEBHOOK_ALLOW_HOSTS");
  return 0;
}
