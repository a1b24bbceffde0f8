/* gw_consent_routes.h -- the worker's ongoing-access consents (gw_consent.c). */
#ifndef GW_CONSENT_ROUTES_H
#define GW_CONSENT_ROUTES_H

#include "gw.h"

void gw_consent_create(gw_req_t *req);
void gw_consent_list(gw_req_t *req);
void gw_consent_withdraw(gw_req_t *req);

#define GW_CONSENT_ROUTES \
  {"POST", "/v1/consents", GW_EXACT, GW_AUTH_WORKER, 1024, gw_consent_create, "consent_create"}, \
  {"GET", "/v1/consents", GW_EXACT, GW_AUTH_WORKER, 0, gw_consent_list, "consent_list"}, \
  {"DELETE", "/v1/consents/", GW_PREFIX, GW_AUTH_WORKER, 0, gw_consent_withdraw, "consent_withdraw"},

#endif
