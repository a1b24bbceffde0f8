/* test_roles.c -- data/roles.json loads against the catalogue, bad role files are refused with a
 * reason, and readiness for every role: passing, missing, expired, alternative, grace period,
 * revoked, expiring and not-yet-completed cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "cp_catalogue.h"
#include "cp_dates.h"
#include "cp_roles.h"

#define DAY 20600   /* an arbitrary "today" (2026-05-27) */

static cat_catalogue_t *cat;
static roles_t *roles;

static const char *src(void) {
  const char *s = getenv("CAREPASS_SOURCE_DIR");
  return s ? s : CAREPASS_SOURCE_DIR_DEFAULT;
}

static int setup(void **state) {
  (void)state;
  char path[512], err[CP_ERRLEN];
  snprintf(path, sizeof path, "%s/data/catalogue.json", src());
  if (cat_load(path, &cat, err, sizeof err) != 0) return -1;
  snprintf(path, sizeof path, "%s/data/roles.json", src());
  if (roles_load(path, cat, &roles, err, sizeof err) != 0) {
    fprintf(stderr, "roles: %s\n", err);
    return -1;
  }
  return 0;
}

static int teardown(void **state) {
  (void)state;
  roles_destroy(&roles);
  cat_destroy(&cat);
  return 0;
}

/* A record of code, completed a month before DAY, valid as the catalogue says. */
static role_record_t rec(const char *code, int32_t valid_until) {
  role_record_t r = {code, DAY - 30, valid_until, ROLE_NEVER, 0};
  return r;
}

static int32_t valid_until_of(const char *code) {
  const cat_qual_t *q = cat_find(cat, code);
  assert_non_null(q);
  return q->refresh_months == 0 ? ROLE_NEVER : cp_date_add_months(DAY - 30, q->refresh_months);
}

/* Records meeting every requirement of role with the alternative `alt` of each (clamped). */
static size_t full_set(const role_t *role, size_t alt, role_record_t *out) {
  for (size_t k = 0; k < role->nreq; k++) {
    const role_req_t *q = &role->req[k];
    const char *code = q->codes[alt < q->ncodes ? alt : 0];
    out[k] = rec(code, valid_until_of(code));
  }
  return role->nreq;
}

static void test_the_pathway_roles_load(void **state) {
  (void)state;
  const char *want[] = {"new-to-care", "care-worker", "care-worker-medicines", "senior-care-worker",
                        "lead-practitioner", "deputy-manager", "registered-manager"};
  for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
    const role_t *r = roles_find(roles, want[i]);
    assert_non_null(r);
    assert_true(r->nreq > 0 && r->source[0] != '\0' && r->title[0] != '\0');
  }
  assert_null(roles_find(roles, "astronaut"));
  /* the rules the issue names */
  const role_t *cw = roles_find(roles, "care-worker");
  assert_true(cw->req[0].ncodes == 2 && strcmp(cw->req[0].codes[0], "CC") == 0 &&
              strcmp(cw->req[0].codes[1], "L2-ASCC") == 0 && cw->req[0].grace);
  const role_t *rm = roles_find(roles, "registered-manager");
  assert_string_equal(rm->req[0].codes[0], "L5-DIP-LM");
}

