/* notify_sign.c -- webhook ids, Standard Webhooks signatures (HMAC-SHA256 "v1", Ed25519 "v1a")
 * and retry backoff. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "notify_sign.h"

void nt_delivery_id(const char *type, const char *provider, const char *event_id,
                    uint64_t entry_index, char out[NT_ID_SIZE]) {
  const unsigned char zero = 0;
  unsigned char idx[8], h[crypto_generichash_BYTES];
  crypto_generichash_state st;

  for (int i = 0; i < 8; i++)
    idx[i] = (unsigned char)(entry_index >> (56 - 8 * i));
  crypto_generichash_init(&st, NULL, 0, sizeof h);
  /* NUL separators keep ("ab","c") and ("a","bc") apart. */
  crypto_generichash_update(&st, (const unsigned char *)type, strlen(type));
  crypto_generichash_update(&st, &zero, 1);
  crypto_generichash_update(&st, (const unsigned char *)provider, strlen(provider));
  crypto_generichash_update(&st, &zero, 1);
  crypto_generichash_update(&st, (const unsigned char *)event_id, strlen(event_id));
  crypto_generichash_update(&st, &zero, 1);
  crypto_generichash_update(&st, idx, sizeof idx);
  crypto_generichash_final(&st, h, sizeof h);
  memcpy(out, "msg_", 4);
  cp_hex(h, 16, out + 4);
}

void nt_fanout_id(const char *type, const char *recipient, uint64_t entry_index, int stage,
                  char out[NT_ID_SIZE]) {
  const unsigned char zero = 0, st = (unsigned char)(stage < 0 ? 0xff : stage);
  unsigned char idx[8], h[crypto_generichash_BYTES];
  crypto_generichash_state hs;
  for (int i = 0; i < 8; i++)
    idx[i] = (unsigned char)(entry_index >> (56 - 8 * i));
  crypto_generichash_init(&hs, NULL, 0, sizeof h);
  crypto_generichash_update(&hs, (const unsigned char *)"fanout", 6);
  crypto_generichash_update(&hs, &zero, 1);
  crypto_generichash_update(&hs, (const unsigned char *)type, strlen(type));
  crypto_generichash_update(&hs, &zero, 1);
  crypto_generichash_update(&hs, (const unsigned char *)recipient, strlen(recipient));
  crypto_generichash_update(&hs, &zero, 1);
  crypto_generichash_update(&hs, idx, sizeof idx);
  crypto_generichash_update(&hs, &st, 1);
  crypto_generichash_final(&hs, h, sizeof h);
  memcpy(out, "msg_", 4);
  cp_hex(h, 16, out + 4);
}

/* Build "<id>.<timestamp>.<body>" into a malloc'd buffer. */
static unsigned char *signed_content(const char *id, int64_t timestamp, const char *body,
                                     size_t bodylen, size_t *len) {
  char prefix[NT_ID_SIZE + 32];
  int n = snprintf(prefix, sizeof prefix, "%s.%lld.", id, (long long)timestamp);
  if (n < 0 || (size_t)n >= sizeof prefix) return NULL;
  unsigned char *m = cp_xmalloc((size_t)n + bodylen + 1);
  memcpy(m, prefix, (size_t)n);
  if (bodylen) memcpy(m + n, body, bodylen);
  *len = (size_t)n + bodylen;
  return m;
}

_Static_assert(3 + sodium_base64_ENCODED_LEN(crypto_auth_hmacsha256_BYTES, sodium_base64_VARIANT_ORIGINAL) ==
                   NT_V1_SIG_LEN + 1, "NT_V1_SIG_LEN is v1, + base64 of an HMAC-SHA256");
_Static_assert(4 + sodium_base64_ENCODED_LEN(crypto_sign_BYTES, sodium_base64_VARIANT_ORIGINAL) ==
                   NT_V1A_SIG_LEN + 1, "NT_V1A_SIG_LEN is v1a, + base64 of an Ed25519 signature");
_Static_assert(NT_SECRETS_MAX * (NT_V1_SIG_LEN + 1) + NT_V1A_SIG_LEN + 1 <= NT_SIG_HDR_SIZE,
               "NT_SIG_HDR_SIZE holds every signature of one delivery");

int nt_sign(const cp_signkey_t *key, const char *id, int64_t timestamp,
            const char *body, size_t bodylen, char *out, size_t outlen) {
  unsigned char sig[crypto_sign_BYTES];
  size_t mlen;
  if (outlen < NT_V1A_SIG_LEN + 1) return -1;
  unsigned char *m = signed_content(id, timestamp, body, bodylen, &mlen);
  if (!m) return -1;
  crypto_sign_detached(sig, NULL, m, mlen, key->sk);
  free(m);
  memcpy(out, "v1a,", 4);
  sodium_bin2base64(out + 4, outlen - 4, sig, sizeof sig, sodium_base64_VARIANT_ORIGINAL);
  return 0;
}

