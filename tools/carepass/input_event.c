/* input_event.c -- one event read from a CSV cell row or an NDJSON object: field setters and value parsers. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#include "cp_ingest.h"

void cli_event_init(cli_event_t *ev) {
  memset(ev, 0, sizeof *ev);
  carepass__v1__completion_event__init(&ev->pb);
  ev->pb.kind = CAREPASS__V1__EVENT_KIND__EVENT_KIND_COMPLETION;
  /* protobuf-c's init points strings at a shared "" constant: never freed (see clear) */
}

void cli_event_clear(cli_event_t *ev) {
  for (size_t i = 0; i < ING_NSTR_FIELDS; i++) {
    char **s = ing_str_slot(&ev->pb, &ing_str_fields[i]);
    if (*s != NULL && *s != protobuf_c_empty_string) free(*s);
  }
  free(ev->pb.evidence_hash.data);
  cli_event_init(ev);
}

bool cli_event_field_known(const char *name) {
  for (size_t i = 0; i < ING_NSTR_FIELDS; i++)
    if (strcmp(name, ing_str_fields[i].name) == 0) return true;
  return strcmp(name, "evidence_hash") == 0 || strcmp(name, "kind") == 0;
}

int cli_hex32(const char *hex, uint8_t out[32]) {
  if (hex == NULL || strlen(hex) != 64) return -1;
  for (size_t i = 0; i < 32; i++) {
    unsigned v = 0;
    for (size_t j = 0; j < 2; j++) {
      char c = hex[2 * i + j];
      unsigned d;
      if (c >= '0' && c <= '9') d = (unsigned)(c - '0');
      else if (c >= 'a' && c <= 'f') d = (unsigned)(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') d = (unsigned)(c - 'A' + 10);
      else return -1;
      v = v * 16 + d;
    }
    out[i] = (uint8_t)v;
  }
  return 0;
}

int cli_event_set(cli_event_t *ev, const char *field, const char *value, char *err, size_t errlen) {
  for (size_t i = 0; i < ING_NSTR_FIELDS; i++) {
    if (strcmp(field, ing_str_fields[i].name) != 0) continue;
    char **s = ing_str_slot(&ev->pb, &ing_str_fields[i]);
    if (*s != NULL && *s != protobuf_c_empty_string) free(*s);
    *s = cp_strdup(value);
    return 0;
  }
  if (strcmp(field, "evidence_hash") == 0) {
    uint8_t h[32];
    if (value[0] != '\0' && cli_hex32(value, h) != 0)
      return cp_err(err, errlen, "evidence_hash must be 64 hex digits (a SHA-256), got \"%.70s\"", value);
    free(ev->pb.evidence_hash.data);
    ev->pb.evidence_hash.data = NULL;
    ev->pb.evidence_hash.len = 0;
    if (value[0] == '\0') return 0;
    ev->pb.evidence_hash.data = cp_xmalloc(32);
    memcpy(ev->pb.evidence_hash.data, h, 32);
    ev->pb.evidence_hash.len = 32;
    return 0;
  }
  if (strcmp(field, "kind") == 0) {
    Carepass__V1__EventKind k;
    if (ing_kind_parse(value, &k) != 0)
      return cp_err(err, errlen, "kind must be \"completion\" or \"revocation\", got \"%.40s\"", value);
    ev->pb.kind = k;
    return 0;
  }
  return 1;
}
