/* test_signer_batch.c -- the signer's batch pipeline (services/signer/signer_batch.c) against a real
 * redis-server, real ZeroMQ sockets on loopback and a real register in a temp dir: records gathered
 * up to SIGNER_BATCH_MAX (waiting SIGNER_BATCH_WAIT_MS for more), one append per batch, duplicates
 * of the register / of the held batch / of the same batch answered with the original's index and
 * never appended twice, malformed records dropped, the held batch appended on drain, and every
 * result (EventResult, the notice in the outbox stream, Redis event state, indexed marker)
 * announced only once the checkpoint that covers it is on disk. */
#include <pthread.h>
#include <string.h>

#include "redis_server.h"
#include "cp_config.h"
#include "cp_keys.h"
#include "cp_outbox.h"
#include "cp_zmq.h"
#include "signer.h"
#include "cp_projection.h"
#include "cp_subject.h"

#define WAIT_MS 10000         /* bound on any wait for a message (never a timing assertion) */
#define BATCH_WAIT_MS 1000    /* SIGNER_BATCH_WAIT_MS: the largest the table allows */
#define TOPIC "intake-test"   /* reply_to of the records: the results topic the test subscribes to */

/* One signer with its peers: redis-server, the notify and results ends, a producer. */
typedef struct {
  srv_t *srv;           // redis-server; its temp dir also holds the register and the key
  void *zctx;           // the test's own ZeroMQ context
  void *push;           // PUSH -> signer's PULL (plays verify)
  char outbox_seen[CP_OUTBOX_ID_MAX]; // id of the last outbox entry read ("" = none yet)
  void *results;        // SUB <- signer's EventResults (plays the bus results topic)
  signer_t *s;          // the signer under test
} fx_t;

static void set_env_int(const char *name, long v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%ld", v);
  setenv(name, buf, 1);
}

static void set_env_endpoint(const char *name, int port, char *out, size_t outlen) {
  snprintf(out, outlen, "tcp://127.0.0.1:%d", port);
  setenv(name, out, 1);
}

/* Watch `sock` for its first completed handshake (start before the peer connects). */
static void *watch_handshake(void *zctx, void *sock) {
  assert_int_equal(zmq_socket_monitor(sock, "inproc://test-monitor", ZMQ_EVENT_HANDSHAKE_SUCCEEDED), 0);
  void *mon = zmq_socket(zctx, ZMQ_PAIR);
  assert_non_null(mon);
  assert_int_equal(zmq_connect(mon, "inproc://test-monitor"), 0);
  return mon;
}

/* Wait until the signer's PUB has connected to our SUB and the SUB has sent its subscription (a
 * SUB attaches a new connection, and sends its subscriptions, only when its own thread calls into
 * it: hence the polls), so that no result is lost to a slow join. */
static void wait_subscribed(void *sock, void *mon) {
  zmq_pollitem_t pi = {mon, 0, ZMQ_POLLIN, 0};
  assert_int_equal(zmq_poll(&pi, 1, WAIT_MS), 1);
  for (int part = 0; part < 2; part++) {   /* event frame, address frame */
    zmq_msg_t m;
    zmq_msg_init(&m);
    assert_true(zmq_msg_recv(&m, mon, 0) >= 0);
    zmq_msg_close(&m);
  }
  assert_int_equal(zmq_socket_monitor(sock, NULL, 0), 0);
  zmq_close(mon);
  zmq_pollitem_t sp = {sock, 0, ZMQ_POLLIN, 0};
  for (int i = 0; i < 20; i++) assert_int_equal(zmq_poll(&sp, 1, 10), 0);
}

