/* notify_pipe.h -- many commands in one Redis round trip. */
#ifndef NOTIFY_PIPE_H
#define NOTIFY_PIPE_H

#include <stddef.h>
#include "cp_util.h"
#include "cp_redis.h"

/* A Lua script run with EVALSHA: SCRIPT LOAD on first use; a NOSCRIPT answer (Redis
 * restarted or flushed its script cache) is retried once with EVAL. One static
 * instance per script (the SHA is cached in it; notify is single-threaded). */
typedef struct {
  const char *name;     // what the script does (error messages)
  const char *src;      // the Lua source
  char sha[41];         // SHA1 hex once loaded; "" before
} nt_script_t;
#define NT_SCRIPT(name, src) {(name), (src), {0}}

/* Commands queued and then sent together: one write, one read of every reply. */
typedef struct nt_pipe nt_pipe_t;

nt_pipe_t *nt_pipe_new(void);
void nt_pipe_destroy(nt_pipe_t **p);
/* Forget queued commands and replies (keeps the buffers for reuse). */
void nt_pipe_reset(nt_pipe_t *p);
/* Free the replies only (the commands stay queued and can be sent again). */
void nt_pipe_reset_replies(nt_pipe_t *p);
size_t nt_pipe_count(const nt_pipe_t *p);
/* Start a command; returns its index (= its reply's index). With a script, the
 * first argument must be numkeys, then the keys, then the arguments. */
size_t nt_pipe_start(nt_pipe_t *p, nt_script_t *script);
/* Add an argument to the command being built (copied). */
void nt_pipe_arg(nt_pipe_t *p, const char *s);
void nt_pipe_argn(nt_pipe_t *p, const char *s, size_t len);
void nt_pipe_argf(nt_pipe_t *p, const char *fmt, ...) CP_PRINTF(2, 3);
/* Send every queued command and read every reply. -1 only when the connection failed
 * (nothing can be known about what ran: callers queue only idempotent commands or
 * rely on leases); error replies are kept as replies (nt_pipe_reply_error). */
int nt_pipe_exec(nt_pipe_t *p, cp_redis_t *r, char *err, size_t errlen) CP_WUR;
/* The pieces of nt_pipe_exec, for sending a pipe on a non-blocking connection
 * (notify_async.c): load the scripts it uses (blocking, once per process), append its
 * commands to a raw context, hand over the replies read (n = nt_pipe_count; the pipe
 * owns and frees them), then re-run any NOSCRIPT ones with EVAL on r. */
int nt_pipe_load_scripts(nt_pipe_t *p, cp_redis_t *r, char *err, size_t errlen) CP_WUR;
int nt_pipe_append_to(nt_pipe_t *p, redisContext *c) CP_WUR;
void nt_pipe_take_replies(nt_pipe_t *p, redisReply **replies, size_t n);
int nt_pipe_fix_noscript(nt_pipe_t *p, cp_redis_t *r, char *err, size_t errlen) CP_WUR;
/* Reply i after nt_pipe_exec (NULL if none). */
const redisReply *nt_pipe_reply(const nt_pipe_t *p, size_t i);
/* -1 with err "<what>: <error>" when reply i is missing or an error reply, else 0. */
int nt_pipe_reply_error(const nt_pipe_t *p, size_t i, const char *what, char *err, size_t errlen) CP_WUR;

#endif
