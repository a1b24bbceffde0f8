/* test_crypto.c -- key files (mode, format, reload), signatures, note vkeys and key ids, pseudonyms, CurveZMQ keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <zmq.h>

#include "cp_crypto.h"

static char dir[64];  // per-run temp directory

static int setup(void **state) {
  (void)state;
  if (cp_crypto_init() != 0) return -1;
  snprintf(dir, sizeof dir, "/tmp/cp-test-crypto-XXXXXX");
  return mkdtemp(dir) != NULL ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : -1;
}

static void path_in(char *out, size_t len, const char *name) { snprintf(out, len, "%s/%s", dir, name); }

static int file_mode(const char *path) {
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  return (int)(st.st_mode & 0777);
}

static char *slurp(const char *path) {
  uint8_t *buf = NULL;
  size_t len = 0;
  char err[CP_ERRLEN];
  assert_int_equal(cp_read_file(path, 1 << 16, &buf, &len, err, sizeof err), 0);
  return (char *)buf;
}

static void test_signkey_create_and_reload(void **state) {
  (void)state;
  char path[128], err[CP_ERRLEN] = "";
  path_in(path, sizeof path, "keys/signer.key"); /* parent directory is created */
  cp_signkey_t k1, k2;
  assert_int_equal(cp_signkey_load(path, "carepass.test/register", true, &k1, err, sizeof err), 0);
  assert_int_equal(file_mode(path), 0600);
  char *text = slurp(path);
  assert_memory_equal(text, "PRIVATE+KEY+carepass.test/register+", 35);
  char idhex[9];
  cp_hex(k1.key_id, 4, idhex);
  assert_non_null(strstr(text, idhex));
  free(text);

  /* reload: same key; the name in the file wins over the parameter */
  assert_int_equal(cp_signkey_load(path, "another-name", false, &k2, err, sizeof err), 0);
  assert_string_equal(k2.name, "carepass.test/register");
  assert_memory_equal(k1.pk, k2.pk, 32);
  assert_memory_equal(k1.sk, k2.sk, 64);
  assert_memory_equal(k1.key_id, k2.key_id, 4);
  cp_signkey_wipe(&k1);
  cp_signkey_wipe(&k2);
  unsigned char zero[sizeof k1] = {0};
  assert_memory_equal(&k1, zero, sizeof k1);
}

static void test_signkey_refuses_open_mode(void **state) {
  (void)state;
  char path[128], err[CP_ERRLEN] = "";
  path_in(path, sizeof path, "open.key");
  cp_signkey_t k;
  assert_int_equal(cp_signkey_load(path, "n", true, &k, err, sizeof err), 0);
  assert_int_equal(chmod(path, 0644), 0);
  assert_int_equal(cp_signkey_load(path, "n", true, &k, err, sizeof err), -1);
  assert_non_null(strstr(err, "chmod 600"));
  assert_int_equal(chmod(path, 0640), 0);
  assert_int_equal(cp_signkey_load(path, "n", true, &k, err, sizeof err), -1);
  assert_int_equal(chmod(path, 0600), 0);
  assert_int_equal(cp_signkey_load(path, "n", true, &k, err, sizeof err), 0);
  cp_signkey_wipe(&k);
}

