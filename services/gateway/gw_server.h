/* gw_server.h -- the gateway's lifecycle (gw_server.c), for main.c. */
#ifndef GW_SERVER_H
#define GW_SERVER_H

#include "gw.h"

/* gw_server.c: lifecycle, run by cp_service_main (main.c). new: everything started and the port
 * listening (0; or -1 with err, *out NULL). turn: the keys re-read every 2 s, then a wait of at most
 * timeout_ms (the loops serve on their own threads). drain: the waiter answers the suspended
 * requests, then the loops stop. destroy: the same order (drain may not have run), then the rest;
 * NULL-safe, sets *gw to NULL. */
int gw_new(gw_t **out, char *err, size_t errlen) CP_WUR;
int gw_turn(gw_t *gw, int timeout_ms) CP_WUR;
int gw_drain(gw_t *gw) CP_WUR;
void gw_destroy(gw_t **gw);

#endif
