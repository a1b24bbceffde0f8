/* fuzz_employers.c -- the employer registry file (common/employers.c emp_load, through
 * common/json_load.c), as the gateway and the CLI load it: strict JSON, the version envelope, ids,
 * names, CQC location and ASC-WDS workplace ids, webhook URLs (common/url_check.c); then the
 * lookups the gateway makes on what loaded. emp_load reads a path: the input is written to a
 * memfd first. */
#include "cp_employers.h"
#include "fuzz_util.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static fuzz_file_t file = {-1, ""};
  static bool inited;
  if (!inited) {
    fuzz_quiet();
    inited = true;
  }
  emp_registry_t *reg = NULL;
  char err[CP_ERRLEN];
  if (emp_load(fuzz_file_put(&file, data, size), &reg, err, sizeof err) != 0) return 0;
  for (size_t i = 0; i < emp_count(reg); i++) {
    const emp_t *e = emp_at(reg, i);
    if (emp_find(reg, e->id) != e) abort(); /* ids are unique */
    if (e->name[0] == '\0') abort();
  }
  (void)emp_find(reg, "");
  emp_destroy(&reg);
  return 0;
}
