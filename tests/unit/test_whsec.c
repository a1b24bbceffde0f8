/* test_whsec.c -- the providers' webhook secret store (common/whsec.c): issue, rotate with an
 * overlap, the file's form and mode, refused files, and notify's follower picking up a rotation
 * without a restart. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <sodium.h>

#include "cp_log.h"
#include "cp_whsec.h"

static char dir[64], path[128];

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof dir, "/tmp/cp-whsec-XXXXXX");
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/webhook-secrets", dir);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char p[160];
  unlink(path);
  snprintf(p, sizeof p, "%s.lock", path);
  unlink(p);
  rmdir(dir);
  return 0;
}

static void write_text(const char *text, mode_t mode) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  assert_int_equal(chmod(path, mode), 0);
}

static void test_issue_and_rotate(void **state) {
  (void)state;
  char err[CP_ERRLEN];
  cp_whsec_entry_t a, b, c, d;
  bool made = false;
  cp_whsec_store_t *st = NULL;
  /* a missing store is empty */
  assert_int_equal(cp_whsec_store_read(path, &st, err, sizeof err), 0);
  assert_int_equal(cp_whsec_store_count(st), 0);
  assert_null(cp_whsec_store_find(st, "PRV-0001"));
  cp_whsec_store_destroy(&st);
  assert_null(st);

  assert_int_equal(cp_whsec_store_issue(path, "PRV-0002", false, 1000, 86400, &a, &made, err, sizeof err), 0);
  assert_true(made);
  assert_string_equal(a.provider, "PRV-0002");
  assert_int_equal(a.created, 1000);
  assert_string_equal(a.previous, "");
  struct stat sb;
  assert_int_equal(stat(path, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  /* asking again makes nothing and changes nothing */
  assert_int_equal(cp_whsec_store_issue(path, "PRV-0002", false, 2000, 86400, &b, &made, err, sizeof err), 0);
  assert_false(made);
  assert_string_equal(b.secret, a.secret);
  /* a second provider; then PRV-0002 rotates: the old secret is the previous one until now + overlap */
  assert_int_equal(cp_whsec_store_issue(path, "PRV-0001", false, 1500, 86400, &c, &made, err, sizeof err), 0);
  assert_true(made);
  assert_int_equal(cp_whsec_store_issue(path, "PRV-0002", true, 3000, 600, &b, &made, err, sizeof err), 0);
  assert_true(made);
  assert_string_not_equal(b.secret, a.secret);
  assert_string_equal(b.previous, a.secret);
  assert_int_equal(b.previous_until, 3600);
  assert_int_equal(b.created, 3000);
  /* rotating again drops the oldest */
  assert_int_equal(cp_whsec_store_issue(path, "PRV-0002", true, 3100, 600, &d, &made, err, sizeof err), 0);
  assert_string_equal(d.previous, b.secret);
  assert_int_equal(d.previous_until, 3700);

  assert_int_equal(cp_whsec_store_read(path, &st, err, sizeof err), 0);
  assert_int_equal(cp_whsec_store_count(st), 2);
  const cp_whsec_entry_t *e = cp_whsec_store_find(st, "PRV-0002");
  assert_non_null(e);
  assert_string_equal(e->secret, d.secret);
  assert_string_equal(e->previous, b.secret);
  e = cp_whsec_store_find(st, "PRV-0001");
  assert_non_null(e);
  assert_string_equal(e->secret, c.secret);
  assert_null(cp_whsec_store_find(st, "PRV-0003"));
  cp_whsec_store_destroy(&st);

  /* bad provider ids are refused before anything is written */
  assert_int_equal(cp_whsec_store_issue(path, "bad id", false, 1, 1, &a, &made, err, sizeof err), -1);
  assert_int_equal(cp_whsec_store_issue(path, "", false, 1, 1, &a, &made, err, sizeof err), -1);
  sodium_memzero(&a, sizeof a);
  sodium_memzero(&b, sizeof b);
  sodium_memzero(&c, sizeof c);
  sodium_memzero(&d, sizeof d);
}

/* tmpl with every '@' replaced by secret. */
static void subst(char *out, size_t outlen, const char *tmpl, const char *secret) {
  size_t n = 0;
  for (const char *p = tmpl; *p && n + CP_WHSEC_SIZE < outlen; p++) {
    if (*p == '@') {
      memcpy(out + n, secret, strlen(secret));
      n += strlen(secret);
    } else {
      out[n++] = *p;
    }
  }
  out[n] = '\0';
}

static void test_refused_files(void **state) {
  (void)state;
  char err[CP_ERRLEN], good[CP_WHSEC_SIZE], line[512];
  cp_whsec_store_t *st = NULL;
  cp_whsec_new(good);
  /* group-readable */
  snprintf(line, sizeof line, "PRV-0001 %s 1 - 0\n", good);
  write_text(line, 0640);
  assert_int_equal(cp_whsec_store_read(path, &st, err, sizeof err), -1);
  assert_non_null(strstr(err, "0600"));
  /* comments, blank lines and CRLF are fine */
  snprintf(line, sizeof line, "# c\n\nPRV-0001 %s 1 - 0\r\n", good);
  write_text(line, 0600);
  assert_int_equal(cp_whsec_store_read(path, &st, err, sizeof err), 0);
  assert_int_equal(cp_whsec_store_count(st), 1);
  cp_whsec_store_destroy(&st);
  const char *bad[] = {
      "PRV-0001 whsec_short 1 - 0\n",                   /* a secret below 24 bytes */
      "PRV-0001 @ 1 - 5\n",                            /* an until without a previous secret */
      "PRV-0001 @ x - 0\n",                            /* created not a number */
      "PRV-0001 @ 1 -\n",                              /* a field missing */
      "PRV-0001 @ 1 - 0 extra\n",                      /* a field too many */
      "PRV 0001 @ 1 - 0\n",                            /* provider id with a space */
      "PRV-0001 @ 1 - 0\nPRV-0001 @ 1 - 0\n",         /* listed twice */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    subst(line, sizeof line, bad[i], good);
    write_text(line, 0600);
    assert_int_equal(cp_whsec_store_read(path, &st, err, sizeof err), -1);
    assert_null(st);
    assert_null(strstr(err, good + 6));   /* the error never quotes a secret */
  }
  unlink(path);
  sodium_memzero(good, sizeof good);
  sodium_memzero(line, sizeof line);
}

static void test_follow_picks_up_rotation(void **state) {
  (void)state;
  char err[CP_ERRLEN];
  cp_whsec_entry_t a, b;
  bool made;
  cp_whsec_follow_t *f = NULL;
  assert_int_equal(cp_whsec_follow_new(path, &f, err, sizeof err), 0);   /* missing: empty */
  assert_int_equal(cp_whsec_store_count(cp_whsec_follow_store(f)), 0);
  assert_int_equal(cp_whsec_store_issue(path, "PRV-0001", false, 10, 60, &a, &made, err, sizeof err), 0);
  usleep((CP_WHSEC_FOLLOW_MS + 50) * 1000);
  cp_whsec_follow_refresh(f);
  const cp_whsec_entry_t *e = cp_whsec_store_find(cp_whsec_follow_store(f), "PRV-0001");
  assert_non_null(e);
  assert_string_equal(e->secret, a.secret);
  assert_int_equal(cp_whsec_store_issue(path, "PRV-0001", true, 20, 60, &b, &made, err, sizeof err), 0);
  usleep((CP_WHSEC_FOLLOW_MS + 50) * 1000);
  cp_whsec_follow_refresh(f);
  e = cp_whsec_store_find(cp_whsec_follow_store(f), "PRV-0001");
  assert_string_equal(e->secret, b.secret);
  assert_string_equal(e->previous, a.secret);
  /* a broken version leaves the one in force */
  write_text("garbage\n", 0600);
  usleep((CP_WHSEC_FOLLOW_MS + 50) * 1000);
  cp_whsec_follow_refresh(f);
  e = cp_whsec_store_find(cp_whsec_follow_store(f), "PRV-0001");
  assert_non_null(e);
  assert_string_equal(e->secret, b.secret);
  cp_whsec_follow_destroy(&f);
  assert_null(f);
  /* a bad file at start is an error */
  assert_int_equal(cp_whsec_follow_new(path, &f, err, sizeof err), -1);
  assert_null(f);
  unlink(path);
  sodium_memzero(&a, sizeof a);
  sodium_memzero(&b, sizeof b);
}

int main(void) {
  cp_log_init("test", "error");
  if (sodium_init() < 0) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_issue_and_rotate, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refused_files, setup, teardown),
      cmocka_unit_test_setup_teardown(test_follow_picks_up_rotation, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
