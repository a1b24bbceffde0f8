/* gw_openapi_routes.h -- the API's own description (gw_openapi.c). */
#ifndef GW_OPENAPI_ROUTES_H
#define GW_OPENAPI_ROUTES_H

#include "gw.h"
#include "gw_page.h"

void gw_openapi_get(gw_req_t *req);
/* The embedded document (NULL in a build without it). */
const gw_asset_t *gw_openapi_asset(void);

#define GW_OPENAPI_ROUTES \
  {"GET", "/v1/openapi.json", GW_EXACT, GW_AUTH_NONE, 0, gw_openapi_get, "openapi"},

#endif
