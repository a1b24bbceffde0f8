/* notify_service.h -- the notify service: NotifyJobs from the bus become Standard Webhooks
 * deliveries (Ed25519 "v1a" signatures) kept in Redis (notify_keys.h), delivered with libcurl,
 * retried with exponential backoff and jitter for up to WEBHOOK_RETRY_WINDOW_S (3 days),
 * then dead-lettered; record.revoked/expiring/expired also go to subscribed employers.
 *
* Round trips (the service is mostly waiting on Redis otherwise): the jobs taken in one
 * loop turn (up to 256) are stored as one plan in three pipelined round trips whatever
 * their fan-out (notify_fanout.c); the scripts run with EVALSHA (notify_pipe.c). The
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

#include "cp_util.h"

typedef struct nt_service nt_service_t;

/* Read the config (cp_service_init must have run), load keys and the provider
 * registry, connect Redis and the bus. */
nt_service_t *nt_service_new(char *err, size_t errlen);
/* Run until cp_stop_requested, then drain in-flight deliveries (bounded). */
int nt_service_run(nt_service_t *s) CP_WUR;
void nt_service_destroy(nt_service_t **s);

#endif
