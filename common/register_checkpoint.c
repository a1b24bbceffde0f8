/* register_checkpoint.c -- checkpoints as signed notes (c2sp.org/tlog-checkpoint, c2sp.org/signed-note). */
#include "cp_register.h"
#include "cp_regkeys.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EM_DASH_SP "\xE2\x80\x94 "   /* U+2014 then a space: starts every signature line */

int reg_checkpoint_body(const char *origin, uint64_t size, const uint8_t root[REG_HASH_BYTES],
                        char *out, size_t outlen) {
  char b64[64];
  if (cp_b64_encode(root, REG_HASH_BYTES, b64, sizeof b64) != 0) return -1;
  int n = snprintf(out, outlen, "%s\n%" PRIu64 "\n%s\n", origin, size, b64);
  if (n < 0 || (size_t)n >= outlen) return -1;
  return n;
}

int reg_checkpoint_sign(const cp_signkey_t *key, uint64_t size, const uint8_t root[REG_HASH_BYTES],
                        char *out, size_t outlen, char *err, size_t errlen) {
  int blen = reg_checkpoint_body(key->name, size, root, out, outlen);
  if (blen < 0) return cp_err(err, errlen, "checkpoint does not fit in %zu bytes", outlen);
  uint8_t sig[CP_KEYID_BYTES + crypto_sign_BYTES];
  memcpy(sig, key->key_id, CP_KEYID_BYTES);
  crypto_sign_detached(sig + CP_KEYID_BYTES, NULL, (const uint8_t *)out, (size_t)blen, key->sk);
  char b64[128];
  if (cp_b64_encode(sig, sizeof sig, b64, sizeof b64) != 0)
    return cp_err(err, errlen, "base64 of the checkpoint signature failed");
  int n = snprintf(out + blen, outlen - (size_t)blen, "\n" EM_DASH_SP "%s %s\n", key->name, b64);
  if (n < 0 || (size_t)n >= outlen - (size_t)blen)
    return cp_err(err, errlen, "checkpoint does not fit in %zu bytes", outlen);
  return blen + n;
}

/* Parse the checkpoint body text[0..len) (ends with '\n'). */
static int parse_body(const char *text, size_t len, char *origin, size_t originlen,
                      uint64_t *size, uint8_t root[REG_HASH_BYTES], char *err, size_t errlen) {
  const char *end = text + len;
  const char *nl1 = memchr(text, '\n', len);
  if (nl1 == NULL || nl1 == text) return cp_err(err, errlen, "checkpoint has no origin line");
  const char *l2 = nl1 + 1;
  const char *nl2 = memchr(l2, '\n', (size_t)(end - l2));
  if (nl2 == NULL || nl2 == l2) return cp_err(err, errlen, "checkpoint has no tree size line");
  const char *l3 = nl2 + 1;
  const char *nl3 = memchr(l3, '\n', (size_t)(end - l3));
  if (nl3 == NULL || nl3 == l3) return cp_err(err, errlen, "checkpoint has no root hash line");
  /* size: decimal, no sign, no leading zero */
  if ((nl2 - l2) > 1 && l2[0] == '0') return cp_err(err, errlen, "checkpoint tree size has a leading zero");
  uint64_t s = 0;
  for (const char *p = l2; p < nl2; p++) {
    if (*p < '0' || *p > '9') return cp_err(err, errlen, "checkpoint tree size is not a decimal number");
    unsigned d = (unsigned)(*p - '0');
    if (s > (UINT64_MAX - d) / 10) return cp_err(err, errlen, "checkpoint tree size overflows 64 bits");
    s = s * 10 + d;
  }
  char b64[64];
  size_t b64len = (size_t)(nl3 - l3);
  if (b64len >= sizeof b64) return cp_err(err, errlen, "checkpoint root hash line is too long");
  memcpy(b64, l3, b64len);
  b64[b64len] = '\0';
  uint8_t h[64];
  size_t hlen = 0;
  if (cp_b64_decode(b64, h, sizeof h, &hlen) != 0 || hlen != REG_HASH_BYTES)
    return cp_err(err, errlen, "checkpoint root hash is not base64 of 32 bytes");
  if (origin != NULL) {
    size_t olen = (size_t)(nl1 - text);
    if (olen >= originlen) return cp_err(err, errlen, "checkpoint origin is too long");
    memcpy(origin, text, olen);
    origin[olen] = '\0';
  }
  *size = s;
  memcpy(root, h, REG_HASH_BYTES);
  return 0;
}

/* Split a note into text (up to and including the newline before the blank
 * line) and signature block; checks the characters allowed in a note. */
