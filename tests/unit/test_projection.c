/* test_projection.c -- the projection of committed register entries onto Redis (common/projection.c),
 * against a real redis-server: what each entry type writes, live and replayed, that applying
 * again changes nothing, the award state a replay rebuilds, and the expiry schedule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cp_catalogue.h"
#include "cp_crypto.h"
#include "cp_dates.h"
#include "cp_keys.h"
#include "cp_outbox.h"
#include "cp_projection.h"
#include "cp_redis.h"
#include "cp_subject.h"
#include "redis_server.h"

#define TIMEOUT_MS 2000
#define TODAY 20238   /* 2025-05-30: the day new expiry schedules start from */

static cp_redis_t *connect_to(const srv_t *s) {
  char err[CP_ERRLEN] = "";
  cp_redis_t *r = cp_redis_new("127.0.0.1", s->port, TIMEOUT_MS, err, sizeof err);
  if (r == NULL) fail_msg("cp_redis_new: %s", err);
  return r;
}

static cat_catalogue_t *catalogue(void) {
  const char *src = getenv("CAREPASS_SOURCE_DIR");
  char path[512], err[CP_ERRLEN];
  snprintf(path, sizeof path, "%s/data/catalogue.json", src ? src : CAREPASS_SOURCE_DIR_DEFAULT);
  cat_catalogue_t *cat = NULL;
  if (cat_load(path, &cat, err, sizeof err) != 0) fail_msg("catalogue: %s", err);
  return cat;
}

/* A test worker's pseudonym (all bytes `b`) and its hex. */
static uint8_t worker_a[CP_PSEUDONYM_BYTES];
static char hex_a[2 * CP_PSEUDONYM_BYTES + 1];

/* One committed entry of the test log. */
typedef struct {
  Carepass__V1__PassportEntry pe;   // the entry (strings point at literals or buf)
  char id[96];                      // provider event id storage
} entry_t;

static void mk(entry_t *out, Carepass__V1__EntryType type, const char *provider, const char *id, const char *code) {
  entry_t e;
  Carepass__V1__PassportEntry init = CAREPASS__V1__PASSPORT_ENTRY__INIT;
  e.pe = init;
  snprintf(e.id, sizeof e.id, "%s", id);
  e.pe.entry_type = type;
  e.pe.provider_id = (char *)provider;
  e.pe.provider_event_id = e.id;
  e.pe.qualification_code = (char *)code;
  e.pe.completion_date = (char *)"2025-02-01";
  e.pe.assessor_id = (char *)"ASR-1";
  e.pe.valid_until = (char *)"";
  e.pe.reason_code = (char *)"";
  e.pe.issued_at = 1760000000;
  e.pe.worker_pseudonym.data = worker_a;
  e.pe.worker_pseudonym.len = CP_PSEUDONYM_BYTES;
  *out = e;
  out->pe.provider_event_id = out->id;
}

/* Apply entries [from, to) of log (the revocation targets from the log itself), in one pipeline. */
static void apply(cp_redis_t *r, proj_t *p, entry_t *log, size_t from, size_t to) {
  cp_redis_pipe_t *pipe = cp_redis_pipe_new();
  for (size_t i = from; i < to; i++) {
    const Carepass__V1__PassportEntry *pe = &log[i].pe, *target = NULL;
    if (pe->entry_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION && pe->revokes_index < i)
      target = &log[pe->revokes_index].pe;
    proj_entry(p, pipe, i, pe, target);
  }
  proj_indexed(pipe, 0, to);
  assert_int_equal(cp_redis_pipe_exec(pipe, r), 0);
  char err[CP_ERRLEN];
  assert_int_equal(cp_redis_pipe_check(pipe, "projection", err, sizeof err), 0);
  cp_redis_pipe_destroy(&pipe);
}

/* qsort order of replies (redisReply *) by their string. */
static int by_str(const void *a, const void *b) {
  const redisReply *x = *(redisReply *const *)a, *y = *(redisReply *const *)b;
  return strcmp(x->str, y->str);
}

/* The notices in the outbox, in order, as "type@index type@index ..." (the outbox is not state to
 * compare: a live apply adds notices each time, by design). */
static char *outbox_notices(cp_redis_t *r) {
  redisReply *x = cp_redis_cmd(r, "XRANGE %s - +", cp_key_outbox());
  assert_non_null(x);
  assert_int_equal(x->type, REDIS_REPLY_ARRAY);
  char *out = cp_xcalloc(1, 64 * x->elements + 1);
  for (size_t i = 0; i < x->elements; i++) {
    cp_outbox_entry_t e;
    assert_int_equal(cp_outbox_entry(x->element[i], &e), 0);
    Carepass__V1__NotifyJob *job = carepass__v1__notify_job__unpack(NULL, e.len, e.job);
    assert_non_null(job);
    snprintf(out + strlen(out), 64, "%s%s@%llu", i ? " " : "", job->type, (unsigned long long)job->entry_index);
    carepass__v1__notify_job__free_unpacked(job, NULL);
  }
  freeReplyObject(x);
  return out;
}

