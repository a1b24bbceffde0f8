/* register_cache.c -- the log's tile cache: the last tile read per level, and the hash source over it. */
#include "register_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void reg_cache_clear(reg_log_t *log) {
  for (int i = 0; i < REG_CACHE_SLOTS; i++) {
    free(log->cache[i].buf);
    memset(&log->cache[i], 0, sizeof log->cache[i]);
  }
}

int reg_cache_read(reg_log_t *log, int level, uint64_t index, unsigned width, const uint8_t **buf,
                   size_t *len, char *err, size_t errlen) {
  reg_tile_slot_t *slot = &log->cache[level == REG_LEVEL_ENTRIES ? REG_CACHE_ENTRIES : level];
  if (slot->valid && slot->index == index && slot->width == width) {
    *buf = slot->buf;
    *len = slot->len;
    return 0;
  }
  char rel[REG_PATH_MAX];
  if (reg_tile_path(rel, sizeof rel, level, index, width) != 0)
    return cp_err(err, errlen, "tile path too long");
  size_t max = level == REG_LEVEL_ENTRIES ? (size_t)width * (2 + REG_ENTRY_MAX)
                                          : (size_t)width * REG_HASH_BYTES;
  uint8_t *b = NULL;
  size_t l = 0;
  char rerr[CP_ERRLEN];
  if (reg_file_read(log->dir, rel, max, &b, &l, rerr, sizeof rerr) != 0)
    return cp_err(err, errlen, "register tile %s/%s is %s: %s", log->dir, rel,
                  errno == EFBIG ? "truncated or corrupt (too long)" : "unreadable", rerr);
  if (level == REG_LEVEL_ENTRIES) {
    size_t pos = 0, count = 0;
    const uint8_t *e;
    size_t elen;
    int rc;
    while ((rc = reg_bundle_next(b, l, &pos, &e, &elen)) == 1) count++;
    if (rc < 0) {
      cp_err(err, errlen, "register entry bundle %s/%s is truncated or corrupt (the length prefix of "
             "entry %zu, at byte %zu of %zu, runs past the end)", log->dir, rel, count, pos, l);
      goto err;
    }
    if (count != width) {
      cp_err(err, errlen, "register entry bundle %s/%s is truncated or corrupt (%zu entries, expected %u)",
             log->dir, rel, count, width);
      goto err;
    }
  } else if (l != (size_t)width * REG_HASH_BYTES) {
    cp_err(err, errlen, "register tile %s/%s is truncated or corrupt (%zu bytes, expected %zu)", log->dir, rel, l,
           (size_t)width * REG_HASH_BYTES);
    goto err;
  }
  free(slot->buf);
  slot->valid = true;
  slot->index = index;
  slot->width = width;
  slot->buf = b;
  slot->len = l;
  *buf = b;
  *len = l;
  return 0;
err:
  free(b);
  return -1;
}

int reg_tilesrc_get(void *arg, unsigned height, uint64_t index, uint8_t out[REG_HASH_BYTES], char *err,
                    size_t errlen) {
  reg_tilesrc_t *src = arg;
  unsigned level = height / REG_TILE_HEIGHT, sub = height % REG_TILE_HEIGHT;
  if (level >= REG_LEVELS || index > (UINT64_MAX >> sub))
    return cp_err(err, errlen, "subtree (%u, %llu) is out of range", height, (unsigned long long)index);
  uint64_t first = index << sub, count = 1ull << sub;
  uint64_t t = first / REG_TILE_WIDTH;
  unsigned w = reg_tile_width(src->size, (int)level, t);
  unsigned off = (unsigned)(first % REG_TILE_WIDTH);
  if (w == 0 || off + count > w)
    return cp_err(err, errlen, "subtree (%u, %llu) is not complete at tree size %llu", height,
                  (unsigned long long)index, (unsigned long long)src->size);
  const uint8_t *buf;
  size_t len;
  if (reg_cache_read(src->log, (int)level, t, w, &buf, &len, err, errlen) != 0) return -1;
  reg_hashes_root((const reg_hash_t *)(buf + (size_t)off * REG_HASH_BYTES), (size_t)count, out);
  return 0;
}
