/* test_token.c -- bearer tokens (common/token.c, token_revoke.c): round trip, ids, kinds, forgery,
 * expiry, lifetime bounds, the retired version 1, and the revocation list on disk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cp_token.h"

static unsigned char secret[CP_SECRET_BYTES];
#define NOW 1900000000LL

static int setup(void **state) {
  (void)state;
  if (sodium_init() < 0) return -1;
  memset(secret, 7, sizeof secret);
  return 0;
}

static void test_round_trip(void **state) {
  (void)state;
  char tok[CP_TOKEN_MAX], id[CP_TOKEN_ID_HEX], id2[CP_TOKEN_ID_HEX], tok2[CP_TOKEN_MAX];
  cp_token_info_t info;
  int64_t exp = NOW + 86400;
  assert_int_equal(cp_token_make(secret, CP_TOKEN_PROVIDER, "PRV-0001", exp, tok, sizeof tok, id), 0);
  assert_memory_equal(tok, "cpp_", 4);
  assert_int_equal(cp_token_check(secret, CP_TOKEN_PROVIDER, tok, &info, NOW), CP_TOKEN_OK);
  assert_string_equal(info.subject, "PRV-0001");
  assert_int_equal(info.expiry, exp);
  assert_string_equal(info.id_hex, id);
  assert_int_equal(strlen(id), 32);
  uint8_t bin[CP_TOKEN_ID_BYTES];
  assert_int_equal(cp_token_id_parse(id, bin), 0);
  assert_memory_equal(bin, info.id, CP_TOKEN_ID_BYTES);
  /* the same subject and expiry twice: two tokens with different ids */
  assert_int_equal(cp_token_make(secret, CP_TOKEN_PROVIDER, "PRV-0001", exp, tok2, sizeof tok2, id2), 0);
  assert_string_not_equal(id, id2);
  assert_string_not_equal(tok, tok2);
  /* worker tokens carry a 64-character pseudonym */
  char pseud[65];
  memset(pseud, 'a', 64);
  pseud[64] = '\0';
  assert_int_equal(cp_token_make(secret, CP_TOKEN_WORKER, pseud, NOW + 3600, tok, sizeof tok, NULL), 0);
  assert_memory_equal(tok, "cpw_", 4);
  assert_true(strlen(tok) < CP_TOKEN_MAX);
  assert_int_equal(cp_token_check(secret, CP_TOKEN_WORKER, tok, &info, NOW), CP_TOKEN_OK);
  assert_string_equal(info.subject, pseud);
  assert_int_equal(cp_token_check(secret, CP_TOKEN_WORKER, tok, NULL, NOW), CP_TOKEN_OK);
}

