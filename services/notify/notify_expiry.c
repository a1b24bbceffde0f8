/* notify_expiry.c -- the expiry schedule in Redis and the scanner that turns passed
 * thresholds (90, 30, 7 days before valid_until; the day after) into webhooks. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "notify_expiry.h"
#include "notify_fanout.h"
#include "notify_keys.h"
#include "notify_sign.h"
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

/* Claim: KEYS[1] due, KEYS[2] lease. ARGV: today, now ms, lease ms, max, a schedule key (key_of).
 * Leases that ran out go back to due first (a replica died mid-scan). Returns per
 * claimed record: index, stage, provider, qual, worker, valid_until, completion_date, event_id. */
static const char CLAIM_LUA[] = NT_LUA_KEY_OF
  "local now = tonumber(ARGV[2])\n"
  "local max = tonumber(ARGV[4])\n"
  "for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, max)) do\n"
  "  redis.call('ZREM', KEYS[2], m)\n"
  "  if redis.call('HGET', key_of(ARGV[5], m), 'state') == 'scheduled' then\n"
  "    redis.call('ZADD', KEYS[1], 0, m) end\n"
  "end\n"
  "local out = {}\n"
  "for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, max)) do\n"
  "  local k = key_of(ARGV[5], m)\n"
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

static cp_redis_script_t schedule_script = CP_REDIS_SCRIPT("schedule expiry", 2, SCHEDULE_LUA);
static cp_redis_script_t revoke_script = CP_REDIS_SCRIPT("revoke expiry", 3, REVOKE_LUA);
static cp_redis_script_t claim_script = CP_REDIS_SCRIPT("claim expiring records", 2, CLAIM_LUA);
static cp_redis_script_t advance_script = CP_REDIS_SCRIPT("advance expiry", 3, ADVANCE_LUA);

bool nt_expiry_schedule_append(cp_redis_pipe_t *p, const Carepass__V1__NotifyJob *job, int32_t today,
                               cp_redis_handle_t *h) {
  int32_t vu;
  if (!job->valid_until || !job->valid_until[0] || cp_date_parse(job->valid_until, &vu) < 0) return false;
  if (job->worker_pseudonym.len != CP_PSEUDONYM_BYTES) return false;
  int stage = 0;
  while (stage < NT_EXP_STAGES && threshold(vu, stage) <= today) stage++;
  if (stage == NT_EXP_STAGES) return false;   /* every threshold already passed */

  char hex[2 * CP_PSEUDONYM_BYTES + 1];
  cp_hex(job->worker_pseudonym.data, CP_PSEUDONYM_BYTES, hex);
  cp_key_t key;
  *h = cp_redis_pipe_start(p, &schedule_script);
  cp_redis_pipe_arg(p, cp_key_exp(&key, job->entry_index));
  cp_redis_pipe_arg(p, cp_key_exp_due());
  cp_redis_pipe_argf(p, "%d", (int)threshold(vu, stage));
  cp_redis_pipe_argf(p, "%d", stage);
  cp_redis_pipe_arg(p, job->provider_id ? job->provider_id : "");
  cp_redis_pipe_arg(p, job->qualification_code ? job->qualification_code : "");
  cp_redis_pipe_arg(p, hex);
  cp_redis_pipe_arg(p, job->valid_until);
  cp_redis_pipe_arg(p, job->completion_date ? job->completion_date : "");
  cp_redis_pipe_arg(p, job->provider_event_id ? job->provider_event_id : "");
  cp_redis_pipe_argf(p, "%llu", (unsigned long long)job->entry_index);
  return true;
}

cp_redis_handle_t nt_expiry_revoke_append(cp_redis_pipe_t *p, uint64_t index) {
  cp_key_t key;
  cp_redis_handle_t h = cp_redis_pipe_start(p, &revoke_script);
  cp_redis_pipe_arg(p, cp_key_exp(&key, index));
  cp_redis_pipe_arg(p, cp_key_exp_due());
  cp_redis_pipe_arg(p, cp_key_exp_lease());
  cp_redis_pipe_argf(p, "%llu", (unsigned long long)index);
  cp_redis_pipe_argf(p, "%d", NT_EXP_TOMBSTONE_TTL_S);
  return h;
}

/* Run what is queued on p; -1 on a failed connection or any error reply. */
static int run_pipe(cp_redis_pipe_t *p, cp_redis_t *r, const char *what, char *err, size_t errlen) {
  if (cp_redis_pipe_exec(p, r) < 0) return cp_err(err, errlen, "%s: %s", what, cp_redis_errstr(r));
  return cp_redis_pipe_check(p, what, err, errlen);
}

