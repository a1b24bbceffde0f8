/* notify_retry.c -- the delivery schedule in Redis: claim with a lease, delivered, retry, dead letter. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "notify_retry.h"
#include "notify_keys.h"
#include "notify_sign.h"

/* Claim: KEYS[1] due zset. ARGV: now ms, lease ms, max, a delivery key (key_of), per-endpoint cap
 * (0 = none), scan limit, a subscription key (key_of), then pairs of endpoint, load. An endpoint takes ids while
 * its load (plus what this claim took) is below the cap; the caller's load may be
 * negative to let an endpoint take more (deliveries it will queue locally).
 * Returns a flat array: first an integer, 1 when more may be due right now (max
 * reached, scan limit reached, or ids left because their endpoint was full), then
 * id, attempts, url, body, type, provider, created, to, and for a subscription's delivery
 * (to = "sub:<id>") its secret, prev_secret and prev_until as they are now (so a rotation applies
 * to every attempt from then on; "" when the subscription is gone or has none), per claimed
 * delivery. Ids whose hash is gone or no longer pending are dropped from the schedule. Reading
 * cp:sub:{id} from here crosses hash slots, as key_of does (notify_keys.h): one Redis. */
static const char CLAIM_LUA[] = NT_LUA_KEY_OF
  "local now = tonumber(ARGV[1])\n"
  "local max = tonumber(ARGV[3])\n"
  "local cap = tonumber(ARGV[5])\n"
  "local scan = tonumber(ARGV[6])\n"
  "local load = {}\n"
  "for i = 8, #ARGV - 1, 2 do load[ARGV[i]] = tonumber(ARGV[i + 1]) end\n"
  "local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, scan)\n"
  "local more = #ids >= scan and 1 or 0\n"
  "local out = {0}\n"
  "local n = 0\n"
  "for _, id in ipairs(ids) do\n"
  "  if n >= max then more = 1 break end\n"
  "  local k = key_of(ARGV[4], id)\n"
  "  local st = redis.call('HMGET', k, 'state', 'ep')\n"
  "  if st[1] == 'pending' then\n"
  "    local ep = st[2] or ''\n"
  "    local l = load[ep] or 0\n"
  "    if cap <= 0 or ep == '' or l < cap then\n"
  "      load[ep] = l + 1\n"
  "      n = n + 1\n"
  "      redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), id)\n"
  "      local a = redis.call('HINCRBY', k, 'attempts', 1)\n"
  "      local f = redis.call('HMGET', k, 'url', 'body', 'type', 'provider', 'created', 'to')\n"
  "      out[#out + 1] = id\n"
  "      out[#out + 1] = tostring(a)\n"
  "      for i = 1, 6 do out[#out + 1] = f[i] or '' end\n"
  "      local sec = {false, false, false}\n"
  "      local to = f[6] or ''\n"
  "      if string.sub(to, 1, 4) == 'sub:' then\n"
  "        sec = redis.call('HMGET', key_of(ARGV[7], string.sub(to, 5)), 'secret', 'prev_secret', 'prev_until')\n"
  "      end\n"
  "      for i = 1, 3 do out[#out + 1] = sec[i] or '' end\n"
  "    else\n"
  "      more = 1\n"
  "    end\n"
  "  else\n"
  "    redis.call('ZREM', KEYS[1], id)\n"
  "  end\n"
  "end\n"
  "out[1] = more\n"
  "return out\n";

#define CLAIM_FIELDS 11  /* strings per claimed delivery in the claim reply */

/* Outcomes of many attempts at once. KEYS[1] due zset, KEYS[2] dead list. ARGV[1] tombstone
 * ttl (s), then 5 per mark: op, id, status, t, the delivery's key (built by cp_key_nt_delivery;
 * an argument, not a KEYS entry, so that the script has a fixed number of keys).
 *  d  delivered: drop from the schedule; the hash becomes a tombstone (state=delivered)
 *  r  retry: reschedule at t (only while pending; otherwise drop from the schedule)
 *  x  dead: drop from the schedule, state=dead, dead_at=t, onto the dead list
 *  b  release (hand back unfinished): attempts - 1, due at t
 * Each mark is what the single-delivery scripts did before; returns how many applied. */
