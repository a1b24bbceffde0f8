/* cmd_audit.c -- `carepass audit`: re-hash a whole register (directory or tlog-tiles URL) and check
 * every tile, every entry signature (key valid at its index), the checkpoint and consistency. */
#define _GNU_SOURCE   /* memmem */
#include "cli.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "carepass/v1/register.pb-c.h"
#include "cp_codec.h"
#include "cp_regkeys.h"
#include "cp_register.h"

#define AUDIT_CHUNK_TILES 16          /* entry bundles per signature-verification chunk */
#define AUDIT_THREADS_MAX 16          /* most verification threads */
#define AUDIT_SIG_ERRORS_SHOWN 10     /* bad signatures printed before only counting */
#define AUDIT_HTTP_TIMEOUT_S 30L      /* per-request timeout for URLs */

/* Where the register is read from: a directory or an HTTP(S) base URL. */
typedef struct {
  const char *dir;     // directory (NULL for a URL)
  const char *url;     // base URL without trailing '/' (NULL for a directory)
  CURL *curl;          // reused handle (keep-alive) for a URL
} src_t;

/* libcurl write callback state. */
typedef struct {
  uint8_t *buf;   // body so far
  size_t len;     // bytes in buf
  size_t max;     // refuse more than this
  bool over;      // the body exceeded max
} body_t;

static size_t body_write(char *p, size_t sz, size_t nm, void *arg) {
  body_t *b = arg;
  size_t n = sz * nm;
  if (b->len + n > b->max) {
    b->over = true;
    return 0;
  }
  uint8_t *nb = realloc(b->buf, b->len + n + 1);
  if (nb == NULL) abort();
  b->buf = nb;
  memcpy(b->buf + b->len, p, n);
  b->len += n;
  b->buf[b->len] = '\0';
  return n;
}

/* Fetch rel from the source into a malloc'd, NUL-terminated buffer. *missing is set
 * when the file does not exist (ENOENT / HTTP 404). */
static int src_get(src_t *s, const char *rel, size_t max, uint8_t **buf, size_t *len, bool *missing, char *err,
                   size_t errlen) {
  *buf = NULL;
  *len = 0;
  *missing = false;
  if (s->dir != NULL) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", s->dir, rel);
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT) {
      *missing = true;
      return cp_err(err, errlen, "%s is missing", path);
    }
    return cp_read_file(path, max, buf, len, err, errlen);
  }
  char url[4400];
  snprintf(url, sizeof url, "%s/%s", s->url, rel);
  body_t b = {NULL, 0, max, false};
  curl_easy_setopt(s->curl, CURLOPT_URL, url);
  curl_easy_setopt(s->curl, CURLOPT_WRITEFUNCTION, body_write);
  curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, &b);
  CURLcode rc = curl_easy_perform(s->curl);
  long status = 0;
  curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
  if (rc != CURLE_OK) {
    free(b.buf);
    if (b.over) return cp_err(err, errlen, "%s is larger than the limit of %zu bytes", url, max);
    return cp_err(err, errlen, "GET %s: %s", url, curl_easy_strerror(rc));
  }
  if (status == 404) {
    free(b.buf);
    *missing = true;
    return cp_err(err, errlen, "GET %s: 404 (missing)", url);
  }
  if (status != 200) {
    free(b.buf);
    return cp_err(err, errlen, "GET %s: HTTP status %ld", url, status);
  }
  if (b.buf == NULL) b.buf = cp_xcalloc(1, 1);
  *buf = b.buf;
  *len = b.len;
  return 0;
}

/* Read a file of a directory source into *buf (grown as needed, reused across
 * calls: no allocation per tile). Same checks and messages as src_get. */
static int dir_read_into(const char *path, size_t max, uint8_t **buf, size_t *cap, size_t *len, bool *missing,
                         char *err, size_t errlen) {
  *len = 0;
  *missing = false;
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
    int e = errno;
    close(fd);
    return cp_err(err, errlen, "stat %s: %s", path, strerror(e));
  }
  if (!S_ISREG(st.st_mode) || st.st_size < 0 || (uint64_t)st.st_size > max) {
    close(fd);
    if (!S_ISREG(st.st_mode)) return cp_err(err, errlen, "%s is not a regular file", path);
    return cp_err(err, errlen, "%s is %lld bytes; the limit is %zu", path, (long long)st.st_size, max);
  }
  size_t want = (size_t)st.st_size;
  if (*cap < want + 1) {
    uint8_t *nb = realloc(*buf, want + 1);
    if (nb == NULL) abort();
    *buf = nb;
    *cap = want + 1;
  }
  size_t got = 0;
  while (got < want) {
    ssize_t r = read(fd, *buf + got, want - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      close(fd);
      return cp_err(err, errlen, "read %s: %s", path, strerror(e));
    }
    if (r == 0) break;
    got += (size_t)r;
  }
  close(fd);
  (*buf)[got] = '\0';
  *len = got;
  return 0;
}

