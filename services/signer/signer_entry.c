/* signer_entry.c -- the canonical register record: PassportEntry built, signed and wrapped in SignedEntry. */
#include "signer.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "cp_codec.h"
#include "cp_regkeys.h"

Carepass__V1__PassportEntry *signer_entry_decode(const uint8_t *buf, size_t len, char *err, size_t errlen) {
  Carepass__V1__SignedEntry *se = (Carepass__V1__SignedEntry *)cp_pb_unpack(
      &carepass__v1__signed_entry__descriptor, buf, len, REG_ENTRY_MAX, err, errlen);
  if (se == NULL) return NULL;
  Carepass__V1__PassportEntry *pe = (Carepass__V1__PassportEntry *)cp_pb_unpack(
      &carepass__v1__passport_entry__descriptor, se->entry.data, se->entry.len, REG_ENTRY_MAX, err, errlen);
  protobuf_c_message_free_unpacked(&se->base, NULL);
  return pe;
}

void signer_entry_fill(const Carepass__V1__VerifiedRecord *rec, int64_t issued_at, const cp_subject_t *subject,
                       Carepass__V1__PassportEntry *pe) {
  const Carepass__V1__PendingEvent *ev = rec->event;
  assert(ev != NULL);
  carepass__v1__passport_entry__init(pe);
  if (subject != NULL) {
    pe->version = 2;
    pe->subject.data = (uint8_t *)subject->subject;
    pe->subject.len = sizeof subject->subject;
    pe->subject_slot.data = (uint8_t *)subject->slot;
    pe->subject_slot.len = sizeof subject->slot;
    pe->sealed_opening.data = (uint8_t *)subject->sealed;
    pe->sealed_opening.len = sizeof subject->sealed;
  } else {
    pe->version = 1;
    pe->worker_pseudonym = ev->worker_pseudonym;
  }
  pe->qualification_code = ev->qualification_code;
  pe->provider_id = ev->provider_id;
  pe->assessor_id = ev->assessor_id;
  pe->completion_date = ev->completion_date;
  pe->valid_until = rec->valid_until;
  pe->evidence_hash = ev->evidence_hash;
  pe->provider_event_id = ev->provider_event_id;
  pe->issued_at = issued_at;
  pe->entry_type = rec->entry_type;
  pe->revokes_index = rec->revokes_index;
  pe->reason_code = rec->reason_code;
}

int signer_entry_build(const cp_signkey_t *key, const Carepass__V1__VerifiedRecord *rec, int64_t issued_at,
                       const cp_subject_t *subject, const uint8_t *sealed, size_t sealed_len, uint8_t **out,
                       size_t *outlen, char *err, size_t errlen) {
  Carepass__V1__PassportEntry pe;
  bool consent = rec->entry_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_CONSENT;
  if (consent && (subject == NULL || sealed == NULL || sealed_len == 0))
    return cp_err(err, errlen, "a consent needs entry format 2 (CAREPASS_ENTRY_FORMAT=2): format 1 would show its "
                  "worker and employer; not signed");
  signer_entry_fill(rec, issued_at, subject, &pe);
  if (consent) {
    /* the employer is in the sealed payload only; no record field of the event enters the entry */
    pe.qualification_code = (char *)"";
    pe.assessor_id = (char *)"";
    pe.completion_date = (char *)"";
    pe.valid_until = (char *)"";
    pe.evidence_hash.data = NULL;
    pe.evidence_hash.len = 0;
    pe.sealed_payload.data = (uint8_t *)sealed;
    pe.sealed_payload.len = sealed_len;
  }
  return reg_entry_sign(key, &pe, out, outlen, err, errlen);
}
