/* test_intake_shape.c -- the per-event shape checks of provider events (common/ingest_shape.c, used by
 * intake and the gateway): every reason code, limits, batch duplicates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

/* The module under test is pure and lives in libcarepass (cp_ingest.h). */
#include <sodium.h>
#include "cp_dates.h"
#include "cp_ingest.h"

#define PROVIDER "PRV-0001"
#define TODAY "2026-11-22"

static int32_t today;          // day number of TODAY
static uint8_t hash32[32];     // a 32-byte evidence hash
static uint8_t hash33[33];     // one byte too many

/* A valid completion event; tests change one field at a time. */
static Carepass__V1__CompletionEvent good(void) {
  Carepass__V1__CompletionEvent ev = CAREPASS__V1__COMPLETION_EVENT__INIT;
  ev.provider_event_id = "ev-1";
  ev.ni_number = "AB123456C";
  ev.qualification_code = "CC-STD-01";
  ev.completion_date = "2024-05-01";
  ev.assessor_id = "ASR-7";
  return ev;
}

static ing_shape_t check(const Carepass__V1__CompletionEvent *ev) {
  ing_shape_t out;
  ing_shape_event(ev, PROVIDER, today, &out);
  return out;
}

/* Assert the verdict and that the message names `field` (when given). */
static void expect(const Carepass__V1__CompletionEvent *ev, cp_reason_t r, const char *field) {
  ing_shape_t out = check(ev);
  if (out.reason != r)
    fail_msg("expected %s, got %s (%s)", cp_reason_code(r), cp_reason_code(out.reason), out.message);
  if (r != CP_OK) {
    assert_true(out.message[0] != '\0');
    if (field != NULL && strstr(out.message, field) == NULL)
      fail_msg("message \"%s\" does not name %s", out.message, field);
    assert_string_equal(out.ni_norm, ""); /* no NI number kept for a rejected event */
  }
}

static char *repeat(char *buf, char c, size_t n) {
  memset(buf, c, n);
  buf[n] = '\0';
  return buf;
}

static int setup(void **state) {
  (void)state;
  assert_int_equal(cp_date_parse(TODAY, &today), 0);
  memset(hash32, 0xab, sizeof hash32);
  memset(hash33, 0xcd, sizeof hash33);
  return 0;
}

static void test_good_event_passes(void **state) {
  (void)state;
  Carepass__V1__CompletionEvent ev = good();
  ing_shape_t out = check(&ev);
  assert_int_equal(out.reason, CP_OK);
  assert_string_equal(out.message, "");
  assert_string_equal(out.ni_norm, "AB123456C");
  /* the authenticated provider may be named explicitly */
  ev.provider_id = PROVIDER;
  expect(&ev, CP_OK, NULL);
  /* NI numbers are normalised (case, spaces) */
  ev.ni_number = "ab 12 34 56 c";
  out = check(&ev);
  assert_int_equal(out.reason, CP_OK);
  assert_string_equal(out.ni_norm, "AB123456C");
  ing_shape_wipe(&out, 1);
  assert_string_equal(out.ni_norm, "");
}

static void test_every_field_at_its_limit_passes(void **state) {
  (void)state;
  char id[65], rid[65], code[32], assessor[65], reason[65];
  /* 64 characters using every allowed class */
  snprintf(id, sizeof id, "%s", "Az09._:-");
  while (strlen(id) < 64) strncat(id, "Az09._:-", 64 - strlen(id));
  assert_int_equal(strlen(id), 64);
  Carepass__V1__CompletionEvent ev = good();
  ev.provider_event_id = id;
  ev.provider_id = PROVIDER;
  ev.qualification_code = repeat(code, 'Z', 31);
  code[0] = '9';
  code[1] = '-';
  ev.completion_date = TODAY;                  /* today is not the future */
  ev.assessor_id = repeat(assessor, 'a', 64);
  ev.evidence_hash.data = hash32;
  ev.evidence_hash.len = 32;
  expect(&ev, CP_OK, NULL);
  ev.completion_date = ING_OLDEST_DATE;     /* the oldest day accepted */
  expect(&ev, CP_OK, NULL);
  ev.kind = CAREPASS__V1__EVENT_KIND__EVENT_KIND_REVOCATION;
  ev.revokes_event_id = repeat(rid, 'r', 64);
  ev.revocation_reason = repeat(reason, 'R', 64);
  expect(&ev, CP_OK, NULL);
  ev.kind = CAREPASS__V1__EVENT_KIND__EVENT_KIND_COMPLETION;
  ev.revokes_event_id = "";
  ev.revocation_reason = "";
  expect(&ev, CP_OK, NULL);
}

