/* input_ndjson.c -- one NDJSON line (a JSON object of CompletionEvent fields) into an event. */
#include "cli.h"

#include <jansson.h>
#include <string.h>

int cli_ndjson_parse_line(const char *line, cli_event_t *ev, char *err, size_t errlen) {
  json_error_t jerr;
  json_t *obj = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
  if (obj == NULL) return cp_err(err, errlen, "not valid JSON: %s (column %d)", jerr.text, jerr.column);
  if (!json_is_object(obj)) {
    cp_err(err, errlen, "expected a JSON object, one event per line");
    goto err;
  }
  const char *key;
  json_t *val;
  json_object_foreach(obj, key, val) {
    char num[32];
    const char *text;
    if (json_is_string(val)) {
      text = json_string_value(val);
      if (strlen(text) != json_string_length(val)) {
        cp_err(err, errlen, "field %.64s contains a NUL character", key);
        goto err;
      }
    } else if (json_is_null(val)) {
      text = "";
    } else if (strcmp(key, "kind") == 0 && json_is_integer(val)) {
      /* the enum's number, as a protobuf JSON mapping would also allow */
      json_int_t k = json_integer_value(val);
      if (k == CAREPASS__V1__EVENT_KIND__EVENT_KIND_COMPLETION) text = "completion";
      else if (k == CAREPASS__V1__EVENT_KIND__EVENT_KIND_REVOCATION) text = "revocation";
      else {
        snprintf(num, sizeof num, "%lld", (long long)k);
        text = num;
      }
    } else {
      if (!cli_event_field_known(key)) continue; /* unknown field: ignored */
      cp_err(err, errlen, "field %.64s must be a string", key);
      goto err;
    }
    if (cli_event_set(ev, key, text, err, errlen) < 0) goto err;
  }
  json_decref(obj);
  return 0;
err:
  json_decref(obj);
  return -1;
}
