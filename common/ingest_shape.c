/* ingest_shape.c -- per-event shape checks of provider events: lengths, characters, dates, kinds,
 * duplicates in a batch (shared by intake and the gateway; see cp_ingest.h). */
#include "cp_ingest.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cp_crypto.h"
#include "cp_dates.h"
#include "cp_utf8.h"

/* Record the verdict `r` with a formatted sentence (and forget any NI number). */
static void reject(ing_shape_t *out, cp_reason_t r, const char *fmt, ...) CP_PRINTF(3, 4);
static void reject(ing_shape_t *out, cp_reason_t r, const char *fmt, ...) {
  out->reason = r;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(out->message, sizeof out->message, fmt, ap);
  va_end(ap);
  sodium_memzero(out->ni_norm, sizeof out->ni_norm);
}

static bool event_id_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == ':' || c == '-';
}

static bool qual_code_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

/* Is s a well-formed event id (1..64 chars of [A-Za-z0-9._:-])? */
static bool event_id_valid(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > ING_EVENT_ID_MAX) return false;
  for (size_t i = 0; i < n; i++)
    if (!event_id_char(s[i])) return false;
  return true;
}

/* Check an event id field named `field`; false (with out filled) when it is bad. */
static bool check_event_id(const char *field, const char *s, ing_shape_t *out) {
  size_t n = strlen(s);
  if (n == 0) {
    reject(out, CP_R_MISSING_FIELD, "%s is required (1 to %d characters)", field, ING_EVENT_ID_MAX);
    return false;
  }
  if (n > ING_EVENT_ID_MAX) {
    reject(out, CP_R_FIELD_TOO_LONG, "%s is %zu characters; the limit is %d", field, n,
           ING_EVENT_ID_MAX);
    return false;
  }
  for (size_t i = 0; i < n; i++) {
    if (!event_id_char(s[i])) {
      reject(out, CP_R_INVALID_EVENT_ID,
             "%s may only contain letters, digits and . _ : - (bad character at position %zu)", field,
             i + 1);
      return false;
    }
  }
  return true;
}

/* Check a string no longer than max; false (with out filled) when too long. */
static bool check_max(const char *field, const char *s, size_t max, ing_shape_t *out) {
  size_t n = strlen(s);
  if (n > max) {
    reject(out, CP_R_FIELD_TOO_LONG, "%s is %zu characters; the limit is %zu", field, n, max);
    return false;
  }
  return true;
}

