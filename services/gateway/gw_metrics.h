/* gw_metrics.h -- counters, gauges and histograms for /metrics (gw_metrics.c). */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include "gw.h"


/* Describe a metric once (HELP and TYPE lines): type "counter", "gauge". Optional;
 * undescribed metrics are printed as counters without HELP. Call at start (thread-safe). */
void gw_metric_describe(gw_t *gw, const char *name, const char *type, const char *help);
/* Add n to the series name{labels}; labels is Prometheus label text without braces,
 * e.g. "outcome=\"accepted\"" or "" (values must not need escaping). Thread-safe. */
void gw_metric_add(gw_t *gw, const char *name, const char *labels, uint64_t n);
/* Set a gauge series to v. Thread-safe. */
void gw_metric_set(gw_t *gw, const char *name, const char *labels, double v);


/* The gateway core's upkeep (gw_server.c, gw_dispatch.c). */
gw_metrics_t *gw_metrics_new(void);
void gw_metrics_destroy(gw_metrics_t **m);
void gw_metrics_describe_core(gw_t *gw);
/* Count one finished request (status 0 = the client went away before the answer). */
void gw_metrics_request(gw_t *gw, const char *route, int status, int64_t ms);

#endif
