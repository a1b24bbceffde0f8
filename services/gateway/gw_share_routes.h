/* gw_share_routes.h -- the worker's share-code routes (gw_share.c). */
#ifndef GW_SHARE_ROUTES_H
#define GW_SHARE_ROUTES_H

#include "gw.h"

void gw_share_create(gw_req_t *req);
void gw_share_list(gw_req_t *req);
void gw_share_delete(gw_req_t *req);

#define GW_SHARE_ROUTES \
  {"POST", "/v1/share-codes", GW_EXACT, GW_AUTH_WORKER, 8192, gw_share_create, "share_create"}, \
  {"GET", "/v1/share-codes", GW_EXACT, GW_AUTH_WORKER, 0, gw_share_list, "share_list"}, \
  {"DELETE", "/v1/share-codes/", GW_PREFIX, GW_AUTH_WORKER, 1024, gw_share_delete, "share_delete"},

#endif
