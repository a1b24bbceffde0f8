/* notify_expiry.h -- the expiry schedule and its scanner. */
#ifndef NOTIFY_EXPIRY_H
#define NOTIFY_EXPIRY_H

#include <stdbool.h>
#include <stdint.h>
#include "cp_util.h"
#include "cp_redis.h"
#include "carepass/v1/internal.pb-c.h"

struct prov_registry;

/* Schedule a committed record's expiry webhooks (no-op without valid_until, without
 * a 32-byte pseudonym, or when already scheduled/revoked). Thresholds already passed
 * on `today` are skipped. */
int nt_expiry_schedule(cp_redis_t *r, const Carepass__V1__NotifyJob *job, int32_t today,
                       char *err, size_t errlen) CP_WUR;

/* The same queued on a pipe (*h = its handle); false when there is nothing to schedule. */
bool nt_expiry_schedule_append(cp_redis_pipe_t *p, const Carepass__V1__NotifyJob *job, int32_t today,
                               cp_redis_handle_t *h);

/* A record was revoked: drop its schedule and remember it as revoked. */
int nt_expiry_revoke(cp_redis_t *r, uint64_t index, char *err, size_t errlen) CP_WUR;

/* The same queued on a pipe (reply: integer). */
cp_redis_handle_t nt_expiry_revoke_append(cp_redis_pipe_t *p, uint64_t index);

/* One scan: take up to max records whose next threshold is <= today (Lua, with a
 * lease so several replicas never take the same one), create all their deliveries in
 * one plan, then advance each to its next stage. *emitted = records handled. */
int nt_expiry_scan(cp_redis_t *r, const struct prov_registry *providers, int32_t today,
                   int64_t now_ms, int64_t lease_ms, size_t max, size_t *emitted,
                   size_t *created, char *err, size_t errlen) CP_WUR;

#endif
