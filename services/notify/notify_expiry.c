/* notify_expiry.c -- the scanner that turns the expiry schedule's passed thresholds (90, 30,
 * 7 days before valid_until; the day after) into webhooks and moves each record's stage on.
 * The schedule itself is created (and retired by a revocation) by the projection, with the
 * commit (common/projection.c); notify copes with whatever schedules it finds. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "notify_expiry.h"
#include "notify_fanout.h"
#include "notify_keys.h"
#include "notify_sign.h"
#include "cp_dates.h"
#include "cp_projection.h"

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

static cp_redis_script_t claim_script = CP_REDIS_SCRIPT("claim expiring records", 2, CLAIM_LUA);
static cp_redis_script_t advance_script = CP_REDIS_SCRIPT("advance expiry", 3, ADVANCE_LUA);

/* Run what is queued on p; -1 on a failed connection or any error reply. */
static int run_pipe(cp_redis_pipe_t *p, cp_redis_t *r, const char *what, char *err, size_t errlen) {
  if (cp_redis_pipe_exec(p, r) < 0) return cp_err(err, errlen, "%s: %s", what, cp_redis_errstr(r));
  return cp_redis_pipe_check(p, what, err, errlen);
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
  if (!end || *end || stage < 0 || stage >= PROJ_EXP_STAGES || cp_date_parse(f[5]->str, &vu) < 0)
    stage = PROJ_EXP_STAGES;   /* corrupt: retire it */
  int emit = -1;
  for (int s = stage; s < PROJ_EXP_STAGES && proj_exp_threshold(vu, s) <= today; s++) emit = s;
  if (emit >= 0) {
    nt_record_event_t ev = {
        .type = emit == PROJ_EXP_STAGES - 1 ? "record.expired" : "record.expiring",
        .provider = f[2]->str, .qual = f[3]->str, .worker_hex = f[4]->str,
        .valid_until = f[5]->str, .completion_date = f[6]->str, .event_id = f[7]->str,
        .reason_code = "", .entry_index = index, .stage = emit};
    nt_plan_event(plan, providers, &ev, false, now_ms, 0);
  }
  int next = stage >= PROJ_EXP_STAGES ? PROJ_EXP_STAGES : (emit >= 0 ? emit + 1 : stage);
  cp_key_t key;
  (void)cp_redis_pipe_start(adv, &advance_script);
  cp_redis_pipe_arg(adv, cp_key_exp(&key, index));
  cp_redis_pipe_arg(adv, cp_key_exp_due());
  cp_redis_pipe_arg(adv, cp_key_exp_lease());
  cp_redis_pipe_arg(adv, idx);
  cp_redis_pipe_argf(adv, "%d", atoi(f[1]->str));
  cp_redis_pipe_argf(adv, "%d", next);
  cp_redis_pipe_argf(adv, "%d", next < PROJ_EXP_STAGES ? (int)proj_exp_threshold(vu, next) : 0);
  cp_redis_pipe_argf(adv, "%d", PROJ_EXP_TOMBSTONE_TTL_S);
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
