/* notify_outbox.c -- notify reads the outbox stream with its consumer group: entries become
 * deliveries stored in the same transaction that acknowledges them; entries another replica
 * read and never acknowledged are taken over after the lease (XAUTOCLAIM). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "notify_outbox.h"
#include "notify_jobs.h"
#include "notify_plan_jobs.h"
#include "cp_codec.h"
#include "cp_keys.h"
#include "cp_log.h"
#include "cp_outbox.h"

/* Forget consumers that hold nothing: each name in ARGV[2..] is deleted from group ARGV[1] only
 * if it has no pending entry at that moment (a replica that reads again is simply re-created;
 * one that holds entries is never dropped with them). KEYS[1] the stream. Returns how many. */
static cp_redis_script_t forget_script = CP_REDIS_SCRIPT("forget outbox consumers", 1,
    "local n = 0\n"
    "for i = 2, #ARGV do\n"
    "  local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[i])\n"
    "  if #p == 0 then\n"
    "    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[i])\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n");

void nt_outbox_init(nt_service_t *s, int64_t lease_ms) {
  char host[128] = "notify";
  if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "notify");
  host[sizeof host - 1] = '\0';
  snprintf(s->consumer, sizeof s->consumer, "%s-%ld", host, (long)getpid());
  s->outbox_lease_ms = lease_ms;
  s->outbox_reread = true;    /* what this name held before a restart comes first */
  s->outbox_group = false;
  s->next_autoclaim = 0;
  snprintf(s->autoclaim_cursor, sizeof s->autoclaim_cursor, "0-0");
}

/* A failed outbox command. cp_redis_cmd answers NULL for an error reply as for a lost
 * connection, with the text in errstr: NOGROUP means the stream or group went (Redis lost its
 * data): make it again; other failures reconnect. Our own pending entries are read again. */
static void redis_error(nt_service_t *s, const redisReply *r, const char *what) {
  const char *why = r == NULL ? cp_redis_errstr(s->redis) : r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply";
  char err[CP_ERRLEN];
  snprintf(err, sizeof err, "%s: %s", what, why);
  if (strncmp(why, "NOGROUP", 7) == 0) s->outbox_group = false;
  else if (r == NULL && cp_redis_reconnect(s->redis) != 0) { /* tried again after the pause */ }
  s->outbox_reread = true;
  nt_loop_redis_failed(s, err);
}

static bool ensure_group(nt_service_t *s) {
  if (s->outbox_group) return true;
  redisReply *r = cp_redis_cmd(s->redis, "XGROUP CREATE %s %s 0 MKSTREAM", cp_key_outbox(), CP_OUTBOX_GROUP);
  /* cp_redis_cmd answers NULL for an error reply too; BUSYGROUP (another replica made it)
   * is success, and its text is in errstr. */
  bool ok = r != NULL || strncmp(cp_redis_errstr(s->redis), "BUSYGROUP", 9) == 0;
  if (!ok) redis_error(s, r, "creating the outbox group");
  if (r != NULL) freeReplyObject(r);
  s->outbox_group = ok;
  return ok;
}

/* Turn entries (an array of [id, [field, value ...]]) into jobs and store them with their
 * acknowledgement. Entries that are not usable are acknowledged and dropped, logged. -1 when
 * Redis failed (nothing acknowledged: the entries are this consumer's to read again). */
