/* test_subject.c -- unlinkable entry subjects: commitments, sealed openings, and the subject key
 * store (durable records, torn tails, modes, shredding a worker who leaves). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "cp_subject.h"

static char dir[64];

static int setup(void **state) {
  (void)state;
  if (cp_crypto_init() != 0) return -1;
  snprintf(dir, sizeof dir, "/tmp/cp-test-subject-XXXXXX");
  return mkdtemp(dir) != NULL ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : -1;
}

static void store_dir(char *out, size_t len, const char *name) { snprintf(out, len, "%s/%s", dir, name); }

static off_t file_size(const char *d, const char *name) {
  char p[256];
  snprintf(p, sizeof p, "%s/%s", d, name);
  struct stat st;
  assert_int_equal(stat(p, &st), 0);
  return st.st_size;
}

static void test_commitment(void **state) {
  (void)state;
  cp_opening_t a, b;
  memset(&a, 0x11, sizeof a);
  memset(&b, 0x11, sizeof b);
  b.r[0] ^= 1;
  uint8_t ca[CP_SUBJECT_BYTES], ca2[CP_SUBJECT_BYTES], cb[CP_SUBJECT_BYTES];
  cp_subject_commit(a.pseudonym, a.r, ca);
  cp_subject_commit(a.pseudonym, a.r, ca2);
  cp_subject_commit(b.pseudonym, b.r, cb);
  assert_memory_equal(ca, ca2, sizeof ca);          /* deterministic */
  assert_memory_not_equal(ca, cb, sizeof ca);       /* r changes it: one worker, unrelated subjects */
  assert_true(cp_subject_opens(ca, &a));
  assert_false(cp_subject_opens(ca, &b));
  /* known answer, from Python's hashlib (an implementation not ours):
   * hashlib.blake2b(b"carepass/subject/v1\n" + b"\x11" * 64, digest_size=32).hexdigest() */
  char hex[2 * CP_SUBJECT_BYTES + 1];
  sodium_bin2hex(hex, sizeof hex, ca, sizeof ca);
  assert_string_equal(hex, "30dd69eb83d39d22f282f647ca915fe9af596f854c8e35a8fe02424d66b708f3");
}

static void test_seal_round_trip_and_tampering(void **state) {
  (void)state;
  uint8_t key[CP_SUBJECT_KEY_BYTES], other[CP_SUBJECT_KEY_BYTES], slot[CP_SUBJECT_SLOT_BYTES];
  randombytes_buf(key, sizeof key);
  randombytes_buf(other, sizeof other);
  randombytes_buf(slot, sizeof slot);
  cp_opening_t op, got;
  randombytes_buf(&op, sizeof op);
  cp_subject_t s;
  cp_subject_seal(key, &op, slot, &s);
  assert_true(cp_subject_opens(s.subject, &op));
  assert_int_equal(cp_subject_unseal(key, s.subject, sizeof s.subject, s.slot, sizeof s.slot, s.sealed,
                                     sizeof s.sealed, &got), CP_SUBJECT_OK);
  assert_memory_equal(&got, &op, sizeof op);
  /* another key, a flipped byte, another slot or another subject: refused */
  assert_int_equal(cp_subject_unseal(other, s.subject, 32, s.slot, 16, s.sealed, sizeof s.sealed, &got),
                   CP_SUBJECT_BAD_SEAL);
  cp_subject_t t = s;
  t.sealed[CP_SUBJECT_SEALED_BYTES - 1] ^= 1;
  assert_int_equal(cp_subject_unseal(key, t.subject, 32, t.slot, 16, t.sealed, sizeof t.sealed, &got),
                   CP_SUBJECT_BAD_SEAL);
  t = s;
  t.slot[3] ^= 1;
  assert_int_equal(cp_subject_unseal(key, t.subject, 32, t.slot, 16, t.sealed, sizeof t.sealed, &got),
                   CP_SUBJECT_BAD_SEAL);
  t = s;
  t.subject[0] ^= 1;
  assert_int_equal(cp_subject_unseal(key, t.subject, 32, t.slot, 16, t.sealed, sizeof t.sealed, &got),
                   CP_SUBJECT_BAD_SEAL);
  /* wrong lengths are malformed, never read past */
  assert_int_equal(cp_subject_unseal(key, s.subject, 31, s.slot, 16, s.sealed, sizeof s.sealed, &got),
                   CP_SUBJECT_MALFORMED);
  assert_int_equal(cp_subject_unseal(key, s.subject, 32, s.slot, 16, s.sealed, sizeof s.sealed - 1, &got),
                   CP_SUBJECT_MALFORMED);
  /* two seals of one opening differ (fresh nonce) */
  cp_subject_t s2;
  cp_subject_seal(key, &op, slot, &s2);
  assert_memory_not_equal(s.sealed, s2.sealed, sizeof s.sealed);
}

