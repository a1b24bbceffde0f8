/* cp_redis.h -- a hiredis connection that reconnects, with pipelining helpers.
 * All carepass Redis keys carry a {hash tag} (see cp_keys.h). */
#ifndef CP_REDIS_H
#define CP_REDIS_H

#include <hiredis/hiredis.h>
#include "cp_util.h"

typedef struct cp_redis cp_redis_t;

/* Connect to host:port with a command timeout (ms). Returns NULL with err set
 * if the first connection fails. */
cp_redis_t *cp_redis_new(const char *host, int port, int timeout_ms, char *err, size_t errlen);
void cp_redis_destroy(cp_redis_t **r);

/* Run one command (printf-style as redisCommand). On a connection error it
 * reconnects once and retries. Returns NULL on failure (cp_redis_errstr says why)
 * and for REDIS_REPLY_ERROR replies (the error text is in cp_redis_errstr).
 * Caller frees the reply with freeReplyObject. */
redisReply *cp_redis_cmd(cp_redis_t *r, const char *fmt, ...);
redisReply *cp_redis_cmd_argv(cp_redis_t *r, int argc, const char **argv, const size_t *argvlen);

/* Pipelining: queue commands, then read all their replies in order. If the
 * connection fails part-way, cp_redis_pipeline_exec returns -1 and the caller
 * must re-queue and retry (commands must be idempotent). */
void cp_redis_pipeline_begin(cp_redis_t *r);
void cp_redis_append(cp_redis_t *r, const char *fmt, ...);
void cp_redis_append_argv(cp_redis_t *r, int argc, const char **argv, const size_t *argvlen);
/* Read the replies of every queued command into replies[0..n-1] (n = number
 * queued, returned in *n). Caller frees each with freeReplyObject and the array with free. */
int cp_redis_pipeline_exec(cp_redis_t *r, redisReply ***replies, int *n) CP_WUR;

/* Free what cp_redis_pipeline_exec returned (NULL-safe, NULL entries allowed). */
void cp_redis_replies_free(redisReply **replies, int n);

/* The value of field `name` in an HGETALL reply, or NULL (absent, not a string,
 * or r is not an array). Points into r. */
const char *cp_redis_hfield(const redisReply *r, const char *name);

/* Reconnect now (e.g. after a failed pipeline); 0 on success. */
int cp_redis_reconnect(cp_redis_t *r) CP_WUR;
const char *cp_redis_errstr(const cp_redis_t *r);

#endif