static void test_signkey_missing_and_bad(void **state) {
  (void)state;
  char path[128], err[CP_ERRLEN] = "";
  cp_signkey_t k;
  path_in(path, sizeof path, "absent.key");
  assert_int_equal(cp_signkey_load(path, "n", false, &k, err, sizeof err), -1);
  assert_int_equal(cp_signkey_load(path, "bad name", true, &k, err, sizeof err), -1);
  assert_int_equal(cp_signkey_load(path, "bad+name", true, &k, err, sizeof err), -1);
  assert_int_not_equal(access(path, F_OK), 0);

  path_in(path, sizeof path, "garbage.key");
  assert_int_equal(cp_write_file_atomic(path, "hello", 5, 0600, err, sizeof err), 0);
  assert_int_equal(cp_signkey_load(path, "n", true, &k, err, sizeof err), -1);

  /* a key id that does not match is refused (damaged file) */
  path_in(path, sizeof path, "idmismatch.key");
  assert_int_equal(cp_signkey_load(path, "n", true, &k, err, sizeof err), 0);
  char *text = slurp(path);
  char *id = text + strlen("PRIVATE+KEY+n+");
  id[0] = id[0] == '0' ? '1' : '0';
  assert_int_equal(cp_write_file_atomic(path, text, strlen(text), 0600, err, sizeof err), 0);
  free(text);
  assert_int_equal(cp_signkey_load(path, "n", false, &k, err, sizeof err), -1);
  assert_non_null(strstr(err, "key id"));
}

static void test_go_format_key(void **state) {
  (void)state;
  /* A key in the Go note format with a '+' inside the base64 part (seed chosen
   * so the encoding contains '+'): written by hand, loaded, id recomputed. */
  unsigned char seed[32], blob[33], pk[32], sk[64], id[4];
  char b64[64], idhex[9], text[256], path[128], err[CP_ERRLEN] = "";
  for (int s = 0;; s++) {
    assert_true(s < 1000);
    memset(seed, s, sizeof seed);
    blob[0] = 0x01;
    memcpy(blob + 1, seed, 32);
    assert_int_equal(cp_b64_encode(blob, 33, b64, sizeof b64), 0);
    if (strchr(b64, '+') != NULL) break;
  }
  crypto_sign_seed_keypair(pk, sk, seed);
  cp_key_id("go.example/log", pk, id);
  cp_hex(id, 4, idhex);
  snprintf(text, sizeof text, "PRIVATE+KEY+go.example/log+%s+%s\n", idhex, b64);
  path_in(path, sizeof path, "go.key");
  assert_int_equal(cp_write_file_atomic(path, text, strlen(text), 0600, err, sizeof err), 0);
  cp_signkey_t k;
  assert_int_equal(cp_signkey_load(path, "ignored", false, &k, err, sizeof err), 0);
  assert_string_equal(k.name, "go.example/log");
  assert_memory_equal(k.pk, pk, 32);
  cp_signkey_wipe(&k);
}

static void test_sign_verify(void **state) {
  (void)state;
  char path[128], err[CP_ERRLEN] = "";
  path_in(path, sizeof path, "sig.key");
  cp_signkey_t k;
  assert_int_equal(cp_signkey_load(path, "sig.test", true, &k, err, sizeof err), 0);
  uint8_t entry[] = "entry bytes\x00\x01\x02";
  unsigned char sig[64];
  cp_sign_entry(&k, entry, sizeof entry, sig);
  assert_true(cp_verify_entry(k.pk, entry, sizeof entry, sig));
  /* the signature covers the domain: a plain Ed25519 check over the entry alone fails */
  assert_int_not_equal(crypto_sign_verify_detached(sig, entry, sizeof entry, k.pk), 0);
  entry[0] ^= 1;
  assert_false(cp_verify_entry(k.pk, entry, sizeof entry, sig));
  entry[0] ^= 1;
  sig[10] ^= 0x80;
  assert_false(cp_verify_entry(k.pk, entry, sizeof entry, sig));
  sig[10] ^= 0x80;
  assert_false(cp_verify_entry(k.pk, entry, sizeof entry - 1, sig));
  unsigned char other[32];
  memcpy(other, k.pk, 32);
  other[0] ^= 1;
  assert_false(cp_verify_entry(other, entry, sizeof entry, sig));
  cp_signkey_wipe(&k);
}

static void test_key_id_vector(void **state) {
  (void)state;
  /* python3 -c "import hashlib; print(hashlib.sha256(b'example.com/log\n\x01'+bytes(range(32))).hexdigest()[:8])" */
  unsigned char pk[32], id[4];
  char hex[9];
  for (int i = 0; i < 32; i++) pk[i] = (unsigned char)i;
  cp_key_id("example.com/log", pk, id);
  cp_hex(id, 4, hex);
  assert_string_equal(hex, "a06c8792");
}

