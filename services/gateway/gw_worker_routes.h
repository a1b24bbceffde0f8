/* gw_worker_routes.h -- the worker's view log route (gw_worker.c). */
#ifndef GW_WORKER_ROUTES_H
#define GW_WORKER_ROUTES_H

#include "gw.h"

void gw_views_get(gw_req_t *req);

#define GW_WORKER_ROUTES \
  {"GET", "/v1/views", GW_EXACT, GW_AUTH_WORKER, 0, gw_views_get, "views"},

#endif
