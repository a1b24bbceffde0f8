/* gw_check_batch.h -- one event loop's queue of employer checks, answered in batches.
 *
 * POST /v1/check suspends the connection and queues the check on the event loop it arrived on
 * (gw_loop.c). After each turn of MHD, the loop takes every queued check at once, opens all their
 * codes in one Redis pipeline (rate-limit counters, code hash, the worker's index when the code
 * was opened before), reads what some need next (the index of a code seen for the first time, the
 * TTL of a counter at its limit) in a second pipeline, answers each check, writes the views and
 * failure counts without waiting, then hands each check back (the check resumes its connection)
 * and lets the loop send the replies: a Redis wake-up serves many checks instead of one, and no
 * other thread is woken.
 *
 * The queue knows a check only through the steps of gw_cjob_ops_t (gw_check.c gives the real
 * ones) and the loop only through a pump callback, so it runs without HTTP (tests/unit). */
#ifndef GW_CHECK_BATCH_H
#define GW_CHECK_BATCH_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include "cp_util.h"

/* A loop's Redis connection for checks. */
typedef struct {
  redisContext *c;   // hiredis connection (NULL = not connected)
  int discard;       // replies of commands written without waiting (views, released reservations) not read yet
} gw_cconn_t;

/* Append one command (arguments as NUL-terminated strings, GW_CMD_ARGS_MAX at most) to c's output
 * buffer, RESP written directly: redisAppendCommand's format parsing cost more than the rest of a
 * check's Redis work, and cp_redis_pipe_t measured 13 % more gateway CPU per check (the figures and
 * the command are at gw_redis_cmd in gw_check_batch.c and in bench/README.md). */
#define GW_CMD_ARGS_MAX 8
void gw_redis_cmd(redisContext *c, int argc, const char *const *argv);
/* Append the commands that record one view (LPUSH the JSON view onto views_key, LTRIM, EXPIRE,
 * HINCRBY the code's count -- not when code_id is NULL: a failed or locked try, gw_share.h);
 * returns how many (their replies are the caller's to read). */
int gw_view_append(redisContext *c, const char *views_key, const char *view_json, const char *code_id);
/* Append one view (4 commands) / the release of one failed-check reservation (1 command,
 * gw_sc_release_argv) on the loop's connection, without waiting: their replies are read (an error
 * logged) before the next batch's. */
void gw_cconn_view(gw_cconn_t *cc, const char *views_key, const char *view_json, const char *code_id);
void gw_cconn_release(gw_cconn_t *cc, const char *key);

/* One queued check: its type belongs to whoever gives the steps (gw_check.c). */
typedef struct gw_cjob gw_cjob_t;

/* The steps of a check, called for each check of a batch, in this order: lookup (append the
 * commands that open the code; returns how many), judge (with those replies, which stay the
 * queue's unless the step takes one and sets its slot NULL; appends 0 or 1 follow-up command,
 * returns how many), finish (with the follow-up's reply, taken over, or NULL: makes the reply,
 * may write views on cc); or, when Redis failed for the batch, fail (answers 503) instead of
 * judge and finish. Then done, once the batch's views and released reservations have reached Redis:
 * frees the check and lets its reply go (*j set to NULL). */
typedef struct {
  int (*lookup)(gw_cjob_t *j, redisContext *c);
  int (*judge)(gw_cjob_t *j, redisReply **rep, redisContext *c);
  void (*finish)(gw_cjob_t *j, redisReply *extra, gw_cconn_t *cc);
  void (*fail)(gw_cjob_t *j);
  void (*done)(gw_cjob_t **j);
} gw_cjob_ops_t;

/* A loop's queue (used only on the loop's thread). */
typedef struct gw_checkq gw_checkq_t;
/* A queue whose checks are opened on redis_host:redis_port (connected when first needed, again
 * after a failure; timeout_ms bounds each connect and reply). ops must outlive the queue. 0, or -1
 * with err (nothing made). */
int gw_checkq_new(gw_checkq_t **q, const char *redis_host, int redis_port, int timeout_ms,
                  const gw_cjob_ops_t *ops, char *err, size_t errlen) CP_WUR;
/* Everything queued must have been answered (gw_checkq_run after gw_checkq_close). NULL-safe;
 * sets *q to NULL. */
void gw_checkq_destroy(gw_checkq_t **q);
/* Make q the calling thread's queue (NULL: none). */
void gw_checkq_bind(gw_checkq_t *q);
/* Queue *j (taken over: *j set to NULL) on the calling thread's queue: 0. -1 when the thread has no
 * queue or it is closed (nothing done, *j still the caller's: it answers on its own). */
int gw_checkq_add(gw_cjob_t **j) CP_WUR;
/* Is a check waiting? */
bool gw_checkq_pending(const gw_checkq_t *q);
/* The loop's turn between batches: pump(arg) sends the replies of the checks handed back and reads
 * new requests (which may queue more checks: they go in a later batch). */
typedef void gw_checkq_pump_fn(void *arg);
/* Answer the queued checks, batch after batch (a bounded number), calling pump after each. */
void gw_checkq_run(gw_checkq_t *q, gw_checkq_pump_fn *pump, void *arg);
/* Stopping: refuse new checks from now on. */
void gw_checkq_close(gw_checkq_t *q);

#endif
