/* service.c -- shared start-up for every service: arguments, config, logging, crypto, signals, heartbeat. */
#include "cp_service.h"
#include "cp_config.h"
#include "cp_crypto.h"
#include "cp_dates.h"
#include "cp_log.h"
#include "cp_redis.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifndef CAREPASS_VERSION
#define CAREPASS_VERSION "0.1.0"
#endif

volatile sig_atomic_t cp_stop_requested = 0;

static void on_stop_signal(int sig) {
  (void)sig;
  cp_stop_requested = 1;
}

static int install_signals(char *err, size_t errlen) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; /* no SA_RESTART: zmq_poll and blocking calls return EINTR so loops see the flag */
  if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
    return cp_err(err, errlen, "sigaction: %s", strerror(errno));
  struct sigaction ign;
  memset(&ign, 0, sizeof ign);
  ign.sa_handler = SIG_IGN;
  sigemptyset(&ign.sa_mask);
  if (sigaction(SIGPIPE, &ign, NULL) != 0) /* broken sockets give EPIPE, not death */
    return cp_err(err, errlen, "sigaction(SIGPIPE): %s", strerror(errno));
  return 0;
}

int cp_service_init(int argc, char **argv, const char *name, unsigned service,
                    const char *summary, int *exit_code) {
  const char *prog = (argc > 0 && argv[0] != NULL) ? argv[0] : name;
  char err[CP_ERRLEN];
  *exit_code = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      cp_config_help(stdout, prog, service, summary);
      fflush(stdout);
      *exit_code = 0;
      return -1;
    }
    if (strcmp(argv[i], "--version") == 0) {
      printf("%s (carepass) %s\n", name, CAREPASS_VERSION);
      fflush(stdout);
      *exit_code = 0;
      return -1;
    }
    fprintf(stderr, "%s: unknown argument '%s'\nUsage: %s [--help] [--version]\n", name, argv[i],
            prog);
    *exit_code = 2;
    return -1;
  }
  if (cp_config_load(service, err, sizeof err) != 0) {
    fprintf(stderr, "%s: configuration error: %s\n", name, err);
    *exit_code = 2;
    return -1;
  }
  cp_log_init(name, cp_cfg_str(CP_OPT_LOG_LEVEL));   /* the table checked the level and TODAY */
  if (service & CP_CONFIG_REDIS_USERS)
    cp_redis_settings(cp_cfg_str(CP_OPT_REDIS_SENTINELS), cp_cfg_str(CP_OPT_REDIS_MASTER_NAME),
                      (int)cp_cfg_int(CP_OPT_REDIS_MIN_REPLICAS), (int)cp_cfg_int(CP_OPT_REDIS_REPLICA_TIMEOUT_MS));
  if (cp_crypto_init() != 0) {
    cp_log_error("libsodium failed to initialise", CP_KV_END);
    *exit_code = 1;
    return -1;
  }
  if (install_signals(err, sizeof err) != 0) {
    cp_log_error("cannot install signal handlers", CP_KV_STR("error", err), CP_KV_END);
    *exit_code = 1;
    return -1;
  }
  return 0;
}

void cp_service_heartbeat(const char *name) {
  static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  static int64_t last_ms = -1;   // monotonic time of the last write
  static bool failing = false;   // last write failed (log only on the change)
  const char *dir = cp_cfg_str(CP_OPT_HEALTH_DIR);
  if (dir[0] == '\0') return;
  pthread_mutex_lock(&mu);
  int64_t now = cp_mono_ms();
  if (last_ms >= 0 && now - last_ms < 1000) {
    pthread_mutex_unlock(&mu);
    return;
  }
  last_ms = now;
  char path[4200], body[32], err[CP_ERRLEN];
  snprintf(path, sizeof path, "%s/%s.health", dir, name);
  int n = snprintf(body, sizeof body, "%lld\n", (long long)(cp_now_ms() / 1000));
  if (cp_write_file_atomic(path, body, (size_t)n, 0644, err, sizeof err) != 0) {
    if (!failing) cp_log_warn("cannot write health file", CP_KV_STR("error", err), CP_KV_END);
    failing = true;
  } else {
    failing = false;
  }
  pthread_mutex_unlock(&mu);
}

int cp_service_main(int argc, char **argv, const cp_service_def_t *def) {
  int code = 0;
  bool admin = def->is_command != NULL && argc >= 2 && def->is_command(argv[1]);
  if (cp_service_init(admin ? 1 : argc, argv, def->name, def->service, def->summary, &code) != 0)
    return code;
  if (admin) {
    code = def->command(argc - 1, argv + 1);
    cp_config_free();
    return code;
  }
  char err[CP_ERRLEN] = "";
  void *self = NULL;
  code = def->create(&self, err, sizeof err);
  if (code != 0) {
    if (cp_stop_requested) {   /* stopped while it waited for its peers: a clean stop */
      code = 0;
    } else {
      cp_log_error("cannot start", CP_KV_STR("error", err), CP_KV_END);
      code = code == 2 ? 2 : 1;
    }
    goto out;
  }
  cp_log_info("started", CP_KV_END);
  while (!cp_stop_requested) {
    cp_service_heartbeat(def->name);
    if (def->turn(self, CP_SERVICE_TURN_MS) != 0) {
      cp_log_error("stopping after a failure", CP_KV_END);
      code = 1;
      break;
    }
  }
  if (code == 0 && def->drain != NULL && def->drain(self) != 0) code = 1;
  cp_log_info("stopping", CP_KV_INT("exit_code", code), CP_KV_END);
out:
  if (def->destroy != NULL) def->destroy(&self);
  cp_config_free();
  return code;
}
