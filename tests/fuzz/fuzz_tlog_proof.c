/* fuzz_tlog_proof.c -- a c2sp.org/tlog-proof@v1 file (common/bundle.c), as `carepass verify`
 * reads one: cp_tlog_proof_parse, then its checkpoint opened with the fixture register's key
 * (reg_checkpoint_parse / reg_checkpoint_open) and the inclusion proof checked against the tree
 * it names (cp_tlog_proof_check); what parsed is written back (cp_tlog_proof_format) and must
 * parse again to the same proof. The input is the file. */
#include "cp_bundle.h"
#include "cp_regkeys.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char vkey[REG_VKEY_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static bool inited;
  if (!inited) {
    fuzz_quiet();
    if (sodium_init() < 0) abort();
    char path[4096];
    fuzz_source_path(path, sizeof path, "tests/fuzz/fixtures/register/vkey");
    FILE *fp = fopen(path, "r");
    if (fp == NULL || fgets(vkey, sizeof vkey, fp) == NULL) abort();
    fclose(fp);
    vkey[strcspn(vkey, "\n")] = '\0';
    inited = true;
  }
  char *text = cp_xmalloc(size + 1);
  memcpy(text, data, size);
  text[size] = '\0';
  cp_tlog_proof_t p;
  char err[CP_ERRLEN];
  if (cp_tlog_proof_parse(text, size, &p, err, sizeof err) == 0) {
    uint64_t tree = 0;
    uint8_t root[REG_HASH_BYTES];
    if (reg_checkpoint_open(p.checkpoint, p.checkpoint_len, vkey, NULL, 0, &tree, root, err, sizeof err) == 0 ||
        reg_checkpoint_parse(p.checkpoint, p.checkpoint_len, NULL, 0, &tree, root, err, sizeof err) == 0)
      FUZZ_TRY(cp_tlog_proof_check(&p, tree, root, err, sizeof err));
    char *out = NULL;
    size_t outlen = 0;
    if (cp_tlog_proof_format(&p, &out, &outlen, err, sizeof err) == 0) {
      cp_tlog_proof_t q;
      if (cp_tlog_proof_parse(out, outlen, &q, err, sizeof err) != 0) abort(); /* its own output */
      if (q.index != p.index || q.nproof != p.nproof || q.entry_len != p.entry_len ||
          q.checkpoint_len != p.checkpoint_len)
        abort();
      cp_tlog_proof_clear(&q);
      free(out);
    }
    cp_tlog_proof_clear(&p);
  }
  free(text);
  return 0;
}
