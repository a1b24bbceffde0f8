/* main.c -- gateway: the HTTP edge, run by the one service lifecycle (common/cp_service.h). */
#include "cp_config.h"
#include "gw_server.h"
#include "cp_service.h"
#include "gw.h"

static int create(void **self, char *err, size_t errlen) {
  gw_t *gw = NULL;
  int rc = gw_new(&gw, err, errlen);
  *self = gw;
  return rc == 0 ? 0 : 1;
}

static int turn(void *self, int timeout_ms) { return gw_turn(self, timeout_ms); }

static int drain(void *self) { return gw_drain(self); }

static void destroy(void **self) {
  gw_t *gw = *self;
  gw_destroy(&gw);
  *self = NULL;
}

static const cp_service_def_t gateway_service = {
    .name = "gateway",
    .service = CP_SVC_GATEWAY,
    .summary = "HTTP gateway: provider events, the read-only register, keys, health and metrics",
    .create = create,
    .turn = turn,
    .drain = drain,
    .destroy = destroy,
};

int main(int argc, char **argv) { return cp_service_main(argc, argv, &gateway_service); }
