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
#include "cp_redis.h"

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
  int *nl, *nl2;            // commands each check's lookup appended (BATCH_MAX slots each)
};

/* The queue of the loop running on this thread (NULL on other threads). */
static __thread gw_checkq_t *tls_q;

static void cc_drop(gw_cconn_t *cc) {
  if (cc->c != NULL) redisFree(cc->c);
  cc->c = NULL;
  cc->discard = 0;
}

static int cc_connect(const gw_checkq_t *q, gw_cconn_t *cc) {
  if (cc->c != NULL && cc->c->err) cc_drop(cc);
  if (cc->c != NULL) return 0;
  int ms = q->timeout_ms;
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  char host[256], err[CP_ERRLEN];
  int port;
  if (cp_redis_locate(q->redis_host, q->redis_port, host, sizeof host, &port, err, sizeof err) != 0) {
    cp_log_warn("check: redis unavailable", CP_KV_STR("error", err), CP_KV_END);
    return -1;
  }
  cc->c = redisConnectWithTimeout(host, port, tv);
  if (cc->c != NULL && !cc->c->err && cp_redis_sentinel_on() && !cp_redis_is_primary(cc->c)) {
    cp_log_warn("check: redis is not the primary yet (a failover is in progress)", CP_KV_END);
    cc_drop(cc);
    return -1;
  }
  if (cc->c == NULL || cc->c->err) {
    cp_log_warn("check: redis unavailable", CP_KV_STR("error", cc->c != NULL ? cc->c->errstr : "out of memory"),
                CP_KV_END);
    cc_drop(cc);
    return -1;
  }
  redisSetTimeout(cc->c, tv);
  return 0;
}

/* Write n as decimal at p; returns the end. */
static char *put_uint(char *p, size_t n) {
  char t[24];
  int k = 0;
  do t[k++] = (char)('0' + n % 10); while ((n /= 10) != 0);
  while (k > 0) *p++ = t[--k];
  return p;
}

/* v as a decimal string in buf. */
static const char *u2s(size_t v, char buf[24]) {
  *put_uint(buf, v) = '\0';
  return buf;
}

/* Kept outside the Redis layer on measurement (Issue 9 item 2; bench/README.md, "The check batcher
 * and the Redis layer"): the same batcher on cp_redis_pipe_t (lookups, follow-ups, views and failure
 * counts queued on pipes, appended with cp_redis_pipe_append_to, replies by handle: commit 8ad7c25)
 * cost 31.8 us of gateway CPU per check against 28.1 us here (medians of 9 runs each, interleaved,
 * 2026-12-03 08:22-08:30 UTC) and checks/Redis-GET ratio 0.303 against 0.322 (medians of 15 and 12),
 * with CAREPASS_BUILD_DIR=<build> /usr/bin/python3 bench/bench_check.py --runs 3 --threads 2
 * --clients 8 --kv. The difference is the pipe copying each argument and hiredis formatting it with
 * sdscatfmt at append time; this writes the RESP once, straight from the arguments. */
void gw_redis_cmd(redisContext *c, int argc, const char *const *argv) {
  assert(argc > 0 && argc <= GW_CMD_ARGS_MAX);
  size_t len[GW_CMD_ARGS_MAX], total = 16;
  for (int i = 0; i < argc; i++) total += 24 + (len[i] = strlen(argv[i]));
  char stack[2048], *buf = total <= sizeof stack ? stack : cp_xmalloc(total);
  char *p = buf;
  *p++ = '*';
  p = put_uint(p, (size_t)argc);
  *p++ = '\r', *p++ = '\n';
  for (int i = 0; i < argc; i++) {
    *p++ = '$';
    p = put_uint(p, len[i]);
    *p++ = '\r', *p++ = '\n';
    memcpy(p, argv[i], len[i]);
    p += len[i];
    *p++ = '\r', *p++ = '\n';
  }
  (void)redisAppendFormattedCommand(c, buf, (size_t)(p - buf)); /* fails only on OOM (then c->err) */
  if (buf != stack) free(buf);
}

int gw_view_append(redisContext *c, const char *views_key, const char *view_json, const char *code_id) {
  char last[24], ttl[24];
  gw_redis_cmd(c, 3, (const char *[]){"LPUSH", views_key, view_json});
  gw_redis_cmd(c, 4, (const char *[]){"LTRIM", views_key, "0", u2s(GW_VIEWS_KEEP - 1, last)});
  gw_redis_cmd(c, 3, (const char *[]){"EXPIRE", views_key, u2s(GW_VIEWS_TTL_S, ttl)});
  if (code_id == NULL) return 3;   /* a failed or locked try: shown to the worker, not a view of the code */
  cp_key_t sck;
  gw_redis_cmd(c, 4, (const char *[]){"HINCRBY", cp_key_scid(&sck, code_id), "views", "1"});
  return 4;
}

void gw_cconn_view(gw_cconn_t *cc, const char *views_key, const char *view_json, const char *code_id) {
  cc->discard += gw_view_append(cc->c, views_key, view_json, code_id);
}