static int take_entries(nt_service_t *s, const redisReply *entries) {
  size_t n = entries->elements;
  if (n == 0) return 0;
  Carepass__V1__NotifyJob **jobs = cp_xcalloc(n, sizeof *jobs);
  char (*ids)[CP_OUTBOX_ID_MAX] = cp_xcalloc(n, sizeof *ids);
  const char **ack = cp_xcalloc(n, sizeof *ack);
  size_t nj = 0, na = 0;
  for (size_t i = 0; i < n; i++) {
    const redisReply *e = entries->element[i];
    cp_outbox_entry_t ent;
    char err[CP_ERRLEN] = "no job field";
    int ok = cp_outbox_entry(e, &ent);
    if (ent.id[0] == '\0') {   /* not even an id: nothing can be acknowledged */
      s->st.jobs_invalid++;
      cp_log_error("outbox entry without an id ignored", CP_KV_END);
      continue;
    }
    memcpy(ids[na], ent.id, sizeof ids[na]);
    ack[na] = ids[na];
    na++;
    if (ok != 0 && e->elements >= 2 && e->element[1]->type == REDIS_REPLY_NIL) {
      cp_log_debug("outbox entry already deleted", CP_KV_STR("id", ent.id), CP_KV_END);
      continue;
    }
    s->st.jobs++;
    Carepass__V1__NotifyJob *job = NULL;
    if (ok == 0)
      job = (Carepass__V1__NotifyJob *)cp_pb_unpack(&carepass__v1__notify_job__descriptor, ent.job, ent.len,
                                                    NT_MAX_JOB_BYTES, err, sizeof err);
    if (job != NULL && nt_job_check(job, err, sizeof err) < 0) {
      protobuf_c_message_free_unpacked(&job->base, NULL);
      job = NULL;
    }
    if (job == NULL) {
      s->st.jobs_invalid++;
      cp_log_warn("bad outbox entry dropped", CP_KV_STR("id", ent.id), CP_KV_STR("error", err), CP_KV_END);
      continue;
    }
    jobs[nj++] = job;
  }
  int rc = na > 0 ? nt_jobs_store(s, jobs, nj, ack, na) : 0;
  if (rc != 0) s->outbox_reread = true;
  for (size_t i = 0; i < nj; i++) protobuf_c_message_free_unpacked(&jobs[i]->base, NULL);
  free(jobs);
  free(ids);
  free(ack);
  return rc;
}

/* After a whole pass of XAUTOCLAIM: forget the consumers of replicas gone for good (nothing
 * pending, idle NT_CONSUMER_FORGET_LEASES leases), so the group does not grow with every restart. */
static void forget_gone_consumers(nt_service_t *s) {
  redisReply *r = cp_redis_cmd(s->redis, "XINFO CONSUMERS %s %s", cp_key_outbox(), CP_OUTBOX_GROUP);
  if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
    if (r == NULL) redis_error(s, r, "listing outbox consumers");
    if (r != NULL) freeReplyObject(r);
    return;
  }
  cp_redis_pipe_t *p = cp_redis_pipe_new();
  cp_redis_handle_t h = cp_redis_pipe_start(p, &forget_script);
  cp_redis_pipe_arg(p, cp_key_outbox());
  cp_redis_pipe_arg(p, CP_OUTBOX_GROUP);
  size_t gone = 0;
  for (size_t i = 0; i < r->elements; i++) {
    const redisReply *c = r->element[i];
    const char *name = NULL;
    long long pending = -1, idle = -1;
    for (size_t k = 0; c->type == REDIS_REPLY_ARRAY && k + 1 < c->elements; k += 2) {
      const redisReply *key = c->element[k], *val = c->element[k + 1];
      if (key->type != REDIS_REPLY_STRING) continue;
      if (strcmp(key->str, "name") == 0 && val->type == REDIS_REPLY_STRING) name = val->str;
      if (strcmp(key->str, "pending") == 0 && val->type == REDIS_REPLY_INTEGER) pending = val->integer;
      if (strcmp(key->str, "idle") == 0 && val->type == REDIS_REPLY_INTEGER) idle = val->integer;
    }
    if (name == NULL || strcmp(name, s->consumer) == 0 || pending != 0 ||
        idle < NT_CONSUMER_FORGET_LEASES * s->outbox_lease_ms)
      continue;
    cp_redis_pipe_arg(p, name);
    gone++;
  }
  if (gone > 0) {
    if (cp_redis_pipe_exec(p, s->redis) != 0) {
      redis_error(s, NULL, "forgetting outbox consumers");
    } else {
      const redisReply *x = cp_redis_pipe_reply(p, h);
      if (x != NULL && x->type == REDIS_REPLY_INTEGER && x->integer > 0)
        cp_log_info("outbox consumers of gone replicas forgotten", CP_KV_INT("count", x->integer), CP_KV_END);
    }
  }
  cp_redis_pipe_destroy(&p);
  freeReplyObject(r);
}

