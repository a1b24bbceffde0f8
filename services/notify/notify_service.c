/* notify_service.c -- the notify loop: pull jobs, store deliveries, claim due ones, deliver, record results. */
#include <errno.h>
#include <libgen.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>
#include "notify_service.h"
#include "notify_async.h"
#include "notify_deliver.h"
#include "notify_expiry.h"
#include "notify_fanout.h"
#include "notify_jobs.h"
#include "notify_pipe.h"
#include "notify_retry.h"
#include "notify_sign.h"
#include "cp_catalogue.h"
#include "cp_codec.h"
#include "cp_config.h"
#include "cp_dates.h"
#include "cp_log.h"
#include "cp_service.h"
#include "cp_zmq.h"

#define JOBS_PER_TURN 256        /* most bus messages taken per loop turn */
#define WAIT_MS 50               /* longest wait in one loop turn */
#define CLAIM_EVERY_MS 50        /* how often to look for due deliveries when idle */
#define REDIS_PAUSE_MS 1000      /* back off this long after a Redis error */
#define DRAIN_MS 5000            /* at shutdown, wait this long for in-flight deliveries */
#define STATS_EVERY_MS 60000     /* counters log line period */
#define EXPIRY_LEASE_MS 30000    /* an expiry scan's hold on a record (a dead replica's comes back) */
#ifndef MARKS_FLUSH_N
#define MARKS_FLUSH_N 64         /* record outcomes once this many are waiting ... */
#define MARKS_FLUSH_MS 5         /* ... or the oldest has waited this long (or with a claim) */
#endif
#define QUEUE_MAX 1024           /* claimed deliveries waiting locally for a slot of their endpoint */
#define PREFETCH_FACTOR 16       /* a fast endpoint may have per-endpoint limit x this queued ... */
#define PREFETCH_EP_MAX 256      /* ... but never more than this */
#define FAST_MS 100              /* "fast": last answer 2xx and smoothed attempt time below this */
#define EP_STATS_MAX 64          /* endpoints whose answer times are tracked */
#define EP_LEN 300               /* "host:port" buffer (as the deliverer's) */

/* A claimed delivery waiting for a free slot of its endpoint. Claims are taken in
 * batches for fast endpoints, so most slots are refilled without a Redis round trip. */
typedef struct {
  nt_claimed_t c;              // the delivery (its lease runs from claimed_mono)
  char ep[EP_LEN];             // its endpoint
  int64_t claimed_mono;        // monotonic ms of the claim
  int stat;                    // index in the endpoint table, -1 = not tracked
} queued_t;

/* What notify knows about one endpoint's recent answers. */
typedef struct {
  char ep[EP_LEN];             // "host:port"; "" = free entry
  double ewma_ms;              // smoothed attempt time
  bool ok;                     // the last attempt answered 2xx
  int queued;                  // deliveries queued locally for it (never evicted while > 0)
  int64_t used_mono;           // last touched (eviction of the least recently used)
} ep_stat_t;

/* Counters (exported in the stats log line; /metrics later). */
typedef struct {
  uint64_t jobs;               // NotifyJobs received
  uint64_t jobs_invalid;       // jobs that did not unpack or check
  uint64_t no_target;          // jobs whose provider has no webhook URL (nothing to deliver)
  uint64_t created;            // deliveries created
  uint64_t duplicates;         // jobs whose delivery id already existed
  uint64_t delivered;          // 2xx answers
  uint64_t failed;             // failed attempts (non-2xx, timeout, connection error)
  uint64_t dead;               // deliveries moved to the dead-letter list
  uint64_t redis_errors;       // Redis failures
  uint64_t fanout;             // deliveries created for subscribers, workers and expiries
  uint64_t expiry_records;     // records handled by the expiry scanner
} nt_stats_t;

struct nt_service {
  cp_signkey_t key;            // webhook signing key
  prov_registry_t *providers;  // provider registry (webhook URLs)
  cp_redis_t *redis;           // Redis connection
  void *zctx;                  // ZeroMQ context
  void *pull;                  // PULL socket connected to BUS_NOTIFY_OUT
  int zfd;                     // ZMQ_FD of pull, waited on together with curl's sockets
  nt_deliverer_t *dlv;         // libcurl multi deliverer
  int max_attempts;            // WEBHOOK_MAX_ATTEMPTS (0 = no count limit)
  int64_t retry_window_ms;     // WEBHOOK_RETRY_WINDOW_S in ms: give up after this long
  int per_endpoint;            // WEBHOOK_PER_ENDPOINT
  int64_t scan_every_ms;       // EXPIRY_SCAN_MS
  size_t scan_batch;           // EXPIRY_SCAN_BATCH
  int64_t next_scan;           // monotonic ms of the next expiry scan
  int64_t backoff_ms;          // WEBHOOK_BACKOFF_MS
  int64_t backoff_max_ms;      // WEBHOOK_BACKOFF_MAX_MS
  int64_t lease_ms;            // visibility timeout of a claim
  Carepass__V1__NotifyJob **held; // jobs pulled but not yet stored (JOBS_PER_TURN slots)
  size_t nheld;                // jobs in held (kept while Redis is down, stored as one batch)
  nt_mark_t *marks;            // outcomes not yet recorded in Redis (sent once per loop turn)
  size_t nmarks;               // entries used in marks
  size_t markcap;              // entries allocated in marks
  int64_t marks_since;         // monotonic ms of the oldest unrecorded outcome
  nt_aredis_t *ar;             // non-blocking Redis connection for outcomes + claims
  nt_pipe_t *pipe;             // the pipe of outcomes + claim (in flight on ar while busy)
  nt_mark_t *sent;             // outcomes in the pipe in flight
  size_t nsent;                // entries used in sent
  size_t sentcap;              // entries allocated in sent
  size_t claim_idx;            // index of the claim in the pipe in flight (SIZE_MAX = none)
  size_t claim_room;           // how many that claim may take
  queued_t **queue;            // claimed deliveries waiting for a slot, oldest first (QUEUE_MAX)
  size_t nqueue;               // entries used in queue
  ep_stat_t eps[EP_STATS_MAX]; // recent answer times per endpoint
  int64_t queue_wait_ms;       // longest a queued delivery may wait (its lease must outlive the attempt)
  bool due_maybe;              // the last claim left due deliveries in Redis (or new ones were stored)
  bool results;                // attempts finished since the last claim
  int64_t redis_pause_until;   // monotonic ms before which Redis is not tried again
  int64_t next_claim;          // monotonic ms of the next claim
  int64_t next_stats;          // monotonic ms of the next stats line
  int64_t next_beat;           // monotonic ms of the next heartbeat
  nt_stats_t st;               // counters
};

