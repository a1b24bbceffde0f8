/* notify_dead.c -- list and replay webhook dead letters (operator functions). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "notify_dead.h"
#include "notify_keys.h"

#define REPLAY_BATCH 500

/* Restore one id (helper shared by both scripts): dead -> pending, due now; its
 * retry window (counted from 'created') starts again. */
#define RESTORE_FN NT_LUA_KEY_OF \
  "local function restore(id)\n" \
  "  local k = key_of(ARGV[3], id)\n" \
  "  if redis.call('HGET', k, 'state') ~= 'dead' then return 0 end\n" \
  "  redis.call('HSET', k, 'state', 'pending', 'attempts', 0, 'created', ARGV[2])\n" \
  "  redis.call('HDEL', k, 'dead_at')\n" \
  "  redis.call('ZADD', KEYS[2], ARGV[2], id)\n" \
  "  return 1\n" \
  "end\n"

/* KEYS[1] dead list, KEYS[2] due. ARGV: id, now ms, a delivery key (key_of).
 * Returns -1 when the id is not in the list, else 1 (0 if its hash was gone). */
static const char REPLAY_ONE_LUA[] = RESTORE_FN
  "if redis.call('LREM', KEYS[1], 0, ARGV[1]) == 0 then return -1 end\n"
  "return restore(ARGV[1])\n";

/* KEYS[1] dead list, KEYS[2] due. ARGV: batch size, now ms, a delivery key (key_of).
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

static cp_redis_script_t replay_one_script = CP_REDIS_SCRIPT("replay one dead letter", 2, REPLAY_ONE_LUA);
static cp_redis_script_t replay_batch_script = CP_REDIS_SCRIPT("replay dead letters", 2, REPLAY_BATCH_LUA);

int nt_dead_count(cp_redis_t *r, size_t *count, char *err, size_t errlen) {
  redisReply *rep = cp_redis_cmd(r, "LLEN %s", cp_key_nt_dead());
  if (!rep) return cp_err(err, errlen, "LLEN %s: %s", cp_key_nt_dead(), cp_redis_errstr(r));
  int rc = 0;
  if (rep->type == REDIS_REPLY_INTEGER && rep->integer >= 0) *count = (size_t)rep->integer;
  else rc = cp_err(err, errlen, "LLEN %s: unexpected reply type %d", cp_key_nt_dead(), rep->type);
  freeReplyObject(rep);
  return rc;
}

int nt_dead_list(cp_redis_t *r, size_t start, size_t max, nt_dead_t **out, size_t *n,
                 char *err, size_t errlen) {
  redisReply *ids = NULL;
  cp_redis_pipe_t *p = NULL;
  cp_redis_handle_t *h = NULL;
  int rc = -1;
  *out = NULL;
  *n = 0;
  if (max == 0) return 0;
  /* hiredis's format knows %lld but not %zu */
  ids = cp_redis_cmd(r, "LRANGE %s %lld %lld", cp_key_nt_dead(), (long long)start,
                     (long long)(start + max - 1));
  if (!ids) return cp_err(err, errlen, "LRANGE %s: %s", cp_key_nt_dead(), cp_redis_errstr(r));
  if (ids->type != REDIS_REPLY_ARRAY) {
    cp_err(err, errlen, "LRANGE %s: unexpected reply type %d", cp_key_nt_dead(), ids->type);
    goto err;
  }
  if (ids->elements == 0) {
    rc = 0;
    goto err;   /* nothing to list; shared cleanup */
  }
  p = cp_redis_pipe_new();
  h = cp_xcalloc(ids->elements, sizeof *h);
  for (size_t i = 0; i < ids->elements; i++) {
    char id[sizeof ((nt_dead_t *)NULL)->id];   /* bounded, so a stray long member cannot make a key too long */
    cp_redis_reply_str(ids->element[i], id, sizeof id);
    cp_key_t key;
    h[i] = cp_redis_pipe_cmd(p, "HMGET %s type provider url attempts last_status created dead_at",
                             cp_key_nt_delivery(&key, id));
  }
  if (cp_redis_pipe_exec(p, r) < 0) {
    cp_err(err, errlen, "reading dead letters: %s", cp_redis_errstr(r));
    goto err;
  }
  nt_dead_t *list = cp_xcalloc(ids->elements, sizeof *list);
  for (size_t i = 0; i < ids->elements; i++) {
    nt_dead_t *d = &list[i];
    const redisReply *f = cp_redis_reply_array(cp_redis_pipe_reply(p, h[i]), 7);
    cp_redis_reply_str(ids->element[i], d->id, sizeof d->id);
    if (f) {
      cp_redis_reply_str(f->element[0], d->type, sizeof d->type);
      cp_redis_reply_str(f->element[1], d->provider, sizeof d->provider);
      cp_redis_reply_str(f->element[2], d->url, sizeof d->url);
      d->attempts = (int)cp_redis_reply_u64(f->element[3]);
      d->last_status = (int)cp_redis_reply_u64(f->element[4]);
      d->created_ms = (int64_t)cp_redis_reply_u64(f->element[5]);
      d->dead_at_ms = (int64_t)cp_redis_reply_u64(f->element[6]);
    }
  }
  *out = list;
  *n = ids->elements;
  rc = 0;
err:
  free(h);
  cp_redis_pipe_destroy(&p);
  if (ids) freeReplyObject(ids);
  return rc;
}

static redisReply *eval(cp_redis_t *r, cp_redis_script_t *script, const char *arg1, const char *now) {
  cp_key_t sample;
  const char *argv[] = {cp_key_nt_dead(), cp_key_nt_due(), arg1, now, cp_key_nt_delivery(&sample, "msg_")};
  return cp_redis_eval(r, script, (int)CP_ARRAY_LEN(argv), argv, NULL);
}

int nt_dead_replay(cp_redis_t *r, const char *id, int64_t now_ms, size_t *replayed,
                   char *err, size_t errlen) {
  char now[24];
  snprintf(now, sizeof now, "%lld", (long long)now_ms);
  *replayed = 0;
  if (id) {
    redisReply *rep = eval(r, &replay_one_script, id, now);
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
    redisReply *rep = eval(r, &replay_batch_script, batch, now);
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
