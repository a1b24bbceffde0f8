/* cmd_webhooks.c -- `carepass webhooks dead|replay`: the webhook dead-letter list (notify_dead.h). */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cp_config.h"
#include "cp_redis.h"
#include "notify_dead.h"

#define DEAD_DEFAULT 100     /* dead letters listed without --count */
#define DEAD_MAX 100000      /* most dead letters one listing shows */

static void help(FILE *out) {
  fprintf(out,
          "usage: carepass webhooks dead [--count N] [--json]\n"
          "       carepass webhooks replay ID|--all\n\n"
          "dead    list webhook deliveries that failed for the whole retry window\n"
          "        (CAREPASS_WEBHOOK_RETRY_WINDOW_S of notify), newest first.\n"
          "replay  put one dead letter (by webhook-id) or all of them back on the\n"
          "        delivery schedule: notify sends them again at once, with a fresh\n"
          "        retry window. Receivers de-duplicate by webhook-id.\n"
          "Reads Redis at $CAREPASS_REDIS_HOST:$CAREPASS_REDIS_PORT.\n");
}

static void iso_ms(int64_t ms, char out[32]) {
  if (ms <= 0) {
    snprintf(out, 32, "-");
    return;
  }
  time_t s = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&s, &tm);
  strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int list_dead(cp_redis_t *r, long count, bool json) {
  char err[CP_ERRLEN];
  size_t total = 0, n = 0;
  nt_dead_t *list = NULL;
  if (nt_dead_count(r, &total, err, sizeof err) < 0 ||
      nt_dead_list(r, 0, (size_t)count, &list, &n, err, sizeof err) < 0) {
    cli_error("webhooks", "%s", err);
    return CLI_EXIT_FAIL;
  }
  if (!json) printf("%-36s  %-18s  %-10s  %8s  %6s  %-20s  %s\n", "WEBHOOK-ID", "TYPE", "PROVIDER",
                    "ATTEMPTS", "STATUS", "DEAD-AT", "URL");
  for (size_t i = 0; i < n; i++) {
    const nt_dead_t *d = &list[i];
    char dead_at[32], created[32];
    iso_ms(d->dead_at_ms, dead_at);
    iso_ms(d->created_ms, created);
    if (json)  /* ids, types and provider ids are [A-Za-z0-9._-]; the URL is escaped below */
      printf("{\"id\":\"%s\",\"type\":\"%s\",\"provider\":\"%s\",\"attempts\":%d,\"last_status\":%d,"
             "\"created\":\"%s\",\"dead_at\":\"%s\",\"url\":\"",
             d->id, d->type, d->provider, d->attempts, d->last_status, created, dead_at);
    else
      printf("%-36s  %-18s  %-10s  %8d  %6d  %-20s  ", d->id, d->type, d->provider, d->attempts,
             d->last_status, dead_at);
    for (const char *p = d->url; *p; p++) {
      unsigned char c = (unsigned char)*p;
      if (c < 0x20 || c == 0x7f) printf("\\u%04x", c);
      else if (json && (c == '"' || c == '\\')) printf("\\%c", c);
      else putchar(c);
    }
    printf(json ? "\"}\n" : "\n");
  }
  free(list);
  fprintf(stderr, "%zu of %zu dead letters listed\n", n, total);
  return CLI_EXIT_OK;
}

static int replay(cp_redis_t *r, const char *id) {
  char err[CP_ERRLEN];
  size_t replayed = 0;
  if (nt_dead_replay(r, id, cp_now_ms(), &replayed, err, sizeof err) < 0) {
    cli_error("webhooks", "%s", err);
    return CLI_EXIT_FAIL;
  }
  printf("%zu dead letter%s put back on the schedule\n", replayed, replayed == 1 ? "" : "s");
  return CLI_EXIT_OK;
}

int cmd_webhooks(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (cli_is_help(argv[i])) { help(stdout); return CLI_EXIT_OK; }
  if (argc < 2) {
    cli_error("webhooks", "a subcommand is required: dead or replay");
    help(stderr);
    return CLI_EXIT_USAGE;
  }
  const char *sub = argv[1];
  long count = DEAD_DEFAULT;
  bool json = false;
  const char *target = NULL;
  if (strcmp(sub, "dead") == 0) {
    for (int i = 2; i < argc; i++) {
      if (strcmp(argv[i], "--json") == 0) {
        json = true;
      } else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
        if (cli_parse_long(argv[++i], 1, DEAD_MAX, &count) != 0) {
          cli_error("webhooks", "--count must be 1..%d", DEAD_MAX);
          return CLI_EXIT_USAGE;
        }
      } else {
        cli_error("webhooks", "unexpected argument \"%s\"", argv[i]);
        help(stderr);
        return CLI_EXIT_USAGE;
      }
    }
  } else if (strcmp(sub, "replay") == 0) {
    if (argc != 3) {
      cli_error("webhooks", "replay takes one webhook-id or --all");
      help(stderr);
      return CLI_EXIT_USAGE;
    }
    target = strcmp(argv[2], "--all") == 0 ? NULL : argv[2];
    if (target && (strncmp(target, "msg_", 4) != 0 || strlen(target) > 64)) {
      cli_error("webhooks", "\"%s\" is not a webhook-id (msg_...)", target);
      return CLI_EXIT_USAGE;
    }
  } else {
    cli_error("webhooks", "unknown subcommand \"%s\" (dead or replay)", sub);
    help(stderr);
    return CLI_EXIT_USAGE;
  }
  if (cli_config("webhooks") != 0) return CLI_EXIT_USAGE;
  char err[CP_ERRLEN];
  const char *host = cp_cfg_str(CP_OPT_REDIS_HOST);
  int port = (int)cp_cfg_int(CP_OPT_REDIS_PORT);
  cp_redis_t *r = cp_redis_new(host, port, (int)cp_cfg_int(CP_OPT_REDIS_TIMEOUT_MS), err, sizeof err);
  if (r == NULL) {
    cli_error("webhooks", "Redis at %s:%d: %s", host, port, err);
    return CLI_EXIT_FAIL;
  }
  int rc = strcmp(sub, "dead") == 0 ? list_dead(r, count, json) : replay(r, target);
  cp_redis_destroy(&r);
  return rc;
}
