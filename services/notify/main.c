/* main.c -- notify: delivers signed Standard Webhooks for NotifyJobs from the bus. */
#include <stdio.h>
#include "notify_admin.h"
#include "notify_service.h"
#include "cp_config.h"
#include "cp_service.h"

static int create(void **self, char *err, size_t errlen) {
  nt_service_t *s = NULL;
  int rc = nt_service_new(&s, err, errlen);
  *self = s;
  return rc == 0 ? 0 : 1;
}

static int turn(void *self, int timeout_ms) { return nt_service_turn(self, timeout_ms); }

static int drain(void *self) { return nt_service_drain(self); }

static void destroy(void **self) {
  nt_service_t *s = *self;
  nt_service_destroy(&s);
  *self = NULL;
}

/* Operator subcommands on dead letters: "notify dead-list", "notify dead-replay ID|--all". */
static int command(int argc, char **argv) { return nt_admin_main(argc, argv, stdout, stderr); }

static const cp_service_def_t notify_service = {
    .name = "notify",
    .service = CP_SVC_NOTIFY,
    .summary = "deliver signed webhooks (Standard Webhooks, Ed25519) with retries and dead letters;\n"
               "  also: notify dead-list [COUNT] | notify dead-replay ID|--all",
    .create = create,
    .turn = turn,
    .drain = drain,
    .destroy = destroy,
    .is_command = nt_admin_is_command,
    .command = command,
};

int main(int argc, char **argv) { return cp_service_main(argc, argv, &notify_service); }
