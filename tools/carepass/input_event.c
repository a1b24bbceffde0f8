/* input_event.c -- one event read from a CSV cell row or an NDJSON object: field setters and value parsers. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The string fields of CompletionEvent by proto name, as offsets into the message. */
typedef struct {
  const char *name;  // proto field name (CSV header / JSON key)
  size_t offset;     // offsetof the char * in Carepass__V1__CompletionEvent
} str_field_t;

#define STR_FIELD(f) {#f, offsetof(Carepass__V1__CompletionEvent, f)}
static const str_field_t str_fields[] = {
  STR_FIELD(provider_event_id), STR_FIELD(provider_id),     STR_FIELD(ni_number),
  STR_FIELD(qualification_code), STR_FIELD(completion_date), STR_FIELD(assessor_id),
  STR_FIELD(revokes_event_id),  STR_FIELD(revocation_reason),
};

static char **str_slot(Carepass__V1__CompletionEvent *pb, size_t offset) {
  return (char **)((char *)pb + offset);
}

void cli_event_init(cli_event_t *ev) {
  memset(ev, 0, sizeof *ev);
  carepass__v1__completion_event__init(&ev->pb);
  ev->pb.kind = CAREPASS__V1__EVENT_KIND__EVENT_KIND_COMPLETION;
  /* protobuf-c's init points strings at a shared "" constant: never freed (see clear) */
}

void cli_event_clear(cli_event_t *ev) {
  for (size_t i = 0; i < CP_ARRAY_LEN(str_fields); i++) {
    char **s = str_slot(&ev->pb, str_fields[i].offset);
    if (*s != NULL && *s != protobuf_c_empty_string) free(*s);
  }
  free(ev->pb.evidence_hash.data);
  cli_event_init(ev);
}

bool cli_event_field_known(const char *name) {
  for (size_t i = 0; i < CP_ARRAY_LEN(str_fields); i++)
    if (strcmp(name, str_fields[i].name) == 0) return true;
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

int cli_kind_parse(const char *s, Carepass__V1__EventKind *out) {
  if (s[0] == '\0' || strcasecmp(s, "completion") == 0 || strcasecmp(s, "EVENT_KIND_COMPLETION") == 0) {
    *out = CAREPASS__V1__EVENT_KIND__EVENT_KIND_COMPLETION;
    return 0;
  }
  if (strcasecmp(s, "revocation") == 0 || strcasecmp(s, "EVENT_KIND_REVOCATION") == 0) {
    *out = CAREPASS__V1__EVENT_KIND__EVENT_KIND_REVOCATION;
    return 0;
  }
  return -1;
}

int cli_event_set(cli_event_t *ev, const char *field, const char *value, char *err, size_t errlen) {
  for (size_t i = 0; i < CP_ARRAY_LEN(str_fields); i++) {
    if (strcmp(field, str_fields[i].name) != 0) continue;
    char **s = str_slot(&ev->pb, str_fields[i].offset);
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
    if (cli_kind_parse(value, &k) != 0)
      return cp_err(err, errlen, "kind must be \"completion\" or \"revocation\", got \"%.40s\"", value);
    ev->pb.kind = k;
    return 0;
  }
  return 1;
}
