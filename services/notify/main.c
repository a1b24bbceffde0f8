/* main.c -- notify: delivers signed Standard Webhooks for NotifyJobs from the bus. */
#include <stdio.h>
#include "notify_admin.h"
#include "notify_service.h"
#include "cp_config.h"
#include "cp_log.h"
#include "cp_service.h"

int main(int argc, char **argv) {
  int code = 0;
  char err[CP_ERRLEN];
  /* Operator subcommands on dead letters: "notify dead-list", "notify dead-replay ID|--all". */
  bool admin = argc >= 2 && nt_admin_is_command(argv[1]);
  if (cp_service_init(admin ? 1 : argc, argv, "notify", CP_SVC_NOTIFY,
                      "deliver signed webhooks (Standard Webhooks, Ed25519) with retries and dead letters;\n"
                      "  also: notify dead-list [COUNT] | notify dead-replay ID|--all",
                      &code) != 0)
    return code;
  if (admin) {
    code = nt_admin_main(argc - 1, argv + 1, stdout, stderr);
    cp_config_free();
    return code;
  }
  nt_service_t *s = nt_service_new(err, sizeof err);
  if (!s) {
    cp_log_error("notify cannot start", CP_KV_STR("error", err), CP_KV_END);
    return 1;
  }
  int rc = nt_service_run(s);
  nt_service_destroy(&s);
  cp_config_free();
  return rc == 0 ? 0 : 1;
}
