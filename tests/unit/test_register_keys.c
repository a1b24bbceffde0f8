/* test_register_keys.c -- key history (key entries, spans, forged entries), multi-signature
 * checkpoints, vkeys files and the record status rule. Doubles as an example of the API. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "cp_codec.h"
#include "cp_dates.h"
#include "cp_regkeys.h"

static char errbuf[CP_ERRLEN];

static void test_key(cp_signkey_t *k, const char *name) {
  memset(k, 0, sizeof *k);
  snprintf(k->name, sizeof k->name, "%s", name);
  crypto_sign_keypair(k->pk, k->sk);
  cp_key_id(k->name, k->pk, k->key_id);
}

/* A RECORD entry signed by key (any content; provider event id names it). */
static void record_entry(const cp_signkey_t *key, const char *event_id, uint8_t **out, size_t *len) {
  Carepass__V1__PassportEntry pe = CAREPASS__V1__PASSPORT_ENTRY__INIT;
  uint8_t pseudo[32] = {1, 2, 3};
  pe.version = 1;
  pe.entry_type = CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_RECORD;
  pe.worker_pseudonym.data = pseudo;
  pe.worker_pseudonym.len = 32;
  pe.qualification_code = (char *)"RF-FIRE";
  pe.provider_id = (char *)"PRV-0001";
  pe.provider_event_id = (char *)event_id;
  pe.completion_date = (char *)"2025-03-03";
  assert_int_equal(reg_entry_sign(key, &pe, out, len, errbuf, sizeof errbuf), 0);
}

/* Feed a key entry announcing `announced`, signed by `signer`, at index. */
static int feed_key(reg_keyspan_t **spans, size_t *n, uint64_t index, const cp_signkey_t *signer,
                    const cp_signkey_t *announced) {
  uint8_t *e = NULL;
  size_t len = 0;
  assert_int_equal(reg_key_entry_build(signer, announced->name, announced->pk, 1700000000, &e, &len, errbuf,
                                       sizeof errbuf), 0);
  int rc = reg_keys_feed(spans, n, index, e, len, errbuf, sizeof errbuf);
  free(e);
  return rc;
}

/* Genesis at 0 (k1), records 1..4 by k1, rotation entry at 5 (signed by k1 announcing k2),
 * records from 6 by k2. */
