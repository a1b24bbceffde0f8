/* intake_req.c -- one provider request being answered (at once, or later by the committed-ack
 * table of intake_wait.c): its final states, its SubmitReply with the envelope it came in, and
 * the one log line per batch. */
#include "intake_req.h"

#include <errno.h>
#include <stdlib.h>

#include "cp_log.h"
#include "cp_reasons.h"

void intake_req_destroy(intake_req_t **reqp) {
  if (reqp == NULL || *reqp == NULL) return;
  intake_req_t *req = *reqp;
  for (int i = 0; i < req->nenv; i++) zmq_msg_close(&req->env[i]);
  ing_answers_free(req->ans, req->n);
  free(req->request_id);
  free(req);
  *reqp = NULL;
}

/* Send the envelope frames of req, then `body`. Never blocks: a peer that is gone
 * or not reading loses its reply (ROUTER drops it), which is what ROUTER does anyway. */
void intake_req_send(intake_t *in, intake_req_t *req, const ProtobufCMessage *body) {
  for (int i = 0; i < req->nenv; i++) {
    if (zmq_msg_send(&req->env[i], in->router, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
      cp_log_warn("reply not sent", CP_KV_STR("provider", req->provider),
                  CP_KV_STR("error", zmq_strerror(errno)), CP_KV_END);
      return;
    }
  }
  if (cp_zmq_send_pb(in->router, body, ZMQ_DONTWAIT) != 0)
    cp_log_warn("reply not sent", CP_KV_STR("provider", req->provider),
                CP_KV_STR("error", zmq_strerror(errno)), CP_KV_END);
}

void intake_answer_final(intake_req_t *req, size_t i, ing_st_t st, const char *reason,
                         const char *message, uint64_t index) {
  ing_answer_t *a = &req->ans[i];
  if (!a->waiting) return;
  a->st = st;
  free(a->reason);
  free(a->message);
  a->reason = reason != NULL && reason[0] != '\0' ? cp_strdup(reason) : NULL;
  a->message = message != NULL && message[0] != '\0' ? cp_strdup(message) : NULL;
  a->index = index;
  a->waiting = false;
  req->nwaiting--;
}

void intake_reply(intake_t *in, intake_req_t *req) {
  Carepass__V1__SubmitReply rep = CAREPASS__V1__SUBMIT_REPLY__INIT;
  Carepass__V1__EventReply *er = cp_xcalloc(req->n, sizeof *er);
  Carepass__V1__EventReply **erp = cp_xcalloc(req->n, sizeof *erp);
  size_t accepted = 0, rejected = 0, committed = 0;
  for (size_t i = 0; i < req->n; i++) {
    const ing_answer_t *a = &req->ans[i];
    carepass__v1__event_reply__init(&er[i]);
    er[i].provider_event_id = a->event_id;
    switch (a->st) {
    case ING_ST_REJECTED:
      er[i].outcome = CAREPASS__V1__OUTCOME__OUTCOME_REJECTED;
      er[i].reason_code = a->reason != NULL ? a->reason : (char *)cp_reason_code(CP_R_INTERNAL);
      er[i].message = a->message != NULL ? a->message : (char *)"";
      rejected++;
      break;
    case ING_ST_COMMITTED:
      er[i].outcome = CAREPASS__V1__OUTCOME__OUTCOME_COMMITTED;
      er[i].entry_index = a->index;
      committed++;
      break;
    default:
      er[i].outcome = CAREPASS__V1__OUTCOME__OUTCOME_ACCEPTED;
      accepted++;
      break;
    }
    erp[i] = &er[i];
  }
  rep.request_id = req->request_id != NULL ? req->request_id : (char *)"";
  rep.n_replies = req->n;
  rep.replies = erp;
  intake_req_send(in, req, &rep.base);
  /* one line per batch; no personal data (ids and counts only) */
  cp_log_info("batch", CP_KV_STR("provider", req->provider), CP_KV_INT("events", req->n),
              CP_KV_INT("accepted", accepted), CP_KV_INT("rejected", rejected),
              CP_KV_INT("committed", committed),
              CP_KV_STR("ack", req->committed ? "committed" : "accepted"),
              CP_KV_INT("ms", cp_mono_ms() - req->started_ms), CP_KV_END);
  free(erp);
  free(er);
}
