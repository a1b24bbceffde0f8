/* test_register_hostile.c -- a damaged or hostile register directory: every defect is
 * refused with an error that names what failed, never a crash or a hang. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "cp_config.h"
#include "cp_regkeys.h"
#include "cp_register.h"

#define SIZE 600                        /* level-0 tiles 000, 001, 002.p/88; level 1 000.p/2 */
#define ORIGIN "carepass.test/hostile"

static char errbuf[CP_ERRLEN];
static reg_hash_t leaves[SIZE + 8];    /* leaf hashes of what was appended */

static void test_key(cp_signkey_t *k) {
  memset(k, 0, sizeof *k);
  snprintf(k->name, sizeof k->name, "%s", ORIGIN);
  crypto_sign_keypair(k->pk, k->sk);
  cp_key_id(k->name, k->pk, k->key_id);
}

/* A fresh register of SIZE entries (two batches) with its vkey; returns its directory. */
static char *make_register(const cp_signkey_t *k) {
  char tmpl[256];
  snprintf(tmpl, sizeof tmpl, "/tmp/cp-hostile-test-XXXXXX");
  assert_non_null(mkdtemp(tmpl));
  char *dir = cp_xmalloc(strlen(tmpl) + 8);
  sprintf(dir, "%s/reg", tmpl);
  reg_log_t *log = NULL;
  assert_int_equal(reg_open(dir, k, &log, errbuf, sizeof errbuf), 0);
  uint8_t bufs[SIZE][40];
  const uint8_t *ents[SIZE];
  size_t lens[SIZE];
  for (int i = 0; i < SIZE; i++) {
    lens[i] = (size_t)snprintf((char *)bufs[i], sizeof bufs[i], "entry-%d-%.*s", i, i % 17, "yyyyyyyyyyyyyyyyy");
    ents[i] = bufs[i];
    reg_leaf_hash(ents[i], lens[i], leaves[i]);
  }
  uint64_t first;
  assert_int_equal(reg_append(log, ents, lens, 300, &first, errbuf, sizeof errbuf), 0);
  assert_int_equal(reg_append(log, ents + 300, lens + 300, SIZE - 300, &first, errbuf, sizeof errbuf), 0);
  reg_close(&log);
  char vkey[512], p[512];
  assert_int_equal(cp_vkey_format(k->name, k->pk, vkey, sizeof vkey), 0);
  snprintf(p, sizeof p, "%s/vkey", dir);
  FILE *f = fopen(p, "w");
  assert_non_null(f);
  fprintf(f, "%s\n", vkey);
  fclose(f);
  return dir;
}

static void rmtree(char *dir) {
  char cmd[600];
  *strrchr(dir, '/') = '\0';
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
  free(dir);
}

static char *path_of(const char *dir, const char *rel) {
  static char p[600];
  snprintf(p, sizeof p, "%s/%s", dir, rel);
  return p;
}

static uint8_t *slurp(const char *dir, const char *rel, size_t *len) {
  uint8_t *b = NULL;
  assert_int_equal(cp_read_file(path_of(dir, rel), 1 << 20, &b, len, errbuf, sizeof errbuf), 0);
  return b;
}

static void spit(const char *dir, const char *rel, const void *b, size_t len) {
  FILE *f = fopen(path_of(dir, rel), "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(b, 1, len, f), len);
  fclose(f);
}

/* reg_open (read-only, or as writer with k) must fail with an error holding every needle. */
static void expect_refused(const char *dir, const cp_signkey_t *k, const char *n1, const char *n2) {
  reg_log_t *log = NULL;
  errbuf[0] = '\0';
  int rc = reg_open(dir, k, &log, errbuf, sizeof errbuf);
  if (rc == 0 || (n1 && !strstr(errbuf, n1)) || (n2 && !strstr(errbuf, n2)))
    fprintf(stderr, "expected refusal naming [%s] [%s]; rc %d: %s\n", n1 ? n1 : "", n2 ? n2 : "", rc, errbuf);
  assert_int_equal(rc, -1);
  assert_null(log);
  printf("  refused (%s): %s\n", k ? "writer" : "reader", errbuf);   /* the errors an operator reads */
  if (n1) assert_non_null(strstr(errbuf, n1));
  if (n2) assert_non_null(strstr(errbuf, n2));
}

static void expect_opens(const char *dir, const cp_signkey_t *k) {
  reg_log_t *log = NULL;
  int rc = reg_open(dir, k, &log, errbuf, sizeof errbuf);
  if (rc != 0) fprintf(stderr, "reg_open: %s\n", errbuf);
  assert_int_equal(rc, 0);
  assert_int_equal(reg_size(log), SIZE);
  assert_int_equal(reg_audit(log, errbuf, sizeof errbuf), 0);
  reg_close(&log);
}

/* ---- checkpoints ----------------------------------------------------------- */

static void test_forged_checkpoints(void **state) {
  (void)state;
  cp_signkey_t k, other;
  test_key(&k);
  test_key(&other);   /* same name, different key */
  char *dir = make_register(&k);
  size_t len;
  uint8_t *good = slurp(dir, "checkpoint", &len);
  uint64_t size;
  uint8_t root[REG_HASH_BYTES];
  assert_int_equal(reg_checkpoint_parse((char *)good, len, NULL, 0, &size, root, errbuf, sizeof errbuf), 0);
  char note[REG_CHECKPOINT_MAX + 1];

  /* signed by another key with the same name */
  int n = reg_checkpoint_sign(&other, size, root, note, sizeof note, errbuf, sizeof errbuf);
  assert_true(n > 0);
  spit(dir, "checkpoint", note, (size_t)n);
  expect_refused(dir, NULL, "checkpoint", NULL);
  expect_refused(dir, &k, "checkpoint", NULL);

  /* changed size, signature kept */
  char *forged = cp_xmalloc(len + 8);
  memcpy(forged, good, len);
  char *nl = strchr(forged, '\n');
  assert_non_null(nl);
  assert_int_equal(memcmp(nl + 1, "600\n", 4), 0);
  nl[3] = '1';   /* 600 -> 601 */
  spit(dir, "checkpoint", forged, len);
  expect_refused(dir, NULL, "checkpoint", NULL);
  expect_refused(dir, &k, "checkpoint", NULL);

  /* changed root, signature kept */
  memcpy(forged, good, len);
  char *r = strchr(strchr(forged, '\n') + 1, '\n') + 1;
  r[0] = r[0] == 'A' ? 'B' : 'A';
  spit(dir, "checkpoint", forged, len);
  expect_refused(dir, NULL, "checkpoint", NULL);
  expect_refused(dir, &k, "checkpoint", NULL);

  /* garbage: empty, binary with NUL bytes, too large */
  spit(dir, "checkpoint", "", 0);
  expect_refused(dir, NULL, "checkpoint", NULL);
  uint8_t junk[300];
  for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)(i * 37);
  spit(dir, "checkpoint", junk, sizeof junk);
  expect_refused(dir, NULL, "checkpoint", NULL);
  char *big = cp_xmalloc(REG_CHECKPOINT_MAX * 2);
  memset(big, 'a', REG_CHECKPOINT_MAX * 2);
  spit(dir, "checkpoint", big, REG_CHECKPOINT_MAX * 2);
  free(big);
  expect_refused(dir, NULL, "checkpoint", "bytes");

  /* the good one still opens */
  spit(dir, "checkpoint", good, len);
  expect_opens(dir, NULL);
  free(forged);
  free(good);
  rmtree(dir);
}

