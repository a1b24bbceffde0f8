/* gw_check_views.c -- checks answered outside the loops' batches (bundles, and checks while a
 * loop is stopping; batched checks write their views on the loop's check connection) record each
 * view for the worker without waiting for Redis: the commands are written on a per-thread connection and their replies are read later,
 * VIEWS_DRAIN_AT commands at a time (by then they have arrived; a few KB wait in the socket), so a
 * check blocks on one Redis round trip less and reads them with one syscall per 64 views. The commands reach Redis before the check's HTTP reply is sent, so a worker who lists
 * their views after the employer has the answer sees this view. */
#include "gw_check_views.h"
#include "gw_check_batch.h"
#include "gw_share.h"

#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "cp_log.h"

/* This thread's view connection. */
typedef struct {
  redisContext *c;   // hiredis connection (NULL = not connected)
  int pending;       // replies of written commands not read yet
} vconn_t;

#define VIEWS_DRAIN_AT 256   /* read the replies once this many commands are unanswered */

static pthread_key_t vkey;
static pthread_once_t vonce = PTHREAD_ONCE_INIT;

static void vconn_free(void *p) {
  vconn_t *v = p;
  if (v == NULL) return;
  if (v->c != NULL) redisFree(v->c);
  free(v);
}

static void vkey_make(void) {
  if (pthread_key_create(&vkey, vconn_free) != 0) abort();
}

static void vconn_drop(vconn_t *v) {
  if (v->c != NULL) redisFree(v->c);
  v->c = NULL;
  v->pending = 0;
}

/* Read the replies of the earlier views (they are in the socket by now). -1: connection broken. */
static int vconn_drain(vconn_t *v) {
  while (v->pending > 0) {
    void *rep = NULL;
    if (redisGetReply(v->c, &rep) != REDIS_OK) return -1;
    v->pending--;
    redisReply *r = rep;
    if (r != NULL && r->type == REDIS_REPLY_ERROR)
      cp_log_warn("check: view not recorded", CP_KV_STR("error", r->str), CP_KV_END);
    freeReplyObject(rep);
  }
  return 0;
}

static vconn_t *vconn_get(gw_t *gw) {
  pthread_once(&vonce, vkey_make);
  vconn_t *v = pthread_getspecific(vkey);
  if (v == NULL) {
    v = cp_xcalloc(1, sizeof *v);
    if (pthread_setspecific(vkey, v) != 0) abort();
  }
  if (v->c != NULL && (v->c->err || (v->pending >= VIEWS_DRAIN_AT && vconn_drain(v) != 0))) vconn_drop(v);
  if (v->c == NULL) {
    int ms = gw->cfg.redis_timeout_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    char host[256], err[CP_ERRLEN];
    int port;
    if (cp_redis_locate(gw->cfg.redis_host, gw->cfg.redis_port, host, sizeof host, &port, err, sizeof err) != 0) {
      cp_log_warn("check: view not recorded: redis unavailable", CP_KV_STR("error", err), CP_KV_END);
      return NULL;
    }
    v->c = redisConnectWithTimeout(host, port, tv);
    if (v->c != NULL && !v->c->err && cp_redis_sentinel_on() && !cp_redis_is_primary(v->c)) {
      cp_log_warn("check: view not recorded: redis is not the primary yet", CP_KV_END);
      vconn_drop(v);
      return NULL;
    }
    if (v->c == NULL || v->c->err) {
      cp_log_warn("check: view not recorded: redis unavailable",
                  CP_KV_STR("error", v->c != NULL ? v->c->errstr : "out of memory"), CP_KV_END);
      vconn_drop(v);
      return NULL;
    }
    redisSetTimeout(v->c, tv);
  }
  return v;
}

void gw_check_view_send(gw_t *gw, const char *views_key, const char *view_json, const char *code_id) {
  for (int attempt = 0; attempt < 2; attempt++) { /* a connection Redis closed while idle: reconnect once */
    vconn_t *v = vconn_get(gw);
    if (v == NULL) return;
    v->pending += gw_view_append(v->c, views_key, view_json, code_id);
    int done = 0;
    while (!done)
      if (redisBufferWrite(v->c, &done) != REDIS_OK) break;
    if (done) return;
    cp_log_warn("check: view not recorded", CP_KV_STR("id", code_id != NULL ? code_id : "(a failed try)"),
                CP_KV_STR("error", v->c->errstr), CP_KV_END);
    vconn_drop(v);
  }
}
