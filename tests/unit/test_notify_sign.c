/* test_notify_sign.c -- webhook ids, Standard Webhooks v1a signatures, backoff bounds and
 * the webhook body. Includes the notify sources directly (the notify logic is not in
 * libcarepass), as Core Lightning's run-*.c tests do. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "../../services/notify/notify_sign.c"
#include "../../services/notify/notify_jobs.c"

static cp_signkey_t test_key(void) {
  cp_signkey_t k;
  memset(&k, 0, sizeof k);
  snprintf(k.name, sizeof k.name, "carepass-notify");
  unsigned char seed[32];
  memset(seed, 7, sizeof seed);        /* fixed seed: reproducible */
  crypto_sign_seed_keypair(k.pk, k.sk, seed);
  return k;
}

static void test_delivery_id(void **state) {
  (void)state;
  char a[NT_ID_SIZE], b[NT_ID_SIZE], c[NT_ID_SIZE];
  nt_delivery_id("record.committed", "PRV-0001", "EV-1", 7, a);
  nt_delivery_id("record.committed", "PRV-0001", "EV-1", 7, b);
  assert_int_equal(strlen(a), NT_ID_LEN);
  assert_memory_equal(a, "msg_", 4);
  for (size_t i = 4; i < NT_ID_LEN; i++) assert_non_null(strchr("0123456789abcdef", a[i]));
  assert_string_equal(a, b);                        /* deterministic */
  nt_delivery_id("record.committed", "PRV-0001", "EV-1", 8, c);
  assert_string_not_equal(a, c);                    /* index matters */
  nt_delivery_id("record.revoked", "PRV-0001", "EV-1", 7, c);
  assert_string_not_equal(a, c);                    /* type matters */
  /* separators: ("PRV-0001", "EV-1") differs from ("PRV-0001E", "V-1") */
  nt_delivery_id("record.committed", "PRV-0001E", "V-1", 7, c);
  assert_string_not_equal(a, c);

  /* The documented construction: first 16 bytes of BLAKE2b-256(type 0 prov 0 ev 0 idx_be64). */
  const unsigned char msg[] = "record.committed\0PRV-0001\0EV-1\0\0\0\0\0\0\0\0\x07";
  unsigned char h[32];
  char hex[33];
  crypto_generichash(h, sizeof h, msg, sizeof msg - 1, NULL, 0);
  cp_hex(h, 16, hex);
  assert_string_equal(a + 4, hex);
}

/* Decode a "v1a,<base64>" header and check it with libsodium directly. */
static void test_sign_verifies(void **state) {
  (void)state;
  cp_signkey_t k = test_key();
  const char *id = "msg_0123456789abcdef0123456789abcdef";
  const char *body = "{\"type\":\"record.committed\",\"data\":{}}";
  char hdr[NT_SIG_HDR_SIZE];
  assert_int_equal(nt_sign(&k, id, 1795000000, body, strlen(body), hdr, sizeof hdr), 0);
  assert_memory_equal(hdr, "v1a,", 4);
  assert_int_equal(strlen(hdr), 4 + 88);            /* base64 of 64 bytes, padded */

  unsigned char sig[64];
  size_t siglen = 0;
  assert_int_equal(sodium_base642bin(sig, sizeof sig, hdr + 4, strlen(hdr + 4), NULL, &siglen,
                                     NULL, sodium_base64_VARIANT_ORIGINAL), 0);
  assert_int_equal(siglen, 64);
  char content[256];
  int n = snprintf(content, sizeof content, "%s.%d.%s", id, 1795000000, body);
  assert_int_equal(crypto_sign_verify_detached(sig, (unsigned char *)content, (size_t)n, k.pk), 0);

  /* nt_verify agrees, and rejects a change to any part. */
  assert_true(nt_verify(k.pk, id, 1795000000, body, strlen(body), hdr));
  assert_false(nt_verify(k.pk, id, 1795000001, body, strlen(body), hdr));
  assert_false(nt_verify(k.pk, "msg_ffffffffffffffffffffffffffffffff", 1795000000, body, strlen(body), hdr));
  assert_false(nt_verify(k.pk, id, 1795000000, "{}", 2, hdr));
  /* several signatures, space separated: any valid one passes; other versions ignored */
  char multi[3 * NT_SIG_HDR_SIZE];
  snprintf(multi, sizeof multi, "v1,AAAA v1a,%s %s", "AAAA", hdr);
  assert_true(nt_verify(k.pk, id, 1795000000, body, strlen(body), multi));
  assert_false(nt_verify(k.pk, id, 1795000000, body, strlen(body), "v1,abc"));
  assert_false(nt_verify(k.pk, id, 1795000000, body, strlen(body), ""));

  /* too small an output buffer is refused */
  char tiny[16];
  assert_int_equal(nt_sign(&k, id, 1, body, strlen(body), tiny, sizeof tiny), -1);
  cp_signkey_wipe(&k);
}

