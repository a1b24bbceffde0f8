/* register_proof.c -- RFC 6962 / RFC 9162 Merkle inclusion and consistency proofs. */
#include "register_internal.h"

#include <inttypes.h>
#include <string.h>

/* Largest power of two strictly below n (n >= 2). */
static uint64_t split_point(uint64_t n) {
  uint64_t k = 1;
  while (k < n - k) k <<= 1;   /* k * 2 < n without overflow */
  return k;
}

static bool is_pow2(uint64_t n) { return n != 0 && (n & (n - 1)) == 0; }

static unsigned log2_u64(uint64_t n) {
  unsigned h = 0;
  while ((n >>= 1) != 0) h++;
  return h;
}

/* MTH of leaves [a, b), b > a; a is aligned so that every left split is a complete subtree. */
static int range_hash(reg_hash_fn get, void *arg, uint64_t a, uint64_t b, uint8_t out[REG_HASH_BYTES],
                      char *err, size_t errlen) {
  uint64_t n = b - a;
  if (is_pow2(n) && (a & (n - 1)) == 0) {
    unsigned h = log2_u64(n);
    return get(arg, h, a >> h, out, err, errlen);
  }
  uint64_t k = split_point(n);
  uint8_t l[REG_HASH_BYTES], r[REG_HASH_BYTES];
  if (range_hash(get, arg, a, a + k, l, err, errlen) != 0) return -1;
  if (range_hash(get, arg, a + k, b, r, err, errlen) != 0) return -1;
  reg_node_hash(l, r, out);
  return 0;
}

int reg_proof_root(reg_hash_fn get, void *arg, uint64_t size, uint8_t root[REG_HASH_BYTES],
                   char *err, size_t errlen) {
  if (size == 0) {
    reg_empty_root(root);
    return 0;
  }
  return range_hash(get, arg, 0, size, root, err, errlen);
}

/* PATH(m, D[a:b]) of RFC 6962 2.1.1, appended to proof[*n]. */
static int inclusion(reg_hash_fn get, void *arg, uint64_t m, uint64_t a, uint64_t b,
                     reg_hash_t *proof, size_t *n, char *err, size_t errlen) {
  if (b - a == 1) return 0;
  uint64_t k = split_point(b - a);
  if (m < a + k) {
    if (inclusion(get, arg, m, a, a + k, proof, n, err, errlen) != 0) return -1;
    if (*n >= REG_PROOF_MAX) return cp_err(err, errlen, "proof too long");
    return range_hash(get, arg, a + k, b, proof[(*n)++], err, errlen);
  }
  if (inclusion(get, arg, m, a + k, b, proof, n, err, errlen) != 0) return -1;
  if (*n >= REG_PROOF_MAX) return cp_err(err, errlen, "proof too long");
  return range_hash(get, arg, a, a + k, proof[(*n)++], err, errlen);
}

int reg_proof_inclusion(reg_hash_fn get, void *arg, uint64_t index, uint64_t size,
                        reg_hash_t *proof, size_t *n, char *err, size_t errlen) {
  *n = 0;
  if (index >= size) return cp_err(err, errlen, "index %llu is not below tree size %llu",
                                   (unsigned long long)index, (unsigned long long)size);
  return inclusion(get, arg, index, 0, size, proof, n, err, errlen);
}

/* SUBPROOF(m, D[a:b], complete) of RFC 6962 2.1.2. */
static int subproof(reg_hash_fn get, void *arg, uint64_t m, uint64_t a, uint64_t b, bool complete,
                    reg_hash_t *proof, size_t *n, char *err, size_t errlen) {
  if (a + m == b) {
    if (complete) return 0;
    if (*n >= REG_PROOF_MAX) return cp_err(err, errlen, "proof too long");
    return range_hash(get, arg, a, b, proof[(*n)++], err, errlen);
  }
  uint64_t k = split_point(b - a);
  if (m <= k) {
    if (subproof(get, arg, m, a, a + k, complete, proof, n, err, errlen) != 0) return -1;
    if (*n >= REG_PROOF_MAX) return cp_err(err, errlen, "proof too long");
    return range_hash(get, arg, a + k, b, proof[(*n)++], err, errlen);
  }
  if (subproof(get, arg, m - k, a + k, b, false, proof, n, err, errlen) != 0) return -1;
  if (*n >= REG_PROOF_MAX) return cp_err(err, errlen, "proof too long");
  return range_hash(get, arg, a, a + k, proof[(*n)++], err, errlen);
}

