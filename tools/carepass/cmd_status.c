/* cmd_status.c -- `carepass status`: the state of one provider event, from Redis. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cp_config.h"
#include "cp_keys.h"
#include "cp_redis.h"

static void help(FILE *out) {
  fprintf(out,
          "usage: carepass status PROVIDER EVENT_ID\n\n"
          "Show where one provider event stands (state, reason code, message, register\n"
          "index), as recorded in Redis ($CAREPASS_REDIS_HOST:$CAREPASS_REDIS_PORT).\n"
          "Exit status 1 when the event is unknown (never sent, or its state expired).\n");
}

int cmd_status(int argc, char **argv) {
  const char *args[2];
  int nargs = 0;
  for (int i = 1; i < argc; i++) {
    if (cli_is_help(argv[i])) { help(stdout); return CLI_EXIT_OK; }
    if (argv[i][0] == '-' || nargs == 2) {
      cli_error("status", "unexpected argument \"%s\"", argv[i]);
      help(stderr);
      return CLI_EXIT_USAGE;
    }
    args[nargs++] = argv[i];
  }
  if (nargs != 2) {
    cli_error("status", "PROVIDER and EVENT_ID are required");
    help(stderr);
    return CLI_EXIT_USAGE;
  }
  if (cli_config("status") != 0) return CLI_EXIT_USAGE;
  char err[CP_ERRLEN];
  const char *host = cp_cfg_str(CP_OPT_REDIS_HOST);
  int port = (int)cp_cfg_int(CP_OPT_REDIS_PORT);
  cp_redis_t *r = cp_redis_new(host, port, (int)cp_cfg_int(CP_OPT_REDIS_TIMEOUT_MS), err, sizeof err);
  if (r == NULL) {
    cli_error("status", "Redis at %s:%d: %s", host, port, err);
    return CLI_EXIT_FAIL;
  }
  int rc = CLI_EXIT_FAIL;
  cp_key_t key;
  if (strlen(args[0]) + strlen(args[1]) > CP_KEY_MAX / 2) {
    cli_error("status", "provider or event id too long");
    cp_redis_destroy(&r);
    return CLI_EXIT_USAGE;
  }
  cp_key_event(&key, args[0], args[1]);
  redisReply *rep = cp_redis_cmd(r, "HMGET %s state reason msg index t", key.s);
  if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 5) {
    cli_error("status", "Redis HMGET %s: %s", key.s, rep == NULL ? cp_redis_errstr(r) : "unexpected reply");
    goto out;
  }
  const char *f[5];
  for (size_t i = 0; i < 5; i++)
    f[i] = rep->element[i]->type == REDIS_REPLY_STRING ? rep->element[i]->str : NULL;
  if (f[0] == NULL) {
    printf("provider:  %s\nevent:     %s\nstate:     unknown (never received, or its state has expired)\n",
           args[0], args[1]);
    goto out;
  }
  printf("provider:  %s\nevent:     %s\nstate:     %s\n", args[0], args[1], f[0]);
  if (f[1] != NULL && f[1][0]) printf("reason:    %s\n", f[1]);
  if (f[2] != NULL && f[2][0]) printf("message:   %s\n", f[2]);
  if (f[3] != NULL && f[3][0]) printf("index:     %s\n", f[3]);
  if (f[4] != NULL && f[4][0]) {
    long long ms = atoll(f[4]);
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    char when[40];
    gmtime_r(&secs, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    printf("received:  %s\n", when);
  }
  rc = CLI_EXIT_OK;
out:
  if (rep != NULL) freeReplyObject(rep);
  cp_redis_destroy(&r);
  return rc;
}