static void test_store_durable_and_unlinkable(void **state) {
  (void)state;
  char d[128], err[256] = "";
  store_dir(d, sizeof d, "store1");
  cp_subject_store_t *st = NULL;
  assert_int_equal(cp_subject_store_open(d, CP_SUBJECT_CREATE | CP_SUBJECT_WRITER, &st, err, sizeof err), 0);
  uint8_t a[CP_PSEUDONYM_BYTES], b[CP_PSEUDONYM_BYTES];
  memset(a, 0xA1, sizeof a);
  memset(b, 0xB2, sizeof b);
  cp_subject_t a1, a2, b1, late;
  cp_subject_store_new(st, a, &a1);
  cp_subject_store_new(st, a, &a2);
  cp_subject_store_new(st, b, &b1);
  /* nothing in two entries of one worker is shared */
  assert_memory_not_equal(a1.subject, a2.subject, CP_SUBJECT_BYTES);
  assert_memory_not_equal(a1.slot, a2.slot, CP_SUBJECT_SLOT_BYTES);
  assert_memory_not_equal(a1.sealed, a2.sealed, CP_SUBJECT_SEALED_BYTES);
  assert_int_equal(cp_subject_store_workers(st), 2);
  assert_int_equal(cp_subject_store_slots(st), 3);
  assert_int_equal(cp_subject_store_flush(st, err, sizeof err), 0);
  cp_subject_store_new(st, b, &late);   /* never flushed: as if the signer died before its append */
  cp_opening_t op;
  assert_int_equal(cp_subject_store_open_entry(st, a2.subject, 32, a2.slot, 16, a2.sealed, sizeof a2.sealed, &op),
                   CP_SUBJECT_OK);
  assert_memory_equal(op.pseudonym, a, sizeof a);
  assert_true(cp_subject_opens(a2.subject, &op));
  cp_subject_store_close(&st);

  /* reopened from its files: the same, without the unflushed slot */
  assert_int_equal(cp_subject_store_open(d, CP_SUBJECT_WRITER, &st, err, sizeof err), 0);
  assert_int_equal(cp_subject_store_workers(st), 2);
  assert_int_equal(cp_subject_store_slots(st), 3);
  assert_int_equal(cp_subject_store_open_entry(st, b1.subject, 32, b1.slot, 16, b1.sealed, sizeof b1.sealed, &op),
                   CP_SUBJECT_OK);
  assert_memory_equal(op.pseudonym, b, sizeof b);
  assert_int_equal(cp_subject_store_open_entry(st, late.subject, 32, late.slot, 16, late.sealed, sizeof late.sealed, &op),
                   CP_SUBJECT_UNKNOWN_SLOT);
  /* an opening moved onto another entry's subject does not pass */
  assert_int_equal(cp_subject_store_open_entry(st, a1.subject, 32, b1.slot, 16, b1.sealed, sizeof b1.sealed, &op),
                   CP_SUBJECT_BAD_SEAL);
  cp_subject_store_close(&st);
}