static void test_refusals(void **state) {
  (void)state;
  char tok[CP_TOKEN_MAX];
  cp_token_info_t info;
  assert_int_equal(cp_token_make(secret, CP_TOKEN_PROVIDER, "PRV-0001", NOW, tok, sizeof tok, NULL), 0);
  assert_int_equal(cp_token_check(secret, CP_TOKEN_PROVIDER, tok, &info, NOW), CP_TOKEN_EXPIRED);
  assert_string_equal(info.subject, "PRV-0001"); /* genuine: its id can still be named */
  assert_int_equal(cp_token_check(secret, CP_TOKEN_PROVIDER, tok, &info, NOW - 1), CP_TOKEN_OK);
  assert_int_equal(cp_token_check(secret, CP_TOKEN_WORKER, tok, &info, 1), CP_TOKEN_WRONG_KIND);
  unsigned char other[CP_SECRET_BYTES];
  memset(other, 8, sizeof other);
  assert_int_equal(cp_token_check(other, CP_TOKEN_PROVIDER, tok, &info, 1), CP_TOKEN_BAD_MAC);
  /* flip each character of the body: never OK */
  for (size_t i = 4; i < strlen(tok); i++) {
    char t2[CP_TOKEN_MAX];
    strcpy(t2, tok);
    t2[i] = t2[i] == 'A' ? 'B' : 'A';
    assert_int_not_equal(cp_token_check(secret, CP_TOKEN_PROVIDER, t2, &info, NOW - 1), CP_TOKEN_OK);
  }
  const char *bad[] = {"", "cpp_", "cpp_!!!!", "xyz_AAAA", "cpp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_not_equal(cp_token_check(secret, CP_TOKEN_PROVIDER, bad[i], &info, 1), CP_TOKEN_OK);
  assert_int_equal(cp_token_check(secret, CP_TOKEN_PROVIDER, NULL, &info, 1), CP_TOKEN_MALFORMED);
  /* subjects: printable, 1..64 */
  assert_int_equal(cp_token_make(secret, CP_TOKEN_PROVIDER, "", 5, tok, sizeof tok, NULL), -1);
  assert_int_equal(cp_token_make(secret, CP_TOKEN_PROVIDER, "a b", 5, tok, sizeof tok, NULL), -1);
  char longsub[80];
  memset(longsub, 'x', 65);
  longsub[65] = '\0';
  assert_int_equal(cp_token_make(secret, CP_TOKEN_PROVIDER, longsub, 5, tok, sizeof tok, NULL), -1);
  assert_int_equal(cp_token_make(secret, CP_TOKEN_PROVIDER, "P", 5, tok, 10, NULL), -1);
}

/* Lifetimes are bounded at check time: a genuine 10-year provider token or a week-long worker
 * token is refused whatever made it. */
static void test_lifetime_bounds(void **state) {
  (void)state;
  char tok[CP_TOKEN_MAX];
  cp_token_info_t info;
  assert_int_equal(cp_token_make(secret, CP_TOKEN_PROVIDER, "PRV-0001", NOW + CP_TOKEN_PROVIDER_MAX_S, tok, sizeof tok, NULL), 0);
  assert_int_equal(cp_token_check(secret, CP_TOKEN_PROVIDER, tok, &info, NOW), CP_TOKEN_OK);
  assert_int_equal(cp_token_make(secret, CP_TOKEN_PROVIDER, "PRV-0001", NOW + 3650LL * 86400, tok, sizeof tok, NULL), 0);
  assert_int_equal(cp_token_check(secret, CP_TOKEN_PROVIDER, tok, &info, NOW), CP_TOKEN_TOO_LONG);
  /* ... which becomes acceptable only once it is within a year of its expiry */
  assert_int_equal(cp_token_check(secret, CP_TOKEN_PROVIDER, tok, &info, NOW + 3650LL * 86400 - 86400), CP_TOKEN_OK);
  assert_int_equal(cp_token_make(secret, CP_TOKEN_WORKER, "abcd", NOW + CP_TOKEN_WORKER_MAX_S, tok, sizeof tok, NULL), 0);
  assert_int_equal(cp_token_check(secret, CP_TOKEN_WORKER, tok, &info, NOW), CP_TOKEN_OK);
  assert_int_equal(cp_token_make(secret, CP_TOKEN_WORKER, "abcd", NOW + 7 * 86400, tok, sizeof tok, NULL), 0);
  assert_int_equal(cp_token_check(secret, CP_TOKEN_WORKER, tok, &info, NOW), CP_TOKEN_TOO_LONG);
  assert_int_equal(cp_token_make(secret, CP_TOKEN_WORKER, "abcd", INT64_MAX, tok, sizeof tok, NULL), 0);
  assert_int_equal(cp_token_check(secret, CP_TOKEN_WORKER, tok, &info, NOW), CP_TOKEN_TOO_LONG);
}

/* The employer kind: its own prefix, inside the MAC (a prefix swapped to another kind's is refused),
 * a year's lifetime at most, and the kind of any token read from its prefix. */
static void test_employer_kind(void **state) {
  (void)state;
  char tok[CP_TOKEN_MAX], id[CP_TOKEN_ID_HEX];
  cp_token_info_t info;
  assert_int_equal(cp_token_make(secret, CP_TOKEN_EMPLOYER, "EMP-0001", NOW + 86400, tok, sizeof tok, id), 0);
  assert_memory_equal(tok, "cpe_", 4);
  assert_int_equal(cp_token_check(secret, CP_TOKEN_EMPLOYER, tok, &info, NOW), CP_TOKEN_OK);
  assert_string_equal(info.subject, "EMP-0001");
  assert_string_equal(info.id_hex, id);
  assert_int_equal(cp_token_check(secret, CP_TOKEN_PROVIDER, tok, &info, NOW), CP_TOKEN_WRONG_KIND);
  assert_int_equal(cp_token_check(secret, CP_TOKEN_WORKER, tok, &info, NOW), CP_TOKEN_WRONG_KIND);
  cp_token_kind_t k;
  assert_int_equal(cp_token_kind_of(tok, &k), 0);
  assert_int_equal(k, CP_TOKEN_EMPLOYER);
  assert_string_equal(cp_token_kind_name(k), "employer");
  assert_int_equal(cp_token_kind_of("cpw_x", &k), 0);
  assert_int_equal(k, CP_TOKEN_WORKER);
  assert_int_equal(cp_token_kind_of("cpx_x", &k), -1);
  assert_int_equal(cp_token_kind_of(NULL, &k), -1);
  /* the same body under another kind's prefix: the MAC covers the prefix */
  char swapped[CP_TOKEN_MAX];
  strcpy(swapped, tok);
  memcpy(swapped, "cpp_", 4);
  assert_int_equal(cp_token_check(secret, CP_TOKEN_PROVIDER, swapped, &info, NOW), CP_TOKEN_BAD_MAC);
  char ptok[CP_TOKEN_MAX];
  assert_int_equal(cp_token_make(secret, CP_TOKEN_PROVIDER, "EMP-0001", NOW + 86400, ptok, sizeof ptok, NULL), 0);
  memcpy(ptok, "cpe_", 4);
  assert_int_equal(cp_token_check(secret, CP_TOKEN_EMPLOYER, ptok, &info, NOW), CP_TOKEN_BAD_MAC);
  /* lifetime: a year, like a provider's */
  assert_int_equal(cp_token_make(secret, CP_TOKEN_EMPLOYER, "EMP-0001", NOW + CP_TOKEN_EMPLOYER_MAX_S, tok, sizeof tok, NULL), 0);
  assert_int_equal(cp_token_check(secret, CP_TOKEN_EMPLOYER, tok, &info, NOW), CP_TOKEN_OK);
  assert_int_equal(cp_token_make(secret, CP_TOKEN_EMPLOYER, "EMP-0001", NOW + 2 * CP_TOKEN_EMPLOYER_MAX_S, tok, sizeof tok, NULL), 0);
  assert_int_equal(cp_token_check(secret, CP_TOKEN_EMPLOYER, tok, &info, NOW), CP_TOKEN_TOO_LONG);
  assert_int_equal(cp_token_make(secret, CP_TOKEN_EMPLOYER, "EMP-0001", NOW, tok, sizeof tok, NULL), 0);
  assert_int_equal(cp_token_check(secret, CP_TOKEN_EMPLOYER, tok, &info, NOW), CP_TOKEN_EXPIRED);
}

/* A genuine version-1 token (the old layout, no id) is refused as MALFORMED. */
static void test_version1_refused(void **state) {
  (void)state;
  const char *subject = "PRV-0001";
  uint8_t raw[1 + 8 + 1 + 8 + crypto_auth_BYTES];
  size_t len = 0;
  raw[len++] = 1;
  uint64_t exp = (uint64_t)NOW + 86400;
  for (int i = 7; i >= 0; i--) raw[len++] = (uint8_t)(exp >> (8 * i));
  raw[len++] = (uint8_t)strlen(subject);
  memcpy(raw + len, subject, strlen(subject));
  len += strlen(subject);
  unsigned char key[crypto_auth_KEYBYTES];
  crypto_generichash(key, sizeof key, (const unsigned char *)"carepass/token/v1", 17, secret, CP_SECRET_BYTES);
  uint8_t msg[4 + sizeof raw];
  memcpy(msg, "cpp_", 4);
  memcpy(msg + 4, raw, len);
  crypto_auth(raw + len, msg, 4 + len, key);
  len += crypto_auth_BYTES;
  char tok[CP_TOKEN_MAX] = "cpp_";
  sodium_bin2base64(tok + 4, sizeof tok - 4, raw, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  cp_token_info_t info;
  assert_int_equal(cp_token_check(secret, CP_TOKEN_PROVIDER, tok, &info, NOW), CP_TOKEN_MALFORMED);
}

static void test_id_parse(void **state) {
  (void)state;
  uint8_t id[CP_TOKEN_ID_BYTES];
  assert_int_equal(cp_token_id_parse("00112233445566778899AABBCCDDEEFF", id), 0);
  assert_int_equal(id[15], 0xff);
  assert_int_equal(cp_token_id_parse("00112233445566778899aabbccddeef", id), -1);
  assert_int_equal(cp_token_id_parse("00112233445566778899aabbccddeeff0", id), -1);
  assert_int_equal(cp_token_id_parse("00112233445566778899aabbccddeefg", id), -1);
  assert_int_equal(cp_token_id_parse("", id), -1);
  assert_int_equal(cp_token_id_parse(NULL, id), -1);
}

/* The list on disk: missing = empty, revoke adds (once), a running list follows the file, a bad
 * or missing file leaves the previous list in force, the file holds ids only and is 0600. */
static void test_revocation_list(void **state) {
  (void)state;
  char dir[] = "/tmp/test_token_XXXXXX", path[128], err[CP_ERRLEN];
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/revoked-tokens", dir);
  cp_token_revlist_t *rl = NULL;
  assert_int_equal(cp_token_revlist_new(path, &rl, err, sizeof err), 0);
  assert_int_equal(cp_token_revlist_count(rl), 0);

  char tok[CP_TOKEN_MAX], id[CP_TOKEN_ID_HEX], id2[CP_TOKEN_ID_HEX];
  cp_token_info_t info, info2;
  assert_int_equal(cp_token_make(secret, CP_TOKEN_PROVIDER, "PRV-0001", NOW + 60, tok, sizeof tok, id), 0);
  assert_int_equal(cp_token_check(secret, CP_TOKEN_PROVIDER, tok, &info, NOW), CP_TOKEN_OK);
  assert_int_equal(cp_token_make(secret, CP_TOKEN_PROVIDER, "PRV-0001", NOW + 60, tok, sizeof tok, id2), 0);
  assert_int_equal(cp_token_check(secret, CP_TOKEN_PROVIDER, tok, &info2, NOW), CP_TOKEN_OK);
  assert_false(cp_token_revlist_has(rl, info.id));

  bool added = false;
  assert_int_equal(cp_token_revoke(path, id, &added, err, sizeof err), 0);
  assert_true(added);
  assert_true(cp_token_revlist_has(rl, info.id));   /* followed without reopening */
  assert_false(cp_token_revlist_has(rl, info2.id)); /* one by one */
  assert_int_equal(cp_token_revoke(path, id, &added, err, sizeof err), 0);
  assert_false(added);
  assert_int_equal(cp_token_revlist_count(rl), 1);
  assert_int_equal(cp_token_revoke(path, "not-an-id", &added, err, sizeof err), -1);

  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  uint8_t *buf = NULL;
  size_t len = 0;
  assert_int_equal(cp_read_file(path, 4096, &buf, &len, err, sizeof err), 0);
  assert_non_null(strstr((char *)buf, id));
  assert_null(strstr((char *)buf, "PRV-0001")); /* ids only */
  free(buf);

  /* a damaged file: the previous list stays in force; a fixed file is taken again */
  static const char junk[] = "this is not an id\n";
  assert_int_equal(cp_write_file_atomic(path, junk, sizeof junk - 1, 0600, err, sizeof err), 0);
  assert_true(cp_token_revlist_has(rl, info.id));
  cp_token_revlist_t *rl2 = NULL;
  assert_int_equal(cp_token_revlist_new(path, &rl2, err, sizeof err), -1);
  char fixed[200];
  snprintf(fixed, sizeof fixed, "# comment\n\n  %s  \r\n%s\n", id2, id2);
  assert_int_equal(cp_write_file_atomic(path, fixed, strlen(fixed), 0600, err, sizeof err), 0);
  assert_false(cp_token_revlist_has(rl, info.id));
  assert_true(cp_token_revlist_has(rl, info2.id));
  assert_int_equal(cp_token_revlist_count(rl), 1); /* duplicates collapse */
  /* a file that disappears (an unmounted volume) un-revokes nothing */
  assert_int_equal(unlink(path), 0);
  assert_true(cp_token_revlist_has(rl, info2.id));
  /* ... and a list written again is followed again */
  bool added2 = false;
  assert_int_equal(cp_token_revoke(path, id, &added2, err, sizeof err), 0);
  assert_true(added2);
  assert_true(cp_token_revlist_has(rl, info.id));
  assert_false(cp_token_revlist_has(rl, info2.id));
  assert_int_equal(unlink(path), 0);
  cp_token_revlist_destroy(&rl);
  assert_null(rl);
  char lock[160];
  snprintf(lock, sizeof lock, "%s.lock", path);
  unlink(lock);
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_round_trip),
    cmocka_unit_test(test_refusals),
    cmocka_unit_test(test_lifetime_bounds),
    cmocka_unit_test(test_employer_kind),
    cmocka_unit_test(test_version1_refused),
    cmocka_unit_test(test_id_parse),
    cmocka_unit_test(test_revocation_list),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
