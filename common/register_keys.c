/* register_keys.c -- the register's key history: key entries, which key may sign which index, vkeys files. */
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
  int rc = reg_foreach_entry(log, 0, size, keys_walk_fn, &w, werr, sizeof werr);
  if (rc != 0) {
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
  const reg_keyspan_t *sp = reg_keys_for(spans, n, se->key_id.data, index);
  if (sp == NULL) {
    char hex[9], valid[256];
    cp_hex(se->key_id.data, CP_KEYID_BYTES, hex);
    span_text(spans, n, se->key_id.data, valid, sizeof valid);
    cp_err(err, errlen, "entry %llu is signed by key %s, which is not valid at index %llu (%s)",
           (unsigned long long)index, hex, (unsigned long long)index, valid);
    goto err;
  }
  if (!cp_verify_entry(sp->pk, se->entry.data, se->entry.len, se->signature.data)) {
    cp_err(err, errlen, "entry %llu: Ed25519 signature does not verify", (unsigned long long)index);
    goto err;
  }
  protobuf_c_message_free_unpacked(&se->base, NULL);
  if (out != NULL)
    *out = pe;
  else
    protobuf_c_message_free_unpacked(&pe->base, NULL);
  if (span != NULL) *span = sp;
  return 0;
err:
  free_entry(&se, &pe);
  return -1;
}

/* ---- vkeys files ---------------------------------------------------------- */

/* Split text into trimmed non-empty lines appended to *v. */
static void add_lines(const char *text, size_t len, char ***v, size_t *n) {
  const char *p = text, *end = text + len;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    const char *a = p, *b = le;
    while (a < b && (*a == ' ' || *a == '\t' || *a == '\r')) a++;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t' || b[-1] == '\r')) b--;
    if (b > a) {
      *v = realloc(*v, (*n + 1) * sizeof **v);
      if (*v == NULL) abort();
      char *s = cp_xmalloc((size_t)(b - a) + 1);
      memcpy(s, a, (size_t)(b - a));
      s[b - a] = '\0';
      (*v)[(*n)++] = s;
    }
    p = le + 1;
  }
}

int reg_vkeys_read(const char *dir, char ***vkeys, size_t *n, char *err, size_t errlen) {
  *vkeys = NULL;
  *n = 0;
  char path[4200];
  uint8_t *buf = NULL;
  size_t len = 0;
  char rerr[CP_ERRLEN];
  snprintf(path, sizeof path, "%s/vkeys", dir);
  if (cp_read_file(path, (size_t)REG_KEYS_MAX * REG_VKEY_MAX, &buf, &len, rerr, sizeof rerr) != 0) {
    snprintf(path, sizeof path, "%s/vkey", dir);
    if (cp_read_file(path, REG_VKEY_MAX, &buf, &len, rerr, sizeof rerr) != 0)
      return cp_err(err, errlen, "register %s has neither vkeys nor vkey: %s", dir, rerr);
  }
  add_lines((const char *)buf, len, vkeys, n);
  free(buf);
  if (*n == 0) return cp_err(err, errlen, "register %s: %s lists no verifier key", dir, path);
  for (size_t i = 0; i < *n; i++) {
    char name[128], perr[CP_ERRLEN];
    unsigned char pk[32], id[CP_KEYID_BYTES];
    if (cp_vkey_parse((*vkeys)[i], name, sizeof name, pk, id, perr, sizeof perr) != 0) {
      cp_err(err, errlen, "%s line %zu: %s", path, i + 1, perr);
      reg_vkeys_free(vkeys, *n);
      *n = 0;
      return -1;
    }
  }
  return 0;
}

void reg_vkeys_free(char ***vkeys, size_t n) {
  if (vkeys == NULL || *vkeys == NULL) return;
  for (size_t i = 0; i < n; i++) free((*vkeys)[i]);
  free(*vkeys);
  *vkeys = NULL;
}

