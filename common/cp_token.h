/* cp_token.h -- bearer tokens MAC'd with a deployment secret (CAREPASS_TOKEN_SECRET): provider API
 * tokens ("cpp_..."), worker tokens ("cpw_...") and employer API tokens ("cpe_..."), each with a
 * random id that a revocation list (CAREPASS_REVOKED_TOKENS, one id per line) can name.
 *
 * token = prefix || base64url-nopad(payload || tag)
 *   prefix   "cpp_" (CP_TOKEN_PROVIDER), "cpw_" (CP_TOKEN_WORKER) or "cpe_" (CP_TOKEN_EMPLOYER)
 *   payload  version 0x02 | id (16 random bytes) | expiry (uint64 big-endian, unix seconds)
 *            | subject length (1 byte) | subject
 *   tag      crypto_auth (HMAC-SHA-512-256) over prefix || payload, keyed with
 *            BLAKE2b(key = secret, "carepass/token/v1") -- the secret itself is never the MAC key
 * The subject is printable ASCII (0x21..0x7e), 1..CP_TOKEN_SUBJECT_MAX bytes: a provider id, a
 * worker pseudonym in hex, or an employer id (data/employers.json). The prefix is inside the MAC,
 * so a token of one kind cannot be turned into another by changing its prefix. The subject is
 * readable by whoever holds the token (not encrypted): never put personal data in a subject.
 * Checking is constant time (crypto_auth_verify).
 *
 * Version 0x01 tokens (no id, provider tokens of up to 10 years) are refused as MALFORMED: they
 * cannot be revoked one by one, so accepting them until expiry would keep exactly the
 * long-lived, unrevocable credentials this format retires. Re-issue tokens after upgrading.
 *
 * Lifetimes are bounded when a token is checked, not only when it is made: a genuine token whose
 * expiry lies further ahead than CP_TOKEN_PROVIDER_MAX_S / CP_TOKEN_WORKER_MAX_S /
 * CP_TOKEN_EMPLOYER_MAX_S (plus CP_TOKEN_SKEW_S) is refused (CP_TOKEN_TOO_LONG), whatever tool
 * made it.
 *
 * Revocation list file: text, one token id (32 lowercase hex) per line, '#' comment lines and
 * blank lines ignored; no personal data (ids are random). Written whole and crash-safely (temp
 * file, fsync, rename, directory fsync) under an flock on "<path>.lock". A file missing at start
 * is an empty list. cp_token_revlist_t re-reads it when its inode, size or mtime change, so a
 * running service follows `carepass token revoke` without a restart; a changed file that does not
 * parse, or a file that disappears, leaves the previous list in force (fail closed, logged). To
 * un-revoke, edit the file (write it whole and rename it into place).
 */
#ifndef CP_TOKEN_H
#define CP_TOKEN_H

#include <stdbool.h>
#include <stdint.h>
#include "cp_crypto.h"
#include "cp_util.h"

#define CP_TOKEN_SUBJECT_MAX 64   /* longest subject (bytes) */
#define CP_TOKEN_MAX 200          /* longest token text incl. NUL */
#define CP_TOKEN_ID_BYTES 16      /* random token id */
#define CP_TOKEN_ID_HEX (2 * CP_TOKEN_ID_BYTES + 1) /* id as hex incl. NUL */
#define CP_TOKEN_REVOKED_MAX 100000 /* most ids in a revocation list */

#define CP_TOKEN_PROVIDER_MAX_S (365LL * 86400)  /* longest provider token lifetime (a year) */
#define CP_TOKEN_WORKER_MAX_S (72LL * 3600)      /* longest worker token lifetime (72 hours) */
#define CP_TOKEN_EMPLOYER_MAX_S (365LL * 86400)  /* longest employer token lifetime (a year, as a provider's) */
#define CP_TOKEN_SKEW_S 300                      /* clock skew allowed between issuer and checker */

/* Which kind of token (the prefix). */
typedef enum {
  CP_TOKEN_PROVIDER = 0,  // "cpp_": provider API token, subject = provider id
  CP_TOKEN_WORKER,        // "cpw_": worker token, subject = worker pseudonym hex
  CP_TOKEN_EMPLOYER,      // "cpe_": employer API token, subject = employer id
  CP_TOKEN_KINDS          // number of kinds (not a kind)
} cp_token_kind_t;