/* A correctly signed checkpoint (the key leaked, or a bug) for a size the tiles do not have. */
static void test_checkpoint_beyond_the_tiles(void **state) {
  (void)state;
  cp_signkey_t k;
  test_key(&k);
  char *dir = make_register(&k);
  char note[REG_CHECKPOINT_MAX + 1];
  uint8_t root[REG_HASH_BYTES];
  memset(root, 0x5a, sizeof root);
  int n = reg_checkpoint_sign(&k, SIZE + 1000, root, note, sizeof note, errbuf, sizeof errbuf);
  assert_true(n > 0);
  spit(dir, "checkpoint", note, (size_t)n);
  expect_refused(dir, NULL, "tile/", "unreadable");
  /* the writer would rebuild what is missing, but the data is not there: it names the file */
  expect_refused(dir, &k, "tile/entries/006.p/64", "cannot be rebuilt");   /* 1600 = 6 * 256 + 64 */
  /* a size that is a multiple of 256: no bundle to rebuild; level 0 tiles missing */
  n = reg_checkpoint_sign(&k, 1024, root, note, sizeof note, errbuf, sizeof errbuf);
  spit(dir, "checkpoint", note, (size_t)n);
  expect_refused(dir, &k, "tile/1/000.p/4", "cannot be rebuilt");
  expect_refused(dir, NULL, "tile/", "unreadable");
  /* an absurd size */
  n = reg_checkpoint_sign(&k, UINT64_MAX - 1, root, note, sizeof note, errbuf, sizeof errbuf);
  spit(dir, "checkpoint", note, (size_t)n);
  expect_refused(dir, NULL, NULL, NULL);
  expect_refused(dir, &k, "cannot be rebuilt", NULL);
  rmtree(dir);
}

/* ---- tiles and bundles ------------------------------------------------------ */

static void test_damaged_tiles(void **state) {
  (void)state;
  cp_signkey_t k;
  test_key(&k);
  char *dir = make_register(&k);
  size_t len;
  uint8_t *t = slurp(dir, "tile/0/002.p/88", &len);
  uint8_t *longer = cp_xmalloc(len + 33);
  memcpy(longer, t, len);
  memset(longer + len, 0, 33);

  /* truncated, and with extra bytes: both name the file */
  spit(dir, "tile/0/002.p/88", t, len - 1);
  expect_refused(dir, NULL, "tile/0/002.p/88", "truncated or corrupt");
  expect_refused(dir, &k, "tile/0/002.p/88", "truncated or corrupt");
  spit(dir, "tile/0/002.p/88", longer, len + 32);
  expect_refused(dir, NULL, "tile/0/002.p/88", "2848 bytes");
  spit(dir, "tile/0/002.p/88", longer, len + 33);
  expect_refused(dir, &k, "tile/0/002.p/88", "2849 bytes");
  spit(dir, "tile/0/002.p/88", t, len);
  free(t);
  free(longer);

  /* a full tile deep inside, truncated or with extra bytes: proofs and the audit name it */
  uint8_t *full = slurp(dir, "tile/0/000", &len);
  uint8_t *more = cp_xmalloc(len + 1);
  memcpy(more, full, len);
  more[len] = 0;
  reg_log_t *log = NULL;
  reg_hash_t proof[REG_PROOF_MAX];
  size_t np;
  for (int variant = 0; variant < 2; variant++) {
    spit(dir, "tile/0/000", variant ? more : full, variant ? len + 1 : len / 2);
    assert_int_equal(reg_open(dir, NULL, &log, errbuf, sizeof errbuf), 0);
    assert_int_equal(reg_inclusion_proof(log, 3, SIZE, proof, &np, errbuf, sizeof errbuf), -1);
    assert_non_null(strstr(errbuf, "tile/0/000"));
    assert_int_equal(reg_audit(log, errbuf, sizeof errbuf), -1);
    assert_non_null(strstr(errbuf, "tile/0/000"));
    reg_close(&log);
  }
  /* missing: the same */
  assert_int_equal(unlink(path_of(dir, "tile/0/000")), 0);
  assert_int_equal(reg_open(dir, NULL, &log, errbuf, sizeof errbuf), 0);
  assert_int_equal(reg_inclusion_proof(log, 3, SIZE, proof, &np, errbuf, sizeof errbuf), -1);
  assert_non_null(strstr(errbuf, "tile/0/000"));
  assert_non_null(strstr(errbuf, "No such file"));
  uint8_t *e = NULL;
  size_t elen;
  assert_int_equal(reg_read_entry(log, SIZE, &e, &elen, errbuf, sizeof errbuf), -1);   /* beyond the tree */
  assert_non_null(strstr(errbuf, "not in the register"));
  reg_close(&log);
  spit(dir, "tile/0/000", full, len);
  free(full);
  free(more);
  expect_opens(dir, NULL);
  rmtree(dir);
}