/* src_get into a reused buffer (a directory is read directly; a URL is fetched and copied). */
static int src_get_into(src_t *s, const char *rel, size_t max, uint8_t **buf, size_t *cap, size_t *len,
                        bool *missing, char *err, size_t errlen) {
  if (s->dir != NULL) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", s->dir, rel);
    return dir_read_into(path, max, buf, cap, len, missing, err, errlen);
  }
  uint8_t *b = NULL;
  if (src_get(s, rel, max, &b, len, missing, err, errlen) != 0) return -1;
  if (*cap < *len + 1) {
    free(*buf);
    *buf = b;
    *cap = *len + 1;
    return 0;
  }
  memcpy(*buf, b, *len + 1);
  free(b);
  return 0;
}

/* One signature to verify. */
typedef struct {
  uint64_t index;          // entry index
  const uint8_t *msg;      // PassportEntry bytes (inside a bundle buffer of the chunk)
  size_t len;              // their length
  const uint8_t *sig;      // 64-byte signature (inside the bundle buffer)
  uint8_t pk[32];          // key valid at index
  bool ok;                 // verified
} sigjob_t;

/* A slice of a chunk's jobs for one thread. */
typedef struct {
  sigjob_t *jobs;   // first job
  size_t n;         // how many
} slice_t;

static void *verify_slice(void *arg) {
  slice_t *sl = arg;
  for (size_t i = 0; i < sl->n; i++) {
    sigjob_t *j = &sl->jobs[i];
    j->ok = cp_verify_entry(j->pk, j->msg, j->len, j->sig);
  }
  return NULL;
}

/* Audit state. */
typedef struct {
  src_t src;                          // where tiles come from
  uint64_t size;                      // checkpoint tree size
  uint8_t root[REG_HASH_BYTES];       // checkpoint root (claimed)
  char origin[256];                   // checkpoint origin
  reg_hash_t *lvl;                    // [REG_LEVELS][256] recomputed hashes of the current tile per level
  unsigned nlvl[REG_LEVELS];          // hashes in lvl per level
  uint64_t tiles_checked;             // hash tiles compared
  reg_keyspan_t *spans;               // key history so far
  size_t nspans;                      // spans in use
  bool legacy;                        // no genesis key entry: VKEY signs everything
  const char *vkey;                   // the verifier key (note vkey text)
  bool check_sigs;                    // verify signatures
  int threads;                        // verification threads
  sigjob_t *jobs;                     // current chunk's jobs
  size_t njobs;                       // jobs in use
  uint8_t *bufs[AUDIT_CHUNK_TILES];   // bundle buffers of the current chunk
  size_t nbufs;                       // in use
  uint64_t sig_ok;                    // signatures verified
  uint64_t sig_bad;                   // signatures that failed
  int failed;                         // failed checks
  uint8_t *tbuf;                      // reused buffer for hash tiles
  size_t tcap;                        // its size
  uint8_t *ebuf;                      // reused buffer for entry bundles (tree-only audit)
  size_t ecap;                        // its size
  double t0;                          // start (monotonic s)
  bool progress;                      // print progress (stderr is a TTY)
  double last_progress;               // when progress was last printed
  uint64_t done;                      // entries processed
} audit_t;

