/* test_ascwds.c -- ASC-WDS training bulk-upload lines (common/ascwds.c): data/asc-wds-categories.json
 * loads against the catalogue, bad mapping files are refused naming the entry and the field, and a
 * line has ASC-WDS's eight columns in order with DD/MM/YYYY dates, an empty EXPIRYDATE for
 * training that does not expire, RFC 4180 quoting, the description cut at a character, and every
 * rule broken refused with a sentence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "cp_ascwds.h"
#include "cp_dates.h"

static cat_catalogue_t *cat;
static ascwds_map_t *map;

static const char *src(void) {
  const char *s = getenv("CAREPASS_SOURCE_DIR");
  return s ? s : CAREPASS_SOURCE_DIR_DEFAULT;
}

static int setup(void **state) {
  (void)state;
  char path[4096], err[CP_ERRLEN];
  snprintf(path, sizeof path, "%s/data/catalogue.json", src());
  if (cat_load(path, &cat, err, sizeof err) != 0) return -1;
  snprintf(path, sizeof path, "%s/data/asc-wds-categories.json", src());
  if (ascwds_load(path, cat, &map, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return -1;
  }
  return 0;
}

static int teardown(void **state) {
  (void)state;
  ascwds_destroy(&map);
  cat_destroy(&cat);
  return 0;
}

static int32_t day(const char *s) {
  int32_t d = 0;
  assert_int_equal(cp_date_parse(s, &d), 0);
  return d;
}

static void test_the_shipped_mapping(void **state) {
  (void)state;
  assert_int_equal(ascwds_category(map, "RF-MH"), 15);
  assert_string_equal(ascwds_category_name(map, "RF-MH"), "Assisting and moving people");
  assert_int_equal(ascwds_category(map, "RF-BLS"), 7);
  assert_int_equal(ascwds_category(map, "CPD-AUT"), 32);
  /* no checked category: not mapped, never guessed */
  assert_int_equal(ascwds_category(map, "RF-FIRE"), 0);
  assert_null(ascwds_category_name(map, "RF-SAFEG"));
  assert_int_equal(ascwds_category(map, "NOPE"), 0);
}

static void test_a_line(void **state) {
  (void)state;
  char out[ASCWDS_LINE_MAX], err[CP_ERRLEN];
  ascwds_line_t l = {.estid = "SUNRISE-01", .workerid = "W 0042", .category = 15,
                     .description = "Moving and handling of people (annual refresher, practical assessment)",
                     .completed = day("2026-02-01"), .expires = day("2027-02-01"),
                     .accredited = ASCWDS_ACCREDITED_YES, .notes = "carepass register r, entry 7"};
  int n = ascwds_format(&l, out, sizeof out, err, sizeof err);
  assert_true(n > 0);
  assert_string_equal(out, "SUNRISE-01,W 0042,15,\"Moving and handling of people (annual refresher, practical "
                           "assessment)\",01/02/2026,01/02/2027,1,\"carepass register r, entry 7\"\r\n");
  assert_int_equal(n, (int)strlen(out));
  /* no expiry: an empty EXPIRYDATE; quotes doubled; other ACCREDITED values */
  l.expires = ASCWDS_NO_EXPIRY;
  l.description = "Autism \"awareness\"";
  l.notes = "";
  l.accredited = ASCWDS_ACCREDITED_UNKNOWN;
  assert_true(ascwds_format(&l, out, sizeof out, err, sizeof err) > 0);
  assert_string_equal(out, "SUNRISE-01,W 0042,15,\"Autism \"\"awareness\"\"\",01/02/2026,,999,\r\n");
  l.accredited = ASCWDS_ACCREDITED_NO;
  assert_true(ascwds_format(&l, out, sizeof out, err, sizeof err) > 0);
  assert_non_null(strstr(out, ",,0,\r\n"));
  l.accredited = ASCWDS_ACCREDITED_UNSET;
  assert_true(ascwds_format(&l, out, sizeof out, err, sizeof err) > 0);
  assert_non_null(strstr(out, ",,,\r\n"));
}

static void test_the_description_is_cut_at_a_character(void **state) {
  (void)state;
  char desc[400] = "", out[ASCWDS_LINE_MAX], err[CP_ERRLEN];
  for (int i = 0; i < 130; i++) strcat(desc, "\xc3\xa9");   /* e-acute: 2 bytes, 1 character */
  ascwds_line_t l = {.estid = "E", .workerid = "W", .category = 7, .description = desc,
                     .completed = day("2026-01-01"), .expires = ASCWDS_NO_EXPIRY, .notes = ""};
  assert_true(ascwds_format(&l, out, sizeof out, err, sizeof err) > 0);
  const char *d = out + strlen("E,W,7,");
  const char *end = strchr(d, ',');
  assert_int_equal(end - d, 2 * ASCWDS_DESCRIPTION_MAX);
}

