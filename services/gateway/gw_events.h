/* gw_events.h -- POST /v1/events internals shared by gw_events.c and gw_wait.c. */
#ifndef GW_EVENTS_H
#define GW_EVENTS_H

#include "cp_ingest.h"
#include "gw.h"

#define GW_WAIT_POLL_MS 100   /* how often waiting batches re-read their states from Redis */

/* One POST /v1/events being answered (at once, or by the waiter for ?ack=committed). */
typedef struct gw_batch {
  gw_req_t *req;               // the request (suspended while the waiter holds the batch)
  char provider[PROV_ID_MAX];  // authenticated provider id
  bool committed;              // ack level committed
  ing_answer_t *ans;           // one answer per event, in request order
  size_t n;                    // number of events
  size_t nwaiting;             // answers with waiting set
  int64_t deadline_ms;         // monotonic ms when the wait gives up (answers the states reached)
  struct gw_batch *next;       // waiter list link
} gw_batch_t;

/* Make the 200 JSON reply of a batch on its request (and count the outcomes). */
void gw_events_reply(gw_t *gw, gw_batch_t *b);
void gw_batch_destroy(gw_batch_t **b);
/* Hand a batch with nwaiting > 0 to the waiter (takes ownership). The caller has suspended
 * the request's connection; the waiter answers and resumes it. */
void gw_waiter_add(gw_t *gw, gw_batch_t *b);

#endif
