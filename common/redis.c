/* redis.c -- a hiredis connection that reconnects once on I/O errors. */
#include "redis_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

static struct timeval ms_tv(int ms) {
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  return tv;
}

void cpr_drop(cp_redis_t *r, const char *what) {
  cpr_scripts_forget(r);   /* the next connection may reach a server that never saw them */
  if (r->c != NULL) {
    snprintf(r->errstr, sizeof r->errstr, "redis %s:%d %s: %s", r->host, r->port, what,
             r->c->errstr[0] ? r->c->errstr : "connection error");
    redisFree(r->c);
    r->c = NULL;
  }
}

int cp_redis_reconnect(cp_redis_t *r) {
  cpr_scripts_forget(r);
  if (r->c != NULL) {
    redisFree(r->c);
    r->c = NULL;
  }
  char host[256];
  int port = r->port;
  if (cp_redis_locate(r->cfg_host, r->cfg_port, host, sizeof host, &port, r->errstr, sizeof r->errstr) != 0) return -1;
  if (strcmp(host, r->host) != 0) {
    free(r->host);
    r->host = cp_strdup(host);
  }
  r->port = port;
  redisContext *c = redisConnectWithTimeout(r->host, r->port, ms_tv(r->timeout_ms));
  if (c == NULL) {
    snprintf(r->errstr, sizeof r->errstr, "redis %s:%d connect: out of memory", r->host, r->port);
    return -1;
  }
  if (c->err) {
    snprintf(r->errstr, sizeof r->errstr, "redis %s:%d connect: %s", r->host, r->port, c->errstr);
    redisFree(c);
    return -1;
  }
  if (redisSetTimeout(c, ms_tv(r->timeout_ms)) != REDIS_OK) {
    snprintf(r->errstr, sizeof r->errstr, "redis %s:%d set timeout: %s", r->host, r->port,
             c->errstr);
    redisFree(c);
    return -1;
  }
  (void)redisEnableKeepAlive(c); /* best effort: detects dead peers on idle connections */
  if (cp_redis_sentinel_on() && !cp_redis_is_primary(c)) {   /* a failover not finished yet */
    snprintf(r->errstr, sizeof r->errstr, "redis %s:%d is not the primary (a failover is in progress)", r->host, r->port);
    redisFree(c);
    return -1;
  }
  r->c = c;
  return 0;
}

const char *cp_redis_host(const cp_redis_t *r) { return r->host; }
int cp_redis_port(const cp_redis_t *r) { return r->port; }

int cpr_ensure(cp_redis_t *r) { return r->c != NULL ? 0 : cp_redis_reconnect(r); }

cp_redis_t *cp_redis_new(const char *host, int port, int timeout_ms, char *err, size_t errlen) {
  cp_redis_t *r = cp_xcalloc(1, sizeof *r);
  r->host = cp_strdup(host);
  r->port = port;
  r->cfg_host = cp_strdup(host);
  r->cfg_port = port;
  r->timeout_ms = timeout_ms > 0 ? timeout_ms : 2000;
  if (cp_redis_reconnect(r) != 0) {
    cp_err(err, errlen, "%s", r->errstr);
    cp_redis_destroy(&r);
    return NULL;
  }
  return r;
}

void cp_redis_destroy(cp_redis_t **rp) {
  if (rp == NULL || *rp == NULL) return;
  cp_redis_t *r = *rp;
  if (r->c != NULL) redisFree(r->c);
  free(r->host);
  free(r->cfg_host);
  free(r->loaded);
  free(r);
  *rp = NULL;
}

const char *cp_redis_errstr(const cp_redis_t *r) { return r->errstr; }

/* Turn an error reply into NULL + errstr. */
static redisReply *check_reply(cp_redis_t *r, redisReply *rep) {
  if (rep != NULL && rep->type == REDIS_REPLY_ERROR) {
    snprintf(r->errstr, sizeof r->errstr, "%s", rep->str ? rep->str : "ERR");
    freeReplyObject(rep);
    return NULL;
  }
  return rep;
}

/* Is the failure worth one reconnect and retry? */
static bool retryable(const redisContext *c) {
  return c == NULL || c->err == REDIS_ERR_IO || c->err == REDIS_ERR_EOF;
}

redisReply *cp_redis_cmd(cp_redis_t *r, const char *fmt, ...) {
  for (int attempt = 0; attempt < 2; attempt++) {
    if (r->c == NULL && cp_redis_reconnect(r) != 0) return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(r->c, fmt, ap);
    va_end(ap);
    if (rep != NULL) return check_reply(r, rep);
    bool again = retryable(r->c);
    cpr_drop(r, "command");
    if (!again) return NULL;
  }
  return NULL;
}

redisReply *cp_redis_cmd_argv(cp_redis_t *r, int argc, const char **argv, const size_t *argvlen) {
  for (int attempt = 0; attempt < 2; attempt++) {
    if (r->c == NULL && cp_redis_reconnect(r) != 0) return NULL;
    redisReply *rep = redisCommandArgv(r->c, argc, argv, argvlen);
    if (rep != NULL) return check_reply(r, rep);
    bool again = retryable(r->c);
    cpr_drop(r, "command");
    if (!again) return NULL;
  }
  return NULL;
}
