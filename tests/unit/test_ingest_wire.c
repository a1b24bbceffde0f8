/* test_ingest_wire.c -- ing_wire_check (common/ingest_wire.c): NUL bytes and invalid UTF-8 in
 * the string fields of a packed SubmitRequest are found per event, from the wire bytes, even
 * though protobuf-c's unpacked strings stop at the NUL. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cp_codec.h"
#include "cp_ingest.h"

/* A valid completion event; tests change one field at a time. */
static Carepass__V1__CompletionEvent good(char *id) {
  Carepass__V1__CompletionEvent ev = CAREPASS__V1__COMPLETION_EVENT__INIT;
  ev.provider_event_id = id;
  ev.ni_number = "AB123456C";
  ev.qualification_code = "CC-STD-01";
  ev.completion_date = "2024-05-01";
  ev.assessor_id = "ASR-7";
  return ev;
}

/* Pack a request of n events; then replace the first occurrence of `from` in the bytes with
 * `to` (same length), as a hostile client would send it. */
static uint8_t *pack_patched(Carepass__V1__CompletionEvent *evs, size_t n, const char *rid,
                             const char *from, const char *to, size_t tolen, size_t *len) {
  Carepass__V1__CompletionEvent **p = calloc(n, sizeof *p);
  for (size_t i = 0; i < n; i++) p[i] = &evs[i];
  Carepass__V1__SubmitRequest sr = CAREPASS__V1__SUBMIT_REQUEST__INIT;
  sr.events = p;
  sr.n_events = n;
  sr.request_id = (char *)rid;
  uint8_t *buf = NULL;
  assert_int_equal(cp_pb_pack(&sr.base, &buf, len), 0);
  free(p);
  if (from != NULL) {
    assert_int_equal(strlen(from), tolen);
    uint8_t *hit = memmem(buf, *len, from, tolen);
    assert_non_null(hit);
    memcpy(hit, to, tolen);
  }
  return buf;
}

static void check(const uint8_t *buf, size_t len, size_t n, ing_text_fault_t *f, ing_text_fault_t *rq) {
  assert_int_equal(ing_wire_check(buf, len, n, f, rq), 0);
  /* protobuf-c agrees it is a request of n events (the walk runs after a successful unpack) */
  Carepass__V1__SubmitRequest *sr = (Carepass__V1__SubmitRequest *)protobuf_c_message_unpack(
      &carepass__v1__submit_request__descriptor, NULL, len, buf);
  assert_non_null(sr);
  assert_int_equal(sr->n_events, n);
  protobuf_c_message_free_unpacked(&sr->base, NULL);
}

static void test_clean_request(void **state) {
  (void)state;
  Carepass__V1__CompletionEvent evs[2] = {good("ev-1"), good("ev-2")};
  evs[1].assessor_id = "Jos\xc3\xa9"; /* UTF-8 that is not ASCII is fine */
  size_t len = 0;
  uint8_t *buf = pack_patched(evs, 2, "r1", NULL, NULL, 0, &len);
  ing_text_fault_t f[2], rq;
  check(buf, len, 2, f, &rq);
  assert_int_equal(f[0].reason, CP_OK);
  assert_int_equal(f[1].reason, CP_OK);
  assert_int_equal(rq.reason, CP_OK);
  assert_null(f[0].field);
  free(buf);
}