int nt_expiry_schedule(cp_redis_t *r, const Carepass__V1__NotifyJob *job, int32_t today,
                       char *err, size_t errlen) {
  cp_redis_pipe_t *p = cp_redis_pipe_new();
  cp_redis_handle_t h;
  int rc = nt_expiry_schedule_append(p, job, today, &h) ? run_pipe(p, r, "scheduling expiry", err, errlen) : 0;
  cp_redis_pipe_destroy(&p);
  return rc;
}

int nt_expiry_revoke(cp_redis_t *r, uint64_t index, char *err, size_t errlen) {
  cp_redis_pipe_t *p = cp_redis_pipe_new();
  (void)nt_expiry_revoke_append(p, index);
  int rc = run_pipe(p, r, "revoking expiry schedule", err, errlen);
  cp_redis_pipe_destroy(&p);
  return rc;
}

/* Plan what one claimed record owes on `today` and queue the advance of its stage
 * (sent only after its deliveries are stored). */
static void plan_one(nt_plan_t *plan, cp_redis_pipe_t *adv, const struct prov_registry *providers,
                     redisReply **f, int32_t today, int64_t now_ms) {
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
    nt_plan_event(plan, providers, &ev, false, now_ms, 0);
  }
  int next = stage >= NT_EXP_STAGES ? NT_EXP_STAGES : (emit >= 0 ? emit + 1 : stage);
  cp_key_t key;
  (void)cp_redis_pipe_start(adv, &advance_script);
  cp_redis_pipe_arg(adv, cp_key_exp(&key, index));
  cp_redis_pipe_arg(adv, cp_key_exp_due());
  cp_redis_pipe_arg(adv, cp_key_exp_lease());
  cp_redis_pipe_arg(adv, idx);
  cp_redis_pipe_argf(adv, "%d", atoi(f[1]->str));
  cp_redis_pipe_argf(adv, "%d", next);
  cp_redis_pipe_argf(adv, "%d", next < NT_EXP_STAGES ? (int)threshold(vu, next) : 0);
  cp_redis_pipe_argf(adv, "%d", NT_EXP_TOMBSTONE_TTL_S);
}

int nt_expiry_scan(cp_redis_t *r, const struct prov_registry *providers, int32_t today,
                   int64_t now_ms, int64_t lease_ms, size_t max, size_t *emitted,
                   size_t *created, char *err, size_t errlen) {
  *emitted = *created = 0;
  cp_redis_pipe_t *claim = cp_redis_pipe_new(), *adv = cp_redis_pipe_new();
  nt_plan_t *plan = nt_plan_new();
  cp_key_t sample;
  cp_redis_handle_t h = cp_redis_pipe_start(claim, &claim_script);
  cp_redis_pipe_arg(claim, cp_key_exp_due());
  cp_redis_pipe_arg(claim, cp_key_exp_lease());
  cp_redis_pipe_argf(claim, "%d", (int)today);
  cp_redis_pipe_argf(claim, "%lld", (long long)now_ms);
  cp_redis_pipe_argf(claim, "%lld", (long long)lease_ms);
  cp_redis_pipe_argf(claim, "%zu", max);
  cp_redis_pipe_arg(claim, cp_key_exp(&sample, 0));
  int rc = run_pipe(claim, r, "claiming expiring records", err, errlen);
  if (rc < 0) goto done;
  const redisReply *rep = cp_redis_pipe_reply(claim, h);
  if (rep->type != REDIS_REPLY_ARRAY || rep->elements % CLAIM_FIELDS != 0) {
    rc = cp_err(err, errlen, "claiming expiring records: unexpected reply (type %d)", rep->type);
    goto done;
  }
  size_t records = 0;
  for (size_t i = 0; i < rep->elements; i += CLAIM_FIELDS) {
    redisReply **f = rep->element + i;
    bool ok = true;
    for (int j = 0; j < CLAIM_FIELDS; j++) ok = ok && f[j]->type == REDIS_REPLY_STRING;
    if (!ok) continue;   /* the lease brings it back */
    plan_one(plan, adv, providers, f, today, now_ms);
    records++;
  }
  if (records == 0) goto done;
  /* Deliveries first; a record advances only once its deliveries are stored (a
   * failure leaves it leased, and the lease brings it back). */
  rc = nt_plan_run(plan, r, now_ms, err, errlen);
  if (rc < 0) goto done;
  *created = nt_plan_count_created(plan, -1);
  rc = run_pipe(adv, r, "advancing expiry schedule", err, errlen);
  if (rc == 0) *emitted = records;
done:
  nt_plan_destroy(&plan);
  cp_redis_pipe_destroy(&adv);
  cp_redis_pipe_destroy(&claim);
  return rc;
}
