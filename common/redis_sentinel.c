/* redis_sentinel.c -- where the Redis primary is: the configured host, or the one Redis Sentinel
 * names (CAREPASS_REDIS_SENTINELS), and how many replicas a durable write must reach before it is
 * acknowledged (CAREPASS_REDIS_MIN_REPLICAS). High availability comes from Redis itself: Sentinel
 * watches the primary and promotes a replica when it fails; every connection of the Redis layer
 * (and the raw connections of the gateway and notify, through cp_redis_locate) asks the sentinels
 * at each (re)connect and refuses a server that is not the primary, so after a failover the next
 * reconnect reaches the new one. Set once at start-up (cp_redis_settings), before any thread. */
#include "redis_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SENTINELS_MAX 16          /* sentinels in the list */
#define SENTINEL_TIMEOUT_MS 500   /* each sentinel gets this long to answer */

static struct {
  char list[1024];      // "host:port,host:port" ("" = no Sentinel: the configured host)
  char name[128];       // the monitored primary's name
  int min_replicas;     // replicas a durable write must reach (0 = none)
  int replica_timeout;  // how long WAIT may take (ms)
} settings;

void cp_redis_settings(const char *sentinels, const char *name, int min_replicas, int replica_timeout_ms) {
  snprintf(settings.list, sizeof settings.list, "%s", sentinels != NULL ? sentinels : "");
  snprintf(settings.name, sizeof settings.name, "%s", name != NULL && name[0] ? name : "carepass");
  settings.min_replicas = min_replicas > 0 ? min_replicas : 0;
  settings.replica_timeout = replica_timeout_ms > 0 ? replica_timeout_ms : 1000;
}

bool cp_redis_sentinel_on(void) { return settings.list[0] != '\0'; }
int cp_redis_min_replicas(void) { return settings.min_replicas; }
int cp_redis_replica_timeout_ms(void) { return settings.replica_timeout; }

/* Ask one sentinel; 0 with the primary's address, -1. */
static int ask(const char *host, int port, char *out_host, size_t hostlen, int *out_port) {
  struct timeval tv = {SENTINEL_TIMEOUT_MS / 1000, (SENTINEL_TIMEOUT_MS % 1000) * 1000};
  redisContext *c = redisConnectWithTimeout(host, port, tv);
  int rc = -1;
  if (c == NULL || c->err) goto out;
  (void)redisSetTimeout(c, tv);
  redisReply *r = redisCommand(c, "SENTINEL get-master-addr-by-name %s", settings.name);
  if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_STRING &&
      r->element[1]->type == REDIS_REPLY_STRING && r->element[0]->len < hostlen) {
    long p = strtol(r->element[1]->str, NULL, 10);
    if (p > 0 && p < 65536) {
      snprintf(out_host, hostlen, "%s", r->element[0]->str);
      *out_port = (int)p;
      rc = 0;
    }
  }
  if (r != NULL) freeReplyObject(r);
out:
  if (c != NULL) redisFree(c);
  return rc;
}

int cp_redis_locate(const char *host, int port, char *out_host, size_t hostlen, int *out_port, char *err,
                    size_t errlen) {
  if (!cp_redis_sentinel_on()) {
    snprintf(out_host, hostlen, "%s", host);
    *out_port = port;
    return 0;
  }
  char list[sizeof settings.list];
  snprintf(list, sizeof list, "%s", settings.list);
  int n = 0;
  for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok != NULL && n < SENTINELS_MAX;
       tok = strtok_r(NULL, ",", &save), n++) {
    char *colon = strrchr(tok, ':');
    if (colon == NULL) continue;
    *colon = '\0';
    long sp = strtol(colon + 1, NULL, 10);
    if (sp <= 0 || sp > 65535) continue;
    if (ask(tok, (int)sp, out_host, hostlen, out_port) == 0) return 0;
  }
  return cp_err(err, errlen, "no sentinel of CAREPASS_REDIS_SENTINELS names a primary \"%s\"", settings.name);
}

bool cp_redis_is_primary(redisContext *c) {
  redisReply *r = redisCommand(c, "ROLE");
  bool ok = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 && r->element[0]->type == REDIS_REPLY_STRING &&
            strcmp(r->element[0]->str, "master") == 0;
  if (r != NULL) freeReplyObject(r);
  return ok;
}