/* A signer configured as the service would be, over a fresh register, Redis and sockets. */
static void fx_start(fx_t *f, int batch_max) {
  char path[128], ep_pull[64], ep_results[64];
  snprintf(path, sizeof path, "%s/keys/signer.key", f->srv->dir);
  setenv("CAREPASS_SIGNING_KEY", path, 1);
  snprintf(path, sizeof path, "%s/register", f->srv->dir);
  setenv("CAREPASS_REGISTER_DIR", path, 1);
  setenv("CAREPASS_REDIS_HOST", "127.0.0.1", 1);
  set_env_int("CAREPASS_REDIS_PORT", f->srv->port);
  set_env_int("CAREPASS_SHARD", 0);
  set_env_int("CAREPASS_SIGNER_BATCH_MAX", batch_max);
  set_env_int("CAREPASS_SIGNER_BATCH_WAIT_MS", BATCH_WAIT_MS);
  set_env_endpoint("CAREPASS_SIGNER_BIND", free_port(), ep_pull, sizeof ep_pull);
  set_env_endpoint("CAREPASS_BUS_RESULTS_IN", free_port(), ep_results, sizeof ep_results);
  char err[CP_ERRLEN] = "";
  if (cp_config_load(CP_SVC_SIGNER, err, sizeof err) != 0) fail_msg("config: %s", err);

  f->zctx = zmq_ctx_new();
  assert_non_null(f->zctx);
  f->results = cp_zmq_socket(f->zctx, ZMQ_SUB, NULL, false, 0, 0, err, sizeof err);
  assert_non_null(f->results);
  assert_int_equal(zmq_setsockopt(f->results, ZMQ_SUBSCRIBE, TOPIC, strlen(TOPIC)), 0);
  assert_int_equal(zmq_bind(f->results, ep_results), 0);

  void *mon = watch_handshake(f->zctx, f->results);
  if (signer_new(&f->s, err, sizeof err) != 0) fail_msg("signer_new: %s", err);
  assert_int_equal(reg_size(f->s->log), 1);   /* a new register starts with its genesis key entry */
  wait_subscribed(f->results, mon);
  f->push = cp_zmq_socket(f->zctx, ZMQ_PUSH, ep_pull, false, 0, 0, err, sizeof err);
  assert_non_null(f->push);
}

static int fx_setup(void **state) {
  fx_t *f = cp_xcalloc(1, sizeof *f);
  void *srv = NULL;
  if (setup(&srv) != 0) {   /* redis_server.h: a fresh redis-server in a fresh temp dir */
    free(f);
    return -1;
  }
  f->srv = srv;
  *state = f;
  return 0;
}

/* Always run, also after a failed assertion: no redis-server or temp dir is left behind. */
static int fx_teardown(void **state) {
  fx_t *f = *state;
  signer_destroy(&f->s);
  signer_destroy(&f->s);   /* NULL-safe */
  cp_zmq_close(&f->push);
  cp_zmq_close(&f->results);
  if (f->zctx != NULL) zmq_ctx_term(f->zctx);
  cp_config_free();
  void *srv = f->srv;
  free(f);
  return teardown(&srv);   /* stops redis-server, removes the temp dir */
}

/* Send one verified record (provider "prov-a", event id `event`) as verify would. */
static void send_record(fx_t *f, const char *event) {
  uint8_t pseudo[CP_PSEUDONYM_BYTES];
  memset(pseudo, 0x5a, sizeof pseudo);
  Carepass__V1__PendingEvent ev = CAREPASS__V1__PENDING_EVENT__INIT;
  ev.provider_id = (char *)"prov-a";
  ev.provider_event_id = (char *)event;
  ev.worker_pseudonym.data = pseudo;
  ev.worker_pseudonym.len = sizeof pseudo;
  ev.qualification_code = (char *)"CC-STD-01";
  ev.completion_date = (char *)"2026-01-15";
  ev.reply_to = (char *)TOPIC;
  Carepass__V1__VerifiedRecord rec = CAREPASS__V1__VERIFIED_RECORD__INIT;
  rec.event = &ev;
  rec.entry_type = CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_RECORD;
  rec.valid_until = (char *)"2029-01-15";
  assert_int_equal(cp_zmq_send_pb(f->push, &rec.base, 0), 0);
}

/* Wait (on the signer's own thread, which owns the socket) until a record is queued for it. */
static void wait_queued(fx_t *f) {
  zmq_pollitem_t pi = {f->s->pull, 0, ZMQ_POLLIN, 0};
  assert_int_equal(zmq_poll(&pi, 1, WAIT_MS), 1);
}

/* The size the checkpoint file on disk publishes. */
static uint64_t checkpoint_size(const fx_t *f) {
  char path[128], line[256];
  snprintf(path, sizeof path, "%s/register/checkpoint", f->srv->dir);
  FILE *fp = fopen(path, "r");
  assert_non_null(fp);
  assert_non_null(fgets(line, sizeof line, fp));   /* origin */
  assert_non_null(fgets(line, sizeof line, fp));   /* size */
  fclose(fp);
  return strtoull(line, NULL, 10);
}

