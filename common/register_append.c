/* register_append.c -- the writer's path: batches of entries into bundles, tiles and a new checkpoint, crash-safely. */
#include "register_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_crash.h"

static void bundle_add(reg_log_t *log, const uint8_t *e, size_t len) {
  if (log->bundle_len + 2 + len > log->bundle_cap) {
    size_t cap = log->bundle_cap ? log->bundle_cap : 4096;
    while (cap < log->bundle_len + 2 + len) cap *= 2;
    uint8_t *b = realloc(log->bundle, cap);
    if (b == NULL) abort();   /* OOM is fatal in carepass */
    log->bundle = b;
    log->bundle_cap = cap;
  }
  log->bundle[log->bundle_len] = (uint8_t)(len >> 8);
  log->bundle[log->bundle_len + 1] = (uint8_t)(len & 0xff);
  memcpy(log->bundle + log->bundle_len + 2, e, len);
  log->bundle_len += 2 + len;
}

/* Write tile (level, index, width) into the batch (renamed at once, fsynced later). */
static int batch_tile(reg_log_t *log, reg_wbatch_t *wb, int level, uint64_t index, unsigned width, const void *buf,
                      size_t len, reg_dirset_t *ds, char *err, size_t errlen) {
  char rel[REG_PATH_MAX];
  if (reg_tile_path(rel, sizeof rel, level, index, width) != 0) return cp_err(err, errlen, "tile path too long");
  return reg_wbatch_write(wb, log->dir, rel, buf, len, true, ds, err, errlen);
}

/* How one batch reaches the disk, and why a crash (or power cut) at any point
 * leaves a register that reopens to the old or the new checkpoint:
 *
 *  1. every file of the batch (entry bundles, hash tiles, full and partial) is
 *     written to a temp file, its writeback started (sync_file_range), and renamed
 *     into place at once -- no fsync yet. Every one of these names is new: tiles
 *     are immutable and a partial tile's name carries its width, and the widths and
 *     indexes of a batch lie beyond the old checkpoint. So until the new
 *     checkpoint is durable, nothing the old checkpoint names has changed, and what
 *     a crash leaves of the new files (even empty ones) lies beyond it and is
 *     deleted by reg_open (reg_recover_discard). Readers never see a half-written file
 *     (rename is atomic) and never look beyond the checkpoint they read.
 *  2. the new checkpoint is signed and written to checkpoint.tmp (not renamed).
 *  3. every file is fsynced (on REG_FSYNC_THREADS threads at once, so the waits
 *     overlap and share journal commits; their data is already on its way), then
 *     every directory that gained an entry.
 *     From here the tiles of the new size, and their names, are durable.
 *  4. checkpoint.tmp is renamed over checkpoint -- the commit point -- and the
 *     register directory fsynced.
 * The checkpoint's rename is issued only after step 3 returned, so it can never be
 * durable before the tiles it names. Per batch that is two rounds of waiting on the
 * disk (step 3 and step 4) instead of one fsync per file plus one per directory. */