static void test_event_id(void **state) {
  (void)state;
  char buf[80];
  Carepass__V1__CompletionEvent ev = good();
  ev.provider_event_id = "";
  expect(&ev, CP_R_MISSING_FIELD, "provider_event_id");
  ev.provider_event_id = repeat(buf, 'x', 65);
  expect(&ev, CP_R_FIELD_TOO_LONG, "provider_event_id");
  ing_shape_t out = check(&ev);
  assert_non_null(strstr(out.message, "65"));
  assert_non_null(strstr(out.message, "64"));
  ev.provider_event_id = "has space";
  expect(&ev, CP_R_INVALID_EVENT_ID, "provider_event_id");
  ev.provider_event_id = "slash/";
  expect(&ev, CP_R_INVALID_EVENT_ID, "provider_event_id");
  ev.provider_event_id = "caf\xc3\xa9";
  expect(&ev, CP_R_INVALID_EVENT_ID, "provider_event_id");
}

static void test_provider_mismatch(void **state) {
  (void)state;
  Carepass__V1__CompletionEvent ev = good();
  ev.provider_id = "PRV-0002";
  expect(&ev, CP_R_PROVIDER_MISMATCH, "provider_id");
  ev.provider_id = "prv-0001"; /* ids are exact */
  expect(&ev, CP_R_PROVIDER_MISMATCH, "provider_id");
}

static void test_ni_number(void **state) {
  (void)state;
  Carepass__V1__CompletionEvent ev = good();
  ev.ni_number = "";
  expect(&ev, CP_R_MISSING_FIELD, "ni_number");
  char *bad[] = {"QQ123456C", "AB123456E", "AB12345C", "AB1234567C", "GB123456A",
                       "AB123456C with a very long tail that is not an NI number"};
  for (size_t i = 0; i < CP_ARRAY_LEN(bad); i++) {
    ev.ni_number = bad[i];
    expect(&ev, CP_R_INVALID_WORKER_ID, "ni_number");
    ing_shape_t out = check(&ev);
    assert_null(strstr(out.message, bad[i]));   /* never echo the NI number */
    assert_null(strstr(out.message, "123456")); /* not even part of it */
  }
}

static void test_qualification_code(void **state) {
  (void)state;
  char buf[40];
  Carepass__V1__CompletionEvent ev = good();
  ev.qualification_code = "";
  expect(&ev, CP_R_MISSING_FIELD, "qualification_code");
  ev.qualification_code = repeat(buf, 'A', 32);
  expect(&ev, CP_R_FIELD_TOO_LONG, "qualification_code");
  ev.qualification_code = "cc-std-01";
  expect(&ev, CP_R_UNKNOWN_QUALIFICATION, "qualification_code");
}

static void test_completion_date(void **state) {
  (void)state;
  Carepass__V1__CompletionEvent ev = good();
  ev.completion_date = "";
  expect(&ev, CP_R_MISSING_FIELD, "completion_date");
  char *bad[] = {"2023-02-30", "2023-13-01", "2023-1-01", "01/05/2024", "2024-05-01T00:00",
                       "yesterday"};
  for (size_t i = 0; i < CP_ARRAY_LEN(bad); i++) {
    ev.completion_date = bad[i];
    expect(&ev, CP_R_INVALID_DATE, "completion_date");
  }
  ev.completion_date = "2026-11-23"; /* tomorrow */
  expect(&ev, CP_R_DATE_IN_FUTURE, "completion_date");
  ev.completion_date = "1989-12-31";
  expect(&ev, CP_R_DATE_TOO_OLD, "completion_date");
  ev.completion_date = "2024-02-29"; /* leap day */
  expect(&ev, CP_OK, NULL);
}

