/* register_hash.c -- RFC 6962 Merkle tree hashing for the register (SHA-256 via libsodium). */
#include "cp_register.h"

#include <assert.h>
#include <string.h>

void reg_leaf_hash(const uint8_t *entry, size_t len, uint8_t out[REG_HASH_BYTES]) {
  static const uint8_t prefix = 0x00;
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  crypto_hash_sha256_update(&st, &prefix, 1);
  crypto_hash_sha256_update(&st, entry, len);
  crypto_hash_sha256_final(&st, out);
}

void reg_node_hash(const uint8_t l[REG_HASH_BYTES], const uint8_t r[REG_HASH_BYTES],
                   uint8_t out[REG_HASH_BYTES]) {
  uint8_t buf[1 + 2 * REG_HASH_BYTES];
  buf[0] = 0x01;
  memcpy(buf + 1, l, REG_HASH_BYTES);
  memcpy(buf + 1 + REG_HASH_BYTES, r, REG_HASH_BYTES);
  crypto_hash_sha256(out, buf, sizeof buf);
}

void reg_empty_root(uint8_t out[REG_HASH_BYTES]) { crypto_hash_sha256(out, NULL, 0); }

/* Largest power of two strictly below n (n >= 2). */
static size_t split_point(size_t n) {
  size_t k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

void reg_hashes_root(const reg_hash_t *hashes, size_t n, uint8_t out[REG_HASH_BYTES]) {
  assert(n >= 1);
  if (n == 1) {
    memmove(out, hashes[0], REG_HASH_BYTES);
    return;
  }
  size_t k = split_point(n);
  uint8_t l[REG_HASH_BYTES], r[REG_HASH_BYTES];
  reg_hashes_root(hashes, k, l);
  reg_hashes_root(hashes + k, n - k, r);
  reg_node_hash(l, r, out);
}
