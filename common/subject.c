/* subject.c -- unlinkable entry subjects: commitments, sealed openings and the subject key store
 * (see cp_subject.h for the format and the files). */
#include "cp_subject.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define COMMIT_DOMAIN "carepass/subject/v1\n"
#define OPENING_DOMAIN "carepass/opening/v1\n"
#define PAYLOAD_DOMAIN "carepass/payload/v1\n"
#define WKID_DOMAIN "carepass/worker-key-id/v1\n"
#define WORKERS_MAGIC "carepass-subject-workers/v1\n"
#define SLOTS_MAGIC "carepass-subject-slots/v1\n"
#define WORKER_REC (CP_SUBJECT_WKID_BYTES + CP_SUBJECT_KEY_BYTES)
#define SLOT_REC (CP_SUBJECT_SLOT_BYTES + CP_SUBJECT_WKID_BYTES)

const char *cp_subject_status_text(cp_subject_status_t st) {
  switch (st) {
    case CP_SUBJECT_OK: return "the subject opens";
    case CP_SUBJECT_UNKNOWN_SLOT: return "the subject key store knows no such slot (the worker left the register, or the entry is not of this store)";
    case CP_SUBJECT_NO_KEY: return "the worker's key is no longer in the subject key store (the worker left the register)";
    case CP_SUBJECT_BAD_SEAL: return "the sealed opening does not open under the worker's key";
    case CP_SUBJECT_MISMATCH: return "the opening does not open to the entry's subject";
    case CP_SUBJECT_MALFORMED: return "the entry's subject fields have the wrong lengths";
  }
  return "unknown subject status";
}

void cp_subject_commit(const uint8_t pseudonym[CP_PSEUDONYM_BYTES], const uint8_t r[CP_SUBJECT_R_BYTES],
                       uint8_t out[CP_SUBJECT_BYTES]) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, CP_SUBJECT_BYTES);
  crypto_generichash_update(&st, (const unsigned char *)COMMIT_DOMAIN, strlen(COMMIT_DOMAIN));
  crypto_generichash_update(&st, pseudonym, CP_PSEUDONYM_BYTES);
  crypto_generichash_update(&st, r, CP_SUBJECT_R_BYTES);
  crypto_generichash_final(&st, out, CP_SUBJECT_BYTES);
}

bool cp_subject_opens(const uint8_t subject[CP_SUBJECT_BYTES], const cp_opening_t *op) {
  uint8_t c[CP_SUBJECT_BYTES];
  cp_subject_commit(op->pseudonym, op->r, c);
  return sodium_memcmp(c, subject, CP_SUBJECT_BYTES) == 0;
}

/* associated data: domain || subject || slot */
static size_t opening_ad(const uint8_t *subject, const uint8_t *slot, uint8_t *ad) {
  size_t n = strlen(OPENING_DOMAIN);
  memcpy(ad, OPENING_DOMAIN, n);
  memcpy(ad + n, subject, CP_SUBJECT_BYTES);
  memcpy(ad + n + CP_SUBJECT_BYTES, slot, CP_SUBJECT_SLOT_BYTES);
  return n + CP_SUBJECT_BYTES + CP_SUBJECT_SLOT_BYTES;
}

void cp_subject_seal(const uint8_t key[CP_SUBJECT_KEY_BYTES], const cp_opening_t *op,
                     const uint8_t slot[CP_SUBJECT_SLOT_BYTES], cp_subject_t *out) {
  cp_subject_commit(op->pseudonym, op->r, out->subject);
  memcpy(out->slot, slot, CP_SUBJECT_SLOT_BYTES);
  uint8_t plain[CP_PSEUDONYM_BYTES + CP_SUBJECT_R_BYTES];
  memcpy(plain, op->pseudonym, CP_PSEUDONYM_BYTES);
  memcpy(plain + CP_PSEUDONYM_BYTES, op->r, CP_SUBJECT_R_BYTES);
  uint8_t ad[64 + CP_SUBJECT_BYTES + CP_SUBJECT_SLOT_BYTES];
  size_t adlen = opening_ad(out->subject, slot, ad);
  randombytes_buf(out->sealed, CP_SUBJECT_NONCE_BYTES);
  unsigned long long clen = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(out->sealed + CP_SUBJECT_NONCE_BYTES, &clen, plain, sizeof plain,
                                             ad, adlen, NULL, out->sealed, key);
  sodium_memzero(plain, sizeof plain);
}

