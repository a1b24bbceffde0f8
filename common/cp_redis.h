/* cp_redis.h -- the one Redis layer: a hiredis connection that reconnects, Lua scripts
 * called by EVALSHA (reloaded transparently), pipelines that hand each reply back by
 * the handle of its command, and the reply helpers. Keys: cp_keys.h (one builder per family).
 *
 *   redis.c         the connection: connect, reconnect, one command
 *   redis_script.c  scripts: SHA-1 once, EVALSHA, SCRIPT LOAD / EVAL after NOSCRIPT
 *   redis_pipe.c    cp_redis_pipe_t: queue commands, one round trip, replies by handle
 *   redis_reply.c   reading replies: strings, numbers, HGETALL fields
 *
 * A cp_redis_t and a cp_redis_pipe_t belong to one thread; scripts are shared. */
#ifndef CP_REDIS_H
#define CP_REDIS_H

#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <stdint.h>
#include "cp_util.h"

typedef struct cp_redis cp_redis_t;

/* ---- the connection (redis.c) ---------------------------------------------------------- */

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

/* Reconnect now (e.g. after a failed pipeline); 0 on success. With Sentinel (cp_redis_settings)
 * the primary is looked up again first, and a server that is not the primary is refused. */
int cp_redis_reconnect(cp_redis_t *r) CP_WUR;
/* Where r is connected (the primary Sentinel named at the last connect, or the configured host). */
const char *cp_redis_host(const cp_redis_t *r);
int cp_redis_port(const cp_redis_t *r);

/* ---- where the primary is (redis_sentinel.c) ------------------------------------------- */

/* Set once at start-up, before any thread: the sentinels ("host:port,..."; "" = none: use the
 * configured host), the monitored primary's name, and how many replicas a durable write
 * (an accepted event's claim) must reach, waited for at most replica_timeout_ms (0 = none). */
void cp_redis_settings(const char *sentinels, const char *name, int min_replicas, int replica_timeout_ms);
bool cp_redis_sentinel_on(void);
int cp_redis_min_replicas(void);
int cp_redis_replica_timeout_ms(void);
/* The primary's address: host:port as given without Sentinel, else the first sentinel that
 * answers. 0, or -1 with err. For connections made outside this layer (raw hiredis). */
int cp_redis_locate(const char *host, int port, char *out_host, size_t hostlen, int *out_port, char *err,
                    size_t errlen) CP_WUR;
/* Is c's server the primary (ROLE master)? A connection made after cp_redis_locate checks it when
 * Sentinel is on: a demoted primary must not take writes. */
bool cp_redis_is_primary(redisContext *c);
const char *cp_redis_errstr(const cp_redis_t *r);

/* ---- scripts (redis_script.c) ---------------------------------------------------------- */

/* One Lua script, defined once (static, with CP_REDIS_SCRIPT) where it is used. Its SHA-1 is
 * computed once, on first use; every call is an EVALSHA. A connection loads the scripts it has
 * not loaded yet in the same round trip as the first pipeline that uses them, and a NOSCRIPT
 * (the server's script cache was flushed) is answered by running the script with EVAL. */
typedef struct cp_redis_script {
  const char *name;     // short name, for error messages
  const char *src;      // Lua source
  int nkeys;            // how many of a call's arguments are KEYS (the rest are ARGV)
  char sha[41];         // SHA-1 hex of src, filled once
  atomic_int ready;     // sha is filled
} cp_redis_script_t;

#define CP_REDIS_SCRIPT(name_, nkeys_, src_) {.name = (name_), .src = (src_), .nkeys = (nkeys_)}

/* The script's SHA-1 (hex), computed on the first call. */
const char *cp_redis_script_sha(cp_redis_script_t *s);

/* Run one script: argv = its nkeys keys, then its arguments (lens NULL = strlen). Same
 * result rules as cp_redis_cmd (NULL for failure or an error reply, errstr says why). */
redisReply *cp_redis_eval(cp_redis_t *r, cp_redis_script_t *s, int argc, const char **argv,
                          const size_t *lens);

/* ---- pipelines (redis_pipe.c) ---------------------------------------------------------- */

/* Queue commands, run them in one round trip, read each reply by the handle its command got.
 * A pipe is not bound to a connection and keeps its buffers between rounds (reset reuses
 * them). If the connection fails, exec returns -1, drops the connection and keeps the queued
 * commands: exec again (after a reconnect) re-sends all of them, so queue only commands that
 * may run twice. Error replies are replies: look at each (cp_redis_pipe_check for all). */
typedef struct cp_redis_pipe cp_redis_pipe_t;

/* The handle of one queued command, valid until the next cp_redis_pipe_reset. */
typedef struct {
  uint32_t i;           // position in the pipe
  uint32_t gen;         // the pipe's reset count when queued (catches stale handles)
} cp_redis_handle_t;

