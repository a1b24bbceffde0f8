/* json_load.c -- strict loading of the versioned JSON data files (see cp_json.h). */
#include "cp_json.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "cp_url_check.h"

json_t *cp_json_load_list(const char *path, const char *field, bool nonempty, json_t **arr,
                          char *err, size_t errlen) {
  assert(path != NULL && field != NULL && arr != NULL);
  *arr = NULL;
  json_error_t jerr;
  json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
  if (root == NULL) {
    cp_err(err, errlen, "%s: line %d column %d: %s", path, jerr.line, jerr.column, jerr.text);
    return NULL;
  }
  json_t *ver = json_object_get(root, "version");
  if (!json_is_object(root) || !json_is_integer(ver) || json_integer_value(ver) != 1) {
    cp_err(err, errlen, "%s: must be an object with \"version\": 1", path);
    goto err;
  }
  json_t *a = json_object_get(root, field);
  if (!json_is_array(a) || (nonempty && json_array_size(a) == 0)) {
    cp_err(err, errlen, "%s: \"%s\" must be a %sarray", path, field, nonempty ? "non-empty " : "");
    goto err;
  }
  *arr = a;
  return root;
err:
  json_decref(root);
  return NULL;
}

int cp_json_check_fields(const json_t *e, const char *const *known, size_t nknown, const char *where,
                         char *err, size_t errlen) {
  if (!json_is_object(e))
    return cp_err(err, errlen, "%s: must be a JSON object", where);
  const char *key;
  json_t *v;
  /* json_object_foreach takes a non-const object; it only reads it */
  json_object_foreach((json_t *)e, key, v) {
    bool found = false;
    for (size_t i = 0; i < nknown && !found; i++)
      found = strcmp(key, known[i]) == 0;
    if (!found)
      return cp_err(err, errlen, "%s: unknown field \"%s\"", where, key);
  }
  return 0;
}

int cp_json_opt_string(const json_t *e, const char *name, char *dst, size_t max, const char *where, char *err,
                       size_t errlen) {
  const json_t *v = json_object_get(e, name);
  if (v == NULL) {
    dst[0] = '\0';
    return 0;
  }
  if (!json_is_string(v))
    return cp_err(err, errlen, "%s: field \"%s\" must be a string", where, name);
  if (json_string_length(v) >= max)
    return cp_err(err, errlen, "%s: field \"%s\" is longer than %zu bytes", where, name, max - 1);
  if (strlen(json_string_value(v)) != json_string_length(v))
    return cp_err(err, errlen, "%s: field \"%s\" contains a NUL character", where, name);
  snprintf(dst, max, "%s", json_string_value(v));
  return 0;
}

bool cp_json_id_valid(const char *s, size_t max) {
  size_t n = strlen(s);
  if (n == 0 || n >= max)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
          c == '_'))
      return false;
  }
  return true;
}

int cp_json_url_check(const char *url, const char *field, const char *where, char *err, size_t errlen) {
  if (url[0] == '\0')
    return 0;
  cp_url_t u;
  char why[300];
  if (cp_url_check(url, cp_url_allow_config(), &u, why, sizeof why) != 0)
    return cp_err(err, errlen, "%s: field \"%s\": %s", where, field, why);
  return 0;
}
