/* cp_crypto.h -- keys, signatures and worker pseudonyms (libsodium).
 * Key files are written with mode 0600 and refused when group/world readable. */
#ifndef CP_CRYPTO_H
#define CP_CRYPTO_H

#include <sodium.h>
#include "cp_util.h"

#define CP_PSEUDONYM_BYTES 32
#define CP_SECRET_BYTES 32
#define CP_KEYID_BYTES 4
#define CP_ENTRY_DOMAIN "carepass/entry/v1\n"   /* signature domain for register entries */

/* An Ed25519 signing key with the name it signs under (the note key name, e.g. the log origin). */
typedef struct {
  char name[128];                                // key name (note signer name)
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];  // public key
  unsigned char sk[crypto_sign_SECRETKEYBYTES];  // secret key (wiped by cp_signkey_wipe)
  unsigned char key_id[CP_KEYID_BYTES];          // note key id: SHA-256(name || 0x0A || 0x01 || pk)[:4]
} cp_signkey_t;

/* Call once at start (sodium_init); -1 if libsodium cannot initialise. */
int cp_crypto_init(void) CP_WUR;

/* Load an Ed25519 key from `path` or, if it does not exist and create is true,
 * generate one and write it (mode 0600, atomically). The file is a note signer
 * key: "PRIVATE+KEY+<name>+<hex keyid>+<base64(0x01||seed32)>". Refuses a file
 * whose mode allows group/other access. */
int cp_signkey_load(const char *path, const char *name, bool create, cp_signkey_t *key,
                    char *err, size_t errlen) CP_WUR;
void cp_signkey_wipe(cp_signkey_t *key);

/* Note key id of (name, pk). */
void cp_key_id(const char *name, const unsigned char pk[32], unsigned char id[CP_KEYID_BYTES]);
/* Verifier key in note vkey format "<name>+<8 hex>+<base64(0x01||pk)>". */
int cp_vkey_format(const char *name, const unsigned char pk[32], char *out, size_t outlen) CP_WUR;
int cp_vkey_parse(const char *vkey, char *name, size_t namelen, unsigned char pk[32],
                  unsigned char id[CP_KEYID_BYTES], char *err, size_t errlen) CP_WUR;

/* Sign / verify a register entry: Ed25519 over CP_ENTRY_DOMAIN || entry. */
void cp_sign_entry(const cp_signkey_t *key, const uint8_t *entry, size_t len, unsigned char sig[64]);
bool cp_verify_entry(const unsigned char pk[32], const uint8_t *entry, size_t len, const unsigned char sig[64]);

/* A 32-byte deployment secret (pseudonym key) in a 0600 file holding hex;
 * created when missing and create is true. Creation is race-free: when several processes
 * create it at once, one file wins and every caller gets its secret. */
int cp_secret_load(const char *path, bool create, unsigned char secret[CP_SECRET_BYTES],
                   char *err, size_t errlen) CP_WUR;

/* National Insurance number: normalise (uppercase, strip spaces) and validate
 * (two prefix letters per HMRC rules, six digits, suffix A-D). out needs 10 bytes.
 * Returns 0 when valid, -1 otherwise. */
int cp_ni_normalise(const char *in, char out[10]) CP_WUR;

/* Keyed pseudonym of a normalised NI number: BLAKE2b-256 (crypto_generichash)
 * keyed with the deployment secret, over "carepass/worker/v1\n" || ni. */
void cp_pseudonym(const unsigned char secret[CP_SECRET_BYTES], const char *ni_norm,
                  unsigned char out[CP_PSEUDONYM_BYTES]);

/* CurveZMQ key pair file (Z85 public + secret, 40 chars each), 0600.
 * Created when missing and create is true. */
int cp_curve_load(const char *path, bool create, char pub_z85[41], char sec_z85[41],
                  char *err, size_t errlen) CP_WUR;

/* Base64 (standard, padded) helpers around sodium_bin2base64. */
int cp_b64_encode(const uint8_t *in, size_t len, char *out, size_t outlen) CP_WUR;
int cp_b64_decode(const char *in, uint8_t *out, size_t outmax, size_t *outlen) CP_WUR;

#endif
