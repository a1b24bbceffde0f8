/* gw_loop.h -- the gateway's event loops (gw_loop.c). */
#ifndef GW_LOOP_H
#define GW_LOOP_H

#include "gw.h"

/* GATEWAY_THREADS event loops, each a thread driving its own MHD daemon on the shared
 * listening address and answering its own employer checks. new: every daemon listens, then the
 * threads start (0; or -1 with err, nothing left running, *ls NULL). stop: each loop answers what
 * it has queued, then its thread ends (idempotent, NULL-safe). destroy: stop, then close the
 * daemons; NULL-safe, sets *ls to NULL. */
typedef struct gw_loops gw_loops_t;
int gw_loops_new(gw_loops_t **ls, gw_t *gw, char *err, size_t errlen) CP_WUR;
void gw_loops_stop(gw_loops_t *ls);
void gw_loops_destroy(gw_loops_t **ls);

#endif
