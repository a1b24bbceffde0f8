/* notify_expiry.c -- the expiry schedule in Redis and the scanner that turns passed
 * thresholds (90, 30, 7 days before valid_until; the day after) into webhooks. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "notify.h"
#include "cp_dates.h"

/* Schedule: KEYS[1] hash, KEYS[2] due. ARGV: score (day), stage, provider, qual,
 * worker, valid_until, completion_date, event_id, index. */
static const char SCHEDULE_LUA[] =
  "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
  "redis.call('HSET', KEYS[1], 'state', 'scheduled', 'stage', ARGV[2], 'provider', ARGV[3],"
  " 'qual', ARGV[4], 'worker', ARGV[5], 'valid_until', ARGV[6], 'completion_date', ARGV[7],"
  " 'event_id', ARGV[8])\n"
  "redis.call('ZADD', KEYS[2], ARGV[1], ARGV[9])\n"
  "return 1\n";

/* Revoke: KEYS[1] hash, KEYS[2] due, KEYS[3] lease. ARGV: index, tombstone ttl. */
static const char REVOKE_LUA[] =
  "redis.call('ZREM', KEYS[2], ARGV[1])\n"
  "redis.call('ZREM', KEYS[3], ARGV[1])\n"
  "redis.call('DEL', KEYS[1])\n"
  "redis.call('HSET', KEYS[1], 'state', 'revoked')\n"
  "redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))\n"
  "return 1\n";

/* Claim: KEYS[1] due, KEYS[2] lease. ARGV: today, now ms, lease ms, max, key prefix.
 * Leases that ran out go back to due first (a replica died mid-scan). Returns per
 * claimed record: index, stage, provider, qual, worker, valid_until, completion_date, event_id. */
static const char CLAIM_LUA[] =
  "local now = tonumber(ARGV[2])\n"
  "local max = tonumber(ARGV[4])\n"
  "for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, max)) do\n"
  "  redis.call('ZREM', KEYS[2], m)\n"
  "  if redis.call('HGET', ARGV[5] .. '{' .. m .. '}', 'state') == 'scheduled' then\n"
  "    redis.call('ZADD', KEYS[1], 0, m) end\n"
  "end\n"
  "local out = {}\n"
  "for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, max)) do\n"
  "  local k = ARGV[5] .. '{' .. m .. '}'\n"
  "  local f = redis.call('HMGET', k, 'state', 'stage', 'provider', 'qual', 'worker',"
  "    'valid_until', 'completion_date', 'event_id')\n"
  "  redis.call('ZREM', KEYS[1], m)\n"
  "  if f[1] == 'scheduled' then\n"
  "    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), m)\n"
  "    out[#out + 1] = m\n"
  "    for i = 2, 8 do out[#out + 1] = f[i] or '' end\n"
  "  end\n"
  "end\n"
  "return out\n";
#define CLAIM_FIELDS 8

/* Advance: KEYS[1] hash, KEYS[2] due, KEYS[3] lease. ARGV: index, stage read,
 * next stage, score of the next stage (day), tombstone ttl. Compare-and-set on the
 * stage, so a stage never goes backwards. */
static const char ADVANCE_LUA[] =
  "redis.call('ZREM', KEYS[3], ARGV[1])\n"
  "if redis.call('HGET', KEYS[1], 'state') ~= 'scheduled' then return 0 end\n"
  "if redis.call('HGET', KEYS[1], 'stage') ~= ARGV[2] then return 0 end\n"
  "if tonumber(ARGV[3]) >= 4 then\n"
  "  redis.call('HSET', KEYS[1], 'state', 'done', 'stage', ARGV[3])\n"
  "  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))\n"
  "  return 1\n"
  "end\n"
  "redis.call('HSET', KEYS[1], 'stage', ARGV[3])\n"
  "redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])\n"
  "return 1\n";

/* Day number of a stage's threshold for a record valid until vu. */
static int32_t threshold(int32_t vu, int stage) {
  int before = nt_stage_days_before(stage);
  return before > 0 ? vu - before : vu + 1;
}