cp_redis_pipe_t *cp_redis_pipe_new(void);
void cp_redis_pipe_destroy(cp_redis_pipe_t **p);
/* Forget queued commands and replies (buffers are kept); handles given before are void. */
void cp_redis_pipe_reset(cp_redis_pipe_t *p);
size_t cp_redis_pipe_count(const cp_redis_pipe_t *p);

/* Queue one command: printf-style as redisCommand (%s, %b, %d ...), or argv (lens NULL =
 * strlen), or a script call (argv = keys then arguments, as cp_redis_eval). */
cp_redis_handle_t cp_redis_pipe_cmd(cp_redis_pipe_t *p, const char *fmt, ...);
cp_redis_handle_t cp_redis_pipe_argv(cp_redis_pipe_t *p, int argc, const char **argv, const size_t *lens);
cp_redis_handle_t cp_redis_pipe_script(cp_redis_pipe_t *p, cp_redis_script_t *s, int argc,
                                       const char **argv, const size_t *lens);
/* Or build one argument at a time: start (script NULL = a plain command), then args. */
cp_redis_handle_t cp_redis_pipe_start(cp_redis_pipe_t *p, cp_redis_script_t *s);
void cp_redis_pipe_arg(cp_redis_pipe_t *p, const char *s);
void cp_redis_pipe_argn(cp_redis_pipe_t *p, const char *s, size_t len);
void cp_redis_pipe_argf(cp_redis_pipe_t *p, const char *fmt, ...) CP_PRINTF(2, 3);

/* A transaction: commands queued between tx_begin (MULTI) and tx_end (EXEC) run atomically,
 * and their handles read their own replies (from EXEC's array) as any other command. One per
 * round. A script that got NOSCRIPT inside it (the server's cache flushed under an open
 * connection) is run again alone by exec, so queue only commands that may run twice. */
cp_redis_handle_t cp_redis_pipe_tx_begin(cp_redis_pipe_t *p);
cp_redis_handle_t cp_redis_pipe_tx_end(cp_redis_pipe_t *p);

/* Send every queued command, read every reply. 0 = all replies read; -1 = the connection
 * failed (errstr says why; commands kept, no replies). An empty pipe is 0 without I/O. */
int cp_redis_pipe_exec(cp_redis_pipe_t *p, cp_redis_t *r) CP_WUR;
/* The reply of command h after a successful exec (NULL before). Points into the pipe. */
const redisReply *cp_redis_pipe_reply(const cp_redis_pipe_t *p, cp_redis_handle_t h);
/* 0 when no reply is an error; else -1 with "<what>: <first error>" in err. */
int cp_redis_pipe_check(const cp_redis_pipe_t *p, const char *what, char *err, size_t errlen) CP_WUR;

/* For a pipe sent on a connection of the caller's own (e.g. a non-blocking one): load the
 * pipe's scripts on r, append the commands (EVALSHA) to c, hand the replies read back to the
 * pipe (the pipe takes replies[0..n-1], n = cp_redis_pipe_count, and the array), then re-run
 * what got NOSCRIPT on r. Each 0 / -1. */
int cp_redis_pipe_load_scripts(cp_redis_pipe_t *p, cp_redis_t *r, char *err, size_t errlen) CP_WUR;
int cp_redis_pipe_append_to(const cp_redis_pipe_t *p, redisContext *c) CP_WUR;
void cp_redis_pipe_take_replies(cp_redis_pipe_t *p, redisReply **replies, size_t n);
int cp_redis_pipe_fix_noscript(cp_redis_pipe_t *p, cp_redis_t *r, char *err, size_t errlen) CP_WUR;

/* ---- reading replies (redis_reply.c) --------------------------------------------------- */

/* Is r an error reply? (NULL is not a reply: false) */
bool cp_redis_reply_is_error(const redisReply *r);
/* Is r the string s (exactly)? */
bool cp_redis_reply_is_str(const redisReply *r, const char *s);
/* Is r the integer v? */
bool cp_redis_reply_is_int(const redisReply *r, long long v);
/* r when it is an array of exactly n elements, else NULL (e.g. an HMGET of n fields). */
const redisReply *cp_redis_reply_array(const redisReply *r, size_t n);
/* Copy a string reply into dst (NUL-terminated); false when not a string or it does not fit. */
bool cp_redis_reply_copy(const redisReply *r, char *dst, size_t max);
/* A string or status reply into dst, cut to fit; "" for nil or anything else. */
void cp_redis_reply_str(const redisReply *r, char *dst, size_t max);
/* A malloc'd copy of a non-empty string reply, else NULL. */
char *cp_redis_reply_strdup(const redisReply *r);
/* A decimal string or non-negative integer reply as a number; 0 for nil or anything else. */
uint64_t cp_redis_reply_u64(const redisReply *r);
/* The value of field `name` in an HGETALL reply, or NULL (absent, not a string,
 * or r is not an array). Points into r. */
const char *cp_redis_hfield(const redisReply *r, const char *name);

#endif
