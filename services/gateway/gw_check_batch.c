/* gw_check_batch.c -- one event loop's queue of POST /v1/check requests, answered in batches: one
 * Redis pipeline opens every queued code, the views are written without waiting, then the checks
 * are handed back and the loop sends the replies (see gw_check_batch.h and gw_loop.c). Everything
 * here runs on the loop's own thread: no locks. */
#include "gw_check_batch.h"
#include "gw_share.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "cp_keys.h"
#include "cp_log.h"

#define BATCH_MAX 512  /* most checks sent in one pipeline (the rest wait for the next) */
#define RUN_ROUNDS 64  /* most batches in one gw_checkq_run (then the loop looks at its stop flag) */

struct gw_checkq {
  const gw_cjob_ops_t *ops; // the steps of a check
  char redis_host[256];     // where the checks' Redis is
  int redis_port;           // its port
  int timeout_ms;           // bound on a connect and on each reply
  gw_cjob_t **q;            // queued checks, oldest first
  size_t n;                 // how many
  size_t cap;               // allocated
  bool closed;              // stopping: gw_checkq_add refuses (the caller answers on its own)
  gw_cconn_t cc;            // the loop's Redis connection for checks
  gw_cjob_t **job, **job2;  // the batch being answered and the next (BATCH_MAX slots each)
  cp_redis_pipe_t *look[2]; // each batch's lookups
  cp_redis_pipe_t *more[2]; // each batch's follow-ups
};

/* The queue of the loop running on this thread (NULL on other threads). */
static __thread gw_checkq_t *tls_q;

static void cc_drop(gw_cconn_t *cc) {
  if (cc->c != NULL) redisFree(cc->c);
  cc->c = NULL;
  if (cc->bg != NULL) cp_redis_pipe_reset(cc->bg); /* what was not sent is lost with the connection */
  cc->bg_sent = false;
}

static int cc_connect(const gw_checkq_t *q, gw_cconn_t *cc) {
  if (cc->c != NULL && cc->c->err) cc_drop(cc);
  if (cc->c != NULL) return 0;
  int ms = q->timeout_ms;
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  cc->c = redisConnectWithTimeout(q->redis_host, q->redis_port, tv);
  if (cc->c == NULL || cc->c->err) {
    cp_log_warn("check: redis unavailable", CP_KV_STR("error", cc->c != NULL ? cc->c->errstr : "out of memory"),
                CP_KV_END);
    cc_drop(cc);
    return -1;
  }
  redisSetTimeout(cc->c, tv);
  return 0;
}

void gw_view_queue(cp_redis_pipe_t *p, const char *views_key, const char *view_json, const char *code_id) {
  cp_key_t sck;
  cp_redis_pipe_argv(p, 3, (const char *[]){"LPUSH", views_key, view_json}, NULL);
  cp_redis_pipe_start(p, NULL);
  cp_redis_pipe_arg(p, "LTRIM");
  cp_redis_pipe_arg(p, views_key);
  cp_redis_pipe_arg(p, "0");
  cp_redis_pipe_argf(p, "%d", GW_VIEWS_KEEP - 1);
  cp_redis_pipe_start(p, NULL);
  cp_redis_pipe_arg(p, "EXPIRE");
  cp_redis_pipe_arg(p, views_key);
  cp_redis_pipe_argf(p, "%d", GW_VIEWS_TTL_S);
  cp_redis_pipe_argv(p, 4, (const char *[]){"HINCRBY", cp_key_scid(&sck, code_id), "views", "1"}, NULL);
}

void gw_cconn_view(gw_cconn_t *cc, const char *views_key, const char *view_json, const char *code_id) {
  gw_view_queue(cc->bg, views_key, view_json, code_id);
}

/* INCR key, and give it the rate-limit window if it has no TTL yet. */
static void queue_count(cp_redis_pipe_t *p, const char *key) {
  cp_redis_pipe_argv(p, 2, (const char *[]){"INCR", key}, NULL);
  cp_redis_pipe_start(p, NULL);
  cp_redis_pipe_arg(p, "EXPIRE");
  cp_redis_pipe_arg(p, key);
  cp_redis_pipe_argf(p, "%d", GW_RL_WINDOW_S);
  cp_redis_pipe_arg(p, "NX");
}

void gw_cconn_failure(gw_cconn_t *cc, const char *ipkey, const char *codekey) {
  queue_count(cc->bg, ipkey);
  queue_count(cc->bg, codekey);
}

