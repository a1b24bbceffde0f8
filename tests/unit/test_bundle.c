/* test_bundle.c -- tlog-proof@v1 and carepass-passport/v1 bundles: the spec's own example, round trips, bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cp_bundle.h"
#include "cp_crypto.h"
#include "cp_regkeys.h"
#include "cp_register.h"

/* The example of c2sp.org/tlog-proof (hashes and extra as published; the signatures are elided there). */
static const char SPEC_EXAMPLE[] =
    "c2sp.org/tlog-proof@v1\n"
    "extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6\n"
    "index 73894\n"
    "gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=\n"
    "B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=\n"
    "EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=\n"
    "RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=\n"
    "AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=\n"
    "\n"
    "example.com/fancylog\n"
    "109482\n"
    "sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=\n"
    "\n"
    "\xe2\x80\x94 example.com/fancylog hI2DJw==\n";

static void spec_example_parses(void **state) {
  (void)state;
  cp_tlog_proof_t p;
  char err[CP_ERRLEN];
  assert_int_equal(cp_tlog_proof_parse(SPEC_EXAMPLE, strlen(SPEC_EXAMPLE), &p, err, sizeof err), 0);
  assert_int_equal(p.index, 73894);
  assert_int_equal(p.nproof, 5);
  assert_int_equal(p.entry_len, strlen("age-v1.2.1-darwin-arm64.tar.gz"));
  assert_memory_equal(p.entry, "age-v1.2.1-darwin-arm64.tar.gz", p.entry_len);
  assert_true(strncmp(p.checkpoint, "example.com/fancylog\n109482\n", 28) == 0);
  /* and writes back byte for byte */
  char *text = NULL;
  size_t len = 0;
  assert_int_equal(cp_tlog_proof_format(&p, &text, &len, err, sizeof err), 0);
  assert_int_equal(len, strlen(SPEC_EXAMPLE));
  assert_memory_equal(text, SPEC_EXAMPLE, len);
  free(text);
  cp_tlog_proof_clear(&p);
}

static void bad_proofs_are_refused(void **state) {
  (void)state;
  static const char *const bad[] = {
      "c2sp.org/tlog-proof@v2\nindex 1\n\ncp\n",                  /* wrong header */
      "c2sp.org/tlog-proof@v1\nindex 01\n\ncp\n",                 /* leading zero */
      "c2sp.org/tlog-proof@v1\nindex 1\nnot-base64!\n\ncp\n",      /* bad hash */
      "c2sp.org/tlog-proof@v1\nindex 1\nAAAA\n\ncp\n",            /* hash of the wrong length */
      "c2sp.org/tlog-proof@v1\nindex 1\n",                        /* no empty line */
      "c2sp.org/tlog-proof@v1\nindex 1\n\n",                      /* no checkpoint */
      "c2sp.org/tlog-proof@v1\nextra !!\nindex 1\n\ncp\n",        /* bad extra */
      "",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cp_tlog_proof_t p;
    char err[CP_ERRLEN] = "";
    assert_int_equal(cp_tlog_proof_parse(bad[i], strlen(bad[i]), &p, err, sizeof err), -1);
    assert_true(err[0] != '\0');
  }
}

/* A small register: genesis key entry + 300 records (a full tile and a partial one). */
static void register_round_trip(void **state) {
  (void)state;
  char dir[] = "/tmp/test_bundle.XXXXXX", keyfile[64], regdir[64], err[CP_ERRLEN];
  assert_non_null(mkdtemp(dir));
  snprintf(keyfile, sizeof keyfile, "%s/k", dir);
  snprintf(regdir, sizeof regdir, "%s/reg", dir);
  cp_signkey_t key;
  assert_int_equal(cp_signkey_load(keyfile, "test.local/log", true, &key, err, sizeof err), 0);
  reg_log_t *log = NULL;
  assert_int_equal(reg_open(regdir, &key, &log, err, sizeof err), 0);
  uint8_t *e0 = NULL;
  size_t l0 = 0;
  uint64_t first;
  assert_int_equal(reg_key_entry_build(&key, key.name, key.pk, 1, &e0, &l0, err, sizeof err), 0);
  assert_int_equal(reg_append(log, (const uint8_t *const *)&e0, &l0, 1, &first, err, sizeof err), 0);
  free(e0);
  for (int i = 0; i < 300; i++) {
    char buf[32];
    const uint8_t *e = (const uint8_t *)buf;
    size_t l = (size_t)snprintf(buf, sizeof buf, "entry %d", i);
    assert_int_equal(reg_append(log, &e, &l, 1, &first, err, sizeof err), 0);
  }
  uint8_t root[REG_HASH_BYTES];
  reg_root(log, root);
  cp_passport_t b;
  const char *note = reg_checkpoint_note(log);
  cp_passport_init(&b, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", note, strlen(note));
  static const uint64_t idx[] = {0, 1, 255, 256, 300};
  for (size_t i = 0; i < 5; i++) {
    cp_tlog_proof_t p;
    assert_int_equal(cp_tlog_proof_from_log(log, idx[i], &p, err, sizeof err), 0);
    assert_int_equal(cp_tlog_proof_check(&p, reg_size(log), root, err, sizeof err), 0);
    /* a proof for the wrong index, another root or a tree without the entry fails */
    p.index ^= 1;
    assert_int_equal(cp_tlog_proof_check(&p, reg_size(log), root, err, sizeof err), -1);
    p.index ^= 1;
    uint8_t other[REG_HASH_BYTES];
    memcpy(other, root, sizeof other);
    other[0] ^= 1;
    assert_int_equal(cp_tlog_proof_check(&p, reg_size(log), other, err, sizeof err), -1);
    assert_int_equal(cp_tlog_proof_check(&p, idx[i], root, err, sizeof err), -1);   /* beyond that tree */
    cp_passport_add(&b, i == 0 ? CP_PROOF_KEY : CP_PROOF_ENTRY, &p);
  }
  char *text = NULL;
  size_t len = 0;
  assert_int_equal(cp_passport_format(&b, &text, &len, err, sizeof err), 0);
  cp_passport_t c;
  assert_int_equal(cp_passport_parse(text, len, &c, err, sizeof err), 0);
  assert_int_equal(c.n, 5);
  assert_int_equal(c.items[0].kind, CP_PROOF_KEY);
  for (size_t i = 0; i < 5; i++) {
    assert_int_equal(c.items[i].proof.index, idx[i]);
    assert_int_equal(cp_tlog_proof_check(&c.items[i].proof, reg_size(log), root, err, sizeof err), 0);
  }
  cp_passport_clear(&c);
  /* truncated anywhere: refused, never a crash */
  for (size_t cut = 0; cut < len; cut += 7)
    assert_int_equal(cp_passport_parse(text, cut, &c, err, sizeof err), -1);
  /* trailing data refused */
  char *more = malloc(len + 2);
  memcpy(more, text, len);
  memcpy(more + len, "x\n", 2);
  assert_int_equal(cp_passport_parse(more, len + 2, &c, err, sizeof err), -1);
  free(more);
  free(text);
  cp_passport_clear(&b);
  reg_close(&log);
  cp_signkey_wipe(&key);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
}

int main(void) {
  if (cp_crypto_init() != 0) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(spec_example_parses),
      cmocka_unit_test(bad_proofs_are_refused),
      cmocka_unit_test(register_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
