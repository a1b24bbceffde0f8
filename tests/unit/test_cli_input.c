/* test_cli_input.c -- the carepass CLI's CSV / NDJSON event readers: quoting, bad lines, hex evidence hashes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

/* The readers live in tools/carepass; the unit-test glob links only libcarepass,
 * so the sources are compiled in here (as Core Lightning's run-*.c tests do). */
#include "../../tools/carepass/input_csv.c"
#include "../../tools/carepass/input_event.c"
#include "../../tools/carepass/input_ndjson.c"
#include "../../tools/carepass/input_reader.c"

#define HASH_A "39ad8019f73ded4954ec5f252c93133c88057dd3c5dbf4ddc4e6e8d760a01ede"

/* Open an in-memory file as input (the reader takes ownership of the stream). */
static cli_input_t *open_text(const char *text, const char *name, cli_format_t fmt) {
  FILE *fp = fmemopen((void *)text, strlen(text), "r");
  assert_non_null(fp);
  cli_input_t *in = NULL;
  char err[CP_ERRLEN];
  int rc = cli_input_from_stream(fp, name, fmt, &in, err, sizeof err);
  if (rc != 0) print_error("open: %s\n", err);
  assert_int_equal(rc, 0);
  return in;
}

static void test_csv_split_quotes(void **state) {
  (void)state;
  char **f = NULL;
  size_t n = 0;
  char err[CP_ERRLEN];
  assert_int_equal(cli_csv_split("a,\"b,c\",\"say \"\"hi\"\"\",,\"multi\nline\"\r\n", &f, &n, err, sizeof err), 0);
  assert_int_equal(n, 5);
  assert_string_equal(f[0], "a");
  assert_string_equal(f[1], "b,c");
  assert_string_equal(f[2], "say \"hi\"");
  assert_string_equal(f[3], "");
  assert_string_equal(f[4], "multi\nline");
  cli_csv_free(&f, n);
  assert_null(f);

  assert_int_equal(cli_csv_split("x,", &f, &n, err, sizeof err), 0);
  assert_int_equal(n, 2);
  assert_string_equal(f[1], "");
  cli_csv_free(&f, n);
  assert_int_equal(cli_csv_split("", &f, &n, err, sizeof err), 0);
  assert_int_equal(n, 1);
  cli_csv_free(&f, n);
}

static void test_csv_split_errors(void **state) {
  (void)state;
  char **f = NULL;
  size_t n = 0;
  char err[CP_ERRLEN];
  assert_int_equal(cli_csv_split("a,\"unterminated", &f, &n, err, sizeof err), -1);
  assert_non_null(strstr(err, "unterminated"));
  assert_null(f);
  assert_int_equal(cli_csv_split("a,\"q\"x,b", &f, &n, err, sizeof err), -1);
  assert_non_null(strstr(err, "after a closing quote"));
  assert_int_equal(cli_csv_split("a,b\"c", &f, &n, err, sizeof err), -1);
  assert_non_null(strstr(err, "stray quote"));
}

static void test_hex32(void **state) {
  (void)state;
  uint8_t h[32];
  assert_int_equal(cli_hex32(HASH_A, h), 0);
  assert_int_equal(h[0], 0x39);
  assert_int_equal(h[31], 0xde);
  assert_int_equal(cli_hex32("39AD8019F73DED4954EC5F252C93133C88057DD3C5DBF4DDC4E6E8D760A01EDE", h), 0);
  assert_int_equal(h[1], 0xad);
  assert_int_equal(cli_hex32("39ad", h), -1);                                   /* too short */
  assert_int_equal(cli_hex32(HASH_A "00", h), -1);                              /* too long */
  assert_int_equal(cli_hex32("zz" "ad8019f73ded4954ec5f252c93133c88057dd3c5dbf4ddc4e6e8d760a01ede", h), -1); /* not hex */
  assert_int_equal(cli_hex32("", h), -1);
}

static void test_event_set(void **state) {
  (void)state;
  cli_event_t ev;
  char err[CP_ERRLEN];
  cli_event_init(&ev);
  assert_int_equal(cli_event_set(&ev, "provider_event_id", "e-1", err, sizeof err), 0);
  assert_int_equal(cli_event_set(&ev, "evidence_hash", HASH_A, err, sizeof err), 0);
  assert_int_equal(ev.pb.evidence_hash.len, 32);
  assert_int_equal(cli_event_set(&ev, "evidence_hash", "abc", err, sizeof err), -1);
  assert_non_null(strstr(err, "64 hex digits"));
  assert_int_equal(ev.pb.evidence_hash.len, 32); /* a bad value leaves the old one */
  assert_int_equal(cli_event_set(&ev, "evidence_hash", "", err, sizeof err), 0);
  assert_int_equal(ev.pb.evidence_hash.len, 0);
  assert_int_equal(cli_event_set(&ev, "kind", "Revocation", err, sizeof err), 0);
  assert_int_equal(ev.pb.kind, CAREPASS__V1__EVENT_KIND__EVENT_KIND_REVOCATION);
  assert_int_equal(cli_event_set(&ev, "kind", "award", err, sizeof err), -1);
  assert_int_equal(cli_event_set(&ev, "notes", "ignored", err, sizeof err), 1);
  assert_string_equal(ev.pb.provider_event_id, "e-1");
  cli_event_clear(&ev);
  assert_string_equal(ev.pb.provider_event_id, "");
}

