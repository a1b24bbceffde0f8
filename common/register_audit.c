/* register_audit.c -- auditing a whole register: re-hash every entry, compare every tile, follow the key
 * history, verify every signature, the checkpoint and consistency with an earlier checkpoint. */
#include "register_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "carepass/v1/register.pb-c.h"
#include "cp_regkeys.h"

#define AUDIT_CHUNK_TILES 16          /* entry bundles per signature-verification chunk */
#define AUDIT_SIG_ERRORS_SHOWN 10     /* bad signatures reported before only counting */
#define AUDIT_CHUNK_ENTRIES (AUDIT_CHUNK_TILES * REG_TILE_WIDTH)
#define AUDIT_JOBS_PER_THREAD 512     /* fewer signatures than this per thread are verified on fewer threads */
#define ARENA_SCRATCH_BYTES (64 * 1024)          /* one entry's decoding */
#define ARENA_KEEP_BYTES (1024 * 1024)           /* a thread's share of a chunk's SignedEntries, kept for verifying */
#define AUDIT_SIZE_MAX ((uint64_t)INT64_MAX)    /* largest tree audited: tlog readers (Go's sumdb/tlog) count in int64 */

/* ---- a bump allocator for protobuf-c: an entry is decoded without a malloc per field ---- */

typedef struct arena_block {
  struct arena_block *next;   // older block
  size_t used;                // bytes handed out
  size_t cap;                 // bytes in data
  max_align_t data[];         // the memory
} arena_block_t;

typedef struct {
  arena_block_t *head;        // newest block (handed out from)
  size_t block;               // size of a new block
  ProtobufCAllocator pa;      // what protobuf_c_message_unpack is given
} arena_t;

static void *arena_alloc(void *arg, size_t n) {
  arena_t *a = arg;
  n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
  if (a->head == NULL || a->head->cap - a->head->used < n) {
    size_t cap = n > a->block ? n : a->block;
    arena_block_t *b = cp_xmalloc(sizeof *b + cap);
    b->next = a->head;
    b->used = 0;
    b->cap = cap;
    a->head = b;
  }
  void *p = (uint8_t *)a->head->data + a->head->used;
  a->head->used += n;
  return p;
}

static void arena_free_one(void *arg, void *p) {
  (void)arg;
  (void)p;   /* freed all at once by arena_reset */
}

static void arena_init(arena_t *a, size_t block) {
  a->head = NULL;
  a->block = block;
  a->pa = (ProtobufCAllocator){arena_alloc, arena_free_one, a};
}

/* Forget everything handed out; keeps the newest block for reuse. */
static void arena_reset(arena_t *a) {
  if (a->head == NULL) return;
  arena_block_t *b = a->head->next;
  while (b != NULL) {
    arena_block_t *next = b->next;
    free(b);
    b = next;
  }
  a->head->next = NULL;
  a->head->used = 0;
}

static void arena_destroy(arena_t *a) {
  arena_reset(a);
  free(a->head);
  a->head = NULL;
}

/* Unpack with the arena's allocator (its memory lives until the arena is reset). */
static ProtobufCMessage *arena_unpack(arena_t *a, const ProtobufCMessageDescriptor *d, const uint8_t *buf,
                                      size_t len) {
  static const uint8_t empty[1];   /* protobuf-c takes (NULL, 0) as the empty message; keep buf non-NULL */
  return protobuf_c_message_unpack(d, &a->pa, len, buf != NULL ? buf : empty);
}

/* ---- reading the register's files ------------------------------------------ */

/* The directory source: one open/fstat/read into the reused buffer (no allocation per tile). */
static int dir_fetch(void *arg, const char *rel, size_t max, uint8_t **buf, size_t *cap, size_t *len,
                     bool *missing, char *err, size_t errlen) {
  const char *dir = arg;
  char path[4400];
  snprintf(path, sizeof path, "%s/%s", dir, rel);
  *len = 0;
  *missing = false;
  int rc = -1;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);   /* a planted FIFO must not block */
  if (fd < 0) {
    if (errno == ENOENT) {
      *missing = true;
      return cp_err(err, errlen, "%s is missing", path);
    }
    return cp_err(err, errlen, "open %s: %s", path, strerror(errno));
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    cp_err(err, errlen, "stat %s: %s", path, strerror(errno));
    goto out;
  }
  if (!S_ISREG(st.st_mode)) {
    cp_err(err, errlen, "%s is not a regular file", path);
    goto out;
  }
  if (st.st_size < 0 || (uint64_t)st.st_size > max) {
    cp_err(err, errlen, "%s is %lld bytes; the limit is %zu", path, (long long)st.st_size, max);
    goto out;
  }
  size_t want = (size_t)st.st_size;
  if (*cap < want + 1) {
    uint8_t *nb = realloc(*buf, want + 1);
    if (nb == NULL) abort();   /* OOM is fatal in carepass */
    *buf = nb;
    *cap = want + 1;
  }
  size_t got = 0;
  while (got < want) {
    ssize_t r = read(fd, *buf + got, want - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      cp_err(err, errlen, "read %s: %s", path, strerror(errno));
      goto out;
    }
    if (r == 0) break;
    got += (size_t)r;
  }
  (*buf)[got] = '\0';
  *len = got;
  rc = 0;
