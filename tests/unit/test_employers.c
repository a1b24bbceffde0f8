/* test_employers.c -- the employer registry (common/employers.c): the real data file, a good file
 * with every field, and each kind of bad file (the error names the file, the entry and the field). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cp_employers.h"

static char *data_path(const char *name) {
  static char buf[4096];
  const char *src = getenv("CAREPASS_SOURCE_DIR");
  snprintf(buf, sizeof buf, "%s/data/%s", src != NULL ? src : ".", name);
  return buf;
}

/* Write `text` to a fresh temporary file; returns its path (static buffer). */
static const char *tmp_file(const char *text) {
  static char path[64];
  snprintf(path, sizeof path, "/tmp/cp-test-employers-XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  size_t n = strlen(text);
  assert_int_equal(write(fd, text, n), (ssize_t)n);
  close(fd);
  return path;
}

static void test_real_employers(void **state) {
  (void)state;
  emp_registry_t *reg = NULL;
  char err[CP_ERRLEN] = "";
  if (emp_load(data_path("employers.json"), &reg, err, sizeof err) != 0) fail_msg("%s", err);
  assert_true(emp_count(reg) >= 2);
  for (size_t i = 0; i < emp_count(reg); i++)
    assert_non_null(strstr(emp_at(reg, i)->name, "SAMPLE")); /* every sample is marked fictional */
  const emp_t *e = emp_find(reg, "EMP-0001");
  assert_non_null(e);
  assert_string_equal(e->cqc_location_id, "1-100000001");
  assert_null(emp_find(reg, "EMP-9999"));
  assert_null(emp_find(reg, NULL));
  emp_destroy(&reg);
  assert_null(reg);
  emp_destroy(&reg); /* NULL-safe */
}

static void test_good_file(void **state) {
  (void)state;
  const char *path = tmp_file(
      "{\"version\":1,\"employers\":[{\"id\":\"B\",\"name\":\"Bee Care\"},"
      "{\"id\":\"A\",\"name\":\"Aye Homes\",\"cqc_location_id\":\"1-123456789\",\"ascwds_workplace_id\":\"G1000001\","
      "\"webhook_url\":\"https://hooks.example.invalid/carepass\"}]}");
  emp_registry_t *reg = NULL;
  char err[CP_ERRLEN] = "";
  if (emp_load(path, &reg, err, sizeof err) != 0) fail_msg("%s", err);
  assert_int_equal(emp_count(reg), 2);
  assert_string_equal(emp_at(reg, 0)->id, "B"); /* file order */
  const emp_t *a = emp_find(reg, "A");
  assert_non_null(a);
  assert_string_equal(a->name, "Aye Homes");
  assert_string_equal(a->ascwds_workplace_id, "G1000001");
  assert_string_equal(a->webhook_url, "https://hooks.example.invalid/carepass");
  assert_string_equal(emp_find(reg, "B")->cqc_location_id, "");
  emp_destroy(&reg);
  unlink(path);
  /* an empty list is a registry with no employers (every employer token then gets 403) */
  path = tmp_file("{\"version\":1,\"employers\":[]}");
  if (emp_load(path, &reg, err, sizeof err) != 0) fail_msg("%s", err);
  assert_int_equal(emp_count(reg), 0);
  assert_null(emp_find(reg, "A"));
  emp_destroy(&reg);
  unlink(path);
}

static void expect_error(const char *json, const char *needle) {
  const char *path = tmp_file(json);
  emp_registry_t *reg = NULL;
  char err[CP_ERRLEN] = "";
  assert_int_equal(emp_load(path, &reg, err, sizeof err), -1);
  assert_null(reg);
  if (strstr(err, needle) == NULL || strstr(err, path) == NULL)
    fail_msg("error \"%s\" should name the file and contain \"%s\"", err, needle);
  unlink(path);
}

#define E(body) "{\"version\":1,\"employers\":[" body "]}"

static void test_bad_files(void **state) {
  (void)state;
  emp_registry_t *reg = NULL;
  char err[CP_ERRLEN] = "";
  assert_int_equal(emp_load("/nonexistent/employers.json", &reg, err, sizeof err), -1);
  assert_non_null(strstr(err, "/nonexistent/employers.json"));
  expect_error("{\"version\":1,\"employers\":[", "line");
  expect_error("{\"version\":2,\"employers\":[]}", "\"version\": 1");
  expect_error("{\"version\":1,\"providers\":[]}", "\"employers\" must be a");
  expect_error(E("{\"id\":\"A\",\"name\":\"N\"},{\"id\":\"A\",\"name\":\"M\"}"), "duplicate employer id \"A\"");
  expect_error(E("{\"id\":\"A B\",\"name\":\"N\"}"), "employers[0]: field \"id\"");
  expect_error(E("{\"id\":\"\",\"name\":\"N\"}"), "employers[0]: field \"id\"");
  expect_error(E("{\"name\":\"N\"}"), "employers[0]: field \"id\"");
  expect_error(E("{\"id\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"name\":\"N\"}"), "field \"id\"");
  expect_error(E("{\"id\":\"A\"}"), "employers[0] (id \"A\"): field \"name\"");
  expect_error(E("{\"id\":\"A\",\"name\":\"\"}"), "field \"name\"");
  expect_error(E("{\"id\":\"A\",\"name\":\"a\\u0007b\"}"), "control characters");
  expect_error(E("{\"id\":\"A\",\"name\":7}"), "field \"name\" must be a string");
  expect_error(E("{\"id\":\"A\",\"name\":\"N\",\"cqc_location_id\":\"123456789\"}"),
               "employers[0] (id \"A\"): field \"cqc_location_id\" must be a CQC location id");
  expect_error(E("{\"id\":\"A\",\"name\":\"N\",\"cqc_location_id\":\"1-\"}"), "field \"cqc_location_id\"");
  expect_error(E("{\"id\":\"A\",\"name\":\"N\",\"cqc_location_id\":\"1-12a4\"}"), "field \"cqc_location_id\"");
  expect_error(E("{\"id\":\"A\",\"name\":\"N\",\"cqc_location_id\":\"2-123\"}"), "field \"cqc_location_id\"");
  expect_error(E("{\"id\":\"A\",\"name\":\"N\",\"ascwds_workplace_id\":\"g-1\"}"), "field \"ascwds_workplace_id\"");
  expect_error(E("{\"id\":\"A\",\"name\":\"N\",\"webhook_url\":\"ftp://x\"}"), "field \"webhook_url\"");
  expect_error(E("{\"id\":\"A\",\"name\":\"N\",\"webhook_url\":\"https://127.0.0.1/hook\"}"), "field \"webhook_url\"");
  expect_error(E("{\"id\":\"A\",\"name\":\"N\",\"colour\":\"red\"}"), "unknown field \"colour\"");
  expect_error(E("\"A\""), "employers[0]: must be a JSON object");
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_real_employers),
    cmocka_unit_test(test_good_file),
    cmocka_unit_test(test_bad_files),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
