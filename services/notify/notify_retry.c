/* notify_retry.c -- the delivery schedule in Redis: claim with a lease, delivered, retry, dead letter. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "notify.h"

/* Claim: KEYS[1] due zset. ARGV: now ms, lease ms, max, key prefix, per-endpoint cap
 * (0 = none), scan limit, then pairs of endpoint, in-flight count.
 * Returns a flat array: id, attempts, url, body, type, provider, created per claimed
 * delivery. Ids whose hash is gone or no longer pending are dropped from the schedule;
 * ids whose endpoint is full stay due for a later claim. */
static const char CLAIM_LUA[] =
  "local now = tonumber(ARGV[1])\n"
  "local max = tonumber(ARGV[3])\n"
  "local cap = tonumber(ARGV[5])\n"
  "local load = {}\n"
  "for i = 7, #ARGV - 1, 2 do load[ARGV[i]] = tonumber(ARGV[i + 1]) end\n"
  "local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[6]))\n"
  "local out = {}\n"
  "local n = 0\n"
  "for _, id in ipairs(ids) do\n"
  "  if n >= max then break end\n"
  "  local k = ARGV[4] .. '{' .. id .. '}'\n"
  "  local st = redis.call('HMGET', k, 'state', 'ep')\n"
  "  if st[1] == 'pending' then\n"
  "    local ep = st[2] or ''\n"
  "    local l = load[ep] or 0\n"
  "    if cap <= 0 or ep == '' or l < cap then\n"
  "      load[ep] = l + 1\n"
  "      n = n + 1\n"
  "      redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), id)\n"
  "      local a = redis.call('HINCRBY', k, 'attempts', 1)\n"
  "      local f = redis.call('HMGET', k, 'url', 'body', 'type', 'provider', 'created')\n"
  "      out[#out + 1] = id\n"
  "      out[#out + 1] = tostring(a)\n"
  "      for i = 1, 5 do out[#out + 1] = f[i] or '' end\n"
  "    end\n"
  "  else\n"
  "    redis.call('ZREM', KEYS[1], id)\n"
  "  end\n"
  "end\n"
  "return out\n";

#define CLAIM_FIELDS 7   /* strings per claimed delivery in the claim reply */

/* Delivered: KEYS[1] hash, KEYS[2] due. ARGV: id, status, tombstone ttl. */
static const char DELIVERED_LUA[] =
  "redis.call('ZREM', KEYS[2], ARGV[1])\n"
  "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
  "redis.call('DEL', KEYS[1])\n"
  "redis.call('HSET', KEYS[1], 'state', 'delivered', 'last_status', ARGV[2])\n"
  "redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))\n"
  "return 1\n";

/* Retry: KEYS[1] hash, KEYS[2] due. ARGV: id, status, due ms. */
static const char RETRY_LUA[] =
  "if redis.call('HGET', KEYS[1], 'state') ~= 'pending' then\n"
  "  redis.call('ZREM', KEYS[2], ARGV[1]) return 0 end\n"
  "redis.call('HSET', KEYS[1], 'last_status', ARGV[2])\n"
  "redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])\n"
  "return 1\n";

/* Dead: KEYS[1] hash, KEYS[2] due, KEYS[3] dead list. ARGV: id, status, now ms. */
static const char DEAD_LUA[] =
  "redis.call('ZREM', KEYS[2], ARGV[1])\n"
  "if redis.call('HGET', KEYS[1], 'state') ~= 'pending' then return 0 end\n"
  "redis.call('HSET', KEYS[1], 'state', 'dead', 'last_status', ARGV[2], 'dead_at', ARGV[3])\n"
  "redis.call('LREM', KEYS[3], 0, ARGV[1])\n"
  "redis.call('LPUSH', KEYS[3], ARGV[1])\n"
  "return 1\n";

/* Release: KEYS[1] hash, KEYS[2] due. ARGV: id, now ms. */
static const char RELEASE_LUA[] =
  "if redis.call('HGET', KEYS[1], 'state') ~= 'pending' then return 0 end\n"
  "if tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0') > 0 then\n"
  "  redis.call('HINCRBY', KEYS[1], 'attempts', -1) end\n"
  "redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])\n"
  "return 1\n";

void nt_claimed_free(nt_claimed_t *c) {
  if (!c) return;
  free(c->url);
  free(c->body);
  memset(c, 0, sizeof *c);
}