/* Every key and value, type by type, as one text (sorted by key): to compare whole states. The
 * outbox stream is left out (outbox_notices reads it). */
static char *dump(cp_redis_t *r) {
  redisReply *keys = cp_redis_cmd(r, "KEYS *");
  assert_non_null(keys);
  qsort(keys->element, keys->elements, sizeof *keys->element, by_str);
  size_t cap = 4096, len = 0;
  char *out = cp_xmalloc(cap);
  out[0] = '\0';
  for (size_t i = 0; i < keys->elements; i++) {
    const char *k = keys->element[i]->str;
    if (strcmp(k, cp_key_outbox()) == 0) continue;
    redisReply *t = cp_redis_cmd(r, "TYPE %s", k);
    redisReply *v = NULL;
    if (strcmp(t->str, "string") == 0) v = cp_redis_cmd(r, "GET %s", k);
    else if (strcmp(t->str, "hash") == 0) v = cp_redis_cmd(r, "HGETALL %s", k);
    else if (strcmp(t->str, "list") == 0) v = cp_redis_cmd(r, "LRANGE %s 0 -1", k);
    else if (strcmp(t->str, "set") == 0) v = cp_redis_cmd(r, "SORT %s ALPHA", k);
    else if (strcmp(t->str, "zset") == 0) v = cp_redis_cmd(r, "ZRANGE %s 0 -1 WITHSCORES", k);
    assert_non_null(v);
    char line[4096];
    int n = snprintf(line, sizeof line, "%s %s", k, t->str);
    if (v->type == REDIS_REPLY_STRING) n += snprintf(line + n, sizeof line - (size_t)n, " %s", v->str);
    if (v->type == REDIS_REPLY_ARRAY) {
      if (strcmp(t->str, "hash") == 0)   /* fields in a stable order */
        qsort(v->element, v->elements / 2, 2 * sizeof *v->element, by_str);
      for (size_t j = 0; j < v->elements && (size_t)n < sizeof line; j++)
        n += snprintf(line + n, sizeof line - (size_t)n, " %s", v->element[j]->str);
    }
    while (len + (size_t)n + 2 > cap) out = cp_xrealloc(out, cap *= 2);
    memcpy(out + len, line, (size_t)n);
    len += (size_t)n;
    out[len++] = '\n';
    out[len] = '\0';
    freeReplyObject(t);
    freeReplyObject(v);
  }
  freeReplyObject(keys);
  return out;
}

static void flushall(cp_redis_t *r) { freeReplyObject(cp_redis_cmd(r, "FLUSHALL")); }

static char *hget(cp_redis_t *r, const char *key, const char *field) {
  redisReply *v = cp_redis_cmd(r, "HGET %s %s", key, field);
  char *s = cp_redis_reply_strdup(v);
  freeReplyObject(v);
  return s;
}

static void expect_field(cp_redis_t *r, const char *key, const char *field, const char *want) {
  char *got = hget(r, key, field);
  if (want == NULL) assert_null(got);
  else assert_string_equal(got, want);
  free(got);
}

static long long count_of(cp_redis_t *r, const char *fmt, const char *key) {
  redisReply *v = cp_redis_cmd(r, fmt, key);
  long long n = v->integer;
  freeReplyObject(v);
  return n;
}

/* The score of index in cp:exp:due (-1 when absent). */
static long long exp_score(cp_redis_t *r, uint64_t index) {
  redisReply *v = cp_redis_cmd(r, "ZSCORE %s %llu", cp_key_exp_due(), (unsigned long long)index);
  long long n = v->type == REDIS_REPLY_STRING ? atoll(v->str) : -1;
  freeReplyObject(v);
  return n;
}

/* The schedule hash of index: state, stage, event id, valid_until and the fields copied from mk. */
static void exp_expect(cp_redis_t *r, uint64_t index, const char *st, const char *stage, const char *event_id,
                          const char *vu) {
  cp_key_t k;
  cp_key_exp(&k, index);
  expect_field(r, k.s, "state", st);
  expect_field(r, k.s, "stage", stage);
  expect_field(r, k.s, "event_id", event_id);
  expect_field(r, k.s, "valid_until", vu);
  expect_field(r, k.s, "provider", "PRV-0001");
  expect_field(r, k.s, "qual", "RF-FIRE");
  expect_field(r, k.s, "worker", hex_a);
  expect_field(r, k.s, "completion_date", "2025-02-01");
}

