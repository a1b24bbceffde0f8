/* register_recover.c -- bringing a register back to its last checkpoint: rebuild a missing right edge,
 * discard a batch that was never checkpointed, check the tiles against the signed root, load the edge. */
#include "register_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cp_log.h"

/* Unlink tile (level, index, width) and its temp file (a write a crash interrupted);
 * true if the tile itself was removed. */
static bool unlink_rel(reg_log_t *log, int level, uint64_t index, unsigned width, reg_dirset_t *ds) {
  char rel[REG_PATH_MAX], path[4200];
  if (reg_tile_path(rel, sizeof rel, level, index, width) != 0) return false;
  snprintf(path, sizeof path, "%s/%s.tmp", log->dir, rel);
  (void)unlink(path);
  path[strlen(path) - 4] = '\0';
  if (unlink(path) != 0) return false;
  *strrchr(path, '/') = '\0';
  if (reg_dirset_add(ds, path) != 0) abort();   /* OOM is fatal in carepass */
  return true;
}

#define DISCARD_GAP 4   /* empty tile indexes in a row that end the scan for leftovers */

/* Delete every tile and bundle that lies beyond the checkpointed size: what a
 * batch wrote before a crash stopped it from writing its checkpoint. Files of
 * one batch are renamed in index order but only made durable together, so after
 * a power cut a few may be missing in between: the scan goes on past small gaps. */
uint64_t reg_recover_discard(reg_log_t *log, reg_dirset_t *ds) {
  uint64_t removed = 0;
  char path[4200];
  snprintf(path, sizeof path, "%s/checkpoint.tmp", log->dir);
  (void)unlink(path);
  for (int level = REG_LEVEL_ENTRIES; level < REG_LEVELS; level++) {
    int lv = level < 0 ? 0 : level;
    uint64_t n = log->size >> (REG_TILE_HEIGHT * lv);
    uint64_t t0 = n / REG_TILE_WIDTH;
    unsigned w0 = (unsigned)(n % REG_TILE_WIDTH);
    unsigned empty = 0;
    for (uint64_t t = t0; empty < DISCARD_GAP && t >= t0; t++) {
      bool any = false;
      for (unsigned w = (t == t0 ? w0 + 1 : 1); w < REG_TILE_WIDTH; w++) {
        if (unlink_rel(log, level, t, w, ds)) {
          any = true;
          removed++;
        }
      }
      if (unlink_rel(log, level, t, REG_TILE_WIDTH, ds)) {
        any = true;
        removed++;
      }
      empty = any ? 0 : empty + 1;
    }
  }
  return removed;
}

/* 1 when tile (level, index, width) is on disk (whatever it holds), 0 when it is
 * missing, -1 (err) when that cannot be told. */
static int tile_present(reg_log_t *log, int level, uint64_t index, unsigned width, char *rel,
                        char *err, size_t errlen) {
  char path[4200];
  if (reg_tile_path(rel, REG_PATH_MAX, level, index, width) != 0) return cp_err(err, errlen, "tile path too long");
  snprintf(path, sizeof path, "%s/%s", log->dir, rel);
  struct stat st;
  if (lstat(path, &st) == 0) return 1;
  if (errno == ENOENT) return 0;
  return cp_err(err, errlen, "stat %s: %s", path, strerror(errno));
}

static int write_tile(reg_log_t *log, int level, uint64_t index, unsigned width, const void *buf,
                      size_t len, reg_dirset_t *ds, char *err, size_t errlen) {
  char rel[REG_PATH_MAX];
  if (reg_tile_path(rel, sizeof rel, level, index, width) != 0) return cp_err(err, errlen, "tile path too long");
  return reg_file_write(log->dir, rel, buf, len, ds, err, errlen);
}

/* Writer, before reg_recover_discard: recompute the partial tiles of the checkpointed
 * size that are missing (a crash of an older writer, a lost file, an operator's
 * mistake). The partial bundle can only come from a wider copy of the same bundle
 * (left by a later batch that was never checkpointed); level 0 from the bundle;
 * level L from the full tiles of level L - 1. What cannot be rebuilt is refused,
 * naming the file. reg_recover_check_root then checks the result against the signed root. */
