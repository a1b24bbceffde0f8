/* test_register.c -- the register on disk: batches, reopen, proofs, crash recovery, corruption, lock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "cp_register.h"

#define MAXE 5000

static reg_hash_t leaves[MAXE];   // leaf hashes of what the test appended
static char errbuf[CP_ERRLEN];

static void test_key(cp_signkey_t *k, const char *name) {
  memset(k, 0, sizeof *k);
  snprintf(k->name, sizeof k->name, "%s", name);
  crypto_sign_keypair(k->pk, k->sk);
  cp_key_id(k->name, k->pk, k->key_id);
}

static char *tmpdir(void) {
  char tmpl[256];
  const char *base = getenv("REG_TEST_TMP");   /* e.g. /dev/shm to leave the disk out of timings */
  snprintf(tmpl, sizeof tmpl, "%s/cp-register-test-XXXXXX", base ? base : "/tmp");
  assert_non_null(mkdtemp(tmpl));
  char *d = cp_xmalloc(strlen(tmpl) + 8);
  sprintf(d, "%s/reg", tmpl);   /* a subdirectory: reg_open creates it */
  return d;
}

/* Remove the mkdtemp directory holding dir (the paths are ours: no quoting issues). */
static void rmtree(char *dir) {
  char cmd[600];
  *strrchr(dir, '/') = '\0';
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
  free(dir);
}

/* Entry i of a test run with a given salt, e.g. "salt-17-xxxxx" (variable length). */
static size_t make_entry(int salt, uint64_t i, uint8_t *buf) {
  int n = snprintf((char *)buf, 200, "%d-%llu-", salt, (unsigned long long)i);
  size_t extra = (size_t)(i * 7 % 50);
  memset(buf + n, 'x', extra);
  return (size_t)n + extra;
}

/* Append n entries (salt) as one batch and record their leaf hashes. */
static void append_batch(reg_log_t *log, int salt, size_t n) {
  uint8_t *bufs = cp_xmalloc(n * 200);
  const uint8_t **ents = cp_xmalloc(n * sizeof *ents);
  size_t *lens = cp_xmalloc(n * sizeof *lens);
  uint64_t base = reg_size(log);
  for (size_t i = 0; i < n; i++) {
    ents[i] = bufs + i * 200;
    lens[i] = make_entry(salt, base + i, bufs + i * 200);
    if (base + i < MAXE) reg_leaf_hash(ents[i], lens[i], leaves[base + i]);
  }
  uint64_t first = 0;
  int rc = reg_append(log, ents, lens, n, &first, errbuf, sizeof errbuf);
  if (rc != 0) fprintf(stderr, "reg_append: %s\n", errbuf);
  assert_int_equal(rc, 0);
  assert_int_equal(first, base);
  assert_int_equal(reg_size(log), base + n);
  free(bufs);
  free(ents);
  free(lens);
}

static void expect_root(reg_log_t *log) {
  uint8_t want[32], got[32];
  if (reg_size(log) == 0)
    reg_empty_root(want);
  else
    reg_hashes_root((const reg_hash_t *)leaves, (size_t)reg_size(log), want);
  reg_root(log, got);
  assert_memory_equal(got, want, 32);
}

static bool exists(const char *dir, const char *rel) {
  char p[512];
  struct stat st;
  snprintf(p, sizeof p, "%s/%s", dir, rel);
  return stat(p, &st) == 0;
}