static void test_history_and_validity(void **state) {
  (void)state;
  cp_signkey_t k1, k2, k3;
  test_key(&k1, "example.org/log");
  test_key(&k2, "example.org/log");
  test_key(&k3, "example.org/log");
  reg_keyspan_t *spans = NULL;
  size_t n = 0;
  assert_int_equal(feed_key(&spans, &n, 0, &k1, &k1), 0);
  /* records are ignored by feed */
  uint8_t *rec = NULL;
  size_t rlen = 0;
  record_entry(&k1, "e1", &rec, &rlen);
  assert_int_equal(reg_keys_feed(&spans, &n, 1, rec, rlen, errbuf, sizeof errbuf), 0);
  assert_int_equal(n, 1);
  assert_int_equal(feed_key(&spans, &n, 5, &k1, &k2), 0);
  assert_int_equal(n, 2);
  assert_int_equal(spans[0].from_index, 0);
  assert_int_equal(spans[0].to_index, 5);
  assert_int_equal(spans[1].from_index, 6);
  assert_true(spans[1].to_index == UINT64_MAX);
  assert_int_equal(spans[1].key_index, 5);

  assert_ptr_equal(reg_keys_for(spans, n, k1.key_id, 0), &spans[0]);
  assert_ptr_equal(reg_keys_for(spans, n, k1.key_id, 5), &spans[0]);   /* the old key signs the handover */
  assert_null(reg_keys_for(spans, n, k1.key_id, 6));
  assert_null(reg_keys_for(spans, n, k2.key_id, 5));
  assert_ptr_equal(reg_keys_for(spans, n, k2.key_id, 6), &spans[1]);
  assert_ptr_equal(reg_keys_for(spans, n, k2.key_id, 1000000), &spans[1]);
  assert_null(reg_keys_for(spans, n, k3.key_id, 7));

  /* reg_entry_check: the k1 record verifies at 1, not at 7 (outside k1's validity: a forgery
   * with a retired key); a k2 record verifies at 7 but not at 3 */
  Carepass__V1__PassportEntry *pe = NULL;
  const reg_keyspan_t *used = NULL;
  assert_int_equal(reg_entry_check(spans, n, 1, rec, rlen, &pe, &used, errbuf, sizeof errbuf), 0);
  assert_non_null(pe);
  assert_string_equal(pe->provider_event_id, "e1");
  assert_ptr_equal(used, &spans[0]);
  protobuf_c_message_free_unpacked(&pe->base, NULL);
  assert_int_equal(reg_entry_check(spans, n, 7, rec, rlen, NULL, NULL, errbuf, sizeof errbuf), -1);
  assert_non_null(strstr(errbuf, "not valid at index 7"));
  assert_non_null(strstr(errbuf, "valid 0..5"));
  free(rec);
  record_entry(&k2, "e7", &rec, &rlen);
  assert_int_equal(reg_entry_check(spans, n, 7, rec, rlen, NULL, NULL, errbuf, sizeof errbuf), 0);
  assert_int_equal(reg_entry_check(spans, n, 3, rec, rlen, NULL, NULL, errbuf, sizeof errbuf), -1);
  /* a flipped signature byte */
  rec[rlen - 1] ^= 1;
  assert_int_equal(reg_entry_check(spans, n, 7, rec, rlen, NULL, NULL, errbuf, sizeof errbuf), -1);
  assert_non_null(strstr(errbuf, "does not verify"));
  /* garbage is an error, not a crash */
  assert_int_equal(reg_entry_check(spans, n, 7, (const uint8_t *)"\xff\xff\xff", 3, NULL, NULL, errbuf,
                                   sizeof errbuf), -1);
  free(rec);

  /* broken links are refused and leave the history as it was */
  assert_int_equal(feed_key(&spans, &n, 9, &k1, &k3), -1);   /* signed by the retired key */
  assert_non_null(strstr(errbuf, "not signed by the current key"));
  assert_int_equal(feed_key(&spans, &n, 9, &k3, &k3), -1);   /* self-signed after genesis */
  assert_int_equal(feed_key(&spans, &n, 4, &k2, &k3), -1);   /* out of order */
  assert_int_equal(feed_key(&spans, &n, 9, &k2, &k2), -1);   /* re-announces the current key */
  assert_int_equal(n, 2);
  cp_signkey_t other;
  test_key(&other, "another.org/log");
  assert_int_equal(feed_key(&spans, &n, 9, &k2, &other), -1); /* changes the name */
  assert_non_null(strstr(errbuf, "changes the key name"));
  free(spans);

  /* genesis must be at 0 and self-signed */
  spans = NULL;
  n = 0;
  assert_int_equal(feed_key(&spans, &n, 3, &k1, &k1), -1);
  assert_int_equal(feed_key(&spans, &n, 0, &k2, &k1), -1);
  assert_int_equal(n, 0);
  free(spans);
  cp_signkey_wipe(&k1);
  cp_signkey_wipe(&k2);
  cp_signkey_wipe(&k3);
  cp_signkey_wipe(&other);
}

static void test_from_vkey(void **state) {
  (void)state;
  cp_signkey_t k;
  test_key(&k, "legacy.example/log");
  char vkey[REG_VKEY_MAX];
  assert_int_equal(cp_vkey_format(k.name, k.pk, vkey, sizeof vkey), 0);
  reg_keyspan_t *spans = NULL;
  size_t n = 0;
  assert_int_equal(reg_keys_from_vkey(vkey, &spans, &n, errbuf, sizeof errbuf), 0);
  assert_int_equal(n, 1);
  assert_ptr_equal(reg_keys_for(spans, n, k.key_id, 123456), spans);
  char again[REG_VKEY_MAX];
  assert_int_equal(reg_keys_vkey(spans, again, sizeof again), 0);
  assert_string_equal(again, vkey);
  free(spans);
  assert_int_equal(reg_keys_from_vkey("not a vkey", &spans, &n, errbuf, sizeof errbuf), -1);
  assert_null(spans);
  cp_signkey_wipe(&k);
}

