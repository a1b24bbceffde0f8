/* test_notify_sign.c -- webhook ids, Standard Webhooks v1 (HMAC-SHA256, against the reference
 * libraries' published vector) and v1a signatures and the header of both, backoff bounds and
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


/* The Standard Webhooks reference vector: the libraries' own signing test (standard-webhooks,
 * libraries/go/webhook_test.go TestWebhookSign, the same in every sibling library). */
#define SW_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SW_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SW_TS 1614265330
#define SW_BODY "{\"test\": 2432232314}"
#define SW_SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

static void test_v1_reference_vector(void **state) {
  (void)state;
  cp_whsec_key_t k;
  char err[CP_ERRLEN], sig[NT_V1_SIG_LEN + 1];
  assert_int_equal(cp_whsec_parse(SW_SECRET, &k, err, sizeof err), 0);
  assert_int_equal(k.len, 24);
  assert_int_equal(nt_sign_v1(&k, SW_ID, SW_TS, SW_BODY, strlen(SW_BODY), sig, sizeof sig), 0);
  assert_string_equal(sig, SW_SIG);
  assert_int_equal(strlen(sig), NT_V1_SIG_LEN);
  /* nt_verify_v1 finds it among others, and refuses a change to any part */
  assert_true(nt_verify_v1(&k, SW_ID, SW_TS, SW_BODY, strlen(SW_BODY), "v1a,AAAA " SW_SIG " v2,x"));
  assert_false(nt_verify_v1(&k, SW_ID, SW_TS + 1, SW_BODY, strlen(SW_BODY), SW_SIG));
  assert_false(nt_verify_v1(&k, "msg_p5jXN8AQM9LWM0D4loKWxJeK", SW_TS, SW_BODY, strlen(SW_BODY), SW_SIG));
  assert_false(nt_verify_v1(&k, SW_ID, SW_TS, "{\"test\": 2432232315}", strlen(SW_BODY), SW_SIG));
  assert_false(nt_verify_v1(&k, SW_ID, SW_TS, SW_BODY, strlen(SW_BODY), "v1,g0hM9SsE"));
  /* too small an output buffer is refused */
  assert_int_equal(nt_sign_v1(&k, SW_ID, SW_TS, SW_BODY, strlen(SW_BODY), sig, NT_V1_SIG_LEN), -1);
  cp_whsec_key_wipe(&k);
  for (size_t i = 0; i < sizeof k; i++) assert_int_equal(((unsigned char *)&k)[i], 0);
}

