/* main.c -- notify: delivers signed Standard Webhooks for NotifyJobs from the bus. */
#include <stdio.h>
#include "notify.h"
#include "cp_config.h"
#include "cp_log.h"
#include "cp_service.h"

int main(int argc, char **argv) {
  int code = 0;
  char err[CP_ERRLEN];
  if (cp_service_init(argc, argv, "notify", CP_SVC_NOTIFY,
                      "deliver signed webhooks (Standard Webhooks, Ed25519) with retries and dead letters",
                      &code) != 0)
    return code;
  nt_service_t *s = nt_service_new(err, sizeof err);
  if (!s) {
    cp_log_error("notify cannot start", CP_KV_STR("error", err), CP_KV_END);
    return 1;
  }
  int rc = nt_service_run(s);
  nt_service_destroy(&s);
  return rc == 0 ? 0 : 1;
}