static void test_multi_signature_checkpoint(void **state) {
  (void)state;
  cp_signkey_t a, b, c;
  test_key(&a, "example.org/log");
  test_key(&b, "example.org/log");
  test_key(&c, "example.org/log");
  uint8_t root[REG_HASH_BYTES];
  memset(root, 7, sizeof root);
  char note[REG_CHECKPOINT_MAX + 1];
  const cp_signkey_t *both[2] = {&a, &b};
  int len = reg_checkpoint_sign_multi(both, 2, 42, root, note, sizeof note, errbuf, sizeof errbuf);
  assert_true(len > 0);
  char va[REG_VKEY_MAX], vb[REG_VKEY_MAX], vc[REG_VKEY_MAX];
  assert_int_equal(cp_vkey_format(a.name, a.pk, va, sizeof va), 0);
  assert_int_equal(cp_vkey_format(b.name, b.pk, vb, sizeof vb), 0);
  assert_int_equal(cp_vkey_format(c.name, c.pk, vc, sizeof vc), 0);
  uint64_t size = 0;
  uint8_t got[REG_HASH_BYTES];
  char origin[128];
  /* either key alone opens it (reg_checkpoint_open with one vkey) */
  assert_int_equal(reg_checkpoint_open(note, (size_t)len, va, origin, sizeof origin, &size, got, errbuf,
                                       sizeof errbuf), 0);
  assert_int_equal(size, 42);
  assert_string_equal(origin, "example.org/log");
  assert_memory_equal(got, root, REG_HASH_BYTES);
  assert_int_equal(reg_checkpoint_open(note, (size_t)len, vb, NULL, 0, &size, got, errbuf, sizeof errbuf), 0);
  assert_int_equal(reg_checkpoint_open(note, (size_t)len, vc, NULL, 0, &size, got, errbuf, sizeof errbuf), -1);
  assert_non_null(strstr(errbuf, "no signature by key"));
  const char *list[3] = {vc, vb, va};
  size_t which = 99;
  assert_int_equal(reg_checkpoint_open_any(note, (size_t)len, list, 3, NULL, 0, &size, got, &which, errbuf,
                                           sizeof errbuf), 0);
  assert_int_equal(which, 1);
  assert_int_equal(reg_checkpoint_count_sigs(note, (size_t)len, list, 3, errbuf, sizeof errbuf), 2);
  assert_int_equal(reg_checkpoint_open_any(note, (size_t)len, list, 1, NULL, 0, &size, got, NULL, errbuf,
                                           sizeof errbuf), -1);
  /* one signature corrupted: the other still opens it, the count drops to 1 */
  char *sig2 = strrchr(note, ' ') + 10;
  *sig2 = *sig2 == 'A' ? 'B' : 'A';
  assert_int_equal(reg_checkpoint_count_sigs(note, (size_t)len, list, 3, errbuf, sizeof errbuf), 1);
  assert_int_equal(reg_checkpoint_open(note, (size_t)len, va, NULL, 0, &size, got, errbuf, sizeof errbuf), 0);
  assert_int_equal(reg_checkpoint_open(note, (size_t)len, vb, NULL, 0, &size, got, errbuf, sizeof errbuf), -1);
  assert_non_null(strstr(errbuf, "does not verify"));
  /* keys with different names cannot co-sign */
  cp_signkey_t d;
  test_key(&d, "other.org/log");
  const cp_signkey_t *mixed[2] = {&a, &d};
  assert_int_equal(reg_checkpoint_sign_multi(mixed, 2, 1, root, note, sizeof note, errbuf, sizeof errbuf), -1);
  cp_signkey_wipe(&a);
  cp_signkey_wipe(&b);
  cp_signkey_wipe(&c);
  cp_signkey_wipe(&d);
}