#define LVL(a, L) ((a)->lvl + (size_t)(L) * REG_TILE_WIDTH)

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void result(audit_t *a, bool ok, const char *check, const char *fmt, ...) CP_PRINTF(4, 5);
static void result(audit_t *a, bool ok, const char *check, const char *fmt, ...) {
  char why[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  if (a->progress) fprintf(stderr, "\r%60s\r", "");
  printf("%s: %s (%s)\n", check, ok ? "passed" : "failed", why);
  fflush(stdout);
  if (!ok) a->failed++;
}

static void help(FILE *out) {
  fprintf(out,
          "usage: carepass audit DIR_OR_URL --vkey VKEY [--since CHECKPOINT_FILE]\n"
          "                      [--threads N] [--no-signatures]\n\n"
          "Audit a whole register: read every entry bundle (tlog-tiles layout, from a\n"
          "directory or an http(s):// base URL such as http://host:port/log), recompute\n"
          "the Merkle tree and compare every hash tile at every level, check every\n"
          "entry's Ed25519 signature with the key valid at its index (key history from\n"
          "the key entries of the log), the checkpoint root and signature (by VKEY or a\n"
          "later key the history chains to), and consistency with an earlier checkpoint.\n"
          "Progress on stderr when it is a terminal; entries/s at the end.\n"
          "Exit status 0 only when every check passed.\n\n"
          "  --vkey VKEY        verifier key: a file holding it, or the vkey text\n"
          "  --since FILE       an earlier checkpoint note: prove the log only grew from it\n"
          "  --threads N        signature-verification threads (default: online CPUs)\n"
          "  --no-signatures    check the tree only (a mirror's quick check)\n");
}

/* Fetch tile (level, t) of width w and compare it with want[0..w). */
static int check_tile(audit_t *a, int level, uint64_t t, unsigned w, const reg_hash_t *want) {
  char rel[REG_PATH_MAX], err[CP_ERRLEN];
  if (reg_tile_path(rel, sizeof rel, level, t, w) != 0) {
    result(a, false, "tiles", "tile path too long");
    return -1;
  }
  size_t len = 0;
  bool missing;
  if (src_get_into(&a->src, rel, (size_t)w * REG_HASH_BYTES, &a->tbuf, &a->tcap, &len, &missing, err,
                   sizeof err) != 0) {
    result(a, false, "tiles", "%s", err);
    return -1;
  }
  const uint8_t *buf = a->tbuf;
  int rc = 0;
  if (len != (size_t)w * REG_HASH_BYTES) {
    result(a, false, "tiles", "%s is truncated or corrupt: %zu bytes, expected %zu", rel, len,
           (size_t)w * REG_HASH_BYTES);
    rc = -1;
  } else {
    for (unsigned i = 0; i < w; i++)
      if (memcmp(buf + (size_t)i * REG_HASH_BYTES, want[i], REG_HASH_BYTES) != 0) {
        result(a, false, "tiles", "%s: hash %u differs from the recomputed %s", rel, i,
               level == 0 ? "leaf hash of its entry" : "subtree hash");
        rc = -1;
        break;
      }
  }
  a->tiles_checked++;
  return rc;
}

/* A complete tile's recomputed hashes at `level` are in LVL(level): check it, carry its root up. */
static int push_full(audit_t *a, int level, uint64_t t) {
  if (check_tile(a, level, t, REG_TILE_WIDTH, LVL(a, level)) != 0) return -1;
  if (level + 1 < REG_LEVELS) {
    reg_hashes_root(LVL(a, level), REG_TILE_WIDTH, LVL(a, level + 1)[a->nlvl[level + 1]++]);
    if (a->nlvl[level + 1] == REG_TILE_WIDTH) {
      if (push_full(a, level + 1, t / REG_TILE_WIDTH) != 0) return -1;
      a->nlvl[level + 1] = 0;
    }
  }
  return 0;
}

/* Verify the chunk's signatures on the threads and count the results. */
static void run_jobs(audit_t *a) {
  if (a->njobs > 0) {
    int nt = a->threads < 1 ? 1 : a->threads;
    if ((size_t)nt > a->njobs) nt = (int)a->njobs;
    pthread_t th[AUDIT_THREADS_MAX];
    slice_t sl[AUDIT_THREADS_MAX];
    size_t per = (a->njobs + (size_t)nt - 1) / (size_t)nt;
    int started = 0;
    for (int i = 0; i < nt; i++) {
      size_t from = (size_t)i * per;
      sl[i].jobs = a->jobs + from;
      sl[i].n = from >= a->njobs ? 0 : (a->njobs - from < per ? a->njobs - from : per);
    }
    for (int i = 1; i < nt; i++)
      if (pthread_create(&th[i], NULL, verify_slice, &sl[i]) == 0) started = i;
      else { verify_slice(&sl[i]); }
    verify_slice(&sl[0]);
    for (int i = 1; i <= started; i++) pthread_join(th[i], NULL);
    for (size_t i = 0; i < a->njobs; i++) {
      if (a->jobs[i].ok) {
        a->sig_ok++;
      } else {
        if (a->sig_bad < AUDIT_SIG_ERRORS_SHOWN)
          result(a, false, "signatures", "entry %" PRIu64 ": Ed25519 signature does not verify", a->jobs[i].index);
        a->sig_bad++;
      }
    }
  }
  a->njobs = 0;
  for (size_t i = 0; i < a->nbufs; i++) free(a->bufs[i]);
  a->nbufs = 0;
}

/* ---- a strict protobuf wire scan (the audit's per-entry fast path) ----------
 * Two full unpacks per entry (SignedEntry, then PassportEntry) dominated the tree
 * audit. These functions read only what the audit needs straight from the bytes,
 * and say "not sure" (false) on anything unusual -- a group, a known field with
 * the wrong wire type, a truncated field, field number 0 -- so that the caller
 * then takes the full protobuf-c path and its verdict. Repeated fields: the last
 * one wins, as in protobuf-c for scalar and bytes fields. */

static bool wire_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  uint64_t x = 0;
  for (unsigned i = 0; i < 10; i++) {
    if (*p >= end) return false;
    uint8_t b = *(*p)++;
    x |= (uint64_t)(b & 0x7f) << (7 * i);
    if ((b & 0x80) == 0) {
      *v = x;
      return true;
    }
  }
  return false;
}

