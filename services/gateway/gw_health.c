/* gw_health.c -- GET /healthz: 200 {"status":"ok"} when Redis answers PING and the register's
 * checkpoint is readable, else 503 with what failed (and the usual error object). */
#include "gw_core_routes.h"
#include "gw_http.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

void gw_health_get(gw_req_t *req) {
  gw_t *gw = req->gw;
  bool redis_ok = false, reg_ok = false;
  cp_redis_t *r = gw_redis(req);
  if (r != NULL) {
    redisReply *rep = cp_redis_cmd(r, "PING");
    redis_ok = rep != NULL && rep->type == REDIS_REPLY_STATUS;
    if (rep != NULL) freeReplyObject(rep);
  }
  char path[4200];
  snprintf(path, sizeof path, "%s/checkpoint", gw->cfg.register_dir);
  reg_ok = access(path, R_OK) == 0;
  json_t *checks = json_pack("{s:s,s:s}", "redis", redis_ok ? "ok" : "unavailable", "register",
                             reg_ok ? "ok" : "unreadable");
  if (redis_ok && reg_ok) {
    gw_reply_json(req, 200, json_pack("{s:s,s:o}", "status", "ok", "checks", checks));
  } else {
    char msg[160];
    snprintf(msg, sizeof msg, "%s%s%s", redis_ok ? "" : "Redis does not answer",
             !redis_ok && !reg_ok ? "; " : "", reg_ok ? "" : "the register checkpoint is not readable");
    gw_reply_json(req, 503, json_pack("{s:s,s:o,s:{s:s,s:s}}", "status", "unavailable", "checks", checks,
                                      "error", "code", GW_E_UNAVAILABLE, "message", msg));
    req->error_code = GW_E_UNAVAILABLE;
  }
  gw_reply_header(req, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
}