out:
  close(fd);
  return rc;
}

/* ---- the audit --------------------------------------------------------------- */

/* One signature to verify. */
typedef struct {
  uint64_t index;          // entry index
  const uint8_t *msg;      // PassportEntry bytes (in the chunk arena)
  size_t len;              // their length
  const uint8_t *sig;      // 64-byte signature (in the chunk arena)
  uint8_t pk[32];          // key valid at index
  bool ok;                 // verified
} sigjob_t;

/* One entry of the chunk: where it is, and what the decoding threads found. */
typedef struct {
  const uint8_t *e;                        // entry bytes (in its bundle's buffer)
  size_t len;                              // their length
  uint8_t hash[REG_HASH_BYTES];            // RFC 6962 leaf hash
  const Carepass__V1__SignedEntry *se;     // decoded, kept for the signature (NULL: tree only, or refused)
  bool feed;                               // a key entry, or protobuf-c refused it: reg_keys_feed decides
} chunk_entry_t;

/* An entry bundle of the chunk. */
typedef struct {
  uint8_t *buf;      // the bundle (reused from chunk to chunk)
  size_t cap;        // allocated for buf
  uint64_t t;        // tile index
  unsigned w;        // entries it must hold
  unsigned n;        // entries found in it (in ents from first)
  size_t first;      // index in the chunk's ents of its first entry
  reg_hash_t root;   // a full bundle: the root of its level-0 tile, as recomputed
} chunk_bundle_t;

struct audit;

/* One thread's share of a chunk: hash and decode bundles [from, to), or verify jobs [from, to). */
typedef struct {
  struct audit *a;   // the audit
  size_t from;       // first entry or job
  size_t to;         // one past the last
  arena_t keep;      // SignedEntries kept for the signature jobs (reset once they are verified)
  arena_t scratch;   // one entry's decoding
  reg_hash_t *scratch_hashes;   // [256] a bundle's leaf hashes, for its root
} worker_t;

/* Audit state. */
typedef struct audit {
  const reg_audit_opts_t *o;          // what to audit, where findings go
  reg_fetch_fn fetch;                 // how files are read
  void *fetch_arg;                    // for fetch
  int threads;                        // threads, 1..REG_AUDIT_THREADS_MAX
  uint64_t size;                      // checkpoint tree size
  uint8_t root[REG_HASH_BYTES];       // checkpoint root (claimed)
  char origin[256];                   // checkpoint origin
  reg_hash_t *lvl;                    // [REG_LEVELS][256] recomputed hashes of the current tile per level
  unsigned nlvl[REG_LEVELS];          // hashes in lvl per level
  uint64_t tiles_checked;             // hash tiles compared
  reg_keyspan_t *spans;               // key history so far
  size_t nspans;                      // spans in use
  bool legacy;                        // no genesis key entry: VKEY signs everything
  chunk_bundle_t bundles[AUDIT_CHUNK_TILES];  // the chunk's entry bundles
  chunk_entry_t *ents;                // the chunk's entries [AUDIT_CHUNK_ENTRIES]
  worker_t workers[REG_AUDIT_THREADS_MAX];    // per thread
  sigjob_t *jobs;                     // current chunk's jobs
  size_t njobs;                       // jobs in use
  uint64_t sig_ok;                    // signatures verified
  uint64_t sig_bad;                   // signatures that failed
  int failed;                         // failed checks
  uint8_t *tbuf;                      // reused buffer for hash tiles
  size_t tcap;                        // its size
  uint64_t done;                      // entries processed
} audit_t;

