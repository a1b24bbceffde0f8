/* verify_awards.c -- derived awards: all 16 Care Certificate standards verified => the Care Certificate.
 *
 * Race-free without locks: every replica does, per passing standard,
 *   SADD cp:w:{hex}:cc <code>             (the set of required codes this worker has)
 *   SMISMEMBER cp:w:{hex}:cc <required...>  (are they all there now?)
 *   HGET cp:w:{hex}:award_gen <award>      (the generation an award would have now)
 * and only when all are present, in one Lua call (ISSUE_AWARD),
 *   SADD cp:w:{hex}:awards <award>         (adds exactly once, for exactly one caller)
 * which, in the same step, records the award as a pending event of its own, exactly as intake
 * records a provider's event: cp:ev:{carepass:award:...} state accepted with its PendingEvent
 * bytes and the standard that completed it (field src), and a cp:pending entry. Redis runs each
 * command and script atomically, so when the last two standards of a worker are verified at the
 * same moment by two replicas, at least one sees the full set and exactly one issues the award.
 *
 * Durability: if verify dies between that step and pushing the award record, intake's redrive
 * re-sends the award's pending event to verify like any other; verify_awards_redrive passes it
 * to the signer (which de-duplicates by event id) once the standard that completed the set is
 * committed, while the worker still holds the award at that generation. The signer's commit
 * makes the award's event final and takes it out of cp:pending.
 *
 * Revoking a required standard withdraws the award (verify_awards_revoke): the code leaves
 * cp:w:{hex}:cc, the award code leaves cp:w:{hex}:awards and the award's generation
 * (HASH cp:w:{hex}:award_gen) goes up by one, so completing the standard again issues a new
 * award under a new event id ("award:CC:k<tag>:g<gen>", the tag keyed per generation, see
 * cp_projection.h). This holds for provider revocations
 * and for operator revocations (`carepass revoke`, provider "carepass-operator"), which come
 * through verify too. An operator revocation of the award itself withdraws it the same way.
 *
 * Test hook (off by default): CAREPASS_TEST_CRASH_POINT=verify.award_claimed:<n> SIGKILLs
 * verify right after the n-th round that issued an award, before anything is sent (the same
 * variable and <name>:<n> form as the register writer's crash points, see cp_register.h).
 *
 * Late withdrawals: a standard revoked while its award is issued but not yet committed (sent to
 * the signer, or waiting for a redrive) cannot send the award's revocation yet, which needs the
 * award's register index. verify_awards_revoke then withdraws the award in Redis all the same
 * (revoked_by on the award's event, generation +1, code out of cp:w:{hex}:awards) and records the
 * withdrawal in HASH cp:award_wd (field "<code>:<gen>:<hex>", see cp_keys.h), last in its pipeline.
 * The award still goes onto the register (it may be in the signer's queue already; a redrive of it
 * passes too, see verify_awards_redrive), and verify's periodic tick (verify_withdraw.c) sends its
 * revocation, with the same event id and reason as above, once it is committed. A crash anywhere in
 * between is covered: the standard's revocation is not sent before the record is written, so its
 * redrive comes back here and writes the record again (HSETNX, idempotent). `carepass reindex`
 * rebuilds the same record from the register (an award, then a revocation of a standard it
 * requires, without the award's revocation), see tools/carepass/cmd_reindex.c.
 *
 * Award ids: issuing makes the keyed id (proj_award_id, AWARD_TAG_SECRET); every later reference
 * uses the id the award has, because awards issued before keyed ids carry the legacy
 * "award:<code>:<hex16>[:g<gen>]" and stay on the register. issue_award records the id in
 * cp:w:{hex}:award_gen "<code>:last" (the replay's award_held writes the same, common/projection.c);
 * a withdrawal of generation g takes "<code>:last" when it is of generation g, else the legacy id
 * (proj_award_id_at: an award from before the upgrade left no "<code>:last"), and writes that id
 * into the late-withdrawal record (third token). A revocation's id follows from the award's id by
 * one rule (proj_award_revoke_id). A redriven or revoked award id is taken as this worker's only
 * when proj_award_ref_is_of says so (legacy: its hex16 is the pseudonym's; keyed: its tag is the
 * worker's keyed tag for that code and generation). */
#include "verify.h"
#include "cp_crash.h"
#include "cp_codec.h"
#include "cp_dates.h"
#include "cp_log.h"
#include "cp_projection.h"
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

