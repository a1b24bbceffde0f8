/* cp_register.h -- the carepass register: a C2SP tlog-tiles transparency log
 * (RFC 6962 hashing, tile height 8, entry bundles, signed-note checkpoints).
 *
 * On disk, under the register directory:
 *   checkpoint                      signed note (c2sp.org/tlog-checkpoint + signed-note)
 *   tile/<L>/<N>[.p/<W>]            hash tiles, 32-byte SHA-256 hashes
 *   tile/entries/<N>[.p/<W>]        entry bundles: big-endian uint16 length || entry, repeated
 *   lock                            flock'd by the one writer (the signer of the shard)
 *   vkey                            the verifier key (written by the signer, for tools)
 *
 * A reg_log_t is not thread-safe: one thread uses it at a time. */
#ifndef CP_REGISTER_H
#define CP_REGISTER_H

#include "cp_util.h"
#include "cp_crypto.h"

#define REG_HASH_BYTES 32            /* SHA-256 */
#define REG_TILE_HEIGHT 8            /* tile height: 2^8 hashes per full tile */
#define REG_TILE_WIDTH 256           /* hashes (or entries) in a full tile */
#define REG_LEVELS 8                 /* tile levels 0..7 cover every 64-bit tree size */
#define REG_ENTRY_MAX 65535          /* longest entry (uint16 length prefix) */
#define REG_PROOF_MAX 64             /* most hashes in an inclusion/consistency proof */
#define REG_PATH_MAX 64              /* longest relative tile path + NUL */
#define REG_LEVEL_ENTRIES (-1)       /* the "level" of entry bundles in reg_tile_path */
#define REG_CHECKPOINT_MAX 4096      /* largest checkpoint note accepted */

typedef uint8_t reg_hash_t[REG_HASH_BYTES];

/* ---- hashing (register_hash.c) ------------------------------------------ */

/* RFC 6962 leaf hash: SHA-256(0x00 || entry). */
void reg_leaf_hash(const uint8_t *entry, size_t len, uint8_t out[REG_HASH_BYTES]);
/* RFC 6962 interior node: SHA-256(0x01 || left || right). out may alias l or r. */
void reg_node_hash(const uint8_t l[REG_HASH_BYTES], const uint8_t r[REG_HASH_BYTES],
                   uint8_t out[REG_HASH_BYTES]);
/* Root of the empty tree: SHA-256(""). */
void reg_empty_root(uint8_t out[REG_HASH_BYTES]);
/* Merkle tree hash (RFC 6962 MTH) over n >= 1 already-hashed nodes of one level. */
void reg_hashes_root(const reg_hash_t *hashes, size_t n, uint8_t out[REG_HASH_BYTES]);

/* ---- tile paths and bundles (register_tiles.c) -------------------------- */

/* Relative path of a tile: "tile/<level>/<N>" for a full tile (width 256) or
 * "tile/<level>/<N>.p/<width>" for a partial one (width 1..255); level
 * REG_LEVEL_ENTRIES gives "tile/entries/...". N is written in 3-digit path
 * elements, all but the last prefixed "x" (1234067 -> x001/x234/067). */
int reg_tile_path(char *out, size_t outlen, int level, uint64_t index, unsigned width) CP_WUR;
/* Parse a relative path written by reg_tile_path (canonical form only). */
int reg_tile_parse_path(const char *path, int *level, uint64_t *index, unsigned *width) CP_WUR;
/* Width of tile (level, index) in a tree of `size` leaves: 256 when full,
 * 1..255 when partial, 0 when the tile does not exist at that size.
 * Level REG_LEVEL_ENTRIES is treated as level 0. */
unsigned reg_tile_width(uint64_t size, int level, uint64_t index);

/* Step through an entry bundle: on return 1, *entry and *len is the next entry and
 * *pos moves past it; 0 at the end; -1 if the bundle is truncated. */
int reg_bundle_next(const uint8_t *buf, size_t buflen, size_t *pos, const uint8_t **entry,
                    size_t *len) CP_WUR;

/* ---- checkpoints (register_checkpoint.c) -------------------------------- */

