/* fuzz_catalogue.c -- the qualification catalogue file (common/catalogue.c cat_load, through
 * common/json_load.c): strict JSON, the version envelope, codes, kinds, refresh periods and the
 * requirements of derived awards; then the lookups verify makes (cat_find,
 * cat_awards_requiring). cat_load reads a path: the input is written to a memfd first. */
#include "cp_catalogue.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static fuzz_file_t file = {-1, ""};
  static bool inited;
  if (!inited) {
    fuzz_quiet();
    inited = true;
  }
  cat_catalogue_t *cat = NULL;
  char err[CP_ERRLEN];
  if (cat_load(fuzz_file_put(&file, data, size), &cat, err, sizeof err) != 0) return 0;
  for (size_t i = 0; i < cat_count(cat); i++) {
    const cat_qual_t *q = cat_at(cat, i);
    if (cat_find(cat, q->code) != q) abort();
    const cat_qual_t *awards[16];
    (void)cat_awards_requiring(cat, q->code, awards, 16);
  }
  cat_destroy(&cat);
  return 0;
}