int reg_vkeys_publish(const char *dir, const char *vkey, char *err, size_t errlen) {
  char path[4200];
  uint8_t *buf = NULL;
  size_t len = 0;
  char **v = NULL;
  size_t n = 0;
  int rc = -1;
  snprintf(path, sizeof path, "%s/vkeys", dir);
  if (cp_read_file(path, (size_t)REG_KEYS_MAX * REG_VKEY_MAX, &buf, &len, NULL, 0) == 0) {
    add_lines((const char *)buf, len, &v, &n);
  } else {
    /* first publication: start the list with the key currently published, if any */
    char vpath[4200];
    snprintf(vpath, sizeof vpath, "%s/vkey", dir);
    if (cp_read_file(vpath, REG_VKEY_MAX, &buf, &len, NULL, 0) == 0) add_lines((const char *)buf, len, &v, &n);
  }
  free(buf);
  buf = NULL;
  bool have = false;
  for (size_t i = 0; i < n; i++)
    if (strcmp(v[i], vkey) == 0) have = true;
  size_t cap = (n + 1) * (REG_VKEY_MAX + 1) + 1, used = 0;
  char *text = cp_xmalloc(cap);
  for (size_t i = 0; i < n; i++) used += (size_t)snprintf(text + used, cap - used, "%s\n", v[i]);
  if (!have) used += (size_t)snprintf(text + used, cap - used, "%s\n", vkey);
  if (cp_write_file_atomic(path, text, used, 0644, err, errlen) != 0) goto out;
  snprintf(path, sizeof path, "%s/vkey", dir);
  used = (size_t)snprintf(text, cap, "%s\n", vkey);
  if (cp_write_file_atomic(path, text, used, 0644, err, errlen) != 0) goto out;
  rc = 0;
out:
  free(text);
  reg_vkeys_free(&v, n);
  return rc;
}

int reg_entry_sign(const cp_signkey_t *key, const Carepass__V1__PassportEntry *pe, uint8_t **out,
                   size_t *outlen, char *err, size_t errlen) {
  uint8_t *pbuf = NULL, *sbuf = NULL;
  size_t plen = 0, slen = 0;
  if (cp_pb_pack(&pe->base, &pbuf, &plen) != 0) return cp_err(err, errlen, "packing PassportEntry failed");
  unsigned char sig[crypto_sign_BYTES];
  cp_sign_entry(key, pbuf, plen, sig);
  Carepass__V1__SignedEntry se = CAREPASS__V1__SIGNED_ENTRY__INIT;
  se.entry.data = pbuf;
  se.entry.len = plen;
  se.key_id.data = (uint8_t *)key->key_id;
  se.key_id.len = CP_KEYID_BYTES;
  se.signature.data = sig;
  se.signature.len = sizeof sig;
  int rc = cp_pb_pack(&se.base, &sbuf, &slen);
  free(pbuf);
  if (rc != 0) return cp_err(err, errlen, "packing SignedEntry failed");
  if (slen > REG_ENTRY_MAX) {
    free(sbuf);
    return cp_err(err, errlen, "signed entry is %zu bytes; the register limit is %d", slen, REG_ENTRY_MAX);
  }
  *out = sbuf;
  *outlen = slen;
  return 0;
}

int reg_key_entry_build(const cp_signkey_t *signer, const char *name, const uint8_t pk[32], int64_t issued_at,
                        uint8_t **out, size_t *outlen, char *err, size_t errlen) {
  Carepass__V1__PassportEntry pe = CAREPASS__V1__PASSPORT_ENTRY__INIT;
  pe.version = 1;
  pe.entry_type = CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_KEY;
  pe.issued_at = issued_at;
  pe.key_public.data = (uint8_t *)pk;
  pe.key_public.len = 32;
  pe.key_name = (char *)name;
  return reg_entry_sign(signer, &pe, out, outlen, err, errlen);
}
