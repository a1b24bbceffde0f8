/* cp_json.h -- strict loading of carepass's versioned JSON data files (catalogue.json,
 * providers.json, employers.json): the file, its "version": 1 envelope and the objects inside it. */
#ifndef CP_JSON_H
#define CP_JSON_H

#include <jansson.h>

#include "cp_util.h"

/* Load the JSON file at `path` (duplicate keys refused): an object with "version": 1
 * holding the array `field`, which must be non-empty when `nonempty`. Returns the root
 * (the caller json_decrefs it) and sets *arr to the array inside it; NULL with err
 * "PATH: ..." (the line and column of a syntax error) otherwise. */
json_t *cp_json_load_list(const char *path, const char *field, bool nonempty, json_t **arr,
                          char *err, size_t errlen);

/* 0 when e is a JSON object whose keys are all among known[0..nknown-1]; otherwise -1
 * with err "WHERE: must be a JSON object" or "WHERE: unknown field \"KEY\"". */
int cp_json_check_fields(const json_t *e, const char *const *known, size_t nknown, const char *where,
                         char *err, size_t errlen) CP_WUR;

/* Optional string field `name` of object e into dst (absent = ""), at most max-1 bytes, no NUL
 * inside; -1 with err "WHERE: field \"NAME\" ..." otherwise. */
int cp_json_opt_string(const json_t *e, const char *name, char *dst, size_t max, const char *where, char *err,
                       size_t errlen) CP_WUR;

/* A registry id (provider, employer): 1..max-1 characters of [A-Za-z0-9._-]. */
bool cp_json_id_valid(const char *s, size_t max);

/* A registry's webhook URL ("" = none) judged by common/url_check.c with the operator's allow
 * list; -1 with err "WHERE: field \"FIELD\": <why>". */
int cp_json_url_check(const char *url, const char *field, const char *where, char *err, size_t errlen) CP_WUR;

#endif
