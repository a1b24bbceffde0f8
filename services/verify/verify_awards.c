/* verify_awards.c -- derived awards: all 16 Care Certificate standards verified => the Care Certificate.
 *
 * Race-free without locks: every replica does, per passing standard,
 *   SADD cp:w:{hex}:cc <code>             (the set of required codes this worker has)
 *   SMISMEMBER cp:w:{hex}:cc <required...>  (are they all there now?)
 * and only when all are present
 *   SADD cp:w:{hex}:awards <award>         (returns 1 exactly once, to exactly one caller)
 * Redis runs each command atomically, so when the last two standards of a worker are
 * verified at the same moment by two replicas, at least one sees the full set, and
 * SADD ... awards lets exactly one of them issue the award.
 *
 * Revoking a required standard withdraws the award (verify_awards_revoke): the code leaves
 * cp:w:{hex}:cc, the award code leaves cp:w:{hex}:awards and the award's generation
 * (HASH cp:w:{hex}:award_gen) goes up by one, so completing the standard again issues a new
 * award under a new event id ("award:CC:<hex16>:g<gen>").
 *
 * Known limit: if verify dies between "SADD awards = 1" and pushing the award record, the
 * award is not re-issued by a redrive (SADD now returns 0); `carepass reindex` rebuilds it. */
#include "verify.h"
#include "cp_util.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AWARDS_PER_CODE 4   /* derived awards one code may count towards (CC needs 1) */

/* The worker's pseudonym as hex, or false when the event has none of the right size. */
static bool pseudonym_hex(const Carepass__V1__PendingEvent *ev, char hex[2 * CP_PSEUDONYM_BYTES + 1]) {
  if (ev->worker_pseudonym.len != CP_PSEUDONYM_BYTES || ev->worker_pseudonym.data == NULL)
    return false;
  cp_hex(ev->worker_pseudonym.data, CP_PSEUDONYM_BYTES, hex);
  return true;
}

/* Does item `it` take part in a derived award? Fills the award it counts towards. */
static const cat_qual_t *award_candidate(const verify_t *v, const verify_item_t *it) {
  if (it->state != VITEM_PASS || it->entry_type != CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_RECORD)
    return NULL;
  const cat_qual_t *aw[AWARDS_PER_CODE];
  size_t na = cat_awards_requiring(v->cat, it->ev->qualification_code, aw, AWARDS_PER_CODE);
  return na > 0 ? aw[0] : NULL;   /* one award per code is all the catalogue uses */
}

/* A Redis string or integer reply as an unsigned number; 0 for nil or anything else. */
static uint64_t reply_u64(const redisReply *r) {
  if (r == NULL)
    return 0;
  if (r->type == REDIS_REPLY_INTEGER)
    return r->integer > 0 ? (uint64_t)r->integer : 0;
  if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 20)
    return 0;
  char buf[24], *end = NULL;
  memcpy(buf, r->str, r->len);
  buf[r->len] = '\0';
  unsigned long long x = strtoull(buf, &end, 10);
  return (end != NULL && *end == '\0') ? (uint64_t)x : 0;
}

static int exec_pipeline(verify_t *v, redisReply ***rep, int *nrep) {
  *rep = NULL;
  *nrep = 0;
  return cp_redis_pipeline_exec(v->redis, rep, nrep);
}