static void test_damaged_bundles(void **state) {
  (void)state;
  cp_signkey_t k;
  test_key(&k);
  char *dir = make_register(&k);
  size_t len;
  uint8_t *b = slurp(dir, "tile/entries/002.p/88", &len);
  uint8_t *bad = cp_xmalloc(len + 4);

  /* the last entry's length prefix runs past the end of the bundle */
  size_t pos = 0, last = 0, elen;
  const uint8_t *e;
  while (reg_bundle_next(b, len, &pos, &e, &elen) == 1) last = (size_t)(e - b) - 2;
  memcpy(bad, b, len);
  bad[last] = 0xff;
  spit(dir, "tile/entries/002.p/88", bad, len);
  expect_refused(dir, NULL, "tile/entries/002.p/88", "entry 87, at byte");
  expect_refused(dir, &k, "tile/entries/002.p/88", "runs past the end");
  /* a lone length byte at the end; an extra whole entry; one entry short */
  memcpy(bad, b, len);
  bad[len] = 0;
  spit(dir, "tile/entries/002.p/88", bad, len + 1);
  expect_refused(dir, NULL, "tile/entries/002.p/88", "runs past the end");
  bad[len] = 0;
  bad[len + 1] = 1;
  bad[len + 2] = 'z';
  spit(dir, "tile/entries/002.p/88", bad, len + 3);
  expect_refused(dir, NULL, "tile/entries/002.p/88", "89 entries, expected 88");
  spit(dir, "tile/entries/002.p/88", b, last);
  expect_refused(dir, &k, "tile/entries/002.p/88", "87 entries, expected 88");
  /* an entry changed in place: the hashes do not match */
  memcpy(bad, b, len);
  bad[last + 3] ^= 1;
  spit(dir, "tile/entries/002.p/88", bad, len);
  expect_refused(dir, NULL, "entry 599 (in tile/entries/002.p/88) does not match", "tile/0/002.p/88");

  /* a full bundle inside the tree with a length running past its end: the reader says which */
  spit(dir, "tile/entries/002.p/88", b, len);
  free(b);
  b = slurp(dir, "tile/entries/000", &len);
  memcpy(bad, b, 2);
  bad[0] = 0xff;
  bad[1] = 0xff;
  uint8_t *copy = cp_xmalloc(len);
  memcpy(copy, b, len);
  copy[0] = 0xff;
  spit(dir, "tile/entries/000", copy, len);
  reg_log_t *log = NULL;
  assert_int_equal(reg_open(dir, NULL, &log, errbuf, sizeof errbuf), 0);
  uint8_t *out = NULL;
  assert_int_equal(reg_read_entry(log, 5, &out, &elen, errbuf, sizeof errbuf), -1);
  assert_non_null(strstr(errbuf, "tile/entries/000"));
  assert_int_equal(reg_audit(log, errbuf, sizeof errbuf), -1);
  assert_non_null(strstr(errbuf, "tile/entries/000"));
  reg_close(&log);
  spit(dir, "tile/entries/000", b, len);
  free(copy);
  free(bad);
  free(b);
  expect_opens(dir, NULL);

  /* reg_bundle_next on its own: short buffers */
  const uint8_t one[1] = {0};
  const uint8_t two[3] = {0, 5, 'a'};
  pos = 0;
  assert_int_equal(reg_bundle_next(one, 1, &pos, &e, &elen), -1);
  pos = 0;
  assert_int_equal(reg_bundle_next(two, 3, &pos, &e, &elen), -1);
  pos = 0;
  assert_int_equal(reg_bundle_next(two, 0, &pos, &e, &elen), 0);
  rmtree(dir);
}

/* ---- the audit of a damaged mirror: the damage is the verdict ----------------- */

