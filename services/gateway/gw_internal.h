/* gw_internal.h -- the gateway core's private functions (not for feature files). */
#ifndef GW_INTERNAL_H
#define GW_INTERNAL_H

#include "gw.h"

#include <stdarg.h>

/* gw_auth.c: check the route's credential; 0 = go on, -1 = an error reply was made. */
int gw_auth_check(gw_req_t *req) CP_WUR;

/* gw_metrics.c */
gw_metrics_t *gw_metrics_new(void);
void gw_metrics_destroy(gw_metrics_t **m);
void gw_metrics_describe_core(gw_t *gw);
/* Count one finished request (status 0 = the client went away before the answer). */
void gw_metrics_request(gw_t *gw, const char *route, int status, int64_t ms);

/* gw_keys.c: (re)read the register verifier key and the notify public key. */
void gw_keys_refresh(gw_t *gw);

/* gw_wait.c: the helper thread that answers ?ack=committed requests. */
int gw_waiter_start(gw_t *gw, char *err, size_t errlen) CP_WUR;
/* Answer every waiting request now and stop the thread (before MHD_stop_daemon). */
void gw_waiter_stop(gw_t *gw);
void gw_waiter_destroy(gw_t *gw);

/* gw_server.c: the dispatcher and the hooks every loop's daemon is started with. */
enum MHD_Result gw_dispatch(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                            const char *version, const char *upload_data, size_t *upload_data_size,
                            void **con_cls);
void gw_dispatch_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                           enum MHD_RequestTerminationCode toe);
size_t gw_unescape(void *cls, struct MHD_Connection *conn, char *s);
void gw_mhd_log(void *cls, const char *fmt, va_list ap);

/* gw_loop.c: GATEWAY_THREADS event loops, each a thread driving its own MHD daemon on the shared
 * listening address and answering its own employer checks. start: every daemon listens, then the
 * threads start (on failure, destroy what was made). stop: each loop answers what it has queued,
 * then its thread ends. destroy: stop, then close the daemons. */
typedef struct gw_loops gw_loops_t;
int gw_loops_start(gw_t *gw, gw_loops_t **out, char *err, size_t errlen) CP_WUR;
void gw_loops_stop(gw_loops_t *ls);
void gw_loops_destroy(gw_loops_t **ls);

#endif
