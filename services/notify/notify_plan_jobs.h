/* notify_plan_jobs.h -- job planning of the notify loop (notify_plan_jobs.c). */
#ifndef NOTIFY_PLAN_JOBS_H
#define NOTIFY_PLAN_JOBS_H

#include <stdbool.h>
#include "notify_loop.h"

/* Store the deliveries of jobs[0..n-1] as one plan, and in the same transaction acknowledge and
 * delete the outbox entries ack[0..nack-1] they came from (with any entry found unusable).
 * 0 = stored (created, duplicate or nothing to deliver); -1 = Redis failed (counted, paused):
 * nothing was stored or acknowledged, the entries are read again later. */
int nt_jobs_store(nt_service_t *s, Carepass__V1__NotifyJob *const *jobs, size_t n, const char *const *ack,
                  size_t nack) CP_WUR;

#endif
