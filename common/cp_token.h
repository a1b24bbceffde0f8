/* cp_token.h -- stateless bearer tokens MAC'd with a deployment secret (CAREPASS_TOKEN_SECRET):
 * provider API tokens ("cpp_...") and worker tokens ("cpw_...").
 *
 * token = prefix || base64url-nopad(payload || tag)
 *   prefix   "cpp_" (CP_TOKEN_PROVIDER) or "cpw_" (CP_TOKEN_WORKER)
 *   payload  version 0x01 | expiry (uint64 big-endian, unix seconds) | subject length (1 byte) | subject
 *   tag      crypto_auth (HMAC-SHA-512-256) over prefix || payload, keyed with
 *            BLAKE2b(key = secret, "carepass/token/v1") -- the secret itself is never the MAC key
 * The subject is printable ASCII (0x21..0x7e), 1..CP_TOKEN_SUBJECT_MAX bytes: a provider id,
 * or a worker pseudonym in hex. It is readable by whoever holds the token (not encrypted):
 * never put personal data in a subject. Checking is constant time (crypto_auth_verify).
 * There is no revocation list: rotate TOKEN_SECRET to invalidate every token at once.
 */
#ifndef CP_TOKEN_H
#define CP_TOKEN_H

#include <stdint.h>
#include "cp_crypto.h"
#include "cp_util.h"

#define CP_TOKEN_SUBJECT_MAX 64   /* longest subject (bytes) */
#define CP_TOKEN_MAX 200          /* longest token text incl. NUL */

/* Which kind of token (the prefix). */
typedef enum {
  CP_TOKEN_PROVIDER = 0,  // "cpp_": provider API token, subject = provider id
  CP_TOKEN_WORKER,        // "cpw_": worker token, subject = worker pseudonym hex
} cp_token_kind_t;

/* Result of cp_token_check. */
typedef enum {
  CP_TOKEN_OK = 0,        // valid
  CP_TOKEN_MALFORMED,     // not a token of this format (prefix, base64url, lengths, version)
  CP_TOKEN_WRONG_KIND,    // a well-formed token of the other kind
  CP_TOKEN_BAD_MAC,       // the tag does not match (forged, altered, or another deployment's secret)
  CP_TOKEN_EXPIRED,       // the MAC is good but now >= expiry
} cp_token_status_t;

/* Make a token for subject valid until expiry_unix (exclusive). out needs CP_TOKEN_MAX
 * bytes. -1 when the subject is empty, too long or not printable ASCII. */
int cp_token_make(const unsigned char secret[CP_SECRET_BYTES], cp_token_kind_t kind,
                  const char *subject, int64_t expiry_unix, char *out, size_t outlen) CP_WUR;

/* Check a token of `kind` at time now_unix. On CP_TOKEN_OK the subject is copied into
 * subject_out (subject_len >= CP_TOKEN_SUBJECT_MAX + 1) and *expiry_out (may be NULL)
 * receives the expiry. The MAC is checked before the expiry (an expired token is only
 * reported as such when it is genuine). */
cp_token_status_t cp_token_check(const unsigned char secret[CP_SECRET_BYTES], cp_token_kind_t kind,
                                 const char *token, char *subject_out, size_t subject_len,
                                 int64_t *expiry_out, int64_t now_unix);

/* A sentence for a status, e.g. "the token has expired". */
const char *cp_token_status_text(cp_token_status_t st);

#endif
