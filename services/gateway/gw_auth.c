/* gw_auth.c -- route credentials: "Authorization: Bearer cpp_..." (providers) and "cpw_..." (workers).
 * Errors: 401 UNAUTHENTICATED (no or non-Bearer credential), 401 INVALID_TOKEN (not genuine,
 * wrong kind), 401 TOKEN_EXPIRED, 403 PROVIDER_UNKNOWN (genuine token, provider not in the registry). */
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
  if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0) {
    gw_reply_error(req, 401, GW_E_UNAUTHENTICATED,
                   "this route needs an Authorization: Bearer token");
    return -1;
  }
  const char *tok = h + 7;
  while (*tok == ' ') tok++;
  cp_token_kind_t kind = req->route->auth == GW_AUTH_PROVIDER ? CP_TOKEN_PROVIDER : CP_TOKEN_WORKER;
  cp_token_status_t st = cp_token_check(gw->token_secret, kind, tok, req->subject, sizeof req->subject,
                                        &req->token_expiry, (int64_t)time(NULL));
  if (st == CP_TOKEN_EXPIRED) {
    gw_reply_error(req, 401, GW_E_TOKEN_EXPIRED, "%s", cp_token_status_text(st));
    return -1;
  }
  if (st != CP_TOKEN_OK) {
    gw_reply_error(req, 401, GW_E_INVALID_TOKEN, "%s", cp_token_status_text(st));
    return -1;
  }
  if (kind == CP_TOKEN_PROVIDER && prov_find(gw->providers, req->subject) == NULL) {
    /* the id is from a genuine token (our own MAC), so it is safe to name */
    gw_reply_error(req, 403, GW_E_PROVIDER_UNKNOWN, "provider %s is not in the provider registry",
                   req->subject);
    req->subject[0] = '\0';
    return -1;
  }
  return 0;
}
