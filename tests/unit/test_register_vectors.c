/* test_register_vectors.c -- register pure parts: RFC 6962 hashing vectors, tlog-tiles paths,
 * entry bundles, inclusion/consistency proofs and signed-note checkpoints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cp_register.h"

/* Expected values computed independently with python3 hashlib (not with this code):
 *   leaf(b) = sha256(b'\x00' + b); node(l, r) = sha256(b'\x01' + l + r);
 *   mth(hs) splits at the largest power of two below len(hs) (RFC 6962 2.1);
 *   entries[i] = b'entry-%d' % i. */
static const char *EMPTY_ROOT = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
static const char *LEAF0 = "40766b2033429026f53d54502679a839706b4741f8dcaf3a8bba5f41b5ffe075";
static const struct {
  uint64_t n;        // tree size
  const char *root;  // MTH of entries[0..n)
} ROOTS[] = {
    {1, "40766b2033429026f53d54502679a839706b4741f8dcaf3a8bba5f41b5ffe075"},
    {2, "2f27a5082c1d42afa488ac350a9fc4390c084f54f71ecdff859e98db8429b479"},
    {3, "a64bf26e09128f6fe2fe6f8b2d8c801e166b57c047a7cd9b2b809e7a96a2f1cb"},
    {5, "1aa68d3074905a581f84cbbd0f753794904fd80451bc4c13e69d9a53bc59502c"},
    {7, "9139601cc1ca8ab2a7a0c2c134c04845f2b1ba549a83d6c845cfcda439cc585d"},
    {8, "dfcc13b9b0ca932c68de3d59eaaa8fe266a9c8091c0300e8405ebfeb0d0e5832"},
    {255, "45da9f374748e17a372f71c00422b12e2bf96842f1f61c5740fe494e4becff0f"},
    {256, "f85f4ead34080710b4d1e808301543aaab81aa04deb88599350dc26a4f2f58de"},
    {257, "918b1cec64f317c76e3cf55c0536841c039eff06772ebb8828ce7c176028b5ac"},
    {1000, "d03d63b772af99019817ee3e018286d36a26161bdb5bfe8228e92c02abe9115d"},
    {1024, "50879abe3629468fa119ffbb7d8459f20610e34b7b38ba604d87c98681ea11ce"},
    {1100, "04778d9f65dad8ef1753bd28cb9c43f89f6e5d53f03aba6da3f61e9a338c9a06"},
};
#define NLEAVES 1100

static reg_hash_t leaves[NLEAVES];

static void hex32(const uint8_t h[32], char out[65]) { cp_hex(h, 32, out); }

static void make_leaves(void) {
  for (int i = 0; i < NLEAVES; i++) {
    char e[32];
    int n = snprintf(e, sizeof e, "entry-%d", i);
    reg_leaf_hash((const uint8_t *)e, (size_t)n, leaves[i]);
  }
}

/* In-memory hash source over leaves[0..size). */
static int mem_get(void *arg, unsigned height, uint64_t index, uint8_t out[32], char *err, size_t errlen) {
  uint64_t size = *(uint64_t *)arg;
  uint64_t first = index << height, count = 1ull << height;
  if (first + count > size) return cp_err(err, errlen, "out of range");
  reg_hashes_root((const reg_hash_t *)leaves[first], (size_t)count, out);
  return 0;
}

static void test_hash_vectors(void **state) {
  (void)state;
  uint8_t h[32];
  char hex[65];
  reg_empty_root(h);
  hex32(h, hex);
  assert_string_equal(hex, EMPTY_ROOT);
  hex32(leaves[0], hex);
  assert_string_equal(hex, LEAF0);
  for (size_t i = 0; i < CP_ARRAY_LEN(ROOTS); i++) {
    reg_hashes_root((const reg_hash_t *)leaves, (size_t)ROOTS[i].n, h);
    hex32(h, hex);
    assert_string_equal(hex, ROOTS[i].root);
    uint64_t size = ROOTS[i].n;
    char err[CP_ERRLEN];
    assert_int_equal(reg_proof_root(mem_get, &size, size, h, err, sizeof err), 0);
    hex32(h, hex);
    assert_string_equal(hex, ROOTS[i].root);
  }
}

