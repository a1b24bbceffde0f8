/* signer_redis.c -- the Redis side of a commit: event state, pending set, worker index, indexed marker,
 * and the notification jobs that go with committed entries. */
#include "signer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "cp_config.h"
#include "cp_keys.h"
#include "cp_log.h"
#include "cp_service.h"
#include "cp_zmq.h"

/* Append to the worker's entry list only if the index is not there yet, so that a
 * replay after a crash between the updates and the marker adds nothing twice. */
static const char RPUSH_ONCE[] =
    "if redis.call('LPOS', KEYS[1], ARGV[1]) == false then return redis.call('RPUSH', KEYS[1], ARGV[1]) end return 0";

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
  char key[64];
  snprintf(key, sizeof key, CP_KEY_REG_INDEXED_FMT, s->shard);
  redisReply *r = cp_redis_cmd(s->redis, "GET %s", key);
  if (r == NULL) {
    drop_redis(s, cp_redis_errstr(s->redis));
    return false;
  }
  uint64_t marker = 0;
  if (r->type == REDIS_REPLY_STRING) marker = strtoull(r->str, NULL, 10);
  freeReplyObject(r);
  uint64_t size = reg_size(s->log);
  if (marker > size) {
    cp_log_error("redis indexed marker is beyond the register; not replaying", CP_KV_INT("marker", marker),
                 CP_KV_INT("size", size), CP_KV_END);
    marker = size;
  }
  s->applied = marker;
  s->marked = marker;
  s->redis_synced = true;
  if (marker < size)
    cp_log_info("re-applying redis updates", CP_KV_INT("from", marker), CP_KV_INT("to", size), CP_KV_END);
  return true;
}

/* Queue the updates of one committed event. */
static void queue_event(signer_t *s, const char *provider_id, const char *event_id, uint64_t index) {
  char evkey[300], member[300], idx[24];
  snprintf(evkey, sizeof evkey, CP_KEY_EVENT_FMT, provider_id, event_id);
  snprintf(member, sizeof member, "%s:%s", provider_id, event_id);
  snprintf(idx, sizeof idx, "%" PRIu64, index);
  const char *hset[] = {"HSET", evkey, "state", "committed", "index", idx};
  cp_redis_append_argv(s->redis, 6, hset, NULL);
  const char *hdel[] = {"HDEL", evkey, "pending"};
  cp_redis_append_argv(s->redis, 3, hdel, NULL);
  const char *zrem[] = {"ZREM", CP_KEY_PENDING, member};
  cp_redis_append_argv(s->redis, 3, zrem, NULL);
}

/* A revocation seen in a chunk; the record it revokes is read after the walk
 * (reading another entry inside reg_foreach_entry would replace the bundle being walked). */
typedef struct {
  uint64_t index;          // register index of the revocation entry
  uint64_t revokes;        // index of the record it revokes
  int64_t issued_at;       // when it takes effect (unix seconds)
  char *event_id;          // provider_event_id of the revocation (malloc'd)
} revocation_t;

/* Walk state for one chunk of entries. */
typedef struct {
  signer_t *s;             // the service
  size_t queued;           // entries queued in the pipeline
  revocation_t *revs;      // revocations in this chunk (malloc'd)
  size_t nrevs;            // how many
} chunk_t;

/* Derived state of a revocation: the revoked record's event hash says by which
 * entry, from when. Only a RECORD / DERIVED_AWARD below the revocation is marked. */
static void queue_revoked(signer_t *s, const revocation_t *r) {
  char err[CP_ERRLEN];
  uint8_t *buf = NULL;
  size_t len = 0;
  if (r->revokes >= r->index || reg_read_entry(s->log, r->revokes, &buf, &len, err, sizeof err) != 0) {
    cp_log_warn("revocation names no earlier entry; nothing marked", CP_KV_INT("index", r->index),
                CP_KV_INT("revokes_index", r->revokes), CP_KV_END);
    return;
  }
  Carepass__V1__PassportEntry *pe = signer_entry_decode(buf, len, err, sizeof err);
  free(buf);
  if (pe == NULL) return;
  if (pe->entry_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_RECORD ||
      pe->entry_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_DERIVED_AWARD) {
    char evkey[300], idx[24], at[24];
    snprintf(evkey, sizeof evkey, CP_KEY_EVENT_FMT, pe->provider_id, pe->provider_event_id);
    snprintf(idx, sizeof idx, "%" PRIu64, r->index);
    snprintf(at, sizeof at, "%" PRId64, r->issued_at);
    /* revoked_by is the revoking event id (verify sets it first, HSETNX keeps that);
     * revoked_index / revoked_at say where on the register and from when */
    const char *hsetnx[] = {"HSETNX", evkey, "revoked_by", r->event_id};
    cp_redis_append_argv(s->redis, 4, hsetnx, NULL);
    const char *hset[] = {"HSET", evkey, "revoked_index", idx, "revoked_at", at};
    cp_redis_append_argv(s->redis, 6, hset, NULL);
  }
  protobuf_c_message_free_unpacked(&pe->base, NULL);
}

