/* intake_req.h -- one request being answered (intake_req.c). */
#ifndef INTAKE_REQ_H
#define INTAKE_REQ_H

#include "intake.h"

/* One request being answered (at once, or later for committed acks). */
struct intake_req {
  zmq_msg_t env[INTAKE_MAX_ENVELOPE]; // envelope frames to send back before the reply body
  int nenv;                 // number of envelope frames
  char provider[PROV_ID_MAX]; // authenticated provider id
  char *request_id;         // echoed request id (owned)
  bool committed;           // ack level COMMITTED
  ing_answer_t *ans;        // one answer per event, in request order
  size_t n;                 // number of events
  size_t nwaiting;          // answers with waiting set
  int64_t started_ms;       // monotonic ms when the request arrived
  int64_t deadline_ms;      // monotonic ms when a committed ack gives up waiting
  int64_t refresh_ms;       // monotonic ms of the next Redis re-read
  struct intake_req *prev;  // waiting list links (NULL when not waiting)
  struct intake_req *next;
};

void intake_req_destroy(intake_req_t **req);
/* Set answer i's final state (from a result or Redis); clears waiting. */
void intake_answer_final(intake_req_t *req, size_t i, ing_st_t st, const char *reason,
                         const char *message, uint64_t index);
/* Send req's envelope frames, then body, on the ROUTER. Never blocks: a peer that is gone or not
 * reading loses its reply (ROUTER drops it). */
void intake_req_send(intake_t *in, intake_req_t *req, const ProtobufCMessage *body);
/* Send the SubmitReply for req (states as they stand) and log the batch line. */
void intake_reply(intake_t *in, intake_req_t *req);

#endif