int reg_recover_edge(reg_log_t *log, reg_dirset_t *ds, char *err, size_t errlen) {
  uint64_t size = log->size;
  char rel[REG_PATH_MAX], why[CP_ERRLEN];
  reg_hash_t *hashes = NULL;
  int rc, ret = -1;
  if (size == 0) return 0;
  uint64_t t0 = size / REG_TILE_WIDTH;
  unsigned w0 = (unsigned)(size % REG_TILE_WIDTH);
  if (w0 > 0) {
    if ((rc = tile_present(log, REG_LEVEL_ENTRIES, t0, w0, rel, err, errlen)) < 0) goto out;
    if (rc == 0) {
      const uint8_t *buf = NULL;
      size_t len = 0;
      for (unsigned w = w0 + 1; w <= REG_TILE_WIDTH && buf == NULL; w++) {
        char wrel[REG_PATH_MAX];
        if ((rc = tile_present(log, REG_LEVEL_ENTRIES, t0, w, wrel, err, errlen)) < 0) goto out;
        if (rc == 1 && reg_cache_read(log, REG_LEVEL_ENTRIES, t0, w, &buf, &len, why, sizeof why) != 0) buf = NULL;
      }
      if (buf == NULL) {
        cp_err(err, errlen, "register %s: entry bundle %s (checkpoint size %llu) is missing and cannot be "
               "rebuilt: no wider copy of that bundle exists; restore it from a backup or mirror",
               log->dir, rel, (unsigned long long)size);
        goto out;
      }
      size_t pos = 0, elen;
      const uint8_t *e;
      for (unsigned i = 0; i < w0; i++) {
        if (reg_bundle_next(buf, len, &pos, &e, &elen) != 1) break;   /* cannot happen: reg_cache_read counted them */
      }
      if (write_tile(log, REG_LEVEL_ENTRIES, t0, w0, buf, pos, ds, err, errlen) != 0) goto out;
      cp_log_warn("register: rebuilt a missing entry bundle from a wider copy", CP_KV_STR("tile", rel),
                  CP_KV_INT("size", size), CP_KV_END);
    }
    if ((rc = tile_present(log, 0, t0, w0, rel, err, errlen)) < 0) goto out;
    if (rc == 0) {
      const uint8_t *buf;
      size_t len, pos = 0, elen;
      const uint8_t *e;
      if (reg_cache_read(log, REG_LEVEL_ENTRIES, t0, w0, &buf, &len, why, sizeof why) != 0) {
        cp_err(err, errlen, "register %s: tile %s (checkpoint size %llu) is missing and cannot be rebuilt: %s",
               log->dir, rel, (unsigned long long)size, why);
        goto out;
      }
      hashes = cp_xmalloc(REG_TILE_WIDTH * sizeof *hashes);
      for (unsigned i = 0; i < w0 && reg_bundle_next(buf, len, &pos, &e, &elen) == 1; i++)
        reg_leaf_hash(e, elen, hashes[i]);
      if (write_tile(log, 0, t0, w0, hashes, (size_t)w0 * REG_HASH_BYTES, ds, err, errlen) != 0) goto out;
      cp_log_warn("register: rebuilt a missing tile", CP_KV_STR("tile", rel), CP_KV_INT("size", size), CP_KV_END);
    }
  }
  for (int L = 1; L < REG_LEVELS; L++) {
    uint64_t n = size >> (REG_TILE_HEIGHT * L);
    if (n == 0) break;
    unsigned w = (unsigned)(n % REG_TILE_WIDTH);
    uint64_t t = n / REG_TILE_WIDTH;
    if (w == 0) continue;
    if ((rc = tile_present(log, L, t, w, rel, err, errlen)) < 0) goto out;
    if (rc == 1) continue;
    if (hashes == NULL) hashes = cp_xmalloc(REG_TILE_WIDTH * sizeof *hashes);
    for (unsigned i = 0; i < w; i++) {
      const uint8_t *buf;
      size_t len;
      if (reg_cache_read(log, L - 1, t * REG_TILE_WIDTH + i, REG_TILE_WIDTH, &buf, &len, why, sizeof why) != 0) {
        char lrel[REG_PATH_MAX];
        if (reg_tile_path(lrel, sizeof lrel, L - 1, t * REG_TILE_WIDTH + i, REG_TILE_WIDTH) != 0) lrel[0] = '\0';
        cp_err(err, errlen, "register %s: tile %s (checkpoint size %llu) is missing and cannot be rebuilt: "
               "the tile below it, %s, is missing or damaged", log->dir, rel, (unsigned long long)size, lrel);
        goto out;
      }
      reg_hashes_root((const reg_hash_t *)buf, REG_TILE_WIDTH, hashes[i]);
    }
    if (write_tile(log, L, t, w, hashes, (size_t)w * REG_HASH_BYTES, ds, err, errlen) != 0) goto out;
    cp_log_warn("register: rebuilt a missing tile", CP_KV_STR("tile", rel), CP_KV_INT("size", size), CP_KV_END);
  }
  ret = reg_dirset_sync(ds, err, errlen);
out:
  free(hashes);
  return ret;
}