static void test_paths(void **state) {
  (void)state;
  char p[REG_PATH_MAX];
  /* examples from c2sp.org/tlog-tiles */
  assert_int_equal(reg_tile_path(p, sizeof p, 0, 1234067, 256), 0);
  assert_string_equal(p, "tile/0/x001/x234/067");
  assert_int_equal(reg_tile_path(p, sizeof p, 0, 1234067, 8), 0);
  assert_string_equal(p, "tile/0/x001/x234/067.p/8");
  assert_int_equal(reg_tile_path(p, sizeof p, REG_LEVEL_ENTRIES, 1234067, 256), 0);
  assert_string_equal(p, "tile/entries/x001/x234/067");
  assert_int_equal(reg_tile_path(p, sizeof p, 1, 0, 1), 0);
  assert_string_equal(p, "tile/1/000.p/1");
  assert_int_equal(reg_tile_path(p, sizeof p, 3, 1000, 256), 0);
  assert_string_equal(p, "tile/3/x001/000");
  assert_int_equal(reg_tile_path(p, sizeof p, 2, 999, 255), 0);
  assert_string_equal(p, "tile/2/999.p/255");
  assert_int_equal(reg_tile_path(p, sizeof p, 0, UINT64_MAX, 256), 0);
  assert_string_equal(p, "tile/0/x018/x446/x744/x073/x709/x551/615");

  int level;
  uint64_t idx;
  unsigned w;
  assert_int_equal(reg_tile_parse_path("tile/0/x001/x234/067.p/8", &level, &idx, &w), 0);
  assert_int_equal(level, 0);
  assert_int_equal(idx, 1234067);
  assert_int_equal(w, 8);
  assert_int_equal(reg_tile_parse_path("tile/entries/005", &level, &idx, &w), 0);
  assert_int_equal(level, REG_LEVEL_ENTRIES);
  assert_int_equal(idx, 5);
  assert_int_equal(w, 256);
  assert_int_equal(reg_tile_parse_path("tile/12/x001/000", &level, &idx, &w), 0);
  assert_int_equal(level, 12);
  assert_int_equal(idx, 1000);
  const char *bad[] = {"tile/0/x000/005", "tile/0/5", "tile/00/005", "tile/0/005.p/0", "tile/0/005.p/256",
                       "tile/0/005.p/08", "tile/64/000", "tile/0/x001", "tile/0/001/002", "tile/0/005.p/",
                       "tiles/0/005", "tile/0/../005", "tile/entries/abc", ""};
  for (size_t i = 0; i < CP_ARRAY_LEN(bad); i++)
    assert_int_equal(reg_tile_parse_path(bad[i], &level, &idx, &w), -1);

  assert_int_equal(reg_tile_width(0, 0, 0), 0);
  assert_int_equal(reg_tile_width(5, 0, 0), 5);
  assert_int_equal(reg_tile_width(256, 0, 0), 256);
  assert_int_equal(reg_tile_width(256, 1, 0), 1);
  assert_int_equal(reg_tile_width(256, 0, 1), 0);
  assert_int_equal(reg_tile_width(70000, 0, 273), 112);
  assert_int_equal(reg_tile_width(70000, 1, 1), 17);
  assert_int_equal(reg_tile_width(70000, 2, 0), 1);
  assert_int_equal(reg_tile_width(70000, REG_LEVEL_ENTRIES, 2), 256);
}

static void test_bundle(void **state) {
  (void)state;
  const uint8_t b[] = {0, 3, 'a', 'b', 'c', 0, 1, 'z', 1, 0};
  size_t pos = 0, len;
  const uint8_t *e;
  assert_int_equal(reg_bundle_next(b, 8, &pos, &e, &len), 1);
  assert_int_equal(len, 3);
  assert_memory_equal(e, "abc", 3);
  assert_int_equal(reg_bundle_next(b, 8, &pos, &e, &len), 1);
  assert_int_equal(len, 1);
  assert_int_equal(reg_bundle_next(b, 8, &pos, &e, &len), 0);
  /* truncated: a length of 256 with 0 bytes behind it */
  assert_int_equal(reg_bundle_next(b, sizeof b, &pos, &e, &len), -1);
  pos = 0;
  assert_int_equal(reg_bundle_next(b, 4, &pos, &e, &len), -1);
}