static void test_csv_reader(void **state) {
  (void)state;
  const char *text =
      "provider_event_id,ni_number,qualification_code,completion_date,evidence_hash,kind,notes\n"
      "e1,AB123456C,CC-STD-01,2025-05-06," HASH_A ",completion,\"first, with comma\"\n"
      "\n"
      "e2,AB123456C,RF-MH,2025-01-02,not-hex,completion,x\n"
      "e3,AB123456C,RF-MH,2025-01-02,,,\"note over\ntwo lines\"\n"
      "e4,too,few\n"
      "e5,CE654321A,RF-FIRE,2025-03-03,,revocation,\"\"\"quoted\"\"\"\n";
  cli_input_t *in = open_text(text, "events.csv", CLI_FMT_AUTO);
  assert_int_equal(cli_input_format(in), CLI_FMT_CSV);
  assert_string_equal(cli_input_ignored_columns(in), "notes");
  cli_event_t ev;
  char err[CP_ERRLEN];
  cli_event_init(&ev);

  assert_int_equal(cli_input_next(in, &ev, err, sizeof err), 1);
  assert_int_equal(ev.line, 2);
  assert_string_equal(ev.pb.provider_event_id, "e1");
  assert_string_equal(ev.pb.qualification_code, "CC-STD-01");
  assert_int_equal(ev.pb.evidence_hash.len, 32);
  assert_string_equal(ev.pb.provider_id, ""); /* no column: empty */

  assert_int_equal(cli_input_next(in, &ev, err, sizeof err), -1); /* bad hex; blank line skipped */
  assert_int_equal(ev.line, 4);
  assert_non_null(strstr(err, "evidence_hash"));

  assert_int_equal(cli_input_next(in, &ev, err, sizeof err), 1); /* quoted newline */
  assert_int_equal(ev.line, 5);
  assert_string_equal(ev.pb.provider_event_id, "e3");
  assert_int_equal(ev.pb.evidence_hash.len, 0);
  assert_int_equal(ev.pb.kind, CAREPASS__V1__EVENT_KIND__EVENT_KIND_COMPLETION);

  assert_int_equal(cli_input_next(in, &ev, err, sizeof err), -1); /* wrong field count */
  assert_int_equal(ev.line, 7);
  assert_non_null(strstr(err, "3 fields"));

  assert_int_equal(cli_input_next(in, &ev, err, sizeof err), 1);
  assert_int_equal(ev.line, 8);
  assert_int_equal(ev.pb.kind, CAREPASS__V1__EVENT_KIND__EVENT_KIND_REVOCATION);

  assert_int_equal(cli_input_next(in, &ev, err, sizeof err), 0);
  cli_event_clear(&ev);
  cli_input_destroy(&in);
  assert_null(in);
}

static void test_csv_bad_header(void **state) {
  (void)state;
  const char *text = "foo,bar\n1,2\n";
  FILE *fp = fmemopen((void *)text, strlen(text), "r");
  cli_input_t *in = NULL;
  char err[CP_ERRLEN];
  assert_int_equal(cli_input_from_stream(fp, "x.csv", CLI_FMT_CSV, &in, err, sizeof err), -1);
  assert_null(in);
  assert_non_null(strstr(err, "names no event fields"));

  const char *dup = "provider_event_id,provider_event_id\n";
  fp = fmemopen((void *)dup, strlen(dup), "r");
  assert_int_equal(cli_input_from_stream(fp, "x.csv", CLI_FMT_CSV, &in, err, sizeof err), -1);
  assert_non_null(strstr(err, "appears twice"));
}