static const char MARKS_LUA[] =
  "local ttl = tonumber(ARGV[1])\n"
  "local done = 0\n"
  "for b = 2, #ARGV - 4, 5 do\n"
  "  local op, id, st, t, k = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4]\n"
  "  if op == 'd' then\n"
  "    redis.call('ZREM', KEYS[1], id)\n"
  "    if redis.call('EXISTS', k) == 1 then\n"
  "      redis.call('DEL', k)\n"
  "      redis.call('HSET', k, 'state', 'delivered', 'last_status', st)\n"
  "      redis.call('EXPIRE', k, ttl)\n"
  "      done = done + 1\n"
  "    end\n"
  "  elseif op == 'r' then\n"
  "    if redis.call('HGET', k, 'state') ~= 'pending' then\n"
  "      redis.call('ZREM', KEYS[1], id)\n"
  "    else\n"
  "      redis.call('HSET', k, 'last_status', st)\n"
  "      redis.call('ZADD', KEYS[1], t, id)\n"
  "      done = done + 1\n"
  "    end\n"
  "  elseif op == 'x' then\n"
  "    redis.call('ZREM', KEYS[1], id)\n"
  "    if redis.call('HGET', k, 'state') == 'pending' then\n"
  "      redis.call('HSET', k, 'state', 'dead', 'last_status', st, 'dead_at', t)\n"
  "      redis.call('LREM', KEYS[2], 0, id)\n"
  "      redis.call('LPUSH', KEYS[2], id)\n"
  "      done = done + 1\n"
  "    end\n"
  "  elseif op == 'b' then\n"
  "    if redis.call('HGET', k, 'state') == 'pending' then\n"
  "      if tonumber(redis.call('HGET', k, 'attempts') or '0') > 0 then\n"
  "        redis.call('HINCRBY', k, 'attempts', -1) end\n"
  "      redis.call('ZADD', KEYS[1], t, id)\n"
  "      done = done + 1\n"
  "    end\n"
  "  end\n"
  "end\n"
  "return done\n";

#define MARKS_PER_CALL 256   /* marks per script call (bounds one call's time in Redis) */

static cp_redis_script_t claim_script = CP_REDIS_SCRIPT("claim", 1, CLAIM_LUA);
static cp_redis_script_t marks_script = CP_REDIS_SCRIPT("marks", 2, MARKS_LUA);

void nt_claimed_free(nt_claimed_t *c) {
  if (!c) return;
  free(c->url);
  free(c->body);
  sodium_memzero(c, sizeof *c);   /* the subscription's secrets */
}

size_t nt_marks_calls(size_t n) { return (n + MARKS_PER_CALL - 1) / MARKS_PER_CALL; }

void nt_marks_append(cp_redis_pipe_t *p, const nt_mark_t *marks, size_t n, cp_redis_handle_t *calls) {
  for (size_t i = 0, c = 0; i < n; i += MARKS_PER_CALL, c++) {
    size_t m = n - i < MARKS_PER_CALL ? n - i : MARKS_PER_CALL;
    cp_redis_handle_t h = cp_redis_pipe_start(p, &marks_script);
    if (calls) calls[c] = h;
    cp_redis_pipe_arg(p, cp_key_nt_due());
    cp_redis_pipe_arg(p, cp_key_nt_dead());
    cp_redis_pipe_argf(p, "%d", NT_TOMBSTONE_TTL_S);
    for (size_t j = 0; j < m; j++) {
      const nt_mark_t *k = &marks[i + j];
      assert(k->op == NT_MARK_DELIVERED || k->op == NT_MARK_RETRY || k->op == NT_MARK_DEAD ||
             k->op == NT_MARK_RELEASE);
      cp_key_t key;
      cp_redis_pipe_argn(p, &k->op, 1);
      cp_redis_pipe_arg(p, k->id);
      cp_redis_pipe_argf(p, "%d", k->status);
      cp_redis_pipe_argf(p, "%lld", (long long)k->t_ms);
      cp_redis_pipe_arg(p, cp_key_nt_delivery(&key, k->id));
    }
  }
}

int nt_marks_apply(cp_redis_t *r, const nt_mark_t *marks, size_t n, char *err, size_t errlen) {
  if (n == 0) return 0;
  cp_redis_pipe_t *p = cp_redis_pipe_new();
  nt_marks_append(p, marks, n, NULL);
  int rc = cp_redis_pipe_exec(p, r);
  if (rc < 0) cp_err(err, errlen, "recording delivery outcomes: %s", cp_redis_errstr(r));
  else rc = cp_redis_pipe_check(p, "recording delivery outcomes", err, errlen);
  cp_redis_pipe_destroy(&p);
  return rc;
}