static void redis_failed(nt_service_t *s, const char *err) {
  s->st.redis_errors++;
  s->redis_pause_until = cp_mono_ms() + REDIS_PAUSE_MS;
  cp_log_error("redis error", CP_KV_STR("error", err), CP_KV_END);
}

static bool redis_paused(const nt_service_t *s) { return cp_mono_ms() < s->redis_pause_until; }

/* Write "whpk_<base64>" next to the key so receivers and tests can read it. */
static int write_pubkey(const char *key_path, const unsigned char pk[32], char *err, size_t errlen) {
  char *copy = cp_strdup(key_path), path[4096], text[NT_PUBKEY_SIZE + 1];
  snprintf(path, sizeof path, "%s/notify.pub", dirname(copy));
  free(copy);
  if (nt_pubkey_format(pk, text, sizeof text - 1) < 0) return cp_err(err, errlen, "formatting public key");
  cp_log_info("webhook public key", CP_KV_STR("path", path), CP_KV_STR("key", text), CP_KV_END);
  strcat(text, "\n");
  if (cp_write_file_atomic(path, text, strlen(text), 0644, err, errlen) < 0) return -1;
  return 0;
}

nt_service_t *nt_service_new(char *err, size_t errlen) {
  nt_service_t *s = cp_xcalloc(1, sizeof *s);
  const char *key_path = cp_cfg_str(CP_OPT_NOTIFY_SIGNING_KEY);
  char *dir = cp_strdup(key_path);
  int rc = cp_mkdirs(dirname(dir), 0700, err, errlen);
  free(dir);
  if (rc < 0) goto err;
  if (cp_signkey_load(key_path, "carepass-notify", true, &s->key, err, errlen) < 0) goto err;
  if (write_pubkey(key_path, s->key.pk, err, errlen) < 0) goto err;
  if (prov_load(cp_cfg_str(CP_OPT_PROVIDERS), &s->providers, err, errlen) < 0) goto err;

  s->max_attempts = (int)cp_cfg_int(CP_OPT_WEBHOOK_MAX_ATTEMPTS);
  s->retry_window_ms = cp_cfg_int(CP_OPT_WEBHOOK_RETRY_WINDOW_S) * 1000;
  s->per_endpoint = (int)cp_cfg_int(CP_OPT_WEBHOOK_PER_ENDPOINT);
  s->scan_every_ms = cp_cfg_int(CP_OPT_EXPIRY_SCAN_MS);
  s->scan_batch = (size_t)cp_cfg_int(CP_OPT_EXPIRY_SCAN_BATCH);
  s->backoff_ms = cp_cfg_int(CP_OPT_WEBHOOK_BACKOFF_MS);
  s->backoff_max_ms = cp_cfg_int(CP_OPT_WEBHOOK_BACKOFF_MAX_MS);
  long timeout_ms = (long)cp_cfg_int(CP_OPT_WEBHOOK_TIMEOUT_MS);
  /* A claim outlives the longest attempt, so only a dead replica's claims come back. */
  s->lease_ms = 2 * (int64_t)timeout_ms + 5000;

  s->held = cp_xcalloc(JOBS_PER_TURN, sizeof *s->held);
  s->queue = cp_xcalloc(QUEUE_MAX, sizeof *s->queue);
  /* started by then, an attempt ends (timeout) a second before the lease does */
  s->queue_wait_ms = s->lease_ms - timeout_ms - 1000;
  s->due_maybe = true;
  s->pipe = nt_pipe_new();
  s->claim_idx = SIZE_MAX;
  s->ar = nt_aredis_new(cp_cfg_str(CP_OPT_REDIS_HOST), (int)cp_cfg_int(CP_OPT_REDIS_PORT),
                        (int)cp_cfg_int(CP_OPT_REDIS_TIMEOUT_MS));
  s->redis = cp_redis_new(cp_cfg_str(CP_OPT_REDIS_HOST), (int)cp_cfg_int(CP_OPT_REDIS_PORT),
                          (int)cp_cfg_int(CP_OPT_REDIS_TIMEOUT_MS), err, errlen);
  if (!s->redis) goto err;
  s->dlv = nt_deliverer_new(&s->key, (int)cp_cfg_int(CP_OPT_WEBHOOK_CONCURRENCY), timeout_ms, err, errlen);
  if (!s->dlv) goto err;

  s->zctx = zmq_ctx_new();
  if (!s->zctx) {
    cp_err(err, errlen, "zmq_ctx_new: %s", zmq_strerror(errno));
    goto err;
  }
  s->pull = cp_zmq_socket(s->zctx, ZMQ_PULL, cp_cfg_str(CP_OPT_BUS_NOTIFY_OUT), false,
                          (int)cp_cfg_int(CP_OPT_BUS_HWM), NT_MAX_JOB_BYTES, err, errlen);
  if (!s->pull) goto err;
  size_t fdlen = sizeof s->zfd;
  if (zmq_getsockopt(s->pull, ZMQ_FD, &s->zfd, &fdlen) != 0) {
    cp_err(err, errlen, "zmq_getsockopt(ZMQ_FD): %s", zmq_strerror(errno));
    goto err;
  }
  cp_log_info("notify started", CP_KV_STR("bus", cp_cfg_str(CP_OPT_BUS_NOTIFY_OUT)),
              CP_KV_INT("providers", prov_count(s->providers)),
              CP_KV_INT("concurrency", cp_cfg_int(CP_OPT_WEBHOOK_CONCURRENCY)),
              CP_KV_INT("per_endpoint", s->per_endpoint), CP_KV_INT("max_attempts", s->max_attempts),
              CP_KV_INT("retry_window_s", s->retry_window_ms / 1000), CP_KV_END);
  return s;
err:
  nt_service_destroy(&s);
  return NULL;
}

