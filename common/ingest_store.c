/* ingest_store.c -- idempotent event claims in Redis (one Lua call per event, one pipeline per
 * batch) and state reads; shared by intake and the gateway. Key scheme: cp_keys.h. */
#include "cp_ingest.h"

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

ing_st_t ing_state_of(const char *s, size_t len) {
  if (len == 8 && memcmp(s, "accepted", 8) == 0) return ING_ST_ACCEPTED;
  if (len == 8 && memcmp(s, "rejected", 8) == 0) return ING_ST_REJECTED;
  if (len == 9 && memcmp(s, "committed", 9) == 0) return ING_ST_COMMITTED;
  return ING_ST_UNKNOWN;
}

char *ing_reply_str(const redisReply *r) {
  if (r == NULL || r->type != REDIS_REPLY_STRING || r->len == 0) return NULL;
  char *s = cp_xmalloc(r->len + 1);
  memcpy(s, r->str, r->len);
  s[r->len] = '\0';
  return s;
}

uint64_t ing_reply_u64(const redisReply *r) {
  if (r == NULL || r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 20) return 0;
  char buf[24];
  memcpy(buf, r->str, r->len);
  buf[r->len] = '\0';
  return strtoull(buf, NULL, 10);
}

int ing_store_init(cp_redis_t *r, char sha[41], char *err, size_t errlen) {
  redisReply *rep = cp_redis_cmd(r, "SCRIPT LOAD %s", claim_script);
  if (rep == NULL || rep->type != REDIS_REPLY_STRING || rep->len != 40) {
    cp_err(err, errlen, "SCRIPT LOAD: %s", rep == NULL ? cp_redis_errstr(r) : "unexpected reply");
    if (rep != NULL) freeReplyObject(rep);
    return -1;
  }
  memcpy(sha, rep->str, 40);
  sha[40] = '\0';
  freeReplyObject(rep);
  return 0;
}

void ing_claim_clear(ing_claim_t *c) {
  free(c->reason);
  free(c->message);
  memset(c, 0, sizeof *c);
}

/* Queue the EVALSHA of every event, run the pipeline; *rep gets n replies. */
static int claim_once(cp_redis_t *r, const char *sha, int64_t redrive_after_ms, const char *provider,
                      const ing_claim_req_t *reqs, size_t n, redisReply ***rep, int *nrep) {
  int64_t now = cp_now_ms();
  char now_s[24], due_s[24];
  snprintf(now_s, sizeof now_s, "%" PRId64, now);
  snprintf(due_s, sizeof due_s, "%" PRId64, now + redrive_after_ms);
  cp_redis_pipeline_begin(r);
  for (size_t i = 0; i < n; i++) {
    char key[160], member[160];
    snprintf(key, sizeof key, CP_KEY_EVENT_FMT, provider, reqs[i].event_id);
    snprintf(member, sizeof member, "%s:%s", provider, reqs[i].event_id);
    const char *argv[] = {"EVALSHA", sha, "2", key, CP_KEY_PENDING, reqs[i].digest,
                          (const char *)reqs[i].pending, now_s, due_s, member};
    size_t len[CP_ARRAY_LEN(argv)];
    for (size_t k = 0; k < CP_ARRAY_LEN(argv); k++)
      len[k] = k == 6 ? reqs[i].pending_len : strlen(argv[k]); /* argv[6] is binary */
    cp_redis_append_argv(r, (int)CP_ARRAY_LEN(argv), argv, len);
  }
  return cp_redis_pipeline_exec(r, rep, nrep);
}