cp_subject_status_t cp_subject_unseal(const uint8_t key[CP_SUBJECT_KEY_BYTES], const uint8_t *subject,
                                      size_t subject_len, const uint8_t *slot, size_t slot_len,
                                      const uint8_t *sealed, size_t sealed_len, cp_opening_t *out) {
  if (subject_len != CP_SUBJECT_BYTES || slot_len != CP_SUBJECT_SLOT_BYTES || sealed_len != CP_SUBJECT_SEALED_BYTES)
    return CP_SUBJECT_MALFORMED;
  uint8_t ad[64 + CP_SUBJECT_BYTES + CP_SUBJECT_SLOT_BYTES];
  size_t adlen = opening_ad(subject, slot, ad);
  uint8_t plain[CP_PSEUDONYM_BYTES + CP_SUBJECT_R_BYTES];
  unsigned long long plen = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &plen, NULL, sealed + CP_SUBJECT_NONCE_BYTES,
                                                 sealed_len - CP_SUBJECT_NONCE_BYTES, ad, adlen, sealed, key) != 0 ||
      plen != sizeof plain)
    return CP_SUBJECT_BAD_SEAL;
  memcpy(out->pseudonym, plain, CP_PSEUDONYM_BYTES);
  memcpy(out->r, plain + CP_PSEUDONYM_BYTES, CP_SUBJECT_R_BYTES);
  sodium_memzero(plain, sizeof plain);
  return cp_subject_opens(subject, out) ? CP_SUBJECT_OK : CP_SUBJECT_MISMATCH;
}

/* associated data of a sealed payload: its own domain || subject || slot */
static size_t payload_ad(const uint8_t *subject, const uint8_t *slot, uint8_t *ad) {
  size_t n = strlen(PAYLOAD_DOMAIN);
  memcpy(ad, PAYLOAD_DOMAIN, n);
  memcpy(ad + n, subject, CP_SUBJECT_BYTES);
  memcpy(ad + n + CP_SUBJECT_BYTES, slot, CP_SUBJECT_SLOT_BYTES);
  return n + CP_SUBJECT_BYTES + CP_SUBJECT_SLOT_BYTES;
}

int cp_subject_payload_seal(const uint8_t key[CP_SUBJECT_KEY_BYTES], const uint8_t subject[CP_SUBJECT_BYTES],
                            const uint8_t slot[CP_SUBJECT_SLOT_BYTES], const uint8_t *payload, size_t len,
                            uint8_t *out, size_t *outlen) {
  if (len == 0 || len > CP_SUBJECT_PAYLOAD_MAX) return -1;
  uint8_t ad[64 + CP_SUBJECT_BYTES + CP_SUBJECT_SLOT_BYTES];
  size_t adlen = payload_ad(subject, slot, ad);
  randombytes_buf(out, CP_SUBJECT_NONCE_BYTES);
  unsigned long long clen = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(out + CP_SUBJECT_NONCE_BYTES, &clen, payload, len, ad, adlen, NULL, out,
                                             key);
  *outlen = CP_SUBJECT_NONCE_BYTES + (size_t)clen;
  return 0;
}

