/* cidr.c -- address ranges for operator lists (see cp_cidr.h). */
#include "cp_cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

void cp_addr_to16(int family, const void *addr, unsigned char out[16]) {
  if (family == AF_INET) {
    memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    memcpy(out + 12, addr, 4);
  } else {
    memcpy(out, addr, 16);
  }
}

bool cp_addr_from_sa(const struct sockaddr *sa, unsigned char out[16]) {
  if (sa == NULL) return false;
  if (sa->sa_family == AF_INET) {
    cp_addr_to16(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out);
    return true;
  }
  if (sa->sa_family == AF_INET6) {
    cp_addr_to16(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out);
    return true;
  }
  return false;
}

bool cp_addr_is_v4(const unsigned char a[16]) {
  static const unsigned char pre[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return memcmp(a, pre, 12) == 0;
}

bool cp_addr_parse(const char *s, size_t n, unsigned char out[16]) {
  char buf[INET6_ADDRSTRLEN + 1];
  if (n == 0 || n >= sizeof buf) return false;
  memcpy(buf, s, n);
  buf[n] = '\0';
  unsigned char a[16];
  if (inet_pton(AF_INET, buf, a) == 1) {
    cp_addr_to16(AF_INET, a, out);
    return true;
  }
  if (inet_pton(AF_INET6, buf, a) == 1) {
    cp_addr_to16(AF_INET6, a, out);
    return true;
  }
  return false;
}

void cp_addr_text(const unsigned char a[16], char *out, size_t outlen) {
  if (cp_addr_is_v4(a)) inet_ntop(AF_INET, a + 12, out, (socklen_t)outlen);
  else inet_ntop(AF_INET6, a, out, (socklen_t)outlen);
}

bool cp_cidr_parse_one(const char *s, size_t n, cp_cidr_t *c) {
  const char *slash = memchr(s, '/', n);
  size_t alen = slash != NULL ? (size_t)(slash - s) : n;
  if (!cp_addr_parse(s, alen, c->addr)) return false;
  int maxbits = cp_addr_is_v4(c->addr) ? 32 : 128;
  int bits = maxbits;
  if (slash != NULL) {
    size_t k = n - alen - 1;
    if (k == 0 || k > 3) return false;
    bits = 0;
    for (size_t i = 0; i < k; i++) {
      char d = slash[1 + i];
      if (d < '0' || d > '9') return false;
      bits = bits * 10 + (d - '0');
    }
    if (bits > maxbits) return false;
  }
  c->bits = bits + (maxbits == 32 ? 96 : 0);
  return true;
}

int cp_cidr_add(cp_cidr_list_t *list, const char *s, size_t n, const char *what, char *err,
                size_t errlen) {
  if (list->n >= CP_CIDR_MAX) return cp_err(err, errlen, "%s: more than %d ranges", what, CP_CIDR_MAX);
  if (!cp_cidr_parse_one(s, n, &list->r[list->n]))
    return cp_err(err, errlen, "%s: entry %d is not an address or an address/prefix-length range",
                  what, list->n + 1);
  list->n++;
  return 0;
}

bool cp_cidr_contains(const cp_cidr_list_t *list, const unsigned char a[16]) {
  for (int i = 0; i < list->n; i++) {
    const cp_cidr_t *c = &list->r[i];
    int full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(a, c->addr, (size_t)full) != 0) continue;
    if (rest != 0) {
      unsigned char mask = (unsigned char)(0xff << (8 - rest));
      if ((a[full] & mask) != (c->addr[full] & mask)) continue;
    }
    return true;
  }
  return false;
}
