/* gw_check_routes.h -- the employer check routes (gw_check.c). */
#ifndef GW_CHECK_ROUTES_H
#define GW_CHECK_ROUTES_H

#include "gw.h"

void gw_check_post(gw_req_t *req);
void gw_check_bundle_post(gw_req_t *req);

#define GW_CHECK_ROUTES \
  {"POST", "/v1/check", GW_EXACT, GW_AUTH_NONE, 4096, gw_check_post, "check"}, \
  {"POST", "/v1/check/bundle", GW_EXACT, GW_AUTH_NONE, 4096, gw_check_bundle_post, "check_bundle"},

#endif
