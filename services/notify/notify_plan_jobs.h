/* notify_plan_jobs.h -- job planning of the notify loop (notify_plan_jobs.c). */
#ifndef NOTIFY_PLAN_JOBS_H
#define NOTIFY_PLAN_JOBS_H

#include <stdbool.h>
#include "notify_loop.h"

/* Take jobs from the bus (up to NT_JOBS_PER_TURN) and
 * store their deliveries as one plan; true when more may be waiting right now. */
bool nt_jobs_take(nt_service_t *s);
/* At shutdown: one last try to store the jobs held while Redis was down (logged if lost). */
void nt_jobs_store_held(nt_service_t *s);
void nt_jobs_free_held(nt_service_t *s);

#endif