cp_subject_status_t cp_subject_payload_open(const uint8_t key[CP_SUBJECT_KEY_BYTES], const uint8_t *subject,
                                            size_t subject_len, const uint8_t *slot, size_t slot_len,
                                            const uint8_t *sealed, size_t sealed_len, uint8_t *out,
                                            size_t *outlen) {
  if (subject_len != CP_SUBJECT_BYTES || slot_len != CP_SUBJECT_SLOT_BYTES ||
      sealed_len <= CP_SUBJECT_NONCE_BYTES + CP_SUBJECT_MAC_BYTES || sealed_len > CP_SUBJECT_SEALED_PAYLOAD_MAX)
    return CP_SUBJECT_MALFORMED;
  uint8_t ad[64 + CP_SUBJECT_BYTES + CP_SUBJECT_SLOT_BYTES];
  size_t adlen = payload_ad(subject, slot, ad);
  unsigned long long plen = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, &plen, NULL, sealed + CP_SUBJECT_NONCE_BYTES,
                                                 sealed_len - CP_SUBJECT_NONCE_BYTES, ad, adlen, sealed, key) != 0)
    return CP_SUBJECT_BAD_SEAL;
  out[plen] = '\0';
  *outlen = (size_t)plen;
  return CP_SUBJECT_OK;
}

/* ---- the store -------------------------------------------------------------------------- */

/* An open-addressing table from a 16-byte random (or keyed-hash) id to an array position. */
typedef struct {
  uint8_t id[16];
  uint32_t pos;    // position + 1; 0 = empty
} cell_t;

typedef struct {
  cell_t *cells;
  size_t cap;      // a power of two
  size_t n;
} table_t;

static size_t cell_of(const table_t *t, const uint8_t id[16]) {
  uint64_t h;
  memcpy(&h, id, sizeof h);   /* ids are uniform: their first bytes are a hash */
  return (size_t)h & (t->cap - 1);
}

static void table_put(table_t *t, const uint8_t id[16], uint32_t pos);

static void table_grow(table_t *t) {
  table_t old = *t;
  t->cap = old.cap ? old.cap * 2 : 1024;
  t->cells = cp_xcalloc(t->cap, sizeof *t->cells);
  t->n = 0;
  for (size_t i = 0; i < old.cap; i++)
    if (old.cells[i].pos != 0) table_put(t, old.cells[i].id, old.cells[i].pos - 1);
  free(old.cells);
}

static void table_put(table_t *t, const uint8_t id[16], uint32_t pos) {
  if ((t->n + 1) * 4 > t->cap * 3) table_grow(t);
  size_t i = cell_of(t, id);
  while (t->cells[i].pos != 0 && memcmp(t->cells[i].id, id, 16) != 0) i = (i + 1) & (t->cap - 1);
  if (t->cells[i].pos == 0) t->n++;
  memcpy(t->cells[i].id, id, 16);
  t->cells[i].pos = pos + 1;
}

static bool table_get(const table_t *t, const uint8_t id[16], uint32_t *pos) {
  if (t->cap == 0) return false;
  size_t i = cell_of(t, id);
  while (t->cells[i].pos != 0) {
    if (memcmp(t->cells[i].id, id, 16) == 0) {
      *pos = t->cells[i].pos - 1;
      return true;
    }
    i = (i + 1) & (t->cap - 1);
  }
  return false;
}

static void table_free(table_t *t) {
  free(t->cells);
  memset(t, 0, sizeof *t);
}

typedef struct {
  uint8_t wkid[CP_SUBJECT_WKID_BYTES];
  uint8_t key[CP_SUBJECT_KEY_BYTES];
} worker_t;

typedef struct {
  uint8_t slot[CP_SUBJECT_SLOT_BYTES];
  uint32_t worker;   // position in workers
} slotrec_t;

struct cp_subject_store {
  char dir[512];
  uint8_t secret[CP_SECRET_BYTES];
  worker_t *workers;
  size_t nworkers, capworkers, flushed_workers;
  slotrec_t *slots;
  size_t nslots, capslots, flushed_slots;
  table_t by_wkid, by_slot;
  int fd_workers, fd_slots;
  bool writer;             // may flush and shred (a reader never changes the files)
};

static int fail(char *err, size_t errlen, const char *fmt, ...) CP_PRINTF(3, 4);
static int fail(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return -1;
}