void nt_service_destroy(nt_service_t **sp) {
  nt_service_t *s = sp ? *sp : NULL;
  if (!s) return;
  for (size_t i = 0; i < s->nheld; i++) protobuf_c_message_free_unpacked(&s->held[i]->base, NULL);
  free(s->held);
  free(s->marks);
  for (size_t i = 0; s->queue && i < s->nqueue; i++) {
    nt_claimed_free(&s->queue[i]->c);
    free(s->queue[i]);
  }
  free(s->queue);
  nt_aredis_destroy(&s->ar);   /* before the pipe it may point to */
  nt_pipe_destroy(&s->pipe);
  free(s->sent);
  nt_deliverer_destroy(&s->dlv);
  cp_zmq_close(&s->pull);
  if (s->zctx) zmq_ctx_term(s->zctx);
  cp_redis_destroy(&s->redis);
  prov_destroy(&s->providers);
  cp_signkey_wipe(&s->key);
  free(s);
  *sp = NULL;
}

#define TAG_PROVIDER 0   /* plan tag: a job's delivery to its provider */
#define TAG_FANOUT   1   /* plan tag: subscribers and the worker's own webhook */

/* Plan the provider's own delivery of a job (its webhook_url in the registry).
 * Returns its index in the plan, or SIZE_MAX when there is nothing to deliver. */
static size_t plan_provider_delivery(nt_service_t *s, nt_plan_t *plan, const Carepass__V1__NotifyJob *job,
                                     int64_t now_ms) {
  char id[NT_ID_SIZE];
  const prov_t *p = prov_find(s->providers, job->provider_id);
  if (!p || !p->webhook_url[0]) {
    s->st.no_target++;
    cp_log_debug("no webhook target", CP_KV_STR("type", job->type),
                 CP_KV_STR("provider", job->provider_id),
                 CP_KV_STR("why", p ? "no webhook_url" : "provider not in registry"), CP_KV_END);
    return SIZE_MAX;
  }
  nt_delivery_id(job->type, job->provider_id, job->provider_event_id ? job->provider_event_id : "",
                 job->entry_index, id);
  char *body = nt_job_body(job, now_ms);
  if (!body) {
    s->st.jobs_invalid++;
    cp_log_warn("job dropped: body could not be built (invalid UTF-8?)", CP_KV_STR("id", id),
                CP_KV_STR("provider", job->provider_id), CP_KV_END);
    return SIZE_MAX;
  }
  size_t idx = nt_plan_delivery(plan, id, p->webhook_url, body, job->type, job->provider_id, TAG_PROVIDER);
  free(body);
  return idx;
}

/* What a record job means beyond the provider's webhook: a commit schedules its
 * expiry webhooks; a revocation drops the schedule and tells subscribers and the worker. */
static void plan_record_effects(nt_service_t *s, nt_plan_t *plan, const Carepass__V1__NotifyJob *job,
                                int32_t today, int64_t now_ms) {
  if (strcmp(job->type, "record.committed") == 0) {
    if (nt_expiry_schedule_append(nt_plan_pre(plan), job, today))
      cp_log_debug("expiry scheduled", CP_KV_INT("index", job->entry_index),
                   CP_KV_STR("valid_until", job->valid_until ? job->valid_until : ""),
                   CP_KV_INT("pseudonym_bytes", job->worker_pseudonym.len), CP_KV_END);
    return;
  }
  if (strcmp(job->type, "record.revoked") != 0) return;
  nt_expiry_revoke_append(nt_plan_pre(plan), job->revokes_index);
  if (job->worker_pseudonym.len != CP_PSEUDONYM_BYTES) return;
  char hex[2 * CP_PSEUDONYM_BYTES + 1];
  cp_hex(job->worker_pseudonym.data, CP_PSEUDONYM_BYTES, hex);
  nt_record_event_t ev = {.type = job->type, .provider = job->provider_id,
                          .event_id = job->provider_event_id, .qual = job->qualification_code,
                          .worker_hex = hex, .completion_date = job->completion_date,
                          .valid_until = job->valid_until, .reason_code = job->reason_code,
                          .entry_index = job->revokes_index, .stage = -1};
  /* the provider already has its record.revoked from plan_provider_delivery */
  nt_plan_event(plan, s->providers, &ev, true, now_ms, TAG_FANOUT);
}

