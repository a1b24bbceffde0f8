/* gw_wait.c -- the helper thread that answers POST /v1/events?ack=committed: it re-reads the
 * waiting events' states from Redis every GW_WAIT_POLL_MS (one pipeline per batch), answers a
 * batch when every event is final or its deadline passed, and resumes the suspended connection.
 * (Why polling Redis rather than a SUB on the results topic: see gw_events.c.) */
#include "gw_wait.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cp_log.h"

#define GW_STOP_DRAIN_MS 500  /* at shutdown, time given to MHD to send the resumed answers */

struct gw_waiter {
  gw_t *gw;               // the gateway (its replies, metrics)
  pthread_t thread;       // the helper thread
  bool started;           // thread created
  pthread_mutex_t lock;   // guards head, stop
  pthread_cond_t cond;    // signalled on add and stop
  gw_batch_t *head;       // batches handed over and not yet taken by the thread
  bool stop;              // answer everything now and exit
  cp_redis_t *redis;      // the thread's own connection
  size_t waiting;         // batches the thread holds (for the shutdown log)
};

static void finish(gw_t *gw, gw_batch_t *b);

void gw_waiter_add(gw_waiter_t *w, gw_batch_t **bp) {
  gw_batch_t *b = *bp;
  *bp = NULL;
  pthread_mutex_lock(&w->lock);
  if (w->stop) { /* shutting down: answer with the states reached */
    pthread_mutex_unlock(&w->lock);
    finish(w->gw, b);
    return;
  }
  b->next = w->head;
  w->head = b;
  pthread_cond_signal(&w->cond);
  pthread_mutex_unlock(&w->lock);
}

/* Answer b, resume its connection, free it. */
static void finish(gw_t *gw, gw_batch_t *b) {
  struct MHD_Connection *conn = b->req->conn;
  gw_batch_reply(gw, b);
  gw_batch_destroy(&b);
  MHD_resume_connection(conn); /* MHD calls the dispatcher, which queues the reply */
}

/* Re-read the waiting answers of b; -1 when Redis is unavailable. */
static int refresh(struct gw_waiter *w, gw_batch_t *b) {
  const char **ids = cp_xcalloc(b->nwaiting, sizeof *ids);
  size_t *pos = cp_xcalloc(b->nwaiting, sizeof *pos);
  ing_claim_t *st = cp_xcalloc(b->nwaiting, sizeof *st);
  size_t k = 0;
  for (size_t i = 0; i < b->n && k < b->nwaiting; i++)
    if (b->ans[i].waiting) {
      ids[k] = b->ans[i].event_id;
      pos[k++] = i;
    }
  int rc = ing_store_read(w->redis, b->provider, ids, k, st);
  if (rc == 0) {
    for (size_t j = 0; j < k; j++) {
      ing_answer_t *a = &b->ans[pos[j]];
      if (st[j].st == ING_ST_REJECTED || st[j].st == ING_ST_COMMITTED) {
        a->st = st[j].st;
        a->index = st[j].index;
        a->reason = st[j].reason;
        a->message = st[j].message;
        st[j].reason = st[j].message = NULL;
        a->waiting = false;
        b->nwaiting--;
      }
      ing_claim_clear(&st[j]);
    }
  }
  free(ids);
  free(pos);
  free(st);
  return rc;
}

static void *waiter_main(void *arg) {
  struct gw_waiter *w = arg;
  gw_t *gw = w->gw;
  gw_batch_t *mine = NULL; /* batches held by this thread */
  bool stopping = false;
  while (!stopping) {
    pthread_mutex_lock(&w->lock);
    if (w->head == NULL && !w->stop) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      long ns = ts.tv_nsec + (mine != NULL ? GW_WAIT_POLL_MS : 1000) * 1000000L;
      ts.tv_sec += ns / 1000000000L;
      ts.tv_nsec = ns % 1000000000L;
      (void)pthread_cond_timedwait(&w->cond, &w->lock, &ts);
    }
    while (w->head != NULL) {
      gw_batch_t *b = w->head;
      w->head = b->next;
      b->next = mine;
      mine = b;
    }
    stopping = w->stop;
    pthread_mutex_unlock(&w->lock);

    int64_t now = cp_mono_ms();
    gw_batch_t **pp = &mine;
    size_t held = 0;
    while (*pp != NULL) {
      gw_batch_t *b = *pp;
      if (!stopping && b->nwaiting > 0 && refresh(w, b) != 0)
        cp_log_warn("redis unavailable while waiting for committed acks",
                    CP_KV_STR("error", cp_redis_errstr(w->redis)), CP_KV_END);
      if (stopping || b->nwaiting == 0 || now >= b->deadline_ms) {
        *pp = b->next;
        finish(gw, b);
      } else {
        pp = &b->next;
        held++;
      }
    }
    w->waiting = held;
  }
  return NULL;
}

int gw_waiter_new(gw_waiter_t **out, gw_t *gw, char *err, size_t errlen) {
  *out = NULL;
  struct gw_waiter *w = cp_xcalloc(1, sizeof *w);
  w->gw = gw;
  pthread_mutex_init(&w->lock, NULL);
  pthread_cond_init(&w->cond, NULL);
  w->redis = cp_redis_new(gw->cfg.redis_host, gw->cfg.redis_port, gw->cfg.redis_timeout_ms, err, errlen);
  if (w->redis == NULL) goto err;
  int rc = pthread_create(&w->thread, NULL, waiter_main, w);
  if (rc != 0) {
    cp_err(err, errlen, "pthread_create: %s", strerror(rc));
    goto err;
  }
  w->started = true;
  *out = w;
  return 0;
err:
  gw_waiter_destroy(&w);
  return -1;
}

void gw_waiter_drain(gw_waiter_t *w) {
  if (w == NULL || !w->started) return;
  pthread_mutex_lock(&w->lock);
  w->stop = true;
  pthread_cond_signal(&w->cond);
  pthread_mutex_unlock(&w->lock);
  pthread_join(w->thread, NULL);
  w->started = false;
  /* give MHD a moment to send the answers of the connections just resumed */
  struct timespec ts = {0, GW_STOP_DRAIN_MS * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

void gw_waiter_destroy(gw_waiter_t **wp) {
  struct gw_waiter *w = *wp;
  if (w == NULL) return;
  gw_waiter_drain(w);
  /* batches added after the thread stopped (a request racing the shutdown) */
  while (w->head != NULL) {
    gw_batch_t *b = w->head;
    w->head = b->next;
    gw_batch_destroy(&b);
  }
  cp_redis_destroy(&w->redis);
  pthread_mutex_destroy(&w->lock);
  pthread_cond_destroy(&w->cond);
  free(w);
  *wp = NULL;
}