/* Live: a record, a duplicate mark, a key entry and a revocation; applying again changes nothing. */
static void test_live_record_and_revocation(void **state) {
  srv_t *s = *state;
  cp_redis_t *r = connect_to(s);
  cp_key_t ev, ev2, w;
  /* intake's claim and verify's revoked_by, as they are before the commit */
  freeReplyObject(cp_redis_cmd(r, "HSET %s state accepted digest d1 pending xx t 1", cp_key_event(&ev, "PRV-0001", "e1")));
  freeReplyObject(cp_redis_cmd(r, "ZADD cp:pending 1 PRV-0001:e1"));
  freeReplyObject(cp_redis_cmd(r, "HSET %s revoked_by e1-rev", ev.s));
  entry_t log[3];
  mk(&log[0], CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_KEY, "", "", "");
  log[0].pe.worker_pseudonym.len = 0;
  mk(&log[1], CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_RECORD, "PRV-0001", "e1", "RF-FIRE");
  mk(&log[2], CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION, "PRV-0001", "e1-rev", "RF-FIRE");
  log[2].pe.revokes_index = 1;
  log[2].pe.issued_at = 1760000099;
  proj_t *p = proj_new(PROJ_LIVE, NULL, TODAY);
  apply(r, p, log, 0, 3);
  expect_field(r, ev.s, "state", "committed");
  expect_field(r, ev.s, "index", "1");
  expect_field(r, ev.s, "pending", NULL);
  expect_field(r, ev.s, "digest", "d1");             /* intake's, untouched */
  expect_field(r, ev.s, "revoked_by", "e1-rev");      /* verify's, kept (HSETNX) */
  expect_field(r, ev.s, "revoked_index", "2");
  expect_field(r, ev.s, "revoked_at", "1760000099");
  expect_field(r, cp_key_event(&ev2, "PRV-0001", "e1-rev"), "index", "2");
  expect_field(r, ev2.s, "digest", NULL);             /* live: intake writes digests, not the signer */
  assert_int_equal(count_of(r, "ZCARD %s", cp_key_pending()), 0);
  assert_int_equal(count_of(r, "LLEN %s", cp_key_w_entries(&w, hex_a)), 2);
  assert_int_equal(count_of(r, "EXISTS %s", cp_key_w_cc(&w, hex_a)), 0);   /* live: verify's */
  char *notices = outbox_notices(r);   /* live: the notices the commit owes, none for the key entry */
  assert_string_equal(notices, "record.committed@1 record.revoked@2");
  free(notices);
  char *once = dump(r);
  apply(r, p, log, 0, 3);   /* a replay after a crash before the marker moved */
  char *twice = dump(r);
  assert_string_equal(once, twice);
  free(once);
  free(twice);
  notices = outbox_notices(r);   /* owed again: duplicates, which receivers drop by webhook-id */
  assert_string_equal(notices, "record.committed@1 record.revoked@2 record.committed@1 record.revoked@2");
  free(notices);

  /* a duplicate seen by the signer: only the event state */
  cp_redis_pipe_t *pipe = cp_redis_pipe_new();
  proj_event_committed(pipe, "PRV-0002", "dup", 7);
  assert_int_equal(cp_redis_pipe_exec(pipe, r), 0);
  cp_redis_pipe_destroy(&pipe);
  expect_field(r, cp_key_event(&ev, "PRV-0002", "dup"), "index", "7");
  redisReply *m = cp_redis_cmd(r, "GET %s", cp_key_reg_indexed(&w, 0));
  assert_true(cp_redis_reply_is_str(m, "3"));
  freeReplyObject(m);
  proj_destroy(&p);
  assert_null(p);
  cp_redis_destroy(&r);
}

/* Format 2: the worker comes from the subject key store; the worker index gains each entry's r
 * (which opens its subject); without the store, or once the worker left (shredded), the entry is
 * projected without a worker -- its event state only. */
