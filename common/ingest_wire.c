/* ingest_wire.c -- text faults of the string fields of a packed SubmitRequest, read from the wire
 * bytes (see cp_ingest.h).
 *
 * Why walk the wire rather than the unpacked message: protobuf-c copies a string field's bytes
 * and NUL-terminates them without keeping the length, so after unpacking "a\0b" reads as "a" and
 * the NUL (and whatever follows it) is gone. Only the packed bytes still carry each string's
 * length. Re-packing and comparing sizes is no test either: the size also changes for
 * non-canonical varints, defaults sent explicitly and repeated scalar fields. So this walks the
 * request once over the known field numbers (SubmitRequest.events = 1, request_id = 3, and the
 * string fields of CompletionEvent) and checks each string's bytes: no NUL, well-formed UTF-8.
 * It runs on bytes protobuf-c has already unpacked, so the framing is known to be sound; it
 * still checks every bound and answers -1 rather than trust that. */
#include "cp_ingest.h"

#include <string.h>

#include "cp_utf8.h"

/* A read position in a packed message. */
typedef struct {
  const uint8_t *p;    // next byte
  const uint8_t *end;  // one past the last byte
} rd_t;

static int rd_varint(rd_t *r, uint64_t *v) {
  uint64_t x = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (r->p >= r->end) return -1;
    uint8_t b = *r->p++;
    x |= (uint64_t)(b & 0x7F) << shift;
    if ((b & 0x80) == 0) {
      *v = x;
      return 0;
    }
  }
  return -1;
}

/* Read one field's key; for a length-delimited field data and len give its payload, otherwise the
 * value is skipped. */
static int rd_field(rd_t *r, uint32_t *field, const uint8_t **data, size_t *len) {
  uint64_t key = 0, v = 0;
  if (rd_varint(r, &key) != 0) return -1;
  *field = (uint32_t)(key >> 3);
  *data = NULL;
  *len = 0;
  size_t skip = 0;
  switch (key & 7) {
  case 0: return rd_varint(r, &v);
  case 1: skip = 8; break;
  case 5: skip = 4; break;
  case 2:
    if (rd_varint(r, &v) != 0) return -1;
    if (v > (uint64_t)(r->end - r->p)) return -1;
    *data = r->p;
    *len = (size_t)v;
    skip = (size_t)v;
    break;
  default: return -1; /* groups: protobuf-c refuses them too */
  }
  if (skip > (size_t)(r->end - r->p)) return -1;
  r->p += skip;
  return 0;
}

/* The verdict on one string's bytes (the first fault wins; out is left alone when clean). */
static void check_text(const char *name, const uint8_t *s, size_t len, ing_text_fault_t *out) {
  if (out->reason != CP_OK) return;
  if (memchr(s, '\0', len) != NULL) {
    *out = (ing_text_fault_t){CP_R_NUL_IN_STRING, name};
  } else if (!cp_utf8_valid(s, len)) {
    *out = (ing_text_fault_t){CP_R_INVALID_UTF8, name};
  }
}

/* Proto name of CompletionEvent string field number f, NULL for the other fields. */
static const char *event_string_field(uint32_t f) {
  switch (f) {
  case 1: return "provider_event_id";
  case 2: return "provider_id";
  case 3: return "ni_number";
  case 4: return "qualification_code";
  case 5: return "completion_date";
  case 6: return "assessor_id";
  case 9: return "revokes_event_id";
  case 10: return "revocation_reason";
  default: return NULL;
  }
}

static int check_event(const uint8_t *buf, size_t len, ing_text_fault_t *out) {
  rd_t r = {buf, buf + len};
  while (r.p < r.end) {
    uint32_t f = 0;
    const uint8_t *data = NULL;
    size_t n = 0;
    if (rd_field(&r, &f, &data, &n) != 0) return -1;
    const char *name = event_string_field(f);
    if (name != NULL && data != NULL) check_text(name, data, n, out);
  }
  return 0;
}

int ing_wire_check(const uint8_t *buf, size_t len, size_t n_events, ing_text_fault_t *faults,
                   ing_text_fault_t *request) {
  for (size_t i = 0; i < n_events; i++) faults[i] = (ing_text_fault_t){CP_OK, NULL};
  *request = (ing_text_fault_t){CP_OK, NULL};
  rd_t r = {buf, buf + len};
  size_t k = 0; /* the k-th events entry on the wire is sr->events[k] (protobuf-c appends) */
  while (r.p < r.end) {
    uint32_t f = 0;
    const uint8_t *data = NULL;
    size_t n = 0;
    if (rd_field(&r, &f, &data, &n) != 0) return -1;
    if (data == NULL) continue;
    if (f == 1) {
      if (k >= n_events || check_event(data, n, &faults[k]) != 0) return -1;
      k++;
    } else if (f == 3) {
      check_text("request_id", data, n, request);
    }
  }
  return k == n_events ? 0 : -1;
}