/* Turn a batch of jobs into their deliveries with one plan (three round trips for the
 * whole batch). 0 = done with every job (stored, duplicate or nothing to deliver);
 * -1 = Redis failed, keep the jobs and try again later (every step is idempotent:
 * deterministic ids, create-if-new, schedule written once). */
static int store_jobs(nt_service_t *s, Carepass__V1__NotifyJob **jobs, size_t n) {
  char err[CP_ERRLEN];
  int64_t now_ms = cp_now_ms();
  int32_t today = cp_today();
  nt_plan_t *plan = nt_plan_new();
  size_t *pidx = cp_xcalloc(n, sizeof *pidx);
  for (size_t i = 0; i < n; i++) {
    pidx[i] = plan_provider_delivery(s, plan, jobs[i], now_ms);
    plan_record_effects(s, plan, jobs[i], today, now_ms);
  }
  /* The caller's commands (expiry schedule / revoke) are every round-1 command queued
   * before the run; the plan adds its reads after them. */
  size_t npre = nt_pipe_count(nt_plan_pre(plan));
  int rc = nt_plan_run(plan, s->redis, now_ms, err, sizeof err);
  for (size_t i = 0; rc == 0 && i < npre; i++)
    rc = nt_pipe_reply_error(nt_plan_pre(plan), i, "expiry schedule", err, sizeof err);
  if (rc < 0) {
    redis_failed(s, err);
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    if (pidx[i] == SIZE_MAX) continue;
    bool created = nt_plan_created(plan, pidx[i]);
    if (created) s->st.created++;
    else s->st.duplicates++;
    char id[NT_ID_SIZE];
    nt_delivery_id(jobs[i]->type, jobs[i]->provider_id,
                   jobs[i]->provider_event_id ? jobs[i]->provider_event_id : "", jobs[i]->entry_index, id);
    cp_log_debug(created ? "delivery created" : "duplicate job", CP_KV_STR("id", id),
                 CP_KV_STR("type", jobs[i]->type), CP_KV_STR("provider", jobs[i]->provider_id), CP_KV_END);
  }
  size_t fan = nt_plan_count_created(plan, TAG_FANOUT);
  s->st.fanout += fan;
  if (nt_plan_count_created(plan, -1)) {
    s->next_claim = 0;   /* deliver them now */
    s->due_maybe = true;
  }
  if (fan) cp_log_debug("fan-out stored", CP_KV_INT("jobs", n), CP_KV_INT("deliveries", fan), CP_KV_END);
done:
  free(pidx);
  nt_plan_destroy(&plan);
  return rc;
}

static void free_held(nt_service_t *s) {
  for (size_t i = 0; i < s->nheld; i++) protobuf_c_message_free_unpacked(&s->held[i]->base, NULL);
  s->nheld = 0;
}

/* Take jobs from the bus (up to JOBS_PER_TURN, stored as one batch). Returns true
 * when more may be waiting right now. */
static bool take_jobs(nt_service_t *s) {
  char err[CP_ERRLEN];
  if (s->nheld) {   /* a batch Redis could not take: nothing more is pulled until it is stored */
    if (redis_paused(s) || store_jobs(s, s->held, s->nheld) < 0) return false;
    free_held(s);
  }
  if (redis_paused(s)) return false;   /* leave jobs queued in ZeroMQ meanwhile */
  bool more = true;
  while (s->nheld < JOBS_PER_TURN) {
    uint8_t *buf = NULL;
    size_t len = 0;
    if (cp_zmq_recv_frame(s->pull, &buf, &len, ZMQ_DONTWAIT) < 0) {
      if (errno != EAGAIN && errno != EINTR)
        cp_log_warn("bus receive failed", CP_KV_STR("error", zmq_strerror(errno)), CP_KV_END);
      more = false;
      break;
    }
    s->st.jobs++;
    Carepass__V1__NotifyJob *job = (Carepass__V1__NotifyJob *)cp_pb_unpack(
        &carepass__v1__notify_job__descriptor, buf, len, NT_MAX_JOB_BYTES, err, sizeof err);
    free(buf);
    if (!job) {
      s->st.jobs_invalid++;
      cp_log_warn("bad NotifyJob dropped", CP_KV_STR("error", err), CP_KV_END);
      continue;
    }
    if (nt_job_check(job, err, sizeof err) < 0) {
      s->st.jobs_invalid++;
      cp_log_warn("bad NotifyJob dropped", CP_KV_STR("error", err), CP_KV_END);
      protobuf_c_message_free_unpacked(&job->base, NULL);
      continue;
    }
    s->held[s->nheld++] = job;
  }
  if (s->nheld == 0) return more;
  if (store_jobs(s, s->held, s->nheld) < 0) return false;   /* kept in held for the next try */
  free_held(s);
  return more;
}

