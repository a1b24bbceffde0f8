/* verify_batch.c -- one batch of events: read their state from Redis, apply the rules,
 * store rejections (with their notices, in the outbox), then send records and results. */
#include "verify.h"
#include "cp_dates.h"
#include "cp_log.h"
#include "cp_outbox.h"
#include "cp_projection.h"
#include "cp_service.h"
#include "cp_util.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static bool parse_index(const char *s, uint64_t *out) {
  if (s[0] == '\0')
    return false;
  char *end = NULL;
  unsigned long long v = strtoull(s, &end, 10);
  if (end == NULL || *end != '\0')
    return false;
  *out = (uint64_t)v;
  return true;
}

static void set_reject(verify_item_t *it, cp_reason_t r, const char *fmt, ...) CP_PRINTF(3, 4);
static void set_reject(verify_item_t *it, cp_reason_t r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(it->res.message, sizeof it->res.message, fmt, ap);
  va_end(ap);
  it->state = VITEM_REJECT;
  it->res.reason = r;
}

/* Decide what happens to a revocation, given the stored state of the event it revokes
 * (NULL when it names none). Operator revocations follow the same rules: the named event must
 * be committed and not revoked by another event; no provider rule applies to them. */
static void decide_revocation(verify_item_t *it, const redisReply *target) {
  const Carepass__V1__PendingEvent *ev = it->ev;
  /* a consent's withdrawal has its own reason (decide_consent checked it); no provider may use it */
  if (strcmp(ev->provider_id, PROJ_CONSENT_PROVIDER) != 0 &&
      verify_check_revocation(ev->revocation_reason, &it->res) != CP_OK) {
    it->state = VITEM_REJECT;
    return;
  }
  char st[16], idx[24], by[80], tprov[64];
  const char *tevent = "";
  if (!verify_revocation_target(ev, tprov, sizeof tprov, &tevent)) {
    set_reject(it, CP_R_REVOKED_EVENT_UNKNOWN,
               "Operator revocation names no event (revokes_event_id must be \"<provider>:<event id>\").");
    return;
  }
  const redisReply *t = cp_redis_reply_array(target, 4);
  cp_redis_reply_str(t ? t->element[0] : NULL, st, sizeof st);
  cp_redis_reply_str(t ? t->element[1] : NULL, idx, sizeof idx);
  cp_redis_reply_str(t ? t->element[2] : NULL, by, sizeof by);
  cp_redis_reply_str(t ? t->element[3] : NULL, it->revoked_code, sizeof it->revoked_code);
  uint64_t index = 0;
  if (strcmp(st, "committed") != 0 || !parse_index(idx, &index)) {
    set_reject(it, CP_R_REVOKED_EVENT_UNKNOWN,
               "Event \"%.64s\" of provider %.32s is not committed on the register, so it cannot be revoked.",
               tevent, tprov);
    return;
  }
  if (by[0] != '\0' && strcmp(by, ev->provider_event_id) != 0) {
    set_reject(it, CP_R_ALREADY_REVOKED, "Event \"%.64s\" was already revoked by event \"%.64s\".",
               tevent, by);
    return;
  }
  it->state = VITEM_PASS;
  it->entry_type = CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION;
  it->revokes_index = index;
}

/* A consent event, or any event of the consent provider: only carepass-consent sends consents,
 * and it sends nothing else: a consent (employer id by format, event id "consent:...") or the
 * withdrawal of one of its consents (reason CONSENT_WITHDRAWN), which then follows the
 * revocation rules. */
