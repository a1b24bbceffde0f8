/* ingest_store.c -- idempotent event claims in Redis (one Lua call per event, one pipeline per
 * batch) and state reads; shared by intake and the gateway. Key scheme: cp_keys.h. */
#include "cp_ingest.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_keys.h"
#include "cp_log.h"
#include "cp_outbox.h"

/* Claim one event atomically: a new event is stored, scheduled for redrive and its
 * event.accepted notice added to the outbox, all in this one script.
 * KEYS[1] cp:ev:{p:e}  KEYS[2] cp:pending  KEYS[3] cp:{outbox}
 * ARGV[1] digest  ARGV[2] PendingEvent bytes  ARGV[3] now (unix ms)
 * ARGV[4] redrive time (unix ms)  ARGV[5] pending member "p:e"  ARGV[6] packed event.accepted job
 * ARGV[7] OUTBOX_MAX
 * -> {"new"} | {"busy"} (outbox full: nothing stored) | {"reused"} | {state, reason, msg, index} */
static cp_redis_script_t claim_script = CP_REDIS_SCRIPT("claim event", 3,
    "local s = redis.call('HMGET', KEYS[1], 'state', 'digest', 'reason', 'msg', 'index')\n"
    "if not s[1] then\n"
    "  if " CP_OUTBOX_LUA_FULL("KEYS[3]", "ARGV[7]") " then return {'busy'} end\n"
    "  redis.call('HSET', KEYS[1], 'state', 'accepted', 'digest', ARGV[1], 'pending', ARGV[2], 't', ARGV[3])\n"
    "  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])\n"
    "  " CP_OUTBOX_LUA_ADD("KEYS[3]", "ARGV[6]")
    "  return {'new'}\n"
    "end\n"
    "if s[2] ~= ARGV[1] then return {'reused'} end\n"
    "return {s[1], s[3] or '', s[4] or '', s[5] or ''}\n");

ing_st_t ing_state_of(const char *s, size_t len) {
  if (len == 8 && memcmp(s, "accepted", 8) == 0) return ING_ST_ACCEPTED;
  if (len == 8 && memcmp(s, "rejected", 8) == 0) return ING_ST_REJECTED;
  if (len == 9 && memcmp(s, "committed", 9) == 0) return ING_ST_COMMITTED;
  return ING_ST_UNKNOWN;
}

int ing_store_init(cp_redis_t *r, char *err, size_t errlen) {
  /* load it now, so that a Redis that cannot run it is found at start-up */
  redisReply *rep = cp_redis_cmd(r, "SCRIPT LOAD %s", claim_script.src);
  bool ok = rep != NULL && rep->type == REDIS_REPLY_STRING && rep->len == 40 &&
            memcmp(rep->str, cp_redis_script_sha(&claim_script), 40) == 0;
  if (!ok) {
    cp_err(err, errlen, "SCRIPT LOAD: %s", rep == NULL ? cp_redis_errstr(r) : "unexpected reply");
    if (rep != NULL) freeReplyObject(rep);
    return -1;
  }
  freeReplyObject(rep);
  return 0;
}

void ing_claim_clear(ing_claim_t *c) {
  free(c->reason);
  free(c->message);
  memset(c, 0, sizeof *c);
}

/* Queue the claim of every event; handles[i] for reqs[i]. */
static void queue_claims(cp_redis_pipe_t *p, int64_t redrive_after_ms, int64_t outbox_max, const char *provider,
                         const ing_claim_req_t *reqs, size_t n, cp_redis_handle_t *handles) {
  int64_t now = cp_now_ms();
  char now_s[24], due_s[24], max_s[24];
  snprintf(now_s, sizeof now_s, "%" PRId64, now);
  snprintf(due_s, sizeof due_s, "%" PRId64, now + redrive_after_ms);
  snprintf(max_s, sizeof max_s, "%" PRId64, outbox_max);
  for (size_t i = 0; i < n; i++) {
    cp_key_t key, member;
    const char *argv[] = {cp_key_event(&key, provider, reqs[i].event_id), cp_key_pending(), cp_key_outbox(),
                          reqs[i].digest, (const char *)reqs[i].pending, now_s, due_s,
                          cp_key_pending_member(&member, provider, reqs[i].event_id),
                          (const char *)reqs[i].notice, max_s};
    size_t len[CP_ARRAY_LEN(argv)];
    for (size_t k = 0; k < CP_ARRAY_LEN(argv); k++)   /* argv[4] and argv[8] are binary */
      len[k] = k == 4 ? reqs[i].pending_len : k == 8 ? reqs[i].notice_len : strlen(argv[k]);
    handles[i] = cp_redis_pipe_script(p, &claim_script, (int)CP_ARRAY_LEN(argv), argv, len);
  }
}