static void test_every_role_passing_missing_expired(void **state) {
  (void)state;
  for (size_t i = 0; i < roles_count(roles); i++) {
    const role_t *role = roles_at(roles, i);
    role_record_t set[ROLE_REQ_MAX];
    size_t n = full_set(role, 0, set);
    role_answer_t a;
    role_readiness(role, set, n, DAY, -1, &a);
    assert_int_not_equal(a.verdict, ROLE_NOT_READY);
    bool expires = false;
    int32_t first = ROLE_NEVER;
    for (size_t k = 0; k < n; k++) {
      assert_int_equal(a.req[k].state, ROLE_REQ_MET);
      assert_ptr_equal(a.req[k].by, &set[k]);
      if (set[k].valid_until != ROLE_NEVER) {
        expires = true;
        if (set[k].valid_until < first) first = set[k].valid_until;
      }
    }
    assert_int_equal(a.verdict, expires ? ROLE_READY_UNTIL : ROLE_READY);
    if (expires) assert_int_equal(a.until, first);
    for (size_t k = 0; k < n; k++) {
      /* missing: without requirement k's record */
      role_record_t less[ROLE_REQ_MAX];
      size_t m = 0;
      for (size_t j = 0; j < n; j++)
        if (j != k) less[m++] = set[j];
      role_readiness(role, less, m, DAY, -1, &a);
      assert_int_equal(a.verdict, ROLE_NOT_READY);
      assert_int_equal(a.req[k].state, ROLE_REQ_MISSING);
      assert_null(a.req[k].by);
      /* expired: its record lapsed yesterday */
      role_record_t old[ROLE_REQ_MAX];
      memcpy(old, set, n * sizeof *set);
      old[k].completed = DAY - 400;
      old[k].valid_until = DAY - 1;
      role_readiness(role, old, n, DAY, -1, &a);
      assert_int_equal(a.verdict, ROLE_NOT_READY);
      assert_int_equal(a.req[k].state, ROLE_REQ_EXPIRED);
      assert_ptr_equal(a.req[k].by, &old[k]);
      /* revoked: it does not count from its revocation on */
      memcpy(old, set, n * sizeof *set);
      old[k].revoked_from = DAY;
      role_readiness(role, old, n, DAY, -1, &a);
      assert_int_equal(a.req[k].state, ROLE_REQ_MISSING);
      role_readiness(role, old, n, DAY - 1, -1, &a);   /* the day before, it did */
      assert_int_equal(a.req[k].state, ROLE_REQ_MET);
      /* completed after the day asked about: not yet */
      memcpy(old, set, n * sizeof *set);
      old[k].completed = DAY + 1;
      role_readiness(role, old, n, DAY, -1, &a);
      assert_int_equal(a.req[k].state, ROLE_REQ_MISSING);
    }
  }
}

static void test_alternatives(void **state) {
  (void)state;
  size_t tried = 0;
  for (size_t i = 0; i < roles_count(roles); i++) {
    const role_t *role = roles_at(roles, i);
    for (size_t alt = 1; alt < ROLE_ALT_MAX; alt++) {
      bool any = false;
      for (size_t k = 0; k < role->nreq; k++) any |= role->req[k].ncodes > alt;
      if (!any) break;
      role_record_t set[ROLE_REQ_MAX];
      size_t n = full_set(role, alt, set);
      role_answer_t a;
      role_readiness(role, set, n, DAY, -1, &a);
      assert_int_not_equal(a.verdict, ROLE_NOT_READY);
      tried++;
    }
  }
  assert_true(tried >= 3);   /* care worker (CC or L2-ASCC), lead practitioner, deputy manager */
  /* the longest-lasting of two records of one requirement is the one that counts */
  const role_t *cw = roles_find(roles, "care-worker");
  role_record_t set[ROLE_REQ_MAX + 1];
  size_t n = full_set(cw, 0, set);
  set[n] = set[1];
  set[n].valid_until = set[1].valid_until + 100;
  role_answer_t a;
  role_readiness(cw, set, n + 1, DAY, -1, &a);
  assert_ptr_equal(a.req[1].by, &set[n]);
}