int reg_append(reg_log_t *log, const uint8_t *const *entries, const size_t *lens, size_t n,
               uint64_t *first_index, char *err, size_t errlen) {
  if (log->key == NULL) return cp_err(err, errlen, "register %s is open read-only", log->dir);
  if (log->broken)
    return cp_err(err, errlen, "register %s must be reopened (restart the signer): %s", log->dir, log->broken_why);
  if (n == 0) return cp_err(err, errlen, "empty batch");
  for (size_t i = 0; i < n; i++) {
    if (lens[i] == 0 || lens[i] > REG_ENTRY_MAX)
      return cp_err(err, errlen, "entry %zu of the batch is %zu bytes; entries must be 1..%d bytes", i,
                    lens[i], REG_ENTRY_MAX);
  }
  if (log->size > UINT64_MAX - n) return cp_err(err, errlen, "register is full");

  /* snapshot the right edge so that a failure leaves the log unchanged */
  size_t edge_bytes = (size_t)REG_LEVELS * REG_TILE_WIDTH * sizeof(reg_hash_t);
  reg_hash_t *snap_edge = cp_xmalloc(edge_bytes);
  memcpy(snap_edge, log->edge, edge_bytes);
  uint8_t *snap_bundle = cp_xmalloc(log->bundle_len + 1);
  if (log->bundle_len > 0) memcpy(snap_bundle, log->bundle, log->bundle_len);
  size_t snap_bundle_len = log->bundle_len;
  reg_dirset_t ds = {0}, rootds = {0};
  reg_wbatch_t wb = {0};
  char *note = cp_xmalloc(REG_CHECKPOINT_MAX + 1);
  int rc = -1;

  /* 1. the tiles */
  uint64_t old = log->size, s = old;
  for (size_t i = 0; i < n; i++) {
    bundle_add(log, entries[i], lens[i]);
    reg_leaf_hash(entries[i], lens[i], REG_EDGE(log, 0)[s % REG_TILE_WIDTH]);
    s++;
    if (s % REG_TILE_WIDTH != 0) continue;
    /* a level-0 tile and its bundle are complete: write them, carry the tile hash up */
    uint64_t t = s / REG_TILE_WIDTH - 1;
    if (batch_tile(log, &wb, REG_LEVEL_ENTRIES, t, REG_TILE_WIDTH, log->bundle, log->bundle_len, &ds, err, errlen) != 0)
      goto out;
    cp_test_crash_point("bundle");
    if (batch_tile(log, &wb, 0, t, REG_TILE_WIDTH, REG_EDGE(log, 0), REG_TILE_WIDTH * REG_HASH_BYTES, &ds, err, errlen) != 0)
      goto out;
    cp_test_crash_point("tile0");
    log->bundle_len = 0;
    uint64_t idx = t;
    for (int L = 0; L + 1 < REG_LEVELS; L++) {
      reg_hashes_root((const reg_hash_t *)REG_EDGE(log, L), REG_TILE_WIDTH, REG_EDGE(log, L + 1)[idx % REG_TILE_WIDTH]);
      if ((idx + 1) % REG_TILE_WIDTH != 0) break;
      if (batch_tile(log, &wb, L + 1, idx / REG_TILE_WIDTH, REG_TILE_WIDTH, REG_EDGE(log, L + 1),
                     REG_TILE_WIDTH * REG_HASH_BYTES, &ds, err, errlen) != 0)
        goto out;
      cp_test_crash_point("tile-upper");
      idx /= REG_TILE_WIDTH;
    }
  }
  /* the partial bundle, then the partial tiles that grew in this batch, level by level */
  if (s % REG_TILE_WIDTH != 0) {
    if (batch_tile(log, &wb, REG_LEVEL_ENTRIES, s / REG_TILE_WIDTH, (unsigned)(s % REG_TILE_WIDTH), log->bundle,
                   log->bundle_len, &ds, err, errlen) != 0)
      goto out;
    cp_test_crash_point("bundle");
  }
  for (int L = 0; L < REG_LEVELS; L++) {
    uint64_t nl = s >> (REG_TILE_HEIGHT * L);
    if (nl == 0) break;
    unsigned w = (unsigned)(nl % REG_TILE_WIDTH);
    if (w == 0 || nl == (old >> (REG_TILE_HEIGHT * L))) continue;
    if (batch_tile(log, &wb, L, nl / REG_TILE_WIDTH, w, REG_EDGE(log, L), (size_t)w * REG_HASH_BYTES, &ds, err, errlen) != 0)
      goto out;
    cp_test_crash_point(L == 0 ? "tile0" : "tile-upper");
  }

  /* 2. the new checkpoint, written but not yet in place */
  uint8_t root[REG_HASH_BYTES];
  reg_edgesrc_t src = {log->edge, s, false};
  if (reg_proof_root(reg_edgesrc_get, &src, s, root, err, errlen) != 0) goto out;
  int notelen = reg_checkpoint_sign(log->key, s, root, note, REG_CHECKPOINT_MAX + 1, err, errlen);
  if (notelen < 0) goto out;
  if (reg_wbatch_write(&wb, log->dir, "checkpoint", note, (size_t)notelen, false, &rootds, err, errlen) != 0) goto out;

  /* 3. everything durable: file contents, then the directory entries */
  if (reg_wbatch_sync(&wb, err, errlen) != 0) goto out;
  if (reg_dirset_sync(&ds, err, errlen) != 0) goto out;
  cp_test_crash_point("tiles-synced");

  /* 4. the commit point; reg_wbatch_rename fails only before renaming: on -1 the old checkpoint stands */
  if (reg_wbatch_rename(&wb, wb.n - 1, err, errlen) != 0) goto out;
  cp_test_crash_point("checkpoint-renamed");
  /* From here the new checkpoint is what readers and a restarted signer see: the
   * batch is in the log whatever happens next. If its directory cannot be fsynced
   * the log takes the new state but refuses further appends, so that it never
   * signs a second, different tree of the same size; a restart re-reads the disk
   * (and rebuilds the signer's index from it, so redriven events are duplicates). */
  if (reg_dirset_sync(&rootds, err, errlen) != 0) {
    log->broken = true;
    snprintf(log->broken_why, sizeof log->broken_why, "checkpoint of size %llu renamed but not confirmed durable: %s",
             (unsigned long long)s, err);
    cp_err(err, errlen, "register %s: %s", log->dir, log->broken_why);
    log->size = s;
    memcpy(log->root, root, REG_HASH_BYTES);
    memcpy(log->note, note, REG_CHECKPOINT_MAX + 1);
    goto out;
  }
  cp_test_crash_point("appended");
  log->size = s;
  memcpy(log->root, root, REG_HASH_BYTES);
  memcpy(log->note, note, REG_CHECKPOINT_MAX + 1);
  *first_index = old;
  rc = 0;
out:
  if (rc != 0 && !log->broken) {
    /* the batch did not happen: back to the edge and bundle of before */
    memcpy(log->edge, snap_edge, edge_bytes);
    if (snap_bundle_len > 0) memcpy(log->bundle, snap_bundle, snap_bundle_len);
    log->bundle_len = snap_bundle_len;
    reg_cache_clear(log);
  }
  free(snap_edge);
  free(snap_bundle);
  free(note);
  reg_dirset_free(&ds);
  reg_dirset_free(&rootds);
  reg_wbatch_free(&wb);
  return rc;
}