/* Next field: number, wire type, and for wire type 2 its bytes; false when unsure. */
static bool wire_next(const uint8_t **p, const uint8_t *end, uint32_t *field, unsigned *wt, uint64_t *val,
                      const uint8_t **data, size_t *dlen) {
  uint64_t tag;
  if (!wire_varint(p, end, &tag) || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff) return false;
  *field = (uint32_t)(tag >> 3);
  *wt = (unsigned)(tag & 7);
  switch (*wt) {
    case 0: return wire_varint(p, end, val);
    case 1:
      if (end - *p < 8) return false;
      *p += 8;
      return true;
    case 2:
      if (!wire_varint(p, end, val) || *val > (uint64_t)(end - *p)) return false;
      *data = *p;
      *dlen = (size_t)*val;
      *p += *val;
      return true;
    case 5:
      if (end - *p < 4) return false;
      *p += 4;
      return true;
    default: return false;
  }
}

/* SignedEntry fields (1 entry, 2 key_id, 3 signature) as pointers into e. */
static bool scan_signed(const uint8_t *e, size_t len, const uint8_t **msg, size_t *mlen, const uint8_t **kid,
                        size_t *klen, const uint8_t **sig, size_t *slen) {
  const uint8_t *p = e, *end = e + len;
  *msg = *kid = *sig = NULL;
  *mlen = *klen = *slen = 0;
  while (p < end) {
    uint32_t f;
    unsigned wt;
    uint64_t v;
    const uint8_t *d = NULL;
    size_t dl = 0;
    if (!wire_next(&p, end, &f, &wt, &v, &d, &dl)) return false;
    if (f <= 3 && wt != 2) return false;
    if (f == 1) *msg = d, *mlen = dl;
    else if (f == 2) *kid = d, *klen = dl;
    else if (f == 3) *sig = d, *slen = dl;
  }
  /* protobuf-c gives an absent bytes field as (NULL, 0) */
  if (*msg == NULL) *msg = e;
  if (*kid == NULL) *kid = e;
  if (*sig == NULL) *sig = e;
  return true;
}

/* true when entry e is certainly well formed and NOT a key entry (entry_type, field
 * 11 of PassportEntry, is not ENTRY_TYPE_KEY); false when it is one or unsure. */
static bool surely_not_key(const uint8_t *e, size_t len) {
  const uint8_t *m, *k, *s;
  size_t ml, kl, sl;
  if (!scan_signed(e, len, &m, &ml, &k, &kl, &s, &sl)) return false;
  const uint8_t *p = m, *end = m + ml;
  uint64_t type = 0;
  while (p < end) {
    uint32_t f;
    unsigned wt;
    uint64_t v = 0;
    const uint8_t *d = NULL;
    size_t dl = 0;
    if (!wire_next(&p, end, &f, &wt, &v, &d, &dl)) return false;
    bool is_varint = f == 1 || f == 10 || f == 11 || f == 12;
    if (f <= 15 && wt != (is_varint ? 0u : 2u)) return false;
    if (f == 11) type = v;
  }
  return (uint32_t)type != CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_KEY;
}

