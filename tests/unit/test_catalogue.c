/* test_catalogue.c -- the qualification catalogue and provider registry: the real data files,
 * strict loading (each bad file gives an error naming file, entry and field), approvals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cp_catalogue.h"
#include "cp_dates.h"

static char *data_path(const char *name) {
  static char buf[4096];
  const char *src = getenv("CAREPASS_SOURCE_DIR");
  snprintf(buf, sizeof buf, "%s/data/%s", src != NULL ? src : ".", name);
  return buf;
}

/* Write `text` to a fresh temporary file; returns its path (static buffer). */
static const char *tmp_file(const char *text) {
  static char path[64];
  snprintf(path, sizeof path, "/tmp/cp-test-catalogue-XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  size_t n = strlen(text);
  assert_int_equal(write(fd, text, n), (ssize_t)n);
  close(fd);
  return path;
}

static int32_t day(const char *s) {
  int32_t d;
  assert_int_equal(cp_date_parse(s, &d), 0);
  return d;
}

/* --- the real catalogue ---------------------------------------------------------- */

static void test_real_catalogue(void **state) {
  (void)state;
  cat_catalogue_t *cat = NULL;
  char err[CP_ERRLEN] = "";
  int rc = cat_load(data_path("catalogue.json"), &cat, err, sizeof err);
  if (rc != 0)
    fail_msg("%s", err);
  size_t standards = 0;
  for (size_t i = 0; i < cat_count(cat); i++) {
    const cat_qual_t *q = cat_at(cat, i);
    if (strcmp(q->kind, "care_certificate_standard") == 0) {
      standards++;
      assert_true(q->assessed);
      assert_int_equal(q->refresh_months, 0);
      assert_false(q->derived);
    }
    if (strcmp(q->kind, "refresher") == 0)
      assert_true(q->refresh_months == 12 || q->refresh_months == 36);
  }
  assert_int_equal(standards, 16);

  const cat_qual_t *cc = cat_find(cat, "CC");
  assert_non_null(cc);
  assert_true(cc->derived);
  assert_string_equal(cc->kind, "award");
  assert_int_equal(cc->nrequires, 16);
  for (int i = 1; i <= 16; i++) {
    char code[16];
    snprintf(code, sizeof code, "CC-STD-%02d", i);
    assert_string_equal(cc->requires[i - 1], code);
    assert_non_null(cat_find(cat, code));
    const cat_qual_t *aw[2];
    assert_int_equal(cat_awards_requiring(cat, code, aw, 2), 1);
    assert_ptr_equal(aw[0], cc);
  }
  assert_int_equal(cat_awards_requiring(cat, "RF-MH", NULL, 0), 0);

  struct { const char *code; int months; bool assessed; } rf[] = {
    {"RF-MH", 12, true}, {"RF-BLS", 12, true}, {"RF-FIRE", 12, false}, {"RF-SAFEG", 12, false},
    {"RF-MED", 12, true}, {"RF-IPC", 36, false}, {"RF-HS", 36, false}, {"RF-EDI", 36, false},
  };
  for (size_t i = 0; i < sizeof rf / sizeof rf[0]; i++) {
    const cat_qual_t *q = cat_find(cat, rf[i].code);
    assert_non_null(q);
    assert_string_equal(q->kind, "refresher");
    assert_int_equal(q->refresh_months, rf[i].months);
    assert_int_equal(q->assessed, rf[i].assessed);
  }
  const char *others[] = {"L2-ASCC", "L3-DIP-AC", "L5-DIP-LM", "CPD-DIAB", "CPD-STROKE", "CPD-MHA",
                          "CPD-AUT", "CPD-OMMT", "CPD-DEM"};
  for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
    assert_non_null(cat_find(cat, others[i]));
  assert_true(cat_find(cat, "L3-DIP-AC")->assessed);
  assert_false(cat_find(cat, "CPD-DIAB")->assessed);
  assert_null(cat_find(cat, "NOPE"));
  assert_null(cat_find(cat, ""));
  assert_null(cat_at(cat, cat_count(cat)));
  cat_destroy(&cat);
  assert_null(cat);
  cat_destroy(&cat);   /* safe on NULL */
}

/* --- bad catalogues ------------------------------------------------------------- */

#define QOK(code) "{\"code\":\"" code "\",\"title\":\"T\",\"kind\":\"cpd\"}"

static void expect_cat_error(const char *json, const char *needle) {
  const char *path = tmp_file(json);
  cat_catalogue_t *cat = NULL;
  char err[CP_ERRLEN] = "";
  assert_int_equal(cat_load(path, &cat, err, sizeof err), -1);
  assert_null(cat);
  if (strstr(err, needle) == NULL || strstr(err, path) == NULL)
    fail_msg("error \"%s\" should name the file and contain \"%s\"", err, needle);
  unlink(path);
}

static void test_bad_catalogues(void **state) {
  (void)state;
  expect_cat_error("{\"version\":1,\"qualifications\":[", "line");
  expect_cat_error("{\"version\":2,\"qualifications\":[" QOK("A") "]}", "\"version\": 1");
  expect_cat_error("{\"version\":1,\"qualifications\":[]}", "non-empty");
  expect_cat_error("{\"version\":1,\"qualifications\":[" QOK("A") "," QOK("A") "]}", "duplicate code \"A\"");
  expect_cat_error("{\"version\":1,\"qualifications\":[" QOK("A") ",{\"code\":\"B\",\"title\":\"T\",\"kind\":\"nonsense\"}]}",
                   "qualifications[1] (code \"B\"): field \"kind\": unknown kind \"nonsense\"");
  expect_cat_error("{\"version\":1,\"qualifications\":[{\"code\":\"a b\",\"title\":\"T\",\"kind\":\"cpd\"}]}",
                   "qualifications[0]: field \"code\"");
  expect_cat_error("{\"version\":1,\"qualifications\":[{\"code\":\"A\",\"kind\":\"cpd\"}]}", "field \"title\"");
  expect_cat_error("{\"version\":1,\"qualifications\":[{\"code\":\"A\",\"title\":\"T\",\"kind\":\"cpd\",\"refresh_month\":12}]}",
                   "unknown field \"refresh_month\"");
  expect_cat_error("{\"version\":1,\"qualifications\":[{\"code\":\"A\",\"title\":\"T\",\"kind\":\"cpd\",\"refresh_months\":-1}]}",
                   "field \"refresh_months\"");
  expect_cat_error("{\"version\":1,\"qualifications\":[{\"code\":\"A\",\"title\":\"T\",\"kind\":\"cpd\",\"assessed\":\"yes\"}]}",
                   "field \"assessed\"");
  expect_cat_error("{\"version\":1,\"qualifications\":[" QOK("A") ",{\"code\":\"W\",\"title\":\"T\",\"kind\":\"award\","
                   "\"derived\":true,\"requires\":[\"A\",\"MISSING\"]}]}",
                   "award \"W\": field \"requires\" names unknown code \"MISSING\"");
  expect_cat_error("{\"version\":1,\"qualifications\":[{\"code\":\"W\",\"title\":\"T\",\"kind\":\"award\",\"derived\":true}]}",
                   "field \"requires\" must be a non-empty array");
  expect_cat_error("{\"version\":1,\"qualifications\":[" QOK("A") ",{\"code\":\"W\",\"title\":\"T\",\"kind\":\"cpd\","
                   "\"derived\":true,\"requires\":[\"A\"]}]}", "kind \"award\"");
  expect_cat_error("{\"version\":1,\"qualifications\":[" QOK("A") ",{\"code\":\"W\",\"title\":\"T\",\"kind\":\"award\","
                   "\"derived\":true,\"requires\":[\"A\",\"A\"]}]}", "lists \"A\" twice");
  expect_cat_error("{\"version\":1,\"qualifications\":[{\"code\":\"B\",\"title\":\"T\",\"kind\":\"cpd\",\"requires\":[\"A\"]}]}",
                   "only allowed when \"derived\" is true");
  expect_cat_error("{\"version\":1,\"qualifications\":[" QOK("A") ",{\"code\":\"W\",\"title\":\"T\",\"kind\":\"award\","
                   "\"derived\":true,\"requires\":[\"A\"]},{\"code\":\"V\",\"title\":\"T\",\"kind\":\"award\","
                   "\"derived\":true,\"requires\":[\"W\"]}]}", "itself derived");
  /* missing file: the error names the path */
  cat_catalogue_t *cat = NULL;
  char err[CP_ERRLEN];
  assert_int_equal(cat_load("/nonexistent/catalogue.json", &cat, err, sizeof err), -1);
  assert_non_null(strstr(err, "/nonexistent/catalogue.json"));
}

/* --- providers ------------------------------------------------------------------ */

static void test_real_providers(void **state) {
  (void)state;
  prov_registry_t *reg = NULL;
  char err[CP_ERRLEN] = "";
  if (prov_load(data_path("providers.json"), &reg, err, sizeof err) != 0)
    fail_msg("%s", err);
  assert_true(prov_count(reg) >= 4);
  for (size_t i = 0; i < prov_count(reg); i++) {
    const prov_t *p = prov_at(reg, i);
    assert_string_equal(p->curve_key, "");   /* keys are never committed */
    assert_ptr_equal(prov_find(reg, p->id), p);
  }
  const prov_t *all = prov_find(reg, "PRV-0001");
  const prov_t *rf = prov_find(reg, "PRV-0002");
  const prov_t *lapsed = prov_find(reg, "PRV-0003");
  const prov_t *dip = prov_find(reg, "PRV-0004");
  assert_non_null(all);
  assert_non_null(rf);
  assert_non_null(lapsed);
  assert_non_null(dip);
  assert_true(prov_approved(all, "CC-STD-07", day("2025-06-01")));
  assert_true(prov_approved(all, "L5-DIP-LM", day("2015-01-01")));
  assert_false(prov_approved(all, "RF-MH", day("2014-12-31")));
  assert_true(prov_approved(rf, "RF-MH", day("2024-02-29")));
  assert_false(prov_approved(rf, "CC-STD-01", day("2024-02-29")));
  assert_true(prov_approved(lapsed, "CC-STD-03", day("2022-03-31")));
  assert_false(prov_approved(lapsed, "CC-STD-03", day("2022-04-01")));
  assert_true(prov_approved(dip, "L3-DIP-AC", day("2023-11-30")));
  assert_false(prov_approved(dip, "RF-MH", day("2023-11-30")));
  assert_null(prov_find(reg, "PRV-9999"));
  assert_null(prov_find_by_key(reg, ""));
  prov_destroy(&reg);
  assert_null(reg);
}

static void test_prov_approved_edges(void **state) {
  (void)state;
  prov_approval_t ap[] = {
    {.code = "CC-STD-*", .from = 0, .to = 0},
    {.code = "RF-MH", .from = 0, .to = INT32_MAX},
  };
  ap[0].from = day("2020-01-01");
  ap[0].to = day("2020-12-31");
  ap[1].from = day("2021-06-15");
  prov_t p = {.id = "X", .approvals = ap, .napprovals = 2};
  /* inclusive from/to */
  assert_false(prov_approved(&p, "CC-STD-01", day("2019-12-31")));
  assert_true(prov_approved(&p, "CC-STD-01", day("2020-01-01")));
  assert_true(prov_approved(&p, "CC-STD-16", day("2020-12-31")));
  assert_false(prov_approved(&p, "CC-STD-16", day("2021-01-01")));
  /* prefix patterns match only the prefix; the award code "CC" is not under "CC-STD-*" */
  assert_false(prov_approved(&p, "CC", day("2020-06-01")));
  assert_false(prov_approved(&p, "CC-STD", day("2020-06-01")));
  assert_true(prov_approved(&p, "CC-STD-", day("2020-06-01")));
  /* exact codes are exact; open-ended "to" */
  assert_false(prov_approved(&p, "RF-MHX", day("2022-01-01")));
  assert_false(prov_approved(&p, "RF-M", day("2022-01-01")));
  assert_false(prov_approved(&p, "RF-MH", day("2021-06-14")));
  assert_true(prov_approved(&p, "RF-MH", day("2021-06-15")));
  assert_true(prov_approved(&p, "RF-MH", day("2999-12-31")));
  /* "*" alone approves everything in range; no approvals approve nothing */
  prov_approval_t star = {.code = "*", .from = day("2015-01-01"), .to = INT32_MAX};
  prov_t q = {.id = "Y", .approvals = &star, .napprovals = 1};
  assert_true(prov_approved(&q, "ANYTHING", day("2015-01-01")));
  assert_false(prov_approved(&q, "ANYTHING", day("2014-12-31")));
  prov_t none = {.id = "Z"};
  assert_false(prov_approved(&none, "RF-MH", day("2020-01-01")));
}

#define POK(id) "{\"id\":\"" id "\",\"name\":\"N\",\"approvals\":[]}"
#define KEY1 "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"   /* libzmq's test server public key */

static void expect_prov_error(const char *json, const char *needle) {
  const char *path = tmp_file(json);
  prov_registry_t *reg = NULL;
  char err[CP_ERRLEN] = "";
  assert_int_equal(prov_load(path, &reg, err, sizeof err), -1);
  assert_null(reg);
  if (strstr(err, needle) == NULL || strstr(err, path) == NULL)
    fail_msg("error \"%s\" should name the file and contain \"%s\"", err, needle);
  unlink(path);
}

static void test_bad_providers(void **state) {
  (void)state;
  expect_prov_error("{\"version\":1,\"providers\":[" POK("P1") "," POK("P1") "]}", "duplicate provider id \"P1\"");
  expect_prov_error("{\"version\":1,\"providers\":[{\"id\":\"P1\",\"name\":\"N\",\"curve_public_key\":\"abc\"}]}",
                    "providers[0] (id \"P1\"): field \"curve_public_key\" must be 40 Z85 characters");
  expect_prov_error("{\"version\":1,\"providers\":[{\"id\":\"P1\",\"name\":\"N\",\"curve_public_key\":\""
                    "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7X\"}]}", "not 41");
  expect_prov_error("{\"version\":1,\"providers\":[{\"id\":\"P1\",\"name\":\"N\",\"curve_public_key\":\"" KEY1 "\"},"
                    "{\"id\":\"P2\",\"name\":\"N\",\"curve_public_key\":\"" KEY1 "\"}]}", "same curve_public_key");
  expect_prov_error("{\"version\":1,\"providers\":[{\"id\":\"P1\",\"name\":\"N\",\"approvals\":[{\"code\":\"RF-MH\",\"from\":\"2020-02-30\"}]}]}",
                    "providers[0] (id \"P1\"): approvals[0] (code \"RF-MH\"): field \"from\"");
  expect_prov_error("{\"version\":1,\"providers\":[{\"id\":\"P1\",\"name\":\"N\",\"approvals\":[{\"code\":\"RF-MH\",\"from\":\"2020-02-01\",\"to\":\"2019-01-01\"}]}]}",
                    "\"to\" is before \"from\"");
  expect_prov_error("{\"version\":1,\"providers\":[{\"id\":\"P1\",\"name\":\"N\",\"approvals\":[{\"code\":\"RF-*-X\",\"from\":\"2020-02-01\"}]}]}",
                    "approvals[0]: field \"code\"");
  expect_prov_error("{\"version\":1,\"providers\":[{\"id\":\"P1\",\"name\":\"N\",\"webhook_url\":\"ftp://x\"}]}",
                    "field \"webhook_url\"");
  expect_prov_error("{\"version\":1,\"providers\":[{\"id\":\"carepass\",\"name\":\"N\"}]}", "reserved");
  expect_prov_error("{\"version\":1,\"providers\":[{\"id\":\"carepass-operator\",\"name\":\"N\"}]}",
                    "reserved for the operator's revocations");
  expect_prov_error("{\"version\":1,\"providers\":[{\"id\":\"P1\",\"name\":\"N\",\"colour\":\"red\"}]}",
                    "unknown field \"colour\"");
  expect_prov_error("{\"version\":1,\"providers\":[{\"id\":\"P1\"}]}", "field \"name\"");
}

static void test_provider_keys(void **state) {
  (void)state;
  const char *path = tmp_file("{\"version\":1,\"providers\":[" POK("P0") ",{\"id\":\"P1\",\"name\":\"N\","
                              "\"curve_public_key\":\"" KEY1 "\",\"webhook_url\":\"https://example.invalid/hook\"}]}");
  prov_registry_t *reg = NULL;
  char err[CP_ERRLEN] = "";
  if (prov_load(path, &reg, err, sizeof err) != 0)
    fail_msg("%s", err);
  const prov_t *p = prov_find_by_key(reg, KEY1);
  assert_non_null(p);
  assert_string_equal(p->id, "P1");
  assert_string_equal(p->webhook_url, "https://example.invalid/hook");
  assert_null(prov_find_by_key(reg, "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf8"));
  prov_destroy(&reg);
  unlink(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_real_catalogue),
    cmocka_unit_test(test_bad_catalogues),
    cmocka_unit_test(test_real_providers),
    cmocka_unit_test(test_prov_approved_edges),
    cmocka_unit_test(test_bad_providers),
    cmocka_unit_test(test_provider_keys),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