/* A log on disk: genesis entry, records, a rotation; reg_keys_load finds the history. */
static void test_keys_load_from_log(void **state) {
  (void)state;
  char tmpl[] = "/tmp/cp-regkeys-test-XXXXXX";
  assert_non_null(mkdtemp(tmpl));
  char dir[128];
  snprintf(dir, sizeof dir, "%s/reg", tmpl);
  cp_signkey_t k1, k2;
  test_key(&k1, "example.org/log");
  test_key(&k2, "example.org/log");
  reg_log_t *log = NULL;
  assert_int_equal(reg_open(dir, &k1, &log, errbuf, sizeof errbuf), 0);
  reg_keyspan_t *spans = NULL;
  size_t n = 0;
  assert_int_equal(reg_keys_load(log, &spans, &n, errbuf, sizeof errbuf), -1);   /* empty */
  uint8_t *e[4];
  size_t len[4];
  assert_int_equal(reg_key_entry_build(&k1, k1.name, k1.pk, 1, &e[0], &len[0], errbuf, sizeof errbuf), 0);
  record_entry(&k1, "r1", &e[1], &len[1]);
  assert_int_equal(reg_key_entry_build(&k1, k2.name, k2.pk, 2, &e[2], &len[2], errbuf, sizeof errbuf), 0);
  record_entry(&k1, "forged-after-rotation", &e[3], &len[3]);   /* old key, index 3: outside its span */
  uint64_t first = 0;
  assert_int_equal(reg_append(log, (const uint8_t *const *)e, len, 4, &first, errbuf, sizeof errbuf), 0);
  assert_int_equal(reg_keys_load(log, &spans, &n, errbuf, sizeof errbuf), 0);
  assert_int_equal(n, 2);
  assert_int_equal(spans[0].to_index, 2);
  assert_int_equal(spans[1].from_index, 3);
  for (uint64_t i = 0; i < 3; i++)
    assert_int_equal(reg_entry_check(spans, n, i, e[i], len[i], NULL, NULL, errbuf, sizeof errbuf), 0);
  assert_int_equal(reg_entry_check(spans, n, 3, e[3], len[3], NULL, NULL, errbuf, sizeof errbuf), -1);
  assert_non_null(strstr(errbuf, "not valid at index 3"));
  free(spans);
  for (int i = 0; i < 4; i++) free(e[i]);

  /* vkeys: publish old then new; read back oldest first; vkey is the newest */
  char v1[REG_VKEY_MAX], v2[REG_VKEY_MAX];
  assert_int_equal(cp_vkey_format(k1.name, k1.pk, v1, sizeof v1), 0);
  assert_int_equal(cp_vkey_format(k2.name, k2.pk, v2, sizeof v2), 0);
  assert_int_equal(reg_vkeys_publish(dir, v1, errbuf, sizeof errbuf), 0);
  assert_int_equal(reg_vkeys_publish(dir, v2, errbuf, sizeof errbuf), 0);
  assert_int_equal(reg_vkeys_publish(dir, v2, errbuf, sizeof errbuf), 0);   /* idempotent */
  char **vk = NULL;
  size_t nv = 0;
  assert_int_equal(reg_vkeys_read(dir, &vk, &nv, errbuf, sizeof errbuf), 0);
  assert_int_equal(nv, 2);
  assert_string_equal(vk[0], v1);
  assert_string_equal(vk[1], v2);
  reg_vkeys_free(&vk, nv);
  assert_null(vk);
  reg_close(&log);

  /* a log whose entry 0 is not a key entry has no key history */
  char dir2[160];
  snprintf(dir2, sizeof dir2, "%s/legacy", tmpl);
  assert_int_equal(reg_open(dir2, &k1, &log, errbuf, sizeof errbuf), 0);
  uint8_t *r = NULL;
  size_t rl = 0;
  record_entry(&k1, "old", &r, &rl);
  const uint8_t *one[1] = {r};
  assert_int_equal(reg_append(log, one, &rl, 1, &first, errbuf, sizeof errbuf), 0);
  assert_int_equal(reg_keys_load(log, &spans, &n, errbuf, sizeof errbuf), -1);
  assert_non_null(strstr(errbuf, "no genesis key entry"));
  free(r);
  reg_close(&log);
  char cmd[200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpl);
  assert_int_equal(system(cmd), 0);
  cp_signkey_wipe(&k1);
  cp_signkey_wipe(&k2);
}

