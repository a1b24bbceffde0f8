/* fuzz_checkpoint.c -- signed checkpoint notes (common/register_checkpoint.c) as every reader
 * takes them: reg_checkpoint_parse (the body: origin, size, root), reg_checkpoint_open with the
 * fixture register's verifier key and with a key of another name, reg_checkpoint_open_any and
 * reg_checkpoint_count_sigs over both, and cp_vkey_parse of the note's first line (vkeys are
 * outside data for `carepass verify --vkey`). The input is the note. */
#include "cp_regkeys.h"
#include "cp_register.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char vkey[REG_VKEY_MAX];
static const char other_vkey[] = "other.example/log+deadbeef+AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

static void load_vkey(void) {
  char path[4096];
  fuzz_source_path(path, sizeof path, "tests/fuzz/fixtures/register/vkey");
  FILE *fp = fopen(path, "r");
  if (fp == NULL || fgets(vkey, sizeof vkey, fp) == NULL) abort();
  fclose(fp);
  vkey[strcspn(vkey, "\n")] = '\0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static bool inited;
  if (!inited) {
    fuzz_quiet();
    if (sodium_init() < 0) abort();
    load_vkey();
    inited = true;
  }
  /* readers hand over a NUL-terminated copy of the file */
  char *note = cp_xmalloc(size + 1);
  memcpy(note, data, size);
  note[size] = '\0';
  char err[CP_ERRLEN], origin[256];
  uint64_t tree_size = 0;
  uint8_t root[REG_HASH_BYTES];
  FUZZ_TRY(reg_checkpoint_parse(note, size, origin, sizeof origin, &tree_size, root, err, sizeof err));
  FUZZ_TRY(reg_checkpoint_open(note, size, vkey, origin, sizeof origin, &tree_size, root, err, sizeof err));
  FUZZ_TRY(reg_checkpoint_open(note, size, other_vkey, NULL, 0, &tree_size, root, err, sizeof err));
  const char *const keys[] = {vkey, other_vkey};
  size_t which = 0;
  FUZZ_TRY(reg_checkpoint_open_any(note, size, keys, 2, origin, sizeof origin, &tree_size, root, &which, err,
                                sizeof err));
  FUZZ_TRY(reg_checkpoint_count_sigs(note, size, keys, 2, err, sizeof err));
  /* the first line as a verifier key */
  char line[REG_VKEY_MAX + 1];
  size_t n = strcspn(note, "\n");
  if (n < sizeof line) {
    memcpy(line, note, n);
    line[n] = '\0';
    char name[256];
    unsigned char pk[32], id[4];
    FUZZ_TRY(cp_vkey_parse(line, name, sizeof name, pk, id, err, sizeof err));
  }
  free(note);
  return 0;
}
