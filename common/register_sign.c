/* register_sign.c -- making register entries: a PassportEntry signed and wrapped as a SignedEntry. */
#include "cp_regkeys.h"

#include <stdlib.h>

#include "cp_codec.h"

int reg_entry_sign(const cp_signkey_t *key, const Carepass__V1__PassportEntry *pe, uint8_t **out,
                   size_t *outlen, char *err, size_t errlen) {
  uint8_t *pbuf = NULL, *sbuf = NULL;
  size_t plen = 0, slen = 0;
  int rc = -1;
  if (cp_pb_pack(&pe->base, &pbuf, &plen) != 0) {
    cp_err(err, errlen, "packing PassportEntry failed");
    goto out;
  }
  unsigned char sig[crypto_sign_BYTES];
  cp_sign_entry(key, pbuf, plen, sig);
  Carepass__V1__SignedEntry se = CAREPASS__V1__SIGNED_ENTRY__INIT;
  se.entry.data = pbuf;
  se.entry.len = plen;
  se.key_id.data = (uint8_t *)key->key_id;
  se.key_id.len = CP_KEYID_BYTES;
  se.signature.data = sig;
  se.signature.len = sizeof sig;
  if (cp_pb_pack(&se.base, &sbuf, &slen) != 0) {
    cp_err(err, errlen, "packing SignedEntry failed");
    goto out;
  }
  if (slen > REG_ENTRY_MAX) {
    cp_err(err, errlen, "signed entry is %zu bytes; the register limit is %d", slen, REG_ENTRY_MAX);
    goto out;
  }
  *out = sbuf;
  *outlen = slen;
  sbuf = NULL;
  rc = 0;
out:
  free(pbuf);
  free(sbuf);
  return rc;
}

int reg_key_entry_build(const cp_signkey_t *signer, const char *name, const uint8_t pk[32], int64_t issued_at,
                        uint8_t **out, size_t *outlen, char *err, size_t errlen) {
  Carepass__V1__PassportEntry pe = CAREPASS__V1__PASSPORT_ENTRY__INIT;
  pe.version = 1;
  pe.entry_type = CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_KEY;
  pe.issued_at = issued_at;
  pe.key_public.data = (uint8_t *)pk;
  pe.key_public.len = 32;
  pe.key_name = (char *)name;
  return reg_entry_sign(signer, &pe, out, outlen, err, errlen);
}
