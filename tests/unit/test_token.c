/* test_token.c -- provider/worker bearer tokens (common/token.c): round trip, kinds, forgery, expiry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cp_token.h"

static unsigned char secret[CP_SECRET_BYTES];

static int setup(void **state) {
  (void)state;
  if (sodium_init() < 0) return -1;
  memset(secret, 7, sizeof secret);
  return 0;
}

static void test_round_trip(void **state) {
  char tok[CP_TOKEN_MAX], sub[CP_TOKEN_SUBJECT_MAX + 1];
  int64_t exp = 0;
  assert_int_equal(cp_token_make(secret, CP_TOKEN_PROVIDER, "PRV-0001", 2000000000, tok, sizeof tok), 0);
  assert_memory_equal(tok, "cpp_", 4);
  assert_int_equal(cp_token_check(secret, CP_TOKEN_PROVIDER, tok, sub, sizeof sub, &exp, 1900000000), CP_TOKEN_OK);
  assert_string_equal(sub, "PRV-0001");
  assert_int_equal(exp, 2000000000);
  /* worker tokens carry a 64-character pseudonym */
  char pseud[65];
  memset(pseud, 'a', 64);
  pseud[64] = '\0';
  assert_int_equal(cp_token_make(secret, CP_TOKEN_WORKER, pseud, 2000000000, tok, sizeof tok), 0);
  assert_memory_equal(tok, "cpw_", 4);
  assert_int_equal(cp_token_check(secret, CP_TOKEN_WORKER, tok, sub, sizeof sub, NULL, 1), CP_TOKEN_OK);
  assert_string_equal(sub, pseud);
}

static void test_refusals(void **state) {
  char tok[CP_TOKEN_MAX], sub[CP_TOKEN_SUBJECT_MAX + 1];
  assert_int_equal(cp_token_make(secret, CP_TOKEN_PROVIDER, "PRV-0001", 1000, tok, sizeof tok), 0);
  assert_int_equal(cp_token_check(secret, CP_TOKEN_PROVIDER, tok, sub, sizeof sub, NULL, 1000), CP_TOKEN_EXPIRED);
  assert_int_equal(cp_token_check(secret, CP_TOKEN_PROVIDER, tok, sub, sizeof sub, NULL, 999), CP_TOKEN_OK);
  assert_int_equal(cp_token_check(secret, CP_TOKEN_WORKER, tok, sub, sizeof sub, NULL, 1), CP_TOKEN_WRONG_KIND);
  unsigned char other[CP_SECRET_BYTES];
  memset(other, 8, sizeof other);
  assert_int_equal(cp_token_check(other, CP_TOKEN_PROVIDER, tok, sub, sizeof sub, NULL, 1), CP_TOKEN_BAD_MAC);
  /* flip each character of the body: never OK */
  for (size_t i = 4; i < strlen(tok); i++) {
    char t2[CP_TOKEN_MAX];
    strcpy(t2, tok);
    t2[i] = t2[i] == 'A' ? 'B' : 'A';
    assert_int_not_equal(cp_token_check(secret, CP_TOKEN_PROVIDER, t2, sub, sizeof sub, NULL, 1), CP_TOKEN_OK);
  }
  const char *bad[] = {"", "cpp_", "cpp_!!!!", "xyz_AAAA", "cpp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_not_equal(cp_token_check(secret, CP_TOKEN_PROVIDER, bad[i], sub, sizeof sub, NULL, 1), CP_TOKEN_OK);
  assert_int_equal(cp_token_check(secret, CP_TOKEN_PROVIDER, NULL, sub, sizeof sub, NULL, 1), CP_TOKEN_MALFORMED);
  /* subjects: printable, 1..64 */
  assert_int_equal(cp_token_make(secret, CP_TOKEN_PROVIDER, "", 5, tok, sizeof tok), -1);
  assert_int_equal(cp_token_make(secret, CP_TOKEN_PROVIDER, "a b", 5, tok, sizeof tok), -1);
  char longsub[80];
  memset(longsub, 'x', 65);
  longsub[65] = '\0';
  assert_int_equal(cp_token_make(secret, CP_TOKEN_PROVIDER, longsub, 5, tok, sizeof tok), -1);
  assert_int_equal(cp_token_make(secret, CP_TOKEN_PROVIDER, "P", 5, tok, 10), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_round_trip),
    cmocka_unit_test(test_refusals),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