static void wkid_of(const cp_subject_store_t *s, const uint8_t pseudonym[CP_PSEUDONYM_BYTES],
                    uint8_t out[CP_SUBJECT_WKID_BYTES]) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, s->secret, sizeof s->secret, CP_SUBJECT_WKID_BYTES);
  crypto_generichash_update(&st, (const unsigned char *)WKID_DOMAIN, strlen(WKID_DOMAIN));
  crypto_generichash_update(&st, pseudonym, CP_PSEUDONYM_BYTES);
  crypto_generichash_final(&st, out, CP_SUBJECT_WKID_BYTES);
}

static uint32_t add_worker(cp_subject_store_t *s, const uint8_t wkid[16], const uint8_t key[32]) {
  if (s->nworkers == s->capworkers) {
    s->capworkers = s->capworkers ? s->capworkers * 2 : 256;
    s->workers = cp_xrealloc(s->workers, s->capworkers * sizeof *s->workers);
  }
  worker_t *w = &s->workers[s->nworkers];
  memcpy(w->wkid, wkid, sizeof w->wkid);
  memcpy(w->key, key, sizeof w->key);
  table_put(&s->by_wkid, wkid, (uint32_t)s->nworkers);
  return (uint32_t)s->nworkers++;
}

static void add_slot(cp_subject_store_t *s, const uint8_t slot[16], uint32_t worker) {
  if (s->nslots == s->capslots) {
    s->capslots = s->capslots ? s->capslots * 2 : 1024;
    s->slots = cp_xrealloc(s->slots, s->capslots * sizeof *s->slots);
  }
  memcpy(s->slots[s->nslots].slot, slot, CP_SUBJECT_SLOT_BYTES);
  s->slots[s->nslots].worker = worker;
  table_put(&s->by_slot, slot, (uint32_t)s->nslots);
  s->nslots++;
}

static void path_of(const cp_subject_store_t *s, const char *name, char *out, size_t len) {
  snprintf(out, len, "%s/%s", s->dir, name);
}

/* Open (creating with its magic when allowed) one record file; read its records; cut a torn tail.
 * Returns the fd (O_APPEND) and sets data and n to the records (malloc'd). */
