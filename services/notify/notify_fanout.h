/* notify_fanout.h -- recipients of record events and the plan that stores many deliveries in three round trips. */
#ifndef NOTIFY_FANOUT_H
#define NOTIFY_FANOUT_H

#include <stdbool.h>
#include <stdint.h>
#include "cp_util.h"
#include "cp_redis.h"
#include "notify_sign.h"

#define NT_SUB_ID_MAX 64   /* longest subscription id accepted */

/* Everything the record.revoked / record.expiring / record.expired webhooks say. */
typedef struct {
  const char *type;             // record.revoked | record.expiring | record.expired
  const char *provider;         // provider id of the record
  const char *event_id;         // provider event id (of the record, or of the revocation)
  const char *qual;             // qualification code
  const char *worker_hex;       // worker pseudonym hex ("" = unknown: provider only)
  const char *completion_date;  // YYYY-MM-DD or ""
  const char *valid_until;      // YYYY-MM-DD or ""
  const char *reason_code;      // record.revoked: the reason ("" otherwise)
  uint64_t entry_index;         // the record concerned (for a revocation: the revoked one)
  int stage;                    // expiry stage 0..3 (-1 for record.revoked)
} nt_record_event_t;



/* Create the deliveries of one record event: to the provider (registry webhook_url,
 * unless skip_provider), to every live subscription of the worker that wants the type
 * and covers the entry (dead ones are removed), and to the worker's own webhook.
 * *created counts new deliveries. -1 on Redis error (nothing is lost: ids are
 * deterministic, so the caller simply tries again). */
struct prov_registry;
int nt_fanout(cp_redis_t *r, const struct prov_registry *providers, const nt_record_event_t *ev,
              bool skip_provider, int64_t now_ms, size_t *created, char *err, size_t errlen) CP_WUR;

/* Store one delivery to the provider's webhook if its id is new (a plan of one). *created = true when new, false when
 * the id already existed. -1 on Redis error. */
int nt_delivery_create(cp_redis_t *r, const char *id, const char *url, const char *body,
                       const char *type, const char *provider, int64_t now_ms,
                       bool *created, char *err, size_t errlen) CP_WUR;

/* A plan: the deliveries of many jobs and record events, stored in three pipelined
 * round trips whatever their number: (1) every event's subscription set and worker profile, (2) every subscription hash,
 * (3) clean-up of dead subscriptions and the creates (one script call per 128
 * deliveries; existing ids are left alone), then the caller's tail (nt_plan_set_tail), all of
 * round 3 in one MULTI/EXEC: a plan's effects are stored together or not at all. nt_plan_run
 * once per plan. */
typedef struct nt_plan nt_plan_t;

nt_plan_t *nt_plan_new(void);
void nt_plan_destroy(nt_plan_t **p);
/* A delivery with a known id (strings copied). to names the recipient whose webhook secret signs
 * it: "provider:<id>", "sub:<sub id>" or "worker". tag labels it for nt_plan_count_created.
 * Returns its index for nt_plan_created. */
size_t nt_plan_delivery(nt_plan_t *p, const char *id, const char *url, const char *body,
                        const char *type, const char *provider, const char *to, int tag);
/* A record event: what nt_fanout does for one (the provider's delivery is planned at
 * once; subscribers and the worker's webhook are read during the run). */
void nt_plan_event(nt_plan_t *p, const struct prov_registry *providers, const nt_record_event_t *ev,
                   bool skip_provider, int64_t now_ms, int tag);
/* Run the three rounds. -1 when Redis failed or a create failed (nothing is lost:
 * ids are deterministic and creates idempotent, so the caller runs a new plan later). */
int nt_plan_run(nt_plan_t *p, cp_redis_t *r, int64_t now_ms, char *err, size_t errlen) CP_WUR;
/* Commands the caller queues on round 3's pipe after the creates, in their transaction (the
 * outbox acknowledgement of the jobs planned). Called once per run, before it is sent. */
typedef void (*nt_plan_tail_fn)(cp_redis_pipe_t *pipe, void *arg);
void nt_plan_set_tail(nt_plan_t *p, nt_plan_tail_fn fn, void *arg);
size_t nt_plan_size(const nt_plan_t *p);
/* After the run: was delivery i new? How many new ones carry tag (-1 = any)? */
bool nt_plan_created(const nt_plan_t *p, size_t i);
size_t nt_plan_count_created(const nt_plan_t *p, int tag);

#endif
