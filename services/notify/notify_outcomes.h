/* notify_outcomes.h -- outcome batching of the notify loop (notify_outcomes.c). */
#ifndef NOTIFY_OUTCOMES_H
#define NOTIFY_OUTCOMES_H

#include <stdbool.h>
#include "notify_loop.h"

/* Queue one outcome (recorded by nt_outcomes_send). */
void nt_outcomes_add(nt_service_t *s, char op, const char *id, int status, int64_t t_ms);
/* A finished attempt (nt_result_fn; arg = the service): its outcome and log line. */
void nt_outcomes_on_result(const nt_result_t *res, void *arg);
/* Hand a delivery back (nt_sched_release_fn; arg = the service). */
void nt_outcomes_release(const char *id, void *arg);
/* Once per turn, without waiting: send queued outcomes and (claim = true, when worth it)
 * the next claim on the non-blocking connection. */
void nt_outcomes_send(nt_service_t *s, bool claim);
/* Read the replies of the pipe in flight if they are in; claimed deliveries are queued. */
void nt_outcomes_collect(nt_service_t *s);
/* Shutdown: wait (bounded) for the pipe in flight, then record what is left, blocking. */
void nt_outcomes_settle(nt_service_t *s);

#endif