static int open_records(const cp_subject_store_t *s, const char *name, const char *magic, size_t rec,
                        bool create, uint8_t **data, size_t *n, char *err, size_t errlen) {
  char path[600];
  path_of(s, name, path, sizeof path);
  int fd = open(path, (s->writer ? O_RDWR | O_APPEND : O_RDONLY) | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
  if (fd < 0) return fail(err, errlen, "subject key store: cannot open %s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || (st.st_mode & 077) != 0) {
    close(fd);
    return fail(err, errlen, "subject key store: %s must be mode 0600 (it holds worker keys)", path);
  }
  size_t mlen = strlen(magic);
  if (st.st_size == 0) {
    if (s->writer && (write(fd, magic, mlen) != (ssize_t)mlen || fsync(fd) != 0)) {
      close(fd);
      return fail(err, errlen, "subject key store: cannot write %s: %s", path, strerror(errno));
    }
    *data = NULL;
    *n = 0;
    return fd;
  }
  size_t size = (size_t)st.st_size;
  uint8_t *buf = cp_xmalloc(size);
  if (pread(fd, buf, size, 0) != (ssize_t)size || size < mlen || memcmp(buf, magic, mlen) != 0) {
    free(buf);
    close(fd);
    return fail(err, errlen, "subject key store: %s is not a %s file", path, magic);
  }
  size_t body = size - mlen;
  if (body % rec != 0 && s->writer) {   /* a record torn by a crash: never flushed, so never used */
    if (ftruncate(fd, (off_t)(mlen + body / rec * rec)) != 0 || fsync(fd) != 0) {
      free(buf);
      close(fd);
      return fail(err, errlen, "subject key store: cannot cut the torn tail of %s: %s", path, strerror(errno));
    }
  }
  *n = body / rec;
  *data = cp_xmalloc(*n * rec + 1);
  memcpy(*data, buf + mlen, *n * rec);
  sodium_memzero(buf, size);
  free(buf);
  return fd;
}

int cp_subject_store_open(const char *dir, unsigned flags, cp_subject_store_t **out, char *err, size_t errlen) {
  bool create = (flags & CP_SUBJECT_CREATE) != 0, writer = create || (flags & CP_SUBJECT_WRITER) != 0;
  *out = NULL;
  if (strlen(dir) >= sizeof ((cp_subject_store_t *)0)->dir)
    return fail(err, errlen, "subject key store: directory name too long: %.64s", dir);
  if (create && mkdir(dir, 0700) == 0) {   /* made now: its entry in the parent must be durable too */
    char parent[600];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash == parent) slash[1] = '\0';
    else if (slash != NULL) *slash = '\0';
    else snprintf(parent, sizeof parent, ".");
    int d = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    bool ok = d >= 0 && fsync(d) == 0;
    if (d >= 0) close(d);
    if (!ok) return fail(err, errlen, "subject key store: cannot sync the directory holding %s", dir);
  } else if (create && errno != EEXIST) {
    return fail(err, errlen, "subject key store: cannot create %s: %s", dir, strerror(errno));
  }
  cp_subject_store_t *s = cp_xcalloc(1, sizeof *s);
  snprintf(s->dir, sizeof s->dir, "%s", dir);
  s->fd_workers = s->fd_slots = -1;
  s->writer = writer;
  char path[600];
  path_of(s, "store.secret", path, sizeof path);
  if (cp_secret_load(path, create, s->secret, err, errlen) != 0) {
    cp_subject_store_close(&s);
    return -1;
  }
  uint8_t *w = NULL, *sl = NULL;
  size_t nw = 0, ns = 0;
  s->fd_workers = open_records(s, "workers", WORKERS_MAGIC, WORKER_REC, create, &w, &nw, err, errlen);
  if (s->fd_workers < 0) {
    cp_subject_store_close(&s);
    return -1;
  }
  s->fd_slots = open_records(s, "slots", SLOTS_MAGIC, SLOT_REC, create, &sl, &ns, err, errlen);
  if (s->fd_slots < 0) {
    if (w) sodium_memzero(w, nw * WORKER_REC);
    free(w);
    cp_subject_store_close(&s);
    return -1;
  }
  if (create) {   /* new files: their directory entries must be durable before any entry needs them */
    int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d < 0 || fsync(d) != 0) {
      if (d >= 0) close(d);
      if (w) sodium_memzero(w, nw * WORKER_REC);
      free(w);
      free(sl);
      cp_subject_store_close(&s);
      return fail(err, errlen, "subject key store: cannot sync %s: %s", dir, strerror(errno));
    }
    close(d);
  }
  for (size_t i = 0; i < nw; i++) {
    uint32_t dup;
    const uint8_t *rec = w + i * WORKER_REC;
    if (table_get(&s->by_wkid, rec, &dup)) continue;   /* the first key of a worker holds */
    (void)add_worker(s, rec, rec + CP_SUBJECT_WKID_BYTES);
  }
  for (size_t i = 0; i < ns; i++) {
    const uint8_t *rec = sl + i * SLOT_REC;
    uint32_t worker;
    /* a slot naming a worker whose key is not in the file links nothing: dropped */
    if (table_get(&s->by_wkid, rec + CP_SUBJECT_SLOT_BYTES, &worker)) add_slot(s, rec, worker);
  }
  if (w) sodium_memzero(w, nw * WORKER_REC);
  free(w);
  free(sl);
  s->flushed_workers = s->nworkers;
  s->flushed_slots = s->nslots;
  *out = s;
  return 0;
}

void cp_subject_store_close(cp_subject_store_t **sp) {
  cp_subject_store_t *s = *sp;
  if (s == NULL) return;
  if (s->fd_workers >= 0) close(s->fd_workers);
  if (s->fd_slots >= 0) close(s->fd_slots);
  if (s->workers) sodium_memzero(s->workers, s->capworkers * sizeof *s->workers);
  free(s->workers);
  free(s->slots);
  table_free(&s->by_wkid);
  table_free(&s->by_slot);
  sodium_memzero(s->secret, sizeof s->secret);
  free(s);
  *sp = NULL;
}