static void add_mark(nt_service_t *s, char op, const char *id, int status, int64_t t_ms) {
  if (s->nmarks == s->markcap) {
    s->markcap = s->markcap ? 2 * s->markcap : 64;
    nt_mark_t *m = realloc(s->marks, s->markcap * sizeof *m);
    if (!m) {
      fputs("notify: out of memory\n", stderr);
      abort();
    }
    s->marks = m;
  }
  if (s->nmarks == 0) s->marks_since = cp_mono_ms();
  nt_mark_t *m = &s->marks[s->nmarks++];
  memset(m, 0, sizeof *m);
  m->op = op;
  snprintf(m->id, sizeof m->id, "%s", id);
  m->status = status;
  m->t_ms = t_ms;
}

/* The endpoint's entry (created when create is set; the least recently used entry
 * with nothing queued is reused). -1 when not tracked. */
static int ep_stat(nt_service_t *s, const char *ep, bool create) {
  int victim = -1;
  for (int i = 0; i < EP_STATS_MAX; i++) {
    ep_stat_t *e = &s->eps[i];
    if (e->ep[0] && strcmp(e->ep, ep) == 0) {
      e->used_mono = cp_mono_ms();
      return i;
    }
    if (e->queued == 0 && (victim < 0 || e->used_mono < s->eps[victim].used_mono)) victim = i;
  }
  if (!create || victim < 0 || !ep[0]) return -1;
  ep_stat_t *e = &s->eps[victim];
  memset(e, 0, sizeof *e);
  snprintf(e->ep, sizeof e->ep, "%s", ep);
  e->used_mono = cp_mono_ms();
  return victim;
}

/* How many deliveries a tracked endpoint may have queued beyond its in-flight ones:
 * only fast endpoints that answer 2xx get any, so slow or failing ones never hold
 * claims locally (their deliveries stay in Redis for any replica). */
static int ep_allowance(const nt_service_t *s, const ep_stat_t *e) {
  if (s->per_endpoint <= 0 || !e->ok || e->ewma_ms >= FAST_MS) return 0;
  int a = s->per_endpoint * PREFETCH_FACTOR;
  return a < PREFETCH_EP_MAX ? a : PREFETCH_EP_MAX;
}

static void ep_result(nt_service_t *s, const char *url, bool ok, int64_t ms) {
  char ep[EP_LEN];
  nt_endpoint(url, ep, sizeof ep);
  int i = ep_stat(s, ep, true);
  if (i < 0) return;
  ep_stat_t *e = &s->eps[i];
  e->ewma_ms = e->ewma_ms > 0 ? 0.8 * e->ewma_ms + 0.2 * (double)ms : (double)ms + 0.001;
  e->ok = ok;
}

/* Take a delivery out of the queue: its endpoint count goes down. */
static void dequeued(nt_service_t *s, const queued_t *q) {
  if (q->stat >= 0 && s->eps[q->stat].queued > 0) s->eps[q->stat].queued--;
}

/* Start queued deliveries whose endpoint has a free slot, oldest first; hand back
 * (release) any that waited too long for its lease to cover an attempt. */
static void start_queued(nt_service_t *s) {
  char err[CP_ERRLEN];
  size_t room = nt_deliverer_room(s->dlv), w = 0, i = 0;
  int64_t mono = cp_mono_ms();
  const char *full[8];   /* endpoints found at their limit in this pass */
  size_t nfull = 0;
  for (; i < s->nqueue; i++) {
    queued_t *q = s->queue[i];
    bool stale = mono - q->claimed_mono > s->queue_wait_ms;
    /* oldest first: once nothing can start, the rest are younger and wait too */
    if (!stale && room == 0) break;
    bool go = !stale;
    for (size_t k = 0; go && k < nfull; k++) go = strcmp(full[k], q->ep) != 0;
    if (go && s->per_endpoint > 0 && nt_deliverer_ep_inflight(s->dlv, q->ep) >= s->per_endpoint) {
      if (nfull < CP_ARRAY_LEN(full)) full[nfull++] = q->ep;
      go = false;
    }
    if (!stale && !go) {
      s->queue[w++] = q;
      continue;
    }
    dequeued(s, q);
    if (go && nt_deliverer_start(s->dlv, &q->c, err, sizeof err) == 0) {
      room--;
    } else {
      if (go) cp_log_error("cannot start delivery", CP_KV_STR("id", q->c.id), CP_KV_STR("error", err), CP_KV_END);
      add_mark(s, NT_MARK_RELEASE, q->c.id, 0, cp_now_ms());   /* handed back next turn */
      nt_claimed_free(&q->c);
    }
    free(q);
  }
  if (w != i) memmove(s->queue + w, s->queue + i, (s->nqueue - i) * sizeof *s->queue);
  s->nqueue = w + (s->nqueue - i);
}

/* Queue claimed deliveries (they start in start_queued). */
static void enqueue(nt_service_t *s, nt_claimed_t *batch, size_t n) {
  int64_t mono = cp_mono_ms();
  for (size_t i = 0; i < n; i++) {
    if (s->nqueue == QUEUE_MAX) {   /* cannot happen: claims are sized to the free room */
      add_mark(s, NT_MARK_RELEASE, batch[i].id, 0, cp_now_ms());
      nt_claimed_free(&batch[i]);
      continue;
    }
    queued_t *q = cp_xcalloc(1, sizeof *q);
    q->c = batch[i];
    memset(&batch[i], 0, sizeof batch[i]);
    nt_endpoint(q->c.url, q->ep, sizeof q->ep);
    q->claimed_mono = mono;
    q->stat = ep_stat(s, q->ep, true);
    if (q->stat >= 0) s->eps[q->stat].queued++;
    s->queue[s->nqueue++] = q;
  }
}

