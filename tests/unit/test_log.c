/* test_log.c -- JSON-lines logging: escaping, fields, level filter, long lines, threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "cp_log.h"

static char tmpl[64];   // file that stderr is redirected into
static int saved_fd = -1;

/* Send stderr to a fresh temp file. */
static void capture_begin(void) {
  snprintf(tmpl, sizeof tmpl, "/tmp/cp-test-log-XXXXXX");
  int fd = mkstemp(tmpl);
  assert_true(fd >= 0);
  saved_fd = dup(2);
  assert_true(saved_fd >= 0);
  assert_int_equal(dup2(fd, 2), 2);
  close(fd);
}

/* Restore stderr; return what was written (malloc'd). */
static char *capture_end(void) {
  assert_int_equal(dup2(saved_fd, 2), 2);
  close(saved_fd);
  FILE *f = fopen(tmpl, "r");
  assert_non_null(f);
  char *buf = calloc(1, 1 << 20);
  assert_non_null(buf);
  size_t n = fread(buf, 1, (1 << 20) - 1, f);
  buf[n] = '\0';
  fclose(f);
  unlink(tmpl);
  return buf;
}

static json_t *parse_line(const char *line, size_t len) {
  json_error_t e;
  json_t *j = json_loadb(line, len, 0, &e);
  if (j == NULL) fail_msg("not JSON (%s): %.*s", e.text, (int)len, line);
  return j;
}

static void test_fields_and_escaping(void **state) {
  (void)state;
  cp_log_init("intake", "info");
  capture_begin();
  cp_log_info("quote \" backslash \\ newline \n tab \t ctl \x01 del \x7f",
              CP_KV_STR("utf8", "caf\xc3\xa9 \xe2\x9c\x93"), CP_KV_STR("bad", "a\xff" "b\xc3"),
              CP_KV_INT("count", -42), CP_KV_DBL("ratio", 0.5), CP_KV_STR("null", NULL), CP_KV_END);
  char *out = capture_end();
  size_t len = strlen(out);
  assert_true(len > 0);
  assert_int_equal(out[len - 1], '\n');
  assert_null(memchr(out, '\n', len - 1)); /* exactly one line */
  assert_non_null(strstr(out, "\\u0001"));
  json_t *j = parse_line(out, len);
  assert_string_equal(json_string_value(json_object_get(j, "level")), "info");
  assert_string_equal(json_string_value(json_object_get(j, "service")), "intake");
  assert_string_equal(json_string_value(json_object_get(j, "msg")),
                      "quote \" backslash \\ newline \n tab \t ctl \x01 del \x7f");
  assert_string_equal(json_string_value(json_object_get(j, "utf8")), "caf\xc3\xa9 \xe2\x9c\x93");
  assert_string_equal(json_string_value(json_object_get(j, "bad")), "a\xef\xbf\xbd" "b\xef\xbf\xbd");
  assert_int_equal(json_integer_value(json_object_get(j, "count")), -42);
  assert_true(json_real_value(json_object_get(j, "ratio")) == 0.5);
  assert_string_equal(json_string_value(json_object_get(j, "null")), "(null)");
  /* ts: 2026-11-22T21:05:12.123Z */
  const char *ts = json_string_value(json_object_get(j, "ts"));
  assert_non_null(ts);
  assert_int_equal(strlen(ts), 24);
  assert_int_equal(ts[10], 'T');
  assert_int_equal(ts[19], '.');
  assert_int_equal(ts[23], 'Z');
  /* key order: ts, level, service, msg first */
  assert_memory_equal(out, "{\"ts\":", 6);
  json_decref(j);
  free(out);
}

static void test_level_filter(void **state) {
  (void)state;
  cp_log_init("verify", "warn");
  capture_begin();
  cp_log_debug("d", CP_KV_END);
  cp_log_info("i", CP_KV_END);
  cp_log_warn("w", CP_KV_END);
  cp_log_error("e", CP_KV_END);
  char *out = capture_end();
  assert_null(strstr(out, "\"msg\":\"d\""));
  assert_null(strstr(out, "\"msg\":\"i\""));
  assert_non_null(strstr(out, "\"level\":\"warn\""));
  assert_non_null(strstr(out, "\"level\":\"error\""));
  free(out);
  cp_log_init("verify", "nonsense"); /* unknown -> info */
  capture_begin();
  cp_log_debug("d", CP_KV_END);
  cp_log_info("i", CP_KV_END);
  out = capture_end();
  assert_null(strstr(out, "\"msg\":\"d\""));
  assert_non_null(strstr(out, "\"msg\":\"i\""));
  free(out);
}

static void test_long_line_stays_json(void **state) {
  (void)state;
  cp_log_init("signer", "debug");
  size_t n = 20000;
  char *big = malloc(n + 1);
  assert_non_null(big);
  for (size_t i = 0; i < n; i++) big[i] = "a\",\\\n"[i % 5];
  big[n] = '\0';
  capture_begin();
  cp_log_info("short", CP_KV_STR("big", big), CP_KV_INT("after", 1), CP_KV_END);
  cp_log_info(big, CP_KV_STR("k", "v"), CP_KV_END);
  char *out = capture_end();
  char *nl = strchr(out, '\n');
  assert_non_null(nl);
  json_t *j = parse_line(out, (size_t)(nl - out));
  assert_true(json_is_true(json_object_get(j, "truncated")));
  assert_string_equal(json_string_value(json_object_get(j, "msg")), "short");
  json_decref(j);
  char *nl2 = strchr(nl + 1, '\n');
  assert_non_null(nl2);
  j = parse_line(nl + 1, (size_t)(nl2 - nl - 1));
  assert_true(json_is_true(json_object_get(j, "truncated")));
  json_decref(j);
  free(out);
  free(big);
}

static void *log_thread(void *arg) {
  long id = (long)arg;
  for (int i = 0; i < 200; i++)
    cp_log_info("from a thread", CP_KV_INT("thread", id), CP_KV_INT("i", i),
                CP_KV_STR("pad", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"), CP_KV_END);
  return NULL;
}

static void test_threads(void **state) {
  (void)state;
  cp_log_init("bus", "info");
  capture_begin();
  pthread_t t[4];
  for (long i = 0; i < 4; i++) assert_int_equal(pthread_create(&t[i], NULL, log_thread, (void *)i), 0);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  char *out = capture_end();
  int lines = 0;
  for (char *p = out; *p; lines++) {
    char *nl = strchr(p, '\n');
    assert_non_null(nl);
    json_decref(parse_line(p, (size_t)(nl - p)));
    p = nl + 1;
  }
  assert_int_equal(lines, 800);
  free(out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_fields_and_escaping),
    cmocka_unit_test(test_level_filter),
    cmocka_unit_test(test_long_line_stays_json),
    cmocka_unit_test(test_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
