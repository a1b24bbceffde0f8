/* cp_whsec.h -- Standard Webhooks symmetric ("v1") endpoint secrets: the whsec_ format, and the
 * store of training providers' secrets (one 0600 file under the key directory, written only by
 * `carepass webhook-secret`, read by notify, which follows it on disk).
 *
 * A secret is "whsec_" + base64 (standard alphabet, padded) of 24..64 random bytes (the spec's
 * bounds); carepass makes 32-byte ones. The HMAC key is the decoded bytes.
 *
 * The store file (CAREPASS_WEBHOOK_SECRETS), one provider per line, sorted by provider id:
 *
 *   # comment lines and blank lines are ignored
 *   <provider id> <whsec_ current> <created unix s> <whsec_ previous | -> <previous valid until unix s | 0>
 *
 * The previous secret still signs ("v1," beside the current one) until its valid-until time: the
 * overlap that lets a provider switch to a rotated secret without losing a delivery. The file is
 * refused when group or others may read it; it is replaced atomically (temp file, fsync, rename),
 * under an flock on "<path>.lock" so two operators' rotations cannot lose one another. */
#ifndef CP_WHSEC_H
#define CP_WHSEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "cp_catalogue.h"
#include "cp_util.h"

#define CP_WHSEC_PREFIX "whsec_"
#define CP_WHSEC_BYTES 32        /* bytes of a secret carepass makes */
#define CP_WHSEC_MIN_BYTES 24    /* shortest secret accepted (Standard Webhooks: at least 24 bytes) */
#define CP_WHSEC_MAX_BYTES 64    /* longest secret accepted (Standard Webhooks: 512 bits) */
#define CP_WHSEC_SIZE 96         /* "whsec_" + base64 of 64 bytes (88) + NUL fits */
#define CP_WHSEC_STORE_MAX 10000 /* most providers in the store file */

/* A decoded secret: the HMAC-SHA256 key (wipe with cp_whsec_key_wipe). */
typedef struct {
  unsigned char key[CP_WHSEC_MAX_BYTES]; // the key bytes
  size_t len;                            // how many are used (CP_WHSEC_MIN_BYTES..CP_WHSEC_MAX_BYTES)
} cp_whsec_key_t;

/* A new random secret (CP_WHSEC_BYTES from randombytes) as "whsec_<base64>". */
void cp_whsec_new(char out[CP_WHSEC_SIZE]);
/* Decode "whsec_<base64>" into key; -1 with err (which never repeats the text) when the prefix,
 * the base64 or the length (CP_WHSEC_MIN_BYTES..CP_WHSEC_MAX_BYTES) is wrong. */
int cp_whsec_parse(const char *text, cp_whsec_key_t *key, char *err, size_t errlen) CP_WUR;
void cp_whsec_key_wipe(cp_whsec_key_t *key);

/* One provider's secrets in the store. */
typedef struct {
  char provider[PROV_ID_MAX];    // provider id (registry id)
  char secret[CP_WHSEC_SIZE];    // the current secret
  int64_t created;               // unix s the current secret was made
  char previous[CP_WHSEC_SIZE];  // the secret before the last rotation ("" = none)
  int64_t previous_until;        // unix s until which previous still signs (0 = none)
} cp_whsec_entry_t;

typedef struct cp_whsec_store cp_whsec_store_t;

/* Read the store at path (a missing file is an empty store). -1 with err when it cannot be read,
 * is readable by group or others, or a line is malformed (the line number, never its text). */
int cp_whsec_store_read(const char *path, cp_whsec_store_t **out, char *err, size_t errlen) CP_WUR;
/* The provider's entry, or NULL. Valid until the store is destroyed. */
const cp_whsec_entry_t *cp_whsec_store_find(const cp_whsec_store_t *st, const char *provider);
size_t cp_whsec_store_count(const cp_whsec_store_t *st);
/* Wipes every secret; NULL-safe; sets *st to NULL. */
void cp_whsec_store_destroy(cp_whsec_store_t **st);

/* The one writer (`carepass webhook-secret`): under the store's lock, give provider a secret when
 * it has none (*made = true), or, with rotate, a new one whose predecessor stays valid for
 * overlap_s more seconds (*made = true); otherwise leave it (*made = false). *out is the entry in
 * force afterwards (the caller wipes it with sodium_memzero). */
int cp_whsec_store_issue(const char *path, const char *provider, bool rotate, int64_t now_s, int64_t overlap_s,
                         cp_whsec_entry_t *out, bool *made, char *err, size_t errlen) CP_WUR;

/* The store followed on disk: re-read when the file changes (checked at most every
 * CP_WHSEC_FOLLOW_MS), so a rotation needs no restart. A version that does not load leaves the
 * previous one in force and is logged once. */
#define CP_WHSEC_FOLLOW_MS 200
typedef struct cp_whsec_follow cp_whsec_follow_t;
/* The first read must succeed (a missing file is an empty store). */
int cp_whsec_follow_new(const char *path, cp_whsec_follow_t **out, char *err, size_t errlen) CP_WUR;
/* Re-read when changed (and CP_WHSEC_FOLLOW_MS has passed since the last look). */
void cp_whsec_follow_refresh(cp_whsec_follow_t *f);
/* The store in force (never NULL; valid until the next refresh). */
const cp_whsec_store_t *cp_whsec_follow_store(const cp_whsec_follow_t *f);
void cp_whsec_follow_destroy(cp_whsec_follow_t **f);

#endif
