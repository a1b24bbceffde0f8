/* gw_dispatch.h -- the request dispatcher (gw_dispatch.c): the hooks every loop's daemon is
 * started with (gw_loop.c). */
#ifndef GW_DISPATCH_H
#define GW_DISPATCH_H

#include <stdarg.h>

#include "gw.h"

enum MHD_Result gw_dispatch(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                            const char *version, const char *upload_data, size_t *upload_data_size,
                            void **con_cls);
/* The same for the operator listener (gw_ops.c): only /metrics and /healthz. */
enum MHD_Result gw_dispatch_ops(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                const char *version, const char *upload_data, size_t *upload_data_size,
                                void **con_cls);
void gw_dispatch_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                           enum MHD_RequestTerminationCode toe);
/* Is route row r served on this listener (the operator listener: only /metrics and /healthz; the
 * public one: everything but /metrics)? The OpenAPI document says the same per operation
 * ("x-carepass-listeners"), checked by tests/unit/test_gw_openapi.c. */
bool gw_route_listed(const gw_route_t *r, bool operator_port);
size_t gw_unescape(void *cls, struct MHD_Connection *conn, char *s);
void gw_mhd_log(void *cls, const char *fmt, va_list ap);

#endif