static void test_batches_reopen_proofs(void **state) {
  (void)state;
  cp_signkey_t k;
  test_key(&k, "carepass.test/register");
  char *dir = tmpdir();
  reg_log_t *log = NULL;
  assert_int_equal(reg_open(dir, &k, &log, errbuf, sizeof errbuf), 0);
  assert_int_equal(reg_size(log), 0);
  expect_root(log);
  const size_t batches[] = {1, 3, 255, 1, 256, 513, 7, 1000, 31, 65536 - 65536 + 2};
  uint64_t sizes[CP_ARRAY_LEN(batches) + 1];
  uint8_t roots[CP_ARRAY_LEN(batches) + 1][32];
  sizes[0] = 0;
  reg_root(log, roots[0]);
  for (size_t b = 0; b < CP_ARRAY_LEN(batches); b++) {
    append_batch(log, 1, batches[b]);
    expect_root(log);
    sizes[b + 1] = reg_size(log);
    reg_root(log, roots[b + 1]);
  }
  uint64_t size = reg_size(log);
  assert_int_equal(size, 2069);
  /* tlog-tiles layout */
  assert_true(exists(dir, "checkpoint"));
  assert_true(exists(dir, "tile/0/000"));
  assert_true(exists(dir, "tile/0/007"));
  assert_true(exists(dir, "tile/0/008.p/21"));
  assert_true(exists(dir, "tile/entries/007"));
  assert_true(exists(dir, "tile/entries/008.p/21"));
  assert_true(exists(dir, "tile/1/000.p/8"));
  assert_false(exists(dir, "tile/0/008"));
  reg_close(&log);
  assert_null(log);

  /* reopen as writer and as reader: same root, same entries */
  assert_int_equal(reg_open(dir, &k, &log, errbuf, sizeof errbuf), 0);
  assert_int_equal(reg_size(log), size);
  expect_root(log);
  assert_int_equal(reg_audit(log, errbuf, sizeof errbuf), 0);
  for (uint64_t i = 0; i < size; i += 97) {
    uint8_t *e = NULL, want[200];
    size_t len = 0;
    assert_int_equal(reg_read_entry(log, i, &e, &len, errbuf, sizeof errbuf), 0);
    size_t wl = make_entry(1, i, want);
    assert_int_equal(len, wl);
    assert_memory_equal(e, want, wl);
    free(e);
  }
  uint8_t *e = NULL;
  size_t len;
  assert_int_equal(reg_read_entry(log, size, &e, &len, errbuf, sizeof errbuf), -1);
  reg_log_t *ro = NULL;
  assert_int_equal(reg_open(dir, NULL, &ro, errbuf, sizeof errbuf), 0);
  assert_int_equal(reg_size(ro), size);
  expect_root(ro);
  assert_int_equal(reg_append(ro, NULL, NULL, 1, NULL, errbuf, sizeof errbuf), -1);

  /* inclusion proofs for every index at several checkpointed sizes */
  for (size_t b = 1; b < CP_ARRAY_LEN(sizes); b += 2) {
    for (uint64_t i = 0; i < sizes[b]; i++) {
      reg_hash_t proof[REG_PROOF_MAX];
      size_t n;
      assert_int_equal(reg_inclusion_proof(ro, i, sizes[b], proof, &n, errbuf, sizeof errbuf), 0);
      assert_int_equal(reg_verify_inclusion(leaves[i], i, sizes[b], proof, n, roots[b]), 0);
      if (n > 0) {
        proof[0][31] ^= 1;
        assert_int_equal(reg_verify_inclusion(leaves[i], i, sizes[b], proof, n, roots[b]), -1);
      }
    }
  }
  /* consistency between every pair of checkpoints */
  for (size_t a = 0; a < CP_ARRAY_LEN(sizes); a++) {
    for (size_t b = a; b < CP_ARRAY_LEN(sizes); b++) {
      reg_hash_t proof[REG_PROOF_MAX];
      size_t n;
      assert_int_equal(reg_consistency_proof(log, sizes[a], sizes[b], proof, &n, errbuf, sizeof errbuf), 0);
      assert_int_equal(reg_verify_consistency(sizes[a], sizes[b], proof, n, roots[a], roots[b]), 0);
    }
  }
  /* the checkpoint on disk verifies with the vkey */
  char vkey[256];
  uint64_t csize;
  uint8_t croot[32];
  assert_int_equal(cp_vkey_format(k.name, k.pk, vkey, sizeof vkey), 0);
  const char *note = reg_checkpoint_note(log);
  assert_int_equal(reg_checkpoint_open(note, strlen(note), vkey, NULL, 0, &csize, croot, errbuf, sizeof errbuf), 0);
  assert_int_equal(csize, size);

  /* the reader follows the writer with reg_refresh */
  append_batch(log, 1, 300);
  assert_int_equal(reg_size(ro), size);
  assert_int_equal(reg_refresh(ro, errbuf, sizeof errbuf), 0);
  assert_int_equal(reg_size(ro), size + 300);
  expect_root(ro);
  reg_close(&ro);
  reg_close(&log);
  rmtree(dir);
}

