/* gw_check_views.h -- views recorded by checks answered outside the loops' batches (gw_check_views.c). */
#ifndef GW_CHECK_VIEWS_H
#define GW_CHECK_VIEWS_H

#include "gw.h"

/* Record one view for the worker (LPUSH the JSON view onto key, LTRIM to
 * GW_VIEWS_KEEP, EXPIRE GW_VIEWS_TTL_S, HINCRBY the code's view count unless code_id is NULL: a
 * failed or locked try) on this thread's own Redis
 * connection, without waiting for the replies: they are read (and any error logged) in batches
 * by later views of the thread. Best effort: a failure is logged, never shown to the employer. */
void gw_check_view_send(gw_t *gw, const char *views_key, const char *view_json, const char *code_id);

#endif