/* The pseudonym of an item already found to have one (a candidate of an earlier round). */
static void known_pseudonym_hex(const Carepass__V1__PendingEvent *ev, char hex[2 * CP_PSEUDONYM_BYTES + 1]) {
  bool ok = pseudonym_hex(ev, hex);
  assert(ok);
  (void)ok;
}

/* Does item `it` take part in a derived award? Fills the award it counts towards. */
static const cat_qual_t *award_candidate(const verify_t *v, const verify_item_t *it) {
  if (it->state != VITEM_PASS || it->entry_type != CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_RECORD)
    return NULL;
  const cat_qual_t *aw[AWARDS_PER_CODE];
  size_t na = cat_awards_requiring(v->cat, it->ev->qualification_code, aw, AWARDS_PER_CODE);
  return na > 0 ? aw[0] : NULL;   /* one award per code is all the catalogue uses */
}

/* Issue an award once. KEYS[1] cp:w:{hex}:awards, KEYS[2] cp:w:{hex}:award_gen, KEYS[3] the award's
 * cp:ev key, KEYS[4] cp:pending; ARGV[1] award code, ARGV[2] the generation the caller read,
 * ARGV[3] the award's PendingEvent bytes, ARGV[4] now (unix ms), ARGV[5] redrive time,
 * ARGV[6] pending member "carepass:<award id>", ARGV[7] the completing standard's cp:ev key,
 * ARGV[8] the award id, which becomes "<code>:last" in KEYS[2] (the id a withdrawal of this
 * generation names; the replay's award_held writes it too, so live and rebuilt state match).
 * 1 = issued (send it), 0 = not for this caller: held already, or the generation moved on (a
 * revocation withdrew it meanwhile, so the set is not complete any more). An award id already
 * committed is only put back in the set (it is on the register). Like intake's claim, it
 * touches cp:pending with per-entity keys (not Redis Cluster-ready, see cp_keys.h). */
static cp_redis_script_t issue_award = CP_REDIS_SCRIPT("issue award", 4,
    "local g = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0') "
    "if g ~= tonumber(ARGV[2]) then return 0 end "
    "if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end "
    "redis.call('HSET', KEYS[2], ARGV[1] .. ':last', ARGV[8]) "
    "if redis.call('HGET', KEYS[3], 'state') == 'committed' then return 0 end "
    "redis.call('HDEL', KEYS[3], 'reason', 'msg') "
    "redis.call('HSET', KEYS[3], 'state', 'accepted', 'pending', ARGV[3], 't', ARGV[4], 'src', ARGV[7]) "
    "redis.call('ZADD', KEYS[4], ARGV[5], ARGV[6]) "
    "return 1");