int verify_awards_record(verify_t *v, verify_item_t *items, size_t n) {
  char hex[2 * CP_PSEUDONYM_BYTES + 1];
  char key[VERIFY_KEY_MAX];
  const cat_qual_t *cand[VERIFY_BATCH_MAX];
  bool complete[VERIFY_BATCH_MAX];
  assert(n <= VERIFY_BATCH_MAX);
  int queued = 0;

  /* Round 1: add each passing standard to the worker's set, then ask which requirements are present. */
  cp_redis_pipeline_begin(v->redis);
  for (size_t i = 0; i < n; i++) {
    items[i].award = NULL;
    complete[i] = false;
    cand[i] = award_candidate(v, &items[i]);
    if (cand[i] == NULL || !pseudonym_hex(items[i].ev, hex)) {
      cand[i] = NULL;
      continue;
    }
    /* the standard's code on its event, for a later revocation that names only the event id */
    cp_redis_append(v->redis, "HSET %s qcode %s", items[i].key, items[i].ev->qualification_code);
    snprintf(key, sizeof key, CP_KEY_W_CC_FMT, hex);
    cp_redis_append(v->redis, "SADD %s %s", key, items[i].ev->qualification_code);
    const cat_qual_t *aw = cand[i];
    size_t argc = 2 + aw->nrequires;
    const char **argv = cp_xcalloc(argc, sizeof *argv);
    argv[0] = "SMISMEMBER";
    argv[1] = key;
    for (size_t r = 0; r < aw->nrequires; r++)
      argv[2 + r] = aw->requires[r];
    cp_redis_append_argv(v->redis, (int)argc, argv, NULL);
    free(argv);
    queued += 3;
  }
  if (queued == 0)
    return 0;
  redisReply **rep;
  int nrep;
  if (exec_pipeline(v, &rep, &nrep) != 0)
    return -1;
  int k = 0;
  int nfull = 0;
  for (size_t i = 0; i < n; i++) {
    if (cand[i] == NULL)
      continue;
    k += 2;   /* HSET, then SADD reply: 0 or 1, either way we check membership (a redrive must still count) */
    const redisReply *m = rep[k++];
    if (m == NULL || m->type != REDIS_REPLY_ARRAY || m->elements != cand[i]->nrequires)
      continue;
    bool all = true;
    for (size_t r = 0; r < m->elements && all; r++)
      all = m->element[r]->type == REDIS_REPLY_INTEGER && m->element[r]->integer == 1;
    complete[i] = all;
    nfull += all;
  }
  cp_redis_replies_free(rep, nrep);
  if (nfull == 0)
    return 0;

  /* Round 2: the first SADD of the award code wins and issues it. */
  cp_redis_pipeline_begin(v->redis);
  for (size_t i = 0; i < n; i++) {
    if (!complete[i])
      continue;
    bool ok = pseudonym_hex(items[i].ev, hex);
    assert(ok);
    (void)ok;
    snprintf(key, sizeof key, CP_KEY_W_AWARDS_FMT, hex);
    cp_redis_append(v->redis, "SADD %s %s", key, cand[i]->code);
    snprintf(key, sizeof key, VERIFY_KEY_W_AWARD_GEN_FMT, hex);
    cp_redis_append(v->redis, "HGET %s %s", key, cand[i]->code);
  }
  if (exec_pipeline(v, &rep, &nrep) != 0)
    return -1;
  k = 0;
  for (size_t i = 0; i < n; i++) {
    if (!complete[i])
      continue;
    const redisReply *a = rep[k++];
    const redisReply *g = rep[k++];
    if (a != NULL && a->type == REDIS_REPLY_INTEGER && a->integer == 1) {
      items[i].award = cand[i];
      items[i].award_gen = reply_u64(g);
    }
  }
  cp_redis_replies_free(rep, nrep);
  return 0;
}

/* The award's event id for generation `gen` ("award:<code>:<hex16>", then ":g<gen>"). */
static void award_id(const char *code, const char *hex, uint64_t gen, char idbuf[VERIFY_AWARD_ID_MAX]) {
  if (gen == 0)
    snprintf(idbuf, VERIFY_AWARD_ID_MAX, "award:%s:%.16s", code, hex);
  else
    snprintf(idbuf, VERIFY_AWARD_ID_MAX, "award:%s:%.16s:g%" PRIu64, code, hex, gen);
}

/* The event id withdrawing generation `gen` of an award. */
static void award_revoke_id(const char *code, const char *hex, uint64_t gen, char idbuf[VERIFY_AWARD_ID_MAX]) {
  snprintf(idbuf, VERIFY_AWARD_ID_MAX, "award-revoke:%s:%.16s:%" PRIu64, code, hex, gen);
}

void verify_award_event(const Carepass__V1__PendingEvent *src, const cat_qual_t *award, uint64_t gen,
                        char idbuf[VERIFY_AWARD_ID_MAX], Carepass__V1__PendingEvent *out) {
  assert(src != NULL && award != NULL && out != NULL);
  char hex[2 * CP_PSEUDONYM_BYTES + 1] = "";
  if (!pseudonym_hex(src, hex))
    assert(!"award for an event without a pseudonym");
  award_id(award->code, hex, gen, idbuf);
  Carepass__V1__PendingEvent init = CAREPASS__V1__PENDING_EVENT__INIT;
  *out = init;
  out->provider_id = (char *)VERIFY_AWARD_PROVIDER;
  out->provider_event_id = idbuf;
  out->worker_pseudonym = src->worker_pseudonym;   /* shares the source's bytes */
  out->qualification_code = (char *)award->code;
  /* The award dates from the standard that completed the set. */
  out->completion_date = src->completion_date;
  out->assessor_id = (char *)"";
  out->kind = CAREPASS__V1__EVENT_KIND__EVENT_KIND_COMPLETION;
  out->received_at = cp_now_ms();
  out->reply_to = (char *)"";
}

