/* main.c -- intake: the provider edge (CurveZMQ ROUTER), run by the one service lifecycle
 * (common/cp_service.h). */
#include "cp_config.h"
#include "cp_service.h"
#include "intake.h"

static int create(void **self, char *err, size_t errlen) {
  intake_t *in = NULL;
  int rc = intake_new(&in, err, errlen);
  *self = in;
  return rc == 0 ? 0 : 1;
}

static int turn(void *self, int timeout_ms) { return intake_turn(self, timeout_ms); }

static int drain(void *self) { return intake_drain(self); }

static void destroy(void **self) {
  intake_t *in = *self;
  intake_destroy(&in);
  *self = NULL;
}

static const cp_service_def_t intake_service = {
    .name = "intake",
    .service = CP_SVC_INTAKE,
    .summary = "provider intake: CurveZMQ ROUTER, shape checks, idempotent store, forwarding to verify",
    .create = create,
    .turn = turn,
    .drain = drain,
    .destroy = destroy,
};

int main(int argc, char **argv) { return cp_service_main(argc, argv, &intake_service); }
