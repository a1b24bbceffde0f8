/* notify_dead.h -- operator functions on webhook dead letters (cp:nt:dead), for the
 * notify service and the carepass CLI. Link the carepass_notify_dead library (nothing else of notify). */
#ifndef NOTIFY_DEAD_H
#define NOTIFY_DEAD_H

#include <stdint.h>
#include <stddef.h>
#include "cp_util.h"
#include "cp_redis.h"

/* One dead-lettered delivery (no body: it is in Redis, not needed for listing). */
typedef struct {
  char id[40];            // webhook-id, "msg_" + 32 hex
  char type[65];          // event type, e.g. record.committed
  char provider[64];      // provider id the job came from
  char url[512];          // target URL (may be truncated for display)
  int attempts;           // attempts made
  int last_status;        // HTTP status of the last attempt (0 = no HTTP answer)
  int64_t created_ms;     // unix ms the delivery was created
  int64_t dead_at_ms;     // unix ms it was dead-lettered
} nt_dead_t;

/* Number of dead letters; -1 on Redis error. */
int nt_dead_count(cp_redis_t *r, size_t *count, char *err, size_t errlen) CP_WUR;

/* List up to max dead letters starting at position start (0 = newest) into a
 * malloc'd array *out (caller frees with free()), count in *n. */
int nt_dead_list(cp_redis_t *r, size_t start, size_t max, nt_dead_t **out, size_t *n,
                 char *err, size_t errlen) CP_WUR;

/* Put dead letters back on the schedule (attempts reset to 0, due now): the one
 * named by id, or every one when id is NULL. *replayed = how many went back. An
 * id that is not in the dead-letter list is an error. */
int nt_dead_replay(cp_redis_t *r, const char *id, int64_t now_ms, size_t *replayed,
                   char *err, size_t errlen) CP_WUR;

#endif
