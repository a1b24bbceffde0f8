/* ingest_batch.c -- one provider batch end to end, the same on every edge (see cp_ingest.h). */
#include "cp_ingest.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_codec.h"
#include "cp_dates.h"
#include "cp_outbox.h"
#include "cp_utf8.h"

#define REUSED_MESSAGE                                                                   \
  "provider_event_id was already used for an event with different content; "            \
  "use a new id, or send a REVOCATION of the old event"

static void answer_reject(ing_answer_t *a, cp_reason_t r, const char *message) {
  a->st = ING_ST_REJECTED;
  a->reason = cp_strdup(cp_reason_code(r));
  a->message = cp_strdup(message != NULL && message[0] ? message : cp_reason_text(r));
}

void ing_answers_free(ing_answer_t *ans, size_t n) {
  if (ans == NULL) return;
  for (size_t i = 0; i < n; i++) {
    free(ans[i].event_id);
    free(ans[i].reason);
    free(ans[i].message);
  }
  free(ans);
}

int ing_batch_take(const ing_edge_t *edge, const char *provider, bool committed,
                   Carepass__V1__CompletionEvent *const *events, size_t n, ing_answer_t *ans,
                   size_t *nwaiting) {
  assert(edge != NULL && edge->forward != NULL && provider != NULL && ans != NULL && nwaiting != NULL);
  int rc = -1;
  ing_shape_t *shape = cp_xcalloc(n, sizeof *shape);
  Carepass__V1__PendingEvent *pe = cp_xcalloc(n, sizeof *pe);
  unsigned char (*pseudo)[CP_PSEUDONYM_BYTES] = cp_xcalloc(n, sizeof *pseudo);
  char (*digest)[65] = cp_xcalloc(n, sizeof *digest);
  uint8_t **packed = cp_xcalloc(n, sizeof *packed);
  size_t *packed_len = cp_xcalloc(n, sizeof *packed_len);
  uint8_t **notice = cp_xcalloc(n, sizeof *notice);
  size_t *notice_len = cp_xcalloc(n, sizeof *notice_len);
  size_t *which = cp_xcalloc(n, sizeof *which); /* claim slot -> event index */
  ing_claim_req_t *creq = cp_xcalloc(n, sizeof *creq);
  ing_claim_t *claim = cp_xcalloc(n, sizeof *claim);
  size_t nclaim = 0;
  int64_t now = cp_now_ms();

  ing_shape_batch(events, n, provider, cp_today(), shape);
  for (size_t i = 0; i < n; i++) {
    ing_answer_t *a = &ans[i];
    const char *id = events[i]->provider_event_id;
    /* the answer echoes the id, so never bytes that are not UTF-8 (the event is rejected) */
    a->event_id = cp_strdup(cp_utf8_valid(id, strlen(id)) ? id : "");
    const ing_text_fault_t *tf = edge->faults != NULL ? &edge->faults[i] : NULL;
    if (tf != NULL && tf->reason != CP_OK) {
      /* what was unpacked is a truncation of what was sent: this verdict comes first */
      char m[ING_SHAPE_MSG_MAX];
      snprintf(m, sizeof m,
               tf->reason == CP_R_NUL_IN_STRING
                   ? "%s contains a NUL (zero) byte; remove it and send the event again"
                   : "%s is not valid UTF-8; send it as UTF-8 and send the event again",
               tf->field);
      sodium_memzero(shape[i].ni_norm, sizeof shape[i].ni_norm);
      answer_reject(a, tf->reason, m);
      continue;
    }
    if (shape[i].reason != CP_OK) {
      answer_reject(a, shape[i].reason, shape[i].message);
      continue;
    }
    cp_pseudonym(edge->secret, shape[i].ni_norm, pseudo[i]);
    sodium_memzero(shape[i].ni_norm, sizeof shape[i].ni_norm);
    ing_pending_build(events[i], provider, pseudo[i], &pe[i]);
    if (ing_pending_digest(&pe[i], digest[i]) != 0) goto internal;
    pe[i].received_at = now;
    pe[i].reply_to = (char *)edge->reply_to;
    if (cp_pb_pack(&pe[i].base, &packed[i], &packed_len[i]) != 0) goto internal;
    Carepass__V1__NotifyJob job;
    ing_accepted_job(&pe[i], &job);
    if (cp_outbox_pack(&job, &notice[i], &notice_len[i]) != 0) goto internal;
    creq[nclaim] = (ing_claim_req_t){pe[i].provider_event_id, digest[i], packed[i], packed_len[i],
                                     notice[i], notice_len[i]};
    which[nclaim++] = i;
    continue;
  internal:
    answer_reject(a, CP_R_INTERNAL, NULL);
  }

  if (nclaim > 0 &&
      ing_store_claim(edge->redis, edge->redrive_after_ms, edge->outbox_max, provider, creq, nclaim, claim) != 0)
    goto done;

  for (size_t k = 0; k < nclaim; k++) {
    size_t i = which[k];
    ing_answer_t *a = &ans[i];
    const ing_claim_t *c = &claim[k];
    if (c->reused) {
      answer_reject(a, CP_R_EVENT_ID_REUSED, REUSED_MESSAGE);
      continue;
    }
    if (c->busy) {   /* not stored: the same event sent again later is taken in */
      answer_reject(a, CP_R_BUSY, NULL);
      continue;
    }
    if (c->is_new) edge->forward(edge->arg, &pe[i], packed[i], packed_len[i]);
    a->st = c->st;
    a->index = c->index;
    if (c->st == ING_ST_REJECTED) {
      a->reason = cp_strdup(c->reason != NULL ? c->reason : cp_reason_code(CP_R_INTERNAL));
      a->message = cp_strdup(c->message != NULL ? c->message : "");
    }
    if (a->st == ING_ST_ACCEPTED && committed) {
      a->waiting = true;
      (*nwaiting)++;
    }
  }
  rc = 0;
done:
  for (size_t k = 0; k < nclaim; k++) ing_claim_clear(&claim[k]);
  for (size_t i = 0; i < n; i++) {
    free(packed[i]);
    free(notice[i]);
  }
  ing_shape_wipe(shape, n);
  sodium_memzero(pseudo, n * sizeof *pseudo);
  free(shape);
  free(pe);
  free(pseudo);
  free(digest);
  free(packed);
  free(packed_len);
  free(notice);
  free(notice_len);
  free(which);
  free(creq);
  free(claim);
  return rc;
}