/* Read the replies of every command of p (appended on cc->c) into p. -1: the connection broke. */
static int read_into(gw_cconn_t *cc, cp_redis_pipe_t *p) {
  size_t n = cp_redis_pipe_count(p);
  if (n == 0) return 0;
  redisReply **rep = cp_xcalloc(n, sizeof *rep);
  for (size_t i = 0; i < n; i++) {
    void *r = NULL;
    if (redisGetReply(cc->c, &r) != REDIS_OK) {
      for (size_t k = 0; k < i; k++) freeReplyObject(rep[k]);
      free(rep);
      return -1;
    }
    rep[i] = r;
  }
  cp_redis_pipe_take_replies(p, rep, n);
  return 0;
}

/* Append the views and failure counts queued (once), so that they go out before what follows. */
static int cc_post(gw_cconn_t *cc) {
  if (cc->bg_sent || cp_redis_pipe_count(cc->bg) == 0) return 0;
  if (cp_redis_pipe_append_to(cc->bg, cc->c) != 0) return -1;
  cc->bg_sent = true;
  return 0;
}

/* Read the replies of the views and failure counts sent without waiting (sent before this batch's
 * lookups). -1: broken. */
static int cc_drain(gw_cconn_t *cc) {
  if (!cc->bg_sent) return 0;
  if (read_into(cc, cc->bg) != 0) return -1;
  char err[256];
  if (cp_redis_pipe_check(cc->bg, "views", err, sizeof err) != 0)
    cp_log_warn("check: view or failure count not recorded", CP_KV_STR("error", err), CP_KV_END);
  cp_redis_pipe_reset(cc->bg);
  cc->bg_sent = false;
  return 0;
}

/* One batch: the checks taken from the queue together. */
typedef struct {
  gw_cjob_t **job;        // the checks
  size_t n;               // how many
  cp_redis_pipe_t *look;  // their lookups (queued when taken)
  cp_redis_pipe_t *more;  // their follow-ups
  bool sent;              // the lookups are appended on the current connection
} batch_t;

/* Take up to BATCH_MAX queued checks into b and queue their lookups. */
static void take(gw_checkq_t *q, batch_t *b) {
  size_t k = q->n < BATCH_MAX ? q->n : BATCH_MAX;
  memcpy(b->job, q->q, k * sizeof *b->job);
  memmove(q->q, q->q + k, (q->n - k) * sizeof *q->q);
  q->n -= k;
  b->n = k;
  b->sent = false;
  cp_redis_pipe_reset(b->look);
  cp_redis_pipe_reset(b->more);
  for (size_t i = 0; i < b->n; i++) q->ops->lookup(b->job[i], b->look);
}

/* Append the lookups of b (connecting first if needed), after the views not sent yet. */
static void send_lookups(gw_checkq_t *q, batch_t *b) {
  if (cc_connect(q, &q->cc) != 0) return;
  b->sent = cc_post(&q->cc) == 0 && cp_redis_pipe_append_to(b->look, q->cc.c) == 0;
}

/* Answer the checks of b (their lookups are appended); queue the views. The connections are not
 * resumed yet. */
static void answer(gw_checkq_t *q, batch_t *b) {
  gw_cconn_t *cc = &q->cc;
  size_t n = b->n;
  bool ok = b->sent && cc->c != NULL && cc_drain(cc) == 0 && read_into(cc, b->look) == 0;
  if (ok) {
    for (size_t i = 0; i < n; i++) q->ops->judge(b->job[i], b->look, b->more);
    ok = cp_redis_pipe_count(b->more) == 0 ||
         (cp_redis_pipe_append_to(b->more, cc->c) == 0 && read_into(cc, b->more) == 0);
  }
  if (ok) {
    for (size_t i = 0; i < n; i++) q->ops->finish(b->job[i], b->more, cc);
  } else {
    if (cc->c != NULL)
      cp_log_warn("check: redis unavailable", CP_KV_STR("error", cc->c->errstr), CP_KV_END);
    cc_drop(cc);
    for (size_t i = 0; i < n; i++) q->ops->fail(b->job[i]);
  }
}

/* Send what is appended (the lookups of a batch, or the views and failure counts of the batch
 * just answered: they reach Redis before any answer is sent). */
static void flush(gw_cconn_t *cc) {
  if (cc->c == NULL) return;
  int done = 0;
  if (cc_post(cc) == 0)
    while (!done)
      if (redisBufferWrite(cc->c, &done) != REDIS_OK) break;
  if (!done) {
    cp_log_warn("check: redis write failed", CP_KV_STR("error", cc->c->errstr), CP_KV_END);
    cc_drop(cc);
  }
}

