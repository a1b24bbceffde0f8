/* main.c -- bus: the stable rendezvous points of carepass's internal queues (libzmq zmq_proxy). */
#include <errno.h>
#include <unistd.h>

#include <zmq.h>

#include "bus_queue.h"
#include "cp_config.h"
#include "cp_log.h"
#include "cp_service.h"

#define BUS_TICK_US 200000     /* how often main looks at the stop flag */
#define BUS_HEARTBEAT_TICKS 5  /* heartbeat every second */

/* The three queues: producers connect to *_IN, consumers to *_OUT. */
static const struct {
  const char *name;   // queue name
  int ftype;          // producer-side socket type
  cp_opt_t in;        // config option of the producer-side endpoint
  int btype;          // consumer-side socket type
  cp_opt_t out;       // config option of the consumer-side endpoint
} queues[] = {
    {"verify", ZMQ_PULL, CP_OPT_BUS_VERIFY_IN, ZMQ_PUSH, CP_OPT_BUS_VERIFY_OUT},
    {"notify", ZMQ_PULL, CP_OPT_BUS_NOTIFY_IN, ZMQ_PUSH, CP_OPT_BUS_NOTIFY_OUT},
    {"results", ZMQ_XSUB, CP_OPT_BUS_RESULTS_IN, ZMQ_XPUB, CP_OPT_BUS_RESULTS_OUT},
};

int main(int argc, char **argv) {
  int code = 0;
  if (cp_service_init(argc, argv, "bus", CP_SVC_BUS,
                      "bus: zmq_proxy queues (verify, notify) and the results topic", &code) != 0)
    return code;
  int rc = 1;
  char err[CP_ERRLEN] = "";
  bus_queue_t *q[CP_ARRAY_LEN(queues)] = {0};
  void *ctx = zmq_ctx_new();
  if (ctx == NULL) {
    cp_log_error("zmq_ctx_new failed", CP_KV_STR("error", zmq_strerror(errno)), CP_KV_END);
    goto out;
  }
  int hwm = (int)cp_cfg_int(CP_OPT_BUS_HWM);
  for (size_t i = 0; i < CP_ARRAY_LEN(queues); i++) {
    q[i] = bus_queue_start(ctx, queues[i].name, queues[i].ftype, cp_cfg_str(queues[i].in),
                           queues[i].btype, cp_cfg_str(queues[i].out), hwm, err, sizeof err);
    if (q[i] == NULL) {
      cp_log_error("bus failed to start", CP_KV_STR("error", err), CP_KV_END);
      goto out;
    }
  }

  rc = 0;
  for (unsigned tick = 0; !cp_stop_requested; tick++) {
    if (tick % BUS_HEARTBEAT_TICKS == 0) cp_service_heartbeat("bus");
    bool failed = false;
    for (size_t i = 0; i < CP_ARRAY_LEN(q); i++) failed |= bus_queue_failed(q[i]);
    if (failed) {
      cp_log_error("a bus queue stopped unexpectedly; exiting", CP_KV_END);
      rc = 1;
      break;
    }
    usleep(BUS_TICK_US);
  }
  cp_log_info("bus stopping", CP_KV_END);
out:
  for (size_t i = CP_ARRAY_LEN(q); i-- > 0;) bus_queue_stop(&q[i]);
  if (ctx != NULL) zmq_ctx_term(ctx);
  cp_config_free();
  return rc;
}
