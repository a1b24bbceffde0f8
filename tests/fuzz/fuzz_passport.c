/* fuzz_passport.c -- a carepass-passport/v1 bundle (common/bundle.c), as `carepass verify` and
 * the gateway's bundle download read one: cp_passport_parse (blocks, counts, every embedded
 * tlog-proof and its checkpoint), then each proof checked against the bundle's checkpoint
 * (cp_tlog_proof_check) and the bundle written back (cp_passport_format) and parsed again.
 * The input is the file. */
#include "cp_bundle.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static bool inited;
  if (!inited) {
    fuzz_quiet();
    inited = true;
  }
  char *text = cp_xmalloc(size + 1);
  memcpy(text, data, size);
  text[size] = '\0';
  cp_passport_t b;
  char err[CP_ERRLEN];
  if (cp_passport_parse(text, size, &b, err, sizeof err) == 0) {
    uint64_t tree = 0;
    uint8_t root[REG_HASH_BYTES];
    if (reg_checkpoint_parse(b.checkpoint, b.checkpoint_len, NULL, 0, &tree, root, err, sizeof err) == 0)
      for (size_t i = 0; i < b.n; i++) FUZZ_TRY(cp_tlog_proof_check(&b.items[i].proof, tree, root, err, sizeof err));
    char *out = NULL;
    size_t outlen = 0;
    if (cp_passport_format(&b, &out, &outlen, err, sizeof err) == 0) {
      cp_passport_t c;
      if (cp_passport_parse(out, outlen, &c, err, sizeof err) != 0) abort(); /* its own output */
      if (c.n != b.n) abort();
      cp_passport_clear(&c);
      free(out);
    }
    cp_passport_clear(&b);
  }
  free(text);
  return 0;
}
