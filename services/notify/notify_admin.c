/* notify_admin.c -- "notify dead-list" and "notify dead-replay": operator commands on dead letters. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "notify_admin.h"
#include "notify_dead.h"
#include "cp_config.h"

#define LIST_DEFAULT 100
#define LIST_MAX 100000

bool nt_admin_is_command(const char *arg) {
  return arg && (strcmp(arg, "dead-list") == 0 || strcmp(arg, "dead-replay") == 0);
}

static int usage(FILE *err) {
  fprintf(err, "usage: notify dead-list [COUNT]      list dead letters, newest first (JSON lines)\n"
               "       notify dead-replay ID|--all  put dead letters back on the schedule\n");
  return 2;
}

static void print_dead(FILE *out, const nt_dead_t *d) {
  json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:I, s:I}", "id", d->id, "type", d->type,
                        "provider", d->provider, "url", d->url, "attempts", d->attempts,
                        "last_status", d->last_status, "created_ms", (json_int_t)d->created_ms,
                        "dead_at_ms", (json_int_t)d->dead_at_ms);
  if (!o) return;
  char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
  if (s) fprintf(out, "%s\n", s);
  free(s);
  json_decref(o);
}

int nt_admin_main(int argc, char **argv, FILE *out, FILE *errout) {
  char err[CP_ERRLEN];
  int rc = 1;
  if (argc < 1 || !nt_admin_is_command(argv[0]) || argc > 2) return usage(errout);
  cp_redis_t *r = cp_redis_new(cp_cfg_str(CP_OPT_REDIS_HOST), (int)cp_cfg_int(CP_OPT_REDIS_PORT),
                               (int)cp_cfg_int(CP_OPT_REDIS_TIMEOUT_MS), err, sizeof err);
  if (!r) {
    fprintf(errout, "notify: cannot connect to Redis: %s\n", err);
    return 1;
  }
  if (strcmp(argv[0], "dead-list") == 0) {
    char *end = NULL;
    long n = argc == 2 ? strtol(argv[1], &end, 10) : LIST_DEFAULT;
    if ((argc == 2 && (*end || end == argv[1])) || n < 1 || n > LIST_MAX) {
      fprintf(errout, "notify: COUNT must be 1..%d\n", LIST_MAX);
      rc = 2;
      goto done;
    }
    nt_dead_t *list = NULL;
    size_t got = 0, total = 0;
    if (nt_dead_count(r, &total, err, sizeof err) < 0 ||
        nt_dead_list(r, 0, (size_t)n, &list, &got, err, sizeof err) < 0) {
      fprintf(errout, "notify: %s\n", err);
      goto done;
    }
    for (size_t i = 0; i < got; i++) print_dead(out, &list[i]);
    free(list);
    fprintf(errout, "%zu of %zu dead letters listed\n", got, total);
    rc = 0;
  } else {
    if (argc != 2) {
      rc = usage(errout);
      goto done;
    }
    const char *id = strcmp(argv[1], "--all") == 0 ? NULL : argv[1];
    size_t replayed = 0;
    if (nt_dead_replay(r, id, cp_now_ms(), &replayed, err, sizeof err) < 0) {
      fprintf(errout, "notify: %s\n", err);
      goto done;
    }
    fprintf(out, "{\"replayed\":%zu}\n", replayed);
    rc = 0;
  }
done:
  cp_redis_destroy(&r);
  return rc;
}
