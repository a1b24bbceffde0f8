/* gw_check.h -- the employer check's view of the register: a cache of checked entries (signature
 * by a key valid at the index, inclusion in the current checkpoint) shared by every request,
 * so a check costs no Ed25519 verification and no tile read once an entry has been seen. */
#ifndef GW_CHECK_H
#define GW_CHECK_H

#include "gw.h"
#include "carepass/v1/register.pb-c.h"

/* What a request needs of one register entry (copied out of the cache under the lock). */
typedef struct {
  uint64_t index;                          // register index
  const Carepass__V1__PassportEntry *pe;   // decoded entry (owned by the cache, lives as long as the
                                           // process), NULL when it could not be read or decoded
  bool sig_ok;                             // signature verifies with a key valid at the index
  bool incl_ok;                            // inclusion proof to the current checkpoint verified
  bool beyond;                             // index is not (yet) covered by the checkpoint
  char problem[320];                       // why sig_ok/incl_ok is false ("" when both hold)
} gw_centry_t;

/* The checkpoint the entries were checked against. */
typedef struct {
  uint64_t size;                           // tree size
  uint8_t root[32];                        // root hash
  char origin[128];                        // origin line
} gw_ccp_t;

/* Look up (checking on first sight) the n entries; fills out[0..n-1] and *cp. 0, or -1 when the
 * register cannot be opened (err says why). Thread-safe (takes gw->reg_lock). */
int gw_check_entries(gw_t *gw, const uint64_t *indexes, size_t n, gw_centry_t *out, gw_ccp_t *cp,
                     char *err, size_t errlen) CP_WUR;

/* The passport bundle (common/cp_bundle.h) of worker_hex holding the key entries of the register
 * and the given entries, all against the current checkpoint. *out is malloc'd. */
int gw_check_bundle(gw_t *gw, const char *worker_hex, const uint64_t *indexes, size_t n, char **out,
                    size_t *outlen, char *err, size_t errlen) CP_WUR;

/* gw_check_json.c: an append-only JSON text writer (the check's replies are a fixed shape). */
typedef struct {
  char *s;     // text, NUL-terminated (malloc'd)
  size_t len;  // bytes used
  size_t cap;  // bytes allocated
  bool bad;    // a string given was not UTF-8 (the text must not be sent)
} gw_jw_t;
void gw_jw_init(gw_jw_t *w, size_t cap);
void gw_jw_free(gw_jw_t *w);
/* Hand over the text (the writer is emptied); *len gets its length. */
char *gw_jw_take(gw_jw_t *w, size_t *len);
/* Raw text (keys, punctuation), escaped string, numbers; kstr = raw key text then a string. */
void gw_jw_raw(gw_jw_t *w, const char *s);
void gw_jw_rawn(gw_jw_t *w, const char *s, size_t n);
void gw_jw_str(gw_jw_t *w, const char *s);
void gw_jw_kstr(gw_jw_t *w, const char *key, const char *val);
void gw_jw_u64(gw_jw_t *w, uint64_t v);
void gw_jw_i64(gw_jw_t *w, int64_t v);
/* Is s[0..n) well-formed UTF-8 (no overlong forms, no surrogates)? */
bool gw_utf8_valid(const char *s, size_t n);

/* gw_check_views.c: record one view for the worker (LPUSH the JSON view onto key, LTRIM to
 * GW_VIEWS_KEEP, EXPIRE GW_VIEWS_TTL_S, HINCRBY the code's view count) on this thread's own Redis
 * connection, without waiting for the replies: they are read (and any error logged) in batches
 * by later views of the thread. Best effort: a failure is logged, never shown to the employer. */
void gw_check_view_send(gw_t *gw, const char *views_key, const char *view_json, const char *code_id);

