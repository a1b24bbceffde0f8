/* register_audit.c -- auditing a register: re-hash every entry bundle and tile level and compare with the checkpoint. */
#include "register_internal.h"

#include <string.h>

int reg_audit(reg_log_t *log, char *err, size_t errlen) {
  reg_tilesrc_t src = {log, log->size};
  /* level 0 against the entries */
  uint64_t tiles0 = (log->size + REG_TILE_WIDTH - 1) / REG_TILE_WIDTH;
  for (uint64_t t = 0; t < tiles0; t++) {
    unsigned w = reg_tile_width(log->size, 0, t);
    const uint8_t *bundle;
    size_t blen, pos = 0, elen;
    const uint8_t *e;
    if (reg_cache_read(log, REG_LEVEL_ENTRIES, t, w, &bundle, &blen, err, errlen) != 0) return -1;
    for (unsigned i = 0; reg_bundle_next(bundle, blen, &pos, &e, &elen) == 1; i++) {
      uint8_t h[REG_HASH_BYTES], stored[REG_HASH_BYTES];
      reg_leaf_hash(e, elen, h);
      if (reg_tilesrc_get(&src, 0, t * REG_TILE_WIDTH + i, stored, err, errlen) != 0) return -1;
      if (memcmp(h, stored, REG_HASH_BYTES) != 0)
        return cp_err(err, errlen, "entry %llu does not match its level-0 tile hash",
                      (unsigned long long)(t * REG_TILE_WIDTH + i));
    }
  }
  /* every full tile's root against its hash one level up */
  for (int L = 0; L + 1 < REG_LEVELS; L++) {
    uint64_t full = (log->size >> (REG_TILE_HEIGHT * L)) / REG_TILE_WIDTH;
    if (full == 0) break;
    for (uint64_t t = 0; t < full; t++) {
      uint8_t a[REG_HASH_BYTES], b[REG_HASH_BYTES];
      /* the tile's root, from level L ... */
      const uint8_t *buf;
      size_t len;
      if (reg_cache_read(log, L, t, REG_TILE_WIDTH, &buf, &len, err, errlen) != 0) return -1;
      reg_hashes_root((const reg_hash_t *)buf, REG_TILE_WIDTH, a);
      /* ... and as stored at level L + 1 */
      if (reg_tilesrc_get(&src, (unsigned)(REG_TILE_HEIGHT * (L + 1)), t, b, err, errlen) != 0) return -1;
      if (memcmp(a, b, REG_HASH_BYTES) != 0)
        return cp_err(err, errlen, "tile %d/%llu does not match its hash at level %d", L, (unsigned long long)t, L + 1);
    }
  }
  return reg_recover_check_root(log, log->size, log->root, err, errlen);
}
