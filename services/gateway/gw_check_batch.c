/* gw_check_batch.c -- the thread that answers the queued POST /v1/check requests in batches: one
 * Redis pipeline opens every queued code, the views are written without waiting, then the
 * suspended connections are resumed (see the "batched checks" comment in gw_check.h). */
#include "gw_check.h"
#include "gw_share.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "cp_log.h"

#define BATCH_MAX 512  /* most checks sent in one pipeline (the rest wait for the next) */

struct gw_checkq {
  gw_t *gw;                 // the gateway
  pthread_t thread;         // the batch thread
  bool started;             // thread created and not joined
  pthread_mutex_t lock;     // guards q, n, cap, stop, running
  pthread_cond_t cond;      // signalled on add and stop
  gw_cjob_t **q;            // queued checks, oldest first
  size_t n;                 // how many
  size_t cap;               // allocated
  bool stop;                // answer what is queued, then exit
  bool running;             // accepting checks
  gw_cconn_t cc;            // the thread's Redis connection
};

static void cc_drop(gw_cconn_t *cc) {
  if (cc->c != NULL) redisFree(cc->c);
  cc->c = NULL;
  cc->discard = 0;
}

static int cc_connect(gw_t *gw, gw_cconn_t *cc) {
  if (cc->c != NULL && cc->c->err) cc_drop(cc);
  if (cc->c != NULL) return 0;
  int ms = gw->cfg.redis_timeout_ms;
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  cc->c = redisConnectWithTimeout(gw->cfg.redis_host, gw->cfg.redis_port, tv);
  if (cc->c == NULL || cc->c->err) {
    cp_log_warn("check: redis unavailable", CP_KV_STR("error", cc->c != NULL ? cc->c->errstr : "out of memory"),
                CP_KV_END);
    cc_drop(cc);
    return -1;
  }
  redisSetTimeout(cc->c, tv);
  return 0;
}

void gw_cconn_view(gw_cconn_t *cc, const char *views_key, const char *view_json, const char *code_id) {
  redisAppendCommand(cc->c, "LPUSH %s %s", views_key, view_json);
  redisAppendCommand(cc->c, "LTRIM %s 0 %d", views_key, GW_VIEWS_KEEP - 1);
  redisAppendCommand(cc->c, "EXPIRE %s %d", views_key, GW_VIEWS_TTL_S);
  redisAppendCommand(cc->c, "HINCRBY cp:scid:{%s} views 1", code_id);
  cc->discard += 4;
}