void verify_award_revocation_event(const Carepass__V1__PendingEvent *src, const cat_qual_t *award,
                                   uint64_t gen, char idbuf[VERIFY_AWARD_ID_MAX],
                                   char revbuf[VERIFY_AWARD_ID_MAX], Carepass__V1__PendingEvent *out) {
  assert(src != NULL && award != NULL && out != NULL);
  char hex[2 * CP_PSEUDONYM_BYTES + 1] = "";
  if (!pseudonym_hex(src, hex))
    assert(!"award revocation for an event without a pseudonym");
  award_revoke_id(award->code, hex, gen, idbuf);
  award_id(award->code, hex, gen, revbuf);
  Carepass__V1__PendingEvent init = CAREPASS__V1__PENDING_EVENT__INIT;
  *out = init;
  out->provider_id = (char *)VERIFY_AWARD_PROVIDER;
  out->provider_event_id = idbuf;
  out->worker_pseudonym = src->worker_pseudonym;   /* shares the source's bytes */
  out->qualification_code = (char *)award->code;
  out->completion_date = src->completion_date;
  out->assessor_id = (char *)"";
  out->kind = CAREPASS__V1__EVENT_KIND__EVENT_KIND_REVOCATION;
  out->revokes_event_id = revbuf;
  out->revocation_reason = (char *)VERIFY_AWARD_REVOKE_REASON;
  out->received_at = cp_now_ms();
  out->reply_to = (char *)"";
}

/* The code of the record a revocation withdraws: as verify stored it when it passed the record,
 * else (records from before that, or rebuilt by reindex) the code the revocation names. */
static const char *revoked_code(const verify_item_t *it) {
  if (it->revoked_code[0] != '\0')
    return it->revoked_code;
  return it->ev->qualification_code != NULL ? it->ev->qualification_code : "";
}

/* Does passing revocation `it` withdraw a code a derived award requires? */
static const cat_qual_t *revoke_candidate(const verify_t *v, const verify_item_t *it) {
  if (it->state != VITEM_PASS || it->entry_type != CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION)
    return NULL;
  const cat_qual_t *aw[AWARDS_PER_CODE];
  size_t na = cat_awards_requiring(v->cat, revoked_code(it), aw, AWARDS_PER_CODE);
  return na > 0 ? aw[0] : NULL;
}

/* Withdraw generation ARGV[2] of award ARGV[1] once: only while the generation is still that one
 * (a missing field is generation 0) does it go up by one and the award code leave the set.
 * KEYS[1] cp:w:{hex}:award_gen, KEYS[2] cp:w:{hex}:awards (one hash slot). */
static const char WITHDRAW_AWARD[] =
    "local g = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') "
    "if g == tonumber(ARGV[2]) then "
    "  redis.call('HINCRBY', KEYS[1], ARGV[1], 1) "
    "  redis.call('SREM', KEYS[2], ARGV[1]) "
    "  return 1 "
    "end "
    "return 0";

