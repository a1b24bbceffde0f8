/* gw_subscribe_routes.h -- employer webhook subscription routes (gw_subscribe.c). */
#ifndef GW_SUBSCRIBE_ROUTES_H
#define GW_SUBSCRIBE_ROUTES_H

#include "gw.h"

void gw_subscribe_post(gw_req_t *req);
void gw_subscribe_delete(gw_req_t *req);
void gw_subscribe_rotate(gw_req_t *req);
void gw_subscribe_list(gw_req_t *req);

#define GW_SUBSCRIBE_ROUTES \
  {"POST", "/v1/subscriptions", GW_EXACT, GW_AUTH_EMPLOYER_OPT, 8192, gw_subscribe_post, "subscribe"}, \
  {"GET", "/v1/subscriptions", GW_EXACT, GW_AUTH_EMPLOYER, 0, gw_subscribe_list, "subscriptions_list"}, \
  {"POST", "/v1/subscriptions/", GW_PREFIX, GW_AUTH_EMPLOYER_OPT, 1024, gw_subscribe_rotate, "subscription_secret"}, \
  {"DELETE", "/v1/subscriptions/", GW_PREFIX, GW_AUTH_EMPLOYER_OPT, 1024, gw_subscribe_delete, "unsubscribe"},

#endif