/* A finished attempt: queue its outcome (recorded in Redis with the others of this
 * loop turn, by send_turn) and log one line. */
static void on_result(const nt_result_t *res, void *arg) {
  nt_service_t *s = arg;
  const nt_claimed_t *c = res->d;
  int status = (int)res->status;
  const char *outcome;
  if (status >= 200 && status < 300) {
    s->st.delivered++;
    outcome = "delivered";
    add_mark(s, NT_MARK_DELIVERED, c->id, status, 0);
  } else if ((s->max_attempts > 0 && c->attempts >= s->max_attempts) ||
             (c->created_ms > 0 && cp_now_ms() - c->created_ms >= s->retry_window_ms)) {
    s->st.failed++;
    s->st.dead++;
    outcome = "dead";
    add_mark(s, NT_MARK_DEAD, c->id, status, cp_now_ms());
  } else {
    s->st.failed++;
    outcome = "retry";
    int64_t now = cp_now_ms(), due = now + nt_backoff_ms(c->attempts, s->backoff_ms, s->backoff_max_ms);
    /* The last try lands at the end of the retry window, not after it. */
    if (c->created_ms > 0 && due > c->created_ms + s->retry_window_ms)
      due = c->created_ms + s->retry_window_ms > now ? c->created_ms + s->retry_window_ms : now + 1;
    add_mark(s, NT_MARK_RETRY, c->id, status, due);
  }
  cp_log(status >= 200 && status < 300 ? CP_LOG_INFO : CP_LOG_WARN, "webhook delivery",
         CP_KV_STR("id", c->id), CP_KV_STR("type", c->type), CP_KV_STR("provider", c->provider),
         CP_KV_INT("status", status), CP_KV_INT("attempt", c->attempts),
         CP_KV_STR("outcome", outcome), CP_KV_INT("ms", res->elapsed_ms),
         CP_KV_STR("error", res->curl_code ? res->error : ""), CP_KV_END);
  ep_result(s, c->url, status >= 200 && status < 300, res->elapsed_ms);
  s->results = true;                  /* a slot (and an endpoint slot) is free again */
}

/* Should this turn claim? Always when forced (next_claim passed: new deliveries were
 * stored, the last claim filled up, or the CLAIM_EVERY_MS period); otherwise only
 * after results and while Redis may hold due work: when nothing local can use a free
 * slot, or a fast endpoint's queue is down to half its allowance. */
static bool want_claim(nt_service_t *s, size_t free_slots, int64_t mono) {
  if (mono >= s->next_claim) return true;
  if (!s->results || !s->due_maybe) return false;
  if (free_slots > 0 && s->nqueue == 0) return true;
  for (int i = 0; i < EP_STATS_MAX; i++) {
    int a = s->eps[i].ep[0] ? ep_allowance(s, &s->eps[i]) : 0;
    if (a > 0 && s->eps[i].queued < a / 2) return true;
  }
  return false;
}

/* The claim's per-endpoint loads: in flight + queued - allowance (so a fast endpoint
 * takes its allowance on top of the per-endpoint limit). Returns the claim size:
 * free slots plus the fast endpoints' free queue allowance. */
static size_t claim_loads(nt_service_t *s, nt_ep_load_t **outp, size_t *nout) {
  const nt_ep_load_t *inflight = NULL;
  size_t nin = nt_deliverer_loads(s->dlv, &inflight), n = 0;
  nt_ep_load_t *out = cp_xcalloc(nin + EP_STATS_MAX, sizeof *out);
  *outp = out;
  size_t max = nt_deliverer_room(s->dlv);
  for (size_t i = 0; i < nin; i++) out[n++] = inflight[i];
  for (int i = 0; i < EP_STATS_MAX; i++) {
    const ep_stat_t *e = &s->eps[i];
    if (!e->ep[0]) continue;
    int extra = e->queued - ep_allowance(s, e);
    if (extra == 0) continue;
    size_t j = 0;
    while (j < n && strcmp(out[j].endpoint, e->ep) != 0) j++;
    if (j == n) out[n++] = (nt_ep_load_t){.endpoint = e->ep, .inflight = 0};
    out[j].inflight += extra;
    if (extra < 0) max += (size_t)-extra;
  }
  /* queued deliveries of untracked endpoints count in the queue too */
  size_t space = QUEUE_MAX - s->nqueue;
  if (max > nt_deliverer_room(s->dlv) + space) max = nt_deliverer_room(s->dlv) + space;
  *nout = n;
  return max;
}

/* Put the outcomes of a failed pipe back in front of the queue of outcomes (marks are
 * idempotent, so re-sending ones that did run is harmless). */
static void restore_sent(nt_service_t *s) {
  for (size_t i = 0; i < s->nsent; i++)
    add_mark(s, s->sent[i].op, s->sent[i].id, s->sent[i].status, s->sent[i].t_ms);
  s->nsent = 0;
}

/* Once per loop turn, without waiting: when no pipe is in flight, send the queued
 * outcomes and (when want_claim says so) a claim on the non-blocking connection;
 * collect_turn reads the replies. Outcomes alone wait a little to share a round trip
 * (a crash meanwhile can only mean a re-send of the same webhook-id). */