int ing_store_claim(cp_redis_t *r, int64_t redrive_after_ms, int64_t outbox_max, const char *provider,
                    const ing_claim_req_t *reqs, size_t n, ing_claim_t *out) {
  if (n == 0) return 0;
  cp_redis_pipe_t *p = cp_redis_pipe_new();
  cp_redis_handle_t *h = cp_xcalloc(n, sizeof *h);
  int rc = -1;
  queue_claims(p, redrive_after_ms, outbox_max, provider, reqs, n, h);
  /* With REDIS_MIN_REPLICAS, in the same round trip: wait until the claims have reached that many
   * replicas, so an accepted ack survives the primary's loss (Sentinel promotes a replica). */
  int want = cp_redis_min_replicas();
  cp_redis_handle_t hw = {0, 0};
  if (want > 0) hw = cp_redis_pipe_cmd(p, "WAIT %d %d", want, cp_redis_replica_timeout_ms());
  /* The claim is idempotent, so a failed pipeline can be run again after a reconnect (the layer
   * loads the script on a new connection, and reruns a NOSCRIPT with its source). */
  if (cp_redis_pipe_exec(p, r) != 0 && (cp_redis_reconnect(r) != 0 || cp_redis_pipe_exec(p, r) != 0)) {
    cp_log_warn("redis unavailable", CP_KV_STR("error", cp_redis_errstr(r)), CP_KV_END);
    goto out;
  }
  if (want > 0) {
    const redisReply *w = cp_redis_pipe_reply(p, hw);
    long long got = w != NULL && w->type == REDIS_REPLY_INTEGER ? w->integer : -1;
    if (got < want) {   /* stored on the primary only: not yet an ack; the provider resends */
      cp_log_warn("redis: claims not on enough replicas; the batch is answered unavailable",
                  CP_KV_INT("replicas", got < 0 ? 0 : got), CP_KV_INT("wanted", want), CP_KV_END);
      goto out;
    }
  }
  for (size_t i = 0; i < n; i++) memset(&out[i], 0, sizeof out[i]);
  const char *bad = "wrong shape";
  for (size_t i = 0; i < n; i++) {
    const redisReply *x = cp_redis_pipe_reply(p, h[i]);
    if (x == NULL || x->type != REDIS_REPLY_ARRAY || x->elements < 1 || x->element[0]->type != REDIS_REPLY_STRING) {
      if (cp_redis_reply_is_error(x)) bad = x->str;
      goto bad_reply;
    }
    const redisReply *s = x->element[0];
    if (cp_redis_reply_is_str(s, "new")) {
      out[i].is_new = true;
      out[i].st = ING_ST_ACCEPTED;
    } else if (cp_redis_reply_is_str(s, "busy")) {
      out[i].busy = true;
    } else if (cp_redis_reply_is_str(s, "reused")) {
      out[i].reused = true;
    } else {
      if (x->elements != 4) goto bad_reply;
      out[i].st = ing_state_of(s->str, s->len);
      if (out[i].st == ING_ST_UNKNOWN) out[i].st = ING_ST_ACCEPTED;
      out[i].reason = cp_redis_reply_strdup(x->element[1]);
      out[i].message = cp_redis_reply_strdup(x->element[2]);
      out[i].index = cp_redis_reply_u64(x->element[3]);
    }
  }
  rc = 0;
  goto out;
bad_reply:
  cp_log_error("redis: unexpected claim reply", CP_KV_STR("error", bad), CP_KV_END);
  for (size_t i = 0; i < n; i++) ing_claim_clear(&out[i]);
out:
  free(h);
  cp_redis_pipe_destroy(&p);
  return rc;
}

int ing_store_read(cp_redis_t *r, const char *provider, const char *const *event_ids, size_t n,
                   ing_claim_t *out) {
  if (n == 0) return 0;
  cp_redis_pipe_t *p = cp_redis_pipe_new();
  cp_redis_handle_t *h = cp_xcalloc(n, sizeof *h);
  for (size_t i = 0; i < n; i++) {
    cp_key_t key;
    h[i] = cp_redis_pipe_cmd(p, "HMGET %s state reason msg index", cp_key_event(&key, provider, event_ids[i]));
  }
  int rc = cp_redis_pipe_exec(p, r);
  if (rc != 0) {
    if (cp_redis_reconnect(r) != 0) { /* the caller retries later */ }
  } else {
    for (size_t i = 0; i < n; i++) ing_claim_from_hmget(cp_redis_pipe_reply(p, h[i]), &out[i]);
  }
  free(h);
  cp_redis_pipe_destroy(&p);
  return rc;
}

void ing_claim_from_hmget(const redisReply *x, ing_claim_t *out) {
  memset(out, 0, sizeof *out);
  if (cp_redis_reply_array(x, 4) == NULL) return;
  if (x->element[0]->type == REDIS_REPLY_STRING) out->st = ing_state_of(x->element[0]->str, x->element[0]->len);
  out->reason = cp_redis_reply_strdup(x->element[1]);
  out->message = cp_redis_reply_strdup(x->element[2]);
  out->index = cp_redis_reply_u64(x->element[3]);
}