static void test_format_2_subjects(void **state) {
  srv_t *s = *state;
  cp_redis_t *r = connect_to(s);
  char dir[64], err[CP_ERRLEN] = "";
  snprintf(dir, sizeof dir, "/tmp/cp-test-proj-subj-XXXXXX");
  assert_non_null(mkdtemp(dir));
  char sdir[128];
  snprintf(sdir, sizeof sdir, "%s/subject-keys", dir);
  cp_subject_store_t *st = NULL;
  assert_int_equal(cp_subject_store_open(sdir, CP_SUBJECT_CREATE | CP_SUBJECT_WRITER, &st, err, sizeof err), 0);
  entry_t log[3];
  cp_subject_t subj[3];
  mk(&log[0], CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_KEY, "", "", "");
  log[0].pe.worker_pseudonym.len = 0;
  for (int i = 1; i < 3; i++) {
    mk(&log[i], CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_RECORD, "PRV-0001", i == 1 ? "s1" : "s2", "RF-FIRE");
    cp_subject_store_new(st, worker_a, &subj[i]);
    log[i].pe.version = 2;
    log[i].pe.worker_pseudonym.len = 0;
    log[i].pe.worker_pseudonym.data = NULL;
    log[i].pe.subject.data = subj[i].subject;
    log[i].pe.subject.len = sizeof subj[i].subject;
    log[i].pe.subject_slot.data = subj[i].slot;
    log[i].pe.subject_slot.len = sizeof subj[i].slot;
    log[i].pe.sealed_opening.data = subj[i].sealed;
    log[i].pe.sealed_opening.len = sizeof subj[i].sealed;
  }
  assert_int_equal(cp_subject_store_flush(st, err, sizeof err), 0);
  cp_key_t w, ev;

  /* without the store: event states, no worker */
  proj_t *p = proj_new(PROJ_LIVE, NULL, TODAY);
  apply(r, p, log, 0, 3);
  expect_field(r, cp_key_event(&ev, "PRV-0001", "s1"), "state", "committed");
  assert_int_equal(count_of(r, "EXISTS %s", cp_key_w_entries(&w, hex_a)), 0);
  freeReplyObject(cp_redis_cmd(r, "FLUSHALL"));

  /* with it: the worker's index and the r of each entry, which opens its subject */
  proj_set_subjects(p, st);
  apply(r, p, log, 0, 3);
  assert_int_equal(count_of(r, "LLEN %s", cp_key_w_entries(&w, hex_a)), 2);
  for (int i = 1; i < 3; i++) {
    redisReply *x = cp_redis_cmd(r, "HGET %s %d", cp_key_w_openings(&w, hex_a), i);
    assert_non_null(x);
    assert_int_equal(x->type, REDIS_REPLY_STRING);
    cp_opening_t op;
    memcpy(op.pseudonym, worker_a, sizeof op.pseudonym);
    assert_int_equal(sodium_hex2bin(op.r, sizeof op.r, x->str, x->len, NULL, NULL, NULL), 0);
    assert_true(cp_subject_opens(subj[i].subject, &op));
    freeReplyObject(x);
  }
  char *notices = outbox_notices(r);   /* the notices carry the opened worker (fan-out needs it) */
  assert_string_equal(notices, "record.committed@1 record.committed@2");
  free(notices);
  freeReplyObject(cp_redis_cmd(r, "FLUSHALL"));

  /* the worker leaves: their entries project without a worker from then on */
  size_t removed = 0;
  assert_int_equal(cp_subject_store_shred(st, worker_a, &removed, err, sizeof err), 0);
  assert_int_equal(removed, 2);
  apply(r, p, log, 0, 3);
  expect_field(r, cp_key_event(&ev, "PRV-0001", "s2"), "state", "committed");
  assert_int_equal(count_of(r, "EXISTS %s", cp_key_w_entries(&w, hex_a)), 0);
  assert_int_equal(count_of(r, "EXISTS %s", cp_key_w_openings(&w, hex_a)), 0);
  proj_destroy(&p);
  cp_subject_store_close(&st);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
  cp_redis_destroy(&r);
}

static const unsigned char tag_secret[CP_SECRET_BYTES] = {
    0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};   /* bytes 0..31 */

/* The award id of generation gen for worker a: keyed (with tag_secret) or legacy. */
static void award_id_a(bool keyed, uint64_t gen, char out[PROJ_AWARD_ID_MAX]) {
  if (keyed) proj_award_id(tag_secret, "CC", worker_a, gen, out);
  else proj_award_id_legacy("CC", hex_a, gen, out);
}

/* Replay: the Care Certificate held, withdrawn by a revoked standard before its own revocation (a
 * late withdrawal record naming the award's id), then that revocation; the standard redone and the
 * award of generation 1, withdrawn by another revoked standard; digests rebuilt; replaying over the
 * built state changes nothing. keyed0 / keyed1: the style of generation 0's and 1's award ids
 * (legacy, legacy = a register from before keyed ids; legacy, keyed = an upgrade in between; keyed,
 * keyed = now). The revocations' ids come from the award's id by the one rule, in the Lua mirror. */
