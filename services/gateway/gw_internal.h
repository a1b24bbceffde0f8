/* gw_internal.h -- the gateway core's private functions (not for feature files): credentials
 * (gw_auth.c) and verifier keys (gw_keys.c). */
#ifndef GW_INTERNAL_H
#define GW_INTERNAL_H

#include "gw.h"

/* gw_auth.c: check the route's credential; 0 = go on, -1 = an error reply was made. */
int gw_auth_check(gw_req_t *req) CP_WUR;

/* gw_keys.c: (re)read the register verifier key and the notify public key. */
void gw_keys_refresh(gw_t *gw);

#endif
