/* gw_internal.h -- the gateway core's private functions (not for feature files): credentials
 * (gw_auth.c), trusted proxies (gw_proxy.c), the operator listener (gw_ops.c) and verifier keys
 * (gw_keys.c). */
#ifndef GW_INTERNAL_H
#define GW_INTERNAL_H

#include "gw.h"

/* gw_auth.c: check the route's credential; 0 = go on, -1 = an error reply was made. */
int gw_auth_check(gw_req_t *req) CP_WUR;

/* gw_proxy.c: parse GATEWAY_TRUSTED_PROXIES into cfg (0, or -1 with err); is the peer a trusted
 * proxy; the client's address from the peer and the forwarding header (see gw_proxy.c). */
int gw_proxies_parse(const char *text, gw_config_t *cfg, char *err, size_t errlen) CP_WUR;
bool gw_proxy_trusted(const gw_config_t *cfg, const struct sockaddr *sa);
void gw_proxy_client(const gw_config_t *cfg, struct MHD_Connection *conn, const struct sockaddr *peer,
                     char *out, size_t outlen);

/* gw_ops.c: the operator listener on GATEWAY_METRICS_BIND (nothing when it is empty): 0, or -1
 * with err. Stopped by gw_ops_stop (NULL-safe). */
int gw_ops_start(gw_t *gw, char *err, size_t errlen) CP_WUR;
void gw_ops_stop(gw_t *gw);

/* gw_keys.c: (re)read the register verifier key and the notify public key. */
void gw_keys_refresh(gw_t *gw);

#endif
