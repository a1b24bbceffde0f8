/* catalogue.c -- loads data/catalogue.json strictly and looks qualifications up by code. */
#include "cp_catalogue.h"
#include "cp_json.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CAT_REFRESH_MAX 120   /* longest refresh period accepted, in months (10 years) */

/* The loaded catalogue: entries in file order plus a code-sorted index. */
struct cat_catalogue {
  cat_qual_t *quals;          // qualifications in file order
  size_t n;                   // number of qualifications
  const cat_qual_t **sorted;  // pointers into quals sorted by code (for bsearch)
  const cat_qual_t **awards;  // the derived awards (entries with requires)
  size_t nawards;             // number of derived awards
};

static const char *const cat_kinds[] = {
  "care_certificate_standard", "award", "certificate", "diploma", "cpd", "refresher",
};

static const char *const cat_fields[] = {
  "code", "title", "kind", "assessed", "refresh_months", "derived", "requires",
};

/* A code is 1..CAT_CODE_MAX-1 characters of [A-Z0-9._-], starting with a letter or digit. */
static bool code_valid(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n >= CAT_CODE_MAX)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    bool ok = (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (i > 0 && (c == '-' || c == '.' || c == '_'));
    if (!ok)
      return false;
  }
  return true;
}

static bool kind_valid(const char *k) {
  for (size_t i = 0; i < CP_ARRAY_LEN(cat_kinds); i++)
    if (strcmp(k, cat_kinds[i]) == 0)
      return true;
  return false;
}

static int cmp_qual_ptr(const void *a, const void *b) {
  const cat_qual_t *const *x = a, *const *y = b;
  return strcmp((*x)->code, (*y)->code);
}

static int cmp_key_qual(const void *key, const void *elem) {
  const cat_qual_t *const *q = elem;
  return strcmp((const char *)key, (*q)->code);
}

static void qual_free(cat_qual_t *q) {
  for (size_t i = 0; i < q->nrequires; i++)
    free(q->requires[i]);
  free(q->requires);
  q->requires = NULL;
  q->nrequires = 0;
}

void cat_destroy(cat_catalogue_t **cat) {
  if (cat == NULL || *cat == NULL)
    return;
  cat_catalogue_t *c = *cat;
  for (size_t i = 0; i < c->n; i++)
    qual_free(&c->quals[i]);
  free(c->quals);
  free(c->sorted);
  free(c->awards);
  free(c);
  *cat = NULL;
}

/* Parse one entry of "qualifications" into q. `where` names the entry in errors. */
static int qual_parse(json_t *e, cat_qual_t *q, const char *where, char *err, size_t errlen) {
  if (cp_json_check_fields(e, cat_fields, CP_ARRAY_LEN(cat_fields), where, err, errlen) != 0)
    return -1;

  json_t *v = json_object_get(e, "code");
  if (!json_is_string(v))
    return cp_err(err, errlen, "%s: field \"code\" is missing or not a string", where);
  if (!code_valid(json_string_value(v)))
    return cp_err(err, errlen, "%s: field \"code\": \"%.40s\" is not a valid code "
                  "(1..%d characters of A-Z 0-9 . _ -)", where, json_string_value(v), CAT_CODE_MAX - 1);
  snprintf(q->code, sizeof q->code, "%s", json_string_value(v));

  v = json_object_get(e, "title");
  if (!json_is_string(v) || json_string_length(v) == 0)
    return cp_err(err, errlen, "%s (code \"%s\"): field \"title\" is missing or empty", where, q->code);
  if (json_string_length(v) >= CAT_TITLE_MAX)
    return cp_err(err, errlen, "%s (code \"%s\"): field \"title\" is longer than %d bytes",
                  where, q->code, CAT_TITLE_MAX - 1);
  snprintf(q->title, sizeof q->title, "%s", json_string_value(v));

  v = json_object_get(e, "kind");
  if (!json_is_string(v))
    return cp_err(err, errlen, "%s (code \"%s\"): field \"kind\" is missing or not a string", where, q->code);
  if (!kind_valid(json_string_value(v)))
    return cp_err(err, errlen, "%s (code \"%s\"): field \"kind\": unknown kind \"%.40s\" (expected "
                  "care_certificate_standard, award, certificate, diploma, cpd or refresher)",
                  where, q->code, json_string_value(v));
  snprintf(q->kind, sizeof q->kind, "%s", json_string_value(v));

  v = json_object_get(e, "assessed");
  if (v != NULL && !json_is_boolean(v))
    return cp_err(err, errlen, "%s (code \"%s\"): field \"assessed\" must be true or false", where, q->code);
  q->assessed = v != NULL && json_is_true(v);

  v = json_object_get(e, "refresh_months");
  if (v != NULL && !json_is_integer(v))
    return cp_err(err, errlen, "%s (code \"%s\"): field \"refresh_months\" must be an integer", where, q->code);
  json_int_t months = v != NULL ? json_integer_value(v) : 0;
  if (months < 0 || months > CAT_REFRESH_MAX)
    return cp_err(err, errlen, "%s (code \"%s\"): field \"refresh_months\": %lld is outside 0..%d",
                  where, q->code, (long long)months, CAT_REFRESH_MAX);
  q->refresh_months = (int)months;

  v = json_object_get(e, "derived");
  if (v != NULL && !json_is_boolean(v))
    return cp_err(err, errlen, "%s (code \"%s\"): field \"derived\" must be true or false", where, q->code);
  q->derived = v != NULL && json_is_true(v);

  json_t *req = json_object_get(e, "requires");
  if (!q->derived) {
    if (req != NULL && !(json_is_array(req) && json_array_size(req) == 0))
      return cp_err(err, errlen, "%s (code \"%s\"): field \"requires\" is only allowed when \"derived\" is true",
                    where, q->code);
    return 0;
  }
  if (strcmp(q->kind, "award") != 0)
    return cp_err(err, errlen, "%s (code \"%s\"): a derived qualification must have kind \"award\"", where, q->code);
  if (!json_is_array(req) || json_array_size(req) == 0)
    return cp_err(err, errlen, "%s (code \"%s\"): field \"requires\" must be a non-empty array of codes "
                  "when \"derived\" is true", where, q->code);
  q->requires = cp_xcalloc(json_array_size(req), sizeof(char *));
  size_t i;
  json_array_foreach(req, i, v) {
    if (!json_is_string(v) || !code_valid(json_string_value(v)))
      return cp_err(err, errlen, "%s (code \"%s\"): field \"requires\"[%zu] is not a valid code",
                    where, q->code, i);
    for (size_t j = 0; j < q->nrequires; j++)
      if (strcmp(q->requires[j], json_string_value(v)) == 0)
        return cp_err(err, errlen, "%s (code \"%s\"): field \"requires\" lists \"%s\" twice",
                      where, q->code, json_string_value(v));
    q->requires[q->nrequires++] = cp_strdup(json_string_value(v));
  }
  return 0;
}