/* An entry that names no worker (the zero pseudonym: a revocation of a worker who left): a subject
 * nobody can open -- a random pseudonym and r, sealed under a key that is wiped at once, with a
 * slot the store never holds -- so such entries neither share a worker key in the store nor
 * gather under one "worker" in a reindex. */
static void anonymous_subject(cp_subject_t *out) {
  uint8_t key[CP_SUBJECT_KEY_BYTES], slot[CP_SUBJECT_SLOT_BYTES];
  cp_opening_t op;
  crypto_aead_xchacha20poly1305_ietf_keygen(key);
  randombytes_buf(slot, sizeof slot);
  randombytes_buf(op.pseudonym, sizeof op.pseudonym);
  randombytes_buf(op.r, sizeof op.r);
  cp_subject_seal(key, &op, slot, out);
  sodium_memzero(key, sizeof key);
  sodium_memzero(&op, sizeof op);
}

void cp_subject_store_new(cp_subject_store_t *s, const uint8_t pseudonym[CP_PSEUDONYM_BYTES], cp_subject_t *out) {
  if (sodium_is_zero(pseudonym, CP_PSEUDONYM_BYTES)) {
    anonymous_subject(out);
    return;
  }
  uint8_t wkid[CP_SUBJECT_WKID_BYTES];
  wkid_of(s, pseudonym, wkid);
  uint32_t worker;
  if (!table_get(&s->by_wkid, wkid, &worker)) {
    uint8_t key[CP_SUBJECT_KEY_BYTES];
    crypto_aead_xchacha20poly1305_ietf_keygen(key);
    worker = add_worker(s, wkid, key);
    sodium_memzero(key, sizeof key);
  }
  uint8_t slot[CP_SUBJECT_SLOT_BYTES];
  uint32_t taken;
  do randombytes_buf(slot, sizeof slot);
  while (table_get(&s->by_slot, slot, &taken));
  add_slot(s, slot, worker);
  cp_opening_t op;
  memcpy(op.pseudonym, pseudonym, CP_PSEUDONYM_BYTES);
  randombytes_buf(op.r, sizeof op.r);
  cp_subject_seal(s->workers[worker].key, &op, slot, out);
  sodium_memzero(&op, sizeof op);
}

static int write_all(int fd, const uint8_t *buf, size_t len) {
  while (len > 0) {
    ssize_t w = write(fd, buf, len);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    buf += w;
    len -= (size_t)w;
  }
  return 0;
}

int cp_subject_store_flush(cp_subject_store_t *s, char *err, size_t errlen) {
  if (!s->writer && (s->nworkers > s->flushed_workers || s->nslots > s->flushed_slots))
    return fail(err, errlen, "subject key store %s is open for reading only", s->dir);
  /* workers first: a durable slot never names a worker whose key is not durable */
  if (s->nworkers > s->flushed_workers) {
    size_t n = s->nworkers - s->flushed_workers;
    uint8_t *buf = cp_xmalloc(n * WORKER_REC);
    for (size_t i = 0; i < n; i++) {
      const worker_t *w = &s->workers[s->flushed_workers + i];
      memcpy(buf + i * WORKER_REC, w->wkid, CP_SUBJECT_WKID_BYTES);
      memcpy(buf + i * WORKER_REC + CP_SUBJECT_WKID_BYTES, w->key, CP_SUBJECT_KEY_BYTES);
    }
    int rc = write_all(s->fd_workers, buf, n * WORKER_REC);
    sodium_memzero(buf, n * WORKER_REC);
    free(buf);
    if (rc != 0 || fsync(s->fd_workers) != 0)
      return fail(err, errlen, "subject key store: cannot write %s/workers: %s", s->dir, strerror(errno));
    s->flushed_workers = s->nworkers;
  }
  if (s->nslots > s->flushed_slots) {
    size_t n = s->nslots - s->flushed_slots;
    uint8_t *buf = cp_xmalloc(n * SLOT_REC);
    for (size_t i = 0; i < n; i++) {
      const slotrec_t *r = &s->slots[s->flushed_slots + i];
      memcpy(buf + i * SLOT_REC, r->slot, CP_SUBJECT_SLOT_BYTES);
      memcpy(buf + i * SLOT_REC + CP_SUBJECT_SLOT_BYTES, s->workers[r->worker].wkid, CP_SUBJECT_WKID_BYTES);
    }
    int rc = write_all(s->fd_slots, buf, n * SLOT_REC);
    free(buf);
    if (rc != 0 || fsync(s->fd_slots) != 0)
      return fail(err, errlen, "subject key store: cannot write %s/slots: %s", s->dir, strerror(errno));
    s->flushed_slots = s->nslots;
  }
  return 0;
}