static void test_assessor_and_evidence(void **state) {
  (void)state;
  char buf[80];
  Carepass__V1__CompletionEvent ev = good();
  ev.assessor_id = repeat(buf, 'a', 65);
  expect(&ev, CP_R_FIELD_TOO_LONG, "assessor_id");
  ev = good();
  ev.assessor_id = ""; /* optional here; verify requires it for assessed qualifications */
  expect(&ev, CP_OK, NULL);
  ev.evidence_hash.data = hash33;
  ev.evidence_hash.len = 31;
  expect(&ev, CP_R_INVALID_EVIDENCE_HASH, "evidence_hash");
  ev.evidence_hash.len = 33;
  expect(&ev, CP_R_INVALID_EVIDENCE_HASH, "evidence_hash");
}

static void test_kinds(void **state) {
  (void)state;
  char buf[80];
  Carepass__V1__CompletionEvent ev = good();
  ev.kind = 7;
  expect(&ev, CP_R_INVALID_KIND, "kind");
  /* completion (explicit or unspecified) with revocation fields */
  ev.kind = CAREPASS__V1__EVENT_KIND__EVENT_KIND_UNSPECIFIED;
  ev.revokes_event_id = "ev-0";
  expect(&ev, CP_R_INVALID_KIND, "revokes_event_id");
  ev.kind = CAREPASS__V1__EVENT_KIND__EVENT_KIND_COMPLETION;
  ev.revokes_event_id = "";
  ev.revocation_reason = "ISSUED_IN_ERROR";
  expect(&ev, CP_R_INVALID_KIND, "revocation_reason");
  /* revocation */
  ev.kind = CAREPASS__V1__EVENT_KIND__EVENT_KIND_REVOCATION;
  ev.revokes_event_id = "";
  expect(&ev, CP_R_MISSING_FIELD, "revokes_event_id");
  ev.revokes_event_id = repeat(buf, 'r', 65);
  expect(&ev, CP_R_FIELD_TOO_LONG, "revokes_event_id");
  ev.revokes_event_id = "no spaces";
  expect(&ev, CP_R_INVALID_EVENT_ID, "revokes_event_id");
  ev.revokes_event_id = "ev-0";
  ev.revocation_reason = "";
  expect(&ev, CP_R_MISSING_FIELD, "revocation_reason");
  ev.revocation_reason = repeat(buf, 'R', 65);
  expect(&ev, CP_R_FIELD_TOO_LONG, "revocation_reason");
  ev.revocation_reason = "ISSUED_IN_ERROR";
  expect(&ev, CP_OK, NULL);
}

static void test_batch_duplicates_and_isolation(void **state) {
  (void)state;
  Carepass__V1__CompletionEvent ev[7];
  for (size_t i = 0; i < CP_ARRAY_LEN(ev); i++) ev[i] = good();
  ev[0].provider_event_id = "a";
  ev[1].provider_event_id = "b";
  ev[1].ni_number = "QQ123456C";          /* bad event among good ones */
  ev[2].provider_event_id = "a";          /* later duplicate of a */
  ev[3].provider_event_id = "c";
  ev[4].provider_event_id = "b";          /* duplicate of a rejected event is still a duplicate */
  ev[5].provider_event_id = "a";          /* third a */
  ev[6].provider_event_id = "";           /* missing ids are not duplicates of each other */
  Carepass__V1__CompletionEvent *p[7];
  for (size_t i = 0; i < CP_ARRAY_LEN(ev); i++) p[i] = &ev[i];
  ing_shape_t out[7];
  ing_shape_batch(p, CP_ARRAY_LEN(p), PROVIDER, today, out);
  assert_int_equal(out[0].reason, CP_OK);
  assert_string_equal(out[0].ni_norm, "AB123456C");
  assert_int_equal(out[1].reason, CP_R_INVALID_WORKER_ID);
  assert_int_equal(out[2].reason, CP_R_DUPLICATE_IN_BATCH);
  assert_non_null(strstr(out[2].message, "event 1"));
  assert_int_equal(out[3].reason, CP_OK);
  assert_int_equal(out[4].reason, CP_R_DUPLICATE_IN_BATCH);
  assert_non_null(strstr(out[4].message, "event 2"));
  assert_int_equal(out[5].reason, CP_R_DUPLICATE_IN_BATCH);
  assert_int_equal(out[6].reason, CP_R_MISSING_FIELD);
  assert_string_equal(out[2].ni_norm, "");
  ing_shape_wipe(out, CP_ARRAY_LEN(out));
  for (size_t i = 0; i < CP_ARRAY_LEN(out); i++) assert_string_equal(out[i].ni_norm, "");

  /* a batch of one and an empty batch are fine */
  ing_shape_batch(p, 1, PROVIDER, today, out);
  assert_int_equal(out[0].reason, CP_OK);
  ing_shape_batch(p, 0, PROVIDER, today, out);
}

