/* ascwds.c -- carepass records as lines of ASC-WDS's training bulk-upload file (see cp_ascwds.h). */
#include "cp_ascwds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_dates.h"
#include "cp_json.h"
#include "cp_utf8.h"

#define ASCWDS_NAME_MAX 120     /* an ASC-WDS category name */

/* One mapping of the file. */
typedef struct {
  char code[CAT_CODE_MAX];       // carepass qualification code
  int budi;                      // its ASC-WDS bulk-upload category code
  char name[ASCWDS_NAME_MAX];    // the ASC-WDS category's name
} ascwds_entry_t;

struct ascwds_map {
  ascwds_entry_t *e;   // the mappings, in file order
  size_t n;            // how many
};

static const ascwds_entry_t *find(const ascwds_map_t *m, const char *code) {
  if (m == NULL || code == NULL) return NULL;
  for (size_t i = 0; i < m->n; i++)
    if (strcmp(m->e[i].code, code) == 0) return &m->e[i];
  return NULL;
}

/* A positive integer field at most max. */
static int int_field(const json_t *o, const char *name, int max, int *out, const char *where, char *err,
                     size_t errlen) {
  const json_t *v = json_object_get(o, name);
  if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > max)
    return cp_err(err, errlen, "%s: field \"%s\" must be a whole number from 1 to %d", where, name, max);
  *out = (int)json_integer_value(v);
  return 0;
}

static int str_field(const json_t *o, const char *name, char *out, size_t max, const char *where, char *err,
                     size_t errlen) {
  const json_t *v = json_object_get(o, name);
  if (!json_is_string(v) || json_string_length(v) == 0)
    return cp_err(err, errlen, "%s: field \"%s\" must be a non-empty string", where, name);
  if (out != NULL && json_string_length(v) >= max)
    return cp_err(err, errlen, "%s: field \"%s\" is longer than %zu bytes", where, name, max - 1);
  if (out != NULL) snprintf(out, max, "%s", json_string_value(v));
  return 0;
}

static int entry_parse(const json_t *o, const cat_catalogue_t *cat, ascwds_entry_t *e, const char *where, char *err,
                       size_t errlen) {
  static const char *const known[] = {"code", "asc_wds_id", "budi", "name", "source"};
  int id;
  if (cp_json_check_fields(o, known, CP_ARRAY_LEN(known), where, err, errlen) != 0 ||
      str_field(o, "code", e->code, sizeof e->code, where, err, errlen) != 0 ||
      int_field(o, "asc_wds_id", 9999, &id, where, err, errlen) != 0 ||
      int_field(o, "budi", 9999, &e->budi, where, err, errlen) != 0 ||
      str_field(o, "name", e->name, sizeof e->name, where, err, errlen) != 0 ||
      str_field(o, "source", NULL, 0, where, err, errlen) != 0)
    return -1;
  const cat_qual_t *q = cat_find(cat, e->code);
  if (q == NULL) return cp_err(err, errlen, "%s: field \"code\" is not a code of the catalogue", where);
  if (strcmp(q->kind, "cpd") != 0 && strcmp(q->kind, "refresher") != 0)
    return cp_err(err, errlen, "%s: \"%s\" is a %s, not training (cpd or refresher): ASC-WDS keeps it elsewhere",
                  where, e->code, q->kind);
  return 0;
}

int ascwds_load(const char *path, const cat_catalogue_t *cat, ascwds_map_t **out, char *err, size_t errlen) {
  *out = NULL;
  json_t *arr;
  json_t *root = cp_json_load_list(path, "categories", true, &arr, err, errlen);
  if (root == NULL) return -1;
  static const char *const top[] = {"version", "source", "categories"};
  char sub[CP_ERRLEN];
  ascwds_map_t *m = cp_xcalloc(1, sizeof *m);
  if (cp_json_check_fields(root, top, CP_ARRAY_LEN(top), "the file", sub, sizeof sub) != 0) {
    cp_err(err, errlen, "%s: %s", path, sub);
    goto err;
  }
  if (json_array_size(arr) > ASCWDS_MAP_MAX) {
    cp_err(err, errlen, "%s: more than %d categories", path, ASCWDS_MAP_MAX);
    goto err;
  }
  m->e = cp_xcalloc(json_array_size(arr), sizeof *m->e);
  for (size_t i = 0; i < json_array_size(arr); i++) {
    char where[48];
    snprintf(where, sizeof where, "categories[%zu]", i);
    if (entry_parse(json_array_get(arr, i), cat, &m->e[i], where, sub, sizeof sub) != 0) {
      cp_err(err, errlen, "%s: %s", path, sub);
      goto err;
    }
    if (find(m, m->e[i].code) != NULL) {
      cp_err(err, errlen, "%s: %s: \"%s\" is mapped twice", path, where, m->e[i].code);
      goto err;
    }
    m->n = i + 1;
  }
  json_decref(root);
  *out = m;
  return 0;
err:
  json_decref(root);
  ascwds_destroy(&m);
  return -1;
}

void ascwds_destroy(ascwds_map_t **mp) {
  if (mp == NULL || *mp == NULL) return;
  free((*mp)->e);
  free(*mp);
  *mp = NULL;
}

