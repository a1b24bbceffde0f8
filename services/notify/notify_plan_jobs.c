/* notify_plan_jobs.c -- job planning: NotifyJobs read from the outbox become one plan of
 * deliveries (the provider's, subscribers', the worker's), stored with their acknowledgement. */
#include <stdlib.h>
#include <string.h>
#include "notify_plan_jobs.h"
#include "notify_fanout.h"
#include "notify_jobs.h"
#include "notify_sign.h"
#include "cp_codec.h"
#include "cp_log.h"
#include "cp_outbox.h"

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
  char to[PROV_ID_MAX + 16];
  snprintf(to, sizeof to, "provider:%s", p->id);
  size_t idx = nt_plan_delivery(plan, id, p->webhook_url, body, job->type, job->provider_id, to, TAG_PROVIDER);
  free(body);
  return idx;
}

/* What a revocation job means beyond the provider's webhook: subscribers and the worker are
 * told. (The expiry schedule is the projection's: created and retired with the commit.) */
static void plan_record_effects(nt_service_t *s, nt_plan_t *plan, const Carepass__V1__NotifyJob *job,
                                int64_t now_ms) {
  if (strcmp(job->type, "record.revoked") != 0) return;
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

/* The plan's tail: acknowledge and delete the outbox entries whose jobs it stores. */
typedef struct {
  const char *const *ids;   // outbox entry ids
  size_t n;                 // how many
} ack_t;

static void queue_ack(cp_redis_pipe_t *pipe, void *arg) {
  const ack_t *a = arg;
  cp_outbox_ack(pipe, a->ids, a->n);
}

int nt_jobs_store(nt_service_t *s, Carepass__V1__NotifyJob *const *jobs, size_t n, const char *const *ack,
                  size_t nack) {
  char err[CP_ERRLEN];
  int64_t now_ms = cp_now_ms();
  nt_plan_t *plan = nt_plan_new();
  size_t *pidx = cp_xcalloc(n ? n : 1, sizeof *pidx);
  for (size_t i = 0; i < n; i++) {
    pidx[i] = plan_provider_delivery(s, plan, jobs[i], now_ms);
    plan_record_effects(s, plan, jobs[i], now_ms);
  }
  ack_t a = {ack, nack};
  nt_plan_set_tail(plan, queue_ack, &a);
  int rc = nt_plan_run(plan, s->redis, now_ms, err, sizeof err);
  if (rc < 0) {
    nt_loop_redis_failed(s, err);
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
