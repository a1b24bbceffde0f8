/* notify_sign.h -- ids, Standard Webhooks signatures (v1 HMAC-SHA256 with the endpoint's whsec_
 * secrets, v1a Ed25519 with notify's key), backoff. */
#ifndef NOTIFY_SIGN_H
#define NOTIFY_SIGN_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include "cp_util.h"
#include "cp_crypto.h"
#include "cp_whsec.h"

#define NT_ID_LEN        36                 /* "msg_" + 32 hex */
#define NT_ID_SIZE       (NT_ID_LEN + 1)
#define NT_V1_SIG_LEN    47                 /* "v1," + base64(32 bytes) */
#define NT_V1A_SIG_LEN   92                 /* "v1a," + base64(64 bytes) */
#define NT_SECRETS_MAX   2                  /* v1 signatures per delivery: current + previous (overlap) */
/* "v1,<current> v1,<previous> v1a,<Ed25519>" + NUL fits */
#define NT_SIG_HDR_SIZE  256
#define NT_PUBKEY_SIZE   64                 /* "whpk_" + base64(32 bytes) + NUL fits */

/* Deterministic webhook-id of a job: "msg_" + hex of the first 16 bytes of
 * BLAKE2b(type 0x00 provider 0x00 provider_event_id 0x00 entry_index as 8 bytes BE),
 * so upstream duplicates of one job collapse into one delivery. */
void nt_delivery_id(const char *type, const char *provider, const char *event_id,
                    uint64_t entry_index, char out[NT_ID_SIZE]);

/* The webhook-signature value "v1a,<base64 Ed25519 signature of '<id>.<timestamp>.<body>'>"
 * into out (at least NT_V1A_SIG_LEN + 1 bytes). */
int nt_sign(const cp_signkey_t *key, const char *id, int64_t timestamp,
            const char *body, size_t bodylen, char *out, size_t outlen) CP_WUR;

/* "v1,<base64 HMAC-SHA256 keyed with the secret's bytes over '<id>.<timestamp>.<body>'>" into out
 * (at least NT_V1_SIG_LEN + 1 bytes): the signature the Standard Webhooks libraries verify. */
int nt_sign_v1(const cp_whsec_key_t *secret, const char *id, int64_t timestamp,
               const char *body, size_t bodylen, char *out, size_t outlen) CP_WUR;

/* The endpoint's secrets that sign a delivery: the current one first, then the previous one
 * while its overlap lasts. n = 0: the endpoint has none (v1a only). Wipe with nt_secrets_wipe. */
typedef struct {
  cp_whsec_key_t key[NT_SECRETS_MAX]; // decoded secrets, current first
  size_t n;                           // how many are used
} nt_secrets_t;
void nt_secrets_wipe(nt_secrets_t *s);

/* The whole webhook-signature header value: "v1,<sig> " for each secret, then "v1a,<sig>",
 * space-separated as Standard Webhooks lists several signatures (outlen >= NT_SIG_HDR_SIZE). */
int nt_sign_header(const cp_signkey_t *key, const nt_secrets_t *secrets, const char *id, int64_t timestamp,
                   const char *body, size_t bodylen, char *out, size_t outlen) CP_WUR;

/* Does one of the "v1," signatures of the header verify with secret (constant-time compare)?
 * For tests and tools. */
bool nt_verify_v1(const cp_whsec_key_t *secret, const char *id, int64_t timestamp,
                  const char *body, size_t bodylen, const char *sig_header);

/* Verify a "v1a,..." header (space-separated list; any valid one passes). For tests
 * and tools. */
bool nt_verify(const unsigned char pk[32], const char *id, int64_t timestamp,
               const char *body, size_t bodylen, const char *sig_header);

/* The public key as Standard Webhooks writes Ed25519 public keys: "whpk_" + base64. */
int nt_pubkey_format(const unsigned char pk[32], char *out, size_t outlen) CP_WUR;

/* Delay before the attempt after `attempts` failed ones (attempts >= 1):
 * min(base * 2^(attempts-1), max), without jitter. */
int64_t nt_backoff_base_ms(int attempts, int64_t base_ms, int64_t max_ms);
/* The same with +-20% jitter (randombytes_uniform); never below 1 ms. */
int64_t nt_backoff_ms(int attempts, int64_t base_ms, int64_t max_ms);

/* Deterministic webhook-id of one fan-out delivery: "msg_" + hex of the first 16 bytes
 * of BLAKE2b("fanout" 0 type 0 recipient 0 entry_index(8 BE) stage(1)), recipient being
 * "provider:<id>", "sub:<sub id>" or "worker". */
void nt_fanout_id(const char *type, const char *recipient, uint64_t entry_index, int stage,
                  char out[NT_ID_SIZE]);

#endif
