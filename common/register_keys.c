/* register_keys.c -- the register's key history: key entries, which key may sign which index, entry checks. */
#include "cp_regkeys.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_codec.h"

/* Unpack a SignedEntry and its PassportEntry; -1 with err set when malformed. */
static int unpack_entry(uint64_t index, const uint8_t *entry, size_t len, Carepass__V1__SignedEntry **se,
                        Carepass__V1__PassportEntry **pe, char *err, size_t errlen) {
  char perr[CP_ERRLEN];
  *pe = NULL;
  *se = (Carepass__V1__SignedEntry *)cp_pb_unpack(&carepass__v1__signed_entry__descriptor, entry, len,
                                                  REG_ENTRY_MAX, perr, sizeof perr);
  if (*se == NULL)
    return cp_err(err, errlen, "entry %llu is not a SignedEntry: %s", (unsigned long long)index, perr);
  if ((*se)->key_id.len != CP_KEYID_BYTES || (*se)->signature.len != crypto_sign_BYTES) {
    protobuf_c_message_free_unpacked(&(*se)->base, NULL);
    *se = NULL;
    return cp_err(err, errlen, "entry %llu has a key id or signature of the wrong length",
                  (unsigned long long)index);
  }
  *pe = (Carepass__V1__PassportEntry *)cp_pb_unpack(&carepass__v1__passport_entry__descriptor,
                                                    (*se)->entry.data, (*se)->entry.len, REG_ENTRY_MAX,
                                                    perr, sizeof perr);
  if (*pe == NULL) {
    protobuf_c_message_free_unpacked(&(*se)->base, NULL);
    *se = NULL;
    return cp_err(err, errlen, "entry %llu is not a PassportEntry: %s", (unsigned long long)index, perr);
  }
  return 0;
}

static void free_entry(Carepass__V1__SignedEntry **se, Carepass__V1__PassportEntry **pe) {
  if (*pe != NULL) protobuf_c_message_free_unpacked(&(*pe)->base, NULL);
  if (*se != NULL) protobuf_c_message_free_unpacked(&(*se)->base, NULL);
  *pe = NULL;
  *se = NULL;
}

const reg_keyspan_t *reg_keys_for(const reg_keyspan_t *spans, size_t n,
                                  const uint8_t key_id[CP_KEYID_BYTES], uint64_t index) {
  for (size_t i = 0; i < n; i++)
    if (memcmp(spans[i].key_id, key_id, CP_KEYID_BYTES) == 0 && spans[i].from_index <= index &&
        index <= spans[i].to_index)
      return &spans[i];
  return NULL;
}

/* "valid 3..17" / "valid from 18" for error messages. */
static void span_text(const reg_keyspan_t *spans, size_t n, const uint8_t key_id[CP_KEYID_BYTES],
                      char *out, size_t outlen) {
  size_t used = 0;
  out[0] = '\0';
  for (size_t i = 0; i < n; i++) {
    if (memcmp(spans[i].key_id, key_id, CP_KEYID_BYTES) != 0) continue;
    int w = spans[i].to_index == UINT64_MAX
                ? snprintf(out + used, outlen - used, "%svalid from %llu", used ? ", " : "",
                           (unsigned long long)spans[i].from_index)
                : snprintf(out + used, outlen - used, "%svalid %llu..%llu", used ? ", " : "",
                           (unsigned long long)spans[i].from_index, (unsigned long long)spans[i].to_index);
    if (w < 0 || (size_t)w >= outlen - used) break;
    used += (size_t)w;
  }
  if (used == 0) snprintf(out, outlen, "not a key of this register");
}

