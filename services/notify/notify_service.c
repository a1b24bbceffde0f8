/* notify_service.c -- the notify loop: pull jobs, store deliveries, claim due ones, deliver, record results. */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>
#include "notify.h"
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
  Carepass__V1__NotifyJob *held; // a job pulled but not yet stored (Redis was down)
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
  const char *key_path = cp_cfg_str("NOTIFY_SIGNING_KEY");
  char *dir = cp_strdup(key_path);
  int rc = cp_mkdirs(dirname(dir), 0700, err, errlen);
  free(dir);
  if (rc < 0) goto err;
  if (cp_signkey_load(key_path, "carepass-notify", true, &s->key, err, errlen) < 0) goto err;
  if (write_pubkey(key_path, s->key.pk, err, errlen) < 0) goto err;
  if (prov_load(cp_cfg_str("PROVIDERS"), &s->providers, err, errlen) < 0) goto err;

  s->max_attempts = (int)cp_cfg_int("WEBHOOK_MAX_ATTEMPTS");
  s->retry_window_ms = cp_cfg_int("WEBHOOK_RETRY_WINDOW_S") * 1000;
  s->per_endpoint = (int)cp_cfg_int("WEBHOOK_PER_ENDPOINT");
  s->scan_every_ms = cp_cfg_int("EXPIRY_SCAN_MS");
  s->scan_batch = (size_t)cp_cfg_int("EXPIRY_SCAN_BATCH");
  s->backoff_ms = cp_cfg_int("WEBHOOK_BACKOFF_MS");
  s->backoff_max_ms = cp_cfg_int("WEBHOOK_BACKOFF_MAX_MS");
  long timeout_ms = (long)cp_cfg_int("WEBHOOK_TIMEOUT_MS");
  /* A claim outlives the longest attempt, so only a dead replica's claims come back. */
  s->lease_ms = 2 * (int64_t)timeout_ms + 5000;

  s->redis = cp_redis_new(cp_cfg_str("REDIS_HOST"), (int)cp_cfg_int("REDIS_PORT"),
                          (int)cp_cfg_int("REDIS_TIMEOUT_MS"), err, errlen);
  if (!s->redis) goto err;
  s->dlv = nt_deliverer_new(&s->key, (int)cp_cfg_int("WEBHOOK_CONCURRENCY"), timeout_ms, err, errlen);
  if (!s->dlv) goto err;

  s->zctx = zmq_ctx_new();
  if (!s->zctx) {
    cp_err(err, errlen, "zmq_ctx_new: %s", zmq_strerror(errno));
    goto err;
  }
  s->pull = cp_zmq_socket(s->zctx, ZMQ_PULL, cp_cfg_str("BUS_NOTIFY_OUT"), false,
                          (int)cp_cfg_int("BUS_HWM"), NT_MAX_JOB_BYTES, err, errlen);
  if (!s->pull) goto err;
  size_t fdlen = sizeof s->zfd;
  if (zmq_getsockopt(s->pull, ZMQ_FD, &s->zfd, &fdlen) != 0) {
    cp_err(err, errlen, "zmq_getsockopt(ZMQ_FD): %s", zmq_strerror(errno));
    goto err;
  }
  cp_log_info("notify started", CP_KV_STR("bus", cp_cfg_str("BUS_NOTIFY_OUT")),
              CP_KV_INT("providers", prov_count(s->providers)),
              CP_KV_INT("concurrency", cp_cfg_int("WEBHOOK_CONCURRENCY")),
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
  if (s->held) protobuf_c_message_free_unpacked(&s->held->base, NULL);
  nt_deliverer_destroy(&s->dlv);
  cp_zmq_close(&s->pull);
  if (s->zctx) zmq_ctx_term(s->zctx);
  cp_redis_destroy(&s->redis);
  prov_destroy(&s->providers);
  cp_signkey_wipe(&s->key);
  free(s);
  *sp = NULL;
}

/* The provider's own delivery of a job (its webhook_url in the registry). */
static int store_provider_delivery(nt_service_t *s, const Carepass__V1__NotifyJob *job) {
  char err[CP_ERRLEN], id[NT_ID_SIZE];
  const prov_t *p = prov_find(s->providers, job->provider_id);
  if (!p || !p->webhook_url[0]) {
    s->st.no_target++;
    cp_log_debug("no webhook target", CP_KV_STR("type", job->type),
                 CP_KV_STR("provider", job->provider_id),
                 CP_KV_STR("why", p ? "no webhook_url" : "provider not in registry"), CP_KV_END);
    return 0;
  }
  nt_delivery_id(job->type, job->provider_id, job->provider_event_id ? job->provider_event_id : "",
                 job->entry_index, id);
  char *body = nt_job_body(job, cp_now_ms());
  if (!body) {
    s->st.jobs_invalid++;
    cp_log_warn("job dropped: body could not be built (invalid UTF-8?)", CP_KV_STR("id", id),
                CP_KV_STR("provider", job->provider_id), CP_KV_END);
    return 0;
  }
  bool created = false;
  int rc = nt_delivery_create(s->redis, id, p->webhook_url, body, job->type, job->provider_id,
                              cp_now_ms(), &created, err, sizeof err);
  free(body);
  if (rc < 0) {
    redis_failed(s, err);
    return -1;
  }
  if (created) {
    s->st.created++;
    s->next_claim = 0;    /* deliver it now */
  } else {
    s->st.duplicates++;
  }
  cp_log_debug(created ? "delivery created" : "duplicate job", CP_KV_STR("id", id),
               CP_KV_STR("type", job->type), CP_KV_STR("provider", job->provider_id), CP_KV_END);
  return 0;
}

