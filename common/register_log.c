/* register_log.c -- the register on disk: open/recover, append batches, read entries, proofs. */
#include "register_internal.h"

#include "cp_crash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cp_log.h"
#include "cp_regkeys.h"

#define NSLOTS (REG_LEVELS + 1)   /* tile cache slots: one per hash level, plus entries */
#define SLOT_ENTRIES REG_LEVELS

/* The last tile read at one level (tiles of a given index and width never change). */
typedef struct {
  bool valid;          // slot holds a tile
  uint64_t index;      // tile index N
  unsigned width;      // tile width W (256 = full)
  uint8_t *buf;        // tile bytes
  size_t len;          // length of buf
} tile_slot_t;

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
  tile_slot_t cache[NSLOTS];          // last tile read per level
  bool broken;                        // writer: a checkpoint was renamed but not confirmed durable
  char broken_why[CP_ERRLEN];         // why (for the error of every later append)
};

#define EDGE(log, L) ((log)->edge + (size_t)(L) * REG_TILE_WIDTH)

/* ---- tile reading -------------------------------------------------------- */

static void cache_clear(reg_log_t *log) {
  for (int i = 0; i < NSLOTS; i++) {
    free(log->cache[i].buf);
    memset(&log->cache[i], 0, sizeof log->cache[i]);
  }
}

/* Read (through the cache) tile (level, index, width); checks its length/shape.
 * The returned buffer belongs to the cache until the next read at that level. */
static int read_tile(reg_log_t *log, int level, uint64_t index, unsigned width,
                     const uint8_t **buf, size_t *len, char *err, size_t errlen) {
  tile_slot_t *slot = &log->cache[level == REG_LEVEL_ENTRIES ? SLOT_ENTRIES : level];
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
      free(b);
      return cp_err(err, errlen, "register entry bundle %s/%s is truncated or corrupt (the length prefix of "
                    "entry %zu, at byte %zu of %zu, runs past the end)", log->dir, rel, count, pos, l);
    }
    if (count != width) {
      free(b);
      return cp_err(err, errlen, "register entry bundle %s/%s is truncated or corrupt (%zu entries, expected %u)",
                    log->dir, rel, count, width);
    }
  } else if (l != (size_t)width * REG_HASH_BYTES) {
    free(b);
    return cp_err(err, errlen, "register tile %s/%s is truncated or corrupt (%zu bytes, expected %zu)",
                  log->dir, rel, l, (size_t)width * REG_HASH_BYTES);
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
}

/* Hash source reading tiles of a tree of `size` leaves. */
typedef struct {
  reg_log_t *log;   // where to read
  uint64_t size;    // tree size whose tiles are read
} tile_src_t;

static int tile_get(void *arg, unsigned height, uint64_t index, uint8_t out[REG_HASH_BYTES],
                    char *err, size_t errlen) {
  tile_src_t *src = arg;
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
  if (read_tile(src->log, (int)level, t, w, &buf, &len, err, errlen) != 0) return -1;
  reg_hashes_root((const reg_hash_t *)(buf + (size_t)off * REG_HASH_BYTES), (size_t)count, out);
  return 0;
}

/* Hash source over the writer's in-memory right edge at tree size `size`. */
typedef struct {
  const reg_log_t *log;   // whose edge
  uint64_t size;          // tree size the edge describes
} edge_src_t;

static int edge_get(void *arg, unsigned height, uint64_t index, uint8_t out[REG_HASH_BYTES],
                    char *err, size_t errlen) {
  edge_src_t *src = arg;
  unsigned level = height / REG_TILE_HEIGHT, sub = height % REG_TILE_HEIGHT;
  if (level >= REG_LEVELS) return cp_err(err, errlen, "subtree height %u out of range", height);
  uint64_t n = src->size >> (REG_TILE_HEIGHT * level);
  uint64_t base = n & ~(uint64_t)(REG_TILE_WIDTH - 1);
  uint64_t first = index << sub, count = 1ull << sub;
  if (first < base || first + count > n)
    return cp_err(err, errlen, "subtree (%u, %llu) is not on the right edge", height, (unsigned long long)index);
  reg_hashes_root((const reg_hash_t *)EDGE(src->log, level)[first - base], (size_t)count, out);
  return 0;
}

/* ---- open / recover ------------------------------------------------------ */

