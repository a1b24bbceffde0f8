/* test_config.c -- the configuration table: defaults, strict parsing, bounds, --help and Markdown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cp_config.h"

static int teardown(void **state) {
  (void)state;
  unsetenv("CAREPASS_REDIS_PORT");
  unsetenv("CAREPASS_REDIS_HOST");
  unsetenv("CAREPASS_LOG_LEVEL");
  unsetenv("CAREPASS_SHARD");
  cp_config_free();
  return 0;
}

static void test_defaults(void **state) {
  (void)state;
  char err[CP_ERRLEN] = "";
  assert_int_equal(cp_config_load(CP_SVC_INTAKE, err, sizeof err), 0);
  assert_int_equal(cp_cfg_int("REDIS_PORT"), 6379);
  assert_string_equal(cp_cfg_str("REDIS_HOST"), "127.0.0.1");
  assert_string_equal(cp_cfg_str("LOG_LEVEL"), "info");
}

static void test_env_value(void **state) {
  (void)state;
  char err[CP_ERRLEN] = "";
  setenv("CAREPASS_REDIS_PORT", "7001", 1);
  setenv("CAREPASS_REDIS_HOST", "redis.internal", 1);
  assert_int_equal(cp_config_load(CP_SVC_VERIFY, err, sizeof err), 0);
  assert_int_equal(cp_cfg_int("REDIS_PORT"), 7001);
  assert_string_equal(cp_cfg_str("REDIS_HOST"), "redis.internal");
}

static void test_out_of_range(void **state) {
  (void)state;
  char err[CP_ERRLEN] = "";
  setenv("CAREPASS_REDIS_PORT", "70000", 1);
  assert_int_equal(cp_config_load(CP_SVC_INTAKE, err, sizeof err), -1);
  assert_string_equal(err, "CAREPASS_REDIS_PORT=70000 is out of range 1..65535");
  setenv("CAREPASS_REDIS_PORT", "0", 1);
  assert_int_equal(cp_config_load(CP_SVC_INTAKE, err, sizeof err), -1);
  assert_string_equal(err, "CAREPASS_REDIS_PORT=0 is out of range 1..65535");
  /* the bounds themselves are allowed */
  setenv("CAREPASS_REDIS_PORT", "1", 1);
  assert_int_equal(cp_config_load(CP_SVC_INTAKE, err, sizeof err), 0);
  setenv("CAREPASS_REDIS_PORT", "65535", 1);
  assert_int_equal(cp_config_load(CP_SVC_INTAKE, err, sizeof err), 0);
  assert_int_equal(cp_cfg_int("REDIS_PORT"), 65535);
}

static void test_not_integer(void **state) {
  (void)state;
  static const char *bad[] = {"", "12ab", " 12", "12 ", "+12", "0x10", "1e3", "-", "99999999999999999999999"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char err[CP_ERRLEN] = "";
    setenv("CAREPASS_REDIS_PORT", bad[i], 1);
    assert_int_equal(cp_config_load(CP_SVC_INTAKE, err, sizeof err), -1);
    assert_non_null(strstr(err, "CAREPASS_REDIS_PORT"));
    assert_non_null(strstr(err, "not an integer"));
  }
}

static void test_string_length(void **state) {
  (void)state;
  char err[CP_ERRLEN] = "";
  setenv("CAREPASS_REDIS_HOST", "", 1); /* min length 1 */
  assert_int_equal(cp_config_load(CP_SVC_INTAKE, err, sizeof err), -1);
  assert_non_null(strstr(err, "CAREPASS_REDIS_HOST"));
  assert_non_null(strstr(err, "1..255"));
  unsetenv("CAREPASS_REDIS_HOST");
  setenv("CAREPASS_LOG_LEVEL", "verbose-debugging", 1); /* max length 8 */
  assert_int_equal(cp_config_load(CP_SVC_INTAKE, err, sizeof err), -1);
  assert_non_null(strstr(err, "CAREPASS_LOG_LEVEL"));
}

static void test_row_outside_mask(void **state) {
  (void)state;
  char err[CP_ERRLEN] = "";
  /* SHARD is read only by the signer: intake ignores a bad value and the
   * accessor still answers with the default. */
  setenv("CAREPASS_SHARD", "99999", 1);
  assert_int_equal(cp_config_load(CP_SVC_INTAKE, err, sizeof err), 0);
  assert_int_equal(cp_cfg_int("SHARD"), 0);
  assert_int_equal(cp_config_load(CP_SVC_SIGNER, err, sizeof err), -1);
  assert_string_equal(err, "CAREPASS_SHARD=99999 is out of range 0..1023");
}

static void test_accessor_before_load(void **state) {
  (void)state;
  cp_config_free();
  assert_int_equal(cp_cfg_int("BUS_HWM"), 100000);
  assert_string_equal(cp_cfg_str("HEALTH_DIR"), "");
}

static char *capture(void (*fn)(FILE *)) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  fn(f);
  fclose(f);
  return buf;
}

static void help_intake(FILE *f) { cp_config_help(f, "carepass-intake", CP_SVC_INTAKE, "The provider edge."); }
static void md_signer(FILE *f) { cp_config_markdown(f, CP_SVC_SIGNER); }

static void test_help(void **state) {
  (void)state;
  char *out = capture(help_intake);
  assert_non_null(strstr(out, "Usage: carepass-intake"));
  assert_non_null(strstr(out, "The provider edge."));
  assert_non_null(strstr(out, "CAREPASS_REDIS_PORT"));
  assert_non_null(strstr(out, "1..65535"));
  assert_non_null(strstr(out, "Redis port"));
  assert_null(strstr(out, "CAREPASS_SHARD")); /* not an intake option */
  free(out);
}

static void test_markdown(void **state) {
  (void)state;
  char *out = capture(md_signer);
  const char *head = "| variable | default | allowed | read by | meaning |\n| --- | --- | --- | --- | --- |\n";
  assert_memory_equal(out, head, strlen(head));
  assert_non_null(strstr(out, "| `CAREPASS_SHARD` | `0` | 0..1023 | signer |"));
  assert_null(strstr(out, "INTAKE_BIND"));
  /* every row has exactly six pipes (no unescaped | in a cell) */
  for (char *line = out; *line; ) {
    char *nl = strchr(line, '\n');
    assert_non_null(nl);
    int pipes = 0;
    for (char *p = line; p < nl; p++)
      if (*p == '|' && (p == line || p[-1] != '\\')) pipes++;
    assert_int_equal(pipes, 6);
    line = nl + 1;
  }
  free(out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_teardown(test_defaults, teardown),
    cmocka_unit_test_teardown(test_env_value, teardown),
    cmocka_unit_test_teardown(test_out_of_range, teardown),
    cmocka_unit_test_teardown(test_not_integer, teardown),
    cmocka_unit_test_teardown(test_string_length, teardown),
    cmocka_unit_test_teardown(test_row_outside_mask, teardown),
    cmocka_unit_test_teardown(test_accessor_before_load, teardown),
    cmocka_unit_test_teardown(test_help, teardown),
    cmocka_unit_test_teardown(test_markdown, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