static void test_bad_entries_refused(void **state) {
  (void)state;
  cp_signkey_t k;
  test_key(&k, "carepass.test/register");
  char *dir = tmpdir();
  reg_log_t *log = NULL;
  assert_int_equal(reg_open(dir, &k, &log, errbuf, sizeof errbuf), 0);
  append_batch(log, 2, 10);
  static uint8_t big[REG_ENTRY_MAX + 1];
  const uint8_t *ents[2] = {(const uint8_t *)"ok", big};
  size_t lens[2] = {2, sizeof big};
  uint64_t first;
  assert_int_equal(reg_append(log, ents, lens, 2, &first, errbuf, sizeof errbuf), -1);
  assert_non_null(strstr(errbuf, "1..65535"));
  lens[1] = 0;
  assert_int_equal(reg_append(log, ents, lens, 2, &first, errbuf, sizeof errbuf), -1);
  assert_int_equal(reg_size(log), 10);
  /* the largest entry is fine */
  lens[1] = REG_ENTRY_MAX;
  assert_int_equal(reg_append(log, ents, lens, 2, &first, errbuf, sizeof errbuf), 0);
  reg_leaf_hash(ents[0], 2, leaves[10]);
  reg_leaf_hash(big, REG_ENTRY_MAX, leaves[11]);
  expect_root(log);
  reg_close(&log);
  assert_int_equal(reg_open(dir, &k, &log, errbuf, sizeof errbuf), 0);
  uint8_t *e;
  size_t len;
  assert_int_equal(reg_read_entry(log, 11, &e, &len, errbuf, sizeof errbuf), 0);
  assert_int_equal(len, REG_ENTRY_MAX);
  free(e);
  reg_close(&log);
  rmtree(dir);
}

static void test_lock(void **state) {
  (void)state;
  cp_signkey_t k;
  test_key(&k, "carepass.test/register");
  char *dir = tmpdir();
  reg_log_t *a = NULL, *b = NULL;
  assert_int_equal(reg_open(dir, &k, &a, errbuf, sizeof errbuf), 0);
  assert_int_equal(reg_open(dir, &k, &b, errbuf, sizeof errbuf), -1);
  assert_null(b);
  assert_non_null(strstr(errbuf, "locked by another process"));
  /* readers are not blocked */
  assert_int_equal(reg_open(dir, NULL, &b, errbuf, sizeof errbuf), 0);
  reg_close(&b);
  reg_close(&a);
  assert_int_equal(reg_open(dir, &k, &a, errbuf, sizeof errbuf), 0);
  reg_close(&a);
  /* another key cannot take over the register */
  cp_signkey_t other;
  test_key(&other, "carepass.test/register");
  assert_int_equal(reg_open(dir, &other, &a, errbuf, sizeof errbuf), -1);
  assert_non_null(strstr(errbuf, "checkpoint"));
  rmtree(dir);
}

static uint8_t *slurp(const char *dir, const char *rel, size_t *len) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", dir, rel);
  uint8_t *b = NULL;
  assert_int_equal(cp_read_file(p, 1 << 20, &b, len, errbuf, sizeof errbuf), 0);
  return b;
}

static void spit(const char *dir, const char *rel, const uint8_t *b, size_t len) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", dir, rel);
  FILE *f = fopen(p, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(b, 1, len, f), len);
  fclose(f);
}