static void test_store_torn_tail_and_mode(void **state) {
  (void)state;
  char d[128], p[256], err[256] = "";
  store_dir(d, sizeof d, "store2");
  cp_subject_store_t *st = NULL;
  assert_int_equal(cp_subject_store_open(d, CP_SUBJECT_CREATE | CP_SUBJECT_WRITER, &st, err, sizeof err), 0);
  uint8_t a[CP_PSEUDONYM_BYTES];
  memset(a, 0x5A, sizeof a);
  cp_subject_t e;
  cp_subject_store_new(st, a, &e);
  assert_int_equal(cp_subject_store_flush(st, err, sizeof err), 0);
  cp_subject_store_close(&st);
  off_t good = file_size(d, "slots");
  snprintf(p, sizeof p, "%s/slots", d);
  FILE *f = fopen(p, "ab");
  assert_non_null(f);
  fwrite("torn!", 1, 5, f);   /* a crash in the middle of an append */
  fclose(f);
  assert_int_equal(cp_subject_store_open(d, CP_SUBJECT_WRITER, &st, err, sizeof err), 0);
  assert_int_equal(cp_subject_store_slots(st), 1);
  cp_subject_store_close(&st);
  assert_int_equal(file_size(d, "slots"), good);   /* the writer cut the torn tail */
  /* a reader (reindex, revoke) never changes the files: a tail being written is left alone */
  f = fopen(p, "ab");
  fwrite("half", 1, 4, f);
  fclose(f);
  assert_int_equal(cp_subject_store_open(d, 0, &st, err, sizeof err), 0);
  assert_int_equal(cp_subject_store_slots(st), 1);
  cp_subject_t more;
  cp_subject_store_new(st, a, &more);
  assert_int_equal(cp_subject_store_flush(st, err, sizeof err), -1);
  assert_non_null(strstr(err, "reading only"));
  size_t removed;
  assert_int_equal(cp_subject_store_shred(st, a, &removed, err, sizeof err), -1);
  cp_subject_store_close(&st);
  assert_int_equal(file_size(d, "slots"), good + 4);
  assert_int_equal(cp_subject_store_open(d, CP_SUBJECT_WRITER, &st, err, sizeof err), 0);
  cp_subject_store_close(&st);
  assert_int_equal(file_size(d, "slots"), good);
  /* a key file others can read is refused */
  snprintf(p, sizeof p, "%s/workers", d);
  assert_int_equal(chmod(p, 0644), 0);
  assert_int_equal(cp_subject_store_open(d, CP_SUBJECT_WRITER, &st, err, sizeof err), -1);
  assert_non_null(strstr(err, "0600"));
  assert_null(st);
  assert_int_equal(chmod(p, 0600), 0);
  /* a file that is not a store's */
  snprintf(p, sizeof p, "%s/slots", d);
  f = fopen(p, "wb");
  fputs("something else\n", f);
  fclose(f);
  assert_int_equal(cp_subject_store_open(d, CP_SUBJECT_WRITER, &st, err, sizeof err), -1);
  assert_non_null(strstr(err, "not a"));
  /* no store where none was made, without create */
  store_dir(d, sizeof d, "absent");
  assert_int_equal(cp_subject_store_open(d, CP_SUBJECT_WRITER, &st, err, sizeof err), -1);
}

static bool file_contains(const char *d, const char *name, const uint8_t *needle, size_t n) {
  char p[256];
  snprintf(p, sizeof p, "%s/%s", d, name);
  FILE *f = fopen(p, "rb");
  assert_non_null(f);
  uint8_t buf[1 << 16];
  size_t len = fread(buf, 1, sizeof buf, f);
  fclose(f);
  for (size_t i = 0; i + n <= len; i++)
    if (memcmp(buf + i, needle, n) == 0) return true;
  return false;
}

