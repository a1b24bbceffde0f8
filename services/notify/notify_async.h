/* notify_async.h -- one pipe at a time on a non-blocking connection. */
#ifndef NOTIFY_ASYNC_H
#define NOTIFY_ASYNC_H

#include <stdbool.h>
#include "cp_redis.h"

/* The service's second Redis connection: the outcomes of a loop turn and the next
 * claim go out on it while curl keeps delivering; the loop waits on its descriptor
 * with curl's and collects the replies when they are there. */
typedef struct nt_aredis nt_aredis_t;

nt_aredis_t *nt_aredis_new(const char *host, int port, int timeout_ms);
void nt_aredis_destroy(nt_aredis_t **a);
/* Is a pipe in flight? */
bool nt_aredis_busy(const nt_aredis_t *a);
/* The descriptor to wait on and its events (-1 when idle). */
int nt_aredis_fd(const nt_aredis_t *a, short *events);
/* Send p (connecting if needed; scripts are loaded on r, blocking, once). p must stay
 * alive and untouched until nt_aredis_progress returns 1 or -1. */
int nt_aredis_send(nt_aredis_t *a, cp_redis_pipe_t *p, cp_redis_t *r, char *err, size_t errlen) CP_WUR;
/* Non-blocking: write/read what can be. 1 = p has every reply (NOSCRIPT replies not yet
 * re-run: cp_redis_pipe_fix_noscript), 0 = still in flight, -1 = connection failed or timed out
 * (dropped; what ran is unknown). */
int nt_aredis_progress(nt_aredis_t *a, char *err, size_t errlen) CP_WUR;

#endif
