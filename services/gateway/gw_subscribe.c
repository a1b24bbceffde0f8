/* gw_subscribe.c -- employers subscribe a webhook to a worker they checked (only while the share code
 * allows it), in the Redis format notify reads (services/notify/notify_keys.h).
 *
 * POST /v1/subscriptions {"share_code", "date_of_birth", "url": "https://..." (<= 2048),
 *                         "employer": "label" (<= 200), "events": ["record.revoked", "record.expiring",
 *                         "record.expired"] (optional, default all three)}
 *   -> 201 {"id": "sub_<32 hex>", "expires_at", "expires", "events": [...]}: the subscription ends
 *      with the share code (or when the worker withdraws the code).
 * DELETE /v1/subscriptions/<id> -> 200 {"deleted": id}; 404 NOT_FOUND. The id is a 128-bit random
 *   capability: whoever holds it may unsubscribe.
 * Errors: those of gw_share_open.c, 403 SUBSCRIPTIONS_NOT_ALLOWED, 400 INVALID_FIELD (url, events),
 * 503 UNAVAILABLE. */
#include "gw_share.h"
#include "gw_http.h"
#include "gw_subscribe_routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cp_keys.h"
#include "cp_log.h"
#include "cp_url_check.h"

#define URL_MAX 2048
#define EMPLOYER_MAX 200
#define SUB_ID_MAX 64

static const char *const EVENTS[] = {"record.revoked", "record.expiring", "record.expired"};

/* The events list as "a,b,c"; -1 = replied. */
static int read_events(gw_req_t *req, json_t *body, char *out, size_t outlen, json_t **list) {
  json_t *ev = json_object_get(body, "events");
  bool want[3] = {false, false, false};
  if (ev == NULL || json_is_null(ev)) {
    want[0] = want[1] = want[2] = true;
  } else {
    size_t i;
    json_t *v;
    if (!json_is_array(ev) || json_array_size(ev) == 0 || json_array_size(ev) > 8) {
      gw_reply_error(req, 400, GW_E_INVALID_FIELD, "events must be a list of record.revoked, record.expiring, record.expired");
      return -1;
    }
    json_array_foreach(ev, i, v) {
      size_t k = 0;
      while (k < 3 && !(json_is_string(v) && strcmp(json_string_value(v), EVENTS[k]) == 0)) k++;
      if (k == 3) {
        gw_reply_error(req, 400, GW_E_INVALID_FIELD,
                       "events[%zu] must be one of record.revoked, record.expiring, record.expired", i);
        return -1;
      }
      want[k] = true;
    }
  }
  out[0] = '\0';
  *list = json_array();
  for (size_t k = 0; k < 3; k++) {
    if (!want[k]) continue;
    size_t used = strlen(out);
    snprintf(out + used, outlen - used, "%s%s", used ? "," : "", EVENTS[k]);
    json_array_append_new(*list, json_string(EVENTS[k]));
  }
  return 0;
}