/* A consent's sealed payload (the employer id): opens under the worker key for its own entry only. */
static void test_payload_seal_open(void **state) {
  (void)state;
  char d[128], err[256] = "";
  store_dir(d, sizeof d, "payload");
  cp_subject_store_t *st = NULL;
  assert_int_equal(cp_subject_store_open(d, CP_SUBJECT_CREATE | CP_SUBJECT_WRITER, &st, err, sizeof err), 0);
  uint8_t a[CP_PSEUDONYM_BYTES], b[CP_PSEUDONYM_BYTES];
  memset(a, 0xA1, sizeof a);
  memset(b, 0xB2, sizeof b);
  cp_subject_t e1, e2, eb;
  cp_subject_store_new(st, a, &e1);
  cp_subject_store_new(st, a, &e2);
  cp_subject_store_new(st, b, &eb);
  const char *emp = "EMP-0001";
  uint8_t sp[CP_SUBJECT_SEALED_PAYLOAD_MAX], sp2[CP_SUBJECT_SEALED_PAYLOAD_MAX], out[CP_SUBJECT_PAYLOAD_MAX + 1];
  size_t splen = 0, sp2len = 0, outlen = 0;
  assert_int_equal(cp_subject_store_seal_payload(st, &e1, (const uint8_t *)emp, strlen(emp), sp, &splen), 0);
  assert_int_equal(splen, CP_SUBJECT_NONCE_BYTES + strlen(emp) + CP_SUBJECT_MAC_BYTES);
  for (size_t i = 0; i + strlen(emp) <= splen; i++) assert_memory_not_equal(sp + i, emp, strlen(emp));
  assert_int_equal(cp_subject_store_open_payload(st, e1.subject, 32, e1.slot, 16, sp, splen, out, &outlen), CP_SUBJECT_OK);
  assert_int_equal(outlen, strlen(emp));
  assert_string_equal((char *)out, emp);
  /* moved to another entry of the same worker (same key): the associated data refuses it */
  assert_int_equal(cp_subject_store_open_payload(st, e2.subject, 32, e2.slot, 16, sp, splen, out, &outlen),
                   CP_SUBJECT_BAD_SEAL);
  assert_int_equal(cp_subject_store_open_payload(st, e2.subject, 32, e1.slot, 16, sp, splen, out, &outlen),
                   CP_SUBJECT_BAD_SEAL);
  /* under another worker's key */
  assert_int_equal(cp_subject_store_open_payload(st, e1.subject, 32, eb.slot, 16, sp, splen, out, &outlen),
                   CP_SUBJECT_BAD_SEAL);
  /* a wrong key */
  uint8_t other[CP_SUBJECT_KEY_BYTES];
  memset(other, 7, sizeof other);
  assert_int_equal(cp_subject_payload_open(other, e1.subject, 32, e1.slot, 16, sp, splen, out, &outlen),
                   CP_SUBJECT_BAD_SEAL);
  /* tampered: any byte of nonce, ciphertext or tag */
  for (size_t i = 0; i < splen; i += 7) {
    memcpy(sp2, sp, splen);
    sp2[i] ^= 0x01;
    assert_int_equal(cp_subject_store_open_payload(st, e1.subject, 32, e1.slot, 16, sp2, splen, out, &outlen),
                     CP_SUBJECT_BAD_SEAL);
  }
  /* a sealed opening is not a payload (its own domain) */
  assert_int_not_equal(cp_subject_store_open_payload(st, e1.subject, 32, e1.slot, 16, e1.sealed, sizeof e1.sealed, out,
                                                     &outlen), CP_SUBJECT_OK);
  /* lengths */
  assert_int_equal(cp_subject_store_open_payload(st, e1.subject, 32, e1.slot, 16, sp, CP_SUBJECT_MAC_BYTES, out, &outlen),
                   CP_SUBJECT_MALFORMED);
  assert_int_equal(cp_subject_store_open_payload(st, e1.subject, 31, e1.slot, 16, sp, splen, out, &outlen),
                   CP_SUBJECT_MALFORMED);
  uint8_t big[CP_SUBJECT_PAYLOAD_MAX + 1];
  memset(big, 'x', sizeof big);
  assert_int_equal(cp_subject_store_seal_payload(st, &e1, big, sizeof big, sp2, &sp2len), -1);
  assert_int_equal(cp_subject_store_seal_payload(st, &e1, big, 0, sp2, &sp2len), -1);
  /* two seals of one payload differ (fresh nonce) */
  assert_int_equal(cp_subject_store_seal_payload(st, &e1, (const uint8_t *)emp, strlen(emp), sp2, &sp2len), 0);
  assert_memory_not_equal(sp, sp2, splen);
  /* after the worker is shredded, nobody opens it */
  assert_int_equal(cp_subject_store_flush(st, err, sizeof err), 0);
  size_t removed = 0;
  assert_int_equal(cp_subject_store_shred(st, a, &removed, err, sizeof err), 0);
  assert_int_equal(cp_subject_store_open_payload(st, e1.subject, 32, e1.slot, 16, sp, splen, out, &outlen),
                   CP_SUBJECT_UNKNOWN_SLOT);
  cp_subject_store_close(&st);
}

