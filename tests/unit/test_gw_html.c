/* test_gw_html.c -- the employer page's HTML writer (services/gateway/gw_html.c): every character
 * that could end a text or an attribute value is escaped, text that is not UTF-8 marks the page
 * bad (it is then never sent), and dates are written one way, d Month yyyy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "cp_dates.h"
#include "gw_html.h"

static void escapes_markup(void **state) {
  (void)state;
  gw_jw_t w;
  gw_jw_init(&w, 8);
  gw_html_text(&w, "a<b>&\"'c</script><img src=x onerror=alert(1)>");
  assert_string_equal(w.s, "a&lt;b&gt;&amp;&quot;&#39;c&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;");
  assert_false(w.bad);
  gw_jw_free(&w);
  gw_jw_init(&w, 8);
  gw_html_text(&w, "Caf\xc3\xa9 \xe2\x80\x94 plain"); /* UTF-8 passes as it is */
  assert_string_equal(w.s, "Caf\xc3\xa9 \xe2\x80\x94 plain");
  assert_false(w.bad);
  gw_jw_free(&w);
}

static void not_utf8_marks_the_page_bad(void **state) {
  (void)state;
  const char *bad[] = {"\xff", "ok\xc3(", "\xed\xa0\x80", "\xc0\xaf"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    gw_jw_t w;
    gw_jw_init(&w, 8);
    gw_html_text(&w, bad[i]);
    assert_true(w.bad);
    gw_jw_free(&w);
  }
}

static void one_date_format(void **state) {
  (void)state;
  char d[GW_HTML_DATE_MAX];
  gw_html_date("2027-03-12", d);
  assert_string_equal(d, "12 March 2027");
  gw_html_date("2026-01-05", d);
  assert_string_equal(d, "5 January 2026");
  gw_html_date("2026-02-30", d); /* not a date: copied, never guessed */
  assert_string_equal(d, "2026-02-30");
  gw_html_date("", d);
  assert_string_equal(d, "");
  int32_t day;
  assert_int_equal(cp_date_parse("2024-12-31", &day), 0);
  gw_html_day(day + 1, d);
  assert_string_equal(d, "1 January 2025");
}

static void fmt_is_cut_not_overrun(void **state) {
  (void)state;
  char big[3000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  gw_jw_t w;
  gw_jw_init(&w, 8);
  gw_html_fmt(&w, "<p>%s</p>", big);
  assert_int_equal(w.len, 1023);
  gw_jw_free(&w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(escapes_markup),
    cmocka_unit_test(not_utf8_marks_the_page_bad),
    cmocka_unit_test(one_date_format),
    cmocka_unit_test(fmt_is_cut_not_overrun),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