/* Write dir/checkpoint signed by `keys` for the tree (size, root) -- what rotate-key does. */
static void write_note(const char *dir, const cp_signkey_t *const *keys, size_t nkeys, uint64_t size,
                       const uint8_t root[REG_HASH_BYTES]) {
  char note[REG_CHECKPOINT_MAX + 1], path[200];
  int len = reg_checkpoint_sign_multi(keys, nkeys, size, root, note, sizeof note, errbuf, sizeof errbuf);
  assert_true(len > 0);
  snprintf(path, sizeof path, "%s/checkpoint", dir);
  assert_int_equal(cp_write_file_atomic(path, note, (size_t)len, 0644, errbuf, sizeof errbuf), 0);
}

/* Append one record signed by key through a writer opened with key. */
static void append_record(const char *dir, const cp_signkey_t *key, const char *event_id) {
  reg_log_t *w = NULL;
  assert_int_equal(reg_open(dir, key, &w, errbuf, sizeof errbuf), 0);
  uint8_t *e = NULL;
  size_t len = 0;
  record_entry(key, event_id, &e, &len);
  const uint8_t *one[1] = {e};
  uint64_t first = 0;
  assert_int_equal(reg_append(w, one, &len, 1, &first, errbuf, sizeof errbuf), 0);
  free(e);
  reg_close(&w);
}

/* A long-running read-only reader (the gateway) follows the signer across a key
 * rotation without reopening: reg_refresh verifies checkpoints with any key in
 * dir/vkeys, re-read when the keys it knows do not verify a new checkpoint. */
