/* bus_queue.c -- one bus queue: libzmq's zmq_proxy_steerable between two bound sockets, stopped
 * with a TERMINATE command on an inproc PAIR control socket. No home-made broker logic. */
#include "bus_queue.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "cp_log.h"
#include "cp_zmq.h"

struct bus_queue {
  char name[32];           // queue name for logs ("verify", "notify", "results")
  void *front;             // producer-side socket (PULL / XSUB), used by the thread
  void *back;              // consumer-side socket (PUSH / XPUB), used by the thread
  void *ctl_peer;          // PAIR the proxy reads commands from, used by the thread
  void *ctl;               // PAIR the main thread sends TERMINATE on
  pthread_t thread;        // the proxy thread
  bool started;            // thread was created (join on stop)
  atomic_bool ended;       // the proxy returned
  int rc;                  // zmq_proxy_steerable's return value
  int err;                 // errno when rc != 0
};

static void *queue_main(void *arg) {
  bus_queue_t *q = arg;
  q->rc = zmq_proxy_steerable(q->front, q->back, NULL, q->ctl_peer);
  q->err = errno;
  /* the thread owns these sockets once started; close them where they were used */
  cp_zmq_close(&q->front);
  cp_zmq_close(&q->back);
  cp_zmq_close(&q->ctl_peer);
  atomic_store(&q->ended, true);
  return NULL;
}

bus_queue_t *bus_queue_start(void *ctx, const char *name, int ftype, const char *front, int btype,
                             const char *back, int hwm, char *err, size_t errlen) {
  bus_queue_t *q = cp_xcalloc(1, sizeof *q);
  snprintf(q->name, sizeof q->name, "%s", name);
  char ctl_ep[64];
  snprintf(ctl_ep, sizeof ctl_ep, "inproc://carepass-bus-ctl-%s", name);
  char e[CP_ERRLEN];
  q->front = cp_zmq_socket(ctx, ftype, front, true, hwm, 0, e, sizeof e);
  if (q->front == NULL) goto err;
  q->back = cp_zmq_socket(ctx, btype, back, true, hwm, 0, e, sizeof e);
  if (q->back == NULL) goto err;
  q->ctl = cp_zmq_socket(ctx, ZMQ_PAIR, ctl_ep, true, 100, 0, e, sizeof e);
  if (q->ctl == NULL) goto err;
  q->ctl_peer = cp_zmq_socket(ctx, ZMQ_PAIR, ctl_ep, false, 100, 0, e, sizeof e);
  if (q->ctl_peer == NULL) goto err;
  /* pthread_create is a full memory barrier: the sockets migrate to the thread safely */
  int rc = pthread_create(&q->thread, NULL, queue_main, q);
  if (rc != 0) {
    snprintf(e, sizeof e, "pthread_create: %s", strerror(rc));
    goto err;
  }
  q->started = true;
  cp_log_info("bus queue started", CP_KV_STR("queue", name), CP_KV_STR("in", front),
              CP_KV_STR("out", back), CP_KV_INT("hwm", hwm), CP_KV_END);
  return q;
err:
  cp_err(err, errlen, "queue %s: %s", name, e);
  cp_zmq_close(&q->front);
  cp_zmq_close(&q->back);
  cp_zmq_close(&q->ctl_peer);
  cp_zmq_close(&q->ctl);
  free(q);
  return NULL;
}

bool bus_queue_failed(const bus_queue_t *q) { return atomic_load(&q->ended); }

void bus_queue_stop(bus_queue_t **qp) {
  if (qp == NULL || *qp == NULL) return;
  bus_queue_t *q = *qp;
  if (q->started) {
    if (!atomic_load(&q->ended) && zmq_send(q->ctl, "TERMINATE", 9, 0) != 9)
      cp_log_error("bus: TERMINATE not sent", CP_KV_STR("queue", q->name),
                   CP_KV_STR("error", zmq_strerror(errno)), CP_KV_END);
    pthread_join(q->thread, NULL);
    if (q->rc != 0)
      cp_log_warn("bus queue proxy ended with an error", CP_KV_STR("queue", q->name),
                  CP_KV_STR("error", zmq_strerror(q->err)), CP_KV_END);
  }
  cp_zmq_close(&q->ctl);
  free(q);
  *qp = NULL;
}