int verify_awards_record(verify_t *v, verify_item_t *items, size_t n) {
  char hex[2 * CP_PSEUDONYM_BYTES + 1];
  cp_key_t key;
  const cat_qual_t *cand[VERIFY_BATCH_MAX];
  bool complete[VERIFY_BATCH_MAX];
  uint64_t gen[VERIFY_BATCH_MAX];
  cp_redis_handle_t have[VERIFY_BATCH_MAX], genh[VERIFY_BATCH_MAX];
  assert(n <= VERIFY_BATCH_MAX);
  int rc = 0;
  cp_redis_pipe_t *p = cp_redis_pipe_new();

  /* Round 1: add each passing standard to the worker's set, then ask which requirements are present. */
  for (size_t i = 0; i < n; i++) {
    items[i].award = NULL;
    complete[i] = false;
    cand[i] = award_candidate(v, &items[i]);
    if (cand[i] == NULL || !pseudonym_hex(items[i].ev, hex)) {
      cand[i] = NULL;
      continue;
    }
    /* its code on its event and in the worker's set; SADD's reply (0 or 1) does not matter:
     * membership is asked either way (a redrive must still count) */
    proj_standard_held(p, items[i].key, hex, items[i].ev->qualification_code);
    cp_key_w_cc(&key, hex);
    const cat_qual_t *aw = cand[i];
    have[i] = cp_redis_pipe_start(p, NULL);
    cp_redis_pipe_arg(p, "SMISMEMBER");
    cp_redis_pipe_arg(p, key.s);
    for (size_t r = 0; r < aw->nrequires; r++)
      cp_redis_pipe_arg(p, aw->requires[r]);
    genh[i] = cp_redis_pipe_cmd(p, "HGET %s %s", cp_key_w_award_gen(&key, hex), aw->code);
  }
  if (cp_redis_pipe_count(p) == 0)
    goto out;
  if (cp_redis_pipe_exec(p, v->redis) != 0) {
    rc = -1;
    goto out;
  }
  int nfull = 0;
  for (size_t i = 0; i < n; i++) {
    if (cand[i] == NULL)
      continue;
    const redisReply *m = cp_redis_reply_array(cp_redis_pipe_reply(p, have[i]), cand[i]->nrequires);
    gen[i] = cp_redis_reply_u64(cp_redis_pipe_reply(p, genh[i]));
    if (m == NULL)
      continue;
    bool all = true;
    for (size_t r = 0; r < m->elements && all; r++)
      all = cp_redis_reply_is_int(m->element[r], 1);
    complete[i] = all;
    nfull += all;
  }
  if (nfull == 0)
    goto out;

  /* Round 2: the first SADD of the award code wins and issues it; the award is recorded as a
   * pending event in the same step (issue_award), so a crash before it is sent loses nothing. */
  char now_s[24], due_s[24];
  int64_t now = cp_now_ms();
  snprintf(now_s, sizeof now_s, "%" PRId64, now);
  snprintf(due_s, sizeof due_s, "%" PRId64, now + v->redrive_after_ms);
  cp_redis_handle_t claim[VERIFY_BATCH_MAX];
  cp_redis_pipe_reset(p);
  for (size_t i = 0; i < n; i++) {
    if (!complete[i])
      continue;
    known_pseudonym_hex(items[i].ev, hex);
    Carepass__V1__PendingEvent aev;
    char id[VERIFY_AWARD_ID_MAX], g[24];
    cp_key_t akey, gkey, evkey, member;
    verify_award_event(v->award_secret, items[i].ev, cand[i], gen[i], id, &aev);
    uint8_t *packed = NULL;
    size_t plen = 0;
    if (cp_pb_pack(&aev.base, &packed, &plen) != 0)
      abort();   /* out of memory */
    snprintf(g, sizeof g, "%" PRIu64, gen[i]);
    const char *argv[] = {cp_key_w_awards(&akey, hex), cp_key_w_award_gen(&gkey, hex),
                          cp_key_event(&evkey, VERIFY_AWARD_PROVIDER, id), cp_key_pending(), cand[i]->code, g,
                          (const char *)packed, now_s, due_s,
                          cp_key_pending_member(&member, VERIFY_AWARD_PROVIDER, id), items[i].key, id};
    size_t len[CP_ARRAY_LEN(argv)];
    for (size_t a = 0; a < CP_ARRAY_LEN(argv); a++)
      len[a] = a == 6 ? plen : strlen(argv[a]);   /* argv[6] is binary */
    claim[i] = cp_redis_pipe_script(p, &issue_award, (int)CP_ARRAY_LEN(argv), argv, len);
    free(packed);
  }
  if (cp_redis_pipe_exec(p, v->redis) != 0) {
    rc = -1;
    goto out;
  }
  bool issued = false;
  for (size_t i = 0; i < n; i++) {
    if (!complete[i])
      continue;
    const redisReply *a = cp_redis_pipe_reply(p, claim[i]);
    if (cp_redis_reply_is_int(a, 1)) {
      items[i].award = cand[i];
      items[i].award_gen = gen[i];
      issued = true;
    } else if (cp_redis_reply_is_error(a)) {
      cp_log_error("redis: award claim failed", CP_KV_STR("error", a->str), CP_KV_END);
    }
  }
  cp_redis_pipe_destroy(&p);
  if (issued)
    cp_test_crash_point(VERIFY_CRASH_AWARD_CLAIMED);
  return 0;
out:
  cp_redis_pipe_destroy(&p);
  return rc;
}

_Static_assert(VERIFY_AWARD_ID_MAX == PROJ_AWARD_ID_MAX, "one size for award ids");

/* What an award's events have in common: carepass's provider id, the event id idbuf, the worker
 * and date of the standard src (the award dates from the standard that completed the set). */
