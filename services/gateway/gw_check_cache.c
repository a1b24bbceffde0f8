/* gw_check_cache.c -- the register as the employer check sees it: entries checked once and
 * cached (decoded entry, signature, inclusion against the current checkpoint), the key history
 * followed as the log grows, and the checkpoint refreshed at most every GW_CC_REFRESH_MS (or at
 * once when an entry the Redis index names is beyond it). Everything here runs under gw->reg_lock. */
#include "gw_check_cache.h"
#include "gw_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_bundle.h"
#include "cp_codec.h"
#include "cp_log.h"
#include "cp_regkeys.h"

#define GW_CC_REFRESH_MS 250   /* longest a check may use a checkpoint without re-reading it */

/* One cached entry (open addressing on index). */
typedef struct {
  bool used;                          // slot taken
  uint64_t index;                     // register index
  Carepass__V1__PassportEntry *pe;    // decoded entry, never freed while running (requests hold it)
  bool sig_ok;                        // signature and key validity checked
  char sig_err[320];                  // why not
  uint64_t incl_size;                 // checkpoint size the inclusion was checked at (0 = never)
  bool incl_ok;                       // result at incl_size
  char incl_err[320];                 // why not
} cc_slot_t;

/* The cache (one per process; guarded by gw->reg_lock). */
static struct {
  cc_slot_t *tab;                     // hash table of entries
  size_t cap;                         // slots (power of two, 0 = none yet)
  size_t n;                           // slots used
  reg_keyspan_t *spans;               // key history
  size_t nspans;                      // spans in it
  bool genesis;                       // the log has key entries (else one key from the vkey)
  uint64_t fed;                       // entries [0, fed) fed into the key history
  int64_t refreshed_ms;               // monotonic ms of the last checkpoint refresh
} cc;

__attribute__((destructor)) static void cc_free(void) {
  for (size_t i = 0; i < cc.cap; i++)
    if (cc.tab[i].used && cc.tab[i].pe != NULL) protobuf_c_message_free_unpacked(&cc.tab[i].pe->base, NULL);
  free(cc.tab);
  free(cc.spans);
  memset(&cc, 0, sizeof cc);
}

static size_t slot_of(uint64_t index, size_t cap) {
  uint64_t h = index * 0x9E3779B97F4A7C15ull;
  return (size_t)(h >> 17) & (cap - 1);
}

static cc_slot_t *cc_find(uint64_t index, bool create) {
  if (cc.cap == 0 || (create && (cc.n + 1) * 2 > cc.cap)) {
    if (!create) return NULL;
    size_t ncap = cc.cap ? cc.cap * 2 : 1024;
    cc_slot_t *nt = cp_xcalloc(ncap, sizeof *nt);
    for (size_t i = 0; i < cc.cap; i++) {
      if (!cc.tab[i].used) continue;
      size_t s = slot_of(cc.tab[i].index, ncap);
      while (nt[s].used) s = (s + 1) & (ncap - 1);
      nt[s] = cc.tab[i];
    }
    free(cc.tab);
    cc.tab = nt;
    cc.cap = ncap;
  }
  size_t s = slot_of(index, cc.cap);
  while (cc.tab[s].used) {
    if (cc.tab[s].index == index) return &cc.tab[s];
    s = (s + 1) & (cc.cap - 1);
  }
  if (!create) return NULL;
  memset(&cc.tab[s], 0, sizeof cc.tab[s]);
  cc.tab[s].used = true;
  cc.tab[s].index = index;
  cc.n++;
  return &cc.tab[s];
}

static int feed_cb(void *arg, uint64_t index, const uint8_t *entry, size_t len) {
  (void)arg;
  char err[CP_ERRLEN];
  if (reg_keys_feed(&cc.spans, &cc.nspans, index, entry, len, err, sizeof err) != 0)
    cp_log_warn("register key history: entry refused", CP_KV_INT("index", index), CP_KV_STR("error", err), CP_KV_END);
  return 0;
}