static bool is_noscript(const redisReply *r) {
  return r != NULL && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

int ing_store_claim(cp_redis_t *r, const char *sha, int64_t redrive_after_ms, const char *provider,
                    const ing_claim_req_t *reqs, size_t n, ing_claim_t *out) {
  redisReply **rep = NULL;
  int nrep = 0;
  char err[CP_ERRLEN];
  char loaded[41];
  /* The claim is idempotent, so a failed pipeline can be run again after a
   * reconnect; a NOSCRIPT (Redis restarted) means nothing ran: load and rerun.
   * Loading gives the same SHA-1 (it is the script's), so sha stays valid. */
  for (int attempt = 0;; attempt++) {
    int rc = claim_once(r, sha, redrive_after_ms, provider, reqs, n, &rep, &nrep);
    if (rc == 0 && (nrep == 0 || !is_noscript(rep[0]))) break;
    if (rc == 0) {
      cp_redis_replies_free(rep, nrep);
      rep = NULL;
      if (attempt >= 1 || ing_store_init(r, loaded, err, sizeof err) != 0) goto unavailable;
      continue;
    }
    if (attempt >= 1 || cp_redis_reconnect(r) != 0) goto unavailable;
    if (ing_store_init(r, loaded, err, sizeof err) != 0) goto unavailable;
  }
  if ((size_t)nrep != n) goto bad_reply;
  for (size_t i = 0; i < n; i++) memset(&out[i], 0, sizeof out[i]);
  for (size_t i = 0; i < n; i++) {
    redisReply *x = rep[i];
    if (x == NULL || x->type != REDIS_REPLY_ARRAY || x->elements < 1 ||
        x->element[0]->type != REDIS_REPLY_STRING)
      goto bad_reply;
    const redisReply *s = x->element[0];
    if (s->len == 3 && memcmp(s->str, "new", 3) == 0) {
      out[i].is_new = true;
      out[i].st = ING_ST_ACCEPTED;
    } else if (s->len == 6 && memcmp(s->str, "reused", 6) == 0) {
      out[i].reused = true;
    } else {
      if (x->elements != 4) goto bad_reply;
      out[i].st = ing_state_of(s->str, s->len);
      if (out[i].st == ING_ST_UNKNOWN) out[i].st = ING_ST_ACCEPTED;
      out[i].reason = ing_reply_str(x->element[1]);
      out[i].message = ing_reply_str(x->element[2]);
      out[i].index = ing_reply_u64(x->element[3]);
    }
  }
  cp_redis_replies_free(rep, nrep);
  return 0;
bad_reply:
  cp_log_error("redis: unexpected claim reply",
               CP_KV_STR("error", nrep > 0 && rep[0] != NULL && rep[0]->type == REDIS_REPLY_ERROR
                                      ? rep[0]->str
                                      : "wrong shape"),
               CP_KV_END);
  for (size_t i = 0; i < n && (size_t)nrep == n; i++) ing_claim_clear(&out[i]);
  cp_redis_replies_free(rep, nrep);
  return -1;
unavailable:
  cp_log_warn("redis unavailable", CP_KV_STR("error", cp_redis_errstr(r)), CP_KV_END);
  return -1;
}

int ing_store_read(cp_redis_t *r, const char *provider, const char *const *event_ids, size_t n,
                   ing_claim_t *out) {
  if (n == 0) return 0;
  cp_redis_pipeline_begin(r);
  for (size_t i = 0; i < n; i++) {
    char key[160];
    snprintf(key, sizeof key, CP_KEY_EVENT_FMT, provider, event_ids[i]);
    cp_redis_append(r, "HMGET %s state reason msg index", key);
  }
  redisReply **rep = NULL;
  int nrep = 0;
  if (cp_redis_pipeline_exec(r, &rep, &nrep) != 0 || (size_t)nrep != n) {
    cp_redis_replies_free(rep, nrep);
    if (cp_redis_reconnect(r) != 0) { /* the caller retries later */ }
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    redisReply *x = rep[i];
    memset(&out[i], 0, sizeof out[i]);
    if (x == NULL || x->type != REDIS_REPLY_ARRAY || x->elements != 4) continue;
    if (x->element[0]->type == REDIS_REPLY_STRING)
      out[i].st = ing_state_of(x->element[0]->str, x->element[0]->len);
    out[i].reason = ing_reply_str(x->element[1]);
    out[i].message = ing_reply_str(x->element[2]);
    out[i].index = ing_reply_u64(x->element[3]);
  }
  cp_redis_replies_free(rep, nrep);
  return 0;
}