cp_subject_status_t cp_subject_store_open_entry(const cp_subject_store_t *s, const uint8_t *subject,
                                                size_t subject_len, const uint8_t *slot, size_t slot_len,
                                                const uint8_t *sealed, size_t sealed_len, cp_opening_t *out) {
  if (subject_len != CP_SUBJECT_BYTES || slot_len != CP_SUBJECT_SLOT_BYTES || sealed_len != CP_SUBJECT_SEALED_BYTES)
    return CP_SUBJECT_MALFORMED;
  uint32_t pos;
  if (!table_get(&s->by_slot, slot, &pos)) return CP_SUBJECT_UNKNOWN_SLOT;
  return cp_subject_unseal(s->workers[s->slots[pos].worker].key, subject, subject_len, slot, slot_len, sealed,
                           sealed_len, out);
}

int cp_subject_store_seal_payload(const cp_subject_store_t *s, const cp_subject_t *subj, const uint8_t *payload,
                                  size_t len, uint8_t *out, size_t *outlen) {
  uint32_t pos;
  if (!table_get(&s->by_slot, subj->slot, &pos)) return -1;
  return cp_subject_payload_seal(s->workers[s->slots[pos].worker].key, subj->subject, subj->slot, payload, len, out,
                                 outlen);
}

cp_subject_status_t cp_subject_store_open_payload(const cp_subject_store_t *s, const uint8_t *subject,
                                                  size_t subject_len, const uint8_t *slot, size_t slot_len,
                                                  const uint8_t *sealed, size_t sealed_len, uint8_t *out,
                                                  size_t *outlen) {
  if (slot_len != CP_SUBJECT_SLOT_BYTES) return CP_SUBJECT_MALFORMED;
  uint32_t pos;
  if (!table_get(&s->by_slot, slot, &pos)) return CP_SUBJECT_UNKNOWN_SLOT;
  return cp_subject_payload_open(s->workers[s->slots[pos].worker].key, subject, subject_len, slot, slot_len, sealed,
                                 sealed_len, out, outlen);
}

/* Replace dir/name with magic || recs (n records of rec bytes), durably: a temporary file,
 * fsync, rename, directory fsync; the store's append fd is reopened on the new file. */
static int rewrite(cp_subject_store_t *s, const char *name, const char *magic, const uint8_t *recs, size_t n,
                   size_t rec, int *fd, char *err, size_t errlen) {
  char path[600], tmp[640];
  path_of(s, name, path, sizeof path);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int t = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (t < 0) return fail(err, errlen, "subject key store: cannot write %s: %s", tmp, strerror(errno));
  bool ok = write_all(t, (const uint8_t *)magic, strlen(magic)) == 0 && write_all(t, recs, n * rec) == 0 &&
            fsync(t) == 0;
  close(t);
  if (!ok || rename(tmp, path) != 0) {
    unlink(tmp);
    return fail(err, errlen, "subject key store: cannot replace %s: %s", path, strerror(errno));
  }
  int d = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d >= 0) {
    (void)fsync(d);
    close(d);
  }
  int nfd = open(path, O_RDWR | O_APPEND | O_CLOEXEC);
  if (nfd < 0) return fail(err, errlen, "subject key store: cannot reopen %s: %s", path, strerror(errno));
  close(*fd);
  *fd = nfd;
  return 0;
}

