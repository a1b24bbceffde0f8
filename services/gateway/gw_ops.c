/* gw_ops.c -- the operator listener: GET /metrics (and /healthz) on CAREPASS_GATEWAY_METRICS_BIND
 * (default 127.0.0.1:9464; empty = off), never on the employers' port, where live counters would
 * give an attacker feedback on the rate limits. One libmicrohttpd daemon with its own thread,
 * through the same dispatcher as the public port (gw_dispatch_ops: only the operator routes). */
#include "gw.h"
#include "gw_dispatch.h"
#include "gw_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "cp_log.h"

#define GW_OPS_CONNECTIONS 64 /* concurrent connections to the operator listener */

int gw_ops_start(gw_t *gw, char *err, size_t errlen) {
  const gw_config_t *cfg = &gw->cfg;
  if (cfg->metrics_host[0] == '\0') {
    cp_log_info("operator listener off (CAREPASS_GATEWAY_METRICS_BIND is empty)", CP_KV_END);
    return 0;
  }
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)cfg->metrics_port);
  if (inet_pton(AF_INET, cfg->metrics_host, &sa.sin_addr) != 1)
    return cp_err(err, errlen, "CAREPASS_GATEWAY_METRICS_BIND host %s is not an IPv4 address", cfg->metrics_host);
  gw->ops = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, (uint16_t)cfg->metrics_port, NULL, NULL,
      gw_dispatch_ops, gw,
      MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&sa,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, cfg->conn_memory,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->timeout_s,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)GW_OPS_CONNECTIONS,
      MHD_OPTION_NOTIFY_COMPLETED, gw_dispatch_completed, gw,
      MHD_OPTION_EXTERNAL_LOGGER, gw_mhd_log, gw,
      MHD_OPTION_UNESCAPE_CALLBACK, gw_unescape, gw,
      MHD_OPTION_END);
  if (gw->ops == NULL)
    return cp_err(err, errlen, "cannot listen on CAREPASS_GATEWAY_METRICS_BIND %s:%d (%s)", cfg->metrics_host,
                  cfg->metrics_port, strerror(errno));
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(gw->ops, MHD_DAEMON_INFO_BIND_PORT);
  cp_log_info("operator listener (metrics)", CP_KV_STR("host", cfg->metrics_host),
              CP_KV_INT("port", di != NULL ? di->port : cfg->metrics_port), CP_KV_END);
  return 0;
}

void gw_ops_stop(gw_t *gw) {
  if (gw == NULL || gw->ops == NULL) return;
  MHD_stop_daemon(gw->ops);
  gw->ops = NULL;
}