/* Run a script given as argv (after EVAL script numkeys); expects an integer reply. */
static int eval_int(cp_redis_t *r, const char *what, const char *id, int argc, const char **argv,
                    char *err, size_t errlen) {
  size_t lens[16];
  assert(argc <= 16);
  for (int i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
  redisReply *rep = cp_redis_cmd_argv(r, argc, argv, lens);
  if (!rep) return cp_err(err, errlen, "%s %s: %s", what, id, cp_redis_errstr(r));
  int rc = rep->type == REDIS_REPLY_INTEGER ? 0
           : cp_err(err, errlen, "%s %s: unexpected reply type %d", what, id, rep->type);
  freeReplyObject(rep);
  return rc;
}

int nt_claim_limited(cp_redis_t *r, int64_t now_ms, int64_t lease_ms, size_t max,
                     int per_endpoint, const nt_ep_load_t *loads, size_t nloads,
                     nt_claimed_t *out, size_t *n, char *err, size_t errlen) {
  char now[24], lease[24], smax[24], cap[24], scan[24];
  *n = 0;
  if (max == 0) return 0;
  snprintf(now, sizeof now, "%lld", (long long)now_ms);
  snprintf(lease, sizeof lease, "%lld", (long long)lease_ms);
  snprintf(smax, sizeof smax, "%zu", max);
  snprintf(cap, sizeof cap, "%d", per_endpoint > 0 ? per_endpoint : 0);
  /* With a limit, look further than max ids so a full endpoint does not hide others. */
  size_t nscan = per_endpoint > 0 ? 4 * max + 64 : max;
  if (nscan > 4096 && nscan > max) nscan = max > 4096 ? max : 4096;
  snprintf(scan, sizeof scan, "%zu", nscan);

  size_t argc = 10 + 2 * nloads;
  const char **argv = cp_xcalloc(argc, sizeof *argv);
  size_t *lens = cp_xcalloc(argc, sizeof *lens);
  char (*counts)[16] = cp_xcalloc(nloads ? nloads : 1, sizeof *counts);
  const char *fixed[] = {"EVAL", CLAIM_LUA, "1", NT_KEY_DUE, now, lease, smax, NT_KEY_DELIVERY_PREFIX, cap, scan};
  memcpy(argv, fixed, sizeof fixed);
  for (size_t i = 0; i < nloads; i++) {
    snprintf(counts[i], sizeof counts[i], "%d", loads[i].inflight);
    argv[10 + 2 * i] = loads[i].endpoint;
    argv[11 + 2 * i] = counts[i];
  }
  for (size_t i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
  redisReply *rep = cp_redis_cmd_argv(r, (int)argc, argv, lens);
  free(argv);
  free(lens);
  free(counts);
  if (!rep) return cp_err(err, errlen, "claiming due deliveries: %s", cp_redis_errstr(r));
  if (rep->type != REDIS_REPLY_ARRAY || rep->elements % CLAIM_FIELDS != 0 ||
      rep->elements / CLAIM_FIELDS > max) {
    int t = rep->type;
    freeReplyObject(rep);
    return cp_err(err, errlen, "claiming due deliveries: unexpected reply (type %d)", t);
  }
  for (size_t i = 0; i < rep->elements; i += CLAIM_FIELDS) {
    redisReply **e = rep->element + i;
    bool ok = true;
    for (int j = 0; j < CLAIM_FIELDS; j++) ok = ok && e[j]->type == REDIS_REPLY_STRING;
    if (!ok || e[0]->len != NT_ID_LEN) continue;   /* not ours: skip, the lease brings it back */
    nt_claimed_t *c = &out[*n];
    memset(c, 0, sizeof *c);
    memcpy(c->id, e[0]->str, NT_ID_LEN);
    c->attempts = atoi(e[1]->str);
    c->url = cp_strdup(e[2]->str);
    c->body = cp_strdup(e[3]->str);
    snprintf(c->type, sizeof c->type, "%s", e[4]->str);
    snprintf(c->provider, sizeof c->provider, "%s", e[5]->str);
    c->created_ms = strtoll(e[6]->str, NULL, 10);
    (*n)++;
  }
  freeReplyObject(rep);
  return 0;
}

int nt_claim(cp_redis_t *r, int64_t now_ms, int64_t lease_ms, size_t max,
             nt_claimed_t *out, size_t *n, char *err, size_t errlen) {
  return nt_claim_limited(r, now_ms, lease_ms, max, 0, NULL, 0, out, n, err, errlen);
}

int nt_mark_delivered(cp_redis_t *r, const char *id, int status, char *err, size_t errlen) {
  char key[64], st[16], ttl[16];
  snprintf(key, sizeof key, NT_KEY_DELIVERY_FMT, id);
  snprintf(st, sizeof st, "%d", status);
  snprintf(ttl, sizeof ttl, "%d", NT_TOMBSTONE_TTL_S);
  const char *argv[] = {"EVAL", DELIVERED_LUA, "2", key, NT_KEY_DUE, id, st, ttl};
  return eval_int(r, "marking delivered", id, (int)CP_ARRAY_LEN(argv), argv, err, errlen);
}

int nt_mark_retry(cp_redis_t *r, const char *id, int status, int64_t due_ms,
                  char *err, size_t errlen) {
  char key[64], st[16], due[24];
  snprintf(key, sizeof key, NT_KEY_DELIVERY_FMT, id);
  snprintf(st, sizeof st, "%d", status);
  snprintf(due, sizeof due, "%lld", (long long)due_ms);
  const char *argv[] = {"EVAL", RETRY_LUA, "2", key, NT_KEY_DUE, id, st, due};
  return eval_int(r, "rescheduling", id, (int)CP_ARRAY_LEN(argv), argv, err, errlen);
}

int nt_mark_dead(cp_redis_t *r, const char *id, int status, int64_t now_ms,
                 char *err, size_t errlen) {
  char key[64], st[16], now[24];
  snprintf(key, sizeof key, NT_KEY_DELIVERY_FMT, id);
  snprintf(st, sizeof st, "%d", status);
  snprintf(now, sizeof now, "%lld", (long long)now_ms);
  const char *argv[] = {"EVAL", DEAD_LUA, "3", key, NT_KEY_DUE, NT_KEY_DEAD, id, st, now};
  return eval_int(r, "dead-lettering", id, (int)CP_ARRAY_LEN(argv), argv, err, errlen);
}

int nt_release(cp_redis_t *r, const char *id, int64_t now_ms, char *err, size_t errlen) {
  char key[64], now[24];
  snprintf(key, sizeof key, NT_KEY_DELIVERY_FMT, id);
  snprintf(now, sizeof now, "%lld", (long long)now_ms);
  const char *argv[] = {"EVAL", RELEASE_LUA, "2", key, NT_KEY_DUE, id, now};
  return eval_int(r, "releasing", id, (int)CP_ARRAY_LEN(argv), argv, err, errlen);
}