/* Key history and the signature job of one entry (main thread, index order). */
static void prepare_sig(audit_t *a, uint64_t index, const uint8_t *e, size_t len) {
  char err[CP_ERRLEN];
  Carepass__V1__SignedEntry *se = NULL;
  /* index 0 always takes the full path: it decides whether the log has key history */
  if (!a->legacy && (index == 0 || !surely_not_key(e, len))) {
    size_t before = a->nspans;
    if (reg_keys_feed(&a->spans, &a->nspans, index, e, len, err, sizeof err) != 0) {
      if (index == 0 && a->nspans == 0) goto legacy_check;
      if (a->sig_bad < AUDIT_SIG_ERRORS_SHOWN) result(a, false, "key history", "%s", err);
      a->sig_bad++;
      return;
    }
    if (index == 0 && a->nspans == before) {
    legacy_check:
      /* entry 0 is not a key entry: a register from before key history; VKEY signs it all */
      a->legacy = true;
      free(a->spans);
      a->spans = NULL;
      a->nspans = 0;
      if (reg_keys_from_vkey(a->vkey, &a->spans, &a->nspans, err, sizeof err) != 0) abort(); /* parsed before */
    }
  }
  if (!a->check_sigs) return;
  {
    /* fast path: the three fields straight from the bytes, no unpack, no copy */
    const uint8_t *m, *k, *sg;
    size_t ml, kl, sl;
    if (scan_signed(e, len, &m, &ml, &k, &kl, &sg, &sl) && sl == 64 && kl == CP_KEYID_BYTES) {
      const reg_keyspan_t *sp = reg_keys_for(a->spans, a->nspans, k, index);
      if (sp != NULL) {
        sigjob_t *j = &a->jobs[a->njobs++];
        j->index = index;
        j->msg = m;
        j->len = ml;
        j->sig = sg;
        memcpy(j->pk, sp->pk, 32);
        j->ok = false;
        return;
      }
    }
  }
  se = (Carepass__V1__SignedEntry *)cp_pb_unpack(&carepass__v1__signed_entry__descriptor, e, len, REG_ENTRY_MAX,
                                                 err, sizeof err);
  const reg_keyspan_t *sp = NULL;
  if (se != NULL && se->signature.len == 64 && se->key_id.len == CP_KEYID_BYTES)
    sp = reg_keys_for(a->spans, a->nspans, se->key_id.data, index);
  if (sp == NULL) {
    if (a->sig_bad < AUDIT_SIG_ERRORS_SHOWN) {
      if (se == NULL) result(a, false, "signatures", "entry %" PRIu64 " is not a SignedEntry: %s", index, err);
      else result(a, false, "signatures", "entry %" PRIu64 " is signed by a key that is not valid at its index", index);
    }
    a->sig_bad++;
  } else {
    sigjob_t *j = &a->jobs[a->njobs++];
    j->index = index;
    /* the protobuf fields point into se; keep pointers into the bundle instead */
    j->msg = se->entry.data;
    j->len = se->entry.len;
    j->sig = se->signature.data;
    memcpy(j->pk, sp->pk, 32);
    j->ok = false;
    /* protobuf-c copies bytes fields on unpack: locate them in the original bytes */
    const uint8_t *m = memmem(e, len, se->entry.data, se->entry.len);
    const uint8_t *s = memmem(e, len, se->signature.data, 64);
    if (m == NULL || s == NULL) abort();   /* unpack copied bytes that must be in the input */
    j->msg = m;
    j->sig = s;
  }
  if (se != NULL) protobuf_c_message_free_unpacked(&se->base, NULL);
}

static void show_progress(audit_t *a, bool force) {
  if (!a->progress) return;
  double t = now_s();
  if (!force && t - a->last_progress < 0.5) return;
  a->last_progress = t;
  double rate = a->done / (t - a->t0 > 1e-9 ? t - a->t0 : 1e-9);
  fprintf(stderr, "\raudited %" PRIu64 " / %" PRIu64 " entries (%.0f%%), %.0f entries/s   ", a->done, a->size,
          a->size ? 100.0 * (double)a->done / (double)a->size : 100.0, rate);
}

/* Level 0 and up: every entry bundle, every tile. */
static int walk(audit_t *a) {
  uint64_t ntiles = (a->size + REG_TILE_WIDTH - 1) / REG_TILE_WIDTH;
  char err[CP_ERRLEN];
  for (uint64_t t = 0; t < ntiles; t++) {
    unsigned w = reg_tile_width(a->size, 0, t);
    char rel[REG_PATH_MAX];
    if (reg_tile_path(rel, sizeof rel, REG_LEVEL_ENTRIES, t, w) != 0) return -1;
    uint8_t *buf = NULL;
    size_t len = 0;
    bool missing;
    /* with signatures, the chunk's bundles stay alive for the verify threads; without, one buffer is reused */
    int grc = a->check_sigs ? src_get(&a->src, rel, (size_t)w * (2 + REG_ENTRY_MAX), &buf, &len, &missing, err, sizeof err)
                            : src_get_into(&a->src, rel, (size_t)w * (2 + REG_ENTRY_MAX), &a->ebuf, &a->ecap, &len,
                                           &missing, err, sizeof err);
    if (grc != 0) {
      result(a, false, "entries", "%s", err);
      return -1;
    }
    if (!a->check_sigs) buf = a->ebuf;
    size_t pos = 0, elen;
    const uint8_t *e;
    unsigned count = 0;
    int rc;
    while (count < w && (rc = reg_bundle_next(buf, len, &pos, &e, &elen)) == 1) {
      uint64_t index = t * REG_TILE_WIDTH + count;
      reg_leaf_hash(e, elen, LVL(a, 0)[count]);
      prepare_sig(a, index, e, elen);
      count++;
    }
    if (count != w || pos != len) {
      result(a, false, "entries", "entry bundle %s is truncated or corrupt (%u entries read, %u expected%s)", rel, count,
             w, count == w ? ", trailing bytes" : "");
      if (a->check_sigs) free(buf);
      return -1;
    }
    if (a->check_sigs) a->bufs[a->nbufs++] = buf;
    a->nlvl[0] = w;
    if (w == REG_TILE_WIDTH) {
      if (push_full(a, 0, t) != 0) return -1;
      a->nlvl[0] = 0;
    } else if (check_tile(a, 0, t, w, LVL(a, 0)) != 0) {
      return -1;
    }
    a->done += w;
    if (a->nbufs == AUDIT_CHUNK_TILES) run_jobs(a);
    show_progress(a, false);
  }
  run_jobs(a);
  /* partial tiles above level 0 */
  for (int L = 1; L < REG_LEVELS; L++) {
    uint64_t nl = a->size >> (REG_TILE_HEIGHT * L);
    if (nl == 0) break;
    unsigned w = (unsigned)(nl % REG_TILE_WIDTH);
    if (w != a->nlvl[L]) {
      result(a, false, "tiles", "level %d holds %u recomputed hashes, expected %u (internal error)", L, a->nlvl[L], w);
      return -1;
    }
    if (w > 0 && check_tile(a, L, nl / REG_TILE_WIDTH, w, LVL(a, L)) != 0) return -1;
  }
  show_progress(a, true);
  return 0;
}

