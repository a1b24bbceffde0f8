/* intake.h -- the intake service's internal interface, shared by its intake_*.c files. */
#ifndef INTAKE_H
#define INTAKE_H

#include <zmq.h>

#include "carepass/v1/event.pb-c.h"
#include "carepass/v1/internal.pb-c.h"
#include "cp_catalogue.h"
#include "cp_crypto.h"
#include "cp_ingest.h"
#include "cp_redis.h"
#include "cp_util.h"
#include "cp_zmq.h"

#define INTAKE_ID_MAX 80            /* instance id (result topic) incl. NUL */
#define INTAKE_MAX_ENVELOPE 8       /* most envelope frames kept before the body */
#define INTAKE_REFRESH_MS 500       /* how often waiting requests re-read states from Redis */
#define INTAKE_REDRIVE_EVERY_MS 1000 /* how often the redrive scan runs */
#define INTAKE_REDRIVE_LIMIT 500    /* most pending events looked at per scan */

/* One request being answered (at once, or later for committed acks). */
typedef struct intake_req {
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
} intake_req_t;

typedef struct intake_waits intake_waits_t;

/* The intake service: sockets, registry, Redis and the waiting table. */
typedef struct {
  void *ctx;                  // ZeroMQ context
  void *router;               // provider-facing ROUTER, CURVE server
  void *verify_push;          // PUSH connected to the verify queue (BUS_VERIFY_IN)
  void *notify_push;          // PUSH connected to the notify queue (BUS_NOTIFY_IN)
  void *results_sub;          // SUB connected to BUS_RESULTS_OUT, subscribed to id
  cp_zap_t *zap;              // ZAP handler admitting registered provider keys
  prov_registry_t *providers; // provider registry (read-only; shared with the ZAP thread)
  cp_redis_t *redis;          // Redis connection
  char script_sha[41];        // SHA-1 of the claim script loaded into Redis
  unsigned char secret[CP_SECRET_BYTES]; // pseudonym key (wiped at destroy)
  char id[INTAKE_ID_MAX];     // this replica's id: the topic its results are published on
  size_t max_message;         // MAX_MESSAGE_BYTES: larger requests get MESSAGE_TOO_LARGE
  size_t max_batch;           // MAX_BATCH
  int64_t ack_timeout_ms;     // ACK_TIMEOUT_MS
  int64_t redrive_after_ms;   // REDRIVE_AFTER_MS
  intake_waits_t *waits;      // requests waiting for committed acks
  int64_t next_redrive_ms;    // monotonic ms of the next redrive scan
  int64_t next_heartbeat_ms;  // monotonic ms of the next heartbeat
  uint64_t pushes_failed;     // events that could not be queued to verify (redrive resends them)
  uint64_t notices_dropped;   // event.accepted jobs the notify queue would not take
} intake_t;

/* intake_server.c: lifecycle and the ROUTER loop. */
int intake_new(intake_t **out, char *err, size_t errlen) CP_WUR;
void intake_destroy(intake_t **in);
/* Serve until cp_stop_requested; then answer waiting requests and return. */
int intake_run(intake_t *in) CP_WUR;
/* Send the SubmitReply for req (states as they stand) and log the batch line. */
void intake_reply(intake_t *in, intake_req_t *req);
void intake_req_destroy(intake_req_t **req);

/* intake_store.c: state reads for waiting requests (claims: ing_store_claim in cp_ingest.h). */
/* Read the states of the waiting answers of reqs[0..nreq-1] in one pipeline and
 * apply the final ones (clearing waiting). -1 when Redis is unavailable. */
int intake_store_refresh(intake_t *in, intake_req_t **reqs, size_t nreq) CP_WUR;

/* intake_forward.c: queue new events to verify and notify. */
/* PUSH pending bytes to verify without blocking; -1 when the queue is full/unreachable. */
int intake_forward_verify(intake_t *in, const uint8_t *pending, size_t len) CP_WUR;
void intake_forward_accepted(intake_t *in, const Carepass__V1__PendingEvent *pe);

/* intake_wait.c: the table of requests waiting for committed acks. */
intake_waits_t *intake_waits_new(void);
void intake_waits_destroy(intake_waits_t **w);
/* Register req (with nwaiting > 0) under each of its waiting answers. */
void intake_waits_add(intake_waits_t *w, intake_req_t *req);
/* Remove req from the table (it is about to be answered). */
void intake_waits_remove(intake_waits_t *w, intake_req_t *req);
/* Apply a final result to every waiting request holding that event. */
void intake_waits_result(intake_waits_t *w, const Carepass__V1__EventResult *res);
/* Set an answer's final state (from a result or Redis); clears waiting. */
void intake_answer_final(intake_req_t *req, size_t i, ing_st_t st, const char *reason,
                         const char *message, uint64_t index);
/* Answer complete requests, re-read due ones from Redis, time out the late ones.
 * With `all`, answer every waiting request now (shutdown). */
void intake_waits_tick(intake_t *in, bool all);
size_t intake_waits_count(const intake_waits_t *w);
/* Monotonic ms of the earliest refresh/deadline (INT64_MAX when nobody waits). */
int64_t intake_waits_next_ms(const intake_waits_t *w);

/* intake_redrive.c: re-send accepted events that have no final state yet. */
void intake_redrive(intake_t *in);

#endif