static void award_event_init(const Carepass__V1__PendingEvent *src, const cat_qual_t *award, char *idbuf,
                             Carepass__V1__EventKind kind, Carepass__V1__PendingEvent *out) {
  Carepass__V1__PendingEvent init = CAREPASS__V1__PENDING_EVENT__INIT;
  *out = init;
  out->provider_id = (char *)VERIFY_AWARD_PROVIDER;
  out->provider_event_id = idbuf;
  out->worker_pseudonym = src->worker_pseudonym;   /* shares the source's bytes */
  out->qualification_code = (char *)award->code;
  out->completion_date = src->completion_date;
  out->assessor_id = (char *)"";
  out->kind = kind;
  out->received_at = cp_now_ms();
  out->reply_to = (char *)"";
}

void verify_award_event(const unsigned char secret[CP_SECRET_BYTES], const Carepass__V1__PendingEvent *src,
                        const cat_qual_t *award, uint64_t gen, char idbuf[VERIFY_AWARD_ID_MAX],
                        Carepass__V1__PendingEvent *out) {
  assert(secret != NULL && src != NULL && award != NULL && out != NULL);
  assert(src->worker_pseudonym.len == CP_PSEUDONYM_BYTES && src->worker_pseudonym.data != NULL);
  proj_award_id(secret, award->code, src->worker_pseudonym.data, gen, idbuf);
  award_event_init(src, award, idbuf, CAREPASS__V1__EVENT_KIND__EVENT_KIND_COMPLETION, out);
}