static void replay_award_state(void **state, bool keyed0, bool keyed1) {
  srv_t *s = *state;
  cp_redis_t *r = connect_to(s);
  cat_catalogue_t *cat = catalogue();
  entry_t log[24];
  size_t n = 0;
  char id[PROJ_AWARD_ID_MAX], aw0[PROJ_AWARD_ID_MAX], aw1[PROJ_AWARD_ID_MAX], wd[PROJ_AWARD_ID_MAX + 32];
  static char codes[16][16];
  for (int i = 1; i <= 16; i++) {
    snprintf(id, sizeof id, "s%02d", i);
    snprintf(codes[i - 1], sizeof codes[i - 1], "CC-STD-%02d", i);
    mk(&log[n++], CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_RECORD, "PRV-0001", id, codes[i - 1]);
  }
  award_id_a(keyed0, 0, aw0);
  award_id_a(keyed1, 1, aw1);
  mk(&log[n++], CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_DERIVED_AWARD, PROJ_AWARD_PROVIDER, aw0, "CC");   /* 16 */
  mk(&log[n], CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION, "PRV-0001", "s05-rev", "CC-STD-05");     /* 17 */
  log[n].pe.revokes_index = 4;
  log[n++].pe.reason_code = (char *)"ISSUED_IN_ERROR";
  proj_t *p = proj_new(PROJ_REPLAY, cat, TODAY);
  apply(r, p, log, 0, n);
  assert_int_equal(count_of(r, "EXISTS %s", cp_key_outbox()), 0);   /* a replay owes no notice */
  cp_key_t k, f;
  assert_int_equal(count_of(r, "SCARD %s", cp_key_w_cc(&k, hex_a)), 15);
  assert_int_equal(count_of(r, "SCARD %s", cp_key_w_awards(&k, hex_a)), 0);
  expect_field(r, cp_key_w_award_gen(&k, hex_a), "CC", "1");
  /* a keyed award's id is the code's last (as verify's issue script writes it); a legacy one none */
  expect_field(r, cp_key_w_award_gen(&k, hex_a), "CC:last", keyed0 ? aw0 : NULL);
  cp_key_award_wd_field(&f, "CC", 0, hex_a);
  snprintf(wd, sizeof wd, "0 2025-02-01 %s", aw0);
  expect_field(r, cp_key_award_wd(), f.s, wd);   /* verify sends the award's revocation */
  assert_true(proj_award_revoke_id(aw0, id));
  if (!keyed0) {   /* the legacy id's revocation id is the one old registers hold */
    char old[PROJ_AWARD_ID_MAX];
    snprintf(old, sizeof old, "award-revoke:CC:%.16s:0", hex_a);
    assert_string_equal(id, old);
  }
  expect_field(r, cp_key_event(&k, PROJ_AWARD_PROVIDER, aw0), "revoked_by", id);   /* as verify marks it */
  expect_field(r, cp_key_event(&k, "PRV-0001", "s05"), "qcode", "CC-STD-05");
  char *digest = hget(r, cp_key_event(&k, "PRV-0001", "s01"), "digest");
  assert_non_null(digest);
  assert_int_equal(strlen(digest), 64);
  free(digest);
  expect_field(r, cp_key_event(&k, PROJ_AWARD_PROVIDER, aw0), "digest", NULL);   /* not through intake */

  /* the award's own revocation comes: the late withdrawal is finished, the generation stays */
  mk(&log[n], CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION, PROJ_AWARD_PROVIDER, id, "CC");            /* 18 */
  log[n++].pe.revokes_index = 16;
  apply(r, p, log, n - 1, n);
  expect_field(r, cp_key_award_wd(), f.s, NULL);
  expect_field(r, cp_key_w_award_gen(&k, hex_a), "CC", "1");
  expect_field(r, cp_key_event(&k, PROJ_AWARD_PROVIDER, aw0), "revoked_by", id);
  expect_field(r, cp_key_event(&k, PROJ_AWARD_PROVIDER, id), "digest", NULL);

  /* standard 5 redone, the award of generation 1, then standard 6 revoked: generation 1 withdrawn
   * under the id it has */
  mk(&log[n++], CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_RECORD, "PRV-0001", "s05-redo", "CC-STD-05");      /* 19 */
  mk(&log[n++], CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_DERIVED_AWARD, PROJ_AWARD_PROVIDER, aw1, "CC");  /* 20 */
  mk(&log[n], CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION, "PRV-0001", "s06-rev", "CC-STD-06");     /* 21 */
  log[n].pe.revokes_index = 5;
  log[n++].pe.reason_code = (char *)"FRAUD";
  apply(r, p, log, n - 3, n);
  expect_field(r, cp_key_w_award_gen(&k, hex_a), "CC", "2");
  expect_field(r, cp_key_w_award_gen(&k, hex_a), "CC:last", keyed1 ? aw1 : keyed0 ? aw0 : NULL);
  assert_true(proj_award_revoke_id(aw1, id));
  expect_field(r, cp_key_event(&k, PROJ_AWARD_PROVIDER, aw1), "revoked_by", id);
  assert_non_null(strstr(id, ":1"));
  cp_key_award_wd_field(&f, "CC", 1, hex_a);
  snprintf(wd, sizeof wd, "0 2025-02-01 %s", aw1);
  expect_field(r, cp_key_award_wd(), f.s, wd);

  /* the whole log again over that state, and from nothing: the same state */
  char *built = dump(r);
  apply(r, p, log, 0, n);
  char *again = dump(r);
  assert_string_equal(built, again);
  flushall(r);
  apply(r, p, log, 0, n);
  char *fresh = dump(r);
  assert_string_equal(built, fresh);
  free(built);
  free(again);
  free(fresh);
  proj_destroy(&p);
  cat_destroy(&cat);
  cp_redis_destroy(&r);
}