int ascwds_category(const ascwds_map_t *m, const char *code) {
  const ascwds_entry_t *e = find(m, code);
  return e != NULL ? e->budi : 0;
}

const char *ascwds_category_name(const ascwds_map_t *m, const char *code) {
  const ascwds_entry_t *e = find(m, code);
  return e != NULL ? e->name : NULL;
}

bool ascwds_id_ok(const char *s) {
  size_t n = s != NULL ? strlen(s) : 0;
  if (n == 0 || n > ASCWDS_ID_MAX || s[0] == ' ' || s[n - 1] == ' ') return false;
  for (size_t i = 0; i < n; i++)
    if (s[i] < 0x20 || s[i] > 0x7e || s[i] == ',' || s[i] == '"') return false;
  return true;
}

/* Characters (UTF-8 code points) in s; s must be valid UTF-8. */
static size_t chars(const char *s) {
  size_t n = 0;
  for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
  return n;
}

/* Byte length of the first max characters of s. */
static size_t prefix_bytes(const char *s, size_t max) {
  size_t i = 0, n = 0;
  while (s[i]) {
    if (((unsigned char)s[i] & 0xC0) != 0x80) {
      if (n == max) break;
      n++;
    }
    i++;
  }
  return i;
}

/* Append field s[0..len) as RFC 4180 CSV (quoted when it holds a comma, quote, CR or LF). */
static bool put_field(char *out, size_t outlen, size_t *at, const char *s, size_t len, bool first) {
  bool quote = false;
  for (size_t i = 0; i < len && !quote; i++) quote = s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n';
  size_t need = (first ? 0 : 1) + len + (quote ? 2 : 0);
  for (size_t i = 0; quote && i < len; i++) need += s[i] == '"';
  if (*at + need + 3 > outlen) return false;   /* + CRLF + NUL */
  if (!first) out[(*at)++] = ',';
  if (quote) out[(*at)++] = '"';
  for (size_t i = 0; i < len; i++) {
    if (quote && s[i] == '"') out[(*at)++] = '"';
    out[(*at)++] = s[i];
  }
  if (quote) out[(*at)++] = '"';
  out[*at] = '\0';
  return true;
}

/* A day as DD/MM/YYYY. */
static void uk_date(int32_t day, char out[11]) {
  char iso[11];
  cp_date_format(day, iso);   /* YYYY-MM-DD */
  snprintf(out, 11, "%.2s/%.2s/%.4s", iso + 8, iso + 5, iso);
}

int ascwds_format(const ascwds_line_t *l, char *out, size_t outlen, char *err, size_t errlen) {
  if (!ascwds_id_ok(l->estid))
    return cp_err(err, errlen, "the workplace id (LOCALESTID) must be 1 to %d printable characters without commas "
                  "or quotes", ASCWDS_ID_MAX);
  if (!ascwds_id_ok(l->workerid))
    return cp_err(err, errlen, "the worker id (UNIQUEWORKERID) must be 1 to %d printable characters without commas "
                  "or quotes", ASCWDS_ID_MAX);
  if (l->category < 1) return cp_err(err, errlen, "the record has no ASC-WDS training category");
  const char *desc = l->description != NULL ? l->description : "";
  const char *notes = l->notes != NULL ? l->notes : "";
  if (!cp_utf8_valid(desc, strlen(desc)) || !cp_utf8_valid(notes, strlen(notes)))
    return cp_err(err, errlen, "the description or notes are not UTF-8 text");
  if (chars(notes) > ASCWDS_NOTES_MAX) return cp_err(err, errlen, "the notes are longer than %d characters", ASCWDS_NOTES_MAX);
  if (l->expires != ASCWDS_NO_EXPIRY && l->expires < l->completed)
    return cp_err(err, errlen, "the expiry date is before the completion date");
  char cat[16], done[11], exp[11] = "";
  snprintf(cat, sizeof cat, "%d", l->category);
  uk_date(l->completed, done);
  if (l->expires != ASCWDS_NO_EXPIRY) uk_date(l->expires, exp);
  static const char *const acc[] = {"", "1", "0", "999"};
  const char *a = acc[l->accredited <= ASCWDS_ACCREDITED_UNKNOWN ? l->accredited : 0];
  size_t at = 0;
  if (!put_field(out, outlen, &at, l->estid, strlen(l->estid), true) ||
      !put_field(out, outlen, &at, l->workerid, strlen(l->workerid), false) ||
      !put_field(out, outlen, &at, cat, strlen(cat), false) ||
      !put_field(out, outlen, &at, desc, prefix_bytes(desc, ASCWDS_DESCRIPTION_MAX), false) ||
      !put_field(out, outlen, &at, done, strlen(done), false) ||
      !put_field(out, outlen, &at, exp, strlen(exp), false) ||
      !put_field(out, outlen, &at, a, strlen(a), false) ||
      !put_field(out, outlen, &at, notes, strlen(notes), false))
    return cp_err(err, errlen, "the line does not fit in %zu bytes", outlen);
  out[at++] = '\r';
  out[at++] = '\n';
  out[at] = '\0';
  return (int)at;
}