static void send_turn(nt_service_t *s, bool claim) {
  char err[CP_ERRLEN];
  if (nt_aredis_busy(s->ar) || redis_paused(s)) return;
  int64_t mono = cp_mono_ms();
  nt_ep_load_t *loads = NULL;
  size_t nloads = 0, room = 0;
  if (claim && want_claim(s, nt_deliverer_room(s->dlv), mono)) room = claim_loads(s, &loads, &nloads);
  bool marks_due = s->nmarks >= MARKS_FLUSH_N || (s->nmarks > 0 && (!claim || mono - s->marks_since >= MARKS_FLUSH_MS));
  if (!marks_due && room == 0) {
    free(loads);
    return;
  }
  nt_pipe_t *p = s->pipe;
  nt_pipe_reset(p);
  nt_marks_append(p, s->marks, s->nmarks);
  s->claim_idx = SIZE_MAX;
  s->claim_room = room;
  if (room > 0) {
    /* Look 4x past the free slots (as a plain claim does, so one full endpoint does not
     * hide others) but only 1x past the prefetch part (ids of endpoints it is for). */
    size_t free_slots = nt_deliverer_room(s->dlv), scan = 0;
    if (s->per_endpoint > 0) scan = 4 * free_slots + (room > free_slots ? room - free_slots : 0) + 64;
    if (scan > 4096) scan = room > 4096 ? room : 4096;
    s->claim_idx = nt_claim_append(p, cp_now_ms(), s->lease_ms, room, scan, s->per_endpoint, loads, nloads);
  }
  free(loads);   /* its endpoint strings were copied into the pipe */
  /* the outcomes move to `sent` until their replies are in */
  nt_mark_t *t = s->sent;
  size_t tcap = s->sentcap;
  s->sent = s->marks;
  s->sentcap = s->markcap;
  s->nsent = s->nmarks;
  s->marks = t;
  s->markcap = tcap;
  s->nmarks = 0;
  if (room > 0) s->results = false;   /* results from now on call for the next claim */
  if (nt_aredis_send(s->ar, p, s->redis, err, sizeof err) < 0) {
    restore_sent(s);
    s->claim_idx = SIZE_MAX;
    redis_failed(s, err);
  }
}

/* The replies of the pipe in flight, if they are in: outcomes recorded; claimed
 * deliveries go to the local queue and start. */
static void collect_turn(nt_service_t *s) {
  char err[CP_ERRLEN];
  if (!nt_aredis_busy(s->ar)) return;
  int rc = nt_aredis_progress(s->ar, err, sizeof err);
  if (rc == 0) return;
  nt_pipe_t *p = s->pipe;
  if (rc > 0 && nt_pipe_fix_noscript(p, s->redis, err, sizeof err) < 0) rc = -1;
  if (rc < 0) {   /* a claim that ran meanwhile comes back when its lease ends */
    restore_sent(s);
    s->claim_idx = SIZE_MAX;
    redis_failed(s, err);
    return;
  }
  size_t nmark_cmds = s->claim_idx == SIZE_MAX ? nt_pipe_count(p) : s->claim_idx;
  for (size_t i = 0; i < nmark_cmds; i++)
    if (nt_pipe_reply_error(p, i, "recording delivery outcomes", err, sizeof err) < 0) {
      /* a script failure, not a connection one: the lease brings those deliveries back */
      s->st.redis_errors++;
      cp_log_error("redis error", CP_KV_STR("error", err), CP_KV_END);
    }
  s->nsent = 0;
  if (s->claim_idx == SIZE_MAX) return;
  size_t room = s->claim_room, n = 0;
  s->claim_idx = SIZE_MAX;
  nt_claimed_t *batch = cp_xcalloc(room, sizeof *batch);
  bool more = false;
  if (nt_claim_parse(nt_pipe_reply(p, nmark_cmds), room, batch, &n, &more, err, sizeof err) < 0) {
    redis_failed(s, err);
    free(batch);
    return;
  }
  int64_t mono = cp_mono_ms();
  s->due_maybe = more;
  /* A full batch means more may be due: claim again next turn. Otherwise wait for
   * want_claim or the next period. */
  s->next_claim = n == room ? mono : mono + CLAIM_EVERY_MS;
  enqueue(s, batch, n);
  free(batch);
  start_queued(s);
}

/* Wait (bounded) for the pipe in flight, then record every queued outcome on the
 * blocking connection: at shutdown. */
static void settle_outcomes(nt_service_t *s) {
  char err[CP_ERRLEN];
  int64_t until = cp_mono_ms() + DRAIN_MS;
  while (nt_aredis_busy(s->ar) && cp_mono_ms() < until) {
    short ev = 0;
    int fd = nt_aredis_fd(s->ar, &ev);
    if (fd >= 0) {
      struct pollfd pfd = {.fd = fd, .events = ev, .revents = 0};
      (void)poll(&pfd, 1, WAIT_MS);
    }
    collect_turn(s);
  }
  if (s->nmarks == 0) return;
  if (nt_marks_apply(s->redis, s->marks, s->nmarks, err, sizeof err) < 0)
    cp_log_warn("could not record outcomes; their leases will bring them back",
                CP_KV_INT("deliveries", s->nmarks), CP_KV_STR("error", err), CP_KV_END);
  else
    s->nmarks = 0;
}

