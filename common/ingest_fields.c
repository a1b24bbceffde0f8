/* ingest_fields.c -- CompletionEvent fields by proto name, for the edges that read events as
 * text (the gateway's JSON, the CLI's CSV and NDJSON), so both accept the same names and values. */
#include "cp_ingest.h"

#include <strings.h>

#define STR_FIELD(f) {#f, offsetof(Carepass__V1__CompletionEvent, f)}
const ing_str_field_t ing_str_fields[ING_NSTR_FIELDS] = {
  STR_FIELD(provider_event_id), STR_FIELD(provider_id),      STR_FIELD(ni_number),
  STR_FIELD(qualification_code), STR_FIELD(completion_date), STR_FIELD(assessor_id),
  STR_FIELD(revokes_event_id),  STR_FIELD(revocation_reason),
};

char **ing_str_slot(Carepass__V1__CompletionEvent *ev, const ing_str_field_t *f) {
  return (char **)((char *)ev + f->offset);
}

int ing_kind_parse(const char *s, Carepass__V1__EventKind *out) {
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