/* The header: v1 with each secret (current first), then v1a, space-separated, within NT_SIG_HDR_SIZE. */
static void test_signature_header(void **state) {
  (void)state;
  cp_signkey_t key = test_key();
  nt_secrets_t sec;
  char err[CP_ERRLEN], hdr[NT_SIG_HDR_SIZE], cur[CP_WHSEC_SIZE], prev[CP_WHSEC_SIZE];
  const char *id = "msg_0123456789abcdef0123456789abcdef", *body = "{\"type\":\"record.revoked\"}";
  memset(&sec, 0, sizeof sec);
  /* no secret: v1a alone, as before */
  assert_int_equal(nt_sign_header(&key, &sec, id, 1795000000, body, strlen(body), hdr, sizeof hdr), 0);
  assert_memory_equal(hdr, "v1a,", 4);
  assert_int_equal(strlen(hdr), NT_V1A_SIG_LEN);
  /* the longest secrets (64 bytes) and two of them still fit */
  unsigned char raw[CP_WHSEC_MAX_BYTES];
  memset(raw, 0x5a, sizeof raw);
  memcpy(cur, "whsec_", 6);
  sodium_bin2base64(cur + 6, sizeof cur - 6, raw, sizeof raw, sodium_base64_VARIANT_ORIGINAL);
  cp_whsec_new(prev);
  assert_int_equal(cp_whsec_parse(cur, &sec.key[0], err, sizeof err), 0);
  assert_int_equal(sec.key[0].len, CP_WHSEC_MAX_BYTES);
  assert_int_equal(cp_whsec_parse(prev, &sec.key[1], err, sizeof err), 0);
  assert_int_equal(sec.key[1].len, CP_WHSEC_BYTES);
  sec.n = 2;
  assert_int_equal(nt_sign_header(&key, &sec, id, 1795000000, body, strlen(body), hdr, sizeof hdr), 0);
  assert_int_equal(strlen(hdr), 2 * (NT_V1_SIG_LEN + 1) + NT_V1A_SIG_LEN);
  assert_memory_equal(hdr, "v1,", 3);
  assert_int_equal(hdr[NT_V1_SIG_LEN], ' ');
  assert_memory_equal(hdr + NT_V1_SIG_LEN + 1, "v1,", 3);
  assert_memory_equal(hdr + 2 * (NT_V1_SIG_LEN + 1), "v1a,", 4);
  char one[NT_V1_SIG_LEN + 1];
  assert_int_equal(nt_sign_v1(&sec.key[0], id, 1795000000, body, strlen(body), one, sizeof one), 0);
  assert_memory_equal(hdr, one, NT_V1_SIG_LEN);                       /* current first */
  assert_true(nt_verify_v1(&sec.key[0], id, 1795000000, body, strlen(body), hdr));
  assert_true(nt_verify_v1(&sec.key[1], id, 1795000000, body, strlen(body), hdr));
  assert_true(nt_verify(key.pk, id, 1795000000, body, strlen(body), hdr));
  /* an independent HMAC (libsodium's one-shot) agrees with the streamed one */
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  char content[256], b64[64];
  int n = snprintf(content, sizeof content, "%s.%d.%s", id, 1795000000, body);
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, sec.key[1].key, sec.key[1].len);
  crypto_auth_hmacsha256_update(&st, (unsigned char *)content, (unsigned long long)n);
  crypto_auth_hmacsha256_final(&st, mac);
  sodium_bin2base64(b64, sizeof b64, mac, sizeof mac, sodium_base64_VARIANT_ORIGINAL);
  assert_memory_equal(hdr + NT_V1_SIG_LEN + 1 + 3, b64, strlen(b64));
  /* a buffer below NT_SIG_HDR_SIZE is refused */
  assert_int_equal(nt_sign_header(&key, &sec, id, 1, body, strlen(body), hdr, NT_SIG_HDR_SIZE - 1), -1);
  nt_secrets_wipe(&sec);
  assert_int_equal(sec.n, 0);
  cp_signkey_wipe(&key);
}

/* Secrets are parsed with their bounds: prefix, padded base64, 24..64 bytes; errors never quote them. */
static void test_whsec_parse_bounds(void **state) {
  (void)state;
  cp_whsec_key_t k;
  char err[CP_ERRLEN], s[256];
  unsigned char raw[100];
  memset(raw, 1, sizeof raw);
  for (size_t len = 0; len <= 70; len++) {
    memcpy(s, "whsec_", 6);
    sodium_bin2base64(s + 6, sizeof s - 6, raw, len, sodium_base64_VARIANT_ORIGINAL);
    int rc = cp_whsec_parse(s, &k, err, sizeof err);
    assert_int_equal(rc, len >= CP_WHSEC_MIN_BYTES && len <= CP_WHSEC_MAX_BYTES ? 0 : -1);
    if (rc == 0) assert_int_equal(k.len, len);
    else if (len > 0) assert_null(strstr(err, s + 6));
  }
  assert_int_equal(cp_whsec_parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &k, err, sizeof err), -1);   /* no prefix */
  assert_int_equal(cp_whsec_parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw!", &k, err, sizeof err), -1);
  assert_int_equal(cp_whsec_parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw ", &k, err, sizeof err), -1);
  assert_int_equal(cp_whsec_parse("whsec_", &k, err, sizeof err), -1);
  assert_int_equal(cp_whsec_parse(NULL, &k, err, sizeof err), -1);
  /* made ones: 32 bytes, different each time */
  char a[CP_WHSEC_SIZE], b[CP_WHSEC_SIZE];
  cp_whsec_new(a);
  cp_whsec_new(b);
  assert_string_not_equal(a, b);
  assert_int_equal(cp_whsec_parse(a, &k, err, sizeof err), 0);
  assert_int_equal(k.len, CP_WHSEC_BYTES);
  cp_whsec_key_wipe(&k);
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
    cmocka_unit_test(test_v1_reference_vector),
    cmocka_unit_test(test_signature_header),
    cmocka_unit_test(test_whsec_parse_bounds),
    cmocka_unit_test(test_pubkey_format),
    cmocka_unit_test(test_backoff_bounds),
    cmocka_unit_test(test_job_body_and_check),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
