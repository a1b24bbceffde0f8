/* gw_batch.h -- one POST /v1/events batch being answered (gw_batch.c): made by gw_events.c,
 * answered there at once or by the committed-ack waiter (gw_wait.h). */
#ifndef GW_BATCH_H
#define GW_BATCH_H

#include "cp_ingest.h"
#include "gw.h"

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
void gw_batch_reply(gw_t *gw, gw_batch_t *b);
/* NULL-safe; sets *b to NULL. */
void gw_batch_destroy(gw_batch_t **b);

#endif