static void expect_line_refused(ascwds_line_t l, const char *needle) {
  char out[ASCWDS_LINE_MAX], err[CP_ERRLEN] = "";
  assert_int_equal(ascwds_format(&l, out, sizeof out, err, sizeof err), -1);
  if (strstr(err, needle) == NULL) fail_msg("error \"%s\" does not say \"%s\"", err, needle);
}

static void test_rules_broken_are_refused(void **state) {
  (void)state;
  ascwds_line_t ok = {.estid = "E", .workerid = "W", .category = 7, .description = "d",
                      .completed = day("2026-01-01"), .expires = day("2027-01-01"), .notes = ""};
  ascwds_line_t l = ok;
  l.estid = "";
  expect_line_refused(l, "LOCALESTID");
  l = ok;
  l.estid = "A,B";
  expect_line_refused(l, "LOCALESTID");
  l = ok;
  l.workerid = "012345678901234567890123456789012345678901234567890";   /* 51 */
  expect_line_refused(l, "UNIQUEWORKERID");
  l = ok;
  l.workerid = "W\n";
  expect_line_refused(l, "UNIQUEWORKERID");
  l = ok;
  l.category = 0;
  expect_line_refused(l, "no ASC-WDS training category");
  l = ok;
  l.expires = day("2025-12-31");
  expect_line_refused(l, "before the completion date");
  l = ok;
  l.description = "\xff\xfe";
  expect_line_refused(l, "not UTF-8");
  char notes[1100];
  memset(notes, 'n', 1001);
  notes[1001] = '\0';
  l = ok;
  l.notes = notes;
  expect_line_refused(l, "longer than 1000");
  /* a buffer too small is an error, not an overflow */
  char small[16], err[CP_ERRLEN];
  assert_int_equal(ascwds_format(&ok, small, sizeof small, err, sizeof err), -1);
  assert_true(ascwds_id_ok("SUNRISE-01") && ascwds_id_ok("a b") && !ascwds_id_ok(" a") && !ascwds_id_ok("a\""));
}

static void expect_refused(const char *json, const char *needle) {
  char path[] = "/tmp/cp-test-ascwds-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
  close(fd);
  char err[CP_ERRLEN] = "";
  ascwds_map_t *m = NULL;
  assert_int_equal(ascwds_load(path, cat, &m, err, sizeof err), -1);
  assert_null(m);
  if (strstr(err, needle) == NULL) fail_msg("error \"%s\" does not say \"%s\"", err, needle);
  unlink(path);
}

static void test_bad_files_are_refused(void **state) {
  (void)state;
  const char *e = "{\"code\": \"RF-MH\", \"asc_wds_id\": 27, \"budi\": 15, \"name\": \"n\", \"source\": \"s\"}";
  char buf[1024];
  snprintf(buf, sizeof buf, "{\"version\": 1, \"categories\": [{\"code\": \"NOPE\", \"asc_wds_id\": 1, \"budi\": 1, "
           "\"name\": \"n\", \"source\": \"s\"}]}");
  expect_refused(buf, "categories[0]: field \"code\" is not a code of the catalogue");
  snprintf(buf, sizeof buf, "{\"version\": 1, \"categories\": [{\"code\": \"L2-ASCC\", \"asc_wds_id\": 1, "
           "\"budi\": 1, \"name\": \"n\", \"source\": \"s\"}]}");
  expect_refused(buf, "not training");
  snprintf(buf, sizeof buf, "{\"version\": 1, \"categories\": [%s, %s]}", e, e);
  expect_refused(buf, "categories[1]: \"RF-MH\" is mapped twice");
  snprintf(buf, sizeof buf, "{\"version\": 1, \"categories\": [{\"code\": \"RF-MH\", \"asc_wds_id\": 27, "
           "\"budi\": 0, \"name\": \"n\", \"source\": \"s\"}]}");
  expect_refused(buf, "field \"budi\" must be a whole number");
  snprintf(buf, sizeof buf, "{\"version\": 1, \"categories\": [{\"code\": \"RF-MH\", \"asc_wds_id\": 27, "
           "\"budi\": 15, \"name\": \"n\"}]}");
  expect_refused(buf, "field \"source\" must be a non-empty string");
  snprintf(buf, sizeof buf, "{\"version\": 1, \"categories\": [%s], \"colour\": 1}", e);
  expect_refused(buf, "unknown field \"colour\"");
  expect_refused("{\"version\": 1, \"categories\": [", "line");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_the_shipped_mapping),
      cmocka_unit_test(test_a_line),
      cmocka_unit_test(test_the_description_is_cut_at_a_character),
      cmocka_unit_test(test_rules_broken_are_refused),
      cmocka_unit_test(test_bad_files_are_refused),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
