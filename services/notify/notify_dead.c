/* notify_dead.c -- list and replay webhook dead letters (operator functions). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "notify_dead.h"
#include "notify_keys.h"

#define REPLAY_BATCH 500

/* Restore one id (helper shared by both scripts): dead -> pending, due now; its
 * retry window (counted from 'created') starts again. */
#define RESTORE_FN \
  "local function restore(id)\n" \
  "  local k = ARGV[3] .. '{' .. id .. '}'\n" \
  "  if redis.call('HGET', k, 'state') ~= 'dead' then return 0 end\n" \
  "  redis.call('HSET', k, 'state', 'pending', 'attempts', 0, 'created', ARGV[2])\n" \
  "  redis.call('HDEL', k, 'dead_at')\n" \
  "  redis.call('ZADD', KEYS[2], ARGV[2], id)\n" \
  "  return 1\n" \
  "end\n"

/* KEYS[1] dead list, KEYS[2] due. ARGV: id, now ms, key prefix.
 * Returns -1 when the id is not in the list, else 1 (0 if its hash was gone). */
static const char REPLAY_ONE_LUA[] = RESTORE_FN
  "if redis.call('LREM', KEYS[1], 0, ARGV[1]) == 0 then return -1 end\n"
  "return restore(ARGV[1])\n";

/* KEYS[1] dead list, KEYS[2] due. ARGV: batch size, now ms, key prefix.
 * Pops the oldest ids; returns {popped, restored}. */
static const char REPLAY_BATCH_LUA[] = RESTORE_FN
  "local popped, restored = 0, 0\n"
  "for i = 1, tonumber(ARGV[1]) do\n"
  "  local id = redis.call('RPOP', KEYS[1])\n"
  "  if not id then break end\n"
  "  popped = popped + 1\n"
  "  restored = restored + restore(id)\n"
  "end\n"
  "return {popped, restored}\n";

int nt_dead_count(cp_redis_t *r, size_t *count, char *err, size_t errlen) {
  redisReply *rep = cp_redis_cmd(r, "LLEN %s", NT_KEY_DEAD);
  if (!rep) return cp_err(err, errlen, "LLEN %s: %s", NT_KEY_DEAD, cp_redis_errstr(r));
  int rc = 0;
  if (rep->type == REDIS_REPLY_INTEGER && rep->integer >= 0) *count = (size_t)rep->integer;
  else rc = cp_err(err, errlen, "LLEN %s: unexpected reply type %d", NT_KEY_DEAD, rep->type);
  freeReplyObject(rep);
  return rc;
}

static void copy_str(char *dst, size_t size, const redisReply *e) {
  dst[0] = '\0';
  if (e && e->type == REDIS_REPLY_STRING) snprintf(dst, size, "%s", e->str);
}

static long long to_ll(const redisReply *e) {
  return e && e->type == REDIS_REPLY_STRING ? atoll(e->str) : 0;
}

