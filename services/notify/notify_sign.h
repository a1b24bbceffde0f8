/* notify_sign.h -- ids, Standard Webhooks signatures, backoff. */
#ifndef NOTIFY_SIGN_H
#define NOTIFY_SIGN_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include "cp_util.h"
#include "cp_crypto.h"

#define NT_ID_LEN        36                 /* "msg_" + 32 hex */
#define NT_ID_SIZE       (NT_ID_LEN + 1)
#define NT_SIG_HDR_SIZE  128                /* "v1a," + base64(64 bytes) + NUL fits */
#define NT_PUBKEY_SIZE   64                 /* "whpk_" + base64(32 bytes) + NUL fits */

/* Deterministic webhook-id of a job: "msg_" + hex of the first 16 bytes of
 * BLAKE2b(type 0x00 provider 0x00 provider_event_id 0x00 entry_index as 8 bytes BE),
 * so upstream duplicates of one job collapse into one delivery. */
void nt_delivery_id(const char *type, const char *provider, const char *event_id,
                    uint64_t entry_index, char out[NT_ID_SIZE]);

/* The webhook-signature header value "v1a,<base64 Ed25519 signature of
 * '<id>.<timestamp>.<body>'>" into out (NT_SIG_HDR_SIZE bytes). */
int nt_sign(const cp_signkey_t *key, const char *id, int64_t timestamp,
            const char *body, size_t bodylen, char *out, size_t outlen) CP_WUR;

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