static void test_inclusion_proofs(void **state) {
  (void)state;
  char err[CP_ERRLEN];
  for (uint64_t size = 1; size <= 300; size += (size < 70 ? 1 : 37)) {
    uint8_t root[32];
    assert_int_equal(reg_proof_root(mem_get, &size, size, root, err, sizeof err), 0);
    for (uint64_t i = 0; i < size; i++) {
      reg_hash_t proof[REG_PROOF_MAX];
      size_t n;
      assert_int_equal(reg_proof_inclusion(mem_get, &size, i, size, proof, &n, err, sizeof err), 0);
      assert_int_equal(reg_verify_inclusion(leaves[i], i, size, proof, n, root), 0);
      /* wrong leaf, wrong index, wrong size, tampered proof, short proof */
      assert_int_equal(reg_verify_inclusion(leaves[(i + 1) % NLEAVES], i, size, proof, n, root), -1);
      if (size > 1) {
        assert_int_equal(reg_verify_inclusion(leaves[i], (i + 1) % size, size, proof, n, root), -1);
        /* the same proof against the root of the next tree size */
        uint64_t next = size + 1;
        uint8_t root2[32];
        assert_int_equal(reg_proof_root(mem_get, &next, next, root2, err, sizeof err), 0);
        assert_int_equal(reg_verify_inclusion(leaves[i], i, next, proof, n, root2), -1);
        assert_int_equal(reg_verify_inclusion(leaves[i], i, size, proof, n, root2), -1);
        proof[n / 2][7] ^= 1;
        assert_int_equal(reg_verify_inclusion(leaves[i], i, size, proof, n, root), -1);
        proof[n / 2][7] ^= 1;
        assert_int_equal(reg_verify_inclusion(leaves[i], i, size, proof, n - 1, root), -1);
      }
    }
  }
  reg_hash_t proof[REG_PROOF_MAX];
  size_t n;
  uint64_t size = 5;
  assert_int_equal(reg_proof_inclusion(mem_get, &size, 5, 5, proof, &n, err, sizeof err), -1);
  assert_int_equal(reg_verify_inclusion(leaves[0], 5, 5, proof, 0, leaves[0]), -1);
}

static void test_consistency_proofs(void **state) {
  (void)state;
  char err[CP_ERRLEN];
  for (uint64_t nsize = 1; nsize <= 140; nsize++) {
    uint8_t nroot[32];
    assert_int_equal(reg_proof_root(mem_get, &nsize, nsize, nroot, err, sizeof err), 0);
    for (uint64_t osize = 1; osize <= nsize; osize++) {
      uint8_t oroot[32];
      assert_int_equal(reg_proof_root(mem_get, &osize, osize, oroot, err, sizeof err), 0);
      reg_hash_t proof[REG_PROOF_MAX];
      size_t n;
      assert_int_equal(reg_proof_consistency(mem_get, &nsize, osize, nsize, proof, &n, err, sizeof err), 0);
      assert_int_equal(reg_verify_consistency(osize, nsize, proof, n, oroot, nroot), 0);
      if (n > 0) {
        proof[n - 1][0] ^= 0x80;
        assert_int_equal(reg_verify_consistency(osize, nsize, proof, n, oroot, nroot), -1);
        proof[n - 1][0] ^= 0x80;
      }
      if (osize < nsize) {
        assert_int_equal(reg_verify_consistency(osize, nsize, proof, n, nroot, nroot), -1);
        assert_int_equal(reg_verify_consistency(osize, nsize, proof, n, oroot, oroot), -1);
      }
    }
  }
}

/* A signing key made directly with libsodium (no key file). */
static void test_key(cp_signkey_t *k, const char *name) {
  memset(k, 0, sizeof *k);
  snprintf(k->name, sizeof k->name, "%s", name);
  crypto_sign_keypair(k->pk, k->sk);
  cp_key_id(k->name, k->pk, k->key_id);
}

static void test_checkpoint_roundtrip(void **state) {
  (void)state;
  cp_signkey_t k;
  test_key(&k, "carepass.test/register");
  char vkey[256], note[REG_CHECKPOINT_MAX], err[CP_ERRLEN];
  assert_int_equal(cp_vkey_format(k.name, k.pk, vkey, sizeof vkey), 0);
  int len = reg_checkpoint_sign(&k, 1100, leaves[3], note, sizeof note, err, sizeof err);
  assert_true(len > 0);
  assert_int_equal((size_t)len, strlen(note));
  /* body, blank line, em-dash signature line */
  char b64[64];
  assert_int_equal(cp_b64_encode(leaves[3], 32, b64, sizeof b64), 0);
  char expect_body[256];
  snprintf(expect_body, sizeof expect_body, "carepass.test/register\n1100\n%s\n\n\xE2\x80\x94 carepass.test/register ", b64);
  assert_memory_equal(note, expect_body, strlen(expect_body));

  char origin[128];
  uint64_t size = 0;
  uint8_t root[32];
  assert_int_equal(reg_checkpoint_open(note, (size_t)len, vkey, origin, sizeof origin, &size, root, err, sizeof err), 0);
  assert_string_equal(origin, "carepass.test/register");
  assert_int_equal(size, 1100);
  assert_memory_equal(root, leaves[3], 32);
  size = 0;
  assert_int_equal(reg_checkpoint_parse(note, (size_t)len, NULL, 0, &size, root, err, sizeof err), 0);
  assert_int_equal(size, 1100);

  /* a second, unknown signer line is ignored */
  char two[REG_CHECKPOINT_MAX + 256];
  snprintf(two, sizeof two, "%s\xE2\x80\x94 someone.else AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n", note);
  assert_int_equal(reg_checkpoint_open(two, strlen(two), vkey, NULL, 0, &size, root, err, sizeof err), 0);
}