int reg_keys_feed(reg_keyspan_t **spans, size_t *n, uint64_t index, const uint8_t *entry, size_t len,
                  char *err, size_t errlen) {
  Carepass__V1__SignedEntry *se = NULL;
  Carepass__V1__PassportEntry *pe = NULL;
  if (unpack_entry(index, entry, len, &se, &pe, err, errlen) != 0) return -1;
  int rc = -1;
  if (pe->entry_type != CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_KEY) {
    rc = 0;
    goto out;
  }
  if (pe->key_public.len != 32 || pe->key_name == NULL || pe->key_name[0] == '\0' ||
      strlen(pe->key_name) >= sizeof((*spans)->name)) {
    cp_err(err, errlen, "key entry %llu has no 32-byte key or no valid key name", (unsigned long long)index);
    goto out;
  }
  if (*n >= REG_KEYS_MAX) {
    cp_err(err, errlen, "register has more than %d key entries", REG_KEYS_MAX);
    goto out;
  }
  uint8_t new_id[CP_KEYID_BYTES];
  cp_key_id(pe->key_name, pe->key_public.data, new_id);
  const uint8_t *signer_pk;
  if (*n == 0) {
    /* genesis: index 0, signed by the key it announces */
    if (index != 0) {
      cp_err(err, errlen, "first key entry is at index %llu, not 0 (no genesis key entry)",
             (unsigned long long)index);
      goto out;
    }
    if (memcmp(se->key_id.data, new_id, CP_KEYID_BYTES) != 0) {
      cp_err(err, errlen, "genesis key entry 0 is not signed by the key it announces");
      goto out;
    }
    signer_pk = pe->key_public.data;
  } else {
    reg_keyspan_t *cur = &(*spans)[*n - 1];
    if (index <= cur->key_index || cur->to_index != UINT64_MAX) {
      cp_err(err, errlen, "key entry %llu is out of order", (unsigned long long)index);
      goto out;
    }
    if (memcmp(se->key_id.data, cur->key_id, CP_KEYID_BYTES) != 0) {
      cp_err(err, errlen, "key entry %llu is not signed by the current key %02x%02x%02x%02x",
             (unsigned long long)index, cur->key_id[0], cur->key_id[1], cur->key_id[2], cur->key_id[3]);
      goto out;
    }
    if (strcmp(pe->key_name, cur->name) != 0) {
      cp_err(err, errlen, "key entry %llu changes the key name from \"%s\" to \"%s\"", (unsigned long long)index,
             cur->name, pe->key_name);
      goto out;
    }
    if (memcmp(new_id, cur->key_id, CP_KEYID_BYTES) == 0) {
      cp_err(err, errlen, "key entry %llu announces the key that is already current", (unsigned long long)index);
      goto out;
    }
    signer_pk = cur->pk;
  }
  if (!cp_verify_entry(signer_pk, se->entry.data, se->entry.len, se->signature.data)) {
    cp_err(err, errlen, "key entry %llu has a bad signature", (unsigned long long)index);
    goto out;
  }
  reg_keyspan_t *ns = realloc(*spans, (*n + 1) * sizeof **spans);
  if (ns == NULL) abort();   /* OOM is fatal in carepass */
  *spans = ns;
  if (*n > 0) ns[*n - 1].to_index = index;   /* the old key signed the handover entry */
  reg_keyspan_t *sp = &ns[*n];
  memset(sp, 0, sizeof *sp);
  memcpy(sp->key_id, new_id, CP_KEYID_BYTES);
  memcpy(sp->pk, pe->key_public.data, 32);
  snprintf(sp->name, sizeof sp->name, "%s", pe->key_name);
  sp->key_index = index;
  sp->from_index = *n == 0 ? 0 : index + 1;
  sp->to_index = UINT64_MAX;
  (*n)++;
  rc = 0;
out:
  free_entry(&se, &pe);
  return rc;
}

/* Walk state of reg_keys_load. */
typedef struct {
  reg_keyspan_t *spans;   // history so far
  size_t n;               // spans in use
  char *err;              // caller's error buffer
  size_t errlen;          // its size
} keys_walk_t;

/* Fast pre-check: is this SignedEntry's PassportEntry a KEY entry? Decoding every
 * entry twice is avoided by looking only at entry_type after a full unpack in
 * reg_keys_feed when the type matches; here the full unpack is done once. */