/* ---- batched checks (gw_check_batch.c) -------------------------------------------------------
 * POST /v1/check suspends the connection and queues the check on the event loop it arrived on
 * (gw_loop.c). After each turn of MHD, the loop takes every queued check at once, opens all their
 * codes in one Redis pipeline (rate-limit counters, code hash, the worker's index when the code
 * was opened before), reads what some need next (the index of a code seen for the first time, the
 * TTL of a counter at its limit) in a second pipeline, answers each check, writes the views and
 * failure counts without waiting, then resumes the connections and lets MHD send the replies: a
 * Redis wake-up serves many checks instead of one, and no other thread is woken. */

/* A loop's Redis connection for checks. */
typedef struct {
  redisContext *c;   // hiredis connection (NULL = not connected)
  int discard;       // replies of commands written without waiting (views, failure counts) not read yet
} gw_cconn_t;
/* Append one command (arguments as NUL-terminated strings, GW_CMD_ARGS_MAX at most) to c's output
 * buffer, RESP written directly: redisAppendCommand's format parsing cost more than the rest of a
 * check's Redis work. */
#define GW_CMD_ARGS_MAX 8
void gw_redis_cmd(redisContext *c, int argc, const char *const *argv);
/* Append the commands that record one view (LPUSH the JSON view onto views_key, LTRIM, EXPIRE,
 * HINCRBY the code's count); returns how many (their replies are the caller's to read). */
int gw_view_append(redisContext *c, const char *views_key, const char *view_json, const char *code_id);
/* Append one view / one failed check (4 commands each) on the loop's connection, without waiting. */
void gw_cconn_view(gw_cconn_t *cc, const char *views_key, const char *view_json, const char *code_id);
void gw_cconn_failure(gw_cconn_t *cc, const char *ipkey, const char *codekey);

/* One queued check (gw_check.c). The loop calls, for each check of a batch: lookup (append
 * the commands that open the code; returns how many), judge (with those replies; appends 0 or 1
 * follow-up command, returns how many), finish (with the follow-up's reply or NULL: makes the
 * reply, writes the view), or fail (503) when Redis failed; then destroy, then resume. */
typedef struct gw_cjob gw_cjob_t;
int gw_cjob_lookup(gw_cjob_t *j, redisContext *c);
int gw_cjob_judge(gw_cjob_t *j, redisReply **rep, redisContext *c);
void gw_cjob_finish(gw_cjob_t *j, redisReply *extra, gw_cconn_t *cc);
void gw_cjob_fail(gw_cjob_t *j);
gw_req_t *gw_cjob_req(const gw_cjob_t *j);
void gw_cjob_destroy(gw_cjob_t **j);

/* gw_check.c: a loop's cache of rendered records (see there). */
typedef struct gw_rcache gw_rcache_t;
gw_rcache_t *gw_rcache_new(void);
void gw_rcache_destroy(gw_rcache_t **rc);
/* The calling loop's cache (NULL on other threads: nothing is cached). */
gw_rcache_t *gw_checkq_rcache(void);

/* A loop's queue (used only on the loop's thread). */
typedef struct gw_checkq gw_checkq_t;
gw_checkq_t *gw_checkq_new(gw_t *gw);
/* Everything queued must have been answered (gw_checkq_run after gw_checkq_close). */
void gw_checkq_destroy(gw_checkq_t **q);
/* Make q the calling thread's queue (NULL: none). */
void gw_checkq_bind(gw_checkq_t *q);
/* Suspend req's connection and queue j (taken over) on the calling thread's queue: 0. -1 when the
 * thread has no queue or it is closed (nothing done: the caller answers on its own). */
int gw_checkq_add(gw_t *gw, gw_cjob_t *j) CP_WUR;
/* Is a check waiting? */
bool gw_checkq_pending(const gw_checkq_t *q);
/* Answer the queued checks, batch after batch (a bounded number), calling MHD_run(mhd) after each
 * to send the replies and read new requests (which may queue more). */
void gw_checkq_run(gw_checkq_t *q, struct MHD_Daemon *mhd);
/* Stopping: refuse new checks from now on. */
void gw_checkq_close(gw_checkq_t *q);

#endif