/* What a record job means beyond the provider's webhook: a commit schedules its
 * expiry webhooks; a revocation drops the schedule and tells subscribers and the worker. */
static int store_record_effects(nt_service_t *s, const Carepass__V1__NotifyJob *job) {
  char err[CP_ERRLEN];
  if (strcmp(job->type, "record.committed") == 0) {
    if (nt_expiry_schedule(s->redis, job, cp_today(), err, sizeof err) < 0) goto redis_err;
    cp_log_debug("expiry scheduled", CP_KV_INT("index", job->entry_index),
                 CP_KV_STR("valid_until", job->valid_until ? job->valid_until : ""),
                 CP_KV_INT("pseudonym_bytes", job->worker_pseudonym.len), CP_KV_END);
    return 0;
  }
  if (strcmp(job->type, "record.revoked") != 0) return 0;
  if (nt_expiry_revoke(s->redis, job->revokes_index, err, sizeof err) < 0) goto redis_err;
  if (job->worker_pseudonym.len != CP_PSEUDONYM_BYTES) return 0;
  char hex[2 * CP_PSEUDONYM_BYTES + 1];
  cp_hex(job->worker_pseudonym.data, CP_PSEUDONYM_BYTES, hex);
  nt_record_event_t ev = {.type = job->type, .provider = job->provider_id,
                          .event_id = job->provider_event_id, .qual = job->qualification_code,
                          .worker_hex = hex, .completion_date = job->completion_date,
                          .valid_until = job->valid_until, .reason_code = job->reason_code,
                          .entry_index = job->revokes_index, .stage = -1};
  size_t n = 0;
  /* the provider already has its record.revoked from store_provider_delivery */
  if (nt_fanout(s->redis, s->providers, &ev, true, cp_now_ms(), &n, err, sizeof err) < 0) goto redis_err;
  s->st.fanout += n;
  if (n) s->next_claim = 0;
  return 0;
redis_err:
  redis_failed(s, err);
  return -1;
}

/* Turn one job into its deliveries. 0 = done with the job (stored, duplicate or
 * nothing to deliver); -1 = Redis failed, keep the job and try again later (every
 * step is idempotent: deterministic ids, schedule written once). */
static int store_job(nt_service_t *s, const Carepass__V1__NotifyJob *job) {
  if (store_provider_delivery(s, job) < 0) return -1;
  return store_record_effects(s, job);
}