/* Check the tiles at the right edge of a tree of `size` against `root`. */
int reg_recover_check_root(reg_log_t *log, uint64_t size, const uint8_t root[REG_HASH_BYTES], char *err,
                           size_t errlen) {
  reg_tilesrc_t src = {log, size};
  uint8_t got[REG_HASH_BYTES];
  if (reg_proof_root(reg_tilesrc_get, &src, size, got, err, errlen) != 0) return -1;
  if (sodium_memcmp(got, root, REG_HASH_BYTES) != 0)
    return cp_err(err, errlen, "register %s: tiles do not match the checkpoint root at size %llu",
                  log->dir, (unsigned long long)size);
  /* the partial entry bundle hashes to the partial level-0 tile */
  unsigned w0 = (unsigned)(size % REG_TILE_WIDTH);
  if (w0 > 0) {
    uint64_t t = size / REG_TILE_WIDTH;
    const uint8_t *tile, *bundle;
    size_t tlen, blen;
    if (reg_cache_read(log, 0, t, w0, &tile, &tlen, err, errlen) != 0) return -1;
    if (reg_cache_read(log, REG_LEVEL_ENTRIES, t, w0, &bundle, &blen, err, errlen) != 0) return -1;
    size_t pos = 0, i = 0, elen;
    const uint8_t *e;
    while (reg_bundle_next(bundle, blen, &pos, &e, &elen) == 1) {
      uint8_t h[REG_HASH_BYTES];
      reg_leaf_hash(e, elen, h);
      if (memcmp(h, tile + i * REG_HASH_BYTES, REG_HASH_BYTES) != 0) {
        char brel[REG_PATH_MAX], trel[REG_PATH_MAX];
        if (reg_tile_path(brel, sizeof brel, REG_LEVEL_ENTRIES, t, w0) != 0 ||
            reg_tile_path(trel, sizeof trel, 0, t, w0) != 0)
          brel[0] = trel[0] = '\0';
        return cp_err(err, errlen, "register %s: entry %llu (in %s) does not match its tile hash (in %s)", log->dir,
                      (unsigned long long)(t * REG_TILE_WIDTH + i), brel, trel);
      }
      i++;
    }
  }
  return 0;
}

/* Writer: load the right edge (partial tiles and partial bundle) into memory. */
int reg_recover_load_edge(reg_log_t *log, char *err, size_t errlen) {
  for (int L = 0; L < REG_LEVELS; L++) {
    uint64_t n = log->size >> (REG_TILE_HEIGHT * L);
    unsigned w = (unsigned)(n % REG_TILE_WIDTH);
    if (w == 0) continue;
    const uint8_t *buf;
    size_t len;
    if (reg_cache_read(log, L, n / REG_TILE_WIDTH, w, &buf, &len, err, errlen) != 0) return -1;
    memcpy(REG_EDGE(log, L), buf, len);
  }
  log->bundle_len = 0;
  unsigned w0 = (unsigned)(log->size % REG_TILE_WIDTH);
  if (w0 > 0) {
    const uint8_t *buf;
    size_t len;
    if (reg_cache_read(log, REG_LEVEL_ENTRIES, log->size / REG_TILE_WIDTH, w0, &buf, &len, err, errlen) != 0)
      return -1;
    if (len > log->bundle_cap) {
      log->bundle = realloc(log->bundle, len);
      if (log->bundle == NULL) abort();
      log->bundle_cap = len;
    }
    memcpy(log->bundle, buf, len);
    log->bundle_len = len;
  }
  return 0;
}