void ing_shape_event(const Carepass__V1__CompletionEvent *ev, const char *provider_id,
                        int32_t today, ing_shape_t *out) {
  memset(out, 0, sizeof *out);
  out->reason = CP_OK;

  /* Every string field is UTF-8 before anything else is judged: a register entry that is not
   * parses in no standard protobuf library. (A NUL inside a string is invisible here, where
   * strings are C strings: the edges that still know lengths report it, see ing_wire_check.) */
  for (size_t i = 0; i < ING_NSTR_FIELDS; i++) {
    const char *s = *ing_str_slot((Carepass__V1__CompletionEvent *)ev, &ing_str_fields[i]);
    if (s != NULL && !cp_utf8_valid(s, strlen(s))) {
      reject(out, CP_R_INVALID_UTF8, "%s is not valid UTF-8; send it as UTF-8 and send the event again",
             ing_str_fields[i].name);
      return;
    }
  }

  if (!check_event_id("provider_event_id", ev->provider_event_id, out)) return;

  if (ev->provider_id[0] != '\0' && strcmp(ev->provider_id, provider_id) != 0) {
    /* do not echo what was sent: it may be anything */
    reject(out, CP_R_PROVIDER_MISMATCH,
           "provider_id names another provider than the authenticated one (%s); leave it empty or send %s",
           provider_id, provider_id);
    return;
  }

  /* The NI number is personal data: never copy it into a message. */
  if (ev->ni_number[0] == '\0') {
    reject(out, CP_R_MISSING_FIELD, "ni_number is required (the worker's National Insurance number)");
    return;
  }
  if (strlen(ev->ni_number) > 32 || cp_ni_normalise(ev->ni_number, out->ni_norm) != 0) {
    reject(out, CP_R_INVALID_WORKER_ID,
           "ni_number is not a valid National Insurance number (two letters, six digits, A-D)");
    return;
  }

  size_t qn = strlen(ev->qualification_code);
  if (qn == 0) {
    reject(out, CP_R_MISSING_FIELD, "qualification_code is required (1 to %d characters)",
           ING_QUAL_CODE_MAX);
    return;
  }
  if (!check_max("qualification_code", ev->qualification_code, ING_QUAL_CODE_MAX, out)) return;
  for (size_t i = 0; i < qn; i++) {
    if (!qual_code_char(ev->qualification_code[i])) {
      /* no catalogue code has such characters, so this is the verdict verify would give */
      reject(out, CP_R_UNKNOWN_QUALIFICATION,
             "qualification_code may only contain A-Z, 0-9 and - (bad character at position %zu)", i + 1);
      return;
    }
  }

  if (ev->completion_date[0] == '\0') {
    reject(out, CP_R_MISSING_FIELD, "completion_date is required (YYYY-MM-DD)");
    return;
  }
  int32_t day = 0, oldest = 0;
  if (strlen(ev->completion_date) != 10 || cp_date_parse(ev->completion_date, &day) != 0) {
    reject(out, CP_R_INVALID_DATE, "completion_date is not a real date in the form YYYY-MM-DD");
    return;
  }
  if (day > today) {
    reject(out, CP_R_DATE_IN_FUTURE, "completion_date %s is after today", ev->completion_date);
    return;
  }
  if (cp_date_parse(ING_OLDEST_DATE, &oldest) == 0 && day < oldest) {
    reject(out, CP_R_DATE_TOO_OLD, "completion_date %s is before %s, the oldest date accepted",
           ev->completion_date, ING_OLDEST_DATE);
    return;
  }

  if (!check_max("assessor_id", ev->assessor_id, ING_ASSESSOR_MAX, out)) return;

  if (ev->evidence_hash.len != 0 && ev->evidence_hash.len != ING_EVIDENCE_HASH_BYTES) {
    reject(out, CP_R_INVALID_EVIDENCE_HASH,
           "evidence_hash is %zu bytes; it must be empty or a %d-byte SHA-256", ev->evidence_hash.len,
           ING_EVIDENCE_HASH_BYTES);
    return;
  }

  switch (ev->kind) {
  case CAREPASS__V1__EVENT_KIND__EVENT_KIND_UNSPECIFIED:
  case CAREPASS__V1__EVENT_KIND__EVENT_KIND_COMPLETION:
    if (ev->revokes_event_id[0] != '\0' || ev->revocation_reason[0] != '\0') {
      reject(out, CP_R_INVALID_KIND,
             "revokes_event_id and revocation_reason are only allowed when kind is REVOCATION");
      return;
    }
    break;
  case CAREPASS__V1__EVENT_KIND__EVENT_KIND_REVOCATION:
    if (!check_event_id("revokes_event_id", ev->revokes_event_id, out)) return;
    if (ev->revocation_reason[0] == '\0') {
      reject(out, CP_R_MISSING_FIELD, "revocation_reason is required when kind is REVOCATION");
      return;
    }
    if (!check_max("revocation_reason", ev->revocation_reason, ING_REASON_CODE_MAX, out)) return;
    break;
  default:
    reject(out, CP_R_INVALID_KIND, "kind %d is unknown; use COMPLETION (1) or REVOCATION (2)",
           (int)ev->kind);
    return;
  }
}

/* Sort key for duplicate detection: an event's id and its position in the batch. */
typedef struct {
  const char *id;  // provider_event_id
  size_t pos;      // index in the batch
} id_pos_t;

static int id_pos_cmp(const void *a, const void *b) {
  const id_pos_t *x = a, *y = b;
  int c = strcmp(x->id, y->id);
  if (c != 0) return c;
  return (x->pos > y->pos) - (x->pos < y->pos);
}

void ing_shape_batch(Carepass__V1__CompletionEvent *const *events, size_t n,
                        const char *provider_id, int32_t today, ing_shape_t *out) {
  for (size_t i = 0; i < n; i++) ing_shape_event(events[i], provider_id, today, &out[i]);
  if (n < 2) return;

  /* O(n log n): sort (id, position) and flag every later occurrence of an id.
   * Only well-formed ids take part; a bad id already has its own verdict. */
  id_pos_t *v = cp_xcalloc(n, sizeof *v);
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    if (event_id_valid(events[i]->provider_event_id)) v[m++] = (id_pos_t){events[i]->provider_event_id, i};
  qsort(v, m, sizeof *v, id_pos_cmp);
  size_t k = 0;
  while (k < m) {
    size_t j = k + 1;
    for (; j < m && strcmp(v[j].id, v[k].id) == 0; j++)
      reject(&out[v[j].pos], CP_R_DUPLICATE_IN_BATCH,
             "provider_event_id is also used by event %zu of this batch; each id may appear once",
             v[k].pos + 1);
    k = j;
  }
  free(v);
}

void ing_shape_wipe(ing_shape_t *out, size_t n) {
  for (size_t i = 0; i < n; i++) sodium_memzero(out[i].ni_norm, sizeof out[i].ni_norm);
}
