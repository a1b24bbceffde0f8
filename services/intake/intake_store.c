/* intake_store.c -- idempotent event claims in Redis (one Lua call per event, one pipeline per
 * batch) and state reads for waiting requests. Key scheme: common/cp_keys.h. */
#include "intake.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_keys.h"
#include "cp_log.h"

/* Claim one event atomically.
 * KEYS[1] cp:ev:{p:e}  KEYS[2] cp:pending
 * ARGV[1] digest  ARGV[2] PendingEvent bytes  ARGV[3] now (unix ms)
 * ARGV[4] redrive time (unix ms)  ARGV[5] pending member "p:e"
 * -> {"new"} | {"reused"} | {state, reason, msg, index} */
static const char claim_script[] =
    "local s = redis.call('HMGET', KEYS[1], 'state', 'digest', 'reason', 'msg', 'index')\n"
    "if not s[1] then\n"
    "  redis.call('HSET', KEYS[1], 'state', 'accepted', 'digest', ARGV[1], 'pending', ARGV[2], 't', ARGV[3])\n"
    "  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])\n"
    "  return {'new'}\n"
    "end\n"
    "if s[2] ~= ARGV[1] then return {'reused'} end\n"
    "return {s[1], s[3] or '', s[4] or '', s[5] or ''}\n";

/* State name in Redis -> intake_st_t. */
static intake_st_t state_of(const char *s, size_t len) {
  if (len == 8 && memcmp(s, "accepted", 8) == 0) return INTAKE_ST_ACCEPTED;
  if (len == 8 && memcmp(s, "rejected", 8) == 0) return INTAKE_ST_REJECTED;
  if (len == 9 && memcmp(s, "committed", 9) == 0) return INTAKE_ST_COMMITTED;
  return INTAKE_ST_UNKNOWN;
}

/* Copy a string reply element, NULL when it is nil or empty. */
static char *reply_str(const redisReply *r) {
  if (r == NULL || r->type != REDIS_REPLY_STRING || r->len == 0) return NULL;
  char *s = cp_xmalloc(r->len + 1);
  memcpy(s, r->str, r->len);
  s[r->len] = '\0';
  return s;
}

static uint64_t reply_u64(const redisReply *r) {
  if (r == NULL || r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 20) return 0;
  char buf[24];
  memcpy(buf, r->str, r->len);
  buf[r->len] = '\0';
  return strtoull(buf, NULL, 10);
}

static void free_replies(redisReply **rep, int n) {
  if (rep == NULL) return;
  for (int i = 0; i < n; i++)
    if (rep[i] != NULL) freeReplyObject(rep[i]);
  free(rep);
}

static int load_script(intake_t *in, char *err, size_t errlen) {
  redisReply *r = cp_redis_cmd(in->redis, "SCRIPT LOAD %s", claim_script);
  if (r == NULL || r->type != REDIS_REPLY_STRING || r->len != 40) {
    cp_err(err, errlen, "SCRIPT LOAD: %s", r == NULL ? cp_redis_errstr(in->redis) : "unexpected reply");
    if (r != NULL) freeReplyObject(r);
    return -1;
  }
  memcpy(in->script_sha, r->str, 40);
  in->script_sha[40] = '\0';
  freeReplyObject(r);
  return 0;
}

int intake_store_init(intake_t *in, char *err, size_t errlen) { return load_script(in, err, errlen); }

void intake_claim_clear(intake_claim_t *c) {
  free(c->reason);
  free(c->message);
  memset(c, 0, sizeof *c);
}

/* Queue the EVALSHA of every event, run the pipeline; *rep gets n replies. */
static int claim_once(intake_t *in, const char *provider, const intake_claim_req_t *reqs, size_t n,
                      redisReply ***rep, int *nrep) {
  int64_t now = cp_now_ms();
  char now_s[24], due_s[24];
  snprintf(now_s, sizeof now_s, "%" PRId64, now);
  snprintf(due_s, sizeof due_s, "%" PRId64, now + in->redrive_after_ms);
  cp_redis_pipeline_begin(in->redis);
  for (size_t i = 0; i < n; i++) {
    char key[160], member[160];
    snprintf(key, sizeof key, CP_KEY_EVENT_FMT, provider, reqs[i].event_id);
    snprintf(member, sizeof member, "%s:%s", provider, reqs[i].event_id);
    const char *argv[] = {"EVALSHA", in->script_sha, "2", key, CP_KEY_PENDING, reqs[i].digest,
                          (const char *)reqs[i].pending, now_s, due_s, member};
    size_t len[CP_ARRAY_LEN(argv)];
    for (size_t k = 0; k < CP_ARRAY_LEN(argv); k++)
      len[k] = k == 6 ? reqs[i].pending_len : strlen(argv[k]); /* argv[6] is binary */
    cp_redis_append_argv(in->redis, (int)CP_ARRAY_LEN(argv), argv, len);
  }
  return cp_redis_pipeline_exec(in->redis, rep, nrep);
}