static void test_grace_period(void **state) {
  (void)state;
  size_t roles_with_grace = 0;
  for (size_t i = 0; i < roles_count(roles); i++) {
    const role_t *role = roles_at(roles, i);
    if (role->grace_days == 0) continue;
    roles_with_grace++;
    role_record_t set[ROLE_REQ_MAX], kept[ROLE_REQ_MAX];
    size_t n = full_set(role, 0, set), m = 0;
    for (size_t k = 0; k < n; k++)
      if (!role->req[k].grace) kept[m++] = set[k];
    role_answer_t a;
    /* a new starter ten days in: the grace requirements are pending, ready until the period ends */
    role_readiness(role, kept, m, DAY, DAY - 10, &a);
    assert_int_equal(a.verdict, ROLE_READY_UNTIL);
    assert_true(a.until <= DAY - 10 + role->grace_days);
    for (size_t k = 0; k < n; k++)
      assert_int_equal(a.req[k].state, role->req[k].grace ? ROLE_REQ_PENDING : ROLE_REQ_MET);
    /* the last day of the period still counts; the day after does not */
    role_readiness(role, kept, m, DAY, DAY - role->grace_days, &a);
    assert_int_equal(a.verdict, ROLE_READY_UNTIL);
    role_readiness(role, kept, m, DAY, DAY - role->grace_days - 1, &a);
    assert_int_equal(a.verdict, ROLE_NOT_READY);
    /* not a new starter: no grace */
    role_readiness(role, kept, m, DAY, -1, &a);
    assert_int_equal(a.verdict, ROLE_NOT_READY);
    /* a requirement without grace is never pending */
    for (size_t k = 0; k < n; k++) {
      if (role->req[k].grace) continue;
      role_record_t less[ROLE_REQ_MAX];
      size_t l = 0;
      for (size_t j = 0; j < n; j++)
        if (j != k) less[l++] = set[j];
      role_readiness(role, less, l, DAY, DAY - 10, &a);
      assert_int_equal(a.verdict, ROLE_NOT_READY);
      assert_int_equal(a.req[k].state, ROLE_REQ_MISSING);
    }
  }
  assert_true(roles_with_grace >= 2);
}

static void test_expiring_within_90_days(void **state) {
  (void)state;
  const role_t *rm = roles_find(roles, "registered-manager");
  role_record_t set[ROLE_REQ_MAX];
  size_t n = full_set(rm, 0, set);
  set[1].valid_until = DAY + 30;   /* safeguarding ends in 30 days */
  role_answer_t a;
  role_readiness(rm, set, n, DAY, -1, &a);
  assert_int_equal(a.verdict, ROLE_READY_UNTIL);
  assert_int_equal(a.until, DAY + 30);
  assert_true(a.req[1].expiring);
  assert_false(a.req[0].expiring);   /* the diploma does not expire */
  set[1].valid_until = DAY + ROLE_EXPIRING_DAYS;
  role_readiness(rm, set, n, DAY, -1, &a);
  assert_false(a.req[1].expiring);
  assert_string_equal(role_verdict_name(ROLE_READY_UNTIL), "ready until");
  assert_string_equal(role_req_state_name(ROLE_REQ_PENDING), "pending");
}

static void test_record_of_an_entry(void **state) {
  (void)state;
  Carepass__V1__PassportEntry pe = CAREPASS__V1__PASSPORT_ENTRY__INIT, rev = CAREPASS__V1__PASSPORT_ENTRY__INIT;
  pe.entry_type = CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_RECORD;
  pe.qualification_code = (char *)"RF-FIRE";
  pe.completion_date = (char *)"2026-01-10";
  pe.valid_until = (char *)"2027-01-10";
  role_record_t r;
  assert_true(role_record_of(&pe, NULL, 7, &r));
  int32_t c, v;
  assert_int_equal(cp_date_parse("2026-01-10", &c), 0);
  assert_int_equal(cp_date_parse("2027-01-10", &v), 0);
  assert_true(r.completed == c && r.valid_until == v && r.revoked_from == ROLE_NEVER && r.index == 7);
  rev.issued_at = (int64_t)(c + 30) * 86400 + 3600;   /* revoked in the morning of day c+30 */
  assert_true(role_record_of(&pe, &rev, 7, &r));
  assert_int_equal(r.revoked_from, c + 30);
  pe.valid_until = (char *)"";
  assert_true(role_record_of(&pe, NULL, 7, &r) && r.valid_until == ROLE_NEVER);
  pe.completion_date = (char *)"2026-02-30";
  assert_false(role_record_of(&pe, NULL, 7, &r));
  pe.completion_date = (char *)"2026-01-10";
  pe.entry_type = CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION;
  assert_false(role_record_of(&pe, NULL, 7, &r));
  assert_false(role_record_of(NULL, NULL, 7, &r));
}