void gw_subscribe_post(gw_req_t *req) {
  json_t *body = gw_body_json(req, JSON_OBJECT), *events = NULL;
  if (body == NULL) return;
  const char *url = NULL, *employer = "";
  char evs[128];
  gw_sc_t sc;
  if (gw_json_str(req, body, "url", true, URL_MAX, &url) != 0 ||
      gw_json_label(req, body, "employer", EMPLOYER_MAX, &employer) != 0) /* self-declared: printable text */
    goto out;
  cp_url_t where;
  char why[300];
  if (cp_url_check(url, cp_url_allow_config(), &where, why, sizeof why) != 0) {
    gw_reply_error(req, 400, GW_E_URL_REFUSED, "url: %s", why);
    goto out;
  }
  if (read_events(req, body, evs, sizeof evs, &events) != 0) goto out;
  if (gw_sc_open(req, body, &sc) != 0) goto out;
  if (!sc.subs) {
    gw_reply_error(req, 403, GW_E_SUBS_NOT_ALLOWED,
                   "the worker did not allow subscriptions with this share code; ask them for one that does");
    goto out;
  }
  cp_redis_t *r = gw_redis(req);
  if (r == NULL) {
    gw_reply_unavailable(req, "the subscription store");
    goto out;
  }
  char id[SUB_ID_MAX], sexp[24], snow[24], exp_at[32];
  gw_random_id("sub_", 16, id, sizeof id);
  cp_key_t subk, k;
  const char *key = cp_key_sub(&subk, id);
  snprintf(sexp, sizeof sexp, "%lld", (long long)sc.expires);
  snprintf(snow, sizeof snow, "%lld", (long long)time(NULL));
  cp_redis_pipe_t *pipe = cp_redis_pipe_new();
  cp_redis_pipe_cmd(pipe, "HSET %s url %s worker %s employer %s share_code %s expires_at %s events %s entries %s created %s",
                    key, url, sc.worker, employer, sc.id, sexp, evs, sc.scope, snow);
  cp_redis_pipe_cmd(pipe, "EXPIREAT %s %lld", key, (long long)sc.expires + 86400);
  cp_redis_pipe_cmd(pipe, "SADD %s %s", cp_key_w_subs(&k, sc.worker), id);
  cp_redis_pipe_cmd(pipe, "SADD %s %s", cp_key_scid_subs(&k, sc.id), id);
  cp_redis_pipe_cmd(pipe, "EXPIREAT %s %lld", cp_key_scid_subs(&k, sc.id), (long long)sc.expires + 86400);
  bool ok = cp_redis_pipe_exec(pipe, r) == 0;
  cp_redis_pipe_destroy(&pipe);
  /* the code may have been withdrawn meanwhile: then undo (withdraw deletes what it saw) */
  redisReply *alive = ok ? cp_redis_cmd(r, "EXISTS %s", cp_key_scid(&k, sc.id)) : NULL;
  bool live = alive != NULL && alive->type == REDIS_REPLY_INTEGER && alive->integer == 1;
  if (alive != NULL) freeReplyObject(alive);
  if (!ok || !live) {
    redisReply *d = cp_redis_cmd(r, "DEL %s", key);
    if (d != NULL) freeReplyObject(d);
    if (!ok) gw_reply_unavailable(req, "the subscription store");
    else gw_reply_error(req, 404, GW_E_SHARE_CODE_NOT_FOUND, "the share code was withdrawn");
    goto out;
  }
  time_t t = (time_t)sc.expires;
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(exp_at, sizeof exp_at, "%Y-%m-%dT%H:%M:%SZ", &tm);
  cp_log_info("subscription created", CP_KV_STR("id", id), CP_KV_STR("share_code_id", sc.id), CP_KV_END);
  gw_reply_json(req, 201, json_pack("{s:s,s:s,s:I,s:O}", "id", id, "expires_at", exp_at, "expires",
                                    (json_int_t)sc.expires, "events", events));
out:
  json_decref(events);
  json_decref(body);
}

void gw_subscribe_delete(gw_req_t *req) {
  const char *id = req->rest;
  size_t n = strlen(id);
  bool ok = n > 4 && n < SUB_ID_MAX && strncmp(id, "sub_", 4) == 0;
  for (size_t i = 0; ok && i < n; i++)
    ok = (id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9') || id[i] == '_';
  if (!ok) {
    gw_reply_error(req, 404, GW_E_NOT_FOUND, "no subscription has that id");
    return;
  }
  cp_redis_t *r = gw_redis(req);
  if (r == NULL) {
    gw_reply_unavailable(req, "the subscription store");
    return;
  }
  cp_key_t k;
  redisReply *h = cp_redis_cmd(r, "HMGET %s worker share_code", cp_key_sub(&k, id));
  if (h == NULL || h->type != REDIS_REPLY_ARRAY || h->elements != 2) {
    if (h != NULL) freeReplyObject(h);
    gw_reply_unavailable(req, "the subscription store");
    return;
  }
  if (h->element[0]->type != REDIS_REPLY_STRING) {
    freeReplyObject(h);
    gw_reply_error(req, 404, GW_E_NOT_FOUND, "no subscription has that id");
    return;
  }
  cp_redis_pipe_t *pipe = cp_redis_pipe_new();
  cp_redis_pipe_cmd(pipe, "DEL %s", cp_key_sub(&k, id));
  cp_redis_pipe_cmd(pipe, "SREM %s %s", cp_key_w_subs(&k, h->element[0]->str), id);
  if (h->element[1]->type == REDIS_REPLY_STRING)
    cp_redis_pipe_cmd(pipe, "SREM %s %s", cp_key_scid_subs(&k, h->element[1]->str), id);
  int rc = cp_redis_pipe_exec(pipe, r);
  cp_redis_pipe_destroy(&pipe);
  freeReplyObject(h);
  if (rc != 0) {
    gw_reply_unavailable(req, "the subscription store");
    return;
  }
  gw_reply_json(req, 200, json_pack("{s:s}", "deleted", id));
}
