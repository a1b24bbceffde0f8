/* notify_expiry.h -- the expiry scanner (schedules are written by the projection, cp_projection.h). */
#ifndef NOTIFY_EXPIRY_H
#define NOTIFY_EXPIRY_H

#include <stdbool.h>
#include <stdint.h>
#include "cp_util.h"
#include "cp_redis.h"

struct prov_registry;

/* One scan: take up to max records whose next threshold is <= today (Lua, with a
 * lease so several replicas never take the same one), create all their deliveries in
 * one plan, then advance each to its next stage. *emitted = records handled. */
int nt_expiry_scan(cp_redis_t *r, const struct prov_registry *providers, int32_t today,
                   int64_t now_ms, int64_t lease_ms, size_t max, size_t *emitted,
                   size_t *created, char *err, size_t errlen) CP_WUR;

#endif