/* Bring the key history up to the log's size. */
static int cc_keys(gw_t *gw, reg_log_t *log, char *err, size_t errlen) {
  uint64_t size = reg_size(log);
  if (cc.spans == NULL) {
    if (size == 0) return 0;
    char kerr[CP_ERRLEN];
    if (reg_keys_load(log, &cc.spans, &cc.nspans, kerr, sizeof kerr) == 0) {
      cc.genesis = true;
      cc.fed = size;
      return 0;
    }
    if (strstr(kerr, "no genesis") == NULL) return cp_err(err, errlen, "register key history: %s", kerr);
    char vkey[256];
    pthread_mutex_lock(&gw->keys_lock);
    snprintf(vkey, sizeof vkey, "%s", gw->vkey);
    pthread_mutex_unlock(&gw->keys_lock);
    if (vkey[0] == '\0') return cp_err(err, errlen, "the register verifier key is not readable yet");
    if (reg_keys_from_vkey(vkey, &cc.spans, &cc.nspans, err, errlen) != 0) return -1;
    cc.genesis = false;
    cc.fed = size;
    return 0;
  }
  if (cc.genesis && cc.fed < size) {
    if (reg_foreach_entry(log, cc.fed, size, feed_cb, NULL, err, errlen) != 0) return -1;
    cc.fed = size;
  }
  return 0;
}

/* The register, locked; refreshed when the last refresh is old or `force`. */
static reg_log_t *cc_acquire(gw_t *gw, bool force, char *err, size_t errlen) {
  int64_t now = cp_mono_ms(), last = __atomic_load_n(&cc.refreshed_ms, __ATOMIC_RELAXED);
  if (force || last == 0 || now - last >= GW_CC_REFRESH_MS) {
    reg_log_t *log = gw_register_lock(gw, err, errlen);
    if (log != NULL) __atomic_store_n(&cc.refreshed_ms, now, __ATOMIC_RELAXED);
    return log;
  }
  pthread_mutex_lock(&gw->reg_lock);
  if (gw->reg == NULL) {
    pthread_mutex_unlock(&gw->reg_lock);
    return gw_register_lock(gw, err, errlen);
  }
  return gw->reg;
}

/* Check (or look up) one entry against the current checkpoint. */
static void cc_entry(reg_log_t *log, uint64_t index, gw_centry_t *out) {
  memset(out, 0, sizeof *out);
  out->index = index;
  uint64_t size = reg_size(log);
  if (index >= size) {
    out->beyond = true;
    snprintf(out->problem, sizeof out->problem, "entry %llu is not yet in the register's checkpoint (size %llu)",
             (unsigned long long)index, (unsigned long long)size);
    return;
  }
  cc_slot_t *s = cc_find(index, true);
  char err[CP_ERRLEN];
  uint8_t *buf = NULL;
  size_t len = 0;
  if (s->pe == NULL && s->sig_err[0] == '\0') {
    /* first sight: read, decode, signature by a key valid at the index */
    if (reg_read_entry(log, index, &buf, &len, err, sizeof err) != 0) {
      snprintf(out->problem, sizeof out->problem, "cannot read entry %llu: %.200s", (unsigned long long)index, err);
      return; /* not cached: a read error may be transient */
    }
    if (reg_entry_check(cc.spans, cc.nspans, index, buf, len, &s->pe, NULL, s->sig_err, sizeof s->sig_err) == 0) {
      s->sig_ok = true;
    } else {
      if (s->sig_err[0] == '\0') snprintf(s->sig_err, sizeof s->sig_err, "signature check failed");
      if (s->pe != NULL) {
        protobuf_c_message_free_unpacked(&s->pe->base, NULL);
        s->pe = NULL;
      }
      /* decode without trusting it, so the employer sees what failed */
      Carepass__V1__SignedEntry *se = (Carepass__V1__SignedEntry *)cp_pb_unpack(
          &carepass__v1__signed_entry__descriptor, buf, len, REG_ENTRY_MAX, err, sizeof err);
      if (se != NULL) {
        s->pe = (Carepass__V1__PassportEntry *)cp_pb_unpack(&carepass__v1__passport_entry__descriptor,
                                                            se->entry.data, se->entry.len, REG_ENTRY_MAX, err,
                                                            sizeof err);
        protobuf_c_message_free_unpacked(&se->base, NULL);
      }
    }
  }
  if (s->incl_size != size) {
    /* inclusion against this checkpoint: leaf hash of the stored bytes, audit path from the tiles */
    if (buf == NULL && reg_read_entry(log, index, &buf, &len, err, sizeof err) != 0) {
      snprintf(out->problem, sizeof out->problem, "cannot read entry %llu: %.200s", (unsigned long long)index, err);
      goto out;
    }
    reg_hash_t proof[REG_PROOF_MAX];
    size_t np = 0;
    uint8_t leaf[REG_HASH_BYTES], root[REG_HASH_BYTES];
    reg_leaf_hash(buf, len, leaf);
    reg_root(log, root);
    s->incl_err[0] = '\0';
    if (reg_inclusion_proof(log, index, size, proof, &np, err, sizeof err) != 0) {
      s->incl_ok = false;
      snprintf(s->incl_err, sizeof s->incl_err, "no inclusion proof: %.200s", err);
    } else {
      s->incl_ok = reg_verify_inclusion(leaf, index, size, proof, np, root) == 0;
      if (!s->incl_ok) snprintf(s->incl_err, sizeof s->incl_err, "the inclusion proof does not lead to the checkpoint root");
    }
    s->incl_size = size;
  }
  out->pe = s->pe;
  out->sig_ok = s->sig_ok;
  out->incl_ok = s->incl_ok;
  if (!s->sig_ok) snprintf(out->problem, sizeof out->problem, "%s", s->sig_err);
  else if (!s->incl_ok) snprintf(out->problem, sizeof out->problem, "%s", s->incl_err);
out:
  free(buf);
}