static int split_note(const char *note, size_t len, size_t *textlen, char *err, size_t errlen) {
  if (len == 0 || len > REG_CHECKPOINT_MAX) return cp_err(err, errlen, "checkpoint note is empty or larger than %d bytes", REG_CHECKPOINT_MAX);
  if (note[len - 1] != '\n') return cp_err(err, errlen, "checkpoint note does not end with a newline");
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)note[i];
    if ((c < 0x20 && c != '\n') || c == 0x7f) return cp_err(err, errlen, "checkpoint note contains a control character");
  }
  /* the signature block starts after the last "\n\n" */
  size_t split = 0;
  bool found = false;
  for (size_t i = len - 1; i > 0; i--) {
    if (note[i] == '\n' && note[i - 1] == '\n') {
      split = i - 1;
      found = true;
      break;
    }
  }
  if (!found || split == 0) return cp_err(err, errlen, "checkpoint note has no signature block");
  *textlen = split + 1;
  return 0;
}

int reg_checkpoint_parse(const char *note, size_t notelen, char *origin, size_t originlen,
                         uint64_t *size, uint8_t root[REG_HASH_BYTES], char *err, size_t errlen) {
  size_t textlen;
  if (split_note(note, notelen, &textlen, err, errlen) != 0) return -1;
  return parse_body(note, textlen, origin, originlen, size, root, err, errlen);
}

/* A verifier key parsed once for checking signature lines. */
typedef struct {
  char name[128];                    // key name
  unsigned char pk[32];              // Ed25519 public key
  unsigned char kid[CP_KEYID_BYTES]; // note key id
  bool seen;                         // a signature line names this key
  bool verified;                     // ...and its signature verifies
} ckey_t;

/* Check every signature line of the note (text is note[0..textlen)) against keys:
 * marks seen/verified per key. Lines by unknown keys are ignored (signed-note). */
static int check_sig_lines(const char *note, size_t notelen, size_t textlen, ckey_t *keys, size_t nkeys,
                           char *err, size_t errlen) {
  const char *p = note + textlen + 1;
  const char *end = note + notelen;
  size_t dlen = strlen(EM_DASH_SP);
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));   /* note ends with '\n' */
    if ((size_t)(nl - p) < dlen || memcmp(p, EM_DASH_SP, dlen) != 0)
      return cp_err(err, errlen, "checkpoint signature line does not start with an em dash");
    const char *name = p + dlen;
    const char *sp = memchr(name, ' ', (size_t)(nl - name));
    if (sp == NULL || sp == name) return cp_err(err, errlen, "checkpoint signature line is malformed");
    char b64[256];
    size_t b64len = (size_t)(nl - sp - 1);
    if (b64len == 0 || b64len >= sizeof b64) return cp_err(err, errlen, "checkpoint signature is malformed");
    memcpy(b64, sp + 1, b64len);
    b64[b64len] = '\0';
    uint8_t sig[192];
    size_t siglen = 0;
    if (cp_b64_decode(b64, sig, sizeof sig, &siglen) != 0 || siglen < CP_KEYID_BYTES)
      return cp_err(err, errlen, "checkpoint signature is not valid base64");
    for (size_t k = 0; k < nkeys; k++) {
      ckey_t *ck = &keys[k];
      if ((size_t)(sp - name) == strlen(ck->name) && memcmp(name, ck->name, strlen(ck->name)) == 0 &&
          memcmp(sig, ck->kid, CP_KEYID_BYTES) == 0) {
        ck->seen = true;
        if (siglen == CP_KEYID_BYTES + crypto_sign_BYTES &&
            crypto_sign_verify_detached(sig + CP_KEYID_BYTES, (const uint8_t *)note, textlen, ck->pk) == 0)
          ck->verified = true;
      }
    }
    p = nl + 1;
  }
  return 0;
}

/* Parse n vkeys into a malloc'd ckey_t array. */
static ckey_t *parse_vkeys(const char *const *vkeys, size_t n, char *err, size_t errlen) {
  if (n == 0) {
    cp_err(err, errlen, "no verifier key given");
    return NULL;
  }
  ckey_t *keys = cp_xcalloc(n, sizeof *keys);
  for (size_t i = 0; i < n; i++) {
    char kerr[CP_ERRLEN];
    if (cp_vkey_parse(vkeys[i], keys[i].name, sizeof keys[i].name, keys[i].pk, keys[i].kid, kerr,
                      sizeof kerr) != 0) {
      cp_err(err, errlen, "bad verifier key: %s", kerr);
      free(keys);
      return NULL;
    }
  }
  return keys;
}