int verify_awards_revoke(verify_t *v, verify_item_t *items, size_t n) {
  char hex[2 * CP_PSEUDONYM_BYTES + 1];
  char key[VERIFY_KEY_MAX], id[VERIFY_AWARD_ID_MAX];
  const cat_qual_t *cand[VERIFY_BATCH_MAX];
  bool member[VERIFY_BATCH_MAX];
  uint64_t gen[VERIFY_BATCH_MAX];
  assert(n <= VERIFY_BATCH_MAX);
  int queued = 0;

  /* Round 1: is the award held now, and at which generation? */
  cp_redis_pipeline_begin(v->redis);
  for (size_t i = 0; i < n; i++) {
    items[i].award_revoke = NULL;
    cand[i] = revoke_candidate(v, &items[i]);
    if (cand[i] == NULL || !pseudonym_hex(items[i].ev, hex)) {
      cand[i] = NULL;
      continue;
    }
    snprintf(key, sizeof key, CP_KEY_W_AWARDS_FMT, hex);
    cp_redis_append(v->redis, "SISMEMBER %s %s", key, cand[i]->code);
    snprintf(key, sizeof key, VERIFY_KEY_W_AWARD_GEN_FMT, hex);
    cp_redis_append(v->redis, "HGET %s %s", key, cand[i]->code);
    queued += 2;
  }
  if (queued == 0)
    return 0;
  redisReply **rep;
  int nrep;
  if (exec_pipeline(v, &rep, &nrep) != 0)
    return -1;
  int k = 0;
  for (size_t i = 0; i < n; i++) {
    if (cand[i] == NULL)
      continue;
    const redisReply *m = rep[k++];
    member[i] = m != NULL && m->type == REDIS_REPLY_INTEGER && m->integer == 1;
    gen[i] = reply_u64(rep[k++]);
  }
  cp_redis_replies_free(rep, nrep);

  /* Round 2: the award's event, and whether its withdrawal is already on the register. When the
   * award is no longer held but an earlier generation exists, this may be a redrive after the
   * withdrawal was recorded in Redis but before it was sent: look at that generation again. */
  cp_redis_pipeline_begin(v->redis);
  for (size_t i = 0; i < n; i++) {
    if (cand[i] == NULL)
      continue;
    bool ok = pseudonym_hex(items[i].ev, hex);
    assert(ok);
    (void)ok;
    if (!member[i] && gen[i] > 0)
      gen[i]--;
    award_id(cand[i]->code, hex, gen[i], id);
    snprintf(key, sizeof key, CP_KEY_EVENT_FMT, VERIFY_AWARD_PROVIDER, id);
    cp_redis_append(v->redis, "HMGET %s state index revoked_by", key);
    award_revoke_id(cand[i]->code, hex, gen[i], id);
    snprintf(key, sizeof key, CP_KEY_EVENT_FMT, VERIFY_AWARD_PROVIDER, id);
    cp_redis_append(v->redis, "HGET %s state", key);
  }
  if (exec_pipeline(v, &rep, &nrep) != 0)
    return -1;
  k = 0;
  bool withdraw[VERIFY_BATCH_MAX];
  for (size_t i = 0; i < n; i++) {
    withdraw[i] = false;
    if (cand[i] == NULL)
      continue;
    const redisReply *a = rep[k++];
    const redisReply *rs = rep[k++];
    bool ok = pseudonym_hex(items[i].ev, hex);
    assert(ok);
    (void)ok;
    award_revoke_id(cand[i]->code, hex, gen[i], id);
    if (a == NULL || a->type != REDIS_REPLY_ARRAY || a->elements != 3)
      continue;
    const redisReply *st = a->element[0], *ix = a->element[1], *by = a->element[2];
    bool committed = st->type == REDIS_REPLY_STRING && st->len == 9 && memcmp(st->str, "committed", 9) == 0;
    uint64_t index = reply_u64(ix);
    bool by_none = by->type != REDIS_REPLY_STRING || by->len == 0;
    bool by_us = by->type == REDIS_REPLY_STRING && strlen(id) == by->len && memcmp(by->str, id, by->len) == 0;
    bool sent = rs != NULL && rs->type == REDIS_REPLY_STRING && rs->len == 9 && memcmp(rs->str, "committed", 9) == 0;
    if (!committed || ix->type != REDIS_REPLY_STRING || sent)
      continue;
    if ((member[i] && (by_none || by_us)) || (!member[i] && by_us)) {
      withdraw[i] = member[i];
      items[i].award_revoke = cand[i];
      items[i].award_revoke_gen = gen[i];
      items[i].award_revoke_index = index;
    }
  }
  cp_redis_replies_free(rep, nrep);

  /* Round 3: the code leaves the worker's set; a held award is marked withdrawn and its generation
   * moves on (once, however many replicas or redrives get here). */
  cp_redis_pipeline_begin(v->redis);
  for (size_t i = 0; i < n; i++) {
    if (cand[i] == NULL)
      continue;
    bool ok = pseudonym_hex(items[i].ev, hex);
    assert(ok);
    (void)ok;
    snprintf(key, sizeof key, CP_KEY_W_CC_FMT, hex);
    cp_redis_append(v->redis, "SREM %s %s", key, revoked_code(&items[i]));
    if (!withdraw[i])
      continue;
    award_id(cand[i]->code, hex, gen[i], id);
    snprintf(key, sizeof key, CP_KEY_EVENT_FMT, VERIFY_AWARD_PROVIDER, id);
    award_revoke_id(cand[i]->code, hex, gen[i], id);
    cp_redis_append(v->redis, "HSETNX %s revoked_by %s", key, id);
    char gkey[VERIFY_KEY_MAX], akey[VERIFY_KEY_MAX], g[24];
    snprintf(gkey, sizeof gkey, VERIFY_KEY_W_AWARD_GEN_FMT, hex);
    snprintf(akey, sizeof akey, CP_KEY_W_AWARDS_FMT, hex);
    snprintf(g, sizeof g, "%" PRIu64, gen[i]);
    const char *argv[] = {"EVAL", WITHDRAW_AWARD, "2", gkey, akey, cand[i]->code, g};
    cp_redis_append_argv(v->redis, 7, argv, NULL);
  }
  if (exec_pipeline(v, &rep, &nrep) != 0)
    return -1;
  cp_redis_replies_free(rep, nrep);
  return 0;
}