/* Take jobs from the bus. Returns true when more may be waiting right now. */
static bool take_jobs(nt_service_t *s) {
  char err[CP_ERRLEN];
  if (s->held) {
    if (redis_paused(s) || store_job(s, s->held) < 0) return false;
    protobuf_c_message_free_unpacked(&s->held->base, NULL);
    s->held = NULL;
  }
  for (int i = 0; i < JOBS_PER_TURN; i++) {
    if (redis_paused(s)) return false;   /* leave jobs queued in ZeroMQ meanwhile */
    uint8_t *buf = NULL;
    size_t len = 0;
    if (cp_zmq_recv_frame(s->pull, &buf, &len, ZMQ_DONTWAIT) < 0) {
      if (errno != EAGAIN && errno != EINTR)
        cp_log_warn("bus receive failed", CP_KV_STR("error", zmq_strerror(errno)), CP_KV_END);
      return false;
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
    if (store_job(s, job) < 0) {
      s->held = job;       /* keep it; nothing more is pulled until Redis is back */
      return false;
    }
    protobuf_c_message_free_unpacked(&job->base, NULL);
  }
  return true;
}

/* A finished attempt: record the outcome in Redis and log one line. */
static void on_result(const nt_result_t *res, void *arg) {
  nt_service_t *s = arg;
  char err[CP_ERRLEN];
  const nt_claimed_t *c = res->d;
  int status = (int)res->status;
  const char *outcome;
  int rc;
  if (status >= 200 && status < 300) {
    s->st.delivered++;
    outcome = "delivered";
    rc = nt_mark_delivered(s->redis, c->id, status, err, sizeof err);
  } else if ((s->max_attempts > 0 && c->attempts >= s->max_attempts) ||
             (c->created_ms > 0 && cp_now_ms() - c->created_ms >= s->retry_window_ms)) {
    s->st.failed++;
    s->st.dead++;
    outcome = "dead";
    rc = nt_mark_dead(s->redis, c->id, status, cp_now_ms(), err, sizeof err);
  } else {
    s->st.failed++;
    outcome = "retry";
    int64_t now = cp_now_ms(), due = now + nt_backoff_ms(c->attempts, s->backoff_ms, s->backoff_max_ms);
    /* The last try lands at the end of the retry window, not after it. */
    if (c->created_ms > 0 && due > c->created_ms + s->retry_window_ms)
      due = c->created_ms + s->retry_window_ms > now ? c->created_ms + s->retry_window_ms : now + 1;
    rc = nt_mark_retry(s->redis, c->id, status, due, err, sizeof err);
  }
  cp_log(status >= 200 && status < 300 ? CP_LOG_INFO : CP_LOG_WARN, "webhook delivery",
         CP_KV_STR("id", c->id), CP_KV_STR("type", c->type), CP_KV_STR("provider", c->provider),
         CP_KV_INT("status", status), CP_KV_INT("attempt", c->attempts),
         CP_KV_STR("outcome", outcome), CP_KV_INT("ms", res->elapsed_ms),
         CP_KV_STR("error", res->curl_code ? res->error : ""), CP_KV_END);
  if (rc < 0) redis_failed(s, err);   /* the lease brings the delivery back */
  s->next_claim = 0;                  /* a slot (and an endpoint slot) is free again */
}

static void claim_due(nt_service_t *s) {
  char err[CP_ERRLEN];
  size_t room = nt_deliverer_room(s->dlv);
  int64_t mono = cp_mono_ms();
  if (room == 0 || mono < s->next_claim || redis_paused(s)) return;
  nt_claimed_t *batch = cp_xcalloc(room, sizeof *batch);
  size_t n = 0;
  const nt_ep_load_t *loads = NULL;
  size_t nloads = nt_deliverer_loads(s->dlv, &loads);
  if (nt_claim_limited(s->redis, cp_now_ms(), s->lease_ms, room, s->per_endpoint, loads, nloads,
                       batch, &n, err, sizeof err) < 0) {
    redis_failed(s, err);
    free(batch);
    return;
  }
  /* A full batch means more may be due: claim again next turn. Otherwise wait for a
   * result (on_result) or the next period. */
  s->next_claim = n == room ? mono : mono + CLAIM_EVERY_MS;
  for (size_t i = 0; i < n; i++) {
    if (nt_deliverer_start(s->dlv, &batch[i], err, sizeof err) < 0) {
      cp_log_error("cannot start delivery", CP_KV_STR("id", batch[i].id), CP_KV_STR("error", err), CP_KV_END);
      char err2[CP_ERRLEN];
      if (nt_release(s->redis, batch[i].id, cp_now_ms(), err2, sizeof err2) < 0) redis_failed(s, err2);
      nt_claimed_free(&batch[i]);
    }
  }
  free(batch);
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
  char err[CP_ERRLEN];
  if (nt_release(s->redis, c->id, cp_now_ms(), err, sizeof err) < 0)
    cp_log_warn("could not hand back delivery; its lease will", CP_KV_STR("id", c->id),
                CP_KV_STR("error", err), CP_KV_END);
  else
    cp_log_info("delivery handed back", CP_KV_STR("id", c->id), CP_KV_END);
}

int nt_service_run(nt_service_t *s) {
  bool more = false;
  s->next_stats = cp_mono_ms() + STATS_EVERY_MS;
  while (!cp_stop_requested) {
    if (nt_deliverer_run(s->dlv, s->zfd, more ? 0 : WAIT_MS, on_result, s) < 0)
      cp_log_error("curl multi failed", CP_KV_END);
    more = take_jobs(s);
    scan_expiry(s);
    claim_due(s);
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
  while (nt_deliverer_inflight(s->dlv) > 0 && cp_mono_ms() < until)
    if (nt_deliverer_run(s->dlv, -1, WAIT_MS, on_result, s) < 0) break;
  nt_deliverer_abort_all(s->dlv, release_one, s);
  if (s->held) {   /* pulled while Redis was down: one last try to store it */
    s->redis_pause_until = 0;
    if (store_job(s, s->held) < 0)
      cp_log_error("job lost at shutdown: Redis unavailable", CP_KV_STR("type", s->held->type),
                   CP_KV_STR("provider", s->held->provider_id),
                   CP_KV_STR("event", s->held->provider_event_id), CP_KV_END);
  }
  log_stats(s, "notify stopped");
  return 0;
}
