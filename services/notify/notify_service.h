/* notify_service.h -- the notify service: NotifyJobs from the bus become Standard Webhooks
 * deliveries kept in Redis (notify_keys.h), signed at each attempt with "v1," HMAC-SHA256 under the
 * recipient's whsec_ secret(s) (notify_secrets.c) and "v1a," Ed25519, delivered with libcurl,
 * retried with exponential backoff and jitter for up to WEBHOOK_RETRY_WINDOW_S (3 days),
 * then dead-lettered; record.revoked/expiring/expired also go to subscribed employers.
 *
 * The files of the service, by concern (they share notify_loop.h):
 *   notify_service.c     the object and its turn / drain
 *   notify_plan_jobs.c   job planning: jobs from the bus become one plan of deliveries
 *   notify_sched.c       per-endpoint scheduling: the local queue and endpoint limits
 *   notify_outcomes.c    outcome batching: outcomes and the next claim in one round trip
 *   notify_expiry_scan.c the periodic expiry scan
 *   notify_secrets.c     each recipient's webhook secrets (the providers' store, followed on disk)
 *
 * Round trips (the service is mostly waiting on Redis otherwise): the jobs taken in one
 * loop turn (up to 256) are stored as one plan in three pipelined round trips whatever
 * their fan-out (notify_fanout.c); the scripts run with EVALSHA (common/cp_redis.h). The
 * outcomes of finished attempts are recorded in batches (one script call per 256) and
 * sent together with the next claim on a second, non-blocking connection that the curl
 * loop polls (notify_async.c), so no delivery waits on a Redis round trip. For endpoints
 * that answer 2xx quickly a claim takes up to 16 x the per-endpoint limit (at most 256)
 * beyond the free slots; those wait in a local queue and start as slots free up (never
 * more than the per-endpoint limit in flight). A queued delivery that could not start
 * within WEBHOOK_TIMEOUT_MS + 4 s is handed back, so its lease always outlives its
 * attempt; at shutdown every queued one is handed back. */
#ifndef NOTIFY_SERVICE_H
#define NOTIFY_SERVICE_H

#include <stddef.h>
#include "cp_util.h"

typedef struct nt_service nt_service_t;

/* Read the config (cp_service_init must have run), load keys and the provider
 * registry, connect Redis and the bus. 0 and *s set, or -1 with err (*s NULL). */
int nt_service_new(nt_service_t **s, char *err, size_t errlen) CP_WUR;
/* One turn of the loop: wait at most timeout_ms (less while work is waiting), deliver,
 * store jobs, claim, scan expiries. 0 (failures are logged and retried later). */
int nt_service_turn(nt_service_t *s, int timeout_ms) CP_WUR;
/* After the stop request: let in-flight deliveries finish (bounded), hand back the rest,
 * record every outcome, then log "notify stopped" with the counters. */
int nt_service_drain(nt_service_t *s) CP_WUR;
/* NULL-safe; sets *s to NULL. */
void nt_service_destroy(nt_service_t **s);

#endif
