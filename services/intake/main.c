/* main.c -- intake: the provider edge (CurveZMQ ROUTER). Parse, configure, start, serve, stop. */
#include <stdio.h>

#include "cp_config.h"
#include "cp_log.h"
#include "cp_service.h"
#include "intake.h"

int main(int argc, char **argv) {
  int code = 0;
  if (cp_service_init(argc, argv, "intake", CP_SVC_INTAKE,
                      "provider intake: CurveZMQ ROUTER, shape checks, idempotent store, forwarding to verify",
                      &code) != 0)
    return code;
  char err[CP_ERRLEN] = "";
  intake_t *in = NULL;
  if (intake_new(&in, err, sizeof err) != 0) {
    cp_log_error("intake failed to start", CP_KV_STR("error", err), CP_KV_END);
    cp_config_free();
    return 1;
  }
  int rc = intake_run(in);
  intake_destroy(&in);
  cp_config_free();
  return rc == 0 ? 0 : 1;
}