/* The checkpoint body "<origin>\n<size>\n<base64 root>\n". Returns its length or -1. */
int reg_checkpoint_body(const char *origin, uint64_t size, const uint8_t root[REG_HASH_BYTES],
                        char *out, size_t outlen) CP_WUR;
/* Signed note: body + "\n" + "— <key name> <base64(key id || Ed25519 sig)>\n".
 * The origin is the key name. Returns the note length (NUL-terminated in out) or -1. */
int reg_checkpoint_sign(const cp_signkey_t *key, uint64_t size, const uint8_t root[REG_HASH_BYTES],
                        char *out, size_t outlen, char *err, size_t errlen) CP_WUR;
/* Verify a signed checkpoint note with a verifier key ("<name>+<8hex>+<base64>")
 * and parse it. Refuses (with a sentence in err) a malformed note, a note with no
 * signature by that key, a bad signature, or a malformed body. The origin must
 * equal the key name. origin may be NULL. */
int reg_checkpoint_open(const char *note, size_t notelen, const char *vkey, char *origin,
                        size_t originlen, uint64_t *size, uint8_t root[REG_HASH_BYTES],
                        char *err, size_t errlen) CP_WUR;
/* Parse the body of a checkpoint note WITHOUT checking any signature (local,
 * trusted files only). */
int reg_checkpoint_parse(const char *note, size_t notelen, char *origin, size_t originlen,
                         uint64_t *size, uint8_t root[REG_HASH_BYTES], char *err,
                         size_t errlen) CP_WUR;

/* ---- proofs (register_proof.c): pure functions over a hash source ------- */

/* Hash source: hash of the complete subtree of height `height` (2^height leaves)
 * starting at leaf index << height. Returns 0 / -1 (err filled). */
typedef int (*reg_hash_fn)(void *arg, unsigned height, uint64_t index,
                           uint8_t out[REG_HASH_BYTES], char *err, size_t errlen);

/* Root of the tree of `size` leaves (empty root for 0). */
int reg_proof_root(reg_hash_fn get, void *arg, uint64_t size, uint8_t root[REG_HASH_BYTES],
                   char *err, size_t errlen) CP_WUR;
/* RFC 6962 / 9162 audit path of leaf `index` in the tree of `size` leaves.
 * proof needs REG_PROOF_MAX slots; *n receives the count. */
int reg_proof_inclusion(reg_hash_fn get, void *arg, uint64_t index, uint64_t size,
                        reg_hash_t *proof, size_t *n, char *err, size_t errlen) CP_WUR;
/* RFC 6962 consistency proof from old_size to new_size (0 < old <= new; empty when equal). */
int reg_proof_consistency(reg_hash_fn get, void *arg, uint64_t old_size, uint64_t new_size,
                          reg_hash_t *proof, size_t *n, char *err, size_t errlen) CP_WUR;
/* RFC 9162 2.1.3.2: 0 when proof shows leaf_hash at index in the tree (size, root). */
int reg_verify_inclusion(const uint8_t leaf_hash[REG_HASH_BYTES], uint64_t index, uint64_t size,
                         const reg_hash_t *proof, size_t n,
                         const uint8_t root[REG_HASH_BYTES]) CP_WUR;
/* RFC 9162 2.1.4.2: 0 when proof shows tree (old_size, old_root) is a prefix of
 * (new_size, new_root). old_size 0 is consistent with anything (empty proof). */
int reg_verify_consistency(uint64_t old_size, uint64_t new_size, const reg_hash_t *proof,
                           size_t n, const uint8_t old_root[REG_HASH_BYTES],
                           const uint8_t new_root[REG_HASH_BYTES]) CP_WUR;

/* ---- the log: open, recover and close (register_open.c, register_recover.c), append
 * (register_append.c), read and prove (register_read.c), audit (register_audit.c) ---- */

typedef struct reg_log reg_log_t;

