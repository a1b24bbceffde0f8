/* gw_wait.h -- the committed-ack waiter (gw_wait.c): one helper thread that answers
 * POST /v1/events?ack=committed once its events are final or its deadline passed. */
#ifndef GW_WAIT_H
#define GW_WAIT_H

#include "gw_batch.h"

#define GW_WAIT_POLL_MS 100   /* how often waiting batches re-read their states from Redis */

typedef struct gw_waiter gw_waiter_t;

/* Start the waiter (its own Redis connection to the gateway's Redis, its thread). 0, or -1 with
 * err (nothing left running; *w NULL). */
int gw_waiter_new(gw_waiter_t **w, gw_t *gw, char *err, size_t errlen) CP_WUR;
/* Hand *b (nwaiting > 0) to the waiter: it takes ownership (*b set to NULL). The caller has
 * suspended the request's connection; the waiter answers and resumes it (at once when it is
 * draining). */
void gw_waiter_add(gw_waiter_t *w, gw_batch_t **b);
/* Answer every waiting request now with the states reached, stop the thread and give MHD a
 * moment to send the answers (before the loops stop: MHD cannot stop while a connection is
 * suspended). Idempotent; NULL-safe. */
void gw_waiter_drain(gw_waiter_t *w);
/* Drain, then free; NULL-safe; sets *w to NULL. */
void gw_waiter_destroy(gw_waiter_t **w);

#endif
