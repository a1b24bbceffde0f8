/* token.c -- MAC'd bearer tokens with a random id (cpp_ provider, cpw_ worker, cpe_ employer); see cp_token.h. */
#include "cp_token.h"

#include <assert.h>
#include <string.h>

#define TOKEN_VERSION 2    /* 1 (no id) is refused: see cp_token.h */
#define TOKEN_DOMAIN "carepass/token/v1"
#define TOKEN_PREFIX_LEN 4
#define TOKEN_HEAD (1 + CP_TOKEN_ID_BYTES + 8 + 1) /* version, id, expiry, subject length */
#define TOKEN_PAYLOAD_MAX (TOKEN_HEAD + CP_TOKEN_SUBJECT_MAX)
#define TOKEN_RAW_MAX (TOKEN_PAYLOAD_MAX + crypto_auth_BYTES)

/* Each kind's prefix and longest lifetime, indexed by cp_token_kind_t. */
static const struct {
  const char *prefix;  // the token's first TOKEN_PREFIX_LEN characters
  int64_t max_s;       // longest lifetime a checker accepts (plus CP_TOKEN_SKEW_S)
} kinds[CP_TOKEN_KINDS] = {
  [CP_TOKEN_PROVIDER] = {"cpp_", CP_TOKEN_PROVIDER_MAX_S},
  [CP_TOKEN_WORKER] = {"cpw_", CP_TOKEN_WORKER_MAX_S},
  [CP_TOKEN_EMPLOYER] = {"cpe_", CP_TOKEN_EMPLOYER_MAX_S},
};

static const char *prefix_of(cp_token_kind_t kind) {
  assert(kind >= 0 && kind < CP_TOKEN_KINDS);
  return kinds[kind].prefix;
}

int cp_token_kind_of(const char *token, cp_token_kind_t *kind) {
  for (int k = 0; token != NULL && k < CP_TOKEN_KINDS; k++)
    if (strncmp(token, kinds[k].prefix, TOKEN_PREFIX_LEN) == 0) {
      *kind = (cp_token_kind_t)k;
      return 0;
    }
  return -1;
}

const char *cp_token_kind_name(cp_token_kind_t kind) {
  return kind == CP_TOKEN_WORKER ? "worker" : kind == CP_TOKEN_EMPLOYER ? "employer" : "provider";
}

/* The MAC key: BLAKE2b keyed with the secret over the domain string. */
static void mac_key(const unsigned char secret[CP_SECRET_BYTES], unsigned char key[crypto_auth_KEYBYTES]) {
  crypto_generichash(key, crypto_auth_KEYBYTES, (const unsigned char *)TOKEN_DOMAIN,
                     strlen(TOKEN_DOMAIN), secret, CP_SECRET_BYTES);
}

/* Tag over prefix || payload. */
static void token_tag(const unsigned char secret[CP_SECRET_BYTES], const char *prefix,
                      const uint8_t *payload, size_t len, unsigned char tag[crypto_auth_BYTES]) {
  unsigned char key[crypto_auth_KEYBYTES];
  uint8_t msg[TOKEN_PREFIX_LEN + TOKEN_PAYLOAD_MAX];
  mac_key(secret, key);
  memcpy(msg, prefix, TOKEN_PREFIX_LEN);
  memcpy(msg + TOKEN_PREFIX_LEN, payload, len);
  crypto_auth(tag, msg, TOKEN_PREFIX_LEN + len, key);
  sodium_memzero(key, sizeof key);
}

static bool subject_ok(const char *s, size_t n) {
  if (n == 0 || n > CP_TOKEN_SUBJECT_MAX) return false;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e) return false;
  return true;
}