int reg_checkpoint_open_any(const char *note, size_t notelen, const char *const *vkeys, size_t n,
                            char *origin, size_t originlen, uint64_t *size, uint8_t root[REG_HASH_BYTES],
                            size_t *which, char *err, size_t errlen) {
  ckey_t *keys = parse_vkeys(vkeys, n, err, errlen);
  if (keys == NULL) return -1;
  int rc = -1;
  size_t textlen;
  if (split_note(note, notelen, &textlen, err, errlen) != 0) goto out;
  if (check_sig_lines(note, notelen, textlen, keys, n, err, errlen) != 0) goto out;
  size_t good = n;
  bool seen = false;
  for (size_t k = 0; k < n; k++) {
    seen = seen || keys[k].seen;
    if (keys[k].verified && good == n) good = k;
  }
  if (good == n) {
    if (n == 1 && !seen)
      cp_err(err, errlen, "checkpoint has no signature by key %s", keys[0].name);
    else if (n == 1)
      cp_err(err, errlen, "checkpoint signature by key %s does not verify", keys[0].name);
    else
      cp_err(err, errlen, "checkpoint has no valid signature by any of the %zu known keys%s", n,
             seen ? " (a signature line names a known key but does not verify)" : "");
    goto out;
  }
  char o[256];
  if (parse_body(note, textlen, o, sizeof o, size, root, err, errlen) != 0) goto out;
  if (strcmp(o, keys[good].name) != 0) {
    cp_err(err, errlen, "checkpoint origin \"%s\" is not the key name \"%s\"", o, keys[good].name);
    goto out;
  }
  if (origin != NULL) {
    if (strlen(o) >= originlen) {
      cp_err(err, errlen, "checkpoint origin is too long");
      goto out;
    }
    strcpy(origin, o);
  }
  if (which != NULL) *which = good;
  rc = 0;
out:
  free(keys);
  return rc;
}

int reg_checkpoint_open(const char *note, size_t notelen, const char *vkey, char *origin,
                        size_t originlen, uint64_t *size, uint8_t root[REG_HASH_BYTES],
                        char *err, size_t errlen) {
  const char *one[1] = {vkey};
  return reg_checkpoint_open_any(note, notelen, one, 1, origin, originlen, size, root, NULL, err, errlen);
}

int reg_checkpoint_count_sigs(const char *note, size_t notelen, const char *const *vkeys, size_t n,
                              char *err, size_t errlen) {
  ckey_t *keys = parse_vkeys(vkeys, n, err, errlen);
  if (keys == NULL) return -1;
  int count = -1;
  size_t textlen;
  if (split_note(note, notelen, &textlen, err, errlen) == 0 &&
      check_sig_lines(note, notelen, textlen, keys, n, err, errlen) == 0) {
    count = 0;
    for (size_t k = 0; k < n; k++) count += keys[k].verified ? 1 : 0;
  }
  free(keys);
  return count;
}

int reg_checkpoint_sign_multi(const cp_signkey_t *const *keys, size_t nkeys, uint64_t size,
                              const uint8_t root[REG_HASH_BYTES], char *out, size_t outlen, char *err,
                              size_t errlen) {
  if (nkeys == 0) return cp_err(err, errlen, "no signing key given");
  for (size_t k = 1; k < nkeys; k++)
    if (strcmp(keys[k]->name, keys[0]->name) != 0)
      return cp_err(err, errlen, "checkpoint keys have different names (%s, %s)", keys[0]->name, keys[k]->name);
  int blen = reg_checkpoint_body(keys[0]->name, size, root, out, outlen);
  if (blen < 0 || (size_t)blen + 1 >= outlen) return cp_err(err, errlen, "checkpoint does not fit in %zu bytes", outlen);
  size_t used = (size_t)blen;
  out[used++] = '\n';
  for (size_t k = 0; k < nkeys; k++) {
    uint8_t sig[CP_KEYID_BYTES + crypto_sign_BYTES];
    memcpy(sig, keys[k]->key_id, CP_KEYID_BYTES);
    crypto_sign_detached(sig + CP_KEYID_BYTES, NULL, (const uint8_t *)out, (size_t)blen, keys[k]->sk);
    char b64[128];
    if (cp_b64_encode(sig, sizeof sig, b64, sizeof b64) != 0)
      return cp_err(err, errlen, "base64 of the checkpoint signature failed");
    int n = snprintf(out + used, outlen - used, EM_DASH_SP "%s %s\n", keys[k]->name, b64);
    if (n < 0 || (size_t)n >= outlen - used) return cp_err(err, errlen, "checkpoint does not fit in %zu bytes", outlen);
    used += (size_t)n;
  }
  return (int)used;
}