/* Hash source over the recomputed right edge (as the writer keeps it). */
static int edge_get(void *arg, unsigned height, uint64_t index, uint8_t out[REG_HASH_BYTES], char *err,
                    size_t errlen) {
  audit_t *a = arg;
  unsigned level = height / REG_TILE_HEIGHT, sub = height % REG_TILE_HEIGHT;
  if (level >= REG_LEVELS) return cp_err(err, errlen, "subtree height %u out of range", height);
  uint64_t n = a->size >> (REG_TILE_HEIGHT * level);
  uint64_t base = n & ~(uint64_t)(REG_TILE_WIDTH - 1);
  uint64_t first = index << sub, count = 1ull << sub;
  /* a full last tile at this level was carried up: its hashes are still in LVL(level) */
  if (n % REG_TILE_WIDTH == 0 && n > 0) base = n - REG_TILE_WIDTH;
  if (first < base || first + count > n)
    return cp_err(err, errlen, "subtree (%u, %" PRIu64 ") is not on the right edge", height, index);
  reg_hashes_root((const reg_hash_t *)LVL(a, level)[first - base], (size_t)count, out);
  return 0;
}

/* Hash source reading (already audited) tiles from the source, for consistency proofs. */
typedef struct {
  audit_t *a;         // the audit (source and size)
  int level;          // cached tile's level (-1 = none)
  uint64_t t;         // cached tile index
  uint8_t *buf;       // cached tile bytes
  size_t len;         // their length
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
    free(ts->buf);
    ts->buf = NULL;
    ts->level = -1;
    if (reg_tile_path(rel, sizeof rel, (int)level, t, w) != 0) return cp_err(err, errlen, "tile path too long");
    if (src_get(&ts->a->src, rel, (size_t)w * REG_HASH_BYTES, &ts->buf, &ts->len, &missing, err, errlen) != 0) return -1;
    if (ts->len != (size_t)w * REG_HASH_BYTES) return cp_err(err, errlen, "%s is truncated", rel);
    ts->level = (int)level;
    ts->t = t;
  }
  reg_hashes_root((const reg_hash_t *)(ts->buf + (size_t)off * REG_HASH_BYTES), (size_t)count, out);
  return 0;
}

/* --vkey: a file holding it, or the text. */
static int read_vkey(const char *arg, char *out, size_t outlen, char *err, size_t errlen) {
  struct stat st;
  if (stat(arg, &st) != 0) {
    if (snprintf(out, outlen, "%s", arg) >= (int)outlen) return cp_err(err, errlen, "verifier key too long");
    return 0;
  }
  uint8_t *b = NULL;
  size_t l = 0;
  if (cp_read_file(arg, 64 * 1024, &b, &l, err, errlen) != 0) return -1;
  char *nl = strpbrk((char *)b, "\r\n");
  if (nl != NULL) *nl = '\0';
  int rc = snprintf(out, outlen, "%s", (char *)b) >= (int)outlen ? cp_err(err, errlen, "verifier key too long") : 0;
  free(b);
  return rc;
}