int cp_token_make(const unsigned char secret[CP_SECRET_BYTES], cp_token_kind_t kind,
                  const char *subject, int64_t expiry_unix, char *out, size_t outlen,
                  char id_hex_out[CP_TOKEN_ID_HEX]) {
  size_t n = strlen(subject);
  if (!subject_ok(subject, n) || expiry_unix < 0) return -1;
  uint8_t raw[TOKEN_RAW_MAX];
  size_t len = 0;
  raw[len++] = TOKEN_VERSION;
  randombytes_buf(raw + len, CP_TOKEN_ID_BYTES);
  if (id_hex_out != NULL) cp_hex(raw + len, CP_TOKEN_ID_BYTES, id_hex_out);
  len += CP_TOKEN_ID_BYTES;
  for (int i = 7; i >= 0; i--) raw[len++] = (uint8_t)((uint64_t)expiry_unix >> (8 * i));
  raw[len++] = (uint8_t)n;
  memcpy(raw + len, subject, n);
  len += n;
  const char *prefix = prefix_of(kind);
  token_tag(secret, prefix, raw, len, raw + len);
  len += crypto_auth_BYTES;
  size_t need = TOKEN_PREFIX_LEN + sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  if (outlen < need || need > CP_TOKEN_MAX) return -1;
  memcpy(out, prefix, TOKEN_PREFIX_LEN);
  sodium_bin2base64(out + TOKEN_PREFIX_LEN, outlen - TOKEN_PREFIX_LEN, raw, len,
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  return 0;
}

cp_token_status_t cp_token_check(const unsigned char secret[CP_SECRET_BYTES], cp_token_kind_t kind,
                                 const char *token, cp_token_info_t *info, int64_t now_unix) {
  if (token == NULL) return CP_TOKEN_MALFORMED;
  size_t tlen = strnlen(token, CP_TOKEN_MAX);
  if (tlen >= CP_TOKEN_MAX || tlen <= TOKEN_PREFIX_LEN) return CP_TOKEN_MALFORMED;
  const char *prefix = prefix_of(kind);
  cp_token_kind_t other;
  /* the prefix is public (it names the kind), so an ordinary comparison is fine here */
  if (memcmp(token, prefix, TOKEN_PREFIX_LEN) != 0)
    return cp_token_kind_of(token, &other) == 0 ? CP_TOKEN_WRONG_KIND : CP_TOKEN_MALFORMED;
  uint8_t raw[TOKEN_RAW_MAX + 4];
  size_t len = 0;
  const char *end = NULL;
  if (sodium_base642bin(raw, sizeof raw, token + TOKEN_PREFIX_LEN, tlen - TOKEN_PREFIX_LEN, NULL,
                        &len, &end, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
      end != token + tlen)
    return CP_TOKEN_MALFORMED;
  if (len < TOKEN_HEAD + 1 + crypto_auth_BYTES || raw[0] != TOKEN_VERSION) return CP_TOKEN_MALFORMED;
  size_t n = raw[TOKEN_HEAD - 1];
  if (len != TOKEN_HEAD + n + crypto_auth_BYTES) return CP_TOKEN_MALFORMED;
  size_t plen = len - crypto_auth_BYTES;
  unsigned char key[crypto_auth_KEYBYTES];
  uint8_t msg[TOKEN_PREFIX_LEN + TOKEN_PAYLOAD_MAX];
  if (plen > TOKEN_PAYLOAD_MAX) return CP_TOKEN_MALFORMED;
  mac_key(secret, key);
  memcpy(msg, prefix, TOKEN_PREFIX_LEN);
  memcpy(msg + TOKEN_PREFIX_LEN, raw, plen);
  int bad = crypto_auth_verify(raw + plen, msg, TOKEN_PREFIX_LEN + plen, key); /* constant time */
  sodium_memzero(key, sizeof key);
  if (bad != 0) return CP_TOKEN_BAD_MAC;
  if (!subject_ok((const char *)raw + TOKEN_HEAD, n)) return CP_TOKEN_MALFORMED;
  uint64_t expiry = 0;
  for (int i = 0; i < 8; i++) expiry = (expiry << 8) | raw[1 + CP_TOKEN_ID_BYTES + i];
  if (info != NULL) {
    memcpy(info->subject, raw + TOKEN_HEAD, n);
    info->subject[n] = '\0';
    memcpy(info->id, raw + 1, CP_TOKEN_ID_BYTES);
    cp_hex(info->id, CP_TOKEN_ID_BYTES, info->id_hex);
    info->expiry = expiry > INT64_MAX ? INT64_MAX : (int64_t)expiry;
  }
  if (expiry > INT64_MAX) return CP_TOKEN_TOO_LONG;
  if ((int64_t)expiry <= now_unix) return CP_TOKEN_EXPIRED;
  int64_t max = kinds[kind].max_s;
  if ((int64_t)expiry - now_unix > max + CP_TOKEN_SKEW_S) return CP_TOKEN_TOO_LONG;
  return CP_TOKEN_OK;
}

int cp_token_id_parse(const char *hex, uint8_t id[CP_TOKEN_ID_BYTES]) {
  size_t bin = 0;
  const char *end = NULL;
  if (hex == NULL || strlen(hex) != 2 * CP_TOKEN_ID_BYTES) return -1;
  if (sodium_hex2bin(id, CP_TOKEN_ID_BYTES, hex, 2 * CP_TOKEN_ID_BYTES, NULL, &bin, &end) != 0 ||
      bin != CP_TOKEN_ID_BYTES || *end != '\0')
    return -1;
  return 0;
}

const char *cp_token_status_text(cp_token_status_t st) {
  switch (st) {
  case CP_TOKEN_OK: return "the token is valid";
  case CP_TOKEN_MALFORMED: return "the token is not a carepass token of the current format (version 2)";
  case CP_TOKEN_WRONG_KIND: return "the token is of the wrong kind for this route";
  case CP_TOKEN_BAD_MAC: return "the token is not genuine (bad signature)";
  case CP_TOKEN_EXPIRED: return "the token has expired; ask for a new one";
  case CP_TOKEN_TOO_LONG: return "the token's lifetime is longer than this deployment allows; ask for a new one";
  case CP_TOKEN_REVOKED: return "the token has been revoked; ask for a new one";
  }
  return "the token is invalid";
}