static void test_replay_award_state_legacy(void **state) { replay_award_state(state, false, false); }
static void test_replay_award_state_upgraded(void **state) { replay_award_state(state, false, true); }
static void test_replay_award_state_keyed(void **state) { replay_award_state(state, true, true); }

/* Applying entries [0, n) of log again leaves every key and value as it was. */
static void apply_changes_nothing(cp_redis_t *r, proj_t *p, entry_t *log, size_t n) {
  char *before = dump(r);
  apply(r, p, log, 0, n);
  char *after = dump(r);
  assert_string_equal(before, after);
  free(before);
  free(after);
}

/* The expiry schedule: created with the commit, once (a second apply keeps the stage notify moved),
 * skipping thresholds passed on today, none for a record that does not expire, and retired to a
 * tombstone by a revocation that a later apply of the record does not undo. */
static void test_expiry_schedule(void **state) {
  srv_t *s = *state;
  cp_redis_t *r = connect_to(s);
  cp_key_t k;
  entry_t log[4];
  mk(&log[0], CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_RECORD, "PRV-0001", "x0", "RF-FIRE");
  log[0].pe.valid_until = (char *)"2026-05-01";   /* every threshold ahead: stage 0 (90 days before) */
  mk(&log[1], CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_RECORD, "PRV-0001", "x1", "RF-FIRE");
  log[1].pe.valid_until = (char *)"2025-07-01";   /* 90 days before passed on TODAY: stage 1 (30 days) */
  mk(&log[2], CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_RECORD, "PRV-0001", "x2", "RF-FIRE");   /* no valid_until */
  mk(&log[3], CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION, "PRV-0001", "x1-rev", "RF-FIRE");
  log[3].pe.revokes_index = 1;
  proj_t *p = proj_new(PROJ_LIVE, NULL, TODAY);
  apply(r, p, log, 0, 3);
  int32_t vu0 = 0, vu1 = 0;
  assert_int_equal(cp_date_parse("2026-05-01", &vu0), 0);
  assert_int_equal(cp_date_parse("2025-07-01", &vu1), 0);
  exp_expect(r, 0, "scheduled", "0", "x0", "2026-05-01");
  exp_expect(r, 1, "scheduled", "1", "x1", "2025-07-01");
  assert_int_equal(count_of(r, "EXISTS %s", cp_key_exp(&k, 2)), 0);
  assert_int_equal(exp_score(r, 0), proj_exp_threshold(vu0, 0));
  assert_int_equal(exp_score(r, 1), proj_exp_threshold(vu1, 1));
  assert_int_equal(proj_exp_threshold(vu0, 0), vu0 - 90);
  assert_int_equal(proj_exp_threshold(vu0, 3), vu0 + 1);

  /* notify moves record 0 on (stage 1, its next score); applying everything again keeps that */
  freeReplyObject(cp_redis_cmd(r, "HSET %s stage 1", cp_key_exp(&k, 0)));
  freeReplyObject(cp_redis_cmd(r, "ZADD %s %d 0", cp_key_exp_due(), (int)proj_exp_threshold(vu0, 1)));
  apply_changes_nothing(r, p, log, 3);

  /* the revocation retires record 1's schedule: a tombstone, out of due and lease */
  freeReplyObject(cp_redis_cmd(r, "ZADD %s 1 1", cp_key_exp_lease()));
  apply(r, p, log, 3, 4);
  assert_int_equal(count_of(r, "HLEN %s", cp_key_exp(&k, 1)), 1);
  expect_field(r, k.s, "state", "revoked");
  assert_true(count_of(r, "TTL %s", k.s) > 0);
  assert_int_equal(exp_score(r, 1), -1);
  assert_int_equal(count_of(r, "ZCARD %s", cp_key_exp_lease()), 0);
  assert_int_equal(exp_score(r, 0), proj_exp_threshold(vu0, 1));   /* record 0 untouched */
  /* the whole log again (a signer replaying after a crash, a reindex): still retired */
  apply_changes_nothing(r, p, log, 4);

  /* replayed from nothing: the same schedules (notify's stage aside: record 0 starts at 0 again) */
  flushall(r);
  proj_t *rp = proj_new(PROJ_REPLAY, NULL, TODAY);
  apply(r, rp, log, 0, 4);
  exp_expect(r, 0, "scheduled", "0", "x0", "2026-05-01");
  expect_field(r, cp_key_exp(&k, 1), "state", "revoked");
  assert_int_equal(count_of(r, "ZCARD %s", cp_key_exp_due()), 1);
  proj_destroy(&rp);
  proj_destroy(&p);
  cp_redis_destroy(&r);
}

