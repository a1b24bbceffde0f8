/* gw_share_code.c -- share codes as values: random codes, normalising what people type, keyed hashes, scopes. */
#include "gw_share.h"

#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gw_sc_generate(char code[GW_SC_LEN + 1]) {
  static const char alphabet[] = GW_SC_ALPHABET;
  /* uniform over the 28 symbols (randombytes_uniform has no modulo bias): 9 x 4.807 = 43.27 bits */
  for (size_t i = 0; i < GW_SC_LEN; i++) code[i] = alphabet[randombytes_uniform(sizeof alphabet - 1)];
  code[GW_SC_LEN] = '\0';
}

int gw_sc_normalise(const char *in, char code[GW_SC_LEN + 1]) {
  size_t n = 0;
  for (const char *p = in; *p != '\0'; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == ' ' || c == '-' || c == '\t') continue;
    c = (unsigned char)toupper(c);
    if (c == '\0' || strchr(GW_SC_ALPHABET, c) == NULL || n >= GW_SC_LEN) {
      sodium_memzero(code, GW_SC_LEN + 1);
      return -1;
    }
    code[n++] = (char)c;
  }
  code[n] = '\0';
  return n == GW_SC_LEN ? 0 : -1;
}

void gw_sc_format(const char code[GW_SC_LEN + 1], char out[12]) {
  snprintf(out, 12, "%.3s-%.3s-%.3s", code, code + 3, code + 6);
}

void gw_sc_hash(const gw_t *gw, const char code[GW_SC_LEN + 1], uint8_t out[32]) {
  static const char dom[] = "carepass/share-code/v1\n";
  crypto_generichash_state st;
  /* its own secret, not TOKEN_SECRET: rotating the token secret must not void live codes */
  crypto_generichash_init(&st, gw->share_code_secret, CP_SECRET_BYTES, 32);
  crypto_generichash_update(&st, (const unsigned char *)dom, sizeof dom - 1);
  crypto_generichash_update(&st, (const unsigned char *)code, GW_SC_LEN);
  crypto_generichash_final(&st, out, 32);
  sodium_memzero(&st, sizeof st);
}

void gw_sc_dob_hash(const gw_t *gw, const uint8_t code_hash[32], const char *dob, uint8_t out[32]) {
  static const char dom[] = "carepass/share-dob/v1\n";
  crypto_generichash_state st;
  crypto_generichash_init(&st, gw->pseudonym_secret, CP_SECRET_BYTES, 32);
  crypto_generichash_update(&st, (const unsigned char *)dom, sizeof dom - 1);
  crypto_generichash_update(&st, code_hash, 32);
  crypto_generichash_update(&st, (const unsigned char *)dob, strlen(dob));
  crypto_generichash_final(&st, out, 32);
  sodium_memzero(&st, sizeof st);
}

void gw_random_id(const char *prefix, size_t nbytes, char *out, size_t outlen) {
  uint8_t buf[32];
  char hex[65];
  assert(nbytes <= sizeof buf && outlen >= strlen(prefix) + 2 * nbytes + 1);
  randombytes_buf(buf, nbytes);
  cp_hex(buf, nbytes, hex);
  snprintf(out, outlen, "%s%s", prefix, hex);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

int gw_scope_parse(const char *scope, uint64_t **out, size_t *n) {
  *out = NULL;
  *n = 0;
  if (scope == NULL || scope[0] == '\0') return 0;
  size_t cap = 1;
  for (const char *p = scope; *p; p++) cap += *p == ',';
  uint64_t *v = cp_xcalloc(cap, sizeof *v);
  size_t k = 0;
  const char *p = scope;
  while (*p != '\0') {
    char *end = NULL;
    if (*p < '0' || *p > '9') goto err;
    unsigned long long x = strtoull(p, &end, 10);
    if (end == p || (*end != ',' && *end != '\0')) goto err;
    v[k++] = x;
    p = *end == ',' ? end + 1 : end;
  }
  qsort(v, k, sizeof *v, cmp_u64);
  *out = v;
  *n = k;
  return 0;
err:
  free(v);
  return -1;
}

bool gw_scope_has(const uint64_t *scope, size_t n, uint64_t index) {
  if (n == 0) return true;
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (scope[mid] == index) return true;
    if (scope[mid] < index) lo = mid + 1;
    else hi = mid;
  }
  return false;
}