static void test_vkey(void **state) {
  (void)state;
  /* The Go checksum database's published verifier key: an independent vector
   * for the name + key id + base64 layout (and a '+' inside the base64). */
  const char *golang = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";
  char name[128], err[CP_ERRLEN] = "", again[256];
  unsigned char pk[32], id[4];
  assert_int_equal(cp_vkey_parse(golang, name, sizeof name, pk, id, err, sizeof err), 0);
  assert_string_equal(name, "sum.golang.org");
  assert_memory_equal(id, "\x03\x3d\xe0\xae", 4);
  assert_int_equal(cp_vkey_format(name, pk, again, sizeof again), 0);
  assert_string_equal(again, golang);

  /* round trip of a generated key */
  char path[128];
  path_in(path, sizeof path, "vkey.key");
  cp_signkey_t k;
  assert_int_equal(cp_signkey_load(path, "carepass.test/log", true, &k, err, sizeof err), 0);
  assert_int_equal(cp_vkey_format(k.name, k.pk, again, sizeof again), 0);
  assert_int_equal(cp_vkey_parse(again, name, sizeof name, pk, id, err, sizeof err), 0);
  assert_string_equal(name, k.name);
  assert_memory_equal(pk, k.pk, 32);
  assert_memory_equal(id, k.key_id, 4);
  cp_signkey_wipe(&k);

  /* damaged keys are refused */
  assert_int_equal(cp_vkey_parse("sum.golang.org+033de0af+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8",
                                 name, sizeof name, pk, id, err, sizeof err), -1);
  assert_int_equal(cp_vkey_parse("sum.golang.org+033de0ae", name, sizeof name, pk, id, err, sizeof err), -1);
  assert_int_equal(cp_vkey_parse("sum.golang.org+033de0ae+AAAA", name, sizeof name, pk, id, err, sizeof err), -1);
  assert_int_equal(cp_vkey_parse("+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8", name, sizeof name, pk, id, err, sizeof err), -1);
  /* name buffer too small */
  assert_int_equal(cp_vkey_parse(golang, name, 5, pk, id, err, sizeof err), -1);
}

static void test_pseudonym(void **state) {
  (void)state;
  unsigned char secret[32], p1[32], p2[32];
  char hex[65];
  for (int i = 0; i < 32; i++) secret[i] = (unsigned char)i;
  cp_pseudonym(secret, "AB123456C", p1);
  cp_hex(p1, 32, hex);
  /* python3 -c "import hashlib; print(hashlib.blake2b(b'carepass/worker/v1\nAB123456C',
   *   key=bytes(range(32)), digest_size=32).hexdigest())" */
  assert_string_equal(hex, "5b86cdbdcb7820485d49a36e0b1285a2624911a6c21d184f18d2086a5a868cbb");
  cp_pseudonym(secret, "AB123456C", p2);
  assert_memory_equal(p1, p2, 32);              /* deterministic */
  cp_pseudonym(secret, "AB123456D", p2);
  assert_memory_not_equal(p1, p2, 32);          /* depends on the NI number */
  secret[0] ^= 1;
  cp_pseudonym(secret, "AB123456C", p2);
  assert_memory_not_equal(p1, p2, 32);          /* keyed */
}