bool nt_verify(const unsigned char pk[32], const char *id, int64_t timestamp,
               const char *body, size_t bodylen, const char *sig_header) {
  size_t mlen;
  unsigned char *m = signed_content(id, timestamp, body, bodylen, &mlen);
  bool ok = false;
  if (!m) return false;
  for (const char *p = sig_header; p && *p && !ok;) {
    while (*p == ' ') p++;
    const char *end = strchr(p, ' ');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len > 4 && strncmp(p, "v1a,", 4) == 0) {
      unsigned char sig[crypto_sign_BYTES];
      size_t siglen = 0;
      if (sodium_base642bin(sig, sizeof sig, p + 4, len - 4, NULL, &siglen, NULL,
                            sodium_base64_VARIANT_ORIGINAL) == 0 &&
          siglen == sizeof sig &&
          crypto_sign_verify_detached(sig, m, mlen, pk) == 0)
        ok = true;
    }
    p = end;
  }
  free(m);
  return ok;
}

/* HMAC-SHA256 of "<id>.<timestamp>.<body>" keyed with the secret's bytes (streamed: no copy of
 * the body). -1 when id and timestamp do not fit. */
static int hmac_v1(const cp_whsec_key_t *secret, const char *id, int64_t timestamp, const char *body,
                   size_t bodylen, unsigned char mac[crypto_auth_hmacsha256_BYTES]) {
  char prefix[NT_ID_SIZE + 32];
  int n = snprintf(prefix, sizeof prefix, "%s.%lld.", id, (long long)timestamp);
  if (n < 0 || (size_t)n >= sizeof prefix) return -1;
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, secret->key, secret->len);
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)prefix, (unsigned long long)n);
  if (bodylen) crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, bodylen);
  crypto_auth_hmacsha256_final(&st, mac);
  sodium_memzero(&st, sizeof st);   /* the state holds the padded key */
  return 0;
}

int nt_sign_v1(const cp_whsec_key_t *secret, const char *id, int64_t timestamp,
               const char *body, size_t bodylen, char *out, size_t outlen) {
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  if (outlen < NT_V1_SIG_LEN + 1 || secret->len == 0) return -1;
  if (hmac_v1(secret, id, timestamp, body, bodylen, mac) != 0) return -1;
  memcpy(out, "v1,", 3);
  sodium_bin2base64(out + 3, outlen - 3, mac, sizeof mac, sodium_base64_VARIANT_ORIGINAL);
  return 0;
}

void nt_secrets_wipe(nt_secrets_t *s) {
  if (s) sodium_memzero(s, sizeof *s);
}

int nt_sign_header(const cp_signkey_t *key, const nt_secrets_t *secrets, const char *id, int64_t timestamp,
                   const char *body, size_t bodylen, char *out, size_t outlen) {
  size_t used = 0;
  if (outlen < NT_SIG_HDR_SIZE) return -1;
  for (size_t i = 0; secrets && i < secrets->n && i < NT_SECRETS_MAX; i++) {
    if (nt_sign_v1(&secrets->key[i], id, timestamp, body, bodylen, out + used, outlen - used) != 0) return -1;
    used += NT_V1_SIG_LEN;
    out[used++] = ' ';
  }
  return nt_sign(key, id, timestamp, body, bodylen, out + used, outlen - used);
}

bool nt_verify_v1(const cp_whsec_key_t *secret, const char *id, int64_t timestamp,
                  const char *body, size_t bodylen, const char *sig_header) {
  char want[NT_V1_SIG_LEN + 1];
  bool ok = false;
  if (nt_sign_v1(secret, id, timestamp, body, bodylen, want, sizeof want) != 0) return false;
  for (const char *p = sig_header; p && *p && !ok;) {
    while (*p == ' ') p++;
    const char *end = strchr(p, ' ');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == NT_V1_SIG_LEN && sodium_memcmp(p, want, NT_V1_SIG_LEN) == 0) ok = true;
    p = end;
  }
  return ok;
}

int nt_pubkey_format(const unsigned char pk[32], char *out, size_t outlen) {
  if (outlen < 5 + sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)) return -1;
  memcpy(out, "whpk_", 5);
  sodium_bin2base64(out + 5, outlen - 5, pk, 32, sodium_base64_VARIANT_ORIGINAL);
  return 0;
}

int64_t nt_backoff_base_ms(int attempts, int64_t base_ms, int64_t max_ms) {
  int64_t d = base_ms < 1 ? 1 : base_ms;
  for (int i = 1; i < attempts && d < max_ms; i++) d *= 2;   /* bounded: stops at max */
  return d < max_ms ? d : max_ms;
}

int64_t nt_backoff_ms(int attempts, int64_t base_ms, int64_t max_ms) {
  int64_t d = nt_backoff_base_ms(attempts, base_ms, max_ms);
  int64_t j = d / 5;                       /* +-20% */
  if (j > 0 && j < (int64_t)UINT32_MAX / 2)
    d += (int64_t)randombytes_uniform((uint32_t)(2 * j + 1)) - j;
  return d < 1 ? 1 : d;
}