static void decide_consent(verify_item_t *it, const redisReply *target) {
  const Carepass__V1__PendingEvent *ev = it->ev;
  if (strcmp(ev->provider_id, PROJ_CONSENT_PROVIDER) != 0) {
    set_reject(it, CP_R_RESERVED_PROVIDER, "%s", cp_reason_text(CP_R_RESERVED_PROVIDER));
    return;
  }
  if (ev->kind == CAREPASS__V1__EVENT_KIND__EVENT_KIND_CONSENT) {
    if (!proj_employer_id_valid(ev->employer_id) || strncmp(ev->provider_event_id, "consent:", 8) != 0 ||
        ev->qualification_code[0] != '\0') {
      set_reject(it, CP_R_INVALID_CONSENT, "%s", cp_reason_text(CP_R_INVALID_CONSENT));
      return;
    }
    it->state = VITEM_PASS;
    it->entry_type = CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_CONSENT;
    return;
  }
  if (ev->kind == CAREPASS__V1__EVENT_KIND__EVENT_KIND_REVOCATION) {
    if (strcmp(ev->revocation_reason, PROJ_CONSENT_REASON) != 0 || strncmp(ev->revokes_event_id, "consent:", 8) != 0) {
      set_reject(it, CP_R_INVALID_CONSENT, "%s", cp_reason_text(CP_R_INVALID_CONSENT));
      return;
    }
    decide_revocation(it, target);
    return;
  }
  set_reject(it, CP_R_RESERVED_PROVIDER, "%s", cp_reason_text(CP_R_RESERVED_PROVIDER));
}

/* Stage 1: one pipeline reading every event's state (and each revoked event's state). */
static int stage_read(verify_t *v, verify_item_t *items, size_t n, int32_t today) {
  cp_redis_pipe_t *p = cp_redis_pipe_new();
  cp_redis_handle_t *own_h = cp_xcalloc(n > 0 ? n : 1, sizeof *own_h);
  cp_redis_handle_t *target_h = cp_xcalloc(n > 0 ? n : 1, sizeof *target_h);
  for (size_t i = 0; i < n; i++) {
    verify_item_t *it = &items[i];
    if (it->state == VITEM_DROP)
      continue;
    own_h[i] = cp_redis_pipe_cmd(p, "HMGET %s state reason msg index", it->key);
    it->target_key[0] = '\0';
    if (it->ev->kind == CAREPASS__V1__EVENT_KIND__EVENT_KIND_REVOCATION) {
      char tprov[64];
      const char *tevent;
      if (verify_revocation_target(it->ev, tprov, sizeof tprov, &tevent))   /* too long: unknown */
        (void)cp_key_event_into(it->target_key, sizeof it->target_key, tprov, tevent);
      if (it->target_key[0] != '\0')
        target_h[i] = cp_redis_pipe_cmd(p, "HMGET %s state index revoked_by qcode", it->target_key);
    }
  }
  int rc = cp_redis_pipe_exec(p, v->redis);
  for (size_t i = 0; rc == 0 && i < n; i++) {
    verify_item_t *it = &items[i];
    if (it->state == VITEM_DROP)
      continue;
    const redisReply *own = cp_redis_reply_array(cp_redis_pipe_reply(p, own_h[i]), 4);
    const redisReply *target = NULL;
    if (it->ev->kind == CAREPASS__V1__EVENT_KIND__EVENT_KIND_REVOCATION && it->target_key[0] != '\0')
      target = cp_redis_pipe_reply(p, target_h[i]);
    cp_redis_reply_str(own ? own->element[0] : NULL, it->stored_state, sizeof it->stored_state);
    if (strcmp(it->stored_state, "rejected") == 0 || strcmp(it->stored_state, "committed") == 0) {
      /* Redrive of an event that already has its final answer: say it again, do not redo it. */
      it->state = VITEM_REPLAY;
      cp_redis_reply_str(own->element[1], it->stored_reason, sizeof it->stored_reason);
      cp_redis_reply_str(own->element[2], it->stored_msg, sizeof it->stored_msg);
      char idx[24];
      cp_redis_reply_str(own->element[3], idx, sizeof idx);
      if (!parse_index(idx, &it->stored_index))
        it->stored_index = 0;
      continue;
    }
    if (it->ev->kind == CAREPASS__V1__EVENT_KIND__EVENT_KIND_CONSENT ||
        strcmp(it->ev->provider_id, PROJ_CONSENT_PROVIDER) == 0) {
      decide_consent(it, target);
    } else if (it->ev->kind == CAREPASS__V1__EVENT_KIND__EVENT_KIND_REVOCATION) {
      decide_revocation(it, target);
    } else if (strcmp(it->ev->provider_id, VERIFY_AWARD_PROVIDER) == 0) {
      /* a derived award of ours, still pending, re-sent by the redrive: verify_awards_redrive decides */
      it->state = VITEM_PASS;
      it->entry_type = CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_DERIVED_AWARD;
      it->award_redrive = true;
    } else if (it->ev->kind == CAREPASS__V1__EVENT_KIND__EVENT_KIND_COMPLETION ||
               it->ev->kind == CAREPASS__V1__EVENT_KIND__EVENT_KIND_UNSPECIFIED) {
      verify_input_t in = {
        .provider_id = it->ev->provider_id,
        .qualification_code = it->ev->qualification_code,
        .completion_date = it->ev->completion_date,
        .assessor_id = it->ev->assessor_id,
      };
      it->state = verify_check(v->cat, v->reg, &in, today, &it->res) == CP_OK ? VITEM_PASS : VITEM_REJECT;
      it->entry_type = CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_RECORD;
    } else {
      set_reject(it, CP_R_INVALID_KIND, "%s", cp_reason_text(CP_R_INVALID_KIND));
    }
  }
  free(own_h);
  free(target_h);
  cp_redis_pipe_destroy(&p);
  return rc;
}

