/* main.c -- gateway: the HTTP edge. Parse, configure, start, serve until SIGTERM, stop. */
#include "cp_config.h"
#include "cp_log.h"
#include "cp_service.h"
#include "gw.h"

int main(int argc, char **argv) {
  int code = 0;
  if (cp_service_init(argc, argv, "gateway", CP_SVC_GATEWAY,
                      "HTTP gateway: provider events, the read-only register, keys, health and metrics",
                      &code) != 0)
    return code;
  char err[CP_ERRLEN] = "";
  gw_t *gw = NULL;
  if (gw_new(&gw, err, sizeof err) != 0) {
    cp_log_error("gateway failed to start", CP_KV_STR("error", err), CP_KV_END);
    cp_config_free();
    return 1;
  }
  int rc = gw_run(gw);
  gw_destroy(&gw);
  cp_config_free();
  return rc == 0 ? 0 : 1;
}