int cp_subject_store_shred(cp_subject_store_t *s, const uint8_t pseudonym[CP_PSEUDONYM_BYTES], size_t *slots_removed,
                           char *err, size_t errlen) {
  *slots_removed = 0;
  if (!s->writer) return fail(err, errlen, "subject key store %s is open for reading only", s->dir);
  if (cp_subject_store_flush(s, err, errlen) != 0) return -1;
  uint8_t wkid[CP_SUBJECT_WKID_BYTES];
  wkid_of(s, pseudonym, wkid);
  uint32_t gone;
  if (!table_get(&s->by_wkid, wkid, &gone)) return 0;
  /* the new contents, without the worker: slots first (so a crash between the two files leaves
   * a key without slots, which links nothing), then the workers */
  uint8_t *sl = cp_xmalloc(s->nslots * SLOT_REC + 1);
  size_t ns = 0;
  for (size_t i = 0; i < s->nslots; i++) {
    if (s->slots[i].worker == gone) {
      (*slots_removed)++;
      continue;
    }
    memcpy(sl + ns * SLOT_REC, s->slots[i].slot, CP_SUBJECT_SLOT_BYTES);
    memcpy(sl + ns * SLOT_REC + CP_SUBJECT_SLOT_BYTES, s->workers[s->slots[i].worker].wkid, CP_SUBJECT_WKID_BYTES);
    ns++;
  }
  int rc = rewrite(s, "slots", SLOTS_MAGIC, sl, ns, SLOT_REC, &s->fd_slots, err, errlen);
  free(sl);
  if (rc != 0) return -1;
  uint8_t *w = cp_xmalloc(s->nworkers * WORKER_REC + 1);
  size_t nw = 0;
  for (size_t i = 0; i < s->nworkers; i++) {
    if (i == gone) continue;
    memcpy(w + nw * WORKER_REC, s->workers[i].wkid, CP_SUBJECT_WKID_BYTES);
    memcpy(w + nw * WORKER_REC + CP_SUBJECT_WKID_BYTES, s->workers[i].key, CP_SUBJECT_KEY_BYTES);
    nw++;
  }
  rc = rewrite(s, "workers", WORKERS_MAGIC, w, nw, WORKER_REC, &s->fd_workers, err, errlen);
  sodium_memzero(w, s->nworkers * WORKER_REC + 1);
  free(w);
  if (rc != 0) return -1;
  /* and in memory: rebuild the arrays and tables from what is now on disk */
  worker_t *old_w = s->workers;
  slotrec_t *old_s = s->slots;
  size_t old_nw = s->nworkers, old_ns = s->nslots, old_cap = s->capworkers;
  uint32_t *map = cp_xcalloc(old_nw + 1, sizeof *map);
  s->workers = NULL;
  s->slots = NULL;
  s->nworkers = s->capworkers = s->nslots = s->capslots = 0;
  table_free(&s->by_wkid);
  table_free(&s->by_slot);
  for (size_t i = 0; i < old_nw; i++)
    if (i != gone) map[i] = add_worker(s, old_w[i].wkid, old_w[i].key);
  for (size_t i = 0; i < old_ns; i++)
    if (old_s[i].worker != gone) add_slot(s, old_s[i].slot, map[old_s[i].worker]);
  sodium_memzero(old_w, old_cap * sizeof *old_w);
  free(old_w);
  free(old_s);
  free(map);
  s->flushed_workers = s->nworkers;
  s->flushed_slots = s->nslots;
  return 0;
}

size_t cp_subject_store_workers(const cp_subject_store_t *s) { return s->nworkers; }
size_t cp_subject_store_slots(const cp_subject_store_t *s) { return s->nslots; }