/* proj_withdraw_award: once per generation, whoever calls it. */
static void test_withdraw_award_once(void **state) {
  srv_t *s = *state;
  cp_redis_t *r = connect_to(s);
  cp_key_t k;
  freeReplyObject(cp_redis_cmd(r, "SADD %s CC", cp_key_w_awards(&k, hex_a)));
  cp_redis_pipe_t *pipe = cp_redis_pipe_new();
  cp_redis_handle_t a = proj_withdraw_award(pipe, hex_a, "CC", 0);
  cp_redis_handle_t b = proj_withdraw_award(pipe, hex_a, "CC", 0);   /* a second replica, a redrive */
  cp_redis_handle_t c = proj_withdraw_award(pipe, hex_a, "CC", 1);
  assert_int_equal(cp_redis_pipe_exec(pipe, r), 0);
  assert_true(cp_redis_reply_is_int(cp_redis_pipe_reply(pipe, a), 1));
  assert_true(cp_redis_reply_is_int(cp_redis_pipe_reply(pipe, b), 0));
  assert_true(cp_redis_reply_is_int(cp_redis_pipe_reply(pipe, c), 1));
  cp_redis_pipe_destroy(&pipe);
  expect_field(r, cp_key_w_award_gen(&k, hex_a), "CC", "2");
  assert_int_equal(count_of(r, "EXISTS %s", cp_key_w_awards(&k, hex_a)), 0);
  cp_redis_destroy(&r);
}

