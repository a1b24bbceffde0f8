/* main.c -- verify: the rules engine between intake and the signer shards, run by cp_service_main. */
#include "verify.h"
#include "cp_config.h"
#include "cp_log.h"
#include "cp_service.h"

/* Load the catalogue and provider registry (bad data: exit 2), then hand both to verify_new. */
static int verify_svc_create(void **self, char *err, size_t errlen) {
  cat_catalogue_t *cat = NULL;
  prov_registry_t *reg = NULL;
  char why[CP_ERRLEN];
  if (cat_load(cp_cfg_str(CP_OPT_CATALOGUE), &cat, why, sizeof why) != 0 ||
      prov_load(cp_cfg_str(CP_OPT_PROVIDERS), &reg, why, sizeof why) != 0) {
    cp_err(err, errlen, "cannot load catalogue or provider registry: %s", why);
    cat_destroy(&cat);
    return 2;
  }
  verify_t *v = NULL;
  int rc = verify_new(&v, &cat, &reg, err, errlen);
  *self = v;
  return rc == 0 ? 0 : 1;
}

static int verify_svc_turn(void *self, int timeout_ms) { return verify_turn(self, timeout_ms); }

static void verify_svc_destroy(void **self) {
  verify_t *v = *self;
  if (v != NULL) verify_log_counts(v);
  verify_destroy(&v);
  *self = NULL;
}

static const cp_service_def_t verify_service = {
    .name = "verify",
    .service = CP_SVC_VERIFY,
    .summary = "checks events against the qualification catalogue and provider registry, "
               "issues derived awards, and passes records to the signer shards",
    .create = verify_svc_create,
    .turn = verify_svc_turn,
    .destroy = verify_svc_destroy,
};

int main(int argc, char **argv) { return cp_service_main(argc, argv, &verify_service); }