static void test_uncheckpointed_batch_discarded(void **state) {
  (void)state;
  cp_signkey_t k;
  test_key(&k, "carepass.test/register");
  char *dir = tmpdir();
  reg_log_t *log = NULL;
  assert_int_equal(reg_open(dir, &k, &log, errbuf, sizeof errbuf), 0);
  append_batch(log, 3, 300);
  size_t cplen;
  uint8_t *cp300 = slurp(dir, "checkpoint", &cplen);
  append_batch(log, 3, 70000 - 300 + 5);   /* reaches level 2 */
  reg_close(&log);
  assert_true(exists(dir, "tile/0/001"));
  assert_true(exists(dir, "tile/2/000.p/1"));
  /* crash before the checkpoint of the second batch: the old checkpoint is on disk */
  spit(dir, "checkpoint", cp300, cplen);
  free(cp300);
  assert_int_equal(reg_open(dir, &k, &log, errbuf, sizeof errbuf), 0);
  assert_int_equal(reg_size(log), 300);
  expect_root(log);
  assert_true(exists(dir, "tile/0/000"));
  assert_true(exists(dir, "tile/0/001.p/44"));
  assert_true(exists(dir, "tile/entries/001.p/44"));
  assert_true(exists(dir, "tile/1/000.p/1"));
  assert_false(exists(dir, "tile/0/001"));
  assert_false(exists(dir, "tile/0/002"));
  assert_false(exists(dir, "tile/entries/001"));
  assert_false(exists(dir, "tile/0/273.p/117"));
  assert_false(exists(dir, "tile/1/000"));
  assert_false(exists(dir, "tile/1/001.p/17"));
  assert_false(exists(dir, "tile/2/000.p/1"));
  /* different entries now take those indexes */
  append_batch(log, 4, 1000);
  expect_root(log);
  reg_close(&log);
  assert_int_equal(reg_open(dir, &k, &log, errbuf, sizeof errbuf), 0);
  assert_int_equal(reg_size(log), 1300);
  expect_root(log);
  assert_int_equal(reg_audit(log, errbuf, sizeof errbuf), 0);
  reg_close(&log);
  rmtree(dir);
}