int nt_dead_list(cp_redis_t *r, size_t start, size_t max, nt_dead_t **out, size_t *n,
                 char *err, size_t errlen) {
  redisReply *ids = NULL, **reps = NULL;
  int nreps = 0, rc = -1;
  *out = NULL;
  *n = 0;
  if (max == 0) return 0;
  /* hiredis's format knows %lld but not %zu */
  ids = cp_redis_cmd(r, "LRANGE %s %lld %lld", NT_KEY_DEAD, (long long)start,
                     (long long)(start + max - 1));
  if (!ids) return cp_err(err, errlen, "LRANGE %s: %s", NT_KEY_DEAD, cp_redis_errstr(r));
  if (ids->type != REDIS_REPLY_ARRAY) {
    cp_err(err, errlen, "LRANGE %s: unexpected reply type %d", NT_KEY_DEAD, ids->type);
    goto err;
  }
  if (ids->elements == 0) {
    rc = 0;
    goto err;   /* nothing to list; shared cleanup */
  }
  cp_redis_pipeline_begin(r);
  for (size_t i = 0; i < ids->elements; i++) {
    const char *id = ids->element[i]->type == REDIS_REPLY_STRING ? ids->element[i]->str : "";
    char key[96];
    snprintf(key, sizeof key, NT_KEY_DELIVERY_FMT, id);
    cp_redis_append(r, "HMGET %s type provider url attempts last_status created dead_at", key);
  }
  if (cp_redis_pipeline_exec(r, &reps, &nreps) < 0 || (size_t)nreps != ids->elements) {
    cp_err(err, errlen, "reading dead letters: %s", cp_redis_errstr(r));
    goto err;
  }
  nt_dead_t *list = cp_xcalloc(ids->elements, sizeof *list);
  for (size_t i = 0; i < ids->elements; i++) {
    nt_dead_t *d = &list[i];
    const redisReply *h = reps[i];
    copy_str(d->id, sizeof d->id, ids->element[i]);
    if (h && h->type == REDIS_REPLY_ARRAY && h->elements == 7) {
      copy_str(d->type, sizeof d->type, h->element[0]);
      copy_str(d->provider, sizeof d->provider, h->element[1]);
      copy_str(d->url, sizeof d->url, h->element[2]);
      d->attempts = (int)to_ll(h->element[3]);
      d->last_status = (int)to_ll(h->element[4]);
      d->created_ms = to_ll(h->element[5]);
      d->dead_at_ms = to_ll(h->element[6]);
    }
  }
  *out = list;
  *n = ids->elements;
  rc = 0;
err:
  for (int i = 0; i < nreps; i++)
    if (reps[i]) freeReplyObject(reps[i]);
  free(reps);
  if (ids) freeReplyObject(ids);
  return rc;
}

static redisReply *eval(cp_redis_t *r, const char *script, const char *arg1, const char *now) {
  const char *argv[] = {"EVAL", script, "2", NT_KEY_DEAD, NT_KEY_DUE, arg1, now,
                        NT_KEY_DELIVERY_PREFIX};
  size_t lens[CP_ARRAY_LEN(argv)];
  for (size_t i = 0; i < CP_ARRAY_LEN(argv); i++) lens[i] = strlen(argv[i]);
  return cp_redis_cmd_argv(r, (int)CP_ARRAY_LEN(argv), argv, lens);
}

int nt_dead_replay(cp_redis_t *r, const char *id, int64_t now_ms, size_t *replayed,
                   char *err, size_t errlen) {
  char now[24];
  snprintf(now, sizeof now, "%lld", (long long)now_ms);
  *replayed = 0;
  if (id) {
    redisReply *rep = eval(r, REPLAY_ONE_LUA, id, now);
    if (!rep) return cp_err(err, errlen, "replaying %s: %s", id, cp_redis_errstr(r));
    int rc = 0;
    if (rep->type != REDIS_REPLY_INTEGER) rc = cp_err(err, errlen, "replaying %s: unexpected reply", id);
    else if (rep->integer < 0) rc = cp_err(err, errlen, "%s is not in the dead-letter list", id);
    else *replayed = (size_t)rep->integer;
    freeReplyObject(rep);
    return rc;
  }
  size_t total = 0;
  if (nt_dead_count(r, &total, err, errlen) < 0) return -1;
  char batch[16];
  snprintf(batch, sizeof batch, "%d", REPLAY_BATCH);
  /* Bounded: enough rounds for the list as it was, plus one for late arrivals. */
  for (size_t round = 0; round <= total / REPLAY_BATCH + 1; round++) {
    redisReply *rep = eval(r, REPLAY_BATCH_LUA, batch, now);
    if (!rep) return cp_err(err, errlen, "replaying dead letters: %s", cp_redis_errstr(r));
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER || rep->element[1]->type != REDIS_REPLY_INTEGER) {
      freeReplyObject(rep);
      return cp_err(err, errlen, "replaying dead letters: unexpected reply");
    }
    long long popped = rep->element[0]->integer;
    *replayed += (size_t)rep->element[1]->integer;
    freeReplyObject(rep);
    if (popped < REPLAY_BATCH) break;
  }
  return 0;
}
