/* intake_forward.c -- queue accepted events to the verify queue. */
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