static int lock_dir(reg_log_t *log, char *err, size_t errlen) {
  char path[4200];
  snprintf(path, sizeof path, "%s/lock", log->dir);
  log->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (log->lock_fd < 0) return cp_err(err, errlen, "open %s: %s", path, strerror(errno));
  if (flock(log->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK)
      return cp_err(err, errlen, "register %s is locked by another process (is another signer running for this shard?)",
                    log->dir);
    return cp_err(err, errlen, "flock %s: %s", path, strerror(errno));
  }
  return 0;
}

/* Write a newly signed checkpoint for (size, root) and make it durable. */
static int write_checkpoint(reg_log_t *log, uint64_t size, const uint8_t root[REG_HASH_BYTES],
                            char *note, reg_dirset_t *ds, char *err, size_t errlen) {
  int n = reg_checkpoint_sign(log->key, size, root, note, REG_CHECKPOINT_MAX + 1, err, errlen);
  if (n < 0) return -1;
  if (reg_file_write(log->dir, "checkpoint", note, (size_t)n, ds, err, errlen) != 0) return -1;
  return reg_dirset_sync(ds, err, errlen);
}

/* Reader: (re)load the verifier keys from dir/vkeys, or dir/vkey when there is no
 * vkeys (reg_vkeys_read). 1 when neither file exists (the keys known so far, if
 * any, are kept), 0 when loaded, -1 (err) when a file is unreadable or malformed.
 *
 * Trust: vkeys is written next to the register by the signer and by the
 * operator's `carepass rotate-key` (which appends the new key before the signer
 * signs with it), so a long-running reader follows a rotation without a restart.
 * Trusting these files means trusting whoever can write the register directory --
 * who could also write its checkpoint. A reader that must not trust the
 * directory's own key files (an auditor, a mirror, an employer) brings its own
 * verifier key to the offline tools instead (carepass audit / verify --vkey). */
static int reader_load_vkeys(reg_log_t *log, char *err, size_t errlen) {
  char path[4200];
  struct stat st;
  snprintf(path, sizeof path, "%s/vkeys", log->dir);
  bool have = stat(path, &st) == 0;
  snprintf(path, sizeof path, "%s/vkey", log->dir);
  if (!have && stat(path, &st) != 0) return 1;
  char **v = NULL;
  size_t n = 0;
  if (reg_vkeys_read(log->dir, &v, &n, err, errlen) != 0) return -1;
  reg_vkeys_free(&log->vkeys, log->nvkeys);
  log->vkeys = v;
  log->nvkeys = n;
  return 0;
}

/* Check a checkpoint note: the writer with its own key; a reader with any key in
 * dir/vkeys (re-read once when the keys known so far do not verify it: a rotation).
 * A reader of a register that has no key files yet (a signer that has not published
 * its key) parses the note unverified, as before; once keys are known it never goes
 * back to that. */
static int check_note(reg_log_t *log, const char *note, size_t len, uint64_t *size,
                      uint8_t root[REG_HASH_BYTES], char *err, size_t errlen) {
  if (log->key != NULL) return reg_checkpoint_open(note, len, log->vkey, NULL, 0, size, root, err, errlen);
  char verr[CP_ERRLEN], kerr[CP_ERRLEN];
  if (log->nvkeys > 0 &&
      reg_checkpoint_open_any(note, len, (const char *const *)log->vkeys, log->nvkeys, NULL, 0, size, root,
                              NULL, verr, sizeof verr) == 0)
    return 0;
  if (reader_load_vkeys(log, kerr, sizeof kerr) < 0) {
    if (log->nvkeys == 0) return cp_err(err, errlen, "%s", kerr);
    return cp_err(err, errlen, "%s; re-reading the verifier keys failed: %s", verr, kerr);
  }
  if (log->nvkeys == 0) return reg_checkpoint_parse(note, len, NULL, 0, size, root, err, errlen);
  return reg_checkpoint_open_any(note, len, (const char *const *)log->vkeys, log->nvkeys, NULL, 0, size, root,
                                 NULL, err, errlen);
}

