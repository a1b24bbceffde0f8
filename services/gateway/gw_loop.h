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

/* A connection's state on its loop (gw_loop.c: head deadline, body rate, proxied client count);
 * NULL for connections of the operator listener. Every call is NULL-safe and made on the
 * connection's loop thread (the dispatcher's hooks). */
typedef struct gw_sock gw_sock_t;
gw_sock_t *gw_sock_of(struct MHD_Connection *conn);
bool gw_sock_trusted(const gw_sock_t *k);     /* the peer is a trusted proxy */
void gw_sock_head_done(gw_sock_t *k, bool body); /* the head is in; a body follows (its rate is watched) */
void gw_sock_body(gw_sock_t *k, size_t n);    /* n body bytes arrived */
void gw_sock_body_done(gw_sock_t *k);         /* the whole body is in */
/* Count the proxied client client_ip as one open request (0), or -1 when it has
 * GATEWAY_PER_IP_LIMIT open already (not counted). Released by gw_sock_request_done. */
int gw_sock_forwarded(gw_sock_t *k, const char *client_ip) CP_WUR;
void gw_sock_request_done(gw_sock_t *k);      /* the request is answered (or abandoned) */

#endif