/* Take over entries held past the lease by any consumer (a replica that died, or this one
 * stuck), one page per call; after the last page, forget gone consumers and rest a while. */
static int autoclaim(nt_service_t *s) {
  char lease[24], count[16];
  snprintf(lease, sizeof lease, "%lld", (long long)s->outbox_lease_ms);
  snprintf(count, sizeof count, "%d", NT_OUTBOX_COUNT);
  const char *argv[] = {"XAUTOCLAIM", cp_key_outbox(), CP_OUTBOX_GROUP, s->consumer, lease, s->autoclaim_cursor,
                        "COUNT", count};
  redisReply *r = cp_redis_cmd_argv(s->redis, (int)CP_ARRAY_LEN(argv), argv, NULL);
  if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 2 || r->element[0]->type != REDIS_REPLY_STRING ||
      r->element[1]->type != REDIS_REPLY_ARRAY) {
    redis_error(s, r, "taking over outbox entries");
    if (r != NULL) freeReplyObject(r);
    return -1;
  }
  if (r->element[1]->elements > 0) {
    s->st.outbox_taken_over += r->element[1]->elements;
    cp_log_warn("outbox entries of a silent replica taken over", CP_KV_INT("count", r->element[1]->elements),
                CP_KV_INT("lease_ms", s->outbox_lease_ms), CP_KV_END);
  }
  int rc = take_entries(s, r->element[1]);
  if (rc == 0) {
    snprintf(s->autoclaim_cursor, sizeof s->autoclaim_cursor, "%.*s", (int)r->element[0]->len, r->element[0]->str);
    if (strcmp(s->autoclaim_cursor, "0-0") == 0) {
      forget_gone_consumers(s);
      s->next_autoclaim = cp_mono_ms() + s->outbox_lease_ms / 4;
    }
  }
  freeReplyObject(r);
  return rc;
}

/* Read a page of this consumer's entries: its own unacknowledged ones ("0") or new ones (">").
 * Returns how many were read, -1 on failure. */
static long read_page(nt_service_t *s, bool own) {
  char count[16];
  snprintf(count, sizeof count, "%d", NT_OUTBOX_COUNT);
  const char *argv[] = {"XREADGROUP", "GROUP", CP_OUTBOX_GROUP, s->consumer, "COUNT", count,
                        "STREAMS", cp_key_outbox(), own ? "0" : ">"};
  redisReply *r = cp_redis_cmd_argv(s->redis, (int)CP_ARRAY_LEN(argv), argv, NULL);
  if (r != NULL && r->type == REDIS_REPLY_NIL) {   /* nothing new */
    freeReplyObject(r);
    return 0;
  }
  /* [[stream, [entries]]] */
  if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 1 || r->element[0]->type != REDIS_REPLY_ARRAY ||
      r->element[0]->elements != 2 || r->element[0]->element[1]->type != REDIS_REPLY_ARRAY) {
    redis_error(s, r, "reading the outbox");
    if (r != NULL) freeReplyObject(r);
    return -1;
  }
  const redisReply *entries = r->element[0]->element[1];
  long n = (long)entries->elements;
  int rc = take_entries(s, entries);
  freeReplyObject(r);
  return rc == 0 ? n : -1;
}

bool nt_outbox_turn(nt_service_t *s) {
  if (nt_loop_redis_paused(s) || !ensure_group(s)) return false;
  if (cp_mono_ms() >= s->next_autoclaim && autoclaim(s) != 0) return false;
  if (s->outbox_reread) {
    long n = read_page(s, true);
    if (n < 0) return false;
    if (n > 0) return true;      /* more of our own may follow */
    s->outbox_reread = false;    /* none left: read new entries from now on */
  }
  long n = read_page(s, false);
  return n == NT_OUTBOX_COUNT;
}