/* A register of SIZE signed entries (a genesis key entry, then records signed by k), as the signer makes. */
static char *make_signed_register(const cp_signkey_t *k) {
  char tmpl[256];
  snprintf(tmpl, sizeof tmpl, "/tmp/cp-hostile-test-XXXXXX");
  assert_non_null(mkdtemp(tmpl));
  char *dir = cp_xmalloc(strlen(tmpl) + 8);
  sprintf(dir, "%s/reg", tmpl);
  reg_log_t *log = NULL;
  assert_int_equal(reg_open(dir, k, &log, errbuf, sizeof errbuf), 0);
  uint8_t *ents[SIZE];
  size_t lens[SIZE];
  assert_int_equal(reg_key_entry_build(k, k->name, k->pk, 1700000000, &ents[0], &lens[0], errbuf, sizeof errbuf), 0);
  for (int i = 1; i < SIZE; i++) {
    char id[32];
    snprintf(id, sizeof id, "evt-%d", i);
    Carepass__V1__PassportEntry pe = CAREPASS__V1__PASSPORT_ENTRY__INIT;
    uint8_t pseudo[32] = {(uint8_t)i, 2, 3};
    pe.version = 1;
    pe.entry_type = CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_RECORD;
    pe.worker_pseudonym.data = pseudo;
    pe.worker_pseudonym.len = 32;
    pe.qualification_code = (char *)"RF-FIRE";
    pe.provider_id = (char *)"PRV-0001";
    pe.provider_event_id = id;
    pe.completion_date = (char *)"2025-03-03";
    assert_int_equal(reg_entry_sign(k, &pe, &ents[i], &lens[i], errbuf, sizeof errbuf), 0);
  }
  uint64_t first;
  assert_int_equal(reg_append(log, (const uint8_t **)ents, lens, SIZE, &first, errbuf, sizeof errbuf), 0);
  reg_close(&log);
  for (int i = 0; i < SIZE; i++) free(ents[i]);
  return dir;
}

/* The verdict lines of one audit ("check: failed (why)"), as `carepass audit` prints them. */
typedef struct {
  char text[4096];   // the lines, each ending in '\n'
} lines_t;

static void collect_line(void *arg, reg_verdict_t v, const char *check, const char *why) {
  lines_t *l = arg;
  size_t n = strlen(l->text);
  snprintf(l->text + n, sizeof l->text - n, "%s: %s (%s)\n", check,
           v == REG_CHECK_PASSED ? "passed" : v == REG_CHECK_FAILED ? "failed" : "not established", why);
}

/* Audit dir with signatures on `threads` threads; *rc and the lines. */
static int audit_lines(const char *dir, const char *vkey, int threads, lines_t *l, reg_audit_result_t *res) {
  l->text[0] = '\0';
  reg_audit_opts_t o = {.dir = dir, .vkey = vkey, .signatures = true, .threads = threads, .check = collect_line,
                        .arg = l};
  return reg_audit_run(&o, res);
}

/* A truncated or over-long entry bundle, or one whose length prefix was changed, from a hostile
 * mirror: the audit reports the bundle and nothing else (no signature or key-history line blaming
 * an intact entry; once the queued signature checks read the freed bundle). */
static void test_audit_of_damaged_bundles(void **state) {
  (void)state;
  cp_signkey_t k;
  test_key(&k);
  char *dir = make_signed_register(&k);
  char vkey[512];
  assert_int_equal(cp_vkey_format(k.name, k.pk, vkey, sizeof vkey), 0);
  lines_t l;
  reg_audit_result_t res;
  for (int threads = 1; threads <= 2; threads++) {
    assert_int_equal(audit_lines(dir, vkey, threads, &l, &res), 0);
    assert_int_equal(res.failed, 0);
    assert_true(res.complete);
    assert_non_null(strstr(l.text, "signatures: passed (600 entry signatures verified"));
  }
  size_t len;
  uint8_t *b = slurp(dir, "tile/entries/001", &len);
  uint8_t *bad = cp_xmalloc(len + 8);
  /* where entry 100 of the bundle (index 356) starts */
  size_t pos = 0, elen, at100 = 0;
  const uint8_t *e;
  for (int i = 0; i <= 100; i++) {
    at100 = pos;
    assert_int_equal(reg_bundle_next(b, len, &pos, &e, &elen), 1);
  }
  struct {
    const char *what;   // the damage
    size_t len;         // bytes of bad written
    const char *line;   // the one line the audit prints
  } cases[] = {
      {"truncated", len - 10,
       "entries: failed (entry bundle tile/entries/001 is truncated or corrupt (255 entries read, 256 expected))\n"},
      {"over-long", len + 7,
       "entries: failed (entry bundle tile/entries/001 is truncated or corrupt (256 entries read, 256 expected, "
       "trailing bytes))\n"},
      {"a length prefix shortened", len,
       NULL},   /* entries after it are slices of others: how many are read depends on the bytes */
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    memcpy(bad, b, len);
    memcpy(bad + len, "\x00\x05" "abcde", 7);
    if (c == 2) {
      size_t n = ((size_t)bad[at100] << 8 | bad[at100 + 1]) - 40;
      bad[at100] = (uint8_t)(n >> 8);
      bad[at100 + 1] = (uint8_t)n;
    }
    spit(dir, "tile/entries/001", bad, cases[c].len);
    for (int threads = 1; threads <= 2; threads++) {
      assert_int_equal(audit_lines(dir, vkey, threads, &l, &res), 0);
      printf("  %s, %d thread(s): %s", cases[c].what, threads, l.text);
      assert_false(res.complete);
      assert_int_equal(res.failed, 1);
      if (cases[c].line != NULL) {
        assert_string_equal(l.text, cases[c].line);
      } else {
        assert_non_null(strstr(l.text, "entries: failed (entry bundle tile/entries/001 is truncated or corrupt ("));
        assert_ptr_equal(strchr(l.text, '\n') + 1, l.text + strlen(l.text));   /* that line only */
      }
    }
  }
  spit(dir, "tile/entries/001", b, len);
  assert_int_equal(audit_lines(dir, vkey, 2, &l, &res), 0);
  assert_int_equal(res.failed, 0);
  free(bad);
  free(b);
  rmtree(dir);
}