static void test_secret_file(void **state) {
  (void)state;
  char path[128], err[CP_ERRLEN] = "";
  unsigned char s1[32], s2[32];
  path_in(path, sizeof path, "pseudonym.secret");
  assert_int_equal(cp_secret_load(path, false, s1, err, sizeof err), -1);
  assert_int_equal(cp_secret_load(path, true, s1, err, sizeof err), 0);
  assert_int_equal(file_mode(path), 0600);
  char *text = slurp(path);
  assert_int_equal(strlen(text), 65);
  free(text);
  assert_int_equal(cp_secret_load(path, true, s2, err, sizeof err), 0);
  assert_memory_equal(s1, s2, 32);
  assert_int_equal(chmod(path, 0604), 0);
  assert_int_equal(cp_secret_load(path, true, s2, err, sizeof err), -1);
  assert_non_null(strstr(err, "chmod 600"));
  assert_int_equal(cp_write_file_atomic(path, "abcd\n", 5, 0600, err, sizeof err), 0);
  assert_int_equal(cp_secret_load(path, true, s2, err, sizeof err), -1);
}

/* cp_write_file_exclusive: the first writer's content stays; no temp file is left behind. */
static void test_write_exclusive(void **state) {
  (void)state;
  char path[128], err[CP_ERRLEN] = "";
  path_in(path, sizeof path, "excl/first");
  assert_int_equal(cp_mkdirs(dir, 0700, err, sizeof err), 0);
  char sub[128];
  path_in(sub, sizeof sub, "excl");
  assert_int_equal(cp_mkdirs(sub, 0700, err, sizeof err), 0);
  assert_int_equal(cp_write_file_exclusive(path, "one\n", 4, 0600, err, sizeof err), 0);
  assert_int_equal(cp_write_file_exclusive(path, "two\n", 4, 0600, err, sizeof err), 1);
  char *text = slurp(path);
  assert_string_equal(text, "one\n");
  free(text);
  assert_int_equal(file_mode(path), 0600);
  DIR *d = opendir(sub);
  assert_non_null(d);
  int n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    n += e->d_name[0] != '.';
  closedir(d);
  assert_int_equal(n, 1);   /* only "first": the temp files are gone */
  path_in(path, sizeof path, "no-such-dir/x");
  assert_int_equal(cp_write_file_exclusive(path, "x", 1, 0600, err, sizeof err), -1);
}

/* Replicas starting at once over one key directory: every process creating the same missing
 * secret at the same moment gets the same secret, the one in the file. */
#define RACERS 8
static void test_secret_creation_race(void **state) {
  (void)state;
  for (int round = 0; round < 20; round++) {
    char path[128];
    snprintf(path, sizeof path, "%s/race/%d/award-tag.secret", dir, round);
    int go[2], out[2];
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(out), 0);
    pid_t kids[RACERS];
    for (int k = 0; k < RACERS; k++) {
      kids[k] = fork();
      assert_true(kids[k] >= 0);
      if (kids[k] == 0) {   /* a replica: wait for the start, create-or-load, report what it got */
        char c, err[CP_ERRLEN];
        unsigned char rec[1 + CP_SECRET_BYTES] = {0};
        close(go[1]);
        if (read(go[0], &c, 1) < 0) _exit(3);   /* EOF when the parent closes: all start together */
        rec[0] = cp_secret_load(path, true, rec + 1, err, sizeof err) == 0 ? 1 : 0;
        _exit(write(out[1], rec, sizeof rec) == (ssize_t)sizeof rec ? 0 : 4);
      }
    }
    close(go[0]);
    close(go[1]);
    close(out[1]);
    unsigned char got[RACERS][1 + CP_SECRET_BYTES];
    for (int k = 0; k < RACERS; k++) {
      size_t have = 0;
      while (have < sizeof got[k]) {
        ssize_t r = read(out[0], got[k] + have, sizeof got[k] - have);
        assert_true(r > 0);
        have += (size_t)r;
      }
    }
    close(out[0]);
    for (int k = 0; k < RACERS; k++) {
      int st = 0;
      assert_int_equal(waitpid(kids[k], &st, 0), kids[k]);
      assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    unsigned char file[CP_SECRET_BYTES];
    char err[CP_ERRLEN];
    assert_int_equal(cp_secret_load(path, false, file, err, sizeof err), 0);
    for (int k = 0; k < RACERS; k++) {
      assert_int_equal(got[k][0], 1);
      assert_memory_equal(got[k] + 1, file, CP_SECRET_BYTES);
    }
  }
}

