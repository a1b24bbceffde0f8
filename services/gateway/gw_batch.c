/* gw_batch.c -- one POST /v1/events batch being answered: its 200 reply (per-event outcomes,
 * counts, the outcome metrics and the one log line per batch), made at once by gw_events.c or
 * later by the committed-ack waiter (gw_wait.c). */
#include "gw_batch.h"
#include "gw_http.h"
#include "gw_metrics.h"

#include <stdio.h>
#include <stdlib.h>

#include "cp_codec.h"
#include "cp_log.h"

static const char *outcome_name(ing_st_t st) {
  switch (st) {
  case ING_ST_REJECTED: return "rejected";
  case ING_ST_COMMITTED: return "committed";
  default: return "accepted";
  }
}

void gw_batch_destroy(gw_batch_t **bp) {
  if (bp == NULL || *bp == NULL) return;
  gw_batch_t *b = *bp;
  ing_answers_free(b->ans, b->n);
  free(b);
  *bp = NULL;
}

void gw_batch_reply(gw_t *gw, gw_batch_t *b) {
  json_t *arr = json_array();
  size_t count[4] = {0};
  for (size_t i = 0; i < b->n; i++) {
    const ing_answer_t *a = &b->ans[i];
    ing_st_t st = a->st == ING_ST_REJECTED || a->st == ING_ST_COMMITTED ? a->st : ING_ST_ACCEPTED;
    json_t *o = json_pack("{s:s,s:s}", "provider_event_id", a->event_id, "outcome", outcome_name(st));
    if (st == ING_ST_REJECTED) {
      json_object_set_new(o, "reason_code", json_string(a->reason != NULL ? a->reason : cp_reason_code(CP_R_INTERNAL)));
      json_object_set_new(o, "message", json_string(a->message != NULL ? a->message : ""));
    } else if (st == ING_ST_COMMITTED) {
      json_object_set_new(o, "entry_index", json_integer((json_int_t)a->index));
    }
    json_array_append_new(arr, o);
    count[st]++;
  }
  const char *names[] = {"accepted", "rejected", "committed"};
  ing_st_t sts[] = {ING_ST_ACCEPTED, ING_ST_REJECTED, ING_ST_COMMITTED};
  for (int k = 0; k < 3; k++) {
    char labels[40];
    snprintf(labels, sizeof labels, "outcome=\"%s\"", names[k]);
    if (count[sts[k]]) gw_metric_add(gw, "carepass_gateway_events_total", labels, count[sts[k]]);
  }
  gw_reply_json(b->req, 200,
                json_pack("{s:o,s:I,s:I,s:I}", "replies", arr, "accepted", (json_int_t)count[ING_ST_ACCEPTED],
                          "rejected", (json_int_t)count[ING_ST_REJECTED], "committed",
                          (json_int_t)count[ING_ST_COMMITTED]));
  /* one line per batch; no personal data (ids and counts only) */
  cp_log_info("batch", CP_KV_STR("provider", b->provider), CP_KV_STR("edge", "http"), CP_KV_INT("events", b->n),
              CP_KV_INT("accepted", count[ING_ST_ACCEPTED]), CP_KV_INT("rejected", count[ING_ST_REJECTED]),
              CP_KV_INT("committed", count[ING_ST_COMMITTED]),
              CP_KV_STR("ack", b->committed ? "committed" : "accepted"),
              CP_KV_INT("ms", cp_mono_ms() - b->req->started_ms), CP_KV_END);
}