static void test_corruption_detected(void **state) {
  (void)state;
  cp_signkey_t k;
  test_key(&k, "carepass.test/register");
  char *dir = tmpdir();
  reg_log_t *log = NULL;
  assert_int_equal(reg_open(dir, &k, &log, errbuf, sizeof errbuf), 0);
  append_batch(log, 5, 300);
  reg_close(&log);

  /* truncated partial tile at the right edge */
  size_t len;
  uint8_t *t = slurp(dir, "tile/0/001.p/44", &len);
  spit(dir, "tile/0/001.p/44", t, 40);
  assert_int_equal(reg_open(dir, &k, &log, errbuf, sizeof errbuf), -1);
  assert_non_null(strstr(errbuf, "truncated"));
  assert_int_equal(reg_open(dir, NULL, &log, errbuf, sizeof errbuf), -1);
  spit(dir, "tile/0/001.p/44", t, len);
  /* a changed hash in it */
  t[5] ^= 1;
  spit(dir, "tile/0/001.p/44", t, len);
  assert_int_equal(reg_open(dir, &k, &log, errbuf, sizeof errbuf), -1);
  assert_non_null(strstr(errbuf, "do not match the checkpoint"));
  t[5] ^= 1;
  spit(dir, "tile/0/001.p/44", t, len);
  free(t);
  /* a changed entry in the partial bundle */
  uint8_t *b = slurp(dir, "tile/entries/001.p/44", &len);
  b[3] ^= 1;
  spit(dir, "tile/entries/001.p/44", b, len);
  assert_int_equal(reg_open(dir, &k, &log, errbuf, sizeof errbuf), -1);
  assert_non_null(strstr(errbuf, "does not match"));
  b[3] ^= 1;
  spit(dir, "tile/entries/001.p/44", b, len);
  free(b);
  assert_int_equal(reg_open(dir, &k, &log, errbuf, sizeof errbuf), 0);
  /* a truncated full tile deep inside: proofs fail cleanly, audit reports it */
  t = slurp(dir, "tile/0/000", &len);
  spit(dir, "tile/0/000", t, 100);
  reg_hash_t proof[REG_PROOF_MAX];
  size_t n;
  assert_int_equal(reg_inclusion_proof(log, 3, 300, proof, &n, errbuf, sizeof errbuf), -1);
  assert_non_null(strstr(errbuf, "truncated"));
  assert_int_equal(reg_audit(log, errbuf, sizeof errbuf), -1);
  spit(dir, "tile/0/000", t, len);
  free(t);
  reg_close(&log);
  /* a changed entry in a full bundle: only the audit can see it */
  b = slurp(dir, "tile/entries/000", &len);
  b[3] ^= 1;   /* inside entry 0, not a length byte */
  spit(dir, "tile/entries/000", b, len);
  free(b);
  assert_int_equal(reg_open(dir, NULL, &log, errbuf, sizeof errbuf), 0);
  assert_int_equal(reg_audit(log, errbuf, sizeof errbuf), -1);
  assert_non_null(strstr(errbuf, "does not match"));
  reg_close(&log);
  /* checkpoint deleted while tiles exist: refuse to guess */
  char p[512];
  snprintf(p, sizeof p, "%s/checkpoint", dir);
  assert_int_equal(unlink(p), 0);
  assert_int_equal(reg_open(dir, &k, &log, errbuf, sizeof errbuf), -1);
  assert_non_null(strstr(errbuf, "no checkpoint"));
  assert_int_equal(reg_open(dir, NULL, &log, errbuf, sizeof errbuf), -1);
  rmtree(dir);
}

/* Not an assertion on time (machines vary): prints the append rate. */
static void test_append_rate(void **state) {
  (void)state;
  cp_signkey_t k;
  test_key(&k, "carepass.test/register");
  char *dir = tmpdir();
  reg_log_t *log = NULL;
  assert_int_equal(reg_open(dir, &k, &log, errbuf, sizeof errbuf), 0);
  enum { BATCH = 1024, BATCHES = 100 };
  static uint8_t bufs[BATCH][200];
  const uint8_t *ents[BATCH];
  size_t lens[BATCH];
  int64_t t0 = cp_mono_ms();
  for (int b = 0; b < BATCHES; b++) {
    for (int i = 0; i < BATCH; i++) {
      lens[i] = 150;
      memset(bufs[i], 'a' + (b % 26), 150);
      memcpy(bufs[i], &i, sizeof i);
      memcpy(bufs[i] + 8, &b, sizeof b);
      ents[i] = bufs[i];
    }
    uint64_t first;
    assert_int_equal(reg_append(log, ents, lens, BATCH, &first, errbuf, sizeof errbuf), 0);
  }
  int64_t ms = cp_mono_ms() - t0;
  printf("register append: %d entries in %lld ms = %.0f entries/s (batches of %d, 150-byte entries)\n",
         BATCH * BATCHES, (long long)ms, ms > 0 ? BATCH * BATCHES * 1000.0 / (double)ms : 0.0, BATCH);
  reg_close(&log);
  assert_int_equal(reg_open(dir, NULL, &log, errbuf, sizeof errbuf), 0);
  assert_int_equal(reg_size(log), BATCH * BATCHES);
  reg_close(&log);
  rmtree(dir);
}

int main(void) {
  if (cp_crypto_init() != 0) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_batches_reopen_proofs),
      cmocka_unit_test(test_bad_entries_refused),
      cmocka_unit_test(test_lock),
      cmocka_unit_test(test_uncheckpointed_batch_discarded),
      cmocka_unit_test(test_corruption_detected),
      cmocka_unit_test(test_append_rate),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