static void test_large_batch_duplicates(void **state) {
  (void)state;
  /* many events: the duplicate check is a sort, not a quadratic scan */
  enum { N = 20000 };
  static Carepass__V1__CompletionEvent ev[N];
  static Carepass__V1__CompletionEvent *p[N];
  static ing_shape_t out[N];
  static char ids[N][16];
  for (size_t i = 0; i < N; i++) {
    ev[i] = good();
    snprintf(ids[i], sizeof ids[i], "id-%zu", i % (N / 2)); /* second half repeats the first */
    ev[i].provider_event_id = ids[i];
    p[i] = &ev[i];
  }
  ing_shape_batch(p, N, PROVIDER, today, out);
  for (size_t i = 0; i < N; i++)
    assert_int_equal(out[i].reason, i < N / 2 ? CP_OK : CP_R_DUPLICATE_IN_BATCH);
  ing_shape_wipe(out, N);
}

/* Bytes that are not UTF-8 in any string field: INVALID_UTF8 naming the field, before any
 * other check (today a Latin-1 assessor_id was signed into the register). */
static void test_invalid_utf8(void **state) {
  (void)state;
  for (size_t i = 0; i < ING_NSTR_FIELDS; i++) {
    Carepass__V1__CompletionEvent ev = good();
    *ing_str_slot(&ev, &ing_str_fields[i]) = "Jos\xe9";
    expect(&ev, CP_R_INVALID_UTF8, ing_str_fields[i].name);
  }
  Carepass__V1__CompletionEvent ev = good();
  ev.assessor_id = "ASR-\xc3\xa9\xe2\x82\xac"; /* UTF-8 beyond ASCII is fine where the field allows it */
  expect(&ev, CP_OK, NULL);
  ev.assessor_id = "ASR-\xed\xa0\x80"; /* a surrogate is not UTF-8 */
  expect(&ev, CP_R_INVALID_UTF8, "assessor_id");
  /* the message never echoes the bytes (nor the NI number) */
  ev = good();
  ev.ni_number = "AB12345\xff";
  ing_shape_t out = check(&ev);
  assert_int_equal(out.reason, CP_R_INVALID_UTF8);
  assert_null(strchr(out.message, '\xff'));
  assert_null(strstr(out.message, "AB12345"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good_event_passes),
      cmocka_unit_test(test_every_field_at_its_limit_passes),
      cmocka_unit_test(test_event_id),
      cmocka_unit_test(test_provider_mismatch),
      cmocka_unit_test(test_ni_number),
      cmocka_unit_test(test_qualification_code),
      cmocka_unit_test(test_completion_date),
      cmocka_unit_test(test_assessor_and_evidence),
      cmocka_unit_test(test_kinds),
      cmocka_unit_test(test_batch_duplicates_and_isolation),
      cmocka_unit_test(test_large_batch_duplicates),
      cmocka_unit_test(test_invalid_utf8),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
