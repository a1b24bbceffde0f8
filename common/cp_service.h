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

#endif