int cmd_audit(int argc, char **argv) {
  const char *where = NULL, *vkey_arg = NULL, *since = NULL;
  long threads = sysconf(_SC_NPROCESSORS_ONLN);
  bool sigs = true;
  for (int i = 1; i < argc; i++) {
    if (cli_is_help(argv[i])) { help(stdout); return CLI_EXIT_OK; }
    if (strcmp(argv[i], "--vkey") == 0 && i + 1 < argc) vkey_arg = argv[++i];
    else if (strcmp(argv[i], "--since") == 0 && i + 1 < argc) since = argv[++i];
    else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
      if (cli_parse_long(argv[++i], 1, AUDIT_THREADS_MAX, &threads) != 0) {
        cli_error("audit", "--threads must be 1..%d", AUDIT_THREADS_MAX);
        return CLI_EXIT_USAGE;
      }
    } else if (strcmp(argv[i], "--no-signatures") == 0) sigs = false;
    else if (argv[i][0] != '-' && where == NULL) where = argv[i];
    else {
      cli_error("audit", "unexpected argument \"%s\"", argv[i]);
      help(stderr);
      return CLI_EXIT_USAGE;
    }
  }
  if (where == NULL || vkey_arg == NULL) {
    cli_error("audit", "DIR_OR_URL and --vkey VKEY are required");
    help(stderr);
    return CLI_EXIT_USAGE;
  }
  if (threads < 1) threads = 1;
  if (threads > AUDIT_THREADS_MAX) threads = AUDIT_THREADS_MAX;
  char err[CP_ERRLEN], vkey[REG_VKEY_MAX], vname[128];
  uint8_t vpk[32], vid[CP_KEYID_BYTES];
  if (read_vkey(vkey_arg, vkey, sizeof vkey, err, sizeof err) != 0 ||
      cp_vkey_parse(vkey, vname, sizeof vname, vpk, vid, err, sizeof err) != 0) {
    cli_error("audit", "--vkey: %s", err);
    return CLI_EXIT_USAGE;
  }

  audit_t a;
  memset(&a, 0, sizeof a);
  a.check_sigs = sigs;
  a.vkey = vkey;
  a.threads = (int)threads;
  a.progress = isatty(STDERR_FILENO);
  char *base = NULL;
  int rc = CLI_EXIT_FAIL;
  uint8_t *note = NULL, *old = NULL;
  size_t notelen = 0, oldlen = 0;
  char **vks = NULL;
  size_t nvks = 0;
  bool missing;
  if (strncmp(where, "http://", 7) == 0 || strncmp(where, "https://", 8) == 0) {
    base = cp_strdup(where);
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/') base[--bl] = '\0';
    a.src.url = base;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || (a.src.curl = curl_easy_init()) == NULL) {
      cli_error("audit", "libcurl could not be initialised");
      goto out;
    }
    curl_easy_setopt(a.src.curl, CURLOPT_TIMEOUT, AUDIT_HTTP_TIMEOUT_S);
    curl_easy_setopt(a.src.curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(a.src.curl, CURLOPT_USERAGENT, "carepass-audit/1");
  } else {
    a.src.dir = where;
  }
  a.lvl = cp_xcalloc((size_t)REG_LEVELS * REG_TILE_WIDTH, sizeof(reg_hash_t));
  a.jobs = cp_xcalloc((size_t)AUDIT_CHUNK_TILES * REG_TILE_WIDTH, sizeof *a.jobs);

  if (src_get(&a.src, "checkpoint", REG_CHECKPOINT_MAX, &note, &notelen, &missing, err, sizeof err) != 0) {
    result(&a, false, "checkpoint", "%s", err);
    goto out;
  }
  if (reg_checkpoint_parse((char *)note, notelen, a.origin, sizeof a.origin, &a.size, a.root, err, sizeof err) != 0) {
    result(&a, false, "checkpoint", "%s", err);
    goto out;
  }
  printf("register %s: checkpoint %s, tree size %" PRIu64 "\n", where, a.origin, a.size);
  fflush(stdout);
  a.t0 = now_s();
  if (walk(&a) != 0) goto report;
  double secs = now_s() - a.t0;
  result(&a, true, "tiles", "%" PRIu64 " entries re-hashed; %" PRIu64 " hash tiles at every level match the recomputation",
         a.size, a.tiles_checked);

  /* the root */
  uint8_t root[REG_HASH_BYTES];
  if (a.size == 0) reg_empty_root(root);
  else if (reg_proof_root(edge_get, &a, a.size, root, err, sizeof err) != 0) {
    result(&a, false, "root", "%s", err);
    goto report;
  }
  if (memcmp(root, a.root, REG_HASH_BYTES) != 0) result(&a, false, "root", "the recomputed root differs from the checkpoint's");
  else result(&a, true, "root", "the recomputed root of %" PRIu64 " entries equals the checkpoint's", a.size);

  /* key history and the checkpoint signature */
  size_t first_trusted = 0;
  if (a.legacy || a.nspans == 0) {
    free(a.spans);
    a.spans = NULL;
    a.nspans = 0;
    if (reg_keys_from_vkey(vkey, &a.spans, &a.nspans, err, sizeof err) != 0) goto report;
    printf("key history: not established (no genesis key entry: a register from before key history; %s+%02x%02x%02x%02x must sign everything)\n",
           vname, vid[0], vid[1], vid[2], vid[3]);
  } else {
    size_t i;
    for (i = 0; i < a.nspans; i++)
      if (memcmp(a.spans[i].key_id, vid, CP_KEYID_BYTES) == 0 && memcmp(a.spans[i].pk, vpk, 32) == 0) break;
    if (i == a.nspans) {
      result(&a, false, "key history", "%s+%02x%02x%02x%02x is not one of the register's %zu key(s)", vname, vid[0],
             vid[1], vid[2], vid[3], a.nspans);
    } else {
      first_trusted = i;
      result(&a, true, "key history", "%zu key(s), each announced by an entry signed by the key before it; the verifier key is key %zu",
             a.nspans, i + 1);
    }
  }
  nvks = a.nspans;
  vks = cp_xcalloc(nvks ? nvks : 1, sizeof *vks);
  for (size_t i = 0; i < nvks; i++) {
    vks[i] = cp_xcalloc(1, REG_VKEY_MAX);
    if (reg_keys_vkey(&a.spans[i], vks[i], REG_VKEY_MAX) != 0) vks[i][0] = '\0';
  }
  {
    char o[256];
    uint64_t sz;
    uint8_t rt[REG_HASH_BYTES];
    size_t which;
    if (nvks > first_trusted &&
        reg_checkpoint_open_any((char *)note, notelen, (const char *const *)vks + first_trusted, nvks - first_trusted,
                                o, sizeof o, &sz, rt, &which, err, sizeof err) == 0)
      result(&a, true, "checkpoint signature", "signed by key %zu of the history (%.*s)", first_trusted + which + 1,
             (int)(strchr(vks[first_trusted + which], '+') ? strchr(vks[first_trusted + which], '+') - vks[first_trusted + which] : 0),
             vks[first_trusted + which]);
    else
      result(&a, false, "checkpoint signature", "%s", err);
  }
  if (a.check_sigs) {
    if (a.sig_bad == 0)
      result(&a, true, "signatures", "%" PRIu64 " entry signatures verified, each with the key valid at its index", a.sig_ok);
    else
      result(&a, false, "signatures", "%" PRIu64 " of %" PRIu64 " entries have no valid signature by the key valid at their index",
             a.sig_bad, a.size);
  } else {
    printf("signatures: not established (--no-signatures)\n");
  }

  /* consistency with an earlier checkpoint */
  if (since != NULL) {
    char o[256];
    uint64_t osz;
    uint8_t ort[REG_HASH_BYTES];
    size_t which;
    if (cp_read_file(since, REG_CHECKPOINT_MAX, &old, &oldlen, err, sizeof err) != 0 ||
        reg_checkpoint_open_any((char *)old, oldlen, (const char *const *)vks, nvks, o, sizeof o, &osz, ort, &which, err,
                                sizeof err) != 0) {
      result(&a, false, "consistency", "--since %s: %s", since, err);
    } else if (strcmp(o, a.origin) != 0) {
      result(&a, false, "consistency", "--since checkpoint is of another log (%s)", o);
    } else if (osz > a.size) {
      result(&a, false, "consistency", "--since checkpoint has size %" PRIu64 ", larger than the current %" PRIu64
             ": the log was truncated or forked", osz, a.size);
    } else {
      reg_hash_t proof[REG_PROOF_MAX];
      size_t n = 0;
      tsrc_t ts = {&a, -1, 0, NULL, 0};
      if (osz > 0 && reg_proof_consistency(tile_get, &ts, osz, a.size, proof, &n, err, sizeof err) != 0)
        result(&a, false, "consistency", "%s", err);
      else if (reg_verify_consistency(osz, a.size, proof, n, ort, a.root) != 0)
        result(&a, false, "consistency", "the log of size %" PRIu64 " is NOT an extension of the --since checkpoint (size %" PRIu64
               "): history was rewritten", a.size, osz);
      else
        result(&a, true, "consistency", "the checkpoint of size %" PRIu64 " extends the --since checkpoint of size %" PRIu64
               " (%zu-hash proof)", a.size, osz, n);
      free(ts.buf);
    }
  }
  printf("audited %" PRIu64 " entries in %.2f s: %.0f entries/s (%s)\n", a.size, secs,
         secs > 0 ? (double)a.size / secs : 0.0,
         a.check_sigs ? "signatures verified" : "tree only");
report:
  printf("%s: %d check(s) failed\n", a.failed ? "AUDIT FAILED" : "AUDIT PASSED", a.failed);
  rc = a.failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
out:
  run_jobs(&a);
  for (size_t i = 0; i < nvks; i++) free(vks[i]);
  free(vks);
  free(a.spans);
  free(a.lvl);
  free(a.jobs);
  free(a.tbuf);
  free(a.ebuf);
  free(note);
  free(old);
  if (a.src.curl != NULL) {
    curl_easy_cleanup(a.src.curl);
    curl_global_cleanup();
  }
  free(base);
  return rc;
}