static void expect_refused(const char *json, const char *needle) {
  char path[] = "/tmp/cp-test-roles-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
  close(fd);
  char err[CP_ERRLEN] = "";
  roles_t *r = NULL;
  assert_int_equal(roles_load(path, cat, &r, err, sizeof err), -1);
  assert_null(r);
  if (strstr(err, needle) == NULL) fail_msg("error \"%s\" does not say \"%s\"", err, needle);
  unlink(path);
}

static void test_bad_files_are_refused(void **state) {
  (void)state;
  const char *ok_req = "{\"any_of\": [\"RF-FIRE\"], \"why\": \"w\"}";
  char buf[1024];
  snprintf(buf, sizeof buf, "{\"version\": 1, \"roles\": [{\"id\": \"a\", \"title\": \"A\", \"source\": \"s\", "
           "\"requires\": [{\"any_of\": [\"NOPE\"], \"why\": \"w\"}]}]}");
  expect_refused(buf, "not a code of the catalogue");
  snprintf(buf, sizeof buf, "{\"version\": 1, \"roles\": [{\"id\": \"a\", \"title\": \"A\", \"source\": \"s\", "
           "\"requires\": [{\"any_of\": [\"RF-FIRE\"], \"grace\": true, \"why\": \"w\"}]}]}");
  expect_refused(buf, "needs the role's \"grace_days\"");
  snprintf(buf, sizeof buf, "{\"version\": 1, \"roles\": [{\"id\": \"a\", \"title\": \"A\", \"source\": \"s\", "
           "\"requires\": [%s]}, {\"id\": \"a\", \"title\": \"B\", \"source\": \"s\", \"requires\": [%s]}]}", ok_req, ok_req);
  expect_refused(buf, "duplicate role id \"a\"");
  snprintf(buf, sizeof buf, "{\"version\": 1, \"roles\": [{\"id\": \"a\", \"title\": \"A\", \"source\": \"s\", "
           "\"requires\": [%s], \"colour\": \"blue\"}]}", ok_req);
  expect_refused(buf, "unknown field \"colour\"");
  snprintf(buf, sizeof buf, "{\"version\": 1, \"roles\": [{\"id\": \"Bad Id\", \"title\": \"A\", \"source\": \"s\", "
           "\"requires\": [%s]}]}", ok_req);
  expect_refused(buf, "may only hold a-z");
  snprintf(buf, sizeof buf, "{\"version\": 1, \"roles\": [{\"id\": \"a\", \"title\": \"A\", \"requires\": [%s]}]}", ok_req);
  expect_refused(buf, "field \"source\"");
  snprintf(buf, sizeof buf, "{\"version\": 1, \"roles\": [{\"id\": \"a\", \"title\": \"A\", \"source\": \"s\", "
           "\"requires\": [{\"any_of\": [\"RF-FIRE\", \"RF-FIRE\"], \"why\": \"w\"}]}]}");
  expect_refused(buf, "twice");
  expect_refused("{\"version\": 1, \"roles\": [\n  {\"id\": \"a\",,}]}", "line 2");
  expect_refused("{\"version\": 2, \"roles\": []}", "\"version\": 1");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_the_pathway_roles_load),
      cmocka_unit_test(test_every_role_passing_missing_expired),
      cmocka_unit_test(test_alternatives),
      cmocka_unit_test(test_grace_period),
      cmocka_unit_test(test_expiring_within_90_days),
      cmocka_unit_test(test_record_of_an_entry),
      cmocka_unit_test(test_bad_files_are_refused),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