int reg_proof_consistency(reg_hash_fn get, void *arg, uint64_t old_size, uint64_t new_size,
                          reg_hash_t *proof, size_t *n, char *err, size_t errlen) {
  *n = 0;
  if (old_size > new_size) return cp_err(err, errlen, "old size %llu is beyond new size %llu",
                                         (unsigned long long)old_size, (unsigned long long)new_size);
  if (old_size == 0 || old_size == new_size) return 0;
  return subproof(get, arg, old_size, 0, new_size, true, proof, n, err, errlen);
}

int reg_verify_inclusion(const uint8_t leaf_hash[REG_HASH_BYTES], uint64_t index, uint64_t size,
                         const reg_hash_t *proof, size_t n, const uint8_t root[REG_HASH_BYTES]) {
  if (index >= size) return -1;
  uint64_t fn = index, sn = size - 1;
  uint8_t r[REG_HASH_BYTES];
  memcpy(r, leaf_hash, REG_HASH_BYTES);
  for (size_t i = 0; i < n; i++) {
    if (sn == 0) return -1;
    if ((fn & 1) || fn == sn) {
      reg_node_hash(proof[i], r, r);
      while (!(fn & 1) && fn != 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      reg_node_hash(r, proof[i], r);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return (sn == 0 && sodium_memcmp(r, root, REG_HASH_BYTES) == 0) ? 0 : -1;
}

int reg_verify_consistency(uint64_t old_size, uint64_t new_size, const reg_hash_t *proof,
                           size_t n, const uint8_t old_root[REG_HASH_BYTES],
                           const uint8_t new_root[REG_HASH_BYTES]) {
  if (old_size > new_size) return -1;
  if (old_size == 0) return n == 0 ? 0 : -1;
  if (old_size == new_size)
    return (n == 0 && sodium_memcmp(old_root, new_root, REG_HASH_BYTES) == 0) ? 0 : -1;
  /* the proof, with the old root in front when the old tree is a complete subtree */
  const uint8_t *first;
  size_t i = 0;
  if (is_pow2(old_size)) {
    first = old_root;
  } else {
    if (n == 0) return -1;
    first = proof[0];
    i = 1;
  }
  uint64_t fn = old_size - 1, sn = new_size - 1;
  while (fn & 1) {
    fn >>= 1;
    sn >>= 1;
  }
  uint8_t fr[REG_HASH_BYTES], sr[REG_HASH_BYTES];
  memcpy(fr, first, REG_HASH_BYTES);
  memcpy(sr, first, REG_HASH_BYTES);
  for (; i < n; i++) {
    if (sn == 0) return -1;
    if ((fn & 1) || fn == sn) {
      reg_node_hash(proof[i], fr, fr);
      reg_node_hash(proof[i], sr, sr);
      while (!(fn & 1) && fn != 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      reg_node_hash(sr, proof[i], sr);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return -1;
  if (sodium_memcmp(fr, old_root, REG_HASH_BYTES) != 0) return -1;
  return sodium_memcmp(sr, new_root, REG_HASH_BYTES) == 0 ? 0 : -1;
}

int reg_edgesrc_get(void *arg, unsigned height, uint64_t index, uint8_t out[REG_HASH_BYTES], char *err,
                    size_t errlen) {
  const reg_edgesrc_t *src = arg;
  unsigned level = height / REG_TILE_HEIGHT, sub = height % REG_TILE_HEIGHT;
  if (level >= REG_LEVELS) return cp_err(err, errlen, "subtree height %u out of range", height);
  uint64_t n = src->size >> (REG_TILE_HEIGHT * level);
  uint64_t base = n & ~(uint64_t)(REG_TILE_WIDTH - 1);
  uint64_t first = index << sub, count = 1ull << sub;
  if (src->full_kept && n % REG_TILE_WIDTH == 0 && n > 0) base = n - REG_TILE_WIDTH;
  if (first < base || first + count > n)
    return cp_err(err, errlen, "subtree (%u, %" PRIu64 ") is not on the right edge", height, index);
  reg_hashes_root(src->edge + (size_t)level * REG_TILE_WIDTH + (first - base), (size_t)count, out);
  return 0;
}