/* The event.rejected notice of a rejected event, queued in the transaction that stores the
 * rejection (our own stale awards have no provider to tell). */
static int queue_rejection_notice(cp_redis_pipe_t *p, const verify_item_t *it) {
  if (it->award_redrive)
    return 0;
  Carepass__V1__NotifyJob job = CAREPASS__V1__NOTIFY_JOB__INIT;
  job.type = "event.rejected";
  job.provider_id = it->ev->provider_id;
  job.provider_event_id = it->ev->provider_event_id;
  job.reason_code = (char *)cp_reason_code(it->res.reason);
  job.message = (char *)it->res.message;
  job.qualification_code = it->ev->qualification_code;
  job.worker_pseudonym = it->ev->worker_pseudonym;
  job.occurred_at = cp_now_ms();
  return cp_outbox_add(p, &job);
}

/* Stage 2: one transaction storing rejections (final state, out of the pending set, the
 * event.rejected notice in the outbox) and marking revoked events, so that a second revocation
 * of the same record is refused. */
static int stage_write(verify_t *v, verify_item_t *items, size_t n) {
  cp_key_t member;
  cp_redis_pipe_t *p = cp_redis_pipe_new();
  (void)cp_redis_pipe_tx_begin(p);
  for (size_t i = 0; i < n; i++) {
    verify_item_t *it = &items[i];
    const Carepass__V1__PendingEvent *ev = it->ev;
    if (it->state == VITEM_DROP || it->state == VITEM_PASS) {
      if (it->state == VITEM_PASS && it->entry_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION) {
        assert(it->target_key[0] != '\0');
        (void)cp_redis_pipe_cmd(p, "HSETNX %s revoked_by %s", it->target_key, ev->provider_event_id);
      }
      continue;
    }
    if (it->state == VITEM_REJECT) {
      (void)cp_redis_pipe_cmd(p, "HSET %s state rejected reason %s msg %s", it->key, cp_reason_code(it->res.reason),
                              it->res.message);
      (void)cp_redis_pipe_cmd(p, "HDEL %s pending", it->key);
      if (queue_rejection_notice(p, it) != 0)
        cp_log_error("event.rejected notice could not be packed; not sent", CP_KV_STR("provider", it->ev->provider_id),
                     CP_KV_STR("event", it->ev->provider_event_id), CP_KV_END);
    }
    (void)cp_redis_pipe_cmd(p, "ZREM %s %s", cp_key_pending(),
                            cp_key_pending_member(&member, ev->provider_id, ev->provider_event_id));
  }
  (void)cp_redis_pipe_tx_end(p);
  char err[CP_ERRLEN];
  int rc = cp_redis_pipe_exec(p, v->redis);
  if (rc == 0 && cp_redis_pipe_check(p, "storing rejections", err, sizeof err) != 0) {
    cp_log_error("redis refused the rejections; the batch is tried again", CP_KV_STR("error", err), CP_KV_END);
    rc = -1;
  }
  cp_redis_pipe_destroy(&p);
  return rc;
}