/* Open the register in `dir`.
 * key != NULL: writer. Creates dir if missing, takes an exclusive non-blocking
 * flock on dir/lock (a second writer gets "register ... is locked by another
 * process"), writes an empty checkpoint for a new register, verifies the
 * checkpoint with the key, deletes tiles beyond the checkpointed size (a batch
 * that was never checkpointed) and checks the right edge of the tiles against the
 * checkpoint root. The key must outlive the log.
 * key == NULL: read-only (no lock, nothing changed on disk); the checkpoint is
 * verified with any key in dir/vkeys (dir/vkey when vkeys is absent), and the key
 * files are re-read on refresh when a new checkpoint needs a key not yet known
 * (after a rotation). */
int reg_open(const char *dir, const cp_signkey_t *key, reg_log_t **out, char *err,
             size_t errlen) CP_WUR;
/* Close and free; sets *log to NULL; safe on NULL. Releases the lock. */
void reg_close(reg_log_t **log);

/* Read-only logs: reload the checkpoint if the writer has moved it on. */
int reg_refresh(reg_log_t *log, char *err, size_t errlen) CP_WUR;

uint64_t reg_size(const reg_log_t *log);
/* Writer: true once an append failed after its checkpoint rename (see reg_append);
 * every later append fails until the log is reopened. */
bool reg_broken(const reg_log_t *log);
void reg_root(const reg_log_t *log, uint8_t root[REG_HASH_BYTES]);
const char *reg_dir(const reg_log_t *log);
/* The current signed checkpoint note (as on disk), NUL-terminated. */
const char *reg_checkpoint_note(const reg_log_t *log);

/* Append a batch of n >= 1 entries (each 1..REG_ENTRY_MAX bytes): writes every
 * new or grown entry bundle and hash tile once (to a temp name, renamed into
 * place), writes the new signed checkpoint to checkpoint.tmp, fsyncs all those
 * files together and then each touched directory, and only then renames the
 * checkpoint into place and fsyncs its directory (the argument for why this is
 * crash safe is beside reg_append in register_append.c). On return 0
 * the entries are durable at first_index .. first_index + n - 1. On -1 the log is
 * unchanged (in memory and in what its checkpoint covers). */
int reg_append(reg_log_t *log, const uint8_t *const *entries, const size_t *lens, size_t n,
               uint64_t *first_index, char *err, size_t errlen) CP_WUR;
/* One exception to "unchanged on -1": when the checkpoint was renamed into place but
 * its directory fsync failed, the log takes the new size (it is what the disk shows)
 * and refuses every later append until reopened; the caller should restart.
 *
 * Crash testing: CAREPASS_TEST_CRASH_POINT=<point>:<n> makes the writer SIGKILL its
 * own process the n-th time (n >= 1, counted over the process) it reaches <point>.
 * Read only when set; no effect otherwise. Points, in the order of one batch:
 *   bundle              an entry bundle (full, or the batch's partial one) renamed into place
 *   tile0               a level-0 hash tile (full or partial) renamed into place
 *   tile-upper          a hash tile of level >= 1 renamed into place
 *   tiles-synced        every file of the batch (and checkpoint.tmp) written and fsynced
 *                       and their directories fsynced; checkpoint not yet renamed (once per batch)
 *   checkpoint-renamed  the new checkpoint renamed into place, before its directory fsync
 *   appended            the checkpoint durable, before reg_append returns
 * On open, a writer rebuilds a missing partial bundle/tile of the checkpointed size
 * (from a wider copy of the bundle, or from the level below) and refuses, naming the
 * file, when it cannot. */

/* Copy of entry `index` (< size) into a malloc'd buffer. */
int reg_read_entry(reg_log_t *log, uint64_t index, uint8_t **buf, size_t *len, char *err,
                   size_t errlen) CP_WUR;
/* Call fn for every entry in [from, to) in order, reading each bundle once.
 * A non-zero return from fn stops the walk and is returned. */
typedef int (*reg_entry_fn)(void *arg, uint64_t index, const uint8_t *entry, size_t len);
int reg_foreach_entry(reg_log_t *log, uint64_t from, uint64_t to, reg_entry_fn fn, void *arg,
                      char *err, size_t errlen) CP_WUR;

