/* gw_proxy.c -- the client's address behind trusted proxies: CAREPASS_GATEWAY_TRUSTED_PROXIES
 * (addresses and CIDRs, IPv4 and IPv6) and the right-most untrusted X-Forwarded-For or Forwarded
 * (RFC 7239 for=) entry.
 *
 * The rule: a request's peer that is not a trusted proxy IS the client, whatever headers it sends
 * (a header from an untrusted peer is never read). From a trusted peer, the chosen header's entries
 * are read right to left (every occurrence of the header, in order, as one list): trusted entries
 * are hops of our own and are skipped; the first untrusted one is the client. An entry that is not
 * an address (RFC 7239 "unknown", an obfuscated "_name", garbage) stops the walk: what is left of it
 * was written by someone we cannot name, so the client is the last trusted hop read (the entries
 * right of it vouch only for that much). When every entry is trusted, the left-most is the client.
 * Only one header is read (CAREPASS_GATEWAY_FORWARDED_HEADER): if both were, a client could add the
 * one the proxy does not set and pass it through untouched.
 *
 * The address found is the one per-address limits count (failed share-code checks, concurrent
 * requests: gw_loop.c) and the one a worker's "who looked" list shows. */
#include "gw.h"
#include "gw_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int gw_proxies_parse(const char *text, gw_config_t *cfg, char *err, size_t errlen) {
  cfg->trusted.n = 0;
  const char *p = text;
  while (*p != '\0') {
    while (*p == ',' || *p == ' ' || *p == '\t') p++;
    size_t n = strcspn(p, ", \t");
    if (n == 0) break;
    if (cp_cidr_add(&cfg->trusted, p, n, "CAREPASS_GATEWAY_TRUSTED_PROXIES", err, errlen) != 0) return -1;
    p += n;
  }
  return 0;
}

bool gw_proxy_trusted(const gw_config_t *cfg, const struct sockaddr *sa) {
  unsigned char a[16];
  if (cfg->trusted.n == 0 || !cp_addr_from_sa(sa, a)) return false;
  return cp_cidr_contains(&cfg->trusted, a);
}

/* Every occurrence of the header, joined with commas (in the order received). */
typedef struct {
  const char *name;   // header wanted
  char *buf;          // joined values
  size_t len, cap;    // used, allocated
  bool over;          // longer than GW_FWD_MAX: not read (the client is then the peer)
} collect_t;

#define GW_FWD_MAX 8192 /* longest joined header read; longer: not read at all */

static enum MHD_Result collect(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
  (void)kind;
  collect_t *c = cls;
  if (strcasecmp(key, c->name) != 0 || value == NULL) return MHD_YES;
  size_t n = strlen(value);
  if (c->len + n + 2 > GW_FWD_MAX) {
    c->over = true;
    return MHD_NO;
  }
  if (c->len + n + 2 > c->cap) {
    c->cap = c->len + n + 2 + 256;
    c->buf = cp_xrealloc(c->buf, c->cap);
  }
  if (c->len > 0) c->buf[c->len++] = ',';
  memcpy(c->buf + c->len, value, n);
  c->len += n;
  c->buf[c->len] = '\0';
  return MHD_YES;
}

/* The address of one X-Forwarded-For entry [s, s+n): "a.b.c.d", "2001:db8::1", and (some proxies)
 * "a.b.c.d:port" or "[v6]:port". */
static bool xff_entry(const char *s, size_t n, unsigned char out[16]) {
  while (n > 0 && (*s == ' ' || *s == '\t')) s++, n--;
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
  if (n > 0 && s[0] == '"' && n >= 2 && s[n - 1] == '"') s++, n -= 2;
  if (n > 0 && s[0] == '[') {
    const char *close = memchr(s, ']', n);
    return close != NULL && cp_addr_parse(s + 1, (size_t)(close - s - 1), out);
  }
  if (cp_addr_parse(s, n, out)) return true;
  const char *colon = memchr(s, ':', n);
  if (colon != NULL && memchr(colon + 1, ':', n - (size_t)(colon - s) - 1) == NULL) /* v4:port */
    return cp_addr_parse(s, (size_t)(colon - s), out);
  return false;
}

/* The address of the for= parameter of one Forwarded element [s, s+n), e.g.
 * for=192.0.2.60;proto=http or For="[2001:db8:cafe::17]:4711". No for= or an unknown /
 * obfuscated node: false. */
static bool fwd_element(const char *s, size_t n, unsigned char out[16]) {
  const char *end = s + n;
  while (s < end) {
    const char *semi = s;
    bool q = false;
    while (semi < end && (q || *semi != ';')) {
      if (*semi == '"') q = !q;
      semi++;
    }
    const char *k = s;
    while (k < semi && (*k == ' ' || *k == '\t')) k++;
    if (semi - k > 4 && strncasecmp(k, "for=", 4) == 0) return xff_entry(k + 4, (size_t)(semi - k - 4), out);
    s = semi + 1;
  }
  return false;
}

void gw_proxy_client(const gw_config_t *cfg, struct MHD_Connection *conn, const struct sockaddr *peer,
                     char *out, size_t outlen) {
  unsigned char last[16]; /* the last trusted hop read: the peer to begin with */
  if (!cp_addr_from_sa(peer, last)) memset(last, 0, sizeof last);
  bool rfc7239 = cfg->forwarded_rfc7239;
  collect_t c = {rfc7239 ? "Forwarded" : "X-Forwarded-For", NULL, 0, 0, false};
  MHD_get_connection_values(conn, MHD_HEADER_KIND, collect, &c);
  if (c.buf != NULL && !c.over) {
    /* right to left over the comma-separated entries (quotes respected for Forwarded) */
    size_t endpos = c.len;
    while (endpos > 0) {
      size_t start = endpos;
      bool q = false;
      while (start > 0 && (q || c.buf[start - 1] != ',')) {
        if (c.buf[start - 1] == '"') q = !q;
        start--;
      }
      const char *e = c.buf + start;
      size_t n = endpos - start;
      bool blank = strspn(e, " \t") >= n;
      if (!blank) {
        unsigned char a[16];
        bool ok = rfc7239 ? fwd_element(e, n, a) : xff_entry(e, n, a);
        if (!ok) break;            /* not an address: the last trusted hop is all we know */
        memcpy(last, a, 16);
        if (!cp_cidr_contains(&cfg->trusted, a)) break; /* the client */
      }
      endpos = start > 0 ? start - 1 : 0;
    }
  }
  free(c.buf);
  cp_addr_text(last, out, outlen);
}
