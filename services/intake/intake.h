/* intake.h -- the intake service object and its lifecycle (intake_server.c); each other file
 * has its own header (intake_req.h, intake_wait.h, intake_store.h, intake_forward.h, intake_redrive.h). */
#ifndef INTAKE_H
#define INTAKE_H

#include <pthread.h>
#include <sys/stat.h>
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
#define INTAKE_REGISTRY_CHECK_MS 1000 /* how often the provider registry file is looked at (reload) */

typedef struct intake_req intake_req_t;    // one request being answered (intake_req.h)
typedef struct intake_waits intake_waits_t;  // requests waiting for committed acks (intake_wait.h)

/* The intake service: sockets, registry, Redis and the waiting table. */
typedef struct {
  void *ctx;                  // ZeroMQ context
  void *router;               // provider-facing ROUTER, CURVE server
  void *verify_push;          // PUSH connected to the verify queue (BUS_VERIFY_IN)
  void *results_sub;          // SUB connected to BUS_RESULTS_OUT, subscribed to id
  cp_zap_t *zap;              // ZAP handler admitting registered provider keys
  prov_registry_t *providers; // provider registry; swapped on reload under reg_lock (the ZAP thread reads it)
  pthread_mutex_t reg_lock;   // guards providers against the ZAP thread during a reload
  struct stat reg_st;         // the registry file as last loaded (inode, size, mtime: a change reloads)
  bool reg_failed;            // the changed file could not be loaded (logged once; the old registry stays)
  int64_t next_registry_ms;   // monotonic ms of the next look at the registry file
  cp_redis_t *redis;          // Redis connection
  unsigned char secret[CP_SECRET_BYTES]; // pseudonym key (wiped at destroy)
  char id[INTAKE_ID_MAX];     // this replica's id: the topic its results are published on
  size_t max_message;         // MAX_MESSAGE_BYTES: larger requests get MESSAGE_TOO_LARGE
  size_t max_batch;           // MAX_BATCH
  int64_t ack_timeout_ms;     // ACK_TIMEOUT_MS
  int64_t redrive_after_ms;   // REDRIVE_AFTER_MS
  int64_t outbox_max;         // OUTBOX_MAX: the claim answers BUSY at this outbox length
  intake_waits_t *waits;      // requests waiting for committed acks
  int64_t next_redrive_ms;    // monotonic ms of the next redrive scan
  uint64_t pushes_failed;     // events that could not be queued to verify (redrive resends them)
} intake_t;

/* intake_server.c: lifecycle, run by cp_service_main (main.c). new: registry, Redis, sockets
 * bound and connected (0; or -1 with err, *out NULL). turn: wait at most timeout_ms for requests
 * and results, answer them, then the committed-ack timers and the redrive scan. drain (after
 * SIGTERM): read no more requests; answer the waiting ones with the states reached. destroy:
 * NULL-safe, sets *in to NULL. */
int intake_new(intake_t **out, char *err, size_t errlen) CP_WUR;
int intake_turn(intake_t *in, int timeout_ms) CP_WUR;
int intake_drain(intake_t *in) CP_WUR;
void intake_destroy(intake_t **in);

#endif
