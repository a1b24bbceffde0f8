/* verify_send.c -- messages out of verify: records to signer shards, results, notification jobs. */
#include "verify.h"
#include "cp_log.h"
#include "cp_service.h"
#include "cp_zmq.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#define SEND_POLL_MS 200   /* how long one wait for a full queue lasts before checking for stop */

size_t verify_shard_of(const ProtobufCBinaryData *pseudonym, size_t nshards) {
  assert(nshards > 0);
  if (pseudonym == NULL || pseudonym->len < 2)
    return 0;
  /* First two bytes of the pseudonym as a big-endian uint16: every entry of one worker
   * lands on one shard, so a revocation or award meets the records it belongs with. */
  unsigned v = ((unsigned)pseudonym->data[0] << 8) | pseudonym->data[1];
  return v % nshards;
}

/* Send one frame (a packed message, or raw bytes when msg is NULL), waiting while the
 * peer's queue is full; -1 when stopping or on a socket error. */
static int send_frame(void *sock, const ProtobufCMessage *msg, const void *raw, size_t rawlen,
                      int more, const char *what) {
  for (;;) {
    int rc;
    if (msg != NULL)
      rc = cp_zmq_send_pb(sock, msg, ZMQ_DONTWAIT | more);
    else
      rc = zmq_send(sock, raw, rawlen, ZMQ_DONTWAIT | more) < 0 ? -1 : 0;
    if (rc == 0)
      return 0;
    if (errno != EAGAIN && errno != EINTR) {
      cp_log_error("send failed", CP_KV_STR("to", what), CP_KV_STR("error", zmq_strerror(errno)), CP_KV_END);
      return -1;
    }
    if (cp_stop_requested)
      return -1;
    zmq_pollitem_t pi = {.socket = sock, .events = ZMQ_POLLOUT};
    (void)zmq_poll(&pi, 1, SEND_POLL_MS);
  }
}

int verify_send_record(verify_t *v, const Carepass__V1__VerifiedRecord *rec) {
  assert(rec->event != NULL);
  size_t shard = verify_shard_of(&rec->event->worker_pseudonym, v->nshards);
  return send_frame(v->shards[shard], &rec->base, NULL, 0, 0, "signer");
}

int verify_publish_result(verify_t *v, const char *reply_to, const Carepass__V1__EventResult *res) {
  const char *topic = reply_to != NULL ? reply_to : "";
  /* PUB never blocks (a slow subscriber drops), so the two frames always go together. */
  if (send_frame(v->results, NULL, topic, strlen(topic), ZMQ_SNDMORE, "results") != 0)
    return -1;
  return send_frame(v->results, &res->base, NULL, 0, 0, "results");
}

