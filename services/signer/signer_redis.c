/* signer_redis.c -- the Redis side of a commit: each durable entry through the projection
 * (common/projection.c: event state, pending set, worker index, revocation markers, expiry
 * schedule, the notice it owes in the outbox) and the indexed marker, one transaction per chunk. */
#include "signer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "cp_config.h"
#include "cp_dates.h"
#include "cp_keys.h"
#include "cp_log.h"
#include "cp_projection.h"
#include "cp_service.h"
#include "cp_zmq.h"

#define CHUNK 1024   /* entries per pipeline */

static void drop_redis(signer_t *s, const char *why) {
  cp_log_warn("redis unavailable; register updates will be re-applied later", CP_KV_STR("error", why), CP_KV_END);
  cp_redis_destroy(&s->redis);
  s->redis_synced = false;
  s->redis_retry_at = cp_mono_ms() + SIGNER_REDIS_RETRY_MS;
}

/* Connect (when due) and read the indexed marker once per connection. */
static bool ensure_redis(signer_t *s) {
  if (s->redis == NULL) {
    if (cp_mono_ms() < s->redis_retry_at) return false;
    char err[CP_ERRLEN];
    s->redis = cp_redis_new(cp_cfg_str(CP_OPT_REDIS_HOST), (int)cp_cfg_int(CP_OPT_REDIS_PORT),
                            (int)cp_cfg_int(CP_OPT_REDIS_TIMEOUT_MS), err, sizeof err);
    if (s->redis == NULL) {
      s->redis_retry_at = cp_mono_ms() + SIGNER_REDIS_RETRY_MS;
      return false;
    }
  }
  if (s->redis_synced) return true;
  cp_key_t key;
  redisReply *r = cp_redis_cmd(s->redis, "GET %s", cp_key_reg_indexed(&key, s->shard));
  if (r == NULL) {
    drop_redis(s, cp_redis_errstr(s->redis));
    return false;
  }
  uint64_t marker = cp_redis_reply_u64(r);
  freeReplyObject(r);
  uint64_t size = reg_size(s->log);
  if (marker > size) {
    cp_log_error("redis indexed marker is beyond the register; not replaying", CP_KV_INT("marker", marker),
                 CP_KV_INT("size", size), CP_KV_END);
    marker = size;
  }
  s->applied = marker;
  s->redis_synced = true;
  if (marker < size)
    cp_log_info("re-applying redis updates", CP_KV_INT("from", marker), CP_KV_INT("to", size), CP_KV_END);
  return true;
}

/* One chunk's decoded entries: projected after the walk, in register order, because a
 * revocation's target is read from the register (reading another entry inside
 * reg_foreach_entry would replace the bundle being walked). */
typedef struct {
  uint64_t *index;                       // register index of each entry
  Carepass__V1__PassportEntry **pe;      // the decoded entries (owned)
  size_t n;                              // how many
  size_t cap;                            // allocated
} chunk_t;

static int collect_entry(void *arg, uint64_t index, const uint8_t *entry, size_t len) {
  chunk_t *c = arg;
  char err[CP_ERRLEN];
  Carepass__V1__PassportEntry *pe = signer_entry_decode(entry, len, err, sizeof err);
  if (pe == NULL) {
    cp_log_error("register entry not decodable; skipped in redis", CP_KV_INT("index", index),
                 CP_KV_STR("error", err), CP_KV_END);
    return 0;
  }
  if (c->n == c->cap) {
    c->cap = c->cap ? 2 * c->cap : 64;
    c->index = cp_xrealloc(c->index, c->cap * sizeof *c->index);
    c->pe = cp_xrealloc(c->pe, c->cap * sizeof *c->pe);
  }
  c->index[c->n] = index;
  c->pe[c->n++] = pe;
  return 0;
}

static void chunk_clear(chunk_t *c) {
  for (size_t i = 0; i < c->n; i++) protobuf_c_message_free_unpacked(&c->pe[i]->base, NULL);
  free(c->index);
  free(c->pe);
  memset(c, 0, sizeof *c);
}

/* The entry a revocation revokes, when it names one below it that can be read. */
static Carepass__V1__PassportEntry *read_target(signer_t *s, uint64_t index, const Carepass__V1__PassportEntry *pe) {
  if (pe->entry_type != CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION) return NULL;
  char err[CP_ERRLEN];
  uint8_t *buf = NULL;
  size_t len = 0;
  if (pe->revokes_index >= index || reg_read_entry(s->log, pe->revokes_index, &buf, &len, err, sizeof err) != 0) {
    cp_log_warn("revocation names no earlier entry; nothing marked", CP_KV_INT("index", index),
                CP_KV_INT("revokes_index", pe->revokes_index), CP_KV_END);
    return NULL;
  }
  Carepass__V1__PassportEntry *t = signer_entry_decode(buf, len, err, sizeof err);
  free(buf);
  return t;
}

/* Run the queued pipeline; false (and Redis dropped) on any failure. */
static bool run_pipeline(signer_t *s, cp_redis_pipe_t *pipe) {
  char why[CP_ERRLEN] = "";
  bool ok = cp_redis_pipe_exec(pipe, s->redis) == 0 && cp_redis_pipe_check(pipe, "redis", why, sizeof why) == 0;
  if (!ok) drop_redis(s, why[0] ? why : cp_redis_errstr(s->redis));
  return ok;
}

void signer_redis_apply(signer_t *s) {
  if (!ensure_redis(s)) return;
  uint64_t size = reg_size(s->log);
  proj_t *proj = proj_new(PROJ_LIVE, NULL, cp_today());
  proj_set_subjects(proj, s->subjects);
  cp_redis_pipe_t *pipe = cp_redis_pipe_new();
  while (s->applied < size) {
    uint64_t to = size - s->applied > CHUNK ? s->applied + CHUNK : size;
    chunk_t c = {0};
    char err[CP_ERRLEN];
    cp_redis_pipe_reset(pipe);
    if (reg_foreach_entry(s->log, s->applied, to, collect_entry, &c, err, sizeof err) != 0) {
      cp_log_error("cannot read the register for redis updates", CP_KV_STR("error", err), CP_KV_END);
      chunk_clear(&c);
      break;
    }
    /* One transaction: the entries' state, their notices and the marker land together or not
     * at all, so a crash anywhere re-applies the chunk (the projection is idempotent; a notice
     * written twice is a duplicate receivers drop by webhook-id) and never loses a notice. */
    (void)cp_redis_pipe_tx_begin(pipe);
    for (size_t i = 0; i < c.n; i++) {
      Carepass__V1__PassportEntry *target = read_target(s, c.index[i], c.pe[i]);
      proj_entry(proj, pipe, c.index[i], c.pe[i], target);
      if (target != NULL) protobuf_c_message_free_unpacked(&target->base, NULL);
    }
    proj_indexed(pipe, s->shard, to);
    (void)cp_redis_pipe_tx_end(pipe);
    chunk_clear(&c);
    if (!run_pipeline(s, pipe)) break;
    s->applied = to;
  }
  cp_redis_pipe_destroy(&pipe);
  proj_destroy(&proj);
}

bool signer_redis_mark(signer_t *s, const char *provider_id, const char *event_id, uint64_t index) {
  if (!ensure_redis(s)) return false;
  cp_redis_pipe_t *pipe = cp_redis_pipe_new();
  proj_event_committed(pipe, provider_id, event_id, index);
  bool ok = run_pipeline(s, pipe);
  cp_redis_pipe_destroy(&pipe);
  return ok;
}