void gw_cconn_release(gw_cconn_t *cc, const char *key) {
  const char *argv[GW_RL_RELEASE_ARGC];
  gw_sc_release_argv(key, argv);
  gw_redis_cmd(cc->c, GW_RL_RELEASE_ARGC, argv);
  cc->discard += 1;
}

/* Read the replies of the commands written without waiting (sent before this batch's). -1: broken. */
static int cc_drain(gw_cconn_t *cc) {
  while (cc->discard > 0) {
    void *rep = NULL;
    if (redisGetReply(cc->c, &rep) != REDIS_OK) return -1;
    cc->discard--;
    redisReply *r = rep;
    if (r != NULL && r->type == REDIS_REPLY_ERROR)
      cp_log_warn("check: view or failure count not recorded", CP_KV_STR("error", r->str), CP_KV_END);
    freeReplyObject(rep);
  }
  return 0;
}

/* Read n replies into rep[0..n-1]; -1 when the connection broke (those read are kept). */
static int read_n(gw_cconn_t *cc, redisReply **rep, int n) {
  for (int i = 0; i < n; i++) {
    void *r = NULL;
    if (redisGetReply(cc->c, &r) != REDIS_OK) return -1;
    rep[i] = r;
  }
  return 0;
}

static void free_n(redisReply **rep, int n) {
  for (int i = 0; i < n; i++)
    if (rep[i] != NULL) freeReplyObject(rep[i]);
}

/* One batch: the checks taken from the queue together. */
typedef struct {
  gw_cjob_t **job;   // the checks
  size_t n;          // how many
  int *nl;           // commands each check's lookup appended
  int total;         // their sum
  bool sent;         // the lookups are appended on the current connection
} batch_t;

/* Take up to BATCH_MAX queued checks into b. */
static void take(gw_checkq_t *q, batch_t *b) {
  size_t k = q->n < BATCH_MAX ? q->n : BATCH_MAX;
  memcpy(b->job, q->q, k * sizeof *b->job);
  memmove(q->q, q->q + k, (q->n - k) * sizeof *q->q);
  q->n -= k;
  b->n = k;
  b->total = 0;
  b->sent = false;
}

/* Append the lookups of b (connecting first if needed). */
static void send_lookups(gw_checkq_t *q, batch_t *b) {
  if (cc_connect(q, &q->cc) != 0) return;
  b->total = 0;
  for (size_t i = 0; i < b->n; i++) b->total += b->nl[i] = q->ops->lookup(b->job[i], q->cc.c);
  b->sent = true;
}

/* Answer the checks of b (their lookups are appended); append the views. The connections are not
 * resumed yet. */
static void answer(gw_checkq_t *q, batch_t *b) {
  gw_cconn_t *cc = &q->cc;
  size_t n = b->n;
  int *nx = cp_xcalloc(n, sizeof *nx);
  int extra = 0;
  redisReply **rep = cp_xcalloc((size_t)b->total + 1, sizeof *rep), **xrep = NULL;
  bool ok = b->sent && cc->c != NULL && cc_drain(cc) == 0 && read_n(cc, rep, b->total) == 0;
  if (ok) {
    int off = 0;
    for (size_t i = 0; i < n; i++) {
      extra += nx[i] = q->ops->judge(b->job[i], rep + off, cc->c);
      off += b->nl[i];
    }
    xrep = cp_xcalloc((size_t)extra + 1, sizeof *xrep);
    ok = read_n(cc, xrep, extra) == 0;
  }
  if (ok) {
    int off = 0;
    for (size_t i = 0; i < n; i++) {
      q->ops->finish(b->job[i], nx[i] > 0 ? xrep[off] : NULL, cc); /* takes the reply */
      if (nx[i] > 0) xrep[off] = NULL;
      off += nx[i];
    }
  } else {
    if (cc->c != NULL)
      cp_log_warn("check: redis unavailable", CP_KV_STR("error", cc->c->errstr), CP_KV_END);
    cc_drop(cc);
    for (size_t i = 0; i < n; i++) q->ops->fail(b->job[i]);
  }
  free_n(rep, b->total);
  if (xrep != NULL) free_n(xrep, extra);
  free(rep);
  free(xrep);
  free(nx);
}

/* Send what is appended (the lookups of a batch, or the views and released reservations of the batch
 * just answered: they reach Redis before any answer is sent). */
static void flush(gw_cconn_t *cc) {
  if (cc->c == NULL) return;
  int done = 0;
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
}

void gw_checkq_run(gw_checkq_t *q, gw_checkq_pump_fn *pump, void *arg) {
  batch_t bb[2] = {{.job = q->job, .nl = q->nl}, {.job = q->job2, .nl = q->nl2}};
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
  q->nl = cp_xcalloc(BATCH_MAX, sizeof *q->nl);
  q->nl2 = cp_xcalloc(BATCH_MAX, sizeof *q->nl2);
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
  free(q->nl);
  free(q->nl2);
  free(q);
  *qp = NULL;
}