/* A checkpoint claiming 2^64 - 1 entries: "tree size too large", not an internal error. */
static void test_audit_of_an_absurd_size(void **state) {
  (void)state;
  cp_signkey_t k;
  test_key(&k);
  char *dir = make_signed_register(&k);
  char vkey[512];
  assert_int_equal(cp_vkey_format(k.name, k.pk, vkey, sizeof vkey), 0);
  char note[REG_CHECKPOINT_MAX + 1];
  uint8_t root[REG_HASH_BYTES];
  memset(root, 0x5a, sizeof root);
  static const struct {
    uint64_t size;      // claimed size
    const char *line;   // the audit's one line
  } cases[] = {
      {UINT64_MAX, "checkpoint: failed (checkpoint tree size too large: 18446744073709551615, a tree holds at most "
                   "9223372036854775807 entries (the checkpoint is corrupt or forged))\n"},
      {UINT64_MAX - 1, "checkpoint: failed (checkpoint tree size too large: 18446744073709551614, a tree holds at "
                       "most 9223372036854775807 entries (the checkpoint is corrupt or forged))\n"},
      {(uint64_t)INT64_MAX + 1, "checkpoint: failed (checkpoint tree size too large: 9223372036854775808, a tree "
                                "holds at most 9223372036854775807 entries (the checkpoint is corrupt or forged))\n"},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    /* correctly signed (a leaked key), so only the size is wrong */
    int n = reg_checkpoint_sign(&k, cases[c].size, root, note, sizeof note, errbuf, sizeof errbuf);
    assert_true(n > 0);
    spit(dir, "checkpoint", note, (size_t)n);
    lines_t l;
    reg_audit_result_t res;
    assert_int_equal(audit_lines(dir, vkey, 2, &l, &res), -1);
    printf("  size %" PRIu64 ": %s", cases[c].size, l.text);
    assert_string_equal(l.text, cases[c].line);
    assert_int_equal(res.failed, 1);
    assert_false(res.complete);
    expect_refused(dir, NULL, NULL, NULL);   /* reg_open refuses it too (the tiles are not there) */
  }
  /* the largest size audited is a walk that finds the tiles missing, not a wrap-around */
  int n = reg_checkpoint_sign(&k, (uint64_t)INT64_MAX, root, note, sizeof note, errbuf, sizeof errbuf);
  spit(dir, "checkpoint", note, (size_t)n);
  lines_t l;
  reg_audit_result_t res;
  assert_int_equal(audit_lines(dir, vkey, 1, &l, &res), 0);
  printf("  size %" PRId64 ": %s", INT64_MAX, l.text);
  assert_int_equal(res.failed, 1);
  assert_non_null(strstr(l.text, "entries: failed ("));
  assert_null(strstr(l.text, "internal error"));
  rmtree(dir);
}

/* ---- missing partial tiles: the writer rebuilds what it can ----------------- */

static void test_missing_partials_rebuilt_or_refused(void **state) {
  (void)state;
  cp_signkey_t k;
  test_key(&k);
  char *dir = make_register(&k);
  struct stat st;
  /* level 0 and level 1 partials missing: a reader names the file, the writer rebuilds */
  size_t l0len, l1len;
  uint8_t *l0 = slurp(dir, "tile/0/002.p/88", &l0len);
  uint8_t *l1 = slurp(dir, "tile/1/000.p/2", &l1len);
  assert_int_equal(unlink(path_of(dir, "tile/0/002.p/88")), 0);
  assert_int_equal(unlink(path_of(dir, "tile/1/000.p/2")), 0);
  expect_refused(dir, NULL, "tile/", "No such file");
  expect_opens(dir, &k);
  size_t len;
  uint8_t *again = slurp(dir, "tile/0/002.p/88", &len);
  assert_int_equal(len, l0len);
  assert_memory_equal(again, l0, len);
  free(again);
  again = slurp(dir, "tile/1/000.p/2", &len);
  assert_int_equal(len, l1len);
  assert_memory_equal(again, l1, len);
  free(again);

  /* the partial bundle missing, a wider copy left by a batch never checkpointed: rebuilt */
  size_t blen;
  uint8_t *bundle = slurp(dir, "tile/entries/002.p/88", &blen);
  uint8_t *wider = cp_xmalloc(blen + 3);
  memcpy(wider, bundle, blen);
  memcpy(wider + blen, "\0\1q", 3);
  spit(dir, "tile/entries/002.p/89", wider, blen + 3);
  assert_int_equal(unlink(path_of(dir, "tile/entries/002.p/88")), 0);
  expect_opens(dir, &k);
  again = slurp(dir, "tile/entries/002.p/88", &len);
  assert_int_equal(len, blen);
  assert_memory_equal(again, bundle, len);
  free(again);
  assert_int_not_equal(stat(path_of(dir, "tile/entries/002.p/89"), &st), 0);   /* discarded */
  /* ... a wider copy that lies: rebuilt, then caught by the hashes */
  wider[5] ^= 1;
  spit(dir, "tile/entries/002.p/89", wider, blen + 3);
  assert_int_equal(unlink(path_of(dir, "tile/entries/002.p/88")), 0);
  expect_refused(dir, &k, "does not match", NULL);
  /* ... no copy at all: refused, naming the bundle */
  assert_int_equal(unlink(path_of(dir, "tile/entries/002.p/88")), 0);
  expect_refused(dir, &k, "tile/entries/002.p/88", "cannot be rebuilt");
  expect_refused(dir, NULL, "tile/entries/002.p/88", "No such file");
  spit(dir, "tile/entries/002.p/88", bundle, blen);
  /* level 1 missing and a level-0 full tile it needs missing too: refused, naming both */
  size_t flen;
  uint8_t *full = slurp(dir, "tile/0/001", &flen);
  assert_int_equal(unlink(path_of(dir, "tile/1/000.p/2")), 0);
  assert_int_equal(unlink(path_of(dir, "tile/0/001")), 0);
  expect_refused(dir, &k, "tile/1/000.p/2", "tile/0/001");
  spit(dir, "tile/0/001", full, flen);
  expect_opens(dir, &k);
  free(full);
  free(wider);
  free(bundle);
  free(l0);
  free(l1);
  rmtree(dir);
}