static void test_reader_follows_rotation(void **state) {
  (void)state;
  char tmpl[] = "/tmp/cp-regkeys-test-XXXXXX";
  assert_non_null(mkdtemp(tmpl));
  char dir[128];
  snprintf(dir, sizeof dir, "%s/reg", tmpl);
  cp_signkey_t k1, k2, k3;
  test_key(&k1, "example.org/log");
  test_key(&k2, "example.org/log");
  test_key(&k3, "example.org/log");
  char v1[REG_VKEY_MAX], v2[REG_VKEY_MAX];
  assert_int_equal(cp_vkey_format(k1.name, k1.pk, v1, sizeof v1), 0);
  assert_int_equal(cp_vkey_format(k2.name, k2.pk, v2, sizeof v2), 0);

  /* the signer's start: genesis entry by k1, k1 published */
  reg_log_t *w = NULL;
  assert_int_equal(reg_open(dir, &k1, &w, errbuf, sizeof errbuf), 0);
  uint8_t *e = NULL;
  size_t len = 0;
  uint64_t first = 0;
  assert_int_equal(reg_key_entry_build(&k1, k1.name, k1.pk, 1, &e, &len, errbuf, sizeof errbuf), 0);
  const uint8_t *one[1] = {e};
  assert_int_equal(reg_append(w, one, &len, 1, &first, errbuf, sizeof errbuf), 0);
  free(e);
  reg_close(&w);
  assert_int_equal(reg_vkeys_publish(dir, v1, errbuf, sizeof errbuf), 0);

  reg_log_t *ro = NULL;
  assert_int_equal(reg_open(dir, NULL, &ro, errbuf, sizeof errbuf), 0);
  assert_int_equal(reg_size(ro), 1);
  append_record(dir, &k1, "before");
  assert_int_equal(reg_refresh(ro, errbuf, sizeof errbuf), 0);
  assert_int_equal(reg_size(ro), 2);

  /* rotate-key: k1 appends the key entry announcing k2, a checkpoint signed by both,
   * k2 published in vkeys (and vkey) */
  assert_int_equal(reg_open(dir, &k1, &w, errbuf, sizeof errbuf), 0);
  assert_int_equal(reg_key_entry_build(&k1, k2.name, k2.pk, 2, &e, &len, errbuf, sizeof errbuf), 0);
  one[0] = e;
  assert_int_equal(reg_append(w, one, &len, 1, &first, errbuf, sizeof errbuf), 0);
  free(e);
  uint8_t root[REG_HASH_BYTES];
  reg_root(w, root);
  const cp_signkey_t *both[2] = {&k1, &k2};
  write_note(dir, both, 2, reg_size(w), root);
  reg_close(&w);
  assert_int_equal(reg_vkeys_publish(dir, v2, errbuf, sizeof errbuf), 0);
  assert_int_equal(reg_refresh(ro, errbuf, sizeof errbuf), 0);
  assert_int_equal(reg_size(ro), 3);

  /* the signer restarted with k2: its checkpoints carry k2's signature only */
  append_record(dir, &k2, "after-1");
  assert_int_equal(reg_refresh(ro, errbuf, sizeof errbuf), 0);
  assert_int_equal(reg_size(ro), 4);
  append_record(dir, &k2, "after-2");
  assert_int_equal(reg_refresh(ro, errbuf, sizeof errbuf), 0);
  assert_int_equal(reg_size(ro), 5);
  assert_non_null(strstr(reg_checkpoint_note(ro), "example.org/log\n5\n"));

  /* a checkpoint signed only by a key that is not in vkeys is refused; the reader
   * keeps its last good view */
  assert_int_equal(reg_open(dir, &k2, &w, errbuf, sizeof errbuf), 0);
  reg_root(w, root);
  reg_close(&w);
  const cp_signkey_t *stranger[1] = {&k3};
  write_note(dir, stranger, 1, 5, root);
  assert_int_equal(reg_refresh(ro, errbuf, sizeof errbuf), -1);
  assert_non_null(strstr(errbuf, "no valid signature"));
  assert_int_equal(reg_size(ro), 5);
  reg_log_t *ro2 = NULL;
  assert_int_equal(reg_open(dir, NULL, &ro2, errbuf, sizeof errbuf), -1);   /* nor opened */
  const cp_signkey_t *current[1] = {&k2};
  write_note(dir, current, 1, 5, root);
  assert_int_equal(reg_refresh(ro, errbuf, sizeof errbuf), 0);

  /* a reader opened after the rotation verifies with the list from the start; without
   * vkeys it falls back to vkey (the current key) */
  assert_int_equal(reg_open(dir, NULL, &ro2, errbuf, sizeof errbuf), 0);
  assert_int_equal(reg_size(ro2), 5);
  reg_close(&ro2);
  char path[200];
  snprintf(path, sizeof path, "%s/vkeys", dir);
  assert_int_equal(unlink(path), 0);
  assert_int_equal(reg_open(dir, NULL, &ro2, errbuf, sizeof errbuf), 0);
  reg_close(&ro2);
  /* ... and a malformed key file is an error, not an unverified open */
  assert_int_equal(cp_write_file_atomic(path, "not a vkey\n", 11, 0644, errbuf, sizeof errbuf), 0);
  assert_int_equal(reg_open(dir, NULL, &ro2, errbuf, sizeof errbuf), -1);
  assert_null(ro2);

  reg_close(&ro);
  char cmd[200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpl);
  assert_int_equal(system(cmd), 0);
  cp_signkey_wipe(&k1);
  cp_signkey_wipe(&k2);
  cp_signkey_wipe(&k3);
}