/* The next EventResult on the results topic; its index must already be under the checkpoint. */
static void expect_result(fx_t *f, const char *event, uint64_t index) {
  zmq_pollitem_t pi = {f->results, 0, ZMQ_POLLIN, 0};
  assert_int_equal(zmq_poll(&pi, 1, WAIT_MS), 1);
  uint8_t *buf = NULL;
  size_t len = 0;
  assert_int_equal(cp_zmq_recv_frame(f->results, &buf, &len, 0), 0);
  assert_memory_equal(buf, TOPIC, strlen(TOPIC));
  free(buf);
  assert_int_equal(cp_zmq_recv_frame(f->results, &buf, &len, 0), 0);
  Carepass__V1__EventResult *res = carepass__v1__event_result__unpack(NULL, len, buf);
  free(buf);
  assert_non_null(res);
  assert_string_equal(res->provider_id, "prov-a");
  assert_string_equal(res->provider_event_id, event);
  assert_int_equal(res->outcome, CAREPASS__V1__OUTCOME__OUTCOME_COMMITTED);
  assert_int_equal(res->entry_index, index);
  assert_true(checkpoint_size(f) > index);   /* announced only once durable */
  carepass__v1__event_result__free_unpacked(res, NULL);
}

/* The next entry of the outbox stream after the last one read (NULL when there is none). */
static Carepass__V1__NotifyJob *next_outbox_job(fx_t *f) {
  char err[CP_ERRLEN], from[CP_OUTBOX_ID_MAX + 1];
  cp_redis_t *r = cp_redis_new("127.0.0.1", f->srv->port, 2000, err, sizeof err);
  assert_non_null(r);
  snprintf(from, sizeof from, "%s%s", f->outbox_seen[0] ? "(" : "", f->outbox_seen[0] ? f->outbox_seen : "-");
  redisReply *rep = cp_redis_cmd(r, "XRANGE %s %s + COUNT 1", cp_key_outbox(), from);
  assert_non_null(rep);
  assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
  Carepass__V1__NotifyJob *job = NULL;
  if (rep->elements == 1) {
    cp_outbox_entry_t e;
    assert_int_equal(cp_outbox_entry(rep->element[0], &e), 0);
    snprintf(f->outbox_seen, sizeof f->outbox_seen, "%s", e.id);
    job = carepass__v1__notify_job__unpack(NULL, e.len, e.job);
    assert_non_null(job);
  }
  freeReplyObject(rep);
  cp_redis_destroy(&r);
  return job;
}

/* The next notice in the outbox: record.committed for `event` at `index` (written with the commit,
 * so it is there by the time the result is published). */
static void expect_notify(fx_t *f, const char *event, uint64_t index) {
  Carepass__V1__NotifyJob *job = next_outbox_job(f);
  assert_non_null(job);
  assert_string_equal(job->type, "record.committed");
  assert_string_equal(job->provider_event_id, event);
  assert_int_equal(job->entry_index, index);
  carepass__v1__notify_job__free_unpacked(job, NULL);
}

static void expect_no_notice(fx_t *f) { assert_null(next_outbox_job(f)); }

static void expect_no_message(void *sock) {
  zmq_pollitem_t pi = {sock, 0, ZMQ_POLLIN, 0};
  assert_int_equal(zmq_poll(&pi, 1, 100), 0);
}

/* Redis: the event is committed at index; cp:reg:{0}:indexed has reached the register size. */
static void expect_redis(fx_t *f, const char *event, uint64_t index) {
  char err[CP_ERRLEN];
  cp_key_t key;
  cp_redis_t *r = cp_redis_new("127.0.0.1", f->srv->port, 2000, err, sizeof err);
  assert_non_null(r);
  redisReply *rep = cp_redis_cmd(r, "HMGET %s state index", cp_key_event(&key, "prov-a", event));
  assert_non_null(rep);
  assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
  assert_string_equal(rep->element[0]->str, "committed");
  assert_int_equal(strtoull(rep->element[1]->str, NULL, 10), index);
  freeReplyObject(rep);
  rep = cp_redis_cmd(r, "GET %s", cp_key_reg_indexed(&key, 0));
  assert_non_null(rep);
  assert_int_equal(rep->type, REDIS_REPLY_STRING);
  assert_int_equal(strtoull(rep->str, NULL, 10), reg_size(f->s->log));
  freeReplyObject(rep);
  cp_redis_destroy(&r);
}

/* Five records, SIGNER_BATCH_MAX 3: a turn holds the first three signed but not appended; the
 * drain appends them in one append (size 1 -> 4, one checkpoint) and announces them; the next
 * turn gathers the other two (waiting SIGNER_BATCH_WAIT_MS for a third) and its drain appends them. */