static int send_result(verify_t *v, const verify_item_t *it, Carepass__V1__Outcome outcome,
                       const char *reason, const char *msg, uint64_t index) {
  Carepass__V1__EventResult r = CAREPASS__V1__EVENT_RESULT__INIT;
  r.provider_id = it->ev->provider_id;
  r.provider_event_id = it->ev->provider_event_id;
  r.outcome = outcome;
  r.reason_code = (char *)reason;
  r.message = (char *)msg;
  r.entry_index = index;
  return verify_publish_result(v, it->ev->reply_to, &r);
}

static int send_rejection(verify_t *v, const verify_item_t *it) {
  const char *code = cp_reason_code(it->res.reason);
  cp_log_info("event rejected", CP_KV_STR("provider", it->ev->provider_id),
              CP_KV_STR("event", it->ev->provider_event_id), CP_KV_STR("reason", code), CP_KV_END);
  /* its event.rejected notice went into the outbox with the rejection (stage_write) */
  return send_result(v, it, CAREPASS__V1__OUTCOME__OUTCOME_REJECTED, code, it->res.message, 0);
}

/* The revoked standard's revocation went first on the same shard socket; the award's follows it. */
static int send_award_revocation(verify_t *v, const verify_item_t *it) {
  Carepass__V1__PendingEvent rev;
  char idbuf[VERIFY_AWARD_ID_MAX], revbuf[VERIFY_AWARD_ID_MAX];
  if (verify_award_revocation_event(it->ev, it->award_revoke, it->award_revoke_id, idbuf, revbuf, &rev) != 0) {
    /* cannot happen: verify_awards_revoke set an award id of this award (proj_award_id_at) */
    cp_log_error("derived award revocation not sent: not an award id", CP_KV_STR("award", it->award_revoke->code),
                 CP_KV_END);
    return 0;
  }
  Carepass__V1__VerifiedRecord rec = CAREPASS__V1__VERIFIED_RECORD__INIT;
  rec.event = &rev;
  rec.entry_type = CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION;
  rec.valid_until = (char *)"";
  rec.revokes_index = it->award_revoke_index;
  rec.reason_code = (char *)VERIFY_AWARD_REVOKE_REASON;
  if (verify_send_record(v, &rec) != 0)
    return -1;
  cp_log_info("derived award revoked", CP_KV_STR("award", it->award_revoke->code),
              CP_KV_STR("event", idbuf), CP_KV_INT("revokes_index", it->award_revoke_index), CP_KV_END);
  return 0;
}

