/* test_config.c -- the configuration table: defaults, strict parsing, bounds, --help and Markdown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
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
  assert_int_equal(cp_cfg_int(CP_OPT_REDIS_PORT), 6379);
  assert_string_equal(cp_cfg_str(CP_OPT_REDIS_HOST), "127.0.0.1");
  assert_string_equal(cp_cfg_str(CP_OPT_LOG_LEVEL), "info");
}

static void test_env_value(void **state) {
  (void)state;
  char err[CP_ERRLEN] = "";
  setenv("CAREPASS_REDIS_PORT", "7001", 1);
  setenv("CAREPASS_REDIS_HOST", "redis.internal", 1);
  assert_int_equal(cp_config_load(CP_SVC_VERIFY, err, sizeof err), 0);
  assert_int_equal(cp_cfg_int(CP_OPT_REDIS_PORT), 7001);
  assert_string_equal(cp_cfg_str(CP_OPT_REDIS_HOST), "redis.internal");
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
  assert_int_equal(cp_cfg_int(CP_OPT_REDIS_PORT), 65535);
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
  assert_int_equal(cp_cfg_int(CP_OPT_SHARD), 0);
  assert_int_equal(cp_config_load(CP_SVC_SIGNER, err, sizeof err), -1);
  assert_string_equal(err, "CAREPASS_SHARD=99999 is out of range 0..1023");
}

static void test_accessor_before_load(void **state) {
  (void)state;
  cp_config_free();
  assert_int_equal(cp_cfg_int(CP_OPT_BUS_HWM), 100000);
  assert_string_equal(cp_cfg_str(CP_OPT_HEALTH_DIR), "");
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

/* Every default passes its own row's bounds and validator (a bad default is caught here, not
 * at a service's start). */
static void test_defaults_valid(void **state) {
  (void)state;
  char err[CP_ERRLEN];
  for (size_t i = 0; i < cp_config_table_len; i++) {
    int rc = cp_config_check(&cp_config_table[i], cp_config_table[i].def, err, sizeof err);
    if (rc != 0) fprintf(stderr, "%s: %s\n", cp_config_table[i].name, err);
    assert_int_equal(rc, 0);
  }
}

/* The validator column: values of the wrong form are refused with a sentence naming the
 * variable and what is allowed; values of the right form pass. */
static void test_validators(void **state) {
  (void)state;
  static const struct {
    cp_opt_t opt;
    const char *value;
    bool ok;
  } cases[] = {
    {CP_OPT_LOG_LEVEL, "warn", true},          {CP_OPT_LOG_LEVEL, "DEBUG", true},
    {CP_OPT_LOG_LEVEL, "loud", false},         {CP_OPT_TODAY, "2026-02-28", true},
    {CP_OPT_TODAY, "2026-02-30", false},       {CP_OPT_TODAY, "", true},
    {CP_OPT_REDIS_HOST, "redis-0.svc", true},  {CP_OPT_REDIS_HOST, "[::1]", true},
    {CP_OPT_REDIS_HOST, "a b", false},         {CP_OPT_REDIS_HOST, "host;rm", false},
    {CP_OPT_BUS_VERIFY_IN, "tcp://*:5601", true},
    {CP_OPT_BUS_VERIFY_IN, "tcp://bus:5601", true},
    {CP_OPT_BUS_VERIFY_IN, "ipc:///run/cp/verify", true},
    {CP_OPT_BUS_VERIFY_IN, "tcp://bus", false},     {CP_OPT_BUS_VERIFY_IN, "tcp://bus:0", false},
    {CP_OPT_BUS_VERIFY_IN, "tcp://bus:70000", false},
    {CP_OPT_BUS_VERIFY_IN, "http://bus:5601", false},
    {CP_OPT_SIGNER_ENDPOINTS, "tcp://s0:5610,tcp://s1:5610", true},
    {CP_OPT_SIGNER_ENDPOINTS, "tcp://s0:5610,", false},
    {CP_OPT_GATEWAY_BIND, "0.0.0.0:8080", true},    {CP_OPT_GATEWAY_BIND, "8080", false},
    {CP_OPT_GATEWAY_BIND, "*:8080", false},         {CP_OPT_INTAKE_ID, "intake-1.a_b", true},
    {CP_OPT_INTAKE_ID, "intake 1", false},          {CP_OPT_LOG_ORIGIN, "carepass.example/reg", true},
    {CP_OPT_LOG_ORIGIN, "has space", false},        {CP_OPT_LOG_ORIGIN, "a+b", false},
    {CP_OPT_REGISTER_DIR, "var/register", true},    {CP_OPT_REGISTER_DIR, "var/\nx", false},
    {CP_OPT_TEST_CRASH_POINT, "tile0:2", true},     {CP_OPT_TEST_CRASH_POINT, "", true},
    {CP_OPT_TEST_CRASH_POINT, "tile0", false},      {CP_OPT_TEST_CRASH_POINT, "tile0:0", false},
    {CP_OPT_TEST_CRASH_POINT, ":3", false},         {CP_OPT_TEST_CRASH_POINT, "tile0:2x", false},
  };
  char err[CP_ERRLEN];
  for (size_t i = 0; i < CP_ARRAY_LEN(cases); i++) {
    const cp_config_def_t *d = &cp_config_table[cases[i].opt];
    err[0] = '\0';
    int rc = cp_config_check(d, cases[i].value, err, sizeof err);
    if ((rc == 0) != cases[i].ok) fprintf(stderr, "%s=%s: rc %d %s\n", d->name, cases[i].value, rc, err);
    assert_int_equal(rc == 0, cases[i].ok);
    if (!cases[i].ok) {
      assert_non_null(strstr(err, d->name));
      assert_non_null(strstr(err, "expected"));
    }
  }
  /* and cp_config_load refuses to start on one */
  setenv("CAREPASS_REDIS_HOST", "a b", 1);
  assert_int_equal(cp_config_load(CP_SVC_INTAKE, err, sizeof err), -1);
  assert_non_null(strstr(err, "CAREPASS_REDIS_HOST"));
}

/* The table is indexed by its constants: row CP_OPT_X is named X. */
static void test_constants_match_rows(void **state) {
  (void)state;
  assert_int_equal(cp_config_table_len, CP_OPT__COUNT);
  assert_string_equal(cp_config_table[CP_OPT_REDIS_PORT].name, "REDIS_PORT");
  assert_string_equal(cp_config_table[CP_OPT_TOKEN_SECRET].name, "TOKEN_SECRET");
  for (size_t i = 0; i < cp_config_table_len; i++)
    for (size_t j = i + 1; j < cp_config_table_len; j++)
      assert_string_not_equal(cp_config_table[i].name, cp_config_table[j].name);
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
    cmocka_unit_test_teardown(test_defaults_valid, teardown),
    cmocka_unit_test_teardown(test_validators, teardown),
    cmocka_unit_test_teardown(test_constants_match_rows, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
