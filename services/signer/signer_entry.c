/* signer_entry.c -- the canonical register record: PassportEntry built, signed and wrapped in SignedEntry. */
#include "signer.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "cp_codec.h"

Carepass__V1__PassportEntry *signer_entry_decode(const uint8_t *buf, size_t len, char *err, size_t errlen) {
  Carepass__V1__SignedEntry *se = (Carepass__V1__SignedEntry *)cp_pb_unpack(
      &carepass__v1__signed_entry__descriptor, buf, len, REG_ENTRY_MAX, err, errlen);
  if (se == NULL) return NULL;
  Carepass__V1__PassportEntry *pe = (Carepass__V1__PassportEntry *)cp_pb_unpack(
      &carepass__v1__passport_entry__descriptor, se->entry.data, se->entry.len, REG_ENTRY_MAX, err, errlen);
  protobuf_c_message_free_unpacked(&se->base, NULL);
  return pe;
}

int signer_entry_build(const cp_signkey_t *key, const Carepass__V1__VerifiedRecord *rec, int64_t issued_at,
                       uint8_t **out, size_t *outlen, char *err, size_t errlen) {
  const Carepass__V1__PendingEvent *ev = rec->event;
  assert(ev != NULL);
  Carepass__V1__PassportEntry pe = CAREPASS__V1__PASSPORT_ENTRY__INIT;
  pe.version = 1;
  pe.worker_pseudonym = ev->worker_pseudonym;
  pe.qualification_code = ev->qualification_code;
  pe.provider_id = ev->provider_id;
  pe.assessor_id = ev->assessor_id;
  pe.completion_date = ev->completion_date;
  pe.valid_until = rec->valid_until;
  pe.evidence_hash = ev->evidence_hash;
  pe.provider_event_id = ev->provider_event_id;
  pe.issued_at = issued_at;
  pe.entry_type = rec->entry_type;
  pe.revokes_index = rec->revokes_index;
  pe.reason_code = rec->reason_code;
  uint8_t *pbuf = NULL, *sbuf = NULL;
  size_t plen = 0, slen = 0;
  if (cp_pb_pack(&pe.base, &pbuf, &plen) != 0) return cp_err(err, errlen, "packing PassportEntry failed");
  unsigned char sig[crypto_sign_BYTES];
  cp_sign_entry(key, pbuf, plen, sig);
  Carepass__V1__SignedEntry se = CAREPASS__V1__SIGNED_ENTRY__INIT;
  se.entry.data = pbuf;
  se.entry.len = plen;
  se.key_id.data = (uint8_t *)key->key_id;
  se.key_id.len = CP_KEYID_BYTES;
  se.signature.data = sig;
  se.signature.len = sizeof sig;
  int rc = cp_pb_pack(&se.base, &sbuf, &slen);
  free(pbuf);
  if (rc != 0) return cp_err(err, errlen, "packing SignedEntry failed");
  if (slen > REG_ENTRY_MAX) {
    free(sbuf);
    return cp_err(err, errlen, "signed entry is %zu bytes; the register limit is %d", slen, REG_ENTRY_MAX);
  }
  *out = sbuf;
  *outlen = slen;
  return 0;
}
