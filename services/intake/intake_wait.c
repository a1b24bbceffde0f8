/* intake_wait.c -- requests waiting for committed acks: a table from provider:event to the
 * waiting requests, result delivery, periodic Redis re-reads and timeouts. */
#include "intake_wait.h"

#include "intake_req.h"
#include "intake_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_log.h"

#define WAITS_MIN_BUCKETS 1024

/* One (event, request) pair in the table. */
typedef struct wait_node {
  char *key;               // "provider:event" (owned)
  uint64_t hash;           // hash of key
  intake_req_t *req;       // the waiting request
  size_t idx;              // the event's position in req
  struct wait_node *next;  // bucket chain
} wait_node_t;

struct intake_waits {
  wait_node_t **buckets;   // chained hash table
  size_t nbuckets;         // power of two
  size_t nnodes;           // pairs in the table
  intake_req_t *head;      // waiting requests, oldest first
  intake_req_t *tail;      // newest waiting request
  size_t nreqs;            // requests in the list
};

static uint64_t fnv1a(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ULL;
  }
  return h;
}

static char *make_key(const char *provider, const char *event_id) {
  size_t n = strlen(provider) + strlen(event_id) + 2;
  char *k = cp_xmalloc(n);
  snprintf(k, n, "%s:%s", provider, event_id);
  return k;
}

intake_waits_t *intake_waits_new(void) {
  intake_waits_t *w = cp_xcalloc(1, sizeof *w);
  w->nbuckets = WAITS_MIN_BUCKETS;
  w->buckets = cp_xcalloc(w->nbuckets, sizeof *w->buckets);
  return w;
}

void intake_waits_destroy(intake_waits_t **wp) {
  if (wp == NULL || *wp == NULL) return;
  intake_waits_t *w = *wp;
  while (w->head != NULL) {
    intake_req_t *r = w->head;
    intake_waits_remove(w, r);
    intake_req_destroy(&r);
  }
  free(w->buckets);
  free(w);
  *wp = NULL;
}

static void grow(intake_waits_t *w) {
  size_t nb = w->nbuckets * 2;
  wait_node_t **b = cp_xcalloc(nb, sizeof *b);
  for (size_t i = 0; i < w->nbuckets; i++) {
    wait_node_t *n = w->buckets[i];
    while (n != NULL) {
      wait_node_t *next = n->next;
      size_t slot = n->hash & (nb - 1);
      n->next = b[slot];
      b[slot] = n;
      n = next;
    }
  }
  free(w->buckets);
  w->buckets = b;
  w->nbuckets = nb;
}

void intake_waits_add(intake_waits_t *w, intake_req_t *req) {
  for (size_t i = 0; i < req->n; i++) {
    if (!req->ans[i].waiting) continue;
    if (w->nnodes >= 2 * w->nbuckets) grow(w);
    wait_node_t *n = cp_xcalloc(1, sizeof *n);
    n->key = make_key(req->provider, req->ans[i].event_id);
    n->hash = fnv1a(n->key);
    n->req = req;
    n->idx = i;
    size_t slot = n->hash & (w->nbuckets - 1);
    n->next = w->buckets[slot];
    w->buckets[slot] = n;
    w->nnodes++;
  }
  req->prev = w->tail;
  req->next = NULL;
  if (w->tail != NULL) w->tail->next = req;
  else w->head = req;
  w->tail = req;
  w->nreqs++;
}

void intake_waits_remove(intake_waits_t *w, intake_req_t *req) {
  for (size_t i = 0; i < req->n; i++) {
    char *key = make_key(req->provider, req->ans[i].event_id);
    uint64_t h = fnv1a(key);
    wait_node_t **pp = &w->buckets[h & (w->nbuckets - 1)];
    while (*pp != NULL) {
      wait_node_t *n = *pp;
      if (n->req == req && n->idx == i) {
        *pp = n->next;
        free(n->key);
        free(n);
        w->nnodes--;
        break;
      }
      pp = &n->next;
    }
    free(key);
  }
  if (req->prev != NULL) req->prev->next = req->next;
  else if (w->head == req) w->head = req->next;
  if (req->next != NULL) req->next->prev = req->prev;
  else if (w->tail == req) w->tail = req->prev;
  req->prev = req->next = NULL;
  w->nreqs--;
}

void intake_waits_result(intake_waits_t *w, const Carepass__V1__EventResult *res) {
  ing_st_t st;
  if (res->outcome == CAREPASS__V1__OUTCOME__OUTCOME_COMMITTED) st = ING_ST_COMMITTED;
  else if (res->outcome == CAREPASS__V1__OUTCOME__OUTCOME_REJECTED) st = ING_ST_REJECTED;
  else return; /* not final */
  char *key = make_key(res->provider_id, res->provider_event_id);
  uint64_t h = fnv1a(key);
  for (wait_node_t *n = w->buckets[h & (w->nbuckets - 1)]; n != NULL; n = n->next)
    if (n->hash == h && strcmp(n->key, key) == 0)
      intake_answer_final(n->req, n->idx, st, res->reason_code, res->message, res->entry_index);
  free(key);
}

size_t intake_waits_count(const intake_waits_t *w) { return w->nreqs; }

int64_t intake_waits_next_ms(const intake_waits_t *w) {
  int64_t t = INT64_MAX;
  for (const intake_req_t *r = w->head; r != NULL; r = r->next) {
    if (r->nwaiting == 0) return 0;
    if (r->refresh_ms < t) t = r->refresh_ms;
    if (r->deadline_ms < t) t = r->deadline_ms;
  }
  return t;
}

void intake_waits_tick(intake_t *in, bool all) {
  intake_waits_t *w = in->waits;
  if (w->nreqs == 0) return;
  int64_t now = cp_mono_ms();

  /* Re-read from Redis every request that is due (or about to time out): a
   * result may have been published before we waited, or lost. One pipeline. */
  intake_req_t **due = cp_xcalloc(w->nreqs, sizeof *due);
  size_t ndue = 0;
  for (intake_req_t *r = w->head; r != NULL; r = r->next) {
    if (r->nwaiting > 0 && (all || now >= r->refresh_ms || now >= r->deadline_ms)) {
      due[ndue++] = r;
      r->refresh_ms = now + INTAKE_REFRESH_MS;
    }
  }
  if (ndue > 0 && intake_store_refresh(in, due, ndue) != 0) {
    /* Redis is down: answers stay "accepted" until it is back or the deadline passes */
  }
  free(due);

  /* Answer the complete and the timed-out ones. */
  intake_req_t *r = w->head;
  while (r != NULL) {
    intake_req_t *next = r->next;
    if (all || r->nwaiting == 0 || now >= r->deadline_ms) {
      intake_waits_remove(w, r);
      intake_reply(in, r); /* answers still waiting go out as "accepted" */
      intake_req_destroy(&r);
    }
    r = next;
  }
}