/* Every EXPIRY_SCAN_MS: webhooks for records passing an expiry threshold today. */
static void scan_expiry(nt_service_t *s) {
  char err[CP_ERRLEN];
  int64_t mono = cp_mono_ms();
  if (mono < s->next_scan || redis_paused(s)) return;
  s->next_scan = mono + s->scan_every_ms;
  size_t emitted = 0, created = 0;
  int rc = nt_expiry_scan(s->redis, s->providers, cp_today(), cp_now_ms(), EXPIRY_LEASE_MS,
                          s->scan_batch, &emitted, &created, err, sizeof err);
  s->st.expiry_records += emitted;
  s->st.fanout += created;
  if (rc < 0) redis_failed(s, err);
  if (created) s->next_claim = 0;
  if (emitted == s->scan_batch) s->next_scan = mono;   /* more may be waiting */
  if (emitted)
    cp_log_info("expiry scan", CP_KV_INT("records", emitted), CP_KV_INT("deliveries", created), CP_KV_END);
}

static void log_stats(const nt_service_t *s, const char *msg) {
  cp_log_info(msg, CP_KV_INT("jobs", s->st.jobs), CP_KV_INT("jobs_invalid", s->st.jobs_invalid),
              CP_KV_INT("no_target", s->st.no_target), CP_KV_INT("created", s->st.created),
              CP_KV_INT("duplicates", s->st.duplicates), CP_KV_INT("delivered", s->st.delivered),
              CP_KV_INT("failed", s->st.failed), CP_KV_INT("dead", s->st.dead),
              CP_KV_INT("redis_errors", s->st.redis_errors), CP_KV_INT("fanout", s->st.fanout),
              CP_KV_INT("expiry_records", s->st.expiry_records),
              CP_KV_INT("inflight", nt_deliverer_inflight(s->dlv)), CP_KV_END);
}

static void release_one(const nt_claimed_t *c, void *arg) {
  nt_service_t *s = arg;
  add_mark(s, NT_MARK_RELEASE, c->id, 0, cp_now_ms());
  cp_log_info("delivery handed back", CP_KV_STR("id", c->id), CP_KV_END);
}

/* The descriptors the loop waits on besides curl's: the bus and the async Redis connection. */
static size_t wait_fds(const nt_service_t *s, bool bus, nt_waitfd_t fds[2]) {
  size_t n = 0;
  if (bus) fds[n++] = (nt_waitfd_t){.fd = s->zfd, .events = POLLIN};
  short ev = 0;
  int fd = nt_aredis_fd(s->ar, &ev);
  if (fd >= 0) fds[n++] = (nt_waitfd_t){.fd = fd, .events = ev};
  return n;
}

int nt_service_run(nt_service_t *s) {
  bool more = false;
  nt_waitfd_t fds[2];
  s->next_stats = cp_mono_ms() + STATS_EVERY_MS;
  while (!cp_stop_requested) {
    int wait = more ? 0 : WAIT_MS;
    if (s->nmarks > 0 && !redis_paused(s) && !nt_aredis_busy(s->ar)) {   /* wake up in time to record outcomes */
      int64_t left = s->marks_since + MARKS_FLUSH_MS - cp_mono_ms();
      if (left < wait) wait = left > 0 ? (int)left : 0;
    }
    if (nt_deliverer_run(s->dlv, fds, wait_fds(s, true, fds), wait, on_result, s) < 0)
      cp_log_error("curl multi failed", CP_KV_END);
    collect_turn(s);
    more = take_jobs(s);
    scan_expiry(s);
    start_queued(s);            /* refill free slots from the local queue, no Redis */
    send_turn(s, true);
    int64_t mono = cp_mono_ms();
    if (mono >= s->next_beat) {
      cp_service_heartbeat("notify");
      s->next_beat = mono + 1000;
    }
    if (mono >= s->next_stats) {
      log_stats(s, "notify stats");
      s->next_stats = mono + STATS_EVERY_MS;
    }
  }
  /* Stop pulling and claiming; let in-flight deliveries finish for a while. */
  cp_log_info("stopping", CP_KV_INT("inflight", nt_deliverer_inflight(s->dlv)), CP_KV_END);
  int64_t until = cp_mono_ms() + DRAIN_MS;
  while (nt_deliverer_inflight(s->dlv) > 0 && cp_mono_ms() < until) {
    if (nt_deliverer_run(s->dlv, fds, wait_fds(s, false, fds), WAIT_MS, on_result, s) < 0) break;
    collect_turn(s);
    send_turn(s, false);
  }
  nt_deliverer_abort_all(s->dlv, release_one, s);
  if (s->nqueue) cp_log_info("queued deliveries handed back", CP_KV_INT("deliveries", s->nqueue), CP_KV_END);
  for (size_t i = 0; i < s->nqueue; i++) {   /* claimed but never started: hand back */
    add_mark(s, NT_MARK_RELEASE, s->queue[i]->c.id, 0, cp_now_ms());
    nt_claimed_free(&s->queue[i]->c);
    free(s->queue[i]);
  }
  s->nqueue = 0;
  s->redis_pause_until = 0;   /* last tries: outcomes and hand-backs, then held jobs */
  settle_outcomes(s);
  if (s->nheld) {   /* pulled while Redis was down: one last try to store them */
    s->redis_pause_until = 0;
    if (store_jobs(s, s->held, s->nheld) < 0)
      for (size_t i = 0; i < s->nheld; i++)
        cp_log_error("job lost at shutdown: Redis unavailable", CP_KV_STR("type", s->held[i]->type),
                     CP_KV_STR("provider", s->held[i]->provider_id),
                     CP_KV_STR("event", s->held[i]->provider_event_id), CP_KV_END);
    else
      free_held(s);
  }
  log_stats(s, "notify stopped");
  return 0;
}
