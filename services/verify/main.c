/* main.c -- verify: the rules engine between intake and the signer shards. */
#include "verify.h"
#include "cp_config.h"
#include "cp_log.h"
#include "cp_service.h"

#include <stdlib.h>

int main(int argc, char **argv) {
  int code = 0;
  char err[CP_ERRLEN];
  cat_catalogue_t *cat = NULL;
  prov_registry_t *reg = NULL;
  verify_t v;
  if (cp_service_init(argc, argv, "verify", CP_SVC_VERIFY,
                      "checks events against the qualification catalogue and provider registry, "
                      "issues derived awards, and passes records to the signer shards",
                      &code) != 0)
    return code;
  if (cat_load(cp_cfg_str(CP_OPT_CATALOGUE), &cat, err, sizeof err) != 0 ||
      prov_load(cp_cfg_str(CP_OPT_PROVIDERS), &reg, err, sizeof err) != 0) {
    cp_log_error("cannot load catalogue or provider registry", CP_KV_STR("error", err), CP_KV_END);
    code = 2;
    goto out;
  }
  if (verify_open(&v, cat, reg, err, sizeof err) != 0) {
    if (!cp_stop_requested)
      cp_log_error("cannot start", CP_KV_STR("error", err), CP_KV_END);
    code = cp_stop_requested ? 0 : 1;
    goto out;
  }
  code = verify_run(&v);
  verify_close(&v);
  cp_log_info("verify stopped", CP_KV_END);
out:
  prov_destroy(&reg);
  cat_destroy(&cat);
  cp_config_free();
  return code;
}