static void cc_checkpoint(reg_log_t *log, gw_ccp_t *cp) {
  char err[CP_ERRLEN];
  const char *note = reg_checkpoint_note(log);
  memset(cp, 0, sizeof *cp);
  cp->size = reg_size(log);
  reg_root(log, cp->root);
  uint64_t sz;
  uint8_t root[REG_HASH_BYTES];
  if (reg_checkpoint_parse(note, strlen(note), cp->origin, sizeof cp->origin, &sz, root, err, sizeof err) != 0)
    cp->origin[0] = '\0';
}

int gw_check_entries(gw_t *gw, const uint64_t *indexes, size_t n, gw_centry_t *out, gw_ccp_t *cp, char *err,
                     size_t errlen) {
  bool force = false;
  for (int pass = 0; pass < 2; pass++) {
    reg_log_t *log = cc_acquire(gw, force, err, errlen);
    if (log == NULL) return -1;
    uint64_t size = reg_size(log);
    bool beyond = false;
    for (size_t i = 0; i < n; i++) beyond |= indexes[i] >= size;
    if (beyond && !force) {
      /* the Redis index is ahead of our view of the checkpoint: re-read it once */
      gw_register_unlock(gw);
      force = true;
      continue;
    }
    if (cc_keys(gw, log, err, errlen) != 0) {
      gw_register_unlock(gw);
      return -1;
    }
    for (size_t i = 0; i < n; i++) cc_entry(log, indexes[i], &out[i]);
    cc_checkpoint(log, cp);
    gw_register_unlock(gw);
    return 0;
  }
  return cp_err(err, errlen, "unreachable");
}

int gw_check_bundle(gw_t *gw, const char *worker_hex, const uint64_t *indexes, const uint8_t *const *openings,
                    size_t n, char **out, size_t *outlen, char *err, size_t errlen) {
  reg_log_t *log = cc_acquire(gw, true, err, errlen);
  if (log == NULL) return -1;
  int rc = -1;
  const char *note = reg_checkpoint_note(log);
  uint64_t size = reg_size(log);
  cp_passport_t b;
  cp_passport_init(&b, worker_hex, note, strlen(note));
  if (cc_keys(gw, log, err, errlen) != 0) goto out;
  /* the register's key history (key entries), then the worker's entries, all against one checkpoint */
  for (size_t i = 0; cc.genesis && i < cc.nspans; i++) {
    cp_tlog_proof_t p;
    if (cc.spans[i].key_index >= size) continue;
    if (cp_tlog_proof_from_log(log, cc.spans[i].key_index, &p, err, errlen) != 0) goto out;
    cp_passport_add(&b, CP_PROOF_KEY, &p);
  }
  for (size_t i = 0; i < n; i++) {
    cp_tlog_proof_t p;
    if (indexes[i] >= size) continue;
    if (cp_tlog_proof_from_log(log, indexes[i], &p, err, errlen) != 0) goto out;
    cp_passport_add(&b, CP_PROOF_ENTRY, &p);
    if (openings != NULL && openings[i] != NULL) cp_passport_add_opening(&b, indexes[i], openings[i]);
  }
  rc = cp_passport_format(&b, out, outlen, err, errlen);
out:
  gw_register_unlock(gw);
  cp_passport_clear(&b);
  return rc;
}