static void test_shred(void **state) {
  (void)state;
  char d[128], err[256] = "";
  store_dir(d, sizeof d, "store3");
  cp_subject_store_t *st = NULL;
  assert_int_equal(cp_subject_store_open(d, CP_SUBJECT_CREATE | CP_SUBJECT_WRITER, &st, err, sizeof err), 0);
  uint8_t a[CP_PSEUDONYM_BYTES], b[CP_PSEUDONYM_BYTES];
  memset(a, 0x0A, sizeof a);
  memset(b, 0x0B, sizeof b);
  cp_subject_t a1, a2, b1;
  cp_subject_store_new(st, a, &a1);
  cp_subject_store_new(st, b, &b1);
  cp_subject_store_new(st, a, &a2);
  assert_int_equal(cp_subject_store_flush(st, err, sizeof err), 0);
  assert_true(file_contains(d, "slots", a1.slot, sizeof a1.slot));
  size_t removed = 99;
  assert_int_equal(cp_subject_store_shred(st, a, &removed, err, sizeof err), 0);
  assert_int_equal(removed, 2);
  cp_opening_t op;
  assert_int_equal(cp_subject_store_open_entry(st, a1.subject, 32, a1.slot, 16, a1.sealed, sizeof a1.sealed, &op),
                   CP_SUBJECT_UNKNOWN_SLOT);
  assert_int_equal(cp_subject_store_open_entry(st, b1.subject, 32, b1.slot, 16, b1.sealed, sizeof b1.sealed, &op),
                   CP_SUBJECT_OK);
  /* gone from the files themselves, not just from memory */
  assert_false(file_contains(d, "slots", a1.slot, sizeof a1.slot));
  assert_false(file_contains(d, "slots", a2.slot, sizeof a2.slot));
  assert_true(file_contains(d, "slots", b1.slot, sizeof b1.slot));
  cp_subject_store_close(&st);
  assert_int_equal(cp_subject_store_open(d, CP_SUBJECT_WRITER, &st, err, sizeof err), 0);
  assert_int_equal(cp_subject_store_workers(st), 1);
  assert_int_equal(cp_subject_store_slots(st), 1);
  assert_int_equal(cp_subject_store_open_entry(st, a2.subject, 32, a2.slot, 16, a2.sealed, sizeof a2.sealed, &op),
                   CP_SUBJECT_UNKNOWN_SLOT);
  /* a worker who comes back gets a new key: the old entries stay unopenable */
  cp_subject_t a3;
  cp_subject_store_new(st, a, &a3);
  assert_int_equal(cp_subject_store_flush(st, err, sizeof err), 0);
  assert_int_equal(cp_subject_store_open_entry(st, a3.subject, 32, a3.slot, 16, a3.sealed, sizeof a3.sealed, &op),
                   CP_SUBJECT_OK);
  assert_int_equal(cp_subject_store_open_entry(st, a1.subject, 32, a1.slot, 16, a1.sealed, sizeof a1.sealed, &op),
                   CP_SUBJECT_UNKNOWN_SLOT);
  /* shredding someone with no key is nothing to do */
  uint8_t c[CP_PSEUDONYM_BYTES];
  memset(c, 0x0C, sizeof c);
  assert_int_equal(cp_subject_store_shred(st, c, &removed, err, sizeof err), 0);
  assert_int_equal(removed, 0);
  cp_subject_store_close(&st);
}

/* Many workers and entries: the tables grow and every entry opens to its own worker. */
static void test_store_many(void **state) {
  (void)state;
  char d[128], err[256] = "";
  store_dir(d, sizeof d, "store4");
  cp_subject_store_t *st = NULL;
  assert_int_equal(cp_subject_store_open(d, CP_SUBJECT_CREATE | CP_SUBJECT_WRITER, &st, err, sizeof err), 0);
  enum { W = 700, E = 3 };
  static cp_subject_t ents[W * E];
  for (int i = 0; i < W * E; i++) {
    uint8_t p[CP_PSEUDONYM_BYTES] = {0};
    memcpy(p, &(int){i % W + 1}, sizeof(int));   /* + 1: the zero pseudonym names no one */
    cp_subject_store_new(st, p, &ents[i]);
  }
  /* an entry naming no one: a subject nobody opens, nothing in the store */
  cp_subject_t anon;
  uint8_t zero[CP_PSEUDONYM_BYTES] = {0};
  cp_subject_store_new(st, zero, &anon);
  cp_opening_t none;
  assert_int_equal(cp_subject_store_open_entry(st, anon.subject, 32, anon.slot, 16, anon.sealed,
                                               CP_SUBJECT_SEALED_BYTES, &none), CP_SUBJECT_UNKNOWN_SLOT);
  assert_int_equal(cp_subject_store_workers(st), W);
  assert_int_equal(cp_subject_store_slots(st), W * E);
  assert_int_equal(cp_subject_store_flush(st, err, sizeof err), 0);
  cp_subject_store_close(&st);
  assert_int_equal(cp_subject_store_open(d, CP_SUBJECT_WRITER, &st, err, sizeof err), 0);
  assert_int_equal(cp_subject_store_workers(st), W);
  assert_int_equal(cp_subject_store_slots(st), W * E);
  for (int i = 0; i < W * E; i++) {
    cp_opening_t op;
    assert_int_equal(cp_subject_store_open_entry(st, ents[i].subject, 32, ents[i].slot, 16, ents[i].sealed,
                                                 CP_SUBJECT_SEALED_BYTES, &op), CP_SUBJECT_OK);
    int w;
    memcpy(&w, op.pseudonym, sizeof w);
    assert_int_equal(w, i % W + 1);
  }
  cp_subject_store_close(&st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_commitment),
      cmocka_unit_test(test_seal_round_trip_and_tampering),
      cmocka_unit_test(test_store_durable_and_unlinkable),
      cmocka_unit_test(test_store_torn_tail_and_mode),
      cmocka_unit_test(test_payload_seal_open),
      cmocka_unit_test(test_shred),
      cmocka_unit_test(test_store_many),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