#define LVL(a, L) ((a)->lvl + (size_t)(L) * REG_TILE_WIDTH)

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void verdict(audit_t *a, reg_verdict_t v, const char *check, const char *fmt, ...) CP_PRINTF(4, 5);
static void verdict(audit_t *a, reg_verdict_t v, const char *check, const char *fmt, ...) {
  char why[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  if (v == REG_CHECK_FAILED) a->failed++;
  if (a->o->check != NULL) a->o->check(a->o->arg, v, check, why);
}

#define PASSED(a, ...) verdict((a), REG_CHECK_PASSED, __VA_ARGS__)
#define FAILED(a, ...) verdict((a), REG_CHECK_FAILED, __VA_ARGS__)

/* Fetch tile (level, t) of width w and compare it with want[0..w). */
static int check_tile(audit_t *a, int level, uint64_t t, unsigned w, const reg_hash_t *want) {
  char rel[REG_PATH_MAX], err[CP_ERRLEN];
  if (reg_tile_path(rel, sizeof rel, level, t, w) != 0) {
    FAILED(a, "tiles", "tile path too long");
    return -1;
  }
  size_t len = 0;
  bool missing;
  if (a->fetch(a->fetch_arg, rel, (size_t)w * REG_HASH_BYTES, &a->tbuf, &a->tcap, &len, &missing, err,
               sizeof err) != 0) {
    FAILED(a, "tiles", "%s", err);
    return -1;
  }
  int rc = 0;
  if (len != (size_t)w * REG_HASH_BYTES) {
    FAILED(a, "tiles", "%s is truncated or corrupt: %zu bytes, expected %zu", rel, len, (size_t)w * REG_HASH_BYTES);
    rc = -1;
  } else {
    for (unsigned i = 0; i < w; i++)
      if (memcmp(a->tbuf + (size_t)i * REG_HASH_BYTES, want[i], REG_HASH_BYTES) != 0) {
        FAILED(a, "tiles", "%s: hash %u differs from the recomputed %s", rel, i,
               level == 0 ? "leaf hash of its entry" : "subtree hash");
        rc = -1;
        break;
      }
  }
  a->tiles_checked++;
  return rc;
}

/* A complete tile's recomputed hashes at `level` are in LVL(level): check it, carry its
 * root up (root: already computed, or NULL). */
static int push_full(audit_t *a, int level, uint64_t t, const uint8_t *root) {
  if (check_tile(a, level, t, REG_TILE_WIDTH, LVL(a, level)) != 0) return -1;
  if (level + 1 < REG_LEVELS) {
    uint8_t *up = LVL(a, level + 1)[a->nlvl[level + 1]++];
    if (root != NULL)
      memcpy(up, root, REG_HASH_BYTES);
    else
      reg_hashes_root(LVL(a, level), REG_TILE_WIDTH, up);
    if (a->nlvl[level + 1] == REG_TILE_WIDTH) {
      if (push_full(a, level + 1, t / REG_TILE_WIDTH, NULL) != 0) return -1;
      a->nlvl[level + 1] = 0;
    }
  }
  return 0;
}

/* Run fn on up to a->threads threads over [0, n), one slice of at least min each (the caller takes the first). */
static void on_threads(audit_t *a, size_t n, size_t min, void *(*fn)(void *)) {
  int nt = a->threads;
  if ((size_t)nt * min > n) nt = (int)(n / min);
  if (nt < 1) nt = 1;
  size_t per = (n + (size_t)nt - 1) / (size_t)nt;
  pthread_t th[REG_AUDIT_THREADS_MAX];
  bool started[REG_AUDIT_THREADS_MAX] = {false};
  for (int i = 0; i < nt; i++) {
    worker_t *w = &a->workers[i];
    w->from = (size_t)i * per < n ? (size_t)i * per : n;
    w->to = w->from + per < n ? w->from + per : n;
  }
  for (int i = 1; i < nt; i++) {
    started[i] = pthread_create(&th[i], NULL, fn, &a->workers[i]) == 0;
    if (!started[i]) fn(&a->workers[i]);
  }
  fn(&a->workers[0]);
  for (int i = 1; i < nt; i++)
    if (started[i]) pthread_join(th[i], NULL);
}

static void *verify_slice(void *arg) {
  worker_t *w = arg;
  for (size_t i = w->from; i < w->to; i++) {
    sigjob_t *j = &w->a->jobs[i];
    j->ok = cp_verify_entry(j->pk, j->msg, j->len, j->sig);
  }
  return NULL;
}

/* The leaf hash of one entry and, with a vkey, its decoding. */
static void decode_entry(worker_t *w, chunk_entry_t *ce) {
  const reg_audit_opts_t *o = w->a->o;
  reg_leaf_hash(ce->e, ce->len, ce->hash);
  ce->se = NULL;
  ce->feed = false;
  if (o->vkey == NULL) return;   /* the tree only */
  arena_reset(&w->scratch);
  arena_t *sa = o->signatures ? &w->keep : &w->scratch;
  const Carepass__V1__SignedEntry *se =
      (Carepass__V1__SignedEntry *)arena_unpack(sa, &carepass__v1__signed_entry__descriptor, ce->e, ce->len);
  const Carepass__V1__PassportEntry *pe =
      se == NULL ? NULL
                 : (Carepass__V1__PassportEntry *)arena_unpack(&w->scratch, &carepass__v1__passport_entry__descriptor,
                                                               se->entry.data, se->entry.len);
  ce->feed = pe == NULL || pe->entry_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_KEY;
  if (o->signatures) ce->se = se;
}

/* For the bundles of the slice: the leaf hash of each entry and, with a vkey, its
 * decoding by protobuf-c (is it a key entry, or something protobuf-c refuses; its
 * SignedEntry for the signature job); the level-0 root of a full bundle. */
static void *decode_slice(void *arg) {
  worker_t *w = arg;
  for (size_t k = w->from; k < w->to; k++) {
    chunk_bundle_t *b = &w->a->bundles[k];
    for (size_t i = b->first; i < b->first + b->n; i++) decode_entry(w, &w->a->ents[i]);
    if (b->n == REG_TILE_WIDTH) {
      reg_hash_t *h = w->scratch_hashes;
      for (unsigned i = 0; i < REG_TILE_WIDTH; i++) memcpy(h[i], w->a->ents[b->first + i].hash, REG_HASH_BYTES);
      reg_hashes_root((const reg_hash_t *)h, REG_TILE_WIDTH, b->root);
    }
  }
  return NULL;
}


/* Verify the chunk's signatures on the threads, count the results, forget the chunk. */
static void run_jobs(audit_t *a) {
  if (a->njobs > 0) {
    on_threads(a, a->njobs, AUDIT_JOBS_PER_THREAD, verify_slice);
    for (size_t i = 0; i < a->njobs; i++) {
      if (a->jobs[i].ok) {
        a->sig_ok++;
      } else {
        if (a->sig_bad < AUDIT_SIG_ERRORS_SHOWN)
          FAILED(a, "signatures", "entry %" PRIu64 ": Ed25519 signature does not verify", a->jobs[i].index);
        a->sig_bad++;
      }
    }
  }
  a->njobs = 0;
  for (int i = 0; i < REG_AUDIT_THREADS_MAX; i++) arena_reset(&a->workers[i].keep);
}

/* Key history and the signature job of one decoded entry (index order). A key entry,
 * entry 0 (it decides whether the log has a key history) and anything protobuf-c
 * refused go to reg_keys_feed for its verdict. */
static void audit_entry(audit_t *a, uint64_t index, const chunk_entry_t *ce) {
  char err[CP_ERRLEN];
  if (a->o->vkey == NULL) return;   /* the tree only */
  if (!a->legacy && (index == 0 || ce->feed)) {
    size_t before = a->nspans;
    int frc = reg_keys_feed(&a->spans, &a->nspans, index, ce->e, ce->len, err, sizeof err);
    if (frc != 0 && !(index == 0 && a->nspans == 0)) {
      if (a->sig_bad < AUDIT_SIG_ERRORS_SHOWN) FAILED(a, "key history", "%s", err);
      a->sig_bad++;
      return;
    }
    if (index == 0 && (frc != 0 || a->nspans == before)) {
      /* entry 0 is not a key entry: a register from before key history; VKEY signs it all */
      a->legacy = true;
      free(a->spans);
      a->spans = NULL;
      a->nspans = 0;
      if (reg_keys_from_vkey(a->o->vkey, &a->spans, &a->nspans, err, sizeof err) != 0) abort(); /* parsed before */
    }
  }
  if (!a->o->signatures) return;
  const Carepass__V1__SignedEntry *se = ce->se;
  const reg_keyspan_t *sp = NULL;
  if (se != NULL && se->signature.len == crypto_sign_BYTES && se->key_id.len == CP_KEYID_BYTES)
    sp = reg_keys_for(a->spans, a->nspans, se->key_id.data, index);
  if (sp == NULL) {
    if (a->sig_bad < AUDIT_SIG_ERRORS_SHOWN) {
      if (se == NULL)
        FAILED(a, "signatures", "entry %" PRIu64 " is not a SignedEntry: malformed protobuf", index);
      else
        FAILED(a, "signatures", "entry %" PRIu64 " is signed by a key that is not valid at its index", index);
    }
    a->sig_bad++;
    return;
  }
  sigjob_t *j = &a->jobs[a->njobs++];
  j->index = index;
  j->msg = se->entry.data;
  j->len = se->entry.len;
  j->sig = se->signature.data;
  memcpy(j->pk, sp->pk, 32);
  j->ok = false;
}

/* Read the chunk of entry bundles from tile t0 on and find their entries. Stops at the
 * first bundle that cannot be read or is malformed: *why is then its failure (the
 * walk audits none of its entries). Returns the bundles in the chunk, the failed
 * one included. */
static size_t read_chunk(audit_t *a, uint64_t t0, uint64_t ntiles, char *why, size_t whylen) {
  char err[CP_ERRLEN];
  size_t nb = 0, n = 0;
  why[0] = '\0';
  for (uint64_t t = t0; nb < AUDIT_CHUNK_TILES && t < ntiles; t++) {
    chunk_bundle_t *b = &a->bundles[nb++];
    b->t = t;
    b->w = reg_tile_width(a->size, 0, t);
    b->n = 0;
    b->first = n;
    char rel[REG_PATH_MAX];
    size_t len = 0, pos = 0, elen;
    bool missing;
    const uint8_t *e;
    if (reg_tile_path(rel, sizeof rel, REG_LEVEL_ENTRIES, t, b->w) != 0) {
      snprintf(why, whylen, "tile path too long");
      break;
    }
    if (a->fetch(a->fetch_arg, rel, (size_t)b->w * (2 + REG_ENTRY_MAX), &b->buf, &b->cap, &len, &missing, err,
                 sizeof err) != 0) {
      snprintf(why, whylen, "%s", err);
      break;
    }
    while (b->n < b->w && reg_bundle_next(b->buf, len, &pos, &e, &elen) == 1) {
      a->ents[n].e = e;
      a->ents[n].len = elen;
      n++;
      b->n++;
    }
    if (b->n != b->w || pos != len) {
      snprintf(why, whylen, "entry bundle %s is truncated or corrupt (%u entries read, %u expected%s)", rel, b->n,
               b->w, b->n == b->w ? ", trailing bytes" : "");
      break;
    }
  }
  return nb;
}

/* Level 0 and up: every entry bundle, every tile, a chunk of bundles at a time: read,
 * then hashed and decoded on the threads, then in index order the key history, the
 * signature jobs and the tiles, then the signatures verified on the threads. */
static int walk(audit_t *a) {
  uint64_t ntiles = (a->size + REG_TILE_WIDTH - 1) / REG_TILE_WIDTH;
  char why[768];
  for (uint64_t t0 = 0; t0 < ntiles; t0 += AUDIT_CHUNK_TILES) {
    size_t nb = read_chunk(a, t0, ntiles, why, sizeof why);
    on_threads(a, nb, 2, decode_slice);
    for (size_t k = 0; k < nb; k++) {
      chunk_bundle_t *b = &a->bundles[k];
      if (k + 1 == nb && why[0] != '\0') {
        /* a bundle that is truncated, over-long or unreadable: its error is the verdict. What was read
         * from it is not audited (past a bad length prefix its "entries" are slices of other entries
         * and would blame intact ones), and the chunk's queued signatures are never verified. */
        FAILED(a, "entries", "%s", why);
        return -1;
      }
      for (unsigned i = 0; i < b->n; i++) {
        memcpy(LVL(a, 0)[i], a->ents[b->first + i].hash, REG_HASH_BYTES);
        audit_entry(a, b->t * REG_TILE_WIDTH + i, &a->ents[b->first + i]);
      }
      a->nlvl[0] = b->w;
      if (b->w == REG_TILE_WIDTH) {
        if (push_full(a, 0, b->t, b->root) != 0) return -1;
        a->nlvl[0] = 0;
      } else if (check_tile(a, 0, b->t, b->w, LVL(a, 0)) != 0) {
        return -1;
      }
      a->done += b->w;
      if (k + 1 == nb) run_jobs(a);
      if (a->o->progress != NULL) a->o->progress(a->o->arg, a->done, a->size, false);
    }
  }
  /* partial tiles above level 0 */
  for (int L = 1; L < REG_LEVELS; L++) {
    uint64_t nl = a->size >> (REG_TILE_HEIGHT * L);
    if (nl == 0) break;
    unsigned w = (unsigned)(nl % REG_TILE_WIDTH);
    if (w != a->nlvl[L]) {
      FAILED(a, "tiles", "level %d holds %u recomputed hashes, expected %u (internal error)", L, a->nlvl[L], w);
      return -1;
    }
    if (w > 0 && check_tile(a, L, nl / REG_TILE_WIDTH, w, LVL(a, L)) != 0) return -1;
  }
  if (a->o->progress != NULL) a->o->progress(a->o->arg, a->done, a->size, true);
  return 0;
}

/* Hash source reading (already audited) tiles from the source, for consistency proofs. */
typedef struct {
  audit_t *a;         // the audit (source and size)
  int level;          // cached tile's level (-1 = none)
  uint64_t t;         // cached tile index
  uint8_t *buf;       // cached tile bytes
  size_t cap;         // allocated for buf
  size_t len;         // bytes in buf
} tsrc_t;

static int tile_get(void *arg, unsigned height, uint64_t index, uint8_t out[REG_HASH_BYTES], char *err,
                    size_t errlen) {
  tsrc_t *ts = arg;
  unsigned level = height / REG_TILE_HEIGHT, sub = height % REG_TILE_HEIGHT;
  if (level >= REG_LEVELS) return cp_err(err, errlen, "subtree height %u out of range", height);
  uint64_t first = index << sub, count = 1ull << sub, t = first / REG_TILE_WIDTH;
  unsigned w = reg_tile_width(ts->a->size, (int)level, t);
  unsigned off = (unsigned)(first % REG_TILE_WIDTH);
  if (w == 0 || off + count > w) return cp_err(err, errlen, "subtree (%u, %" PRIu64 ") is not complete", height, index);
  if (ts->level != (int)level || ts->t != t) {
    char rel[REG_PATH_MAX];
    bool missing;
    ts->level = -1;
    if (reg_tile_path(rel, sizeof rel, (int)level, t, w) != 0) return cp_err(err, errlen, "tile path too long");
    if (ts->a->fetch(ts->a->fetch_arg, rel, (size_t)w * REG_HASH_BYTES, &ts->buf, &ts->cap, &ts->len, &missing, err,
                     errlen) != 0)
      return -1;
    if (ts->len != (size_t)w * REG_HASH_BYTES) return cp_err(err, errlen, "%s is truncated", rel);
    ts->level = (int)level;
    ts->t = t;
  }
  reg_hashes_root((const reg_hash_t *)(ts->buf + (size_t)off * REG_HASH_BYTES), (size_t)count, out);
  return 0;
}

/* The key history against the verifier key; *first_trusted is the span of the verifier key. */
static void check_key_history(audit_t *a, size_t *first_trusted) {
  char err[CP_ERRLEN], vname[128];
  uint8_t vpk[32], vid[CP_KEYID_BYTES];
  *first_trusted = 0;
  if (cp_vkey_parse(a->o->vkey, vname, sizeof vname, vpk, vid, err, sizeof err) != 0) {
    FAILED(a, "key history", "the verifier key: %s", err);
    return;
  }
  if (a->legacy || a->nspans == 0) {
    free(a->spans);
    a->spans = NULL;
    a->nspans = 0;
    if (reg_keys_from_vkey(a->o->vkey, &a->spans, &a->nspans, err, sizeof err) != 0) abort(); /* parsed above */
    verdict(a, REG_CHECK_NOT_ESTABLISHED, "key history",
            "no genesis key entry: a register from before key history; %s+%02x%02x%02x%02x must sign everything",
            vname, vid[0], vid[1], vid[2], vid[3]);
    return;
  }
  size_t i;
  for (i = 0; i < a->nspans; i++)
    if (memcmp(a->spans[i].key_id, vid, CP_KEYID_BYTES) == 0 && memcmp(a->spans[i].pk, vpk, 32) == 0) break;
  if (i == a->nspans) {
    FAILED(a, "key history", "%s+%02x%02x%02x%02x is not one of the register's %zu key(s)", vname, vid[0], vid[1],
           vid[2], vid[3], a->nspans);
    return;
  }
  *first_trusted = i;
  PASSED(a, "key history", "%zu key(s), each announced by an entry signed by the key before it; the verifier key is key %zu",
         a->nspans, i + 1);
}

/* Consistency of the audited checkpoint with the earlier one in the file o->since. */
static void check_since(audit_t *a, const char *const *vks, size_t nvks) {
  char err[CP_ERRLEN], o[256];
  uint8_t *old = NULL;
  size_t oldlen = 0, which;
  uint64_t osz;
  uint8_t ort[REG_HASH_BYTES];
  tsrc_t ts = {a, -1, 0, NULL, 0, 0};
  if (cp_read_file(a->o->since, REG_CHECKPOINT_MAX, &old, &oldlen, err, sizeof err) != 0 ||
      reg_checkpoint_open_any((char *)old, oldlen, vks, nvks, o, sizeof o, &osz, ort, &which, err, sizeof err) != 0) {
    FAILED(a, "consistency", "--since %s: %s", a->o->since, err);
  } else if (strcmp(o, a->origin) != 0) {
    FAILED(a, "consistency", "--since checkpoint is of another log (%s)", o);
  } else if (osz > a->size) {
    FAILED(a, "consistency", "--since checkpoint has size %" PRIu64 ", larger than the current %" PRIu64
           ": the log was truncated or forked", osz, a->size);
  } else {
    reg_hash_t proof[REG_PROOF_MAX];
    size_t n = 0;
    if (osz > 0 && reg_proof_consistency(tile_get, &ts, osz, a->size, proof, &n, err, sizeof err) != 0)
      FAILED(a, "consistency", "%s", err);
    else if (reg_verify_consistency(osz, a->size, proof, n, ort, a->root) != 0)
      FAILED(a, "consistency", "the log of size %" PRIu64 " is NOT an extension of the --since checkpoint (size %" PRIu64
             "): history was rewritten", a->size, osz);
    else
      PASSED(a, "consistency", "the checkpoint of size %" PRIu64 " extends the --since checkpoint of size %" PRIu64
             " (%zu-hash proof)", a->size, osz, n);
  }
  free(ts.buf);
  free(old);
}

/* The checks after the walk that need keys: key history, the checkpoint signature,
 * the entry signatures, consistency. */
static void check_keys(audit_t *a, const char *note, size_t notelen) {
  char err[CP_ERRLEN];
  size_t first_trusted;
  check_key_history(a, &first_trusted);
  size_t nvks = a->nspans;
  char **vks = cp_xcalloc(nvks ? nvks : 1, sizeof *vks);
  for (size_t i = 0; i < nvks; i++) {
    vks[i] = cp_xcalloc(1, REG_VKEY_MAX);
    if (reg_keys_vkey(&a->spans[i], vks[i], REG_VKEY_MAX) != 0) vks[i][0] = '\0';
  }
  char o[256];
  uint64_t sz;
  uint8_t rt[REG_HASH_BYTES];
  size_t which;
  if (nvks > first_trusted &&
      reg_checkpoint_open_any(note, notelen, (const char *const *)vks + first_trusted, nvks - first_trusted, o, sizeof o,
                              &sz, rt, &which, err, sizeof err) == 0) {
    const char *v = vks[first_trusted + which], *plus = strchr(v, '+');
    PASSED(a, "checkpoint signature", "signed by key %zu of the history (%.*s)", first_trusted + which + 1,
           (int)(plus != NULL ? plus - v : 0), v);
  } else {
    FAILED(a, "checkpoint signature", "%s", err);
  }
  if (!a->o->signatures)
    verdict(a, REG_CHECK_NOT_ESTABLISHED, "signatures", "--no-signatures");
  else if (a->sig_bad == 0)
    PASSED(a, "signatures", "%" PRIu64 " entry signatures verified, each with the key valid at its index", a->sig_ok);
  else
    FAILED(a, "signatures", "%" PRIu64 " of %" PRIu64 " entries have no valid signature by the key valid at their index",
           a->sig_bad, a->size);
  if (a->o->since != NULL) check_since(a, (const char *const *)vks, nvks);
  for (size_t i = 0; i < nvks; i++) free(vks[i]);
  free(vks);
}

int reg_audit_run(const reg_audit_opts_t *o, reg_audit_result_t *res) {
  audit_t a;
  memset(&a, 0, sizeof a);
  a.o = o;
  a.fetch = o->fetch != NULL ? o->fetch : dir_fetch;
  a.fetch_arg = o->fetch != NULL ? o->fetch_arg : (void *)o->dir;
  a.threads = o->threads < 1 ? 1 : o->threads > REG_AUDIT_THREADS_MAX ? REG_AUDIT_THREADS_MAX : o->threads;
  for (int i = 0; i < REG_AUDIT_THREADS_MAX; i++) {
    a.workers[i].a = &a;
    arena_init(&a.workers[i].keep, ARENA_KEEP_BYTES);
    arena_init(&a.workers[i].scratch, ARENA_SCRATCH_BYTES);
    a.workers[i].scratch_hashes = cp_xcalloc(REG_TILE_WIDTH, sizeof(reg_hash_t));
  }
  a.ents = cp_xcalloc(AUDIT_CHUNK_ENTRIES, sizeof *a.ents);
  a.lvl = cp_xcalloc((size_t)REG_LEVELS * REG_TILE_WIDTH, sizeof(reg_hash_t));
  a.jobs = cp_xcalloc((size_t)AUDIT_CHUNK_TILES * REG_TILE_WIDTH, sizeof *a.jobs);
  memset(res, 0, sizeof *res);
  char err[CP_ERRLEN];
  uint8_t *nbuf = NULL;
  size_t ncap = 0, notelen = 0;
  const char *note = o->note;
  int rc = -1;
  bool missing;
  if (note != NULL) {
    notelen = strlen(note);
  } else if (a.fetch(a.fetch_arg, "checkpoint", REG_CHECKPOINT_MAX, &nbuf, &ncap, &notelen, &missing, err,
                     sizeof err) != 0) {
    FAILED(&a, "checkpoint", "%s", err);
    goto out;
  } else {
    note = (const char *)nbuf;
  }
  if (reg_checkpoint_parse(note, notelen, a.origin, sizeof a.origin, &a.size, a.root, err, sizeof err) != 0) {
    FAILED(&a, "checkpoint", "%s", err);
    goto out;
  }
  if (a.size > AUDIT_SIZE_MAX) {   /* the walk's tile counts would wrap around */
    FAILED(&a, "checkpoint", "checkpoint tree size too large: %" PRIu64 ", a tree holds at most %" PRIu64
           " entries (the checkpoint is corrupt or forged)", a.size, AUDIT_SIZE_MAX);
    goto out;
  }
  rc = 0;
  res->size = a.size;
  if (o->begin != NULL) o->begin(o->arg, a.origin, a.size);
  double t0 = now_s();
  if (walk(&a) != 0) goto out;
  res->seconds = now_s() - t0;
  PASSED(&a, "tiles", "%" PRIu64 " entries re-hashed; %" PRIu64 " hash tiles at every level match the recomputation",
         a.size, a.tiles_checked);
  uint8_t root[REG_HASH_BYTES];
  if (a.size == 0) {
    reg_empty_root(root);
  } else {
    /* the recomputed right edge; a full last tile at a level was carried up but its hashes are still there */
    reg_edgesrc_t edge = {a.lvl, a.size, true};
    if (reg_proof_root(reg_edgesrc_get, &edge, a.size, root, err, sizeof err) != 0) {
      FAILED(&a, "root", "%s", err);
      goto out;
    }
  }
  if (memcmp(root, a.root, REG_HASH_BYTES) != 0)
    FAILED(&a, "root", "the recomputed root differs from the checkpoint's");
  else
    PASSED(&a, "root", "the recomputed root of %" PRIu64 " entries equals the checkpoint's", a.size);
  if (o->vkey != NULL) check_keys(&a, note, notelen);
  res->complete = true;
out:
  res->failed = a.failed;
  a.njobs = 0;   /* a walk that failed leaves unverified jobs: the verdict is in */
  for (int i = 0; i < REG_AUDIT_THREADS_MAX; i++) {
    arena_destroy(&a.workers[i].keep);
    arena_destroy(&a.workers[i].scratch);
    free(a.workers[i].scratch_hashes);
  }
  for (size_t i = 0; i < AUDIT_CHUNK_TILES; i++) free(a.bundles[i].buf);
  free(a.ents);
  free(a.spans);
  free(a.lvl);
  free(a.jobs);
  free(a.tbuf);
  free(nbuf);
  return rc;
}

/* ---- reg_audit: the same audit over an open log ------------------------------- */

/* Fetch through the log's own reader (refuses symbolic links and non-regular files on the way). */
static int log_fetch(void *arg, const char *rel, size_t max, uint8_t **buf, size_t *cap, size_t *len,
                     bool *missing, char *err, size_t errlen) {
  reg_log_t *log = arg;
  uint8_t *b = NULL;
  *missing = false;
  if (reg_file_read(log->dir, rel, max, &b, len, err, errlen) != 0) {
    *missing = errno == ENOENT;
    return -1;
  }
  free(*buf);
  *buf = b;
  *cap = *len + 1;
  return 0;
}

/* The first failed check (for reg_audit's err). */
typedef struct {
  char check[32];        // which check
  char why[CP_ERRLEN];   // its sentence
  bool failed;           // one has failed
} first_failure_t;

static void keep_first_failure(void *arg, reg_verdict_t v, const char *check, const char *why) {
  first_failure_t *f = arg;
  if (v != REG_CHECK_FAILED || f->failed) return;
  f->failed = true;
  snprintf(f->check, sizeof f->check, "%s", check);
  snprintf(f->why, sizeof f->why, "%s", why);
}

int reg_audit(reg_log_t *log, char *err, size_t errlen) {
  first_failure_t f = {"", "", false};
  reg_audit_opts_t o = {.fetch = log_fetch, .fetch_arg = log, .note = log->note, .threads = 1,
                        .check = keep_first_failure, .arg = &f};
  reg_audit_result_t res;
  if (reg_audit_run(&o, &res) == 0 && res.failed == 0) return 0;
  return cp_err(err, errlen, "register %s does not match its checkpoint (%s): %s", log->dir, f.check, f.why);
}
