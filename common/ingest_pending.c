/* ingest_pending.c -- the PendingEvent built from a shape-checked event, its content digest and
 * the event.accepted notify job (shared by intake and the gateway; see cp_ingest.h). */
#include "cp_ingest.h"

#include <stdlib.h>

#include "cp_codec.h"

void ing_pending_build(const Carepass__V1__CompletionEvent *ev, const char *provider_id,
                          const unsigned char pseudonym[CP_PSEUDONYM_BYTES],
                          Carepass__V1__PendingEvent *pe) {
  carepass__v1__pending_event__init(pe);
  /* Strings point into ev (and provider_id); pe must not outlive them. No NI number here. */
  pe->provider_id = (char *)provider_id;
  pe->provider_event_id = ev->provider_event_id;
  pe->worker_pseudonym.data = (uint8_t *)pseudonym;
  pe->worker_pseudonym.len = CP_PSEUDONYM_BYTES;
  pe->qualification_code = ev->qualification_code;
  pe->completion_date = ev->completion_date;
  pe->assessor_id = ev->assessor_id;
  pe->evidence_hash = ev->evidence_hash;
  /* UNSPECIFIED means COMPLETION: store the explicit kind so both spellings have one digest */
  pe->kind = ev->kind == CAREPASS__V1__EVENT_KIND__EVENT_KIND_UNSPECIFIED
                 ? CAREPASS__V1__EVENT_KIND__EVENT_KIND_COMPLETION
                 : ev->kind;
  pe->revokes_event_id = ev->revokes_event_id;
  pe->revocation_reason = ev->revocation_reason;
  pe->received_at = 0;
  pe->reply_to = (char *)"";
}

int ing_pending_digest(const Carepass__V1__PendingEvent *pe, char hex[65]) {
  Carepass__V1__PendingEvent canon = *pe;
  canon.received_at = 0;
  canon.reply_to = (char *)"";
  uint8_t *buf = NULL;
  size_t len = 0;
  if (cp_pb_pack(&canon.base, &buf, &len) != 0) return -1;
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, buf, len);
  free(buf);
  cp_hex(h, sizeof h, hex);
  return 0;
}

void ing_accepted_job(const Carepass__V1__PendingEvent *pe, Carepass__V1__NotifyJob *job) {
  carepass__v1__notify_job__init(job);
  job->type = (char *)"event.accepted";
  job->provider_id = pe->provider_id;
  job->provider_event_id = pe->provider_event_id;
  job->qualification_code = pe->qualification_code;
  job->worker_pseudonym = pe->worker_pseudonym;
  job->occurred_at = pe->received_at;
}
