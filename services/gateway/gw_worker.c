/* gw_worker.c -- GET /v1/views: who viewed the worker's passport and when (worker token).
 * ?limit=1..1000 (default 100) -> 200 {"views": [{"at": ISO 8601, "code_id": "sc_...",
 * "employer": "label", "client": {"ip", "user_agent"}, "records": n,
 * "employer_id": "EMP-0001" (only when a registered employer checked with its token: then the
 * employer label is its registered name), "self_declared": ["employer", "client.user_agent"] (the
 * fields the employer chose, checked by nobody: show them as such; without "employer" when
 * employer_id is there)}, ...]} newest first.
 * Errors: 400 INVALID_QUERY, 401 (token), 503 UNAVAILABLE. */
#include "gw_share.h"
#include "gw_http.h"
#include "gw_worker_routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cp_keys.h"

void gw_views_get(gw_req_t *req) {
  long limit = 100;
  const char *q = gw_query(req, "limit");
  if (q != NULL) {
    char *end = NULL;
    limit = strtol(q, &end, 10);
    if (end == q || *end != '\0' || limit < 1 || limit > GW_VIEWS_KEEP) {
      gw_reply_error(req, 400, GW_E_INVALID_QUERY, "limit must be a whole number from 1 to %d", GW_VIEWS_KEEP);
      return;
    }
  }
  cp_redis_t *r = gw_redis(req);
  if (r == NULL) {
    gw_reply_unavailable(req, "the view log");
    return;
  }
  cp_key_t k;
  redisReply *l = cp_redis_cmd(r, "LRANGE %s 0 %ld", cp_key_w_views(&k, req->subject), limit - 1);
  if (l == NULL || l->type != REDIS_REPLY_ARRAY) {
    if (l != NULL) freeReplyObject(l);
    gw_reply_unavailable(req, "the view log");
    return;
  }
  json_t *views = json_array();
  for (size_t i = 0; i < l->elements; i++) {
    if (l->element[i]->type != REDIS_REPLY_STRING) continue;
    json_t *v = json_loadb(l->element[i]->str, l->element[i]->len, 0, NULL);
    if (v == NULL || !json_is_object(v)) {
      json_decref(v);
      continue;
    }
    json_t *at = json_object_get(v, "at");
    if (json_is_integer(at)) {
      time_t t = (time_t)json_integer_value(at);
      struct tm tm;
      char s[32];
      gmtime_r(&t, &tm);
      strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%SZ", &tm);
      json_object_set_new(v, "at", json_string(s));
    }
    /* the user agent is what the employer said, checked by nobody; so is the label, unless a
     * registered employer's token named it (employer_id) */
    json_object_set_new(v, "self_declared", json_is_string(json_object_get(v, "employer_id"))
                                                ? json_pack("[s]", "client.user_agent")
                                                : json_pack("[s,s]", "employer", "client.user_agent"));
    json_array_append_new(views, v);
  }
  freeReplyObject(l);
  gw_reply_json(req, 200, json_pack("{s:o}", "views", views));
}