static void test_pubkey_format(void **state) {
  (void)state;
  cp_signkey_t k = test_key();
  char out[NT_PUBKEY_SIZE];
  assert_int_equal(nt_pubkey_format(k.pk, out, sizeof out), 0);
  assert_memory_equal(out, "whpk_", 5);
  unsigned char pk[32];
  size_t len = 0;
  assert_int_equal(sodium_base642bin(pk, sizeof pk, out + 5, strlen(out + 5), NULL, &len, NULL,
                                     sodium_base64_VARIANT_ORIGINAL), 0);
  assert_int_equal(len, 32);
  assert_memory_equal(pk, k.pk, 32);
  char tiny[10];
  assert_int_equal(nt_pubkey_format(k.pk, tiny, sizeof tiny), -1);
}

static void test_backoff_bounds(void **state) {
  (void)state;
  assert_int_equal(nt_backoff_base_ms(1, 1000, 3600000), 1000);
  assert_int_equal(nt_backoff_base_ms(2, 1000, 3600000), 2000);
  assert_int_equal(nt_backoff_base_ms(5, 1000, 3600000), 16000);
  assert_int_equal(nt_backoff_base_ms(13, 1000, 3600000), 3600000);   /* capped */
  assert_int_equal(nt_backoff_base_ms(100, 1000, 3600000), 3600000);  /* no overflow */
  assert_int_equal(nt_backoff_base_ms(100, 86400000, 86400000), 86400000);
  assert_int_equal(nt_backoff_base_ms(3, 1, 5), 4);

  for (int attempts = 1; attempts <= 100; attempts += 3) {
    int64_t base = nt_backoff_base_ms(attempts, 1000, 3600000);
    int64_t lo = base - base / 5, hi = base + base / 5, min = INT64_MAX, max = 0;
    for (int i = 0; i < 200; i++) {
      int64_t d = nt_backoff_ms(attempts, 1000, 3600000);
      assert_true(d >= lo && d <= hi);
      if (d < min) min = d;
      if (d > max) max = d;
    }
    assert_true(max > min);                            /* there is jitter */
  }
  /* tiny delays never drop below 1 ms */
  for (int i = 0; i < 100; i++) assert_true(nt_backoff_ms(1, 1, 1) >= 1);
}

static void test_job_body_and_check(void **state) {
  (void)state;
  Carepass__V1__NotifyJob job = CAREPASS__V1__NOTIFY_JOB__INIT;
  char err[CP_ERRLEN];
  unsigned char pseud[32];
  memset(pseud, 0xab, sizeof pseud);
  job.type = "record.committed";
  job.provider_id = "PRV-0001";
  job.provider_event_id = "EV-\"1\"";
  job.qualification_code = "CC-STD-01";
  job.entry_index = 42;
  job.occurred_at = 1795000000123;
  job.worker_pseudonym.data = pseud;
  job.worker_pseudonym.len = sizeof pseud;
  assert_int_equal(nt_job_check(&job, err, sizeof err), 0);

  char *body = nt_job_body(&job, 0);
  assert_non_null(body);
  json_error_t jerr;
  json_t *root = json_loads(body, 0, &jerr);
  assert_non_null(root);
  assert_string_equal(json_string_value(json_object_get(root, "type")), "record.committed");
  assert_string_equal(json_string_value(json_object_get(root, "timestamp")), "2026-11-18T11:06:40.123Z");
  json_t *data = json_object_get(root, "data");
  assert_string_equal(json_string_value(json_object_get(data, "provider_event_id")), "EV-\"1\"");
  assert_int_equal(json_integer_value(json_object_get(data, "entry_index")), 42);
  assert_int_equal(json_object_size(data), 6);
  assert_null(strstr(body, "pseudonym"));
  assert_null(strstr(body, "abababab"));
  json_decref(root);
  free(body);

  job.type = "Record Committed";
  assert_int_equal(nt_job_check(&job, err, sizeof err), -1);
  job.type = "";
  assert_int_equal(nt_job_check(&job, err, sizeof err), -1);
  job.type = "record.committed";
  job.provider_id = "";
  assert_int_equal(nt_job_check(&job, err, sizeof err), -1);
  job.provider_id = "PRV-0001";
  char longmsg[2048];
  memset(longmsg, 'x', sizeof longmsg - 1);
  longmsg[sizeof longmsg - 1] = '\0';
  job.message = longmsg;
  assert_int_equal(nt_job_check(&job, err, sizeof err), -1);
  assert_non_null(strstr(err, "message"));
}

int main(void) {
  if (sodium_init() < 0) return 1;
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_delivery_id),
    cmocka_unit_test(test_sign_verifies),
    cmocka_unit_test(test_pubkey_format),
    cmocka_unit_test(test_backoff_bounds),
    cmocka_unit_test(test_job_body_and_check),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