cp_redis_handle_t nt_claim_append(cp_redis_pipe_t *p, int64_t now_ms, int64_t lease_ms, size_t max, size_t scan,
                       int per_endpoint, const nt_ep_load_t *loads, size_t nloads) {
  /* With a limit, look further than max ids so a full endpoint does not hide others. */
  size_t nscan = scan ? scan : per_endpoint > 0 ? 4 * max + 64 : max;
  if (nscan > 4096 && nscan > max) nscan = max > 4096 ? max : 4096;
  cp_key_t sample;
  cp_redis_handle_t h = cp_redis_pipe_start(p, &claim_script);
  cp_redis_pipe_arg(p, cp_key_nt_due());
  cp_redis_pipe_argf(p, "%lld", (long long)now_ms);
  cp_redis_pipe_argf(p, "%lld", (long long)lease_ms);
  cp_redis_pipe_argf(p, "%zu", max);
  cp_redis_pipe_arg(p, cp_key_nt_delivery(&sample, "msg_"));
  cp_redis_pipe_argf(p, "%d", per_endpoint > 0 ? per_endpoint : 0);
  cp_redis_pipe_argf(p, "%zu", nscan);
  cp_redis_pipe_arg(p, cp_key_sub(&sample, "sub_"));
  for (size_t i = 0; i < nloads; i++) {
    cp_redis_pipe_arg(p, loads[i].endpoint);
    cp_redis_pipe_argf(p, "%d", loads[i].inflight);
  }
  return h;
}

int nt_claim_parse(const redisReply *rep, size_t max, nt_claimed_t *out, size_t *n, bool *more,
                   char *err, size_t errlen) {
  *n = 0;
  if (more) *more = false;
  if (!rep) return cp_err(err, errlen, "claiming due deliveries: no reply");
  if (rep->type == REDIS_REPLY_ERROR)
    return cp_err(err, errlen, "claiming due deliveries: %s", rep->str ? rep->str : "ERR");
  if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 || rep->element[0]->type != REDIS_REPLY_INTEGER ||
      (rep->elements - 1) % CLAIM_FIELDS != 0 || (rep->elements - 1) / CLAIM_FIELDS > max)
    return cp_err(err, errlen, "claiming due deliveries: unexpected reply (type %d)", rep->type);
  if (more) *more = rep->element[0]->integer != 0;
  for (size_t i = 1; i < rep->elements; i += CLAIM_FIELDS) {
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
    snprintf(c->to, sizeof c->to, "%s", e[7]->str);
    /* a secret that does not fit is not one: left empty, the delivery is signed v1a only */
    if (e[8]->len < sizeof c->secret) memcpy(c->secret, e[8]->str, e[8]->len + 1);
    if (e[9]->len < sizeof c->prev_secret) memcpy(c->prev_secret, e[9]->str, e[9]->len + 1);
    c->prev_until = strtoll(e[10]->str, NULL, 10);
    (*n)++;
  }
  return 0;
}

int nt_claim_limited(cp_redis_t *r, int64_t now_ms, int64_t lease_ms, size_t max,
                     int per_endpoint, const nt_ep_load_t *loads, size_t nloads,
                     nt_claimed_t *out, size_t *n, char *err, size_t errlen) {
  *n = 0;
  if (max == 0) return 0;
  cp_redis_pipe_t *p = cp_redis_pipe_new();
  cp_redis_handle_t h = nt_claim_append(p, now_ms, lease_ms, max, 0, per_endpoint, loads, nloads);
  int rc = cp_redis_pipe_exec(p, r);
  if (rc < 0) cp_err(err, errlen, "claiming due deliveries: %s", cp_redis_errstr(r));
  else rc = nt_claim_parse(cp_redis_pipe_reply(p, h), max, out, n, NULL, err, errlen);
  cp_redis_pipe_destroy(&p);
  return rc;
}

int nt_claim(cp_redis_t *r, int64_t now_ms, int64_t lease_ms, size_t max,
             nt_claimed_t *out, size_t *n, char *err, size_t errlen) {
  return nt_claim_limited(r, now_ms, lease_ms, max, 0, NULL, 0, out, n, err, errlen);
}

/* One mark, applied now. */
static int mark_one(cp_redis_t *r, char op, const char *id, int status, int64_t t_ms,
                    char *err, size_t errlen) {
  nt_mark_t m = {.op = op, .status = status, .t_ms = t_ms};
  snprintf(m.id, sizeof m.id, "%s", id);
  return nt_marks_apply(r, &m, 1, err, errlen);
}

int nt_mark_delivered(cp_redis_t *r, const char *id, int status, char *err, size_t errlen) {
  return mark_one(r, NT_MARK_DELIVERED, id, status, 0, err, errlen);
}

int nt_mark_retry(cp_redis_t *r, const char *id, int status, int64_t due_ms,
                  char *err, size_t errlen) {
  return mark_one(r, NT_MARK_RETRY, id, status, due_ms, err, errlen);
}

int nt_mark_dead(cp_redis_t *r, const char *id, int status, int64_t now_ms,
                 char *err, size_t errlen) {
  return mark_one(r, NT_MARK_DEAD, id, status, now_ms, err, errlen);
}

int nt_release(cp_redis_t *r, const char *id, int64_t now_ms, char *err, size_t errlen) {
  return mark_one(r, NT_MARK_RELEASE, id, 0, now_ms, err, errlen);
}