static void test_batches_up_to_max(void **state) {
  fx_t *f = *state;
  fx_start(f, 3);
  const char *ev[] = {"e1", "e2", "e3", "e4", "e5"};
  for (size_t i = 0; i < 5; i++) send_record(f, ev[i]);

  assert_int_equal(signer_batch_run(f->s, WAIT_MS), 0);
  assert_int_equal(reg_size(f->s->log), 1);     /* held: signed, not yet appended */
  assert_int_equal(checkpoint_size(f), 1);
  expect_no_message(f->results);                /* nothing announced before it is durable */
  expect_no_notice(f);
  assert_int_equal(signer_batch_drain(f->s), 0);
  assert_int_equal(reg_size(f->s->log), 4);     /* the whole batch in one append */
  assert_int_equal(checkpoint_size(f), 4);
  for (uint64_t i = 0; i < 3; i++) expect_result(f, ev[i], 1 + i);
  for (uint64_t i = 0; i < 3; i++) expect_notify(f, ev[i], 1 + i);
  expect_redis(f, "e3", 3);

  assert_int_equal(signer_batch_run(f->s, WAIT_MS), 0);
  assert_int_equal(reg_size(f->s->log), 4);
  assert_int_equal(signer_batch_drain(f->s), 0);
  assert_int_equal(reg_size(f->s->log), 6);
  for (uint64_t i = 3; i < 5; i++) expect_result(f, ev[i], 1 + i);
  for (uint64_t i = 3; i < 5; i++) expect_notify(f, ev[i], 1 + i);
  expect_redis(f, "e5", 5);
  assert_int_equal(f->s->appended, 5);
  assert_int_equal(f->s->duplicates, 0);
  assert_int_equal(signer_batch_drain(f->s), 0);   /* nothing held: nothing to do */
  assert_int_equal(reg_size(f->s->log), 6);
}

/* Plays verify sending a second record a little after the first. */
static void *send_late(void *arg) {
  sleep_ms(50);
  send_record(arg, "late");
  return NULL;
}

/* A record that arrives within SIGNER_BATCH_WAIT_MS of the first joins its batch. */
static void test_batch_waits_for_more(void **state) {
  fx_t *f = *state;
  fx_start(f, 2);
  send_record(f, "early");
  wait_queued(f);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, send_late, f), 0);
  assert_int_equal(signer_batch_run(f->s, WAIT_MS), 0);
  pthread_join(t, NULL);
  assert_int_equal(signer_batch_drain(f->s), 0);
  assert_int_equal(reg_size(f->s->log), 3);   /* both in the one batch the drain appended */
  expect_result(f, "early", 1);
  expect_result(f, "late", 2);
}

/* Duplicates are answered with the original's index and never appended: one repeated in its own
 * batch, one of the held batch (signed, not yet appended) and one already in the register. */
static void test_duplicates(void **state) {
  fx_t *f = *state;
  fx_start(f, 3);
  send_record(f, "a");
  send_record(f, "b");
  send_record(f, "a");   /* same batch */
  assert_int_equal(signer_batch_run(f->s, WAIT_MS), 0);   /* holds [a, b, a] */
  send_record(f, "b");   /* repeats the held batch */
  wait_queued(f);
  assert_int_equal(signer_batch_run(f->s, WAIT_MS), 0);   /* appends [a, b, a], holds [b] */
  assert_int_equal(reg_size(f->s->log), 3);
  expect_result(f, "a", 1);
  expect_result(f, "b", 2);
  expect_result(f, "a", 1);
  assert_int_equal(signer_batch_drain(f->s), 0);
  assert_int_equal(reg_size(f->s->log), 3);   /* the held duplicate appended nothing */
  expect_result(f, "b", 2);

  send_record(f, "a");   /* long in the register */
  assert_int_equal(signer_batch_run(f->s, WAIT_MS), 0);
  assert_int_equal(signer_batch_drain(f->s), 0);
  assert_int_equal(reg_size(f->s->log), 3);
  expect_result(f, "a", 1);
  expect_notify(f, "a", 1);   /* one NotifyJob per appended entry, none for a duplicate */
  expect_notify(f, "b", 2);
  expect_no_notice(f);
  expect_redis(f, "a", 1);
  assert_int_equal(f->s->appended, 2);
  assert_int_equal(f->s->duplicates, 3);
}

