/* cp_json.h -- strict loading of carepass's versioned JSON data files (catalogue.json,
 * providers.json): the file, its "version": 1 envelope and the objects inside it. */
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

#endif
