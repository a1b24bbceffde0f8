/* register_internal.h -- private helpers shared by the register_*.c files (not a public API). */
#ifndef REGISTER_INTERNAL_H
#define REGISTER_INTERNAL_H

#include "cp_register.h"

/* Directories whose entries changed in a batch; each is fsynced once at the end. */
typedef struct {
  char **dirs;   // absolute-or-relative directory paths (malloc'd)
  size_t n;      // how many are in use
  size_t cap;    // allocated slots
} reg_dirset_t;

/* Write root/rel via rel.tmp + fsync + rename, creating missing parent directories.
 * The parent (and any directory created) is recorded in ds for reg_dirset_sync. */
int reg_file_write(const char *root, const char *rel, const void *buf, size_t len,
                   reg_dirset_t *ds, char *err, size_t errlen) CP_WUR;
/* The files of one append, written to temp files and made durable together
 * (register_append.c explains the order and why it is crash safe). */
typedef struct {
  int fd;          // the open temp file / renamed file; -1 once fsynced and closed
  char *path;      // final path (malloc'd); the temp file is path + ".tmp"
  bool renamed;    // the temp file has been renamed to path
  bool synced;     // fsync succeeded
} reg_wfile_t;

#define REG_WBATCH_OPEN_MAX 64   /* open files before a batch syncs what it has written so far */
#define REG_FSYNC_THREADS 4      /* threads fsyncing the files of a batch at once */

typedef struct {
  reg_wfile_t *f;  // files, in the order written
  size_t n;        // in use
  size_t cap;      // allocated
  size_t open;     // how many still have an open fd (not yet fsynced)
} reg_wbatch_t;

/* Write root/rel.tmp (no fsync yet; writeback is started), record its parent in ds,
 * and, when rename_now, rename it to root/rel at once. */
int reg_wbatch_write(reg_wbatch_t *wb, const char *root, const char *rel, const void *buf, size_t len,
                     bool rename_now, reg_dirset_t *ds, char *err, size_t errlen) CP_WUR;
/* Rename file i of the batch (written with rename_now false) into place. */
int reg_wbatch_rename(reg_wbatch_t *wb, size_t i, char *err, size_t errlen) CP_WUR;
/* fsync (and close) every file of the batch not yet synced. */
int reg_wbatch_sync(reg_wbatch_t *wb, char *err, size_t errlen) CP_WUR;
/* Close what is open, remove temp files never renamed, free. */
void reg_wbatch_free(reg_wbatch_t *wb);
/* Record a directory to fsync (0, or -1 when out of memory). */
int reg_dirset_add(reg_dirset_t *ds, const char *dir) CP_WUR;
/* fsync every recorded directory, then forget them. */
int reg_dirset_sync(reg_dirset_t *ds, char *err, size_t errlen) CP_WUR;
void reg_dirset_free(reg_dirset_t *ds);
/* Read root/rel (at most max bytes) into a malloc'd buffer; -1 with errno kept
 * (ENOENT when missing, EFBIG when larger than max). */
int reg_file_read(const char *root, const char *rel, size_t max, uint8_t **buf, size_t *len,
                  char *err, size_t errlen) CP_WUR;

/* ---- the open log (register_open.c makes it; the others use it) ---------- */

#define REG_CACHE_SLOTS (REG_LEVELS + 1)   /* tile cache slots: one per hash level, plus entries */
#define REG_CACHE_ENTRIES REG_LEVELS       /* the slot of entry bundles */

/* The last tile read at one level (tiles of a given index and width never change). */
typedef struct {
  bool valid;          // slot holds a tile
  uint64_t index;      // tile index N
  unsigned width;      // tile width W (256 = full)
  uint8_t *buf;        // tile bytes
  size_t len;          // length of buf
} reg_tile_slot_t;

struct reg_log {
  char *dir;                          // register directory
  int lock_fd;                        // flock'd dir/lock; -1 when read-only
  const cp_signkey_t *key;            // signing key (owned by the caller); NULL = read-only
  char vkey[512];                     // writer: verifier key of `key`, checked on open
  char **vkeys;                       // reader: verifier keys trusted on checkpoints (NULL = none known yet)
  size_t nvkeys;                      // reader: entries in vkeys
  uint64_t size;                      // checkpointed tree size
  uint8_t root[REG_HASH_BYTES];       // checkpointed root hash
  char note[REG_CHECKPOINT_MAX + 1];  // current signed checkpoint note
  reg_hash_t *edge;                   // writer: [REG_LEVELS][256] hashes of the partial tile per level
  uint8_t *bundle;                    // writer: the partial entry bundle (uint16 len || entry)...
  size_t bundle_len;                  // bytes used in bundle
  size_t bundle_cap;                  // bytes allocated for bundle
  reg_tile_slot_t cache[REG_CACHE_SLOTS];  // last tile read per level
  bool broken;                        // writer: a checkpoint was renamed but not confirmed durable
  char broken_why[CP_ERRLEN];         // why (for the error of every later append)
};

/* The writer's in-memory hashes of the partial tile at level L. */
#define REG_EDGE(log, L) ((log)->edge + (size_t)(L) * REG_TILE_WIDTH)

/* ---- tile cache (register_cache.c) ---------------------------------------- */

/* Forget every cached tile. */
void reg_cache_clear(reg_log_t *log);
/* Read (through the cache) tile (level, index, width) of the log; checks its length
 * (hash tiles) or its entry count (bundles). The buffer belongs to the cache until
 * the next read at that level. */
int reg_cache_read(reg_log_t *log, int level, uint64_t index, unsigned width, const uint8_t **buf,
                   size_t *len, char *err, size_t errlen) CP_WUR;

/* Hash source (reg_hash_fn) over the log's tiles of a tree of `size` leaves. */
typedef struct {
  reg_log_t *log;   // where to read
  uint64_t size;    // tree size whose tiles are read
} reg_tilesrc_t;

int reg_tilesrc_get(void *arg, unsigned height, uint64_t index, uint8_t out[REG_HASH_BYTES], char *err,
                    size_t errlen) CP_WUR;

/* Hash source (reg_hash_fn) over a right edge: the hashes of the current tile at each
 * level, [REG_LEVELS][256], of a tree of `size` leaves (register_proof.c). The writer's
 * edge and the audit's recomputed one. */
typedef struct {
  const reg_hash_t *edge;   // [REG_LEVELS][REG_TILE_WIDTH] hashes
  uint64_t size;            // tree size the edge describes
  bool full_kept;           // a level whose count is a multiple of 256 still holds that last full tile
} reg_edgesrc_t;

int reg_edgesrc_get(void *arg, unsigned height, uint64_t index, uint8_t out[REG_HASH_BYTES], char *err,
                    size_t errlen) CP_WUR;

/* ---- recovery (register_recover.c) ---------------------------------------- */

/* Writer: rebuild the missing partial bundle and tiles of the checkpointed size. */
int reg_recover_edge(reg_log_t *log, reg_dirset_t *ds, char *err, size_t errlen) CP_WUR;
/* Writer: delete what lies beyond the checkpointed size; returns how many files. */
uint64_t reg_recover_discard(reg_log_t *log, reg_dirset_t *ds);
/* Check the right edge of the tiles of a tree of `size` against `root`. */
int reg_recover_check_root(reg_log_t *log, uint64_t size, const uint8_t root[REG_HASH_BYTES], char *err,
                           size_t errlen) CP_WUR;
/* Writer: load the right edge (partial tiles and partial bundle) into memory. */
int reg_recover_load_edge(reg_log_t *log, char *err, size_t errlen) CP_WUR;

#endif
