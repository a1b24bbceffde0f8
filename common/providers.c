/* providers.c -- loads the provider registry (data/providers.json) strictly; lookups and approvals. */
#include "cp_catalogue.h"
#include "cp_dates.h"
#include "cp_json.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define PROV_RESERVED_ID "carepass"   /* provider id carepass itself uses for derived awards */
#define PROV_OPERATOR_ID "carepass-operator" /* provider id of operator revocations (carepass revoke) */

/* The loaded registry: providers in file order plus id- and key-sorted indexes. */
struct prov_registry {
  prov_t *provs;              // providers in file order
  size_t n;                   // number of providers
  const prov_t **by_id;       // pointers into provs sorted by id
  const prov_t **by_key;      // providers with a CurveZMQ key, sorted by key
  size_t nkeys;               // number of entries in by_key
};

static const char *const prov_fields[] = {
  "id", "name", "curve_public_key", "webhook_url", "approvals",
};

static const char *const approval_fields[] = {"code", "from", "to"};

/* An approval pattern: a code of [A-Z0-9._-], optionally ending in '*' ("*" alone = everything). */
static bool pattern_valid(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n >= CAT_CODE_MAX)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '*' && i == n - 1)
      continue;
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
      return false;
  }
  return true;
}

/* A CurveZMQ public key in Z85: exactly 40 characters that decode to 32 bytes. */
static bool z85_key_valid(const char *s, char *why, size_t whylen) {
  size_t n = strlen(s);
  if (n != 40) {
    snprintf(why, whylen, "must be 40 Z85 characters (a 32-byte key), not %zu", n);
    return false;
  }
  uint8_t key[32];
  if (zmq_z85_decode(key, s) == NULL) {
    snprintf(why, whylen, "is not valid Z85");
    return false;
  }
  return true;
}

static int cmp_id(const void *a, const void *b) {
  const prov_t *const *x = a, *const *y = b;
  return strcmp((*x)->id, (*y)->id);
}

static int cmp_key(const void *a, const void *b) {
  const prov_t *const *x = a, *const *y = b;
  return strcmp((*x)->curve_key, (*y)->curve_key);
}

static int cmp_find_id(const void *key, const void *elem) {
  const prov_t *const *p = elem;
  return strcmp((const char *)key, (*p)->id);
}

static int cmp_find_key(const void *key, const void *elem) {
  const prov_t *const *p = elem;
  return strcmp((const char *)key, (*p)->curve_key);
}

void prov_destroy(prov_registry_t **reg) {
  if (reg == NULL || *reg == NULL)
    return;
  prov_registry_t *r = *reg;
  for (size_t i = 0; i < r->n; i++)
    free(r->provs[i].approvals);
  free(r->provs);
  free(r->by_id);
  free(r->by_key);
  free(r);
  *reg = NULL;
}

static int approval_parse(json_t *a, prov_approval_t *ap, const char *where, char *err, size_t errlen) {
  if (cp_json_check_fields(a, approval_fields, CP_ARRAY_LEN(approval_fields), where, err, errlen) != 0)
    return -1;
  json_t *v = json_object_get(a, "code");
  if (!json_is_string(v) || !pattern_valid(json_string_value(v)))
    return cp_err(err, errlen, "%s: field \"code\" must be a qualification code or a prefix ending in '*'",
                  where);
  snprintf(ap->code, sizeof ap->code, "%s", json_string_value(v));
  v = json_object_get(a, "from");
  if (!json_is_string(v) || cp_date_parse(json_string_value(v), &ap->from) != 0)
    return cp_err(err, errlen, "%s (code \"%s\"): field \"from\" must be a YYYY-MM-DD date", where, ap->code);
  v = json_object_get(a, "to");
  if (v == NULL || (json_is_string(v) && json_string_length(v) == 0)) {
    ap->to = INT32_MAX;
  } else if (!json_is_string(v) || cp_date_parse(json_string_value(v), &ap->to) != 0) {
    return cp_err(err, errlen, "%s (code \"%s\"): field \"to\" must be a YYYY-MM-DD date or \"\"",
                  where, ap->code);
  } else if (ap->to < ap->from) {
    return cp_err(err, errlen, "%s (code \"%s\"): field \"to\" is before \"from\"", where, ap->code);
  }
  return 0;
}

