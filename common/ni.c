/* ni.c -- National Insurance number validation and keyed worker pseudonyms. */
#include "cp_crypto.h"

#include <ctype.h>
#include <string.h>

#define PSEUDONYM_DOMAIN "carepass/worker/v1\n"

int cp_ni_normalise(const char *in, char out[10]) {
  char b[10];
  size_t n = 0;
  out[0] = '\0';
  if (in == NULL) return -1;
  for (const char *p = in; *p; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == ' ' || c == '\t') continue;
    if (n == 9) return -1; /* too long */
    b[n++] = (char)toupper(c);
  }
  b[n] = '\0';
  if (n != 9) return -1;
  /* two prefix letters, six digits, suffix A-D */
  if (!isupper((unsigned char)b[0]) || !isupper((unsigned char)b[1])) return -1;
  if (b[0] < 'A' || b[0] > 'Z' || b[1] < 'A' || b[1] > 'Z') return -1;
  for (int i = 2; i < 8; i++)
    if (b[i] < '0' || b[i] > '9') return -1;
  if (b[8] < 'A' || b[8] > 'D') return -1;
  if (strchr("DFIQUV", b[0]) != NULL) return -1;
  if (strchr("DFIOQUV", b[1]) != NULL) return -1;
  static const char *bad_prefixes[] = {"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"};
  for (size_t i = 0; i < CP_ARRAY_LEN(bad_prefixes); i++)
    if (b[0] == bad_prefixes[i][0] && b[1] == bad_prefixes[i][1]) return -1;
  memcpy(out, b, 10);
  return 0;
}

void cp_pseudonym(const unsigned char secret[CP_SECRET_BYTES], const char *ni_norm,
                  unsigned char out[CP_PSEUDONYM_BYTES]) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, secret, CP_SECRET_BYTES, CP_PSEUDONYM_BYTES);
  crypto_generichash_update(&st, (const unsigned char *)PSEUDONYM_DOMAIN,
                            sizeof PSEUDONYM_DOMAIN - 1);
  crypto_generichash_update(&st, (const unsigned char *)ni_norm, strlen(ni_norm));
  crypto_generichash_final(&st, out, CP_PSEUDONYM_BYTES);
  sodium_memzero(&st, sizeof st);
}