static int eval(cp_redis_t *r, const char *what, int argc, const char **argv, redisReply **out,
                char *err, size_t errlen) {
  size_t lens[20];
  assert(argc <= 20);
  for (int i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
  redisReply *rep = cp_redis_cmd_argv(r, argc, argv, lens);
  if (!rep) return cp_err(err, errlen, "%s: %s", what, cp_redis_errstr(r));
  if (out) *out = rep;
  else freeReplyObject(rep);
  return 0;
}

int nt_expiry_schedule(cp_redis_t *r, const Carepass__V1__NotifyJob *job, int32_t today,
                       char *err, size_t errlen) {
  int32_t vu;
  if (!job->valid_until || !job->valid_until[0] || cp_date_parse(job->valid_until, &vu) < 0) return 0;
  if (job->worker_pseudonym.len != CP_PSEUDONYM_BYTES) return 0;
  int stage = 0;
  while (stage < NT_EXP_STAGES && threshold(vu, stage) <= today) stage++;
  if (stage == NT_EXP_STAGES) return 0;   /* every threshold already passed */

  char key[64], idx[24], score[24], st[8], hex[2 * CP_PSEUDONYM_BYTES + 1];
  snprintf(key, sizeof key, NT_KEY_EXP_FMT, (unsigned long long)job->entry_index);
  snprintf(idx, sizeof idx, "%llu", (unsigned long long)job->entry_index);
  snprintf(score, sizeof score, "%d", (int)threshold(vu, stage));
  snprintf(st, sizeof st, "%d", stage);
  cp_hex(job->worker_pseudonym.data, CP_PSEUDONYM_BYTES, hex);
  const char *argv[] = {"EVAL", SCHEDULE_LUA, "2", key, NT_KEY_EXP_DUE, score, st,
                        job->provider_id ? job->provider_id : "",
                        job->qualification_code ? job->qualification_code : "", hex, job->valid_until,
                        job->completion_date ? job->completion_date : "",
                        job->provider_event_id ? job->provider_event_id : "", idx};
  return eval(r, "scheduling expiry", (int)CP_ARRAY_LEN(argv), argv, NULL, err, errlen);
}

int nt_expiry_revoke(cp_redis_t *r, uint64_t index, char *err, size_t errlen) {
  char key[64], idx[24], ttl[24];
  snprintf(key, sizeof key, NT_KEY_EXP_FMT, (unsigned long long)index);
  snprintf(idx, sizeof idx, "%llu", (unsigned long long)index);
  snprintf(ttl, sizeof ttl, "%d", NT_EXP_TOMBSTONE_TTL_S);
  const char *argv[] = {"EVAL", REVOKE_LUA, "3", key, NT_KEY_EXP_DUE, NT_KEY_EXP_LEASE, idx, ttl};
  return eval(r, "revoking expiry schedule", (int)CP_ARRAY_LEN(argv), argv, NULL, err, errlen);
}

/* Emit what one claimed record owes on `today` and advance its stage. */
static int handle_one(cp_redis_t *r, const struct prov_registry *providers, redisReply **f,
                      int32_t today, int64_t now_ms, size_t *created, char *err, size_t errlen) {
  const char *idx = f[0]->str;
  int stage = atoi(f[1]->str);
  int32_t vu = 0;
  char *end = NULL;
  unsigned long long index = strtoull(idx, &end, 10);
  if (!end || *end || stage < 0 || stage >= NT_EXP_STAGES || cp_date_parse(f[5]->str, &vu) < 0)
    stage = NT_EXP_STAGES;   /* corrupt: retire it */
  int emit = -1;
  for (int s = stage; s < NT_EXP_STAGES && threshold(vu, s) <= today; s++) emit = s;
  if (emit >= 0) {
    nt_record_event_t ev = {
        .type = emit == NT_EXP_STAGES - 1 ? "record.expired" : "record.expiring",
        .provider = f[2]->str, .qual = f[3]->str, .worker_hex = f[4]->str,
        .valid_until = f[5]->str, .completion_date = f[6]->str, .event_id = f[7]->str,
        .reason_code = "", .entry_index = index, .stage = emit};
    size_t n = 0;
    if (nt_fanout(r, providers, &ev, false, now_ms, &n, err, errlen) < 0) return -1;  /* lease retries */
    *created += n;
  }
  int next = stage >= NT_EXP_STAGES ? NT_EXP_STAGES : (emit >= 0 ? emit + 1 : stage);
  char key[64], st[16], nx[16], score[24], ttl[24];
  snprintf(key, sizeof key, NT_KEY_EXP_PREFIX "{%s}", idx);
  snprintf(st, sizeof st, "%d", atoi(f[1]->str));
  snprintf(nx, sizeof nx, "%d", next);
  snprintf(score, sizeof score, "%d", next < NT_EXP_STAGES ? (int)threshold(vu, next) : 0);
  snprintf(ttl, sizeof ttl, "%d", NT_EXP_TOMBSTONE_TTL_S);
  const char *argv[] = {"EVAL", ADVANCE_LUA, "3", key, NT_KEY_EXP_DUE, NT_KEY_EXP_LEASE, idx, st, nx, score, ttl};
  return eval(r, "advancing expiry schedule", (int)CP_ARRAY_LEN(argv), argv, NULL, err, errlen);
}

int nt_expiry_scan(cp_redis_t *r, const struct prov_registry *providers, int32_t today,
                   int64_t now_ms, int64_t lease_ms, size_t max, size_t *emitted,
                   size_t *created, char *err, size_t errlen) {
  char td[24], now[24], lease[24], smax[24];
  *emitted = *created = 0;
  snprintf(td, sizeof td, "%d", (int)today);
  snprintf(now, sizeof now, "%lld", (long long)now_ms);
  snprintf(lease, sizeof lease, "%lld", (long long)lease_ms);
  snprintf(smax, sizeof smax, "%zu", max);
  const char *argv[] = {"EVAL", CLAIM_LUA, "2", NT_KEY_EXP_DUE, NT_KEY_EXP_LEASE, td, now, lease, smax,
                        NT_KEY_EXP_PREFIX};
  redisReply *rep = NULL;
  if (eval(r, "claiming expiring records", (int)CP_ARRAY_LEN(argv), argv, &rep, err, errlen) < 0) return -1;
  int rc = 0;
  if (rep->type != REDIS_REPLY_ARRAY || rep->elements % CLAIM_FIELDS != 0) {
    rc = cp_err(err, errlen, "claiming expiring records: unexpected reply (type %d)", rep->type);
    goto done;
  }
  for (size_t i = 0; i < rep->elements; i += CLAIM_FIELDS) {
    redisReply **f = rep->element + i;
    bool ok = true;
    for (int j = 0; j < CLAIM_FIELDS; j++) ok = ok && f[j]->type == REDIS_REPLY_STRING;
    if (!ok) continue;   /* the lease brings it back */
    if (handle_one(r, providers, f, today, now_ms, created, err, errlen) < 0) {
      rc = -1;
      break;
    }
    (*emitted)++;
  }
done:
  freeReplyObject(rep);
  return rc;
}
