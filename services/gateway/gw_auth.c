/* gw_auth.c -- route credentials: "Authorization: Bearer cpp_..." (providers), "cpw_..." (workers)
 * and "cpe_..." (employers; optional on GW_AUTH_EMPLOYER_OPT routes: no Authorization header is
 * anonymous, but a credential that is sent is judged like any other -- a bad one is never
 * silently anonymous).
 * Errors: 401 UNAUTHENTICATED (no or non-Bearer credential), 401 INVALID_TOKEN (not genuine,
 * wrong kind, old format, lifetime beyond the kind's maximum), 401 TOKEN_EXPIRED, 401 TOKEN_REVOKED
 * (its id is on CAREPASS_REVOKED_TOKENS, re-read when the file changes), 403 PROVIDER_UNKNOWN /
 * EMPLOYER_UNKNOWN (genuine token, provider or employer not in its registry). Logs name a token by
 * its id only, never the token. */
#include "gw_internal.h"
#include "gw_http.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cp_log.h"

int gw_auth_check(gw_req_t *req) {
  if (req->route->auth == GW_AUTH_NONE) return 0;
  gw_t *gw = req->gw;
  const char *h = gw_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
  if (h == NULL && req->route->auth == GW_AUTH_EMPLOYER_OPT) return 0; /* anonymous */
  if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0) {
    gw_reply_error(req, 401, GW_E_UNAUTHENTICATED,
                   "this route needs an Authorization: Bearer token");
    return -1;
  }
  const char *tok = h + 7;
  while (*tok == ' ') tok++;
  cp_token_kind_t kind = req->route->auth == GW_AUTH_PROVIDER ? CP_TOKEN_PROVIDER
                         : req->route->auth == GW_AUTH_WORKER ? CP_TOKEN_WORKER
                                                               : CP_TOKEN_EMPLOYER;
  cp_token_info_t info;
  cp_token_status_t st = cp_token_check(gw->token_secret, kind, tok, &info, (int64_t)time(NULL));
  if (st == CP_TOKEN_OK && cp_token_revlist_has(gw->revoked, info.id)) st = CP_TOKEN_REVOKED;
  if (st == CP_TOKEN_EXPIRED || st == CP_TOKEN_REVOKED) {
    if (st == CP_TOKEN_REVOKED)
      cp_log_info("revoked token refused", CP_KV_STR("token_id", info.id_hex), CP_KV_END);
    gw_reply_error(req, 401, st == CP_TOKEN_EXPIRED ? GW_E_TOKEN_EXPIRED : GW_E_TOKEN_REVOKED, "%s",
                   cp_token_status_text(st));
    sodium_memzero(&info, sizeof info);
    return -1;
  }
  if (st != CP_TOKEN_OK) {
    gw_reply_error(req, 401, GW_E_INVALID_TOKEN, "%s", cp_token_status_text(st));
    sodium_memzero(&info, sizeof info);
    return -1;
  }
  snprintf(req->subject, sizeof req->subject, "%s", info.subject);
  req->token_expiry = info.expiry;
  sodium_memzero(&info, sizeof info);
  if (kind == CP_TOKEN_PROVIDER && prov_find(gw->providers, req->subject) == NULL) {
    /* the id is from a genuine token (our own MAC), so it is safe to name */
    gw_reply_error(req, 403, GW_E_PROVIDER_UNKNOWN, "provider %s is not in the provider registry",
                   req->subject);
    req->subject[0] = '\0';
    return -1;
  }
  if (kind == CP_TOKEN_EMPLOYER) {
    req->employer = emp_find(gw->employers, req->subject);
    if (req->employer == NULL) {
      gw_reply_error(req, 403, GW_E_EMPLOYER_UNKNOWN, "employer %s is not in the employer registry", req->subject);
      req->subject[0] = '\0';
      return -1;
    }
  }
  return 0;
}