/* Hand the checks of b back (their replies go out at the next pump). */
static void hand_back(gw_checkq_t *q, batch_t *b) {
  for (size_t i = 0; i < b->n; i++) q->ops->done(&b->job[i]);
  b->n = 0;
  cp_redis_pipe_reset(b->look); /* the replies were the checks' until done */
  cp_redis_pipe_reset(b->more);
}

void gw_checkq_run(gw_checkq_t *q, gw_checkq_pump_fn *pump, void *arg) {
  batch_t bb[2] = {{.job = q->job, .look = q->look[0], .more = q->more[0]},
                   {.job = q->job2, .look = q->look[1], .more = q->more[1]}};
  batch_t *cur = &bb[0], *next = &bb[1];
  if (q->n == 0) return;
  take(q, cur);
  send_lookups(q, cur);
  flush(&q->cc);
  for (int round = 0; cur->n > 0; round++) {
    answer(q, cur); /* waits for Redis; appends the views */
    /* what arrived meanwhile is read now (cur is still suspended), so that its lookups go out in
     * the same write as cur's views: one Redis wake-up for both */
    pump(arg);
    next->n = 0;
    if (q->n > 0 && round + 1 < RUN_ROUNDS) {
      take(q, next);
      if (q->cc.c != NULL) send_lookups(q, next);
    }
    flush(&q->cc); /* cur's views reach Redis before any of cur's answers is sent */
    if (next->n > 0 && q->cc.c == NULL) { /* the connection broke: try a new one */
      send_lookups(q, next);
      flush(&q->cc); /* if this fails too, answer() answers them 503 */
    }
    hand_back(q, cur);
    pump(arg); /* send cur's replies (new requests read here wait for the next batch) */
    batch_t *t = cur;
    cur = next;
    next = t;
  }
}

bool gw_checkq_pending(const gw_checkq_t *q) { return q->n > 0; }

void gw_checkq_bind(gw_checkq_t *q) { tls_q = q; }

void gw_checkq_close(gw_checkq_t *q) { q->closed = true; }

int gw_checkq_add(gw_cjob_t **j) {
  gw_checkq_t *q = tls_q;
  if (q == NULL || q->closed) return -1;
  if (q->n == q->cap) {
    q->cap = q->cap ? q->cap * 2 : 64;
    q->q = cp_xrealloc(q->q, q->cap * sizeof *q->q);
  }
  q->q[q->n++] = *j;
  *j = NULL;
  return 0;
}

int gw_checkq_new(gw_checkq_t **out, const char *redis_host, int redis_port, int timeout_ms,
                  const gw_cjob_ops_t *ops, char *err, size_t errlen) {
  *out = NULL;
  if (redis_host == NULL || redis_host[0] == '\0' || strlen(redis_host) >= sizeof((gw_checkq_t *)0)->redis_host ||
      redis_port <= 0 || redis_port > 65535 || timeout_ms <= 0)
    return cp_err(err, errlen, "check queue: bad Redis address %s:%d or timeout %d ms",
                  redis_host != NULL ? redis_host : "(none)", redis_port, timeout_ms);
  gw_checkq_t *q = cp_xcalloc(1, sizeof *q);
  q->ops = ops;
  snprintf(q->redis_host, sizeof q->redis_host, "%s", redis_host);
  q->redis_port = redis_port;
  q->timeout_ms = timeout_ms;
  q->job = cp_xcalloc(BATCH_MAX, sizeof *q->job);
  q->job2 = cp_xcalloc(BATCH_MAX, sizeof *q->job2);
  for (int k = 0; k < 2; k++) {
    q->look[k] = cp_redis_pipe_new();
    q->more[k] = cp_redis_pipe_new();
  }
  q->cc.bg = cp_redis_pipe_new();
  *out = q;
  return 0;
}

void gw_checkq_destroy(gw_checkq_t **qp) {
  gw_checkq_t *q = *qp;
  if (q == NULL) return;
  assert(q->n == 0); /* the loop answers everything queued before it exits */
  cc_drop(&q->cc);
  free(q->q);
  free(q->job);
  free(q->job2);
  for (int k = 0; k < 2; k++) {
    cp_redis_pipe_destroy(&q->look[k]);
    cp_redis_pipe_destroy(&q->more[k]);
  }
  cp_redis_pipe_destroy(&q->cc.bg);
  free(q);
  *qp = NULL;
}
