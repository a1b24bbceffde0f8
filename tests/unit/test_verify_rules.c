/* test_verify_rules.c -- verify's rules against the real catalogue and sample providers:
 * every reason code, valid_until, shard routing and the derived award's event. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Like Core Lightning's common/test/run-*.c: compile the service's files into the test. */
#include "../../services/verify/verify_rules.c"
#include "../../services/verify/verify_awards.c"
#include "../../services/verify/verify_send.c"

static cat_catalogue_t *cat;
static prov_registry_t *reg;
static int32_t today;

static int setup(void **state) {
  (void)state;
  char path[4096], err[CP_ERRLEN];
  const char *src = getenv("CAREPASS_SOURCE_DIR");
  snprintf(path, sizeof path, "%s/data/catalogue.json", src ? src : ".");
  if (cat_load(path, &cat, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return -1;
  }
  snprintf(path, sizeof path, "%s/data/providers.json", src ? src : ".");
  if (prov_load(path, &reg, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return -1;
  }
  return cp_date_parse("2026-01-15", &today);
}

static int teardown(void **state) {
  (void)state;
  cat_destroy(&cat);
  prov_destroy(&reg);
  return 0;
}

static cp_reason_t check(const char *prov, const char *code, const char *date, const char *assessor,
                         verify_result_t *r) {
  verify_input_t in = {prov, code, date, assessor};
  return verify_check(cat, reg, &in, today, r);
}

static void assert_contains(const char *hay, const char *needle) {
  if (strstr(hay, needle) == NULL)
    fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

static void test_happy_paths(void **state) {
  (void)state;
  verify_result_t r;
  assert_int_equal(check("PRV-0001", "CC-STD-01", "2025-05-06", "ASR-1", &r), CP_OK);
  assert_int_equal(r.reason, CP_OK);
  assert_string_equal(r.valid_until, "");       /* standards do not expire */
  assert_string_equal(r.message, "");
  assert_non_null(r.qual);
  assert_string_equal(r.qual->code, "CC-STD-01");
  /* not assessed: no assessor needed */
  assert_int_equal(check("PRV-0003", "CPD-DEM", "2025-07-02", "", &r), CP_OK);
  assert_string_equal(r.valid_until, "");
  assert_int_equal(check("PRV-0004", "L3-DIP-AC", "2023-11-30", "ASR-2", &r), CP_OK);
  /* the date may be today */
  assert_int_equal(check("PRV-0002", "RF-FIRE", "2026-01-15", NULL, &r), CP_OK);
  assert_string_equal(r.valid_until, "2027-01-15");
}

static void test_valid_until(void **state) {
  (void)state;
  verify_result_t r;
  /* annual refresher from a leap day ends on the last day of February */
  assert_int_equal(check("PRV-0002", "RF-MH", "2024-02-29", "ASR-3", &r), CP_OK);
  assert_string_equal(r.valid_until, "2025-02-28");
  assert_int_equal(check("PRV-0002", "RF-MH", "2023-03-31", "ASR-3", &r), CP_OK);
  assert_string_equal(r.valid_until, "2024-03-31");
  /* three-yearly */
  assert_int_equal(check("PRV-0005", "RF-IPC", "2024-06-03", "", &r), CP_OK);
  assert_string_equal(r.valid_until, "2027-06-03");
  assert_int_equal(check("PRV-0005", "RF-IPC", "2024-02-29", "", &r), CP_OK);
  assert_string_equal(r.valid_until, "2027-02-28");
  /* direct use */
  char out[11];
  int32_t d;
  assert_int_equal(cp_date_parse("2025-01-31", &d), 0);
  verify_valid_until(cat_find(cat, "RF-BLS"), d, out);
  assert_string_equal(out, "2026-01-31");
  verify_valid_until(cat_find(cat, "L5-DIP-LM"), d, out);
  assert_string_equal(out, "");
}

static void test_unknown_and_not_submittable(void **state) {
  (void)state;
  verify_result_t r;
  assert_int_equal(check("PRV-0001", "XX-NOT-A-CODE", "2025-03-03", "", &r), CP_R_UNKNOWN_QUALIFICATION);
  assert_contains(r.message, "XX-NOT-A-CODE");
  assert_null(r.qual);
  assert_int_equal(check("PRV-0001", "", "2025-03-03", "", &r), CP_R_UNKNOWN_QUALIFICATION);
  assert_int_equal(check("PRV-0001", NULL, "2025-03-03", "", &r), CP_R_UNKNOWN_QUALIFICATION);
  assert_int_equal(check("PRV-0001", "cc-std-01", "2025-03-03", "A", &r), CP_R_UNKNOWN_QUALIFICATION);
  /* the Care Certificate itself is derived: never submitted, even by a provider approved for "*" */
  assert_int_equal(check("PRV-0001", "CC", "2025-06-30", "A", &r), CP_R_NOT_SUBMITTABLE);
  assert_contains(r.message, "CC (The Care Certificate)");
  assert_string_equal(r.valid_until, "");
}

static void test_provider_rules(void **state) {
  (void)state;
  verify_result_t r;
  assert_int_equal(check("PRV-9999", "RF-MH", "2025-01-01", "A", &r), CP_R_PROVIDER_UNKNOWN);
  assert_contains(r.message, "PRV-9999");
  /* PRV-0003's Care Certificate approval ended on 2022-03-31 (inclusive) */
  assert_int_equal(check("PRV-0003", "CC-STD-03", "2022-03-31", "A", &r), CP_OK);
  assert_int_equal(check("PRV-0003", "CC-STD-03", "2023-05-01", "A", &r), CP_R_PROVIDER_NOT_APPROVED);
  assert_contains(r.message, "PRV-0003");
  assert_contains(r.message, "CC-STD-03");
  assert_contains(r.message, "2023-05-01");
  /* a refresher-only provider and a diploma */
  assert_int_equal(check("PRV-0002", "L5-DIP-LM", "2024-07-01", "A", &r), CP_R_PROVIDER_NOT_APPROVED);
  /* before the approval started */
  assert_int_equal(check("PRV-0001", "RF-MH", "2014-12-31", "A", &r), CP_R_PROVIDER_NOT_APPROVED);
}

static void test_assessor(void **state) {
  (void)state;
  verify_result_t r;
  assert_int_equal(check("PRV-0002", "RF-MH", "2025-02-10", "", &r), CP_R_ASSESSOR_REQUIRED);
  assert_contains(r.message, "RF-MH");
  assert_int_equal(check("PRV-0002", "RF-MED", "2025-02-10", NULL, &r), CP_R_ASSESSOR_REQUIRED);
  assert_int_equal(check("PRV-0004", "L2-ASCC", "2025-02-14", "", &r), CP_R_ASSESSOR_REQUIRED);
  assert_int_equal(check("PRV-0001", "CC-STD-12", "2025-02-14", "", &r), CP_R_ASSESSOR_REQUIRED);
}

static void test_dates(void **state) {
  (void)state;
  verify_result_t r;
  const char *bad[] = {"2023-02-30", "2023-1-01", "", "20230101", "2023-13-01", "2023-01-01x", "yesterday"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(check("PRV-0001", "RF-EDI", bad[i], "", &r), CP_R_INVALID_DATE);
    assert_contains(r.message, "completion_date");
  }
  assert_int_equal(check("PRV-0001", "RF-EDI", NULL, "", &r), CP_R_INVALID_DATE);
  assert_int_equal(check("PRV-0001", "RF-EDI", "2099-01-01", "", &r), CP_R_DATE_IN_FUTURE);
  assert_contains(r.message, "2099-01-01");
  assert_contains(r.message, "2026-01-15");
  assert_int_equal(check("PRV-0001", "RF-EDI", "2026-01-16", "", &r), CP_R_DATE_IN_FUTURE);
  assert_int_equal(check("PRV-0001", "RF-EDI", "1985-06-01", "", &r), CP_R_DATE_TOO_OLD);
  assert_int_equal(check("PRV-0001", "RF-EDI", "1989-12-31", "", &r), CP_R_DATE_TOO_OLD);
  int32_t d;
  assert_int_equal(cp_date_parse("1990-01-01", &d), 0);
  assert_int_equal(d, VERIFY_EARLIEST_DAY);
  /* 1990-01-01 itself is not too old (PRV-0001 was not approved then, which is the next rule) */
  assert_int_equal(check("PRV-0001", "RF-EDI", "1990-01-01", "", &r), CP_R_PROVIDER_NOT_APPROVED);
}

static void test_rule_order(void **state) {
  (void)state;
  verify_result_t r;
  /* unknown code wins over everything else wrong */
  assert_int_equal(check("PRV-9999", "NOPE", "2099-99-99", "", &r), CP_R_UNKNOWN_QUALIFICATION);
  /* derived before provider */
  assert_int_equal(check("PRV-9999", "CC", "2099-99-99", "", &r), CP_R_NOT_SUBMITTABLE);
  /* provider before date */
  assert_int_equal(check("PRV-9999", "RF-MH", "2099-99-99", "", &r), CP_R_PROVIDER_UNKNOWN);
  /* date before approval, approval before assessor */
  assert_int_equal(check("PRV-0002", "CC-STD-01", "2099-01-01", "", &r), CP_R_DATE_IN_FUTURE);
  assert_int_equal(check("PRV-0002", "CC-STD-01", "2025-01-01", "", &r), CP_R_PROVIDER_NOT_APPROVED);
  /* every rejection has a stable code string and no valid_until */
  assert_string_equal(cp_reason_code(r.reason), "PROVIDER_NOT_APPROVED");
  assert_string_equal(r.valid_until, "");
}

static void test_revocation_reason(void **state) {
  (void)state;
  verify_result_t r;
  assert_int_equal(verify_check_revocation("ISSUED_IN_ERROR", &r), CP_OK);
  assert_int_equal(verify_check_revocation("FRAUD", &r), CP_OK);
  assert_int_equal(verify_check_revocation("REQUIREMENT_REVOKED", &r), CP_OK);
  assert_int_equal(verify_check_revocation("because", &r), CP_R_INVALID_REVOCATION_REASON);
  assert_contains(r.message, "because");
  assert_int_equal(verify_check_revocation("", &r), CP_R_INVALID_REVOCATION_REASON);
  assert_int_equal(verify_check_revocation(NULL, &r), CP_R_INVALID_REVOCATION_REASON);
}

static void test_shard_routing(void **state) {
  (void)state;
  uint8_t p[32] = {0x01, 0x02};
  ProtobufCBinaryData b = {32, p};
  assert_int_equal(verify_shard_of(&b, 1), 0);
  assert_int_equal(verify_shard_of(&b, 4), 0x0102 % 4);
  assert_int_equal(verify_shard_of(&b, 3), 0x0102 % 3);
  p[0] = 0xff;
  p[1] = 0xfe;
  assert_int_equal(verify_shard_of(&b, 7), 0xfffe % 7);
  ProtobufCBinaryData empty = {0, NULL};
  assert_int_equal(verify_shard_of(&empty, 5), 0);
}

static void test_award_event(void **state) {
  (void)state;
  uint8_t p[32];
  for (int i = 0; i < 32; i++)
    p[i] = (uint8_t)(0xa0 + i);
  Carepass__V1__PendingEvent src = CAREPASS__V1__PENDING_EVENT__INIT;
  src.provider_id = "PRV-0005";
  src.provider_event_id = "w1-cc-std-16";
  src.worker_pseudonym.data = p;
  src.worker_pseudonym.len = 32;
  src.qualification_code = "CC-STD-16";
  src.completion_date = "2025-06-20";
  src.assessor_id = "ASR-1";
  src.reply_to = "intake-1";
  Carepass__V1__PendingEvent out;
  char id[VERIFY_AWARD_ID_MAX];
  unsigned char secret[CP_SECRET_BYTES];
  for (int i = 0; i < CP_SECRET_BYTES; i++)
    secret[i] = (unsigned char)i;
  verify_award_event(secret, &src, cat_find(cat, "CC"), 0, id, &out);
  assert_string_equal(out.provider_id, "carepass");
  /* keyed: BLAKE2b-128 with the secret, computed apart from carepass (Python nacl.hash.blake2b) */
  assert_string_equal(out.provider_event_id, "award:CC:k1bc13671918af3b29f29f66c47ec2578");
  assert_null(strstr(out.provider_event_id, "a0a1a2a3"));   /* no pseudonym prefix any more */
  assert_string_equal(out.qualification_code, "CC");
  assert_string_equal(out.completion_date, "2025-06-20");
  assert_string_equal(out.assessor_id, "");
  assert_string_equal(out.reply_to, "");
  assert_int_equal(out.worker_pseudonym.len, 32);
  assert_memory_equal(out.worker_pseudonym.data, p, 32);
  /* the award routes to the same shard as the standard */
  assert_int_equal(verify_shard_of(&out.worker_pseudonym, 5), verify_shard_of(&src.worker_pseudonym, 5));
  /* and it packs (the signer receives it inside a VerifiedRecord) */
  Carepass__V1__VerifiedRecord rec = CAREPASS__V1__VERIFIED_RECORD__INIT;
  rec.event = &out;
  rec.entry_type = CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_DERIVED_AWARD;
  rec.valid_until = "";
  assert_true(protobuf_c_message_get_packed_size(&rec.base) > 40);

  /* a re-issued award (after a withdrawal) gets a new event id per generation, with its own tag */
  char id2[VERIFY_AWARD_ID_MAX];
  verify_award_event(secret, &src, cat_find(cat, "CC"), 2, id2, &out);
  assert_string_equal(out.provider_event_id, "award:CC:k2f49494a8178f0daa3266dc91b7aaa25:g2");
  assert_memory_not_equal(id + 10, id2 + 10, 32);

  /* withdrawing generation 2: a revocation of the award's own id, routed like the standard */
  char rid[VERIFY_AWARD_ID_MAX], rev[VERIFY_AWARD_ID_MAX];
  assert_int_equal(verify_award_revocation_event(&src, cat_find(cat, "CC"), id2, rid, rev, &out), 0);
  assert_string_equal(out.provider_id, "carepass");
  assert_string_equal(out.provider_event_id, "award-revoke:CC:k2f49494a8178f0daa3266dc91b7aaa25:2");
  assert_string_equal(out.revokes_event_id, "award:CC:k2f49494a8178f0daa3266dc91b7aaa25:g2");
  assert_string_equal(out.revocation_reason, "REQUIREMENT_REVOKED");
  assert_int_equal(out.kind, CAREPASS__V1__EVENT_KIND__EVENT_KIND_REVOCATION);
  assert_int_equal(verify_shard_of(&out.worker_pseudonym, 5), verify_shard_of(&src.worker_pseudonym, 5));
  assert_int_equal(verify_award_revocation_event(&src, cat_find(cat, "CC"), id, rid, rev, &out), 0);
  assert_string_equal(out.revokes_event_id, "award:CC:k1bc13671918af3b29f29f66c47ec2578");
  assert_string_equal(out.provider_event_id, "award-revoke:CC:k1bc13671918af3b29f29f66c47ec2578:0");

  /* an award issued before keyed ids keeps its legacy id, and its revocation the old id */
  assert_int_equal(verify_award_revocation_event(&src, cat_find(cat, "CC"), "award:CC:a0a1a2a3a4a5a6a7:g2", rid,
                                                 rev, &out), 0);
  assert_string_equal(out.provider_event_id, "award-revoke:CC:a0a1a2a3a4a5a6a7:2");
  assert_string_equal(out.revokes_event_id, "award:CC:a0a1a2a3a4a5a6a7:g2");
  assert_int_equal(verify_award_revocation_event(&src, cat_find(cat, "CC"), "award:CC:a0a1a2a3a4a5a6a7", rid, rev,
                                                 &out), 0);
  assert_string_equal(out.provider_event_id, "award-revoke:CC:a0a1a2a3a4a5a6a7:0");

  /* which worker an award id is of, in both styles */
  proj_award_ref_t ref;
  uint8_t q[32];
  memset(q, 0x11, sizeof q);
  assert_true(proj_award_id_parse(id2, &ref));
  assert_true(proj_award_ref_is_of(&ref, secret, p));    /* right worker */
  assert_false(proj_award_ref_is_of(&ref, secret, q));   /* wrong worker */
  assert_true(proj_award_id_parse("award:CC:k2f49494a8178f0daa3266dc91b7aaa25:g1", &ref));
  assert_false(proj_award_ref_is_of(&ref, secret, p));   /* wrong generation */
  assert_true(proj_award_id_parse("award:CC:a0a1a2a3a4a5a6a7:g2", &ref));
  assert_true(proj_award_ref_is_of(&ref, secret, p));    /* legacy, this worker */
  assert_false(proj_award_ref_is_of(&ref, secret, q));   /* legacy, another worker */

  /* not an award id, or another award's: refused, not a crash */
  assert_int_equal(verify_award_revocation_event(&src, cat_find(cat, "CC"), "PRV-0005:w1", rid, rev, &out), -1);
  assert_int_equal(verify_award_revocation_event(&src, cat_find(cat, "CC"), "award:RF:a0a1a2a3a4a5a6a7", rid, rev,
                                                 &out), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_happy_paths),
    cmocka_unit_test(test_valid_until),
    cmocka_unit_test(test_unknown_and_not_submittable),
    cmocka_unit_test(test_provider_rules),
    cmocka_unit_test(test_assessor),
    cmocka_unit_test(test_dates),
    cmocka_unit_test(test_rule_order),
    cmocka_unit_test(test_revocation_reason),
    cmocka_unit_test(test_shard_routing),
    cmocka_unit_test(test_award_event),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