static bool is_noscript(const redisReply *r) {
  return r != NULL && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

int intake_store_claim(intake_t *in, const char *provider, const intake_claim_req_t *reqs, size_t n,
                       intake_claim_t *out) {
  redisReply **rep = NULL;
  int nrep = 0;
  char err[CP_ERRLEN];
  /* The claim is idempotent, so a failed pipeline can be run again after a
   * reconnect; a NOSCRIPT (Redis restarted) means nothing ran: load and rerun. */
  for (int attempt = 0;; attempt++) {
    int rc = claim_once(in, provider, reqs, n, &rep, &nrep);
    if (rc == 0 && (nrep == 0 || !is_noscript(rep[0]))) break;
    if (rc == 0) {
      free_replies(rep, nrep);
      rep = NULL;
      if (attempt >= 1 || load_script(in, err, sizeof err) != 0) goto unavailable;
      continue;
    }
    if (attempt >= 1 || cp_redis_reconnect(in->redis) != 0) goto unavailable;
    if (load_script(in, err, sizeof err) != 0) goto unavailable;
  }
  if ((size_t)nrep != n) goto bad_reply;
  for (size_t i = 0; i < n; i++) {
    redisReply *r = rep[i];
    memset(&out[i], 0, sizeof out[i]);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_STRING)
      goto bad_reply;
    const redisReply *s = r->element[0];
    if (s->len == 3 && memcmp(s->str, "new", 3) == 0) {
      out[i].is_new = true;
      out[i].st = INTAKE_ST_ACCEPTED;
    } else if (s->len == 6 && memcmp(s->str, "reused", 6) == 0) {
      out[i].reused = true;
    } else {
      if (r->elements != 4) goto bad_reply;
      out[i].st = state_of(s->str, s->len);
      if (out[i].st == INTAKE_ST_UNKNOWN) out[i].st = INTAKE_ST_ACCEPTED;
      out[i].reason = reply_str(r->element[1]);
      out[i].message = reply_str(r->element[2]);
      out[i].index = reply_u64(r->element[3]);
    }
  }
  free_replies(rep, nrep);
  return 0;
bad_reply:
  cp_log_error("redis: unexpected claim reply",
               CP_KV_STR("error", nrep > 0 && rep[0] != NULL && rep[0]->type == REDIS_REPLY_ERROR
                                      ? rep[0]->str
                                      : "wrong shape"),
               CP_KV_END);
  for (size_t i = 0; i < n; i++) intake_claim_clear(&out[i]);
  free_replies(rep, nrep);
  return -1;
unavailable:
  cp_log_warn("redis unavailable", CP_KV_STR("error", cp_redis_errstr(in->redis)), CP_KV_END);
  return -1;
}

int intake_store_refresh(intake_t *in, intake_req_t **reqs, size_t nreq) {
  size_t queued = 0;
  for (size_t k = 0; k < nreq; k++) queued += reqs[k]->nwaiting;
  if (queued == 0) return 0;
  cp_redis_pipeline_begin(in->redis);
  for (size_t k = 0; k < nreq; k++) {
    for (size_t i = 0; i < reqs[k]->n; i++) {
      if (!reqs[k]->ans[i].waiting) continue;
      char key[160];
      snprintf(key, sizeof key, CP_KEY_EVENT_FMT, reqs[k]->provider, reqs[k]->ans[i].event_id);
      cp_redis_append(in->redis, "HMGET %s state reason msg index", key);
    }
  }
  redisReply **rep = NULL;
  int nrep = 0;
  if (cp_redis_pipeline_exec(in->redis, &rep, &nrep) != 0) {
    if (cp_redis_reconnect(in->redis) != 0) { /* the next tick tries again */ }
    cp_log_warn("redis unavailable while refreshing waiting requests",
                CP_KV_STR("error", cp_redis_errstr(in->redis)), CP_KV_END);
    return -1;
  }
  size_t j = 0;
  for (size_t k = 0; k < nreq && j < (size_t)nrep; k++) {
    for (size_t i = 0; i < reqs[k]->n && j < (size_t)nrep; i++) {
      if (!reqs[k]->ans[i].waiting) continue;
      redisReply *r = rep[j++];
      if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 4) continue;
      intake_st_t st = r->element[0]->type == REDIS_REPLY_STRING
                           ? state_of(r->element[0]->str, r->element[0]->len)
                           : INTAKE_ST_UNKNOWN;
      if (st != INTAKE_ST_REJECTED && st != INTAKE_ST_COMMITTED) continue;
      char *reason = reply_str(r->element[1]);
      char *msg = reply_str(r->element[2]);
      intake_answer_final(reqs[k], i, st, reason, msg, reply_u64(r->element[3]));
      free(reason);
      free(msg);
    }
  }
  free_replies(rep, nrep);
  return 0;
}