static int queue_entry(void *arg, uint64_t index, const uint8_t *entry, size_t len) {
  chunk_t *c = arg;
  signer_t *s = c->s;
  char err[CP_ERRLEN];
  Carepass__V1__PassportEntry *pe = signer_entry_decode(entry, len, err, sizeof err);
  if (pe == NULL) {
    cp_log_error("register entry not decodable; skipped in redis", CP_KV_INT("index", index),
                 CP_KV_STR("error", err), CP_KV_END);
    return 0;
  }
  if (pe->entry_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_KEY) {   /* key history: no event, no worker */
    protobuf_c_message_free_unpacked(&pe->base, NULL);
    return 0;
  }
  if (pe->entry_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION) {
    c->revs = realloc(c->revs, (c->nrevs + 1) * sizeof *c->revs);
    if (c->revs == NULL) abort();
    c->revs[c->nrevs++] = (revocation_t){index, pe->revokes_index, pe->issued_at, cp_strdup(pe->provider_event_id)};
  }
  queue_event(s, pe->provider_id, pe->provider_event_id, index);
  if (pe->worker_pseudonym.len == CP_PSEUDONYM_BYTES) {
    char hex[2 * CP_PSEUDONYM_BYTES + 1], wkey[100], idx[24];
    cp_hex(pe->worker_pseudonym.data, CP_PSEUDONYM_BYTES, hex);
    snprintf(wkey, sizeof wkey, CP_KEY_W_ENTRIES_FMT, hex);
    snprintf(idx, sizeof idx, "%" PRIu64, index);
    const char *ev[] = {"EVAL", RPUSH_ONCE, "1", wkey, idx};
    cp_redis_append_argv(s->redis, 5, ev, NULL);
  }
  /* entries committed before this start may not have been announced: announce again */
  if (index < s->start_size) signer_notify_entry(s, pe, index);
  c->queued++;
  protobuf_c_message_free_unpacked(&pe->base, NULL);
  return 0;
}

/* Run the queued pipeline; false (and Redis dropped) on any failure. */
static bool run_pipeline(signer_t *s) {
  redisReply **replies = NULL;
  int n = 0;
  bool ok = cp_redis_pipeline_exec(s->redis, &replies, &n) == 0;
  char why[CP_ERRLEN] = "";
  for (int i = 0; i < n; i++) {
    if (replies[i] == NULL || replies[i]->type == REDIS_REPLY_ERROR) {
      if (ok) snprintf(why, sizeof why, "%s", replies[i] ? replies[i]->str : "no reply");
      ok = false;
    }
    if (replies[i] != NULL) freeReplyObject(replies[i]);
  }
  free(replies);
  if (!ok) drop_redis(s, why[0] ? why : cp_redis_errstr(s->redis));
  return ok;
}

void signer_redis_apply(signer_t *s) {
  if (!ensure_redis(s)) return;
  uint64_t size = reg_size(s->log);
  while (s->applied < size) {
    uint64_t to = size - s->applied > CHUNK ? s->applied + CHUNK : size;
    chunk_t c = {s, 0, NULL, 0};
    char err[CP_ERRLEN];
    cp_redis_pipeline_begin(s->redis);
    int rc = reg_foreach_entry(s->log, s->applied, to, queue_entry, &c, err, sizeof err);
    for (size_t i = 0; i < c.nrevs; i++) {
      if (rc == 0) queue_revoked(s, &c.revs[i]);
      free(c.revs[i].event_id);
    }
    free(c.revs);
    if (rc != 0) {
      cp_log_error("cannot read the register for redis updates", CP_KV_STR("error", err), CP_KV_END);
      redisReply **replies = NULL;   /* discard what was queued */
      int n = 0;
      if (cp_redis_pipeline_exec(s->redis, &replies, &n) == 0) {
        for (int i = 0; i < n; i++) if (replies[i]) freeReplyObject(replies[i]);
      }
      free(replies);
      return;
    }
    if (!run_pipeline(s)) return;
    s->applied = to;
  }
}

void signer_redis_mark_indexed(signer_t *s) {
  uint64_t to = s->applied < s->notify_hold ? s->applied : s->notify_hold;
  if (s->redis == NULL || !s->redis_synced || s->marked >= to) return;
  char key[64], val[24];
  snprintf(key, sizeof key, CP_KEY_REG_INDEXED_FMT, s->shard);
  snprintf(val, sizeof val, "%" PRIu64, to);
  const char *argv[] = {"SET", key, val};
  redisReply *r = cp_redis_cmd_argv(s->redis, 3, argv, NULL);
  if (r == NULL) {
    drop_redis(s, cp_redis_errstr(s->redis));
    return;
  }
  freeReplyObject(r);
  s->marked = to;
}

void signer_redis_mark(signer_t *s, const char *provider_id, const char *event_id, uint64_t index) {
  if (!ensure_redis(s)) return;
  cp_redis_pipeline_begin(s->redis);
  queue_event(s, provider_id, event_id, index);
  (void)run_pipeline(s);
}

void signer_notify_entry(signer_t *s, const Carepass__V1__PassportEntry *pe, uint64_t index) {
  Carepass__V1__NotifyJob job = CAREPASS__V1__NOTIFY_JOB__INIT;
  bool revoke = pe->entry_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION;
  job.type = (char *)(revoke ? "record.revoked" : "record.committed");
  job.provider_id = pe->provider_id;
  job.provider_event_id = pe->provider_event_id;
  job.reason_code = pe->reason_code;
  job.entry_index = index;
  job.qualification_code = pe->qualification_code;
  job.worker_pseudonym = pe->worker_pseudonym;
  job.occurred_at = cp_now_ms();
  job.completion_date = pe->completion_date;
  job.valid_until = pe->valid_until;
  job.revokes_index = pe->revokes_index;
  /* wait while the queue is full (bounded by the stop flag): a job must not be dropped */
  while (cp_zmq_send_pb(s->notify, &job.base, ZMQ_DONTWAIT) != 0) {
    if (errno != EAGAIN || cp_stop_requested) {
      cp_log_error("notification job not sent; it is replayed at the next start", CP_KV_INT("index", index),
                   CP_KV_STR("error", zmq_strerror(errno)), CP_KV_END);
      if (index < s->notify_hold) s->notify_hold = index;
      return;
    }
    zmq_pollitem_t pi = {s->notify, 0, ZMQ_POLLOUT, 0};
    (void)zmq_poll(&pi, 1, 200);
  }
}
