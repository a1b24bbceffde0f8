/* gw_core_routes.h -- the gateway core's routes: health, metrics, keys, the read-only log, provider events. */
#ifndef GW_CORE_ROUTES_H
#define GW_CORE_ROUTES_H

#include "gw.h"

void gw_health_get(gw_req_t *req);      /* gw_health.c */
void gw_metrics_get(gw_req_t *req);     /* gw_metrics.c */
void gw_vkey_get(gw_req_t *req);        /* gw_keys.c */
void gw_webhook_key_get(gw_req_t *req); /* gw_keys.c */
void gw_checkpoint_get(gw_req_t *req);  /* gw_log.c */
void gw_tile_get(gw_req_t *req);        /* gw_log.c */
void gw_events_post(gw_req_t *req);     /* gw_events.c */

#define GW_CORE_ROUTES \
  {"GET", "/healthz", GW_EXACT, GW_AUTH_NONE, 0, gw_health_get, "healthz"}, \
  {"GET", "/metrics", GW_EXACT, GW_AUTH_NONE, 0, gw_metrics_get, "metrics"}, \
  {"GET", "/v1/vkey", GW_EXACT, GW_AUTH_NONE, 0, gw_vkey_get, "vkey"}, \
  {"GET", "/v1/webhook-key", GW_EXACT, GW_AUTH_NONE, 0, gw_webhook_key_get, "webhook_key"}, \
  {"GET", "/log/checkpoint", GW_EXACT, GW_AUTH_NONE, 0, gw_checkpoint_get, "log_checkpoint"}, \
  {"GET", "/log/tile/", GW_PREFIX, GW_AUTH_NONE, 0, gw_tile_get, "log_tile"}, \
  {"POST", "/v1/events", GW_EXACT, GW_AUTH_PROVIDER, 0, gw_events_post, "events_post"},

#endif
