/* fuzz_providers.c -- the provider registry file (common/providers.c prov_load, through
 * common/json_load.c), as intake reloads it when it changes: strict JSON, the version envelope,
 * ids, Z85 CurveZMQ keys, webhook URLs (common/url_check.c), approvals and dates; then the
 * lookups every service makes on what loaded. prov_load reads a path: the input is written to a
 * memfd first. */
#include "cp_catalogue.h"
#include "cp_dates.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static fuzz_file_t file = {-1, ""};
  static bool inited;
  if (!inited) {
    fuzz_quiet();
    inited = true;
  }
  prov_registry_t *reg = NULL;
  char err[CP_ERRLEN];
  if (prov_load(fuzz_file_put(&file, data, size), &reg, err, sizeof err) != 0) return 0;
  int32_t day = 0;
  if (cp_date_parse("2024-06-01", &day) != 0) abort();
  for (size_t i = 0; i < prov_count(reg); i++) {
    const prov_t *p = prov_at(reg, i);
    if (prov_find(reg, p->id) == NULL) abort();
    if (p->curve_key[0] != '\0' && prov_find_by_key(reg, p->curve_key) == NULL) abort();
    for (size_t k = 0; k < p->napprovals; k++) (void)prov_approved(p, p->approvals[k].code, day);
    (void)prov_approved(p, "CC-STD-01", day);
  }
  prov_destroy(&reg);
  return 0;
}
