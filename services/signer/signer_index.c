/* signer_index.c -- idempotency index: (provider_id, provider_event_id) -> register index. */
#include "signer.h"

#include <stdlib.h>
#include <string.h>

#include "cp_log.h"

/* One slot of the open-addressing table. */
typedef struct {
  char *key;       // "provider_id\x1fprovider_event_id" (malloc'd); NULL = empty slot
  uint64_t index;  // register index of the entry
} slot_t;

struct signer_index {
  slot_t *slots;   // table, cap is a power of two
  size_t cap;      // number of slots
  size_t count;    // slots in use
};

static uint64_t fnv1a(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) {
    h ^= (uint8_t)*s;
    h *= 1099511628211ull;
  }
  return h;
}

static char *make_key(const char *p, const char *e) {
  size_t lp = strlen(p), le = strlen(e);
  char *k = cp_xmalloc(lp + le + 2);
  memcpy(k, p, lp);
  k[lp] = '\x1f';
  memcpy(k + lp + 1, e, le + 1);
  return k;
}

signer_index_t *signer_index_new(void) {
  signer_index_t *ix = cp_xcalloc(1, sizeof *ix);
  ix->cap = 1024;
  ix->slots = cp_xcalloc(ix->cap, sizeof *ix->slots);
  return ix;
}

void signer_index_destroy(signer_index_t **ixp) {
  if (ixp == NULL || *ixp == NULL) return;
  signer_index_t *ix = *ixp;
  for (size_t i = 0; i < ix->cap; i++) free(ix->slots[i].key);
  free(ix->slots);
  free(ix);
  *ixp = NULL;
}

static slot_t *find(const signer_index_t *ix, const char *key) {
  size_t i = (size_t)fnv1a(key) & (ix->cap - 1);
  while (ix->slots[i].key != NULL && strcmp(ix->slots[i].key, key) != 0) i = (i + 1) & (ix->cap - 1);
  return &ix->slots[i];
}

bool signer_index_get(const signer_index_t *ix, const char *provider_id, const char *event_id, uint64_t *index) {
  char *key = make_key(provider_id, event_id);
  slot_t *s = find(ix, key);
  free(key);
  if (s->key == NULL) return false;
  *index = s->index;
  return true;
}

static void grow(signer_index_t *ix) {
  slot_t *old = ix->slots;
  size_t oldcap = ix->cap;
  ix->cap *= 2;
  ix->slots = cp_xcalloc(ix->cap, sizeof *ix->slots);
  for (size_t i = 0; i < oldcap; i++) {
    if (old[i].key != NULL) *find(ix, old[i].key) = old[i];
  }
  free(old);
}

void signer_index_put(signer_index_t *ix, const char *provider_id, const char *event_id, uint64_t index) {
  if ((ix->count + 1) * 2 > ix->cap) grow(ix);
  char *key = make_key(provider_id, event_id);
  slot_t *s = find(ix, key);
  if (s->key != NULL) {   /* keep the first index: the register never holds two (see signer_batch.c) */
    free(key);
    return;
  }
  s->key = key;
  s->index = index;
  ix->count++;
}

size_t signer_index_count(const signer_index_t *ix) { return ix->count; }

/* Walk state of signer_index_build. */
typedef struct {
  signer_index_t *ix;     // index being filled
  reg_keyspan_t *keys;    // key history being built
  size_t nkeys;           // spans in keys
  char *err;              // where a key-history failure is described
  size_t errlen;          // its size
} build_t;

/* reg_foreach_entry callback: add one entry. */
static int add_entry(void *arg, uint64_t index, const uint8_t *entry, size_t len) {
  build_t *b = arg;
  signer_index_t *ix = b->ix;
  char err[CP_ERRLEN];
  Carepass__V1__PassportEntry *pe = signer_entry_decode(entry, len, err, sizeof err);
  if (pe == NULL) {
    /* an entry we cannot decode cannot be a duplicate of anything: note it and go on */
    cp_log_warn("register entry not decodable", CP_KV_INT("index", index), CP_KV_STR("error", err), CP_KV_END);
    return 0;
  }
  bool key = pe->entry_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_KEY;
  if (!key) signer_index_put(ix, pe->provider_id, pe->provider_event_id, index);
  protobuf_c_message_free_unpacked(&pe->base, NULL);
  /* a key entry must be a sound link of the key history, or the signer cannot tell its key is current */
  if (key && reg_keys_feed(&b->keys, &b->nkeys, index, entry, len, b->err, b->errlen) != 0) return -1;
  return 0;
}

int signer_index_build(signer_index_t *ix, reg_log_t *log, reg_keyspan_t **keys, size_t *nkeys, char *err,
                       size_t errlen) {
  build_t b = {ix, NULL, 0, err, errlen};
  char rerr[CP_ERRLEN] = "";
  *keys = NULL;
  *nkeys = 0;
  int rc = reg_foreach_entry(log, 0, reg_size(log), add_entry, &b, rerr, sizeof rerr);
  if (rc != 0) {
    if (rerr[0] != '\0') cp_err(err, errlen, "%s", rerr);
    free(b.keys);
    return -1;
  }
  *keys = b.keys;
  *nkeys = b.nkeys;
  return 0;
}
