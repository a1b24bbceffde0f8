/* notify_service.c -- the notify service object and its turn: read the outbox, store
 * deliveries, claim due ones, deliver, record results; drain at stop. */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include "notify_loop.h"
#include "notify_expiry_scan.h"
#include "notify_outcomes.h"
#include "notify_outbox.h"
#include "notify_jobs.h"
#include "notify_sign.h"
#include "cp_config.h"
#include "cp_log.h"

#define STATS_EVERY_MS 60000     /* counters log line period */

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

int nt_service_new(nt_service_t **out, char *err, size_t errlen) {
  nt_service_t *s = cp_xcalloc(1, sizeof *s);
  *out = NULL;
  const char *key_path = cp_cfg_str(CP_OPT_NOTIFY_SIGNING_KEY);
  char *dir = cp_strdup(key_path);
  int rc = cp_mkdirs(dirname(dir), 0700, err, errlen);
  free(dir);
  if (rc < 0) goto err;
  if (cp_signkey_load(key_path, "carepass-notify", true, &s->key, err, errlen) < 0) goto err;
  if (write_pubkey(key_path, s->key.pk, err, errlen) < 0) goto err;
  if (prov_load(cp_cfg_str(CP_OPT_PROVIDERS), &s->providers, err, errlen) < 0) goto err;
  if (nt_secrets_src_new(cp_cfg_str(CP_OPT_WEBHOOK_SECRETS), s->providers, &s->secrets, err, errlen) < 0) goto err;

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

  nt_outbox_init(s, cp_cfg_int(CP_OPT_NOTIFY_OUTBOX_LEASE_MS));
  s->due_maybe = true;
  s->pipe = cp_redis_pipe_new();
  s->ar = nt_aredis_new(cp_cfg_str(CP_OPT_REDIS_HOST), (int)cp_cfg_int(CP_OPT_REDIS_PORT),
                        (int)cp_cfg_int(CP_OPT_REDIS_TIMEOUT_MS));
  s->redis = cp_redis_new(cp_cfg_str(CP_OPT_REDIS_HOST), (int)cp_cfg_int(CP_OPT_REDIS_PORT),
                          (int)cp_cfg_int(CP_OPT_REDIS_TIMEOUT_MS), err, errlen);
  if (!s->redis) goto err;
  s->dlv = nt_deliverer_new(&s->key, (int)cp_cfg_int(CP_OPT_WEBHOOK_CONCURRENCY), timeout_ms, err, errlen);
  if (!s->dlv) goto err;
  nt_deliverer_set_secrets(s->dlv, nt_secrets_for, s->secrets);
  /* started by then, an attempt ends (timeout) a second before the lease does */
  s->sched = nt_sched_new(s->dlv, s->per_endpoint, s->lease_ms - timeout_ms - 1000, nt_outcomes_release, s);
  nt_sched_set_breaker(s->sched, (int)cp_cfg_int(CP_OPT_WEBHOOK_BREAKER_FAILS), cp_cfg_int(CP_OPT_WEBHOOK_BREAKER_PARK_MS));

  s->next_stats = cp_mono_ms() + STATS_EVERY_MS;
  cp_log_info("notify started", CP_KV_STR("consumer", s->consumer), CP_KV_INT("outbox_lease_ms", s->outbox_lease_ms),
              CP_KV_INT("providers", prov_count(s->providers)),
              CP_KV_INT("concurrency", cp_cfg_int(CP_OPT_WEBHOOK_CONCURRENCY)),
              CP_KV_INT("per_endpoint", s->per_endpoint), CP_KV_INT("max_attempts", s->max_attempts),
              CP_KV_INT("retry_window_s", s->retry_window_ms / 1000), CP_KV_END);
  *out = s;
  return 0;
err:
  nt_service_destroy(&s);
  return -1;
}

void nt_service_destroy(nt_service_t **sp) {
  nt_service_t *s = sp ? *sp : NULL;
  if (!s) return;
  free(s->marks);
  nt_sched_destroy(&s->sched);   /* before the deliverer it borrows */
  nt_aredis_destroy(&s->ar);     /* before the pipe it may point to */
  cp_redis_pipe_destroy(&s->pipe);
  free(s->mark_calls);
  free(s->sent);
  nt_deliverer_destroy(&s->dlv);
  cp_redis_destroy(&s->redis);
  nt_secrets_src_destroy(&s->secrets);   /* borrows the registry */
  prov_destroy(&s->providers);
  cp_signkey_wipe(&s->key);
  free(s);
  *sp = NULL;
}