void gw_cconn_failure(gw_cconn_t *cc, const char *ipkey, const char *codekey) {
  redisAppendCommand(cc->c, "INCR %s", ipkey);
  redisAppendCommand(cc->c, "EXPIRE %s %d NX", ipkey, GW_RL_WINDOW_S);
  redisAppendCommand(cc->c, "INCR %s", codekey);
  redisAppendCommand(cc->c, "EXPIRE %s %d NX", codekey, GW_RL_WINDOW_S);
  cc->discard += 4;
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

/* Take up to BATCH_MAX queued checks into b (waiting for one when wait); false when stopping
 * with nothing left. */
static bool take(struct gw_checkq *q, batch_t *b, bool wait) {
  b->n = 0;
  b->total = 0;
  b->sent = false;
  pthread_mutex_lock(&q->lock);
  while (wait && q->n == 0 && !q->stop) pthread_cond_wait(&q->cond, &q->lock);
  if (q->n == 0) {
    if (wait) q->running = false; /* stopping and nothing left */
    pthread_mutex_unlock(&q->lock);
    return false;
  }
  size_t k = q->n < BATCH_MAX ? q->n : BATCH_MAX;
  memcpy(b->job, q->q, k * sizeof *b->job);
  memmove(q->q, q->q + k, (q->n - k) * sizeof *q->q);
  q->n -= k;
  b->n = k;
  pthread_mutex_unlock(&q->lock);
  return true;
}

/* Append the lookups of b (connecting first if needed); they go out with the next write. */
static void send_lookups(struct gw_checkq *q, batch_t *b) {
  if (b->sent || cc_connect(q->gw, &q->cc) != 0) return;
  b->total = 0;
  for (size_t i = 0; i < b->n; i++) b->total += b->nl[i] = gw_cjob_lookup(b->job[i], q->cc.c);
  b->sent = true;
}

/* Answer the checks of b (their lookups are appended); write the views. The connections are not
 * resumed yet. */
static void answer(struct gw_checkq *q, batch_t *b) {
  gw_cconn_t *cc = &q->cc;
  size_t n = b->n;
  int *nx = cp_xcalloc(n, sizeof *nx);
  int extra = 0;
  redisReply **rep = cp_xcalloc((size_t)b->total + 1, sizeof *rep), **xrep = NULL;
  bool ok = b->sent && cc_drain(cc) == 0 && read_n(cc, rep, b->total) == 0;
  if (ok) {
    int off = 0;
    for (size_t i = 0; i < n; i++) {
      extra += nx[i] = gw_cjob_judge(b->job[i], rep + off, cc->c);
      off += b->nl[i];
    }
    xrep = cp_xcalloc((size_t)extra + 1, sizeof *xrep);
    ok = read_n(cc, xrep, extra) == 0;
  }
  if (ok) {
    int off = 0;
    for (size_t i = 0; i < n; i++) {
      gw_cjob_finish(b->job[i], nx[i] > 0 ? xrep[off] : NULL, cc); /* takes the reply */
      if (nx[i] > 0) xrep[off] = NULL;
      off += nx[i];
    }
  } else {
    if (cc->c != NULL)
      cp_log_warn("check: redis unavailable", CP_KV_STR("error", cc->c->errstr), CP_KV_END);
    cc_drop(cc);
    for (size_t i = 0; i < n; i++) gw_cjob_fail(b->job[i]);
  }
  free_n(rep, b->total);
  if (xrep != NULL) free_n(xrep, extra);
  free(rep);
  free(xrep);
  free(nx);
}

/* Send what is appended (the views and failure counts of the batch just answered, and the
 * lookups of the next): they reach Redis before any answer is sent. */
static void flush(gw_cconn_t *cc) {
  if (cc->c == NULL) return;
  int done = 0;
  while (!done)
    if (redisBufferWrite(cc->c, &done) != REDIS_OK) break;
  if (!done) {
    cp_log_warn("check: views not recorded", CP_KV_STR("error", cc->c->errstr), CP_KV_END);
    cc_drop(cc);
  }
}

static void resume(batch_t *b) {
  for (size_t i = 0; i < b->n; i++) {
    struct MHD_Connection *conn = gw_cjob_req(b->job[i])->conn;
    gw_cjob_destroy(&b->job[i]);
    MHD_resume_connection(conn); /* MHD calls the dispatcher, which queues the reply */
  }
  b->n = 0;
}

static void *cq_main(void *arg) {
  struct gw_checkq *q = arg;
  batch_t bb[2], *cur = &bb[0], *next = &bb[1];
  for (int i = 0; i < 2; i++) {
    bb[i].job = cp_xcalloc(BATCH_MAX, sizeof *bb[i].job);
    bb[i].nl = cp_xcalloc(BATCH_MAX, sizeof *bb[i].nl);
  }
  bool have = take(q, cur, true);
  while (have) {
    send_lookups(q, cur);
    answer(q, cur);
    /* the checks that arrived meanwhile go out in the same write as this batch's views */
    bool more = take(q, next, false);
    if (more && q->cc.c != NULL) send_lookups(q, next);
    flush(&q->cc);
    if (more && q->cc.c == NULL) next->sent = false; /* the connection broke: send them again */
    resume(cur);
    batch_t *t = cur;
    cur = next;
    next = t;
    have = more || take(q, cur, true);
  }
  for (int i = 0; i < 2; i++) {
    free(bb[i].job);
    free(bb[i].nl);
  }
  return NULL;
}

int gw_checkq_add(gw_t *gw, gw_cjob_t *j) {
  struct gw_checkq *q = gw_waiter_checkq(gw);
  if (q == NULL) return -1;
  gw_req_t *req = gw_cjob_req(j);
  pthread_mutex_lock(&q->lock);
  if (!q->running || q->stop) {
    pthread_mutex_unlock(&q->lock);
    return -1;
  }
  if (q->n == q->cap) {
    q->cap = q->cap ? q->cap * 2 : 64;
    gw_cjob_t **nq = realloc(q->q, q->cap * sizeof *nq);
    if (nq == NULL) abort(); /* OOM is fatal in carepass */
    q->q = nq;
  }
  MHD_suspend_connection(req->conn); /* before the thread can see it (it may resume at once) */
  req->suspended = true;
  q->q[q->n++] = j;
  pthread_cond_signal(&q->cond);
  pthread_mutex_unlock(&q->lock);
  return 0;
}

int gw_checkq_start(gw_t *gw, gw_checkq_t **out, char *err, size_t errlen) {
  struct gw_checkq *q = cp_xcalloc(1, sizeof *q);
  *out = q;
  q->gw = gw;
  pthread_mutex_init(&q->lock, NULL);
  pthread_cond_init(&q->cond, NULL);
  q->running = true;
  int rc = pthread_create(&q->thread, NULL, cq_main, q);
  if (rc != 0) {
    q->running = false;
    return cp_err(err, errlen, "pthread_create: %s", strerror(rc));
  }
  q->started = true;
  return 0;
}

void gw_checkq_stop(gw_checkq_t *q) {
  if (q == NULL || !q->started) return;
  pthread_mutex_lock(&q->lock);
  q->stop = true;
  pthread_cond_signal(&q->cond);
  pthread_mutex_unlock(&q->lock);
  pthread_join(q->thread, NULL);
  q->started = false;
}

void gw_checkq_destroy(gw_checkq_t **qp) {
  gw_checkq_t *q = *qp;
  if (q == NULL) return;
  gw_checkq_stop(q);
  assert(q->n == 0); /* the thread answers everything queued before it exits; add refuses after */
  cc_drop(&q->cc);
  free(q->q);
  pthread_mutex_destroy(&q->lock);
  pthread_cond_destroy(&q->cond);
  free(q);
  *qp = NULL;
}
