/* intake_forward.c -- queue accepted events to the verify queue and their notifications to notify. */
#include "intake_forward.h"

#include <errno.h>
#include <string.h>

#include "cp_log.h"

int intake_forward_verify(intake_t *in, const uint8_t *pending, size_t len) {
  /* Never block the ROUTER loop: when the queue is full the event stays in
   * cp:pending and the redrive scan sends it later. */
  if (zmq_send(in->verify_push, pending, len, ZMQ_DONTWAIT) < 0) {
    in->pushes_failed++;
    return -1;
  }
  return 0;
}

void intake_forward_accepted(intake_t *in, const Carepass__V1__PendingEvent *pe) {
  Carepass__V1__NotifyJob job;
  ing_accepted_job(pe, &job);
  /* best effort: an accepted notice that cannot be queued is counted and logged
   * (first and every 1000th), not retried; committed records are announced by the signer */
  if (cp_zmq_send_pb(in->notify_push, &job.base, ZMQ_DONTWAIT) != 0 && in->notices_dropped++ % 1000 == 0)
    cp_log_warn("notify queue full or unreachable; event.accepted dropped",
                CP_KV_STR("error", zmq_strerror(errno)), CP_KV_INT("dropped", in->notices_dropped),
                CP_KV_END);
}