/* Result of cp_token_check. */
typedef enum {
  CP_TOKEN_OK = 0,        // valid
  CP_TOKEN_MALFORMED,     // not a token of this format (prefix, base64url, lengths, version)
  CP_TOKEN_WRONG_KIND,    // a token with another kind's prefix
  CP_TOKEN_BAD_MAC,       // the tag does not match (forged, altered, or another deployment's secret)
  CP_TOKEN_EXPIRED,       // the MAC is good but now >= expiry
  CP_TOKEN_TOO_LONG,      // the MAC is good but the expiry is beyond the kind's longest lifetime
  CP_TOKEN_REVOKED,       // genuine and unexpired, but its id is on the revocation list (cp_token_revlist_has)
} cp_token_status_t;

/* What a genuine token says (cp_token_check fills it on CP_TOKEN_OK, EXPIRED and TOO_LONG). */
typedef struct {
  char subject[CP_TOKEN_SUBJECT_MAX + 1];  // provider id, worker pseudonym hex or employer id
  uint8_t id[CP_TOKEN_ID_BYTES];           // the token's random id
  char id_hex[CP_TOKEN_ID_HEX];            // the id as lowercase hex (safe to log: not a credential)
  int64_t expiry;                          // unix seconds, exclusive
} cp_token_info_t;

/* Make a token for subject valid until expiry_unix (exclusive) with a fresh random id. out needs
 * CP_TOKEN_MAX bytes; id_hex_out (may be NULL) receives the id. -1 when the subject is empty,
 * too long or not printable ASCII. (The lifetime bound is the caller's and the checker's.) */
int cp_token_make(const unsigned char secret[CP_SECRET_BYTES], cp_token_kind_t kind,
                  const char *subject, int64_t expiry_unix, char *out, size_t outlen,
                  char id_hex_out[CP_TOKEN_ID_HEX]) CP_WUR;

/* Check a token of `kind` at time now_unix: format, MAC (constant time), expiry, lifetime bound.
 * info (may be NULL) is filled when the MAC is good. The revocation list is a separate step
 * (cp_token_revlist_has), since it is state a service holds. */
cp_token_status_t cp_token_check(const unsigned char secret[CP_SECRET_BYTES], cp_token_kind_t kind,
                                 const char *token, cp_token_info_t *info, int64_t now_unix);

/* The kind a token's prefix names: 0, or -1 when it has none of the prefixes (the MAC is not
 * checked: only cp_token_check says whether the token is genuine). */
int cp_token_kind_of(const char *token, cp_token_kind_t *kind) CP_WUR;
/* "provider", "worker" or "employer". */
const char *cp_token_kind_name(cp_token_kind_t kind);

/* A sentence for a status, e.g. "the token has expired". */
const char *cp_token_status_text(cp_token_status_t st);

/* Parse 32 hex digits (either case) into an id; -1 otherwise. */
int cp_token_id_parse(const char *hex, uint8_t id[CP_TOKEN_ID_BYTES]) CP_WUR;

/* A revocation list followed on disk (thread safe). */
typedef struct cp_token_revlist cp_token_revlist_t;

/* Open the list at path (loaded now; a missing file is empty). -1 when the file exists but
 * cannot be read or parsed. */
int cp_token_revlist_new(const char *path, cp_token_revlist_t **out, char *err, size_t errlen) CP_WUR;
void cp_token_revlist_destroy(cp_token_revlist_t **rl);
/* True when id is revoked. Re-reads the file first when it changed (stat: inode, size, mtime);
 * when a changed file cannot be read, or is gone, the previous list stays in force (logged once). */
bool cp_token_revlist_has(cp_token_revlist_t *rl, const uint8_t id[CP_TOKEN_ID_BYTES]);
/* Ids in the list now. */
size_t cp_token_revlist_count(cp_token_revlist_t *rl);

/* Add id_hex to the list file at path (created, 0600, when missing), crash-safely and under
 * the lock file; *added is false when it was already there. */
int cp_token_revoke(const char *path, const char *id_hex, bool *added, char *err, size_t errlen) CP_WUR;

#endif