static int prov_parse(json_t *e, prov_t *p, const char *where, char *err, size_t errlen) {
  char w[160];
  char why[96];
  if (cp_json_check_fields(e, prov_fields, CP_ARRAY_LEN(prov_fields), where, err, errlen) != 0)
    return -1;
  json_t *v = json_object_get(e, "id");
  if (!json_is_string(v) || !cp_json_id_valid(json_string_value(v), PROV_ID_MAX))
    return cp_err(err, errlen, "%s: field \"id\" must be 1..%d characters of A-Z a-z 0-9 . _ -",
                  where, PROV_ID_MAX - 1);
  if (strcmp(json_string_value(v), PROV_RESERVED_ID) == 0)
    return cp_err(err, errlen, "%s: field \"id\": \"%s\" is reserved for awards carepass issues itself",
                  where, PROV_RESERVED_ID);
  if (strcmp(json_string_value(v), PROV_OPERATOR_ID) == 0) /* verify trusts this id's revocations */
    return cp_err(err, errlen, "%s: field \"id\": \"%s\" is reserved for the operator's revocations",
                  where, PROV_OPERATOR_ID);
  snprintf(p->id, sizeof p->id, "%s", json_string_value(v));
  snprintf(w, sizeof w, "%s (id \"%s\")", where, p->id);

  if (cp_json_opt_string(e, "name", p->name, sizeof p->name, w, err, errlen) != 0)
    return -1;
  if (p->name[0] == '\0')
    return cp_err(err, errlen, "%s: field \"name\" is missing or empty", w);
  v = json_object_get(e, "curve_public_key");
  if (v != NULL && !json_is_string(v))
    return cp_err(err, errlen, "%s: field \"curve_public_key\" must be a string", w);
  if (v != NULL && json_string_length(v) > 0) {
    if (!z85_key_valid(json_string_value(v), why, sizeof why))
      return cp_err(err, errlen, "%s: field \"curve_public_key\" %s", w, why);
    snprintf(p->curve_key, sizeof p->curve_key, "%s", json_string_value(v));
  }
  if (cp_json_opt_string(e, "webhook_url", p->webhook_url, sizeof p->webhook_url, w, err, errlen) != 0)
    return -1;
  if (cp_json_url_check(p->webhook_url, "webhook_url", w, err, errlen) != 0)
    return -1;

  json_t *arr = json_object_get(e, "approvals");
  if (arr != NULL && !json_is_array(arr))
    return cp_err(err, errlen, "%s: field \"approvals\" must be an array", w);
  size_t n = arr != NULL ? json_array_size(arr) : 0;
  p->approvals = n > 0 ? cp_xcalloc(n, sizeof *p->approvals) : NULL;
  for (size_t i = 0; i < n; i++) {
    char aw[200];
    snprintf(aw, sizeof aw, "%s: approvals[%zu]", w, i);
    if (approval_parse(json_array_get(arr, i), &p->approvals[i], aw, err, errlen) != 0)
      return -1;
    p->napprovals = i + 1;
  }
  return 0;
}

int prov_load(const char *path, prov_registry_t **out, char *err, size_t errlen) {
  assert(path != NULL && out != NULL);
  *out = NULL;
  char where[64];
  char sub[CP_ERRLEN];
  prov_registry_t *reg = NULL;
  json_t *arr;
  json_t *root = cp_json_load_list(path, "providers", false, &arr, err, errlen);
  if (root == NULL)
    goto err;
  size_t n = json_array_size(arr);
  reg = cp_xcalloc(1, sizeof *reg);
  reg->provs = cp_xcalloc(n > 0 ? n : 1, sizeof *reg->provs);
  reg->by_id = cp_xcalloc(n > 0 ? n : 1, sizeof *reg->by_id);
  reg->by_key = cp_xcalloc(n > 0 ? n : 1, sizeof *reg->by_key);
  for (size_t i = 0; i < n; i++) {
    snprintf(where, sizeof where, "providers[%zu]", i);
    reg->n = i + 1;   /* so prov_destroy frees a partly parsed entry */
    if (prov_parse(json_array_get(arr, i), &reg->provs[i], where, sub, sizeof sub) != 0) {
      cp_err(err, errlen, "%s: %s", path, sub);
      goto err;
    }
    reg->by_id[i] = &reg->provs[i];
    if (reg->provs[i].curve_key[0] != '\0')
      reg->by_key[reg->nkeys++] = &reg->provs[i];
  }
  qsort(reg->by_id, n, sizeof *reg->by_id, cmp_id);
  for (size_t i = 1; i < n; i++)
    if (strcmp(reg->by_id[i - 1]->id, reg->by_id[i]->id) == 0) {
      cp_err(err, errlen, "%s: duplicate provider id \"%s\"", path, reg->by_id[i]->id);
      goto err;
    }
  qsort(reg->by_key, reg->nkeys, sizeof *reg->by_key, cmp_key);
  for (size_t i = 1; i < reg->nkeys; i++)
    if (strcmp(reg->by_key[i - 1]->curve_key, reg->by_key[i]->curve_key) == 0) {
      cp_err(err, errlen, "%s: providers \"%s\" and \"%s\" have the same curve_public_key", path,
             reg->by_key[i - 1]->id, reg->by_key[i]->id);
      goto err;
    }
  json_decref(root);
  *out = reg;
  return 0;
err:
  json_decref(root);
  prov_destroy(&reg);
  return -1;
}

const prov_t *prov_find(const prov_registry_t *reg, const char *id) {
  assert(reg != NULL);
  if (id == NULL)
    return NULL;
  const prov_t **hit = bsearch(id, reg->by_id, reg->n, sizeof *reg->by_id, cmp_find_id);
  return hit != NULL ? *hit : NULL;
}

const prov_t *prov_find_by_key(const prov_registry_t *reg, const char *curve_key_z85) {
  assert(reg != NULL);
  if (curve_key_z85 == NULL || curve_key_z85[0] == '\0')
    return NULL;
  const prov_t **hit = bsearch(curve_key_z85, reg->by_key, reg->nkeys, sizeof *reg->by_key, cmp_find_key);
  return hit != NULL ? *hit : NULL;
}

size_t prov_count(const prov_registry_t *reg) {
  assert(reg != NULL);
  return reg->n;
}

const prov_t *prov_at(const prov_registry_t *reg, size_t i) {
  assert(reg != NULL);
  return i < reg->n ? &reg->provs[i] : NULL;
}

/* Does approval pattern `pat` ("CC-STD-*", "RF-MH", "*") cover `code`? */
static bool pattern_match(const char *pat, const char *code) {
  size_t n = strlen(pat);
  if (n > 0 && pat[n - 1] == '*')
    return strncmp(pat, code, n - 1) == 0;
  return strcmp(pat, code) == 0;
}

bool prov_approved(const prov_t *p, const char *code, int32_t date) {
  assert(p != NULL && code != NULL);
  for (size_t i = 0; i < p->napprovals; i++) {
    const prov_approval_t *a = &p->approvals[i];
    if (date >= a->from && date <= a->to && pattern_match(a->code, code))
      return true;
  }
  return false;
}