/* A frame that is not a usable VerifiedRecord is dropped and counted; the batch goes on. */
static void test_malformed_dropped(void **state) {
  fx_t *f = *state;
  fx_start(f, 2);
  assert_int_equal(zmq_send(f->push, "not a record", 12, 0), 12);
  send_record(f, "good");
  assert_int_equal(signer_batch_run(f->s, WAIT_MS), 0);
  assert_int_equal(signer_batch_drain(f->s), 0);
  assert_int_equal(f->s->dropped, 1);
  assert_int_equal(reg_size(f->s->log), 2);
  expect_result(f, "good", 1);
}

/* A consent entry: refused without a subject and a sealed employer (entry format 1); with them,
 * version 2 with the sealed payload and none of the event's record fields. */
static void test_consent_entry(void **state) {
  (void)state;
  cp_signkey_t key;
  memset(&key, 0, sizeof key);
  snprintf(key.name, sizeof key.name, "test.example/log");
  crypto_sign_keypair(key.pk, key.sk);
  uint8_t pseudo[CP_PSEUDONYM_BYTES];
  memset(pseudo, 0x42, sizeof pseudo);
  Carepass__V1__PendingEvent ev = CAREPASS__V1__PENDING_EVENT__INIT;
  ev.provider_id = (char *)PROJ_CONSENT_PROVIDER;
  ev.provider_event_id = (char *)"consent:00112233445566778899aabbccddeeff";
  ev.worker_pseudonym.data = pseudo;
  ev.worker_pseudonym.len = sizeof pseudo;
  ev.kind = CAREPASS__V1__EVENT_KIND__EVENT_KIND_CONSENT;
  ev.employer_id = (char *)"EMP-0001";
  ev.qualification_code = (char *)"RF-FIRE";   /* never copied into a consent entry */
  Carepass__V1__VerifiedRecord rec = CAREPASS__V1__VERIFIED_RECORD__INIT;
  rec.event = &ev;
  rec.entry_type = CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_CONSENT;
  uint8_t *out = NULL;
  size_t len = 0;
  char err[256] = "";
  assert_int_equal(signer_entry_build(&key, &rec, 1, NULL, NULL, 0, &out, &len, err, sizeof err), -1);
  assert_non_null(strstr(err, "format 2"));
  cp_subject_t subj;
  uint8_t wkey[CP_SUBJECT_KEY_BYTES], slot[CP_SUBJECT_SLOT_BYTES], sealed[CP_SUBJECT_SEALED_PAYLOAD_MAX];
  size_t slen = 0;
  memset(wkey, 7, sizeof wkey);
  memset(slot, 9, sizeof slot);
  cp_opening_t op;
  memcpy(op.pseudonym, pseudo, sizeof pseudo);
  memset(op.r, 3, sizeof op.r);
  cp_subject_seal(wkey, &op, slot, &subj);
  assert_int_equal(cp_subject_payload_seal(wkey, subj.subject, subj.slot, (const uint8_t *)"EMP-0001", 8, sealed, &slen), 0);
  assert_int_equal(signer_entry_build(&key, &rec, 1, &subj, sealed, slen, &out, &len, err, sizeof err), 0);
  Carepass__V1__PassportEntry *pe = signer_entry_decode(out, len, err, sizeof err);
  assert_non_null(pe);
  assert_int_equal(pe->version, 2);
  assert_int_equal(pe->entry_type, CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_CONSENT);
  assert_int_equal(pe->worker_pseudonym.len, 0);
  assert_string_equal(pe->qualification_code, "");
  assert_int_equal(pe->sealed_payload.len, slen);
  uint8_t emp[CP_SUBJECT_PAYLOAD_MAX + 1];
  size_t elen = 0;
  assert_int_equal(cp_subject_payload_open(wkey, pe->subject.data, pe->subject.len, pe->subject_slot.data,
                                           pe->subject_slot.len, pe->sealed_payload.data, pe->sealed_payload.len, emp,
                                           &elen), CP_SUBJECT_OK);
  assert_string_equal((char *)emp, "EMP-0001");
  protobuf_c_message_free_unpacked(&pe->base, NULL);
  free(out);
  cp_signkey_wipe(&key);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_batches_up_to_max, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(test_batch_waits_for_more, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(test_duplicates, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(test_malformed_dropped, fx_setup, fx_teardown),
      cmocka_unit_test(test_consent_entry),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
