/* register_read.c -- reading a register: entries one by one or in order, subtree hashes, inclusion and consistency proofs. */
#include "register_internal.h"

#include <stdlib.h>
#include <string.h>

int reg_foreach_entry(reg_log_t *log, uint64_t from, uint64_t to, reg_entry_fn fn, void *arg,
                      char *err, size_t errlen) {
  if (to > log->size || from > to)
    return cp_err(err, errlen, "entries [%llu, %llu) are not in the register (size %llu)",
                  (unsigned long long)from, (unsigned long long)to, (unsigned long long)log->size);
  uint64_t i = from;
  while (i < to) {
    uint64_t t = i / REG_TILE_WIDTH;
    unsigned w = reg_tile_width(log->size, REG_LEVEL_ENTRIES, t);
    const uint8_t *buf;
    size_t len, pos = 0, elen;
    const uint8_t *e;
    if (reg_cache_read(log, REG_LEVEL_ENTRIES, t, w, &buf, &len, err, errlen) != 0) return -1;
    uint64_t idx = t * REG_TILE_WIDTH;
    while (idx < to && reg_bundle_next(buf, len, &pos, &e, &elen) == 1) {
      if (idx >= i) {
        int rc = fn(arg, idx, e, elen);
        if (rc != 0) return rc;
      }
      idx++;
    }
    i = idx;
  }
  return 0;
}

/* reg_foreach_entry callback for reg_read_entry: copy the one entry. */
typedef struct {
  uint8_t *buf;   // malloc'd copy
  size_t len;     // its length
} entry_copy_t;

static int copy_entry(void *arg, uint64_t index, const uint8_t *entry, size_t len) {
  entry_copy_t *c = arg;
  c->buf = cp_xmalloc(len ? len : 1);
  memcpy(c->buf, entry, len);
  c->len = len;
  return 0;
}

int reg_read_entry(reg_log_t *log, uint64_t index, uint8_t **buf, size_t *len, char *err, size_t errlen) {
  if (index >= log->size)
    return cp_err(err, errlen, "entry %llu is not in the register (size %llu)", (unsigned long long)index,
                  (unsigned long long)log->size);
  entry_copy_t c = {NULL, 0};
  if (reg_foreach_entry(log, index, index + 1, copy_entry, &c, err, errlen) != 0) {
    free(c.buf);
    return -1;
  }
  if (c.buf == NULL) return cp_err(err, errlen, "entry %llu missing from its bundle", (unsigned long long)index);
  *buf = c.buf;
  *len = c.len;
  return 0;
}

int reg_tree_hash(reg_log_t *log, unsigned height, uint64_t index, uint8_t out[REG_HASH_BYTES], char *err,
                  size_t errlen) {
  reg_tilesrc_t src = {log, log->size};
  return reg_tilesrc_get(&src, height, index, out, err, errlen);
}

int reg_inclusion_proof(reg_log_t *log, uint64_t index, uint64_t size, reg_hash_t *proof, size_t *n,
                        char *err, size_t errlen) {
  *n = 0;
  if (size > log->size)
    return cp_err(err, errlen, "tree size %llu is beyond the register size %llu", (unsigned long long)size,
                  (unsigned long long)log->size);
  reg_tilesrc_t src = {log, log->size};
  return reg_proof_inclusion(reg_tilesrc_get, &src, index, size, proof, n, err, errlen);
}

int reg_consistency_proof(reg_log_t *log, uint64_t old_size, uint64_t new_size, reg_hash_t *proof,
                          size_t *n, char *err, size_t errlen) {
  *n = 0;
  if (new_size > log->size)
    return cp_err(err, errlen, "tree size %llu is beyond the register size %llu", (unsigned long long)new_size,
                  (unsigned long long)log->size);
  reg_tilesrc_t src = {log, log->size};
  return reg_proof_consistency(reg_tilesrc_get, &src, old_size, new_size, proof, n, err, errlen);
}
