/* main.c -- bus: the stable rendezvous points of carepass's internal queues (libzmq zmq_proxy). */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include <zmq.h>

#include "bus_queue.h"
#include "cp_config.h"
#include "cp_log.h"
#include "cp_service.h"

/* The two queues: producers connect to *_IN, consumers to *_OUT. (Notifications do not travel
 * on the bus: they go through the outbox stream in Redis, common/cp_outbox.h.) */
static const struct {
  const char *name;   // queue name
  int ftype;          // producer-side socket type
  cp_opt_t in;        // config option of the producer-side endpoint
  int btype;          // consumer-side socket type
  cp_opt_t out;       // config option of the consumer-side endpoint
} queues[] = {
    {"verify", ZMQ_PULL, CP_OPT_BUS_VERIFY_IN, ZMQ_PUSH, CP_OPT_BUS_VERIFY_OUT},
    {"results", ZMQ_XSUB, CP_OPT_BUS_RESULTS_IN, ZMQ_XPUB, CP_OPT_BUS_RESULTS_OUT},
};

typedef struct {
  void *ctx;                                 // ZeroMQ context of the proxies
  bus_queue_t *q[CP_ARRAY_LEN(queues)];      // one proxy thread per queue
} bus_t;

static void bus_destroy(void **selfp) {
  bus_t *b = *selfp;
  if (b == NULL) return;
  for (size_t i = CP_ARRAY_LEN(b->q); i-- > 0;) bus_queue_stop(&b->q[i]);
  if (b->ctx != NULL) zmq_ctx_term(b->ctx);
  free(b);
  *selfp = NULL;
}

static int bus_create(void **selfp, char *err, size_t errlen) {
  bus_t *b = cp_xcalloc(1, sizeof *b);
  *selfp = b;
  b->ctx = zmq_ctx_new();
  if (b->ctx == NULL) {
    cp_err(err, errlen, "zmq_ctx_new: %s", zmq_strerror(errno));
    return 1;
  }
  int hwm = (int)cp_cfg_int(CP_OPT_BUS_HWM);
  for (size_t i = 0; i < CP_ARRAY_LEN(queues); i++) {
    b->q[i] = bus_queue_start(b->ctx, queues[i].name, queues[i].ftype, cp_cfg_str(queues[i].in),
                              queues[i].btype, cp_cfg_str(queues[i].out), hwm, err, errlen);
    if (b->q[i] == NULL) return 1;
  }
  return 0;
}

/* The proxies run in their own threads; a turn only watches that none has ended. */
static int bus_turn(void *self, int timeout_ms) {
  bus_t *b = self;
  for (size_t i = 0; i < CP_ARRAY_LEN(b->q); i++) {
    if (bus_queue_failed(b->q[i])) {
      cp_log_error("a bus queue stopped unexpectedly", CP_KV_STR("queue", queues[i].name), CP_KV_END);
      return -1;
    }
  }
  usleep((useconds_t)timeout_ms * 1000);
  return 0;
}

static const cp_service_def_t bus_service = {
    .name = "bus",
    .service = CP_SVC_BUS,
    .summary = "bus: zmq_proxy queues (verify, notify) and the results topic",
    .create = bus_create,
    .turn = bus_turn,
    .destroy = bus_destroy,
};

int main(int argc, char **argv) { return cp_service_main(argc, argv, &bus_service); }