int cat_load(const char *path, cat_catalogue_t **out, char *err, size_t errlen) {
  assert(path != NULL && out != NULL);
  *out = NULL;
  char where[96];
  char sub[CP_ERRLEN];
  cat_catalogue_t *cat = NULL;
  json_t *arr;
  json_t *root = cp_json_load_list(path, "qualifications", true, &arr, err, errlen);
  if (root == NULL)
    goto err;
  cat = cp_xcalloc(1, sizeof *cat);
  size_t n = json_array_size(arr);
  cat->quals = cp_xcalloc(n, sizeof *cat->quals);
  cat->sorted = cp_xcalloc(n, sizeof *cat->sorted);
  cat->awards = cp_xcalloc(n, sizeof *cat->awards);
  for (size_t i = 0; i < n; i++) {
    snprintf(where, sizeof where, "qualifications[%zu]", i);
    cat->n = i + 1;   /* so cat_destroy frees a partly parsed entry */
    if (qual_parse(json_array_get(arr, i), &cat->quals[i], where, sub, sizeof sub) != 0) {
      cp_err(err, errlen, "%s: %s", path, sub);
      goto err;
    }
    cat->sorted[i] = &cat->quals[i];
    if (cat->quals[i].derived)
      cat->awards[cat->nawards++] = &cat->quals[i];
  }
  qsort(cat->sorted, n, sizeof *cat->sorted, cmp_qual_ptr);
  for (size_t i = 1; i < n; i++)
    if (strcmp(cat->sorted[i - 1]->code, cat->sorted[i]->code) == 0) {
      cp_err(err, errlen, "%s: duplicate code \"%s\"", path, cat->sorted[i]->code);
      goto err;
    }
  /* Every requirement of a derived award must be a known, submittable code. */
  for (size_t a = 0; a < cat->nawards; a++) {
    const cat_qual_t *aw = cat->awards[a];
    for (size_t r = 0; r < aw->nrequires; r++) {
      const cat_qual_t *q = cat_find(cat, aw->requires[r]);
      if (q == NULL) {
        cp_err(err, errlen, "%s: award \"%s\": field \"requires\" names unknown code \"%s\"",
               path, aw->code, aw->requires[r]);
        goto err;
      }
      if (q->derived) {
        cp_err(err, errlen, "%s: award \"%s\": field \"requires\" names \"%s\", which is itself derived",
               path, aw->code, q->code);
        goto err;
      }
    }
  }
  json_decref(root);
  *out = cat;
  return 0;
err:
  json_decref(root);
  cat_destroy(&cat);
  return -1;
}

const cat_qual_t *cat_find(const cat_catalogue_t *cat, const char *code) {
  assert(cat != NULL);
  if (code == NULL)
    return NULL;
  const cat_qual_t **hit = bsearch(code, cat->sorted, cat->n, sizeof *cat->sorted, cmp_key_qual);
  return hit != NULL ? *hit : NULL;
}

size_t cat_count(const cat_catalogue_t *cat) {
  assert(cat != NULL);
  return cat->n;
}

const cat_qual_t *cat_at(const cat_catalogue_t *cat, size_t i) {
  assert(cat != NULL);
  return i < cat->n ? &cat->quals[i] : NULL;
}

size_t cat_awards_requiring(const cat_catalogue_t *cat, const char *code,
                            const cat_qual_t **out, size_t max) {
  assert(cat != NULL && code != NULL);
  size_t found = 0;
  for (size_t a = 0; a < cat->nawards; a++) {
    const cat_qual_t *aw = cat->awards[a];
    for (size_t r = 0; r < aw->nrequires; r++) {
      if (strcmp(aw->requires[r], code) != 0)
        continue;
      if (found < max && out != NULL)
        out[found] = aw;
      found++;
      break;
    }
  }
  return found < max ? found : max;
}
