/* test_readme_config.c -- README.md's configuration table must be exactly what the
 * config table generates. Run with --print to get the text to paste. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cp_config.h"
#include "cp_util.h"

#define BEGIN_MARK "<!-- config:begin (generated from common/cp_config_options.h) -->\n"
#define END_MARK "<!-- config:end -->"

static char *generated(void) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  cp_config_markdown(f, CP_SVC_ALL);
  fclose(f);
  return buf;
}

static void test_readme_matches_table(void **state) {
  (void)state;
  const char *src = getenv("CAREPASS_SOURCE_DIR");
  if (src == NULL) src = CAREPASS_SOURCE_DIR_DEFAULT;
  char path[4096];
  snprintf(path, sizeof path, "%s/README.md", src);
  uint8_t *readme = NULL;
  size_t rlen = 0;
  char err[CP_ERRLEN];
  assert_int_equal(cp_read_file(path, 1 << 20, &readme, &rlen, err, sizeof err), 0);
  const char *b = strstr((const char *)readme, BEGIN_MARK);
  assert_non_null(b);
  b += strlen(BEGIN_MARK);
  const char *e = strstr(b, END_MARK);
  assert_non_null(e);
  char *want = generated();
  size_t have_len = (size_t)(e - b);
  if (have_len != strlen(want) || memcmp(b, want, have_len) != 0) {
    fprintf(stderr, "README.md configuration table is out of date; regenerate with\n"
                    "  build/tests/test_readme_config --print\n");
    fail();
  }
  free(want);
  free(readme);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--print") == 0) {
    char *t = generated();
    fputs(t, stdout);
    free(t);
    return 0;
  }
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_readme_matches_table)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
