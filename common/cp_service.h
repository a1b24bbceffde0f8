/* cp_service.h -- what every service main() shares: start-up (config, log,
 * crypto), SIGTERM/SIGINT handling and the stop flag. */
#ifndef CP_SERVICE_H
#define CP_SERVICE_H

#include <signal.h>
#include "cp_util.h"

/* Set to 1 by SIGTERM/SIGINT once cp_service_init has run. Loops poll it
 * (zmq_poll with a timeout <= 200 ms) and stop cleanly. */
extern volatile sig_atomic_t cp_stop_requested;

/* Parse --help / --version (printing the config table for `service`),
 * load the config (exit 2 with a clear message on a bad value), start logging
 * (CAREPASS_LOG_LEVEL), initialise libsodium and install signal handlers.
 * Returns 0 to continue, or an exit code >= 0 via *exit_code when main should
 * return at once (help printed, bad config). Concretely: returns 0 (continue) or
 * -1 (return *exit_code from main: 0 after --help/--version, 2 for a bad argument
 * or configuration value, 1 if libsodium or sigaction fail):
 *   int ec; if (cp_service_init(argc, argv, "intake", CP_SVC_INTAKE, "...", &ec) != 0) return ec; */
int cp_service_init(int argc, char **argv, const char *name, unsigned service,
                    const char *summary, int *exit_code) CP_WUR;

/* Write a health file (CAREPASS_HEALTH_DIR/<name>.health) holding the unix time,
 * refreshed by the service loop; "" dir disables it. Docker health checks and the
 * run script read it. */
void cp_service_heartbeat(const char *name);

/* ---- the one service lifecycle ------------------------------------------------------------
 * Every service main.c is a cp_service_def_t and one call:
 *   int main(int argc, char **argv) { return cp_service_main(argc, argv, &intake_service); }
 * cp_service_main runs, in order: --help/--version, config, log, crypto, signals
 * (cp_service_init); optional admin subcommands; create; then turns until SIGTERM/SIGINT
 * (writing the health file at most once a second); then drain and destroy (reverse order of
 * start); cp_config_free. Exit code: 0 clean stop, 1 start-up or run failure, 2 bad arguments
 * or configuration (create may return 2 for bad configuration data, e.g. the catalogue). */

/* Longest a turn may block, so the stop flag is seen promptly. */
#define CP_SERVICE_TURN_MS 200

typedef struct {
  const char *name;      // service name: log "service" field, <name>.health, --version
  unsigned service;      // CP_SVC_* mask of the options it reads
  const char *summary;   // one paragraph for --help
  /* Make the service object: 0, or an exit code (1 cannot start, 2 bad configuration data)
   * with err set. On failure *self stays NULL or is destroyed by destroy. */
  int (*create)(void **self, char *err, size_t errlen);
  /* One turn: wait at most timeout_ms for work and do it. 0 to go on, -1 on a failure that
   * must stop the process (logged by the turn). */
  int (*turn)(void *self, int timeout_ms);
  /* After the stop request, before destroy: finish what is in hand (answer waiting
   * requests, append the last batch). 0 or -1 (exit 1). NULL = nothing to finish. */
  int (*drain)(void *self);
  /* Free everything; NULL-safe; sets *self to NULL. */
  void (*destroy)(void **self);
  /* Optional operator subcommands (`notify dead-list`): when argv[1] is one of them
   * (is_command), run command(argc - 1, argv + 1) after start-up instead of the service and
   * return its exit code. Both NULL = none. */
  bool (*is_command)(const char *word);
  int (*command)(int argc, char **argv);
} cp_service_def_t;

/* Run the service described by def until SIGTERM/SIGINT; returns main's exit code. */
int cp_service_main(int argc, char **argv, const cp_service_def_t *def) CP_WUR;

#endif