/* Read and check dir/checkpoint into size/root/note. */
static int read_checkpoint(reg_log_t *log, uint64_t *size, uint8_t root[REG_HASH_BYTES], char *note,
                           char *err, size_t errlen) {
  uint8_t *buf = NULL;
  size_t len = 0;
  char rerr[CP_ERRLEN];
  if (reg_file_read(log->dir, "checkpoint", REG_CHECKPOINT_MAX, &buf, &len, rerr, sizeof rerr) != 0)
    return cp_err(err, errlen, "register checkpoint unreadable: %s", rerr);
  char cerr[CP_ERRLEN];
  cerr[0] = '\0';
  int rc = check_note(log, (char *)buf, len, size, root, cerr, sizeof cerr);
  if (rc == 0 && memchr(buf, '\0', len) != NULL) {
    rc = -1;
    snprintf(cerr, sizeof cerr, "checkpoint contains a NUL byte");
  }
  if (rc == 0) memcpy(note, buf, len + 1);
  free(buf);
  if (rc != 0) return cp_err(err, errlen, "register checkpoint %s/checkpoint refused: %s", log->dir, cerr);
  return 0;
}

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
static uint64_t discard_beyond(reg_log_t *log, reg_dirset_t *ds) {
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
                      size_t len, reg_dirset_t *ds, char *err, size_t errlen);

/* Writer, before discard_beyond: recompute the partial tiles of the checkpointed
 * size that are missing (a crash of an older writer, a lost file, an operator's
 * mistake). The partial bundle can only come from a wider copy of the same bundle
 * (left by a later batch that was never checkpointed); level 0 from the bundle;
 * level L from the full tiles of level L - 1. What cannot be rebuilt is refused,
 * naming the file. check_root then checks the result against the signed root. */
static int rebuild_edge(reg_log_t *log, reg_dirset_t *ds, char *err, size_t errlen) {
  uint64_t size = log->size;
  char rel[REG_PATH_MAX], why[CP_ERRLEN];
  reg_hash_t *hashes = NULL;
  int rc;
  if (size == 0) return 0;
  uint64_t t0 = size / REG_TILE_WIDTH;
  unsigned w0 = (unsigned)(size % REG_TILE_WIDTH);
  if (w0 > 0) {
    if ((rc = tile_present(log, REG_LEVEL_ENTRIES, t0, w0, rel, err, errlen)) < 0) return -1;
    if (rc == 0) {
      const uint8_t *buf = NULL;
      size_t len = 0;
      for (unsigned w = w0 + 1; w <= REG_TILE_WIDTH && buf == NULL; w++) {
        char wrel[REG_PATH_MAX];
        if ((rc = tile_present(log, REG_LEVEL_ENTRIES, t0, w, wrel, err, errlen)) < 0) return -1;
        if (rc == 1 && read_tile(log, REG_LEVEL_ENTRIES, t0, w, &buf, &len, why, sizeof why) != 0) buf = NULL;
      }
      if (buf == NULL)
        return cp_err(err, errlen, "register %s: entry bundle %s (checkpoint size %llu) is missing and cannot be "
                      "rebuilt: no wider copy of that bundle exists; restore it from a backup or mirror",
                      log->dir, rel, (unsigned long long)size);
      size_t pos = 0, elen;
      const uint8_t *e;
      for (unsigned i = 0; i < w0; i++) {
        if (reg_bundle_next(buf, len, &pos, &e, &elen) != 1) break;   /* cannot happen: read_tile counted them */
      }
      if (write_tile(log, REG_LEVEL_ENTRIES, t0, w0, buf, pos, ds, err, errlen) != 0) return -1;
      cp_log_warn("register: rebuilt a missing entry bundle from a wider copy", CP_KV_STR("tile", rel),
                  CP_KV_INT("size", size), CP_KV_END);
    }
    if ((rc = tile_present(log, 0, t0, w0, rel, err, errlen)) < 0) return -1;
    if (rc == 0) {
      const uint8_t *buf;
      size_t len, pos = 0, elen;
      const uint8_t *e;
      if (read_tile(log, REG_LEVEL_ENTRIES, t0, w0, &buf, &len, why, sizeof why) != 0)
        return cp_err(err, errlen, "register %s: tile %s (checkpoint size %llu) is missing and cannot be rebuilt: %s",
                      log->dir, rel, (unsigned long long)size, why);
      hashes = cp_xmalloc(REG_TILE_WIDTH * sizeof *hashes);
      for (unsigned i = 0; i < w0 && reg_bundle_next(buf, len, &pos, &e, &elen) == 1; i++)
        reg_leaf_hash(e, elen, hashes[i]);
      if (write_tile(log, 0, t0, w0, hashes, (size_t)w0 * REG_HASH_BYTES, ds, err, errlen) != 0) goto err;
      cp_log_warn("register: rebuilt a missing tile", CP_KV_STR("tile", rel), CP_KV_INT("size", size), CP_KV_END);
    }
  }
  for (int L = 1; L < REG_LEVELS; L++) {
    uint64_t n = size >> (REG_TILE_HEIGHT * L);
    if (n == 0) break;
    unsigned w = (unsigned)(n % REG_TILE_WIDTH);
    uint64_t t = n / REG_TILE_WIDTH;
    if (w == 0) continue;
    if ((rc = tile_present(log, L, t, w, rel, err, errlen)) < 0) goto err;
    if (rc == 1) continue;
    if (hashes == NULL) hashes = cp_xmalloc(REG_TILE_WIDTH * sizeof *hashes);
    for (unsigned i = 0; i < w; i++) {
      const uint8_t *buf;
      size_t len;
      if (read_tile(log, L - 1, t * REG_TILE_WIDTH + i, REG_TILE_WIDTH, &buf, &len, why, sizeof why) != 0) {
        char lrel[REG_PATH_MAX];
        if (reg_tile_path(lrel, sizeof lrel, L - 1, t * REG_TILE_WIDTH + i, REG_TILE_WIDTH) != 0) lrel[0] = '\0';
        cp_err(err, errlen, "register %s: tile %s (checkpoint size %llu) is missing and cannot be rebuilt: "
               "the tile below it, %s, is missing or damaged", log->dir, rel, (unsigned long long)size, lrel);
        goto err;
      }
      reg_hashes_root((const reg_hash_t *)buf, REG_TILE_WIDTH, hashes[i]);
    }
    if (write_tile(log, L, t, w, hashes, (size_t)w * REG_HASH_BYTES, ds, err, errlen) != 0) goto err;
    cp_log_warn("register: rebuilt a missing tile", CP_KV_STR("tile", rel), CP_KV_INT("size", size), CP_KV_END);
  }
  free(hashes);
  return reg_dirset_sync(ds, err, errlen);
err:
  free(hashes);
  return -1;
}