static void log_stats(const nt_service_t *s, const char *msg) {
  cp_log_info(msg, CP_KV_INT("jobs", s->st.jobs), CP_KV_INT("jobs_invalid", s->st.jobs_invalid),
              CP_KV_INT("no_target", s->st.no_target), CP_KV_INT("created", s->st.created),
              CP_KV_INT("duplicates", s->st.duplicates), CP_KV_INT("delivered", s->st.delivered),
              CP_KV_INT("failed", s->st.failed), CP_KV_INT("dead", s->st.dead),
              CP_KV_INT("redis_errors", s->st.redis_errors), CP_KV_INT("fanout", s->st.fanout),
              CP_KV_INT("expiry_records", s->st.expiry_records),
              CP_KV_INT("outbox_taken_over", s->st.outbox_taken_over),
              CP_KV_INT("inflight", nt_deliverer_inflight(s->dlv)), CP_KV_END);
}

static void release_one(const nt_claimed_t *c, void *arg) {
  nt_outcomes_release(c->id, arg);
  cp_log_info("delivery handed back", CP_KV_STR("id", c->id), CP_KV_END);
}

/* The descriptor the loop waits on besides curl's: the async Redis connection. (The outbox is
 * read every turn, at least every NT_WAIT_MS.) */
static size_t wait_fds(const nt_service_t *s, nt_waitfd_t fds[1]) {
  size_t n = 0;
  short ev = 0;
  int fd = nt_aredis_fd(s->ar, &ev);
  if (fd >= 0) fds[n++] = (nt_waitfd_t){.fd = fd, .events = ev};
  return n;
}

int nt_service_turn(nt_service_t *s, int timeout_ms) {
  nt_waitfd_t fds[1];
  int wait = s->more_jobs ? 0 : (timeout_ms < NT_WAIT_MS ? timeout_ms : NT_WAIT_MS);
  if (s->nmarks > 0 && !nt_loop_redis_paused(s) && !nt_aredis_busy(s->ar)) {   /* wake up in time to record outcomes */
    int64_t left = s->marks_since + NT_MARKS_FLUSH_MS - cp_mono_ms();
    if (left < wait) wait = left > 0 ? (int)left : 0;
  }
  if (nt_deliverer_run(s->dlv, fds, wait_fds(s, fds), wait, nt_outcomes_on_result, s) < 0)
    cp_log_error("curl multi failed", CP_KV_END);
  nt_outcomes_collect(s);
  nt_secrets_src_refresh(s->secrets);   /* a rotated secret signs from the next attempt on */
  s->more_jobs = nt_outbox_turn(s);
  nt_expiry_scan_turn(s);
  nt_sched_start(s->sched);     /* refill free slots from the local queue, no Redis */
  nt_outcomes_send(s, true);
  int64_t mono = cp_mono_ms();
  if (mono >= s->next_stats) {
    log_stats(s, "notify stats");
    s->next_stats = mono + STATS_EVERY_MS;
  }
  return 0;
}

int nt_service_drain(nt_service_t *s) {
  nt_waitfd_t fds[1];
  /* Stop pulling and claiming; let in-flight deliveries finish for a while. */
  cp_log_info("draining deliveries", CP_KV_INT("inflight", nt_deliverer_inflight(s->dlv)), CP_KV_END);
  int64_t until = cp_mono_ms() + NT_DRAIN_MS;
  while (nt_deliverer_inflight(s->dlv) > 0 && cp_mono_ms() < until) {
    if (nt_deliverer_run(s->dlv, fds, wait_fds(s, fds), NT_WAIT_MS, nt_outcomes_on_result, s) < 0) break;
    nt_outcomes_collect(s);
    nt_outcomes_send(s, false);
  }
  nt_deliverer_abort_all(s->dlv, release_one, s);
  nt_sched_hand_back_all(s->sched);
  s->redis_pause_until = 0;   /* last tries: outcomes and hand-backs (outbox entries read and not
                               * stored stay unacknowledged: read again at the next start) */
  nt_outcomes_settle(s);
  log_stats(s, "notify stopped");
  return 0;
}
