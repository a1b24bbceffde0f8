/* test_ni.c -- National Insurance number normalisation and each HMRC validity rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "cp_crypto.h"

static void valid(const char *in, const char *want) {
  char out[10];
  if (cp_ni_normalise(in, out) != 0) fail_msg("expected valid: \"%s\"", in);
  assert_string_equal(out, want);
}

static void invalid(const char *in) {
  char out[10];
  if (cp_ni_normalise(in, out) == 0) fail_msg("expected invalid: \"%s\"", in);
}

static void test_valid(void **state) {
  (void)state;
  valid("AB123456C", "AB123456C");
  valid("ab123456c", "AB123456C");
  valid(" AB 12 34 56 C ", "AB123456C");
  valid("JG103759A", "JG103759A");
  valid("ZA000000D", "ZA000000D");  /* Z allowed first when not ZZ */
  valid("AZ999999B", "AZ999999B");
  valid("OA123456A", "OA123456A");  /* O is only barred as the second letter */
}

static void test_shape(void **state) {
  (void)state;
  invalid("");
  invalid("   ");
  invalid("AB123456");      /* suffix required */
  invalid("AB123456E");     /* suffix A-D only */
  invalid("AB1234567");     /* suffix must be a letter */
  invalid("AB12345C");      /* five digits */
  invalid("AB1234567C");    /* seven digits */
  invalid("AB12345XC");     /* letter among the digits */
  invalid("A1123456C");     /* digit as prefix letter */
  invalid("1B123456C");
  invalid("AB123456CC");    /* too long */
  invalid("AB-123456-C");   /* punctuation */
  invalid("AB123456C\n");
  invalid("AB\xc3\xa9""123456C");
  char out[10];
  assert_int_equal(cp_ni_normalise(NULL, out), -1);
}

static void test_prefix_letters(void **state) {
  (void)state;
  char buf[16];
  for (const char *c = "DFIQUV"; *c; c++) {     /* barred first letters */
    snprintf(buf, sizeof buf, "%cA123456A", *c);
    invalid(buf);
  }
  for (const char *c = "DFIOQUV"; *c; c++) {    /* barred second letters */
    snprintf(buf, sizeof buf, "A%c123456A", *c);
    invalid(buf);
  }
  static const char *barred[] = {"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"};
  for (size_t i = 0; i < sizeof barred / sizeof barred[0]; i++) {
    snprintf(buf, sizeof buf, "%s123456A", barred[i]);
    invalid(buf);
    /* lower case is normalised first, then still refused */
    snprintf(buf, sizeof buf, "%c%c123456A", barred[i][0] + 32, barred[i][1] + 32);
    invalid(buf);
  }
  /* every other letter pair is accepted */
  int ok = 0;
  for (char a = 'A'; a <= 'Z'; a++)
    for (char b = 'A'; b <= 'Z'; b++) {
      snprintf(buf, sizeof buf, "%c%c000000A", a, b);
      char out[10];
      if (cp_ni_normalise(buf, out) == 0) ok++;
    }
  assert_int_equal(ok, 20 * 19 - 7);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_valid),
    cmocka_unit_test(test_shape),
    cmocka_unit_test(test_prefix_letters),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
