/* employers.c -- loads the employer registry (data/employers.json) strictly; lookups by id. */
#include "cp_employers.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_json.h"

/* The loaded registry: employers in file order plus an id-sorted index. */
struct emp_registry {
  emp_t *emps;            // employers in file order
  size_t n;               // number of employers
  const emp_t **by_id;    // pointers into emps sorted by id
};

static const char *const emp_fields[] = {"id", "name", "cqc_location_id", "ascwds_workplace_id", "webhook_url"};

/* "1-" followed by 1..EMP_CQC_DIGITS_MAX digits: the form CQC publishes location ids in. */
static bool cqc_valid(const char *s) {
  size_t n = strlen(s);
  if (n < 3 || n > 2 + EMP_CQC_DIGITS_MAX || s[0] != '1' || s[1] != '-') return false;
  for (size_t i = 2; i < n; i++)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

static bool ascwds_valid(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n >= EMP_ASCWDS_MAX) return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9'))) return false;
  return true;
}

/* A name as a person reads it: printable, no control characters (bytes >= 0x80 are UTF-8 text,
 * already checked by jansson). */
static bool name_valid(const char *s) {
  if (s[0] == '\0') return false;
  for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++)
    if (*c < 0x20 || *c == 0x7f) return false;
  return true;
}

static int cmp_id(const void *a, const void *b) {
  const emp_t *const *x = a, *const *y = b;
  return strcmp((*x)->id, (*y)->id);
}

static int cmp_find_id(const void *key, const void *elem) {
  const emp_t *const *e = elem;
  return strcmp((const char *)key, (*e)->id);
}

void emp_destroy(emp_registry_t **reg) {
  if (reg == NULL || *reg == NULL) return;
  free((*reg)->emps);
  free((*reg)->by_id);
  free(*reg);
  *reg = NULL;
}

static int emp_parse(const json_t *e, emp_t *m, const char *where, char *err, size_t errlen) {
  char w[160];
  if (cp_json_check_fields(e, emp_fields, CP_ARRAY_LEN(emp_fields), where, err, errlen) != 0) return -1;
  const json_t *v = json_object_get(e, "id");
  if (!json_is_string(v) || !cp_json_id_valid(json_string_value(v), EMP_ID_MAX))
    return cp_err(err, errlen, "%s: field \"id\" must be 1..%d characters of A-Z a-z 0-9 . _ -", where,
                  EMP_ID_MAX - 1);
  snprintf(m->id, sizeof m->id, "%s", json_string_value(v));
  snprintf(w, sizeof w, "%s (id \"%s\")", where, m->id);
  if (cp_json_opt_string(e, "name", m->name, sizeof m->name, w, err, errlen) != 0) return -1;
  if (!name_valid(m->name))
    return cp_err(err, errlen, "%s: field \"name\" is missing, empty or has control characters", w);
  if (cp_json_opt_string(e, "cqc_location_id", m->cqc_location_id, sizeof m->cqc_location_id, w, err, errlen) != 0)
    return -1;
  if (m->cqc_location_id[0] != '\0' && !cqc_valid(m->cqc_location_id))
    return cp_err(err, errlen, "%s: field \"cqc_location_id\" must be a CQC location id: \"1-\" and 1..%d digits",
                  w, EMP_CQC_DIGITS_MAX);
  if (cp_json_opt_string(e, "ascwds_workplace_id", m->ascwds_workplace_id, sizeof m->ascwds_workplace_id, w, err,
                         errlen) != 0)
    return -1;
  if (m->ascwds_workplace_id[0] != '\0' && !ascwds_valid(m->ascwds_workplace_id))
    return cp_err(err, errlen, "%s: field \"ascwds_workplace_id\" must be 1..%d capital letters and digits", w,
                  EMP_ASCWDS_MAX - 1);
  if (cp_json_opt_string(e, "webhook_url", m->webhook_url, sizeof m->webhook_url, w, err, errlen) != 0) return -1;
  return cp_json_url_check(m->webhook_url, "webhook_url", w, err, errlen);
}

int emp_load(const char *path, emp_registry_t **out, char *err, size_t errlen) {
  assert(path != NULL && out != NULL);
  *out = NULL;
  char where[64];
  char sub[CP_ERRLEN];
  emp_registry_t *reg = NULL;
  json_t *arr;
  json_t *root = cp_json_load_list(path, "employers", false, &arr, err, errlen);
  if (root == NULL) goto err;
  size_t n = json_array_size(arr);
  if (n > EMP_MAX) {
    cp_err(err, errlen, "%s: more than %d employers", path, EMP_MAX);
    goto err;
  }
  reg = cp_xcalloc(1, sizeof *reg);
  reg->emps = cp_xcalloc(n > 0 ? n : 1, sizeof *reg->emps);
  reg->by_id = cp_xcalloc(n > 0 ? n : 1, sizeof *reg->by_id);
  for (size_t i = 0; i < n; i++) {
    snprintf(where, sizeof where, "employers[%zu]", i);
    if (emp_parse(json_array_get(arr, i), &reg->emps[i], where, sub, sizeof sub) != 0) {
      cp_err(err, errlen, "%s: %s", path, sub);
      goto err;
    }
    reg->by_id[i] = &reg->emps[i];
    reg->n = i + 1;
  }
  qsort(reg->by_id, reg->n, sizeof *reg->by_id, cmp_id);
  for (size_t i = 1; i < reg->n; i++)
    if (strcmp(reg->by_id[i - 1]->id, reg->by_id[i]->id) == 0) {
      cp_err(err, errlen, "%s: duplicate employer id \"%s\"", path, reg->by_id[i]->id);
      goto err;
    }
  json_decref(root);
  *out = reg;
  return 0;
err:
  json_decref(root);
  emp_destroy(&reg);
  return -1;
}

const emp_t *emp_find(const emp_registry_t *reg, const char *id) {
  assert(reg != NULL);
  if (id == NULL) return NULL;
  const emp_t **hit = bsearch(id, reg->by_id, reg->n, sizeof *reg->by_id, cmp_find_id);
  return hit != NULL ? *hit : NULL;
}

size_t emp_count(const emp_registry_t *reg) {
  assert(reg != NULL);
  return reg->n;
}

const emp_t *emp_at(const emp_registry_t *reg, size_t i) {
  assert(reg != NULL);
  return i < reg->n ? &reg->emps[i] : NULL;
}