static void test_nul_is_found_per_event(void **state) {
  (void)state;
  Carepass__V1__CompletionEvent evs[3] = {good("ev-1"), good("ev-2"), good("ev-3")};
  evs[1].assessor_id = "ASR-X7";
  size_t len = 0;
  uint8_t *buf = pack_patched(evs, 3, "r1", "ASR-X7", "ASR\0X7", 6, &len);
  ing_text_fault_t f[3], rq;
  check(buf, len, 3, f, &rq);
  assert_int_equal(f[0].reason, CP_OK);
  assert_int_equal(f[1].reason, CP_R_NUL_IN_STRING);
  assert_string_equal(f[1].field, "assessor_id");
  assert_int_equal(f[2].reason, CP_OK);
  assert_int_equal(rq.reason, CP_OK);
  /* what protobuf-c hands on is the truncation: only the wire shows the NUL */
  Carepass__V1__SubmitRequest *sr = (Carepass__V1__SubmitRequest *)protobuf_c_message_unpack(
      &carepass__v1__submit_request__descriptor, NULL, len, buf);
  assert_string_equal(sr->events[1]->assessor_id, "ASR");
  protobuf_c_message_free_unpacked(&sr->base, NULL);
  free(buf);
}

static void test_invalid_utf8_in_every_string_field(void **state) {
  (void)state;
  static const char *fields[] = {"provider_event_id", "provider_id", "ni_number", "qualification_code",
                                 "completion_date", "assessor_id", "revokes_event_id", "revocation_reason"};
  for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++) {
    Carepass__V1__CompletionEvent ev = good("ev-1");
    /* a marker in field k (its own value), then one byte of it made invalid */
    char **slot = NULL;
    for (size_t i = 0; i < ING_NSTR_FIELDS; i++)
      if (strcmp(ing_str_fields[i].name, fields[k]) == 0) slot = ing_str_slot(&ev, &ing_str_fields[i]);
    assert_non_null(slot);
    *slot = "ZZMARKZZ";
    size_t len = 0;
    uint8_t *buf = pack_patched(&ev, 1, "r1", "ZZMARKZZ", "ZZMA\xffKZZ", 8, &len);
    ing_text_fault_t f[1], rq;
    check(buf, len, 1, f, &rq);
    assert_int_equal(f[0].reason, CP_R_INVALID_UTF8);
    assert_string_equal(f[0].field, fields[k]);
    free(buf);
  }
}

static void test_request_id(void **state) {
  (void)state;
  Carepass__V1__CompletionEvent ev = good("ev-1");
  size_t len = 0;
  uint8_t *buf = pack_patched(&ev, 1, "req-QQ", "req-QQ", "req-\xc3(", 6, &len);
  ing_text_fault_t f[1], rq;
  check(buf, len, 1, f, &rq);
  assert_int_equal(f[0].reason, CP_OK);
  assert_int_equal(rq.reason, CP_R_INVALID_UTF8);
  assert_string_equal(rq.field, "request_id");
  free(buf);
  buf = pack_patched(&ev, 1, "req-QQ", "req-QQ", "req-\0Q", 6, &len);
  check(buf, len, 1, f, &rq);
  assert_int_equal(rq.reason, CP_R_NUL_IN_STRING);
  free(buf);
}

static void test_framing_that_does_not_match(void **state) {
  (void)state;
  Carepass__V1__CompletionEvent evs[2] = {good("ev-1"), good("ev-2")};
  size_t len = 0;
  uint8_t *buf = pack_patched(evs, 2, "r1", NULL, NULL, 0, &len);
  ing_text_fault_t f[2], rq;
  assert_int_equal(ing_wire_check(buf, len, 1, f, &rq), -1);     /* more events than said */
  assert_int_equal(ing_wire_check(buf, len - 1, 2, f, &rq), -1); /* cut short */
  const uint8_t group[] = {0x0b};                                 /* field 1, start group */
  assert_int_equal(ing_wire_check(group, sizeof group, 0, f, &rq), -1);
  const uint8_t longvar[] = {0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
  assert_int_equal(ing_wire_check(longvar, sizeof longvar, 0, f, &rq), -1);
  free(buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_clean_request),
      cmocka_unit_test(test_nul_is_found_per_event),
      cmocka_unit_test(test_invalid_utf8_in_every_string_field),
      cmocka_unit_test(test_request_id),
      cmocka_unit_test(test_framing_that_does_not_match),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