/* Award event ids: built and parsed by one module, for verify and the projection; both styles. */
static void test_award_ids(void **state) {
  (void)state;
  char id[PROJ_AWARD_ID_MAX], rid[PROJ_AWARD_ID_MAX];
  proj_award_ref_t ref;
  uint8_t other[CP_PSEUDONYM_BYTES];
  memset(other, 0x5a, sizeof other);

  /* legacy: built, parsed, its revocation id as old registers hold it */
  proj_award_id_legacy("CC", hex_a, 0, id);
  assert_string_equal(id, "award:CC:a5a5a5a5a5a5a5a5");
  assert_true(proj_award_id_parse(id, &ref));
  assert_string_equal(ref.code, "CC");
  assert_int_equal(ref.style, PROJ_AWARD_LEGACY);
  assert_string_equal(ref.tag, "a5a5a5a5a5a5a5a5");
  assert_int_equal(ref.gen, 0);
  assert_true(proj_award_ref_is_of(&ref, tag_secret, worker_a));     /* right worker */
  assert_false(proj_award_ref_is_of(&ref, tag_secret, other));       /* wrong worker */
  assert_true(proj_award_revoke_id(id, rid));
  assert_string_equal(rid, "award-revoke:CC:a5a5a5a5a5a5a5a5:0");
  proj_award_id_legacy("CC", hex_a, 3, id);
  assert_string_equal(id, "award:CC:a5a5a5a5a5a5a5a5:g3");
  assert_true(proj_award_id_parse(id, &ref));
  assert_int_equal(ref.gen, 3);
  assert_true(proj_award_revoke_id(id, rid));
  assert_string_equal(rid, "award-revoke:CC:a5a5a5a5a5a5a5a5:3");

  /* keyed: BLAKE2b-128 keyed with the secret over "carepass/award/v1\n" CC "\n" pseudonym gen(8 BE);
   * the vectors were computed apart from carepass (Python nacl.hash.blake2b) */
  proj_award_id(tag_secret, "CC", worker_a, 0, id);
  assert_string_equal(id, "award:CC:kf34d3f2561a5986f8d23f19e966b90d7");
  assert_null(strstr(id, "a5a5"));   /* nothing of the pseudonym */
  assert_true(proj_award_id_parse(id, &ref));
  assert_string_equal(ref.code, "CC");
  assert_int_equal(ref.style, PROJ_AWARD_KEYED);
  assert_string_equal(ref.tag, "f34d3f2561a5986f8d23f19e966b90d7");
  assert_int_equal(ref.gen, 0);
  assert_true(proj_award_ref_is_of(&ref, tag_secret, worker_a));     /* right worker */
  assert_false(proj_award_ref_is_of(&ref, tag_secret, other));       /* wrong worker */
  unsigned char wrong_secret[CP_SECRET_BYTES];
  memcpy(wrong_secret, tag_secret, sizeof wrong_secret);
  wrong_secret[0] ^= 1;
  assert_false(proj_award_ref_is_of(&ref, wrong_secret, worker_a));  /* another deployment's key */
  assert_true(proj_award_revoke_id(id, rid));
  assert_string_equal(rid, "award-revoke:CC:kf34d3f2561a5986f8d23f19e966b90d7:0");
  proj_award_id(tag_secret, "CC", worker_a, 1, id);
  assert_string_equal(id, "award:CC:k2f2d47ae2b8af696fdc3e7df341dfc83:g1");   /* its own tag per generation */
  proj_award_id(tag_secret, "CC", worker_a, 3, id);
  assert_string_equal(id, "award:CC:ke3f89275821ac492f47968660e9f21df:g3");
  assert_true(proj_award_id_parse(id, &ref));
  assert_int_equal(ref.gen, 3);
  assert_true(proj_award_ref_is_of(&ref, tag_secret, worker_a));
  assert_true(proj_award_revoke_id(id, rid));
  assert_string_equal(rid, "award-revoke:CC:ke3f89275821ac492f47968660e9f21df:3");
  /* wrong generation: generation 0's tag with a ":g3" suffix is not this worker's award */
  assert_true(proj_award_id_parse("award:CC:kf34d3f2561a5986f8d23f19e966b90d7:g3", &ref));
  assert_false(proj_award_ref_is_of(&ref, tag_secret, worker_a));

  /* which id an award of a generation has: the recorded one when it is of that generation */
  char at[PROJ_AWARD_ID_MAX];
  proj_award_id(tag_secret, "CC", worker_a, 1, id);
  proj_award_id_at("CC", hex_a, id, 1, at);
  assert_string_equal(at, id);
  proj_award_id_at("CC", hex_a, id, 2, at);   /* recorded for another generation: legacy */
  assert_string_equal(at, "award:CC:a5a5a5a5a5a5a5a5:g2");
  proj_award_id_at("CC", hex_a, NULL, 0, at);
  assert_string_equal(at, "award:CC:a5a5a5a5a5a5a5a5");
  proj_award_id_at("CC", hex_a, "", 0, at);
  assert_string_equal(at, "award:CC:a5a5a5a5a5a5a5a5");
  proj_award_id_at("RF", hex_a, id, 1, at);   /* another code's */
  assert_string_equal(at, "award:RF:a5a5a5a5a5a5a5a5:g1");

  /* not award ids */
  const char *bad[] = {"award-revoke:CC:a5a5a5a5a5a5a5a5:3", "award:CC:a5a5a5a5a5a5a5a5:g0",
                       "award:CC:A5a5a5a5a5a5a5a5", "award:CC:a5a5a5a5a5a5a5a", "award:CC:a5a5a5a5a5a5a5a5x",
                       "award:CC:kf34d3f2561a5986f8d23f19e966b90d", "award:CC:kf34d3f2561a5986f8d23f19e966b90d7:g",
                       "award:CC:kf34d3f2561a5986f8d23f19e966b90d7:g1x", "award:CC:k", "award::a5a5a5a5a5a5a5a5",
                       "award:CC:kf34d3f2561a5986f8d23f19e966b90d7:g99999999999999999999999", "award:CC",
                       "PRV-0001:x", ""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_false(proj_award_id_parse(bad[i], &ref));
    assert_false(proj_award_revoke_id(bad[i], rid));
    assert_string_equal(rid, "");
  }
  assert_false(proj_award_id_parse(NULL, &ref));
}

int main(void) {
  if (access(REDIS_SERVER, X_OK) != 0) {
    fprintf(stderr, "test_projection: %s not found; install redis-server\n", REDIS_SERVER);
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  memset(worker_a, 0xa5, sizeof worker_a);
  cp_hex(worker_a, sizeof worker_a, hex_a);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_live_record_and_revocation, setup, teardown),
      cmocka_unit_test_setup_teardown(test_replay_award_state_legacy, setup, teardown),
      cmocka_unit_test_setup_teardown(test_replay_award_state_upgraded, setup, teardown),
      cmocka_unit_test_setup_teardown(test_replay_award_state_keyed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_withdraw_award_once, setup, teardown),
      cmocka_unit_test_setup_teardown(test_expiry_schedule, setup, teardown),
      cmocka_unit_test_setup_teardown(test_format_2_subjects, setup, teardown),
      cmocka_unit_test(test_award_ids),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