static void test_checkpoint_forgeries(void **state) {
  (void)state;
  cp_signkey_t k, other, samename;
  test_key(&k, "carepass.test/register");
  test_key(&other, "carepass.test/other");
  test_key(&samename, "carepass.test/register");
  char vkey[256], note[REG_CHECKPOINT_MAX], forged[REG_CHECKPOINT_MAX], err[CP_ERRLEN];
  assert_int_equal(cp_vkey_format(k.name, k.pk, vkey, sizeof vkey), 0);
  int len = reg_checkpoint_sign(&k, 1100, leaves[3], note, sizeof note, err, sizeof err);
  assert_true(len > 0);
  uint64_t size;
  uint8_t root[32];

  /* changed size */
  strcpy(forged, note);
  char *nl = strchr(forged, '\n');
  nl[1] = '2';
  err[0] = '\0';
  assert_int_equal(reg_checkpoint_open(forged, strlen(forged), vkey, NULL, 0, &size, root, err, sizeof err), -1);
  assert_non_null(strstr(err, "does not verify"));

  /* changed root */
  strcpy(forged, note);
  char *l3 = strchr(strchr(forged, '\n') + 1, '\n') + 1;
  l3[0] = l3[0] == 'A' ? 'B' : 'A';
  assert_int_equal(reg_checkpoint_open(forged, strlen(forged), vkey, NULL, 0, &size, root, err, sizeof err), -1);
  assert_non_null(strstr(err, "does not verify"));

  /* changed signature byte (inside the base64, away from the key id) */
  strcpy(forged, note);
  char *sig = strrchr(forged, ' ') + 20;
  *sig = *sig == 'A' ? 'B' : 'A';
  assert_int_equal(reg_checkpoint_open(forged, strlen(forged), vkey, NULL, 0, &size, root, err, sizeof err), -1);
  assert_non_null(strstr(err, "does not verify"));

  /* signed by another key with another name: no signature by our key */
  len = reg_checkpoint_sign(&other, 1100, leaves[3], forged, sizeof forged, err, sizeof err);
  assert_true(len > 0);
  assert_int_equal(reg_checkpoint_open(forged, (size_t)len, vkey, NULL, 0, &size, root, err, sizeof err), -1);
  assert_non_null(strstr(err, "no signature by key carepass.test/register"));

  /* same name, different key: key id differs */
  len = reg_checkpoint_sign(&samename, 1100, leaves[3], forged, sizeof forged, err, sizeof err);
  assert_true(len > 0);
  assert_int_equal(reg_checkpoint_open(forged, (size_t)len, vkey, NULL, 0, &size, root, err, sizeof err), -1);
  assert_non_null(strstr(err, "no signature"));

  /* malformed notes */
  const char *bad[] = {"", "carepass.test/register\n5\n", "no newline at end",
                       "carepass.test/register\n5\nAAAA\n\nnot a signature line\n",
                       "carepass.test/register\n5\nAAAA\n\n\xE2\x80\x94 carepass.test/register !!!\n"};
  for (size_t i = 0; i < CP_ARRAY_LEN(bad); i++) {
    err[0] = '\0';
    assert_int_equal(reg_checkpoint_open(bad[i], strlen(bad[i]), vkey, NULL, 0, &size, root, err, sizeof err), -1);
    assert_true(strlen(err) > 0);
  }
  /* body problems are reported even when unsigned parse is used */
  const char *badbody[] = {"o\n05\nAAAA\n\nx\n", "o\n-1\nAAAA\n\nx\n", "o\n1\nAAAA\n\nx\n",
                           "o\n99999999999999999999\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\nx\n"};
  for (size_t i = 0; i < CP_ARRAY_LEN(badbody); i++)
    assert_int_equal(reg_checkpoint_parse(badbody[i], strlen(badbody[i]), NULL, 0, &size, root, err, sizeof err), -1);
  const char *good = "o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\nx\n";
  assert_int_equal(reg_checkpoint_parse(good, strlen(good), NULL, 0, &size, root, err, sizeof err), 0);
  assert_int_equal(size, 0);
  /* bad verifier key */
  assert_int_equal(reg_checkpoint_open(note, strlen(note), "nonsense", NULL, 0, &size, root, err, sizeof err), -1);
  assert_non_null(strstr(err, "verifier key"));
}

int main(void) {
  if (cp_crypto_init() != 0) return 1;
  make_leaves();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hash_vectors),       cmocka_unit_test(test_paths),
      cmocka_unit_test(test_bundle),             cmocka_unit_test(test_inclusion_proofs),
      cmocka_unit_test(test_consistency_proofs), cmocka_unit_test(test_checkpoint_roundtrip),
      cmocka_unit_test(test_checkpoint_forgeries),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