int verify_award_revocation_event(const Carepass__V1__PendingEvent *src, const cat_qual_t *award,
                                  const char *award_id, char idbuf[VERIFY_AWARD_ID_MAX],
                                  char revbuf[VERIFY_AWARD_ID_MAX], Carepass__V1__PendingEvent *out) {
  assert(src != NULL && award != NULL && award_id != NULL && out != NULL);
  proj_award_ref_t ref;
  if (!proj_award_id_parse(award_id, &ref) || strcmp(ref.code, award->code) != 0 ||
      strlen(award_id) >= VERIFY_AWARD_ID_MAX || !proj_award_revoke_id(award_id, idbuf))
    return -1;
  snprintf(revbuf, VERIFY_AWARD_ID_MAX, "%s", award_id);
  award_event_init(src, award, idbuf, CAREPASS__V1__EVENT_KIND__EVENT_KIND_REVOCATION, out);
  out->revokes_event_id = revbuf;
  out->revocation_reason = (char *)VERIFY_AWARD_REVOKE_REASON;
  return 0;
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

/* Queue the reads of a worker's award: held (SISMEMBER of the awards set), and its generation and
 * the id of the last award issued for the code (HMGET of the generation hash: <code>, <code>:last;
 * read by award_gen_reply). */
static void queue_award_state(cp_redis_pipe_t *p, const char *hex, const char *code, cp_redis_handle_t *held,
                              cp_redis_handle_t *gen) {
  cp_key_t key;
  *held = cp_redis_pipe_cmd(p, "SISMEMBER %s %s", cp_key_w_awards(&key, hex), code);
  *gen = cp_redis_pipe_cmd(p, "HMGET %s %s %s:last", cp_key_w_award_gen(&key, hex), code, code);
}

/* The generation (0 when unset) and the "<code>:last" id ("" when unset: no award issued since
 * keyed ids, or an odd value) of queue_award_state's HMGET reply. */
static uint64_t award_gen_reply(const redisReply *r, char last[VERIFY_AWARD_ID_MAX]) {
  const redisReply *a = cp_redis_reply_array(r, 2);
  last[0] = '\0';
  if (a == NULL)
    return 0;
  if (!cp_redis_reply_copy(a->element[1], last, VERIFY_AWARD_ID_MAX))
    last[0] = '\0';
  return cp_redis_reply_u64(a->element[0]);
}

/* Passing revocations of a derived award itself (an operator's `carepass revoke` of the award's
 * index): the award leaves the worker's set and its generation moves past the revoked one, as
 * `carepass reindex` rebuilds it, so the award can be earned again under a new id. */
static int withdraw_revoked_awards(verify_t *v, const verify_item_t *items, size_t n) {
  char hex[2 * CP_PSEUDONYM_BYTES + 1], tprov[64];
  cp_redis_pipe_t *p = cp_redis_pipe_new();
  for (size_t i = 0; i < n; i++) {
    const verify_item_t *it = &items[i];
    const char *tevent;
    proj_award_ref_t ref;
    if (it->state != VITEM_PASS || it->entry_type != CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION ||
        !verify_revocation_target(it->ev, tprov, sizeof tprov, &tevent) ||
        strcmp(tprov, VERIFY_AWARD_PROVIDER) != 0 || !proj_award_id_parse(tevent, &ref) ||
        !pseudonym_hex(it->ev, hex) || !proj_award_ref_is_of(&ref, v->award_secret, it->ev->worker_pseudonym.data))
      continue;
    (void)proj_withdraw_award(p, hex, ref.code, ref.gen);
  }
  int rc = cp_redis_pipe_exec(p, v->redis);
  cp_redis_pipe_destroy(&p);
  return rc;
}

int verify_awards_revoke(verify_t *v, verify_item_t *items, size_t n) {
  if (withdraw_revoked_awards(v, items, n) != 0)
    return -1;
  char hex[2 * CP_PSEUDONYM_BYTES + 1];
  char id[VERIFY_AWARD_ID_MAX], last[VERIFY_AWARD_ID_MAX];
  cp_key_t key;
  const cat_qual_t *cand[VERIFY_BATCH_MAX];
  bool member[VERIFY_BATCH_MAX];
  uint64_t gen[VERIFY_BATCH_MAX];
  cp_redis_handle_t h1[VERIFY_BATCH_MAX], h2[VERIFY_BATCH_MAX];
  assert(n <= VERIFY_BATCH_MAX);
  int rc = 0;
  cp_redis_pipe_t *p = cp_redis_pipe_new();

  /* Round 1: is the award held now, and at which generation? */
  for (size_t i = 0; i < n; i++) {
    items[i].award_revoke = NULL;
    items[i].award_revoke_id[0] = '\0';
    cand[i] = revoke_candidate(v, &items[i]);
    if (cand[i] == NULL || !pseudonym_hex(items[i].ev, hex)) {
      cand[i] = NULL;
      continue;
    }
    queue_award_state(p, hex, cand[i]->code, &h1[i], &h2[i]);
  }
  if (cp_redis_pipe_count(p) == 0)
    goto out;
  if (cp_redis_pipe_exec(p, v->redis) != 0) {
    rc = -1;
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    if (cand[i] == NULL)
      continue;
    member[i] = cp_redis_reply_is_int(cp_redis_pipe_reply(p, h1[i]), 1);
    gen[i] = award_gen_reply(cp_redis_pipe_reply(p, h2[i]), last);
    /* the last award's id, until round 2 knows which generation it looks at */
    snprintf(items[i].award_revoke_id, sizeof items[i].award_revoke_id, "%s", last);
  }

  /* Round 2: the award's event, and whether its withdrawal is already on the register. When the
   * award is no longer held but an earlier generation exists, this may be a redrive after the
   * withdrawal was recorded in Redis but before it was sent: look at that generation again.
   * The award looked at is "<code>:last" when that is of this generation, else the legacy id
   * (proj_award_id_at): it stays in item->award_revoke_id for the rest of this function and for
   * the revocation send_award_revocation builds. */
  cp_redis_pipe_reset(p);
  for (size_t i = 0; i < n; i++) {
    if (cand[i] == NULL)
      continue;
    known_pseudonym_hex(items[i].ev, hex);
    if (!member[i] && gen[i] > 0)
      gen[i]--;
    snprintf(last, sizeof last, "%s", items[i].award_revoke_id);
    proj_award_id_at(cand[i]->code, hex, last, gen[i], items[i].award_revoke_id);
    h1[i] = cp_redis_pipe_cmd(p, "HMGET %s state index revoked_by",
                              cp_key_event(&key, VERIFY_AWARD_PROVIDER, items[i].award_revoke_id));
    if (!proj_award_revoke_id(items[i].award_revoke_id, id))
      abort();   /* proj_award_id_at only gives award ids */
    h2[i] = cp_redis_pipe_cmd(p, "HGET %s state", cp_key_event(&key, VERIFY_AWARD_PROVIDER, id));
  }
  if (cp_redis_pipe_exec(p, v->redis) != 0) {
    rc = -1;
    goto out;
  }
  bool withdraw[VERIFY_BATCH_MAX], late[VERIFY_BATCH_MAX];
  for (size_t i = 0; i < n; i++) {
    withdraw[i] = false;
    late[i] = false;
    if (cand[i] == NULL)
      continue;
    const redisReply *a = cp_redis_reply_array(cp_redis_pipe_reply(p, h1[i]), 3);
    const redisReply *rs = cp_redis_pipe_reply(p, h2[i]);
    if (!proj_award_revoke_id(items[i].award_revoke_id, id))
      abort();   /* an award id since round 2 */
    if (a == NULL)
      continue;
    const redisReply *st = a->element[0], *ix = a->element[1], *by = a->element[2];
    bool committed = cp_redis_reply_is_str(st, "committed");
    uint64_t index = cp_redis_reply_u64(ix);
    bool by_none = by->type != REDIS_REPLY_STRING || by->len == 0;
    bool by_us = cp_redis_reply_is_str(by, id);
    if (cp_redis_reply_is_str(rs, "committed"))   /* its revocation is on the register already */
      continue;
    if (!committed) {
      /* Issued, not yet on the register: withdraw it now, send its revocation once it commits
       * (verify_withdraw.c). A redrive after the withdrawal (no longer held, revoked_by ours)
       * writes the record again, in case the first run stopped before it. */
      if (cp_redis_reply_is_str(st, "accepted") && ((member[i] && (by_none || by_us)) || (!member[i] && by_us))) {
        withdraw[i] = member[i];
        late[i] = true;
      }
      continue;
    }
    if (ix->type != REDIS_REPLY_STRING)
      continue;
    if ((member[i] && (by_none || by_us)) || (!member[i] && by_us)) {
      withdraw[i] = member[i];
      items[i].award_revoke = cand[i];
      items[i].award_revoke_index = index;
    }
  }

  /* Round 3: the code leaves the worker's set; a held award is marked withdrawn and its generation
   * moves on (once, however many replicas or redrives get here). */
  cp_redis_pipe_reset(p);
  for (size_t i = 0; i < n; i++) {
    if (cand[i] == NULL)
      continue;
    known_pseudonym_hex(items[i].ev, hex);
    (void)cp_redis_pipe_cmd(p, "SREM %s %s", cp_key_w_cc(&key, hex), revoked_code(&items[i]));
    if (!withdraw[i])
      continue;
    if (!proj_award_revoke_id(items[i].award_revoke_id, id))
      abort();   /* an award id since round 2 */
    (void)cp_redis_pipe_cmd(p, "HSETNX %s revoked_by %s",
                            cp_key_event(&key, VERIFY_AWARD_PROVIDER, items[i].award_revoke_id), id);
    (void)proj_withdraw_award(p, hex, cand[i]->code, gen[i]);
  }
  /* Last: the late withdrawals' records (after the withdrawal itself, see the header comment). */
  for (size_t i = 0; i < n; i++) {
    if (cand[i] == NULL || !late[i])
      continue;
    known_pseudonym_hex(items[i].ev, hex);
    /* "<sent ms> <date> <award id>": the id the award has, which verify_withdraw.c revokes (the
     * replay's standard_revoked writes the same value) */
    char val[32 + VERIFY_AWARD_ID_MAX];
    snprintf(val, sizeof val, "0 %.16s %s", items[i].ev->completion_date ? items[i].ev->completion_date : "",
             items[i].award_revoke_id);
    const char *argv[] = {"HSETNX", cp_key_award_wd(), cp_key_award_wd_field(&key, cand[i]->code, gen[i], hex), val};
    (void)cp_redis_pipe_argv(p, (int)CP_ARRAY_LEN(argv), argv, NULL);
    if (withdraw[i]) {
      v->counts.award_late_withdrawals++;
      cp_log_info("derived award withdrawn before it committed; its revocation follows the commit",
                  CP_KV_STR("award", cand[i]->code), CP_KV_STR("event", items[i].award_revoke_id), CP_KV_END);
    }
  }
  if (cp_redis_pipe_exec(p, v->redis) != 0) {
    rc = -1;
    goto out;
  }
out:
  cp_redis_pipe_destroy(&p);
  return rc;
}

/* A redriven award that must not be issued: stored as rejected by stage_write. */
static void reject_award(verify_item_t *it, const char *why) {
  it->state = VITEM_REJECT;
  it->res.reason = CP_R_NOT_SUBMITTABLE;
  snprintf(it->res.message, sizeof it->res.message, "Derived award event \"%.64s\" is not issued: %s.",
           it->ev->provider_event_id, why);
}

int verify_awards_redrive(verify_t *v, verify_item_t *items, size_t n) {
  char hex[2 * CP_PSEUDONYM_BYTES + 1], last[VERIFY_AWARD_ID_MAX];
  const cat_qual_t *aw[VERIFY_BATCH_MAX];
  uint64_t gen[VERIFY_BATCH_MAX];
  bool held[VERIFY_BATCH_MAX];
  char src[VERIFY_BATCH_MAX][VERIFY_KEY_MAX];
  cp_redis_handle_t hm[VERIFY_BATCH_MAX], hg[VERIFY_BATCH_MAX], hf[VERIFY_BATCH_MAX];
  assert(n <= VERIFY_BATCH_MAX);
  int rc = 0;
  cp_redis_pipe_t *p = cp_redis_pipe_new();

  /* Round 1: is it a well-formed award of this worker; is it still held at its generation? */
  for (size_t i = 0; i < n; i++) {
    verify_item_t *it = &items[i];
    aw[i] = NULL;
    if (!it->award_redrive || it->state != VITEM_PASS)
      continue;
    const cat_qual_t *q = NULL;
    proj_award_ref_t ref;
    /* either id style: an award issued before keyed ids may still be pending at the upgrade */
    if (!proj_award_id_parse(it->ev->provider_event_id, &ref) ||
        strcmp(ref.code, it->ev->qualification_code) != 0 || (q = cat_find(v->cat, ref.code)) == NULL ||
        !q->derived || !pseudonym_hex(it->ev, hex) ||
        !proj_award_ref_is_of(&ref, v->award_secret, it->ev->worker_pseudonym.data)) {
      reject_award(it, "not a derived award event of this worker");
      continue;
    }
    gen[i] = ref.gen;
    aw[i] = q;
    queue_award_state(p, hex, q->code, &hm[i], &hg[i]);
    hf[i] = cp_redis_pipe_cmd(p, "HMGET %s src revoked_by", it->key);
  }
  if (cp_redis_pipe_count(p) == 0)
    goto out;
  if (cp_redis_pipe_exec(p, v->redis) != 0) {
    rc = -1;
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    if (aw[i] == NULL)
      continue;
    uint64_t g = award_gen_reply(cp_redis_pipe_reply(p, hg[i]), last);
    const redisReply *f = cp_redis_reply_array(cp_redis_pipe_reply(p, hf[i]), 2);
    const redisReply *sr = f != NULL ? f->element[0] : NULL, *by = f != NULL ? f->element[1] : NULL;
    held[i] = cp_redis_reply_is_int(cp_redis_pipe_reply(p, hm[i]), 1) && g == gen[i];
    if (!held[i] && g > gen[i]) {
      /* withdrawn before it committed (verify_awards_revoke): it still goes onto the register,
       * and verify_withdraw.c sends its revocation after it */
      char rid[VERIFY_AWARD_ID_MAX];
      held[i] = proj_award_revoke_id(items[i].ev->provider_event_id, rid) && cp_redis_reply_is_str(by, rid);
    }
    if (!cp_redis_reply_copy(sr, src[i], VERIFY_KEY_MAX))
      src[i][0] = '\0';
  }

  /* Round 2: the award follows the standard that completed it onto the register. */
  cp_redis_pipe_reset(p);
  for (size_t i = 0; i < n; i++) {
    if (aw[i] == NULL || !held[i] || src[i][0] == '\0')
      continue;
    hf[i] = cp_redis_pipe_cmd(p, "HGET %s state", src[i]);
  }
  if (cp_redis_pipe_exec(p, v->redis) != 0) {
    rc = -1;
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    verify_item_t *it = &items[i];
    if (aw[i] == NULL)
      continue;
    if (!held[i]) {
      reject_award(it, "the worker no longer holds it at this generation");
      continue;
    }
    if (src[i][0] != '\0' && !cp_redis_reply_is_str(cp_redis_pipe_reply(p, hf[i]), "committed")) {
      it->state = VITEM_DROP;   /* still pending: the redrive brings it back after the standard */
      continue;
    }
    int32_t day;
    it->res.valid_until[0] = '\0';
    if (aw[i]->refresh_months > 0 && cp_date_parse(it->ev->completion_date, &day) == 0)
      verify_valid_until(aw[i], day, it->res.valid_until);
    v->counts.award_redrives++;
    cp_log_info("derived award re-sent", CP_KV_STR("award", aw[i]->code),
                CP_KV_STR("event", it->ev->provider_event_id), CP_KV_END);
  }
out:
  cp_redis_pipe_destroy(&p);
  return rc;
}
