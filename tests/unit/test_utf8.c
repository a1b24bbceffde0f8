/* test_utf8.c -- cp_utf8_valid (common/utf8.c): well-formed UTF-8 passes, every kind of
 * ill-formed sequence (RFC 3629, Unicode table 3-7) fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cp_utf8.h"

#define OK(s) assert_true(cp_utf8_valid(s, sizeof(s) - 1))
#define BAD(s) assert_false(cp_utf8_valid(s, sizeof(s) - 1))

static void test_well_formed(void **state) {
  (void)state;
  OK("");
  OK("plain ASCII ev-1:2.3_4");
  OK("Jos\xc3\xa9");                  /* é, 2 bytes */
  OK("\xe2\x82\xac");                 /* €, 3 bytes */
  OK("\xf0\x9f\x98\x80");             /* U+1F600, 4 bytes */
  OK("\xc2\x80\xdf\xbf");             /* U+0080, U+07FF: 2-byte bounds */
  OK("\xe0\xa0\x80\xef\xbf\xbf");     /* U+0800, U+FFFF: 3-byte bounds */
  OK("\xed\x9f\xbf\xee\x80\x80");     /* U+D7FF, U+E000: either side of the surrogates */
  OK("\xf0\x90\x80\x80\xf4\x8f\xbf\xbf"); /* U+10000, U+10FFFF: 4-byte bounds */
  assert_true(cp_utf8_valid("a\0b", 3)); /* NUL is UTF-8; callers refuse it themselves */
}

static void test_ill_formed(void **state) {
  (void)state;
  BAD("\x80");                 /* lone continuation byte */
  BAD("ab\xbf");
  BAD("Jos\xe9");              /* Latin-1 é */
  BAD("\xc0\xaf");             /* overlong '/' */
  BAD("\xc1\xbf");
  BAD("\xe0\x80\xaf");         /* overlong 3-byte */
  BAD("\xe0\x9f\xbf");
  BAD("\xf0\x80\x80\xaf");     /* overlong 4-byte */
  BAD("\xf0\x8f\xbf\xbf");
  BAD("\xed\xa0\x80");         /* U+D800 surrogate */
  BAD("\xed\xbf\xbf");         /* U+DFFF surrogate */
  BAD("\xf4\x90\x80\x80");     /* U+110000 */
  BAD("\xf5\x80\x80\x80");
  BAD("\xff");
  BAD("\xfe\xfe");
  BAD("\xc3");                 /* truncated at the end */
  BAD("\xe2\x82");
  BAD("\xf0\x9f\x98");
  BAD("\xc3(");                /* bad continuation */
  BAD("\xe2\x28\xa1");
  BAD("\xe2\x82\x28");
  BAD("\xf0\x9f\x28\x80");
  BAD("\xf0\x9f\x98\x28");
  /* the length is honoured: a truncated sequence just past len is not read */
  assert_false(cp_utf8_valid("\xc3\xa9", 1));
  assert_true(cp_utf8_valid("ab\xff", 2));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_well_formed),
      cmocka_unit_test(test_ill_formed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
