/* redis_internal.h -- what the files of the Redis layer (redis*.c) share; nobody else includes it. */
#ifndef REDIS_INTERNAL_H
#define REDIS_INTERNAL_H

#include "cp_redis.h"

struct cp_redis {
  redisContext *c;     // live connection, NULL after a failure until reconnected
  char *host;          // server host connected to (the primary Sentinel named, or cfg_host)
  int port;            // server port connected to
  char *cfg_host;      // the configured host (used as is without Sentinel)
  int cfg_port;        // the configured port
  int timeout_ms;      // connect and command timeout
  const cp_redis_script_t **loaded;  // scripts loaded on this connection (forgotten on reconnect)
  size_t nloaded;      // entries in loaded
  size_t loadedcap;    // entries allocated
  char errstr[256];    // last error (connection or Redis error reply)
};

/* A live connection: reconnect when there is none. 0, or -1 with errstr set. */
int cpr_ensure(cp_redis_t *r);
/* Record the context's error and drop the connection (it is unusable after any error). */
void cpr_drop(cp_redis_t *r, const char *what);

/* Has this connection loaded script s? Mark it loaded (redis_script.c). */
bool cpr_script_loaded(const cp_redis_t *r, const cp_redis_script_t *s);
void cpr_script_mark(cp_redis_t *r, const cp_redis_script_t *s);
/* Forget every script this connection loaded (a new connection, or the cache was flushed).
 * Here, not in redis_script.c, so that the connection (redis.c) needs nothing of the scripts. */
static inline void cpr_scripts_forget(cp_redis_t *r) { r->nloaded = 0; }

/* Is r a NOSCRIPT error reply? */
bool cpr_is_noscript(const redisReply *r);

#endif