static void test_curve_keys(void **state) {
  (void)state;
  char path[128], pubpath[140], err[CP_ERRLEN] = "";
  char pub[41], sec[41], pub2[41], sec2[41], derived[41];
  path_in(path, sizeof path, "keys/intake.curve");
  snprintf(pubpath, sizeof pubpath, "%s.pub", path);
  assert_int_equal(cp_curve_load(path, false, pub, sec, err, sizeof err), -1);
  assert_int_equal(cp_curve_load(path, true, pub, sec, err, sizeof err), 0);
  assert_int_equal(strlen(pub), 40);
  assert_int_equal(strlen(sec), 40);
  assert_int_equal(zmq_curve_public(derived, sec), 0);
  assert_string_equal(derived, pub);
  assert_int_equal(file_mode(path), 0600);
  assert_int_equal(file_mode(pubpath), 0644);
  char *text = slurp(pubpath);
  char want[42];
  snprintf(want, sizeof want, "%s\n", pub);
  assert_string_equal(text, want);
  free(text);

  /* reload, and .pub rewritten when missing */
  assert_int_equal(unlink(pubpath), 0);
  assert_int_equal(cp_curve_load(path, true, pub2, sec2, err, sizeof err), 0);
  assert_string_equal(pub, pub2);
  assert_string_equal(sec, sec2);
  text = slurp(pubpath);
  assert_string_equal(text, want);
  free(text);

  assert_int_equal(chmod(path, 0644), 0);
  assert_int_equal(cp_curve_load(path, true, pub2, sec2, err, sizeof err), -1);
  assert_non_null(strstr(err, "chmod 600"));
  assert_int_equal(chmod(path, 0600), 0);

  /* a public key that does not match the secret is refused */
  char bad[128];
  int n = snprintf(bad, sizeof bad, "public=%s\nsecret=%s\n", pub, sec);
  bad[7] = bad[7] == 'a' ? 'b' : 'a';
  assert_int_equal(cp_write_file_atomic(path, bad, (size_t)n, 0600, err, sizeof err), 0);
  assert_int_equal(cp_curve_load(path, true, pub2, sec2, err, sizeof err), -1);
}

static void test_base64(void **state) {
  (void)state;
  const uint8_t in[] = "any carnal pleas";
  char out[64];
  uint8_t back[64];
  size_t n = 0;
  assert_int_equal(cp_b64_encode(in, 16, out, sizeof out), 0);
  assert_string_equal(out, "YW55IGNhcm5hbCBwbGVhcw==");
  assert_int_equal(cp_b64_decode(out, back, sizeof back, &n), 0);
  assert_int_equal(n, 16);
  assert_memory_equal(back, in, 16);
  assert_int_equal(cp_b64_encode(in, 16, out, 10), -1);          /* too small */
  assert_int_equal(cp_b64_decode("YW55!!", back, sizeof back, &n), -1);
  assert_int_equal(cp_b64_decode("YW55IGNhcm5hbCBwbGVhcw", back, sizeof back, &n), -1); /* unpadded */
  assert_int_equal(cp_b64_decode(out, back, 4, &n), -1);         /* output too small */
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_signkey_create_and_reload),
    cmocka_unit_test(test_signkey_refuses_open_mode),
    cmocka_unit_test(test_signkey_missing_and_bad),
    cmocka_unit_test(test_go_format_key),
    cmocka_unit_test(test_sign_verify),
    cmocka_unit_test(test_key_id_vector),
    cmocka_unit_test(test_vkey),
    cmocka_unit_test(test_pseudonym),
    cmocka_unit_test(test_secret_file),
    cmocka_unit_test(test_write_exclusive),
    cmocka_unit_test(test_secret_creation_race),
    cmocka_unit_test(test_curve_keys),
    cmocka_unit_test(test_base64),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