static int keys_walk_fn(void *arg, uint64_t index, const uint8_t *entry, size_t len) {
  keys_walk_t *w = arg;
  if (index == 0) {
    Carepass__V1__SignedEntry *se = NULL;
    Carepass__V1__PassportEntry *pe = NULL;
    if (unpack_entry(index, entry, len, &se, &pe, w->err, w->errlen) != 0) return -1;
    bool key = pe->entry_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_KEY;
    free_entry(&se, &pe);
    if (!key) {
      cp_err(w->err, w->errlen, "register has no genesis key entry at index 0 (written before key history; use its vkey)");
      return -1;
    }
  }
  return reg_keys_feed(&w->spans, &w->n, index, entry, len, w->err, w->errlen) != 0 ? -1 : 0;
}

int reg_keys_load(reg_log_t *log, reg_keyspan_t **out, size_t *n, char *err, size_t errlen) {
  *out = NULL;
  *n = 0;
  keys_walk_t w = {NULL, 0, err, errlen};
  uint64_t size = reg_size(log);
  if (size == 0) return cp_err(err, errlen, "register %s is empty (no genesis key entry yet)", reg_dir(log));
  char werr[CP_ERRLEN] = "";
  if (reg_foreach_entry(log, 0, size, keys_walk_fn, &w, werr, sizeof werr) != 0) {
    /* a walk-function failure left its message in err; a read failure in werr */
    if (werr[0] != '\0') cp_err(err, errlen, "%s", werr);
    free(w.spans);
    return -1;
  }
  *out = w.spans;
  *n = w.n;
  return 0;
}

int reg_keys_from_vkey(const char *vkey, reg_keyspan_t **out, size_t *n, char *err, size_t errlen) {
  *out = NULL;
  *n = 0;
  reg_keyspan_t *sp = cp_xcalloc(1, sizeof *sp);
  if (cp_vkey_parse(vkey, sp->name, sizeof sp->name, sp->pk, sp->key_id, err, errlen) != 0) {
    free(sp);
    return -1;
  }
  sp->key_index = 0;
  sp->from_index = 0;
  sp->to_index = UINT64_MAX;
  *out = sp;
  *n = 1;
  return 0;
}

int reg_keys_vkey(const reg_keyspan_t *span, char *out, size_t outlen) {
  return cp_vkey_format(span->name, span->pk, out, outlen);
}

int reg_entry_check(const reg_keyspan_t *spans, size_t n, uint64_t index, const uint8_t *entry, size_t len,
                    Carepass__V1__PassportEntry **out, const reg_keyspan_t **span, char *err, size_t errlen) {
  if (out != NULL) *out = NULL;
  if (span != NULL) *span = NULL;
  Carepass__V1__SignedEntry *se = NULL;
  Carepass__V1__PassportEntry *pe = NULL;
  if (unpack_entry(index, entry, len, &se, &pe, err, errlen) != 0) return -1;
  int rc = -1;
  const reg_keyspan_t *sp = reg_keys_for(spans, n, se->key_id.data, index);
  if (sp == NULL) {
    char hex[9], valid[256];
    cp_hex(se->key_id.data, CP_KEYID_BYTES, hex);
    span_text(spans, n, se->key_id.data, valid, sizeof valid);
    cp_err(err, errlen, "entry %llu is signed by key %s, which is not valid at index %llu (%s)",
           (unsigned long long)index, hex, (unsigned long long)index, valid);
    goto out;
  }
  if (!cp_verify_entry(sp->pk, se->entry.data, se->entry.len, se->signature.data)) {
    cp_err(err, errlen, "entry %llu: Ed25519 signature does not verify", (unsigned long long)index);
    goto out;
  }
  if (out != NULL) {
    *out = pe;
    pe = NULL;   /* the caller's now */
  }
  if (span != NULL) *span = sp;
  rc = 0;
out:
  free_entry(&se, &pe);
  return rc;
}