static int send_pass(verify_t *v, verify_item_t *it) {
  Carepass__V1__VerifiedRecord rec = CAREPASS__V1__VERIFIED_RECORD__INIT;
  rec.event = it->ev;
  rec.entry_type = it->entry_type;
  rec.valid_until = it->res.valid_until;
  rec.revokes_index = it->revokes_index;
  rec.reason_code = it->entry_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION
                        ? it->ev->revocation_reason : (char *)"";
  if (verify_send_record(v, &rec) != 0)
    return -1;
  if (it->award_revoke != NULL && send_award_revocation(v, it) != 0)
    return -1;
  if (it->award == NULL)
    return 0;
  /* The standard's record went first on the same shard socket, so the award follows it. */
  Carepass__V1__PendingEvent aev;
  char idbuf[VERIFY_AWARD_ID_MAX];
  verify_award_event(v->award_secret, it->ev, it->award, it->award_gen, idbuf, &aev);
  Carepass__V1__VerifiedRecord arec = CAREPASS__V1__VERIFIED_RECORD__INIT;
  char vu[11] = "";
  int32_t day;
  if (it->award->refresh_months > 0 && cp_date_parse(aev.completion_date, &day) == 0)
    verify_valid_until(it->award, day, vu);
  arec.event = &aev;
  arec.entry_type = CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_DERIVED_AWARD;
  arec.valid_until = vu;
  if (verify_send_record(v, &arec) != 0)
    return -1;
  v->counts.awards++;
  cp_log_info("derived award issued", CP_KV_STR("award", it->award->code),
              CP_KV_STR("event", idbuf), CP_KV_END);
  return 0;
}

/* Mark later copies of an event already in this batch (a redrive racing the original). */
static void drop_duplicates(verify_t *v, verify_item_t *items, size_t n) {
  for (size_t i = 1; i < n; i++) {
    if (items[i].state == VITEM_DROP)
      continue;
    for (size_t j = 0; j < i; j++) {
      if (items[j].state != VITEM_DROP && strcmp(items[i].key, items[j].key) == 0) {
        items[i].state = VITEM_DROP;
        v->counts.malformed++;
        break;
      }
    }
  }
}

int verify_batch(verify_t *v, verify_item_t *items, size_t n, int32_t today) {
  for (size_t i = 0; i < n; i++) {   /* fresh verdicts (this may be a retry after a Redis failure) */
    items[i].state = items[i].usable ? VITEM_PASS : VITEM_DROP;
    items[i].award = NULL;
    items[i].award_gen = 0;
    items[i].award_redrive = false;
    items[i].target_key[0] = '\0';
    items[i].award_revoke = NULL;
    items[i].award_revoke_index = 0;
    items[i].award_revoke_id[0] = '\0';
    items[i].revokes_index = 0;
    items[i].revoked_code[0] = '\0';
    memset(&items[i].res, 0, sizeof items[i].res);
  }
  drop_duplicates(v, items, n);
  if (stage_read(v, items, n, today) != 0)
    return -1;
  if (verify_awards_redrive(v, items, n) != 0)   /* before stage_write, which stores its rejections */
    return -1;
  if (stage_write(v, items, n) != 0)
    return -1;
  if (verify_awards_record(v, items, n) != 0)
    return -1;
  if (verify_awards_revoke(v, items, n) != 0)
    return -1;
  /* Nothing has been sent yet: up to here a Redis failure retries the whole batch safely. */
  for (size_t i = 0; i < n && !cp_stop_requested; i++) {
    verify_item_t *it = &items[i];
    int rc = 0;
    switch (it->state) {
    case VITEM_DROP:
      break;
    case VITEM_REPLAY:
      v->counts.replayed++;
      if (strcmp(it->stored_state, "rejected") == 0)
        rc = send_result(v, it, CAREPASS__V1__OUTCOME__OUTCOME_REJECTED, it->stored_reason,
                         it->stored_msg, 0);
      else
        rc = send_result(v, it, CAREPASS__V1__OUTCOME__OUTCOME_COMMITTED, "", "", it->stored_index);
      break;
    case VITEM_REJECT:
      v->counts.rejected++;
      rc = send_rejection(v, it);
      break;
    case VITEM_PASS:
      v->counts.passed++;
      rc = send_pass(v, it);
      break;
    }
    if (rc != 0)
      break;   /* stopping: what was not sent stays pending in Redis and is redriven */
  }
  return 0;
}