/* Check the tiles at the right edge of a tree of `size` against `root`. */
static int check_root(reg_log_t *log, uint64_t size, const uint8_t root[REG_HASH_BYTES], char *err,
                      size_t errlen) {
  tile_src_t src = {log, size};
  uint8_t got[REG_HASH_BYTES];
  if (reg_proof_root(tile_get, &src, size, got, err, errlen) != 0) return -1;
  if (sodium_memcmp(got, root, REG_HASH_BYTES) != 0)
    return cp_err(err, errlen, "register %s: tiles do not match the checkpoint root at size %llu",
                  log->dir, (unsigned long long)size);
  /* the partial entry bundle hashes to the partial level-0 tile */
  unsigned w0 = (unsigned)(size % REG_TILE_WIDTH);
  if (w0 > 0) {
    uint64_t t = size / REG_TILE_WIDTH;
    const uint8_t *tile, *bundle;
    size_t tlen, blen;
    if (read_tile(log, 0, t, w0, &tile, &tlen, err, errlen) != 0) return -1;
    if (read_tile(log, REG_LEVEL_ENTRIES, t, w0, &bundle, &blen, err, errlen) != 0) return -1;
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
static int load_edge(reg_log_t *log, char *err, size_t errlen) {
  for (int L = 0; L < REG_LEVELS; L++) {
    uint64_t n = log->size >> (REG_TILE_HEIGHT * L);
    unsigned w = (unsigned)(n % REG_TILE_WIDTH);
    if (w == 0) continue;
    const uint8_t *buf;
    size_t len;
    if (read_tile(log, L, n / REG_TILE_WIDTH, w, &buf, &len, err, errlen) != 0) return -1;
    memcpy(EDGE(log, L), buf, len);
  }
  log->bundle_len = 0;
  unsigned w0 = (unsigned)(log->size % REG_TILE_WIDTH);
  if (w0 > 0) {
    const uint8_t *buf;
    size_t len;
    if (read_tile(log, REG_LEVEL_ENTRIES, log->size / REG_TILE_WIDTH, w0, &buf, &len, err, errlen) != 0)
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

int reg_open(const char *dir, const cp_signkey_t *key, reg_log_t **out, char *err, size_t errlen) {
  *out = NULL;
  reg_log_t *log = cp_xcalloc(1, sizeof *log);
  log->lock_fd = -1;
  log->key = key;
  log->dir = cp_strdup(dir);
  reg_dirset_t ds = {0};
  if (strlen(dir) > 4000) {
    cp_err(err, errlen, "register directory path is too long");
    goto err;
  }
  if (key != NULL) {
    if (cp_mkdirs(dir, 0755, err, errlen) != 0) goto err;
    if (lock_dir(log, err, errlen) != 0) goto err;
    if (cp_vkey_format(key->name, key->pk, log->vkey, sizeof log->vkey) != 0) {
      cp_err(err, errlen, "cannot format the verifier key of %s", key->name);
      goto err;
    }
    log->edge = cp_xcalloc((size_t)REG_LEVELS * REG_TILE_WIDTH, sizeof(reg_hash_t));
  } else if (reader_load_vkeys(log, err, errlen) < 0) {
    goto err;   /* the keys are re-read by check_note when a rotation needs it */
  }

  char path[4200];
  snprintf(path, sizeof path, "%s/checkpoint", dir);
  struct stat st;
  if (stat(path, &st) != 0 && errno == ENOENT) {
    if (key == NULL) {
      cp_err(err, errlen, "register %s has no checkpoint (has the signer run yet?)", dir);
      goto err;
    }
    snprintf(path, sizeof path, "%s/tile", dir);
    if (stat(path, &st) == 0) {
      cp_err(err, errlen, "register %s has tiles but no checkpoint; refusing to guess its size (restore the checkpoint file)", dir);
      goto err;
    }
    log->size = 0;
    reg_empty_root(log->root);
    if (write_checkpoint(log, 0, log->root, log->note, &ds, err, errlen) != 0) goto err;
  } else if (read_checkpoint(log, &log->size, log->root, log->note, err, errlen) != 0) {
    goto err;
  }
  if (key != NULL) {
    if (rebuild_edge(log, &ds, err, errlen) != 0) goto err;
    uint64_t removed = discard_beyond(log, &ds);
    /* made durable, so that a power cut cannot bring stale files back beside new ones */
    if (reg_dirset_sync(&ds, err, errlen) != 0) goto err;
    if (removed > 0)
      cp_log_warn("register: discarded the files of a batch that was never checkpointed",
                  CP_KV_STR("dir", dir), CP_KV_INT("files", removed), CP_KV_INT("size", log->size), CP_KV_END);
  }
  if (check_root(log, log->size, log->root, err, errlen) != 0) goto err;
  if (key != NULL && load_edge(log, err, errlen) != 0) goto err;
  reg_dirset_free(&ds);
  *out = log;
  return 0;
err:
  reg_dirset_free(&ds);
  reg_close(&log);
  return -1;
}

void reg_close(reg_log_t **logp) {
  if (logp == NULL || *logp == NULL) return;
  reg_log_t *log = *logp;
  if (log->lock_fd >= 0) close(log->lock_fd);   /* releases the flock */
  cache_clear(log);
  free(log->edge);
  free(log->bundle);
  reg_vkeys_free(&log->vkeys, log->nvkeys);
  free(log->dir);
  free(log);
  *logp = NULL;
}

int reg_refresh(reg_log_t *log, char *err, size_t errlen) {
  if (log->key != NULL) return 0;   /* the writer is always current */
  uint64_t size;
  uint8_t root[REG_HASH_BYTES];
  char *note = cp_xmalloc(REG_CHECKPOINT_MAX + 1);
  if (read_checkpoint(log, &size, root, note, err, errlen) != 0) goto err;
  if (size < log->size) {
    cp_err(err, errlen, "register %s: checkpoint went back from %llu to %llu", log->dir,
           (unsigned long long)log->size, (unsigned long long)size);
    goto err;
  }
  if (size != log->size || memcmp(root, log->root, REG_HASH_BYTES) != 0) {
    if (check_root(log, size, root, err, errlen) != 0) goto err;
    log->size = size;
    memcpy(log->root, root, REG_HASH_BYTES);
    memcpy(log->note, note, REG_CHECKPOINT_MAX + 1);
  }
  free(note);
  return 0;
err:
  free(note);
  return -1;
}

uint64_t reg_size(const reg_log_t *log) { return log->size; }
bool reg_broken(const reg_log_t *log) { return log->broken; }
void reg_root(const reg_log_t *log, uint8_t root[REG_HASH_BYTES]) { memcpy(root, log->root, REG_HASH_BYTES); }
const char *reg_dir(const reg_log_t *log) { return log->dir; }
const char *reg_checkpoint_note(const reg_log_t *log) { return log->note; }

/* ---- append -------------------------------------------------------------- */

static int write_tile(reg_log_t *log, int level, uint64_t index, unsigned width, const void *buf,
                      size_t len, reg_dirset_t *ds, char *err, size_t errlen) {
  char rel[REG_PATH_MAX];
  if (reg_tile_path(rel, sizeof rel, level, index, width) != 0) return cp_err(err, errlen, "tile path too long");
  return reg_file_write(log->dir, rel, buf, len, ds, err, errlen);
}

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
 *     deleted by reg_open (discard_beyond). Readers never see a half-written file
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

  /* 1. the tiles */
  uint64_t old = log->size, s = old;
  for (size_t i = 0; i < n; i++) {
    bundle_add(log, entries[i], lens[i]);
    reg_leaf_hash(entries[i], lens[i], EDGE(log, 0)[s % REG_TILE_WIDTH]);
    s++;
    if (s % REG_TILE_WIDTH != 0) continue;
    /* a level-0 tile and its bundle are complete: write them, carry the tile hash up */
    uint64_t t = s / REG_TILE_WIDTH - 1;
    if (batch_tile(log, &wb, REG_LEVEL_ENTRIES, t, REG_TILE_WIDTH, log->bundle, log->bundle_len, &ds, err, errlen) != 0)
      goto err;
    cp_test_crash_point("bundle");
    if (batch_tile(log, &wb, 0, t, REG_TILE_WIDTH, EDGE(log, 0), REG_TILE_WIDTH * REG_HASH_BYTES, &ds, err, errlen) != 0)
      goto err;
    cp_test_crash_point("tile0");
    log->bundle_len = 0;
    uint64_t idx = t;
    for (int L = 0; L + 1 < REG_LEVELS; L++) {
      reg_hashes_root((const reg_hash_t *)EDGE(log, L), REG_TILE_WIDTH, EDGE(log, L + 1)[idx % REG_TILE_WIDTH]);
      if ((idx + 1) % REG_TILE_WIDTH != 0) break;
      if (batch_tile(log, &wb, L + 1, idx / REG_TILE_WIDTH, REG_TILE_WIDTH, EDGE(log, L + 1),
                     REG_TILE_WIDTH * REG_HASH_BYTES, &ds, err, errlen) != 0)
        goto err;
      cp_test_crash_point("tile-upper");
      idx /= REG_TILE_WIDTH;
    }
  }
  /* the partial bundle, then the partial tiles that grew in this batch, level by level */
  if (s % REG_TILE_WIDTH != 0) {
    if (batch_tile(log, &wb, REG_LEVEL_ENTRIES, s / REG_TILE_WIDTH, (unsigned)(s % REG_TILE_WIDTH), log->bundle,
                   log->bundle_len, &ds, err, errlen) != 0)
      goto err;
    cp_test_crash_point("bundle");
  }
  for (int L = 0; L < REG_LEVELS; L++) {
    uint64_t nl = s >> (REG_TILE_HEIGHT * L);
    if (nl == 0) break;
    unsigned w = (unsigned)(nl % REG_TILE_WIDTH);
    if (w == 0 || nl == (old >> (REG_TILE_HEIGHT * L))) continue;
    if (batch_tile(log, &wb, L, nl / REG_TILE_WIDTH, w, EDGE(log, L), (size_t)w * REG_HASH_BYTES, &ds, err, errlen) != 0)
      goto err;
    cp_test_crash_point(L == 0 ? "tile0" : "tile-upper");
  }

  /* 2. the new checkpoint, written but not yet in place */
  uint8_t root[REG_HASH_BYTES];
  edge_src_t src = {log, s};
  if (reg_proof_root(edge_get, &src, s, root, err, errlen) != 0) goto err;
  int notelen = reg_checkpoint_sign(log->key, s, root, note, REG_CHECKPOINT_MAX + 1, err, errlen);
  if (notelen < 0) goto err;
  if (reg_wbatch_write(&wb, log->dir, "checkpoint", note, (size_t)notelen, false, &rootds, err, errlen) != 0) goto err;

  /* 3. everything durable: file contents, then the directory entries */
  if (reg_wbatch_sync(&wb, err, errlen) != 0) goto err;
  if (reg_dirset_sync(&ds, err, errlen) != 0) goto err;
  cp_test_crash_point("tiles-synced");

  /* 4. the commit point; reg_wbatch_rename fails only before renaming: on -1 the old checkpoint stands */
  if (reg_wbatch_rename(&wb, wb.n - 1, err, errlen) != 0) goto err;
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
    free(snap_edge);
    free(snap_bundle);
    free(note);
    reg_dirset_free(&ds);
    reg_dirset_free(&rootds);
    reg_wbatch_free(&wb);
    return -1;
  }
  cp_test_crash_point("appended");
  log->size = s;
  memcpy(log->root, root, REG_HASH_BYTES);
  memcpy(log->note, note, REG_CHECKPOINT_MAX + 1);
  *first_index = old;
  free(snap_edge);
  free(snap_bundle);
  free(note);
  reg_dirset_free(&ds);
  reg_dirset_free(&rootds);
  reg_wbatch_free(&wb);
  return 0;
err:
  memcpy(log->edge, snap_edge, edge_bytes);
  if (snap_bundle_len > 0) memcpy(log->bundle, snap_bundle, snap_bundle_len);
  log->bundle_len = snap_bundle_len;
  cache_clear(log);
  free(snap_edge);
  free(snap_bundle);
  free(note);
  reg_dirset_free(&ds);
  reg_dirset_free(&rootds);
  reg_wbatch_free(&wb);
  return -1;
}

/* ---- reading -------------------------------------------------------------- */

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
    if (read_tile(log, REG_LEVEL_ENTRIES, t, w, &buf, &len, err, errlen) != 0) return -1;
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
  tile_src_t src = {log, log->size};
  return tile_get(&src, height, index, out, err, errlen);
}

int reg_inclusion_proof(reg_log_t *log, uint64_t index, uint64_t size, reg_hash_t *proof, size_t *n,
                        char *err, size_t errlen) {
  *n = 0;
  if (size > log->size)
    return cp_err(err, errlen, "tree size %llu is beyond the register size %llu", (unsigned long long)size,
                  (unsigned long long)log->size);
  tile_src_t src = {log, log->size};
  return reg_proof_inclusion(tile_get, &src, index, size, proof, n, err, errlen);
}

int reg_consistency_proof(reg_log_t *log, uint64_t old_size, uint64_t new_size, reg_hash_t *proof,
                          size_t *n, char *err, size_t errlen) {
  *n = 0;
  if (new_size > log->size)
    return cp_err(err, errlen, "tree size %llu is beyond the register size %llu", (unsigned long long)new_size,
                  (unsigned long long)log->size);
  tile_src_t src = {log, log->size};
  return reg_proof_consistency(tile_get, &src, old_size, new_size, proof, n, err, errlen);
}

int reg_audit(reg_log_t *log, char *err, size_t errlen) {
  tile_src_t src = {log, log->size};
  /* level 0 against the entries */
  uint64_t tiles0 = (log->size + REG_TILE_WIDTH - 1) / REG_TILE_WIDTH;
  for (uint64_t t = 0; t < tiles0; t++) {
    unsigned w = reg_tile_width(log->size, 0, t);
    const uint8_t *bundle;
    size_t blen, pos = 0, elen;
    const uint8_t *e;
    if (read_tile(log, REG_LEVEL_ENTRIES, t, w, &bundle, &blen, err, errlen) != 0) return -1;
    for (unsigned i = 0; reg_bundle_next(bundle, blen, &pos, &e, &elen) == 1; i++) {
      uint8_t h[REG_HASH_BYTES], stored[REG_HASH_BYTES];
      reg_leaf_hash(e, elen, h);
      if (tile_get(&src, 0, t * REG_TILE_WIDTH + i, stored, err, errlen) != 0) return -1;
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
      if (read_tile(log, L, t, REG_TILE_WIDTH, &buf, &len, err, errlen) != 0) return -1;
      reg_hashes_root((const reg_hash_t *)buf, REG_TILE_WIDTH, a);
      /* ... and as stored at level L + 1 */
      if (tile_get(&src, (unsigned)(REG_TILE_HEIGHT * (L + 1)), t, b, err, errlen) != 0) return -1;
      if (memcmp(a, b, REG_HASH_BYTES) != 0)
        return cp_err(err, errlen, "tile %d/%llu does not match its hash at level %d", L, (unsigned long long)t, L + 1);
    }
  }
  return check_root(log, log->size, log->root, err, errlen);
}