/* ---- links, special files, planted temp files ------------------------------- */

static void test_links_and_special_files(void **state) {
  (void)state;
  cp_signkey_t k;
  test_key(&k);
  char *dir = make_register(&k);
  char outside[300], target[600];
  snprintf(outside, sizeof outside, "%s/../outside", dir);
  assert_int_equal(mkdir(outside, 0755), 0);

  /* a tile that is a symlink to a perfect copy outside the register: refused all the same */
  snprintf(target, sizeof target, "%s/tile-copy", outside);
  assert_int_equal(rename(path_of(dir, "tile/0/002.p/88"), target), 0);
  assert_int_equal(symlink(target, path_of(dir, "tile/0/002.p/88")), 0);
  expect_refused(dir, NULL, "tile/0/002.p/88", "symbolic link");
  assert_int_equal(unlink(path_of(dir, "tile/0/002.p/88")), 0);
  assert_int_equal(rename(target, path_of(dir, "tile/0/002.p/88")), 0);

  /* a tile directory that is a symlink */
  snprintf(target, sizeof target, "%s/entries", outside);
  assert_int_equal(rename(path_of(dir, "tile/entries"), target), 0);
  assert_int_equal(symlink(target, path_of(dir, "tile/entries")), 0);
  expect_refused(dir, NULL, "tile/entries", "symbolic link");
  assert_int_equal(unlink(path_of(dir, "tile/entries")), 0);
  assert_int_equal(rename(target, path_of(dir, "tile/entries")), 0);

  /* a FIFO or a directory in place of a tile: refused at once, no hang */
  size_t len;
  uint8_t *t = slurp(dir, "tile/1/000.p/2", &len);
  assert_int_equal(unlink(path_of(dir, "tile/1/000.p/2")), 0);
  assert_int_equal(mkfifo(path_of(dir, "tile/1/000.p/2"), 0644), 0);
  expect_refused(dir, NULL, "tile/1/000.p/2", "not a regular file");
  assert_int_equal(unlink(path_of(dir, "tile/1/000.p/2")), 0);
  assert_int_equal(mkdir(path_of(dir, "tile/1/000.p/2"), 0755), 0);
  expect_refused(dir, NULL, "tile/1/000.p/2", "not a regular file");
  assert_int_equal(rmdir(path_of(dir, "tile/1/000.p/2")), 0);
  spit(dir, "tile/1/000.p/2", t, len);
  free(t);
  /* the checkpoint as a symlink */
  snprintf(target, sizeof target, "%s/checkpoint", outside);
  assert_int_equal(rename(path_of(dir, "checkpoint"), target), 0);
  assert_int_equal(symlink(target, path_of(dir, "checkpoint")), 0);
  expect_refused(dir, NULL, "checkpoint", "symbolic link");
  assert_int_equal(unlink(path_of(dir, "checkpoint")), 0);
  assert_int_equal(rename(target, path_of(dir, "checkpoint")), 0);
  expect_opens(dir, NULL);

  /* the writer never writes through a planted temp-file symlink */
  snprintf(target, sizeof target, "%s/victim", outside);
  spit(outside, "victim", "precious", 8);
  assert_int_equal(symlink(target, path_of(dir, "tile/0/002.p/89.tmp")), 0);
  assert_int_equal(symlink(target, path_of(dir, "checkpoint.tmp")), 0);
  reg_log_t *log = NULL;
  assert_int_equal(reg_open(dir, &k, &log, errbuf, sizeof errbuf), 0);
  const uint8_t *ent[1] = {(const uint8_t *)"one more"};
  size_t lens[1] = {8};
  uint64_t first;
  assert_int_equal(reg_append(log, ent, lens, 1, &first, errbuf, sizeof errbuf), 0);
  assert_int_equal(first, SIZE);
  reg_close(&log);
  uint8_t *v = slurp(outside, "victim", &len);
  assert_int_equal(len, 8);
  assert_memory_equal(v, "precious", 8);
  free(v);

  /* tile paths that try to escape are not tile paths */
  int level;
  uint64_t idx;
  unsigned w;
  const char *bad[] = {"tile/0/../../etc/passwd", "tile/../checkpoint", "/tile/0/000", "tile/0/000/",
                       "tile/0/x000/001", "tile/0/000.p/0", "tile/0/000.p/256", "tile/entries/-01",
                       "tile/64/000", "tile/0/000.p/08", "tile/0/000\n", ""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(reg_tile_parse_path(bad[i], &level, &idx, &w), -1);
  rmtree(dir);
}

/* ---- proofs for the wrong tree ---------------------------------------------- */

static void test_proof_for_the_wrong_tree(void **state) {
  (void)state;
  cp_signkey_t k;
  test_key(&k);
  char *dir = make_register(&k);
  reg_log_t *log = NULL;
  assert_int_equal(reg_open(dir, NULL, &log, errbuf, sizeof errbuf), 0);
  uint8_t root_n[REG_HASH_BYTES], root_m[REG_HASH_BYTES];
  const uint64_t N = 300, M = SIZE;
  reg_hashes_root((const reg_hash_t *)leaves, N, root_n);
  reg_root(log, root_m);
  reg_hash_t proof[REG_PROOF_MAX];
  size_t n;
  /* inclusion proof of leaf 17 in the tree of size N */
  assert_int_equal(reg_inclusion_proof(log, 17, N, proof, &n, errbuf, sizeof errbuf), 0);
  assert_int_equal(reg_verify_inclusion(leaves[17], 17, N, proof, n, root_n), 0);
  /* ... checked against the root of size M (with either size), another leaf, another index */
  assert_int_not_equal(reg_verify_inclusion(leaves[17], 17, M, proof, n, root_m), 0);
  assert_int_not_equal(reg_verify_inclusion(leaves[17], 17, N, proof, n, root_m), 0);
  assert_int_not_equal(reg_verify_inclusion(leaves[18], 17, N, proof, n, root_n), 0);
  assert_int_not_equal(reg_verify_inclusion(leaves[17], 16, N, proof, n, root_n), 0);
  /* truncated, extended, empty proofs; an index beyond the size */
  assert_int_not_equal(reg_verify_inclusion(leaves[17], 17, N, proof, n - 1, root_n), 0);
  memcpy(proof[n], proof[0], REG_HASH_BYTES);
  assert_int_not_equal(reg_verify_inclusion(leaves[17], 17, N, proof, n + 1, root_n), 0);
  assert_int_not_equal(reg_verify_inclusion(leaves[17], 17, N, proof, 0, root_n), 0);
  assert_int_not_equal(reg_verify_inclusion(leaves[17], N, N, proof, n, root_n), 0);
  /* consistency N -> M, checked with the roots swapped or the sizes changed */
  assert_int_equal(reg_consistency_proof(log, N, M, proof, &n, errbuf, sizeof errbuf), 0);
  assert_int_equal(reg_verify_consistency(N, M, proof, n, root_n, root_m), 0);
  assert_int_not_equal(reg_verify_consistency(N, M, proof, n, root_m, root_n), 0);
  assert_int_not_equal(reg_verify_consistency(N + 1, M, proof, n, root_n, root_m), 0);
  /* (not asserted: the same hashes can also fit a neighbouring new size, e.g. M - 1, whose
   * right edge differs only inside one proof hash -- size and root come together from
   * one signed checkpoint, which is what binds them) */
  assert_int_not_equal(reg_verify_consistency(M, N, proof, n, root_m, root_n), 0);
  assert_int_not_equal(reg_verify_consistency(N, M, proof, n - 1, root_n, root_m), 0);
  /* proofs asked for trees the register does not have: an error, not a crash */
  assert_int_equal(reg_inclusion_proof(log, 17, M + 1, proof, &n, errbuf, sizeof errbuf), -1);
  assert_non_null(strstr(errbuf, "beyond the register size"));
  assert_int_equal(reg_inclusion_proof(log, M, M, proof, &n, errbuf, sizeof errbuf), -1);
  assert_int_equal(reg_consistency_proof(log, M, N, proof, &n, errbuf, sizeof errbuf), -1);
  assert_int_equal(reg_consistency_proof(log, N, UINT64_MAX, proof, &n, errbuf, sizeof errbuf), -1);
  assert_int_equal(reg_tree_hash(log, 63, 0, root_n, errbuf, sizeof errbuf), -1);
  assert_int_equal(reg_tree_hash(log, 8, UINT64_MAX, root_n, errbuf, sizeof errbuf), -1);
  reg_close(&log);
  rmtree(dir);
}

/* ---- a directory left by a crash: every crash point of cp_register.h ------- */

/* Batch sizes of the crash child: cross tile boundaries, complete a level-0 tile in
 * one batch and several in another, end exactly on a boundary once. */
static const size_t CRASH_BATCHES[] = {37, 219, 1, 300, 64, 255, 11, 600, 3, 200};
#define NCRASH_BATCHES (sizeof CRASH_BATCHES / sizeof CRASH_BATCHES[0])
static const char *self_exe;   /* this test binary, re-executed as the crash child */

static void crash_key(cp_signkey_t *k) {
  uint8_t seed[crypto_sign_SEEDBYTES];
  memset(seed, 7, sizeof seed);
  memset(k, 0, sizeof *k);
  snprintf(k->name, sizeof k->name, "%s", ORIGIN);
  crypto_sign_seed_keypair(k->pk, k->sk, seed);
  cp_key_id(k->name, k->pk, k->key_id);
}

static size_t crash_entry(uint64_t i, uint8_t *buf) {
  return (size_t)snprintf((char *)buf, 40, "crash-%llu-%.*s", (unsigned long long)i, (int)(i % 13), "zzzzzzzzzzzzz");
}

/* The child: append CRASH_BATCHES from where the register is; the crash point kills it. */
static int crash_child(const char *dir) {
  if (cp_config_load(CP_SVC_SIGNER, errbuf, sizeof errbuf) != 0) {   /* CAREPASS_TEST_CRASH_POINT */
    fprintf(stderr, "child config: %s\n", errbuf);
    return 2;
  }
  cp_signkey_t k;
  crash_key(&k);
  reg_log_t *log = NULL;
  if (reg_open(dir, &k, &log, errbuf, sizeof errbuf) != 0) {
    fprintf(stderr, "child reg_open: %s\n", errbuf);
    return 2;
  }
  static uint8_t bufs[600][40];
  const uint8_t *ents[600];
  size_t lens[600];
  for (size_t b = 0; b < NCRASH_BATCHES; b++) {
    uint64_t base = reg_size(log), first;
    for (size_t i = 0; i < CRASH_BATCHES[b]; i++) {
      lens[i] = crash_entry(base + i, bufs[i]);
      ents[i] = bufs[i];
    }
    if (reg_append(log, ents, lens, CRASH_BATCHES[b], &first, errbuf, sizeof errbuf) != 0) {
      fprintf(stderr, "child reg_append: %s\n", errbuf);
      return 3;
    }
  }
  reg_close(&log);
  return 0;   /* the crash point was never reached */
}

static void test_recovery_after_each_crash_point(void **state) {
  (void)state;
  static const char *points[] = {"bundle", "tile0", "tile-upper", "tiles-synced", "checkpoint-renamed", "appended"};
  static const int ns[] = {1, 2, 5};
  cp_signkey_t k;
  crash_key(&k);
  for (size_t p = 0; p < sizeof points / sizeof points[0]; p++) {
    for (size_t j = 0; j < sizeof ns / sizeof ns[0]; j++) {
      char tmpl[] = "/tmp/cp-crash-test-XXXXXX", dir[64], env[64];
      assert_non_null(mkdtemp(tmpl));
      snprintf(dir, sizeof dir, "%s/reg", tmpl);
      snprintf(env, sizeof env, "%s:%d", points[p], ns[j]);
      fflush(NULL);
      pid_t pid = fork();
      assert_true(pid >= 0);
      if (pid == 0) {
        setenv("CAREPASS_TEST_CRASH_POINT", env, 1);
        execl(self_exe, self_exe, "--crash-child", dir, (char *)NULL);
        _exit(127);
      }
      int st;
      assert_int_equal(waitpid(pid, &st, 0), pid);
      if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL) fprintf(stderr, "%s: child status %d\n", env, st);
      assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

      /* the restarted writer: a checkpoint at a batch boundary, tiles that back it */
      reg_log_t *log = NULL;
      int rc = reg_open(dir, &k, &log, errbuf, sizeof errbuf);
      if (rc != 0) fprintf(stderr, "%s: reopen: %s\n", env, errbuf);
      assert_int_equal(rc, 0);
      uint64_t size = reg_size(log), cum = 0;
      size_t done = 0;
      while (done < NCRASH_BATCHES && cum < size) cum += CRASH_BATCHES[done++];
      assert_int_equal(cum, size);   /* whole batches only */
      if (strcmp(points[p], "tiles-synced") == 0) assert_int_equal(done, (size_t)ns[j] - 1);
      if (strcmp(points[p], "checkpoint-renamed") == 0 || strcmp(points[p], "appended") == 0)
        assert_int_equal(done, (size_t)ns[j]);
      reg_hash_t *lv = cp_xmalloc((size_t)(size + 1) * sizeof *lv);
      uint8_t e[40], want[REG_HASH_BYTES], got[REG_HASH_BYTES];
      for (uint64_t i = 0; i < size; i++) reg_leaf_hash(e, crash_entry(i, e), lv[i]);
      if (size == 0)
        reg_empty_root(want);
      else
        reg_hashes_root((const reg_hash_t *)lv, (size_t)size, want);
      reg_root(log, got);
      assert_memory_equal(got, want, REG_HASH_BYTES);
      assert_int_equal(reg_audit(log, errbuf, sizeof errbuf), 0);
      /* it carries on: one more batch, then a reader agrees */
      const uint8_t *one[1] = {e};
      size_t len1[1] = {crash_entry(size, e)};
      uint64_t first;
      assert_int_equal(reg_append(log, one, len1, 1, &first, errbuf, sizeof errbuf), 0);
      assert_int_equal(first, size);
      reg_close(&log);
      assert_int_equal(reg_open(dir, NULL, &log, errbuf, sizeof errbuf), 0);
      assert_int_equal(reg_size(log), size + 1);
      assert_int_equal(reg_audit(log, errbuf, sizeof errbuf), 0);
      reg_close(&log);
      free(lv);
      printf("  crash at %-22s -> restarted at size %llu (%zu whole batches)\n", env, (unsigned long long)size, done);
      char cmd[128];
      snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpl);
      assert_int_equal(system(cmd), 0);
    }
  }
}

int main(int argc, char **argv) {
  if (sodium_init() < 0) return 1;
  if (argc == 3 && strcmp(argv[1], "--crash-child") == 0) return crash_child(argv[2]);
  self_exe = "/proc/self/exe";
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_recovery_after_each_crash_point),
      cmocka_unit_test(test_forged_checkpoints),
      cmocka_unit_test(test_checkpoint_beyond_the_tiles),
      cmocka_unit_test(test_damaged_tiles),
      cmocka_unit_test(test_damaged_bundles),
      cmocka_unit_test(test_audit_of_damaged_bundles),
      cmocka_unit_test(test_audit_of_an_absurd_size),
      cmocka_unit_test(test_missing_partials_rebuilt_or_refused),
      cmocka_unit_test(test_links_and_special_files),
      cmocka_unit_test(test_proof_for_the_wrong_tree),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