/* ---- the status rule ------------------------------------------------------ */

static int64_t at(const char *date) {   /* unix seconds at noon UTC of a date */
  int32_t d;
  assert_int_equal(cp_date_parse(date, &d), 0);
  return (int64_t)d * 86400 + 12 * 3600;
}

static void test_status_rule(void **state) {
  (void)state;
  Carepass__V1__PassportEntry rec = CAREPASS__V1__PASSPORT_ENTRY__INIT;
  rec.entry_type = CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_RECORD;
  rec.completion_date = (char *)"2025-03-03";
  rec.valid_until = (char *)"2026-03-03";
  assert_int_equal(reg_record_status(&rec, NULL, "2025-03-02"), REG_STATUS_NOT_YET);
  assert_int_equal(reg_record_status(&rec, NULL, "2025-03-03"), REG_STATUS_VALID);   /* inclusive */
  assert_int_equal(reg_record_status(&rec, NULL, "2026-03-03"), REG_STATUS_VALID);   /* inclusive */
  assert_int_equal(reg_record_status(&rec, NULL, "2026-03-04"), REG_STATUS_EXPIRED);
  rec.valid_until = (char *)"";
  assert_int_equal(reg_record_status(&rec, NULL, "2099-01-01"), REG_STATUS_VALID);   /* never expires */

  Carepass__V1__PassportEntry rev = CAREPASS__V1__PASSPORT_ENTRY__INIT;
  rev.entry_type = CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION;
  rev.issued_at = at("2025-06-10");
  assert_int_equal(reg_record_status(&rec, &rev, "2025-06-09"), REG_STATUS_VALID);    /* before it */
  assert_int_equal(reg_record_status(&rec, &rev, "2025-06-10"), REG_STATUS_REVOKED);  /* from its day */
  assert_int_equal(reg_record_status(&rec, &rev, "2030-01-01"), REG_STATUS_REVOKED);
  rec.valid_until = (char *)"2025-05-01";
  assert_int_equal(reg_record_status(&rec, &rev, "2025-05-20"), REG_STATUS_EXPIRED);  /* expired before revoked */
  /* a revocation is not a record; a key entry neither */
  assert_int_equal(reg_record_status(&rev, NULL, "2025-06-10"), REG_STATUS_NOT_RECORD);
  /* bad dates are reported, not crashed on */
  assert_int_equal(reg_record_status(&rec, NULL, "2025-13-01"), REG_STATUS_BAD_DATE);
  assert_int_equal(reg_record_status(&rec, NULL, NULL), REG_STATUS_BAD_DATE);
  rec.completion_date = (char *)"garbage";
  assert_int_equal(reg_record_status(&rec, NULL, "2025-06-01"), REG_STATUS_BAD_DATE);
  /* plain-value form */
  int32_t d;
  assert_int_equal(cp_date_parse("2025-06-10", &d), 0);
  assert_int_equal(reg_status_on("2025-01-01", "", -1, d), REG_STATUS_VALID);
  assert_int_equal(reg_status_on("2025-01-01", "", at("2025-06-11"), d), REG_STATUS_VALID);
  assert_int_equal(reg_status_on("2025-01-01", "", at("2025-06-10"), d), REG_STATUS_REVOKED);
  assert_string_equal(reg_status_str(REG_STATUS_REVOKED), "revoked");
  assert_string_equal(reg_status_str(REG_STATUS_VALID), "valid");
}

int main(void) {
  if (cp_crypto_init() != 0) return 1;
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_history_and_validity),
    cmocka_unit_test(test_from_vkey),
    cmocka_unit_test(test_multi_signature_checkpoint),
    cmocka_unit_test(test_keys_load_from_log),
    cmocka_unit_test(test_reader_follows_rotation),
    cmocka_unit_test(test_status_rule),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
