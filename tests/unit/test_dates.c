/* test_dates.c -- strict date parsing, leap years, month-end clamping and the overridable clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "cp_config.h"
#include "cp_dates.h"

static int32_t day(const char *s) {
  int32_t d = 0;
  if (cp_date_parse(s, &d) != 0) fail_msg("expected a valid date: %s", s);
  return d;
}

static void bad(const char *s) {
  int32_t d;
  if (cp_date_parse(s, &d) == 0) fail_msg("expected an invalid date: %s", s);
}

static void test_known_days(void **state) {
  (void)state;
  assert_int_equal(day("1970-01-01"), 0);
  assert_int_equal(day("1970-01-02"), 1);
  assert_int_equal(day("1969-12-31"), -1);
  assert_int_equal(day("2000-03-01"), 11017);
  assert_int_equal(day("1900-01-01"), -25567);
  assert_int_equal(day("2024-02-29"), 19782);
  assert_int_equal(day("2999-12-31"), 376199);
}

static void test_leap_years(void **state) {
  (void)state;
  day("2024-02-29");
  day("2000-02-29");   /* divisible by 400 */
  bad("1900-02-29");   /* divisible by 100, not 400 */
  bad("2100-02-29");
  bad("2023-02-29");
  day("2023-02-28");
  assert_int_equal(day("2024-03-01") - day("2024-02-28"), 2);
  assert_int_equal(day("2023-03-01") - day("2023-02-28"), 1);
}

static void test_invalid(void **state) {
  (void)state;
  static const char *cases[] = {
    "", "2024", "2024-1-01", "2024-01-1", "2024-01-010", "2024-01-01x", " 2024-01-01",
    "2024/01/01", "20240101", "2024-00-10", "2024-13-01", "2024-01-00", "2024-01-32",
    "2024-04-31", "2024-06-31", "2024-09-31", "2024-11-31", "1899-12-31", "3000-01-01",
    "+024-01-01", "-024-01-01", "2024-+1-01", "2024-0a-01", "２０２４-01-01",
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) bad(cases[i]);
  int32_t d;
  assert_int_equal(cp_date_parse(NULL, &d), -1);
}

static void test_format_round_trip(void **state) {
  (void)state;
  char out[11];
  cp_date_format(0, out);
  assert_string_equal(out, "1970-01-01");
  cp_date_format(19782, out);
  assert_string_equal(out, "2024-02-29");
  /* every day of the allowed range: format and parse agree */
  int32_t first = day("1900-01-01"), last = day("2999-12-31");
  for (int32_t d = first; d <= last; d++) {
    int32_t back;
    cp_date_format(d, out);
    assert_int_equal(cp_date_parse(out, &back), 0);
    assert_int_equal(back, d);
  }
}

static void expect_add(const char *from, int months, const char *want) {
  char out[11];
  cp_date_format(cp_date_add_months(day(from), months), out);
  if (strcmp(out, want) != 0) fail_msg("%s %+d months = %s, want %s", from, months, out, want);
}

static void test_add_months(void **state) {
  (void)state;
  expect_add("2024-01-31", 1, "2024-02-29");
  expect_add("2023-01-31", 1, "2023-02-28");
  expect_add("2024-03-31", -1, "2024-02-29");
  expect_add("2024-05-31", 1, "2024-06-30");
  expect_add("2024-12-15", 1, "2025-01-15");
  expect_add("2024-01-15", -1, "2023-12-15");
  expect_add("2024-02-29", 12, "2025-02-28");
  expect_add("2024-02-29", 48, "2028-02-29");
  expect_add("2024-01-31", -13, "2022-12-31");
  expect_add("2024-08-31", 0, "2024-08-31");
  expect_add("1970-01-01", -1, "1969-12-01");
  expect_add("2000-01-31", 25, "2002-02-28");
}

static void test_today(void **state) {
  (void)state;
  char err[CP_ERRLEN];
  setenv("CAREPASS_TODAY", "2025-06-01", 1);   /* read through the configuration table */
  assert_int_equal(cp_config_load(CP_SVC_ALL, err, sizeof err), 0);
  assert_int_equal(cp_today(), day("2025-06-01"));
  setenv("CAREPASS_TODAY", "2025-02-30", 1);   /* invalid: refused, the real clock */
  assert_int_equal(cp_config_load(CP_SVC_ALL, err, sizeof err), -1);
  int32_t real = (int32_t)(time(NULL) / 86400);
  int32_t t = cp_today();
  assert_true(t == real || t == real + 1);     /* midnight may pass between the calls */
  unsetenv("CAREPASS_TODAY");
  assert_int_equal(cp_config_load(CP_SVC_ALL, err, sizeof err), 0);
  t = cp_today();
  assert_true(t == real || t == real + 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_known_days),
    cmocka_unit_test(test_leap_years),
    cmocka_unit_test(test_invalid),
    cmocka_unit_test(test_format_round_trip),
    cmocka_unit_test(test_add_months),
    cmocka_unit_test(test_today),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