static void test_ndjson_reader(void **state) {
  (void)state;
  const char *text =
      "{\"provider_event_id\": \"n1\", \"ni_number\": \"AB 12 34 56 C\", \"evidence_hash\": \"" HASH_A "\", \"extra\": 5}\n"
      "\n"
      "{\"provider_event_id\": \"n2\", \"kind\": 2, \"revokes_event_id\": \"n1\", \"assessor_id\": null}\n"
      "not json at all\n"
      "[1, 2]\n"
      "{\"provider_event_id\": 7}\n"
      "{\"provider_event_id\": \"n3\", \"evidence_hash\": \"short\"}\n"
      "{\"provider_event_id\": \"n4\", \"provider_event_id\": \"dup\"}\n"
      "{\"provider_event_id\": \"n5\"}";  /* no final newline */
  cli_input_t *in = open_text(text, "<stdin>", CLI_FMT_AUTO); /* sniffed */
  assert_int_equal(cli_input_format(in), CLI_FMT_NDJSON);
  cli_event_t ev;
  char err[CP_ERRLEN];
  cli_event_init(&ev);
  assert_int_equal(cli_input_next(in, &ev, err, sizeof err), 1);
  assert_int_equal(ev.line, 1);
  assert_string_equal(ev.pb.ni_number, "AB 12 34 56 C");
  assert_int_equal(ev.pb.evidence_hash.len, 32);
  assert_int_equal(cli_input_next(in, &ev, err, sizeof err), 1);
  assert_int_equal(ev.line, 3);
  assert_int_equal(ev.pb.kind, CAREPASS__V1__EVENT_KIND__EVENT_KIND_REVOCATION);
  assert_string_equal(ev.pb.revokes_event_id, "n1");
  assert_string_equal(ev.pb.assessor_id, "");
  assert_int_equal(cli_input_next(in, &ev, err, sizeof err), -1);
  assert_int_equal(ev.line, 4);
  assert_non_null(strstr(err, "not valid JSON"));
  assert_int_equal(cli_input_next(in, &ev, err, sizeof err), -1);
  assert_non_null(strstr(err, "JSON object"));
  assert_int_equal(cli_input_next(in, &ev, err, sizeof err), -1);
  assert_non_null(strstr(err, "must be a string"));
  assert_int_equal(cli_input_next(in, &ev, err, sizeof err), -1);
  assert_int_equal(ev.line, 7);
  assert_non_null(strstr(err, "64 hex digits"));
  assert_int_equal(cli_input_next(in, &ev, err, sizeof err), -1); /* duplicate key */
  assert_int_equal(cli_input_next(in, &ev, err, sizeof err), 1);
  assert_int_equal(ev.line, 9);
  assert_string_equal(ev.pb.provider_event_id, "n5");
  assert_int_equal(cli_input_next(in, &ev, err, sizeof err), 0);
  cli_event_clear(&ev);
  cli_input_destroy(&in);
}

static void test_sniff_csv_and_empty(void **state) {
  (void)state;
  cli_input_t *in = open_text("\n\nprovider_event_id,kind\nz1,completion\n", "-", CLI_FMT_AUTO);
  assert_int_equal(cli_input_format(in), CLI_FMT_CSV);
  cli_event_t ev;
  char err[CP_ERRLEN];
  cli_event_init(&ev);
  assert_int_equal(cli_input_next(in, &ev, err, sizeof err), 1);
  assert_int_equal(ev.line, 4);
  assert_string_equal(ev.pb.provider_event_id, "z1");
  assert_int_equal(cli_input_next(in, &ev, err, sizeof err), 0);
  cli_input_destroy(&in);

  in = open_text("", "empty.csv", CLI_FMT_AUTO);
  assert_int_equal(cli_input_next(in, &ev, err, sizeof err), 0);
  cli_input_destroy(&in);
  cli_event_clear(&ev);
}

static void test_sample_files_agree(void **state) {
  (void)state;
  /* data/sample-events.csv and .ndjson describe the same events */
  const char *src = getenv("CAREPASS_SOURCE_DIR");
  if (src == NULL) src = ".";
  char p1[4096], p2[4096], err[CP_ERRLEN];
  snprintf(p1, sizeof p1, "%s/data/sample-events.csv", src);
  snprintf(p2, sizeof p2, "%s/data/sample-events.ndjson", src);
  cli_input_t *a = NULL, *b = NULL;
  if (cli_input_open(p1, CLI_FMT_AUTO, &a, err, sizeof err) != 0 ||
      cli_input_open(p2, CLI_FMT_AUTO, &b, err, sizeof err) != 0) {
    cli_input_destroy(&a);
    skip();
  }
  cli_event_t x, y;
  cli_event_init(&x);
  cli_event_init(&y);
  size_t n = 0;
  int ra, rb;
  while ((ra = cli_input_next(a, &x, err, sizeof err)) == 1) {
    /* every CSV event parses, and the NDJSON file has it too (the NDJSON may have more) */
    rb = cli_input_next(b, &y, err, sizeof err);
    assert_int_equal(rb, 1);
    assert_string_equal(x.pb.provider_event_id, y.pb.provider_event_id);
    assert_string_equal(x.pb.qualification_code, y.pb.qualification_code);
    assert_int_equal(x.pb.evidence_hash.len, y.pb.evidence_hash.len);
    n++;
  }
  assert_int_equal(ra, 0);
  assert_true(n > 0);
  while ((rb = cli_input_next(b, &y, err, sizeof err)) == 1) n++;
  assert_int_equal(rb, 0);
  cli_event_clear(&x);
  cli_event_clear(&y);
  cli_input_destroy(&a);
  cli_input_destroy(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_csv_split_quotes),  cmocka_unit_test(test_csv_split_errors),
    cmocka_unit_test(test_hex32),             cmocka_unit_test(test_event_set),
    cmocka_unit_test(test_csv_reader),        cmocka_unit_test(test_csv_bad_header),
    cmocka_unit_test(test_ndjson_reader),     cmocka_unit_test(test_sniff_csv_and_empty),
    cmocka_unit_test(test_sample_files_agree),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