/* Hash of a complete subtree (see reg_hash_fn) read from the tiles. */
int reg_tree_hash(reg_log_t *log, unsigned height, uint64_t index, uint8_t out[REG_HASH_BYTES],
                  char *err, size_t errlen) CP_WUR;
/* Proofs against the current tiles; size <= reg_size(log). proof has REG_PROOF_MAX slots. */
int reg_inclusion_proof(reg_log_t *log, uint64_t index, uint64_t size, reg_hash_t *proof,
                        size_t *n, char *err, size_t errlen) CP_WUR;
int reg_consistency_proof(reg_log_t *log, uint64_t old_size, uint64_t new_size,
                          reg_hash_t *proof, size_t *n, char *err, size_t errlen) CP_WUR;

/* ---- audit (register_audit.c): what `carepass audit` runs ----------------- */

#define REG_AUDIT_THREADS_MAX 16   /* most audit threads (hashing, signature verification) */

/* Where an audit reads a register: the file at relative path rel ("checkpoint",
 * "tile/0/000", ...; at most max bytes) into *buf, grown with realloc as needed
 * (*cap is its size) and kept NUL-terminated; *missing is set when the file does
 * not exist. 0 / -1 with err. */
typedef int (*reg_fetch_fn)(void *arg, const char *rel, size_t max, uint8_t **buf, size_t *cap, size_t *len,
                            bool *missing, char *err, size_t errlen);

/* The verdict of one check of an audit. */
typedef enum {
  REG_CHECK_PASSED = 0,           // the check held
  REG_CHECK_FAILED = 1,           // it did not (counted in reg_audit_result_t.failed)
  REG_CHECK_NOT_ESTABLISHED = 2,  // it could not be made (no key history, --no-signatures)
} reg_verdict_t;

/* What to audit and where the findings go. */
typedef struct {
  const char *dir;           // the register directory (when fetch is NULL)
  reg_fetch_fn fetch;        // or how its files are read (a mirror over HTTP); NULL: read dir
  void *fetch_arg;           // for fetch
  const char *note;          // the checkpoint note to audit (NUL-terminated); NULL: read "checkpoint"
  const char *vkey;          // verifier key (note vkey text); NULL: the tree only, no keys at all
  bool signatures;           // verify every entry's signature with the key valid at its index
  int threads;               // hashing and signature-verification threads, 1..REG_AUDIT_THREADS_MAX
  const char *since;         // file holding an earlier checkpoint note to prove consistency with; NULL: none
  /* one check's verdict, in the order they are made ("tiles", "root", "key history",
   * "checkpoint signature", "signatures", "consistency", "entries", "checkpoint") */
  void (*check)(void *arg, reg_verdict_t verdict, const char *check, const char *why);
  /* the checkpoint was read: its origin and size (before the walk starts) */
  void (*begin)(void *arg, const char *origin, uint64_t size);
  /* after every entry bundle, and once more (last) when the walk is done */
  void (*progress)(void *arg, uint64_t done, uint64_t size, bool last);
  void *arg;                 // for check, begin and progress (each may be NULL)
} reg_audit_opts_t;

/* How an audit ended. */
typedef struct {
  uint64_t size;     // tree size of the audited checkpoint
  double seconds;    // time the walk over every entry and tile took
  bool complete;     // every check was made (a walk that failed stops early)
  int failed;        // checks that failed
} reg_audit_result_t;

/* Audit a whole register: read every entry bundle, recompute the tree and compare
 * every hash tile at every level and the root; with a vkey also follow the key
 * history (key entries), check the checkpoint signature (by the vkey or a later
 * key the history chains to), every entry signature (signatures) and consistency
 * with an earlier checkpoint (since). Each verdict goes to o->check. 0 when the
 * audit reached a verdict (res->failed == 0: it passed); -1 when the checkpoint
 * could not be read or parsed (reported to o->check as "checkpoint"). */
int reg_audit_run(const reg_audit_opts_t *o, reg_audit_result_t *res) CP_WUR;

/* The same audit, tree only, of an open log at its checkpoint (files read as the
 * log reads them): 0, or -1 with err naming the first check that failed. */
int reg_audit(reg_log_t *log, char *err, size_t errlen) CP_WUR;

#endif
