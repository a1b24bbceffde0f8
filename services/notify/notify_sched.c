/* notify_sched.c -- per-endpoint scheduling: the local queue of claimed deliveries and
 * what notify knows of each endpoint's recent answers. */
#include <stdlib.h>
#include <string.h>
#include "notify_sched.h"
#include "cp_log.h"

#define QUEUE_MAX 1024           /* claimed deliveries waiting locally for a slot of their endpoint */
#define PREFETCH_FACTOR 16       /* a fast endpoint may have per-endpoint limit x this queued ... */
#define PREFETCH_EP_MAX 256      /* ... but never more than this */
#define FAST_MS 100              /* "fast": last answer 2xx and smoothed attempt time below this */
#define EP_STATS_MAX 1024        /* endpoints whose answers are tracked (linear scan: ~1 us) */
#define PARK_DOUBLINGS 4         /* a re-parked endpoint waits up to 2^this x the park time */
#define EP_LEN 300               /* "host:port" buffer (as the deliverer's) */

/* A claimed delivery waiting for a free slot of its endpoint. Claims are taken in
 * batches for fast endpoints, so most slots are refilled without a Redis round trip. */
typedef struct {
  nt_claimed_t c;              // the delivery (its lease runs from claimed_mono)
  char ep[EP_LEN];             // its endpoint
  int64_t claimed_mono;        // monotonic ms of the claim
  int stat;                    // index in the endpoint table, -1 = not tracked
} queued_t;

/* What notify knows about one endpoint's recent answers. */
typedef struct {
  char ep[EP_LEN];             // "host:port"; "" = free entry
  double ewma_ms;              // smoothed attempt time
  bool ok;                     // the last attempt answered 2xx
  int queued;                  // deliveries queued locally for it (never evicted while > 0)
  int64_t used_mono;           // last touched (eviction of the least recently used)
  int fails;                   // attempts in a row with no HTTP answer (timeout, refused); 0 = healthy
  int trips;                   // times parked in a row (the park time doubles each time)
  int64_t parked_until;        // monotonic ms: no delivery starts to it before this
} ep_stat_t;

struct nt_sched {
  nt_deliverer_t *dlv;         // the deliverer (borrowed): free slots, in flight per endpoint
  int per_endpoint;            // WEBHOOK_PER_ENDPOINT (0 = no limit)
  int64_t queue_wait_ms;       // longest a queued delivery may wait (its lease must outlive the attempt)
  nt_sched_release_fn release; // hands a delivery back
  void *arg;                   // release's argument
  queued_t **queue;            // claimed deliveries waiting for a slot, oldest first (QUEUE_MAX)
  size_t nqueue;               // entries used in queue
  int breaker_fails;           // WEBHOOK_BREAKER_FAILS: unanswered attempts in a row that park an endpoint (0 = off)
  int64_t breaker_park_ms;     // WEBHOOK_BREAKER_PARK_MS: how long the first park lasts
  int suspect_share;           // most transfers in flight to failing endpoints together (half the slots)
  ep_stat_t *eps;              // what notify knows per endpoint (EP_STATS_MAX)
};

nt_sched_t *nt_sched_new(nt_deliverer_t *dlv, int per_endpoint, int64_t queue_wait_ms,
                         nt_sched_release_fn release, void *arg) {
  nt_sched_t *s = cp_xcalloc(1, sizeof *s);
  s->dlv = dlv;
  s->per_endpoint = per_endpoint;
  s->queue_wait_ms = queue_wait_ms;
  s->release = release;
  s->arg = arg;
  s->queue = cp_xcalloc(QUEUE_MAX, sizeof *s->queue);
  s->eps = cp_xcalloc(EP_STATS_MAX, sizeof *s->eps);
  s->suspect_share = (int)(nt_deliverer_room(dlv) / 2);
  if (s->suspect_share < 1) s->suspect_share = 1;
  return s;
}

void nt_sched_set_breaker(nt_sched_t *s, int fails, int64_t park_ms) {
  s->breaker_fails = fails;
  s->breaker_park_ms = park_ms;
}

void nt_sched_destroy(nt_sched_t **sp) {
  nt_sched_t *s = sp ? *sp : NULL;
  if (!s) return;
  for (size_t i = 0; i < s->nqueue; i++) {
    nt_claimed_free(&s->queue[i]->c);
    free(s->queue[i]);
  }
  free(s->queue);
  free(s->eps);
  free(s);
  *sp = NULL;
}

size_t nt_sched_queued(const nt_sched_t *s) { return s->nqueue; }

/* The endpoint's entry (created when create is set; the least recently used entry
 * with nothing queued is reused). -1 when not tracked. */
static int ep_stat(nt_sched_t *s, const char *ep, bool create) {
  int victim = -1;
  for (int i = 0; i < EP_STATS_MAX; i++) {
    ep_stat_t *e = &s->eps[i];
    if (e->ep[0] && strcmp(e->ep, ep) == 0) {
      e->used_mono = cp_mono_ms();
      return i;
    }
    /* evict the least recently used entry with nothing queued, a healthy one before one that
     * is failing (forgetting a failing endpoint would let it take every slot again) */
    if (e->queued == 0 &&
        (victim < 0 || (e->fails == 0 && s->eps[victim].fails > 0) ||
         ((e->fails == 0) == (s->eps[victim].fails == 0) && e->used_mono < s->eps[victim].used_mono)))
      victim = i;
  }
  if (!create || victim < 0 || !ep[0]) return -1;
  ep_stat_t *e = &s->eps[victim];
  memset(e, 0, sizeof *e);
  snprintf(e->ep, sizeof e->ep, "%s", ep);
  e->used_mono = cp_mono_ms();
  return victim;
}

/* How many deliveries a tracked endpoint may have queued beyond its in-flight ones:
 * only fast endpoints that answer 2xx get any, so slow or failing ones never hold
 * claims locally (their deliveries stay in Redis for any replica). */
static int ep_allowance(const nt_sched_t *s, const ep_stat_t *e) {
  if (s->per_endpoint <= 0 || !e->ok || e->ewma_ms >= FAST_MS) return 0;
  int a = s->per_endpoint * PREFETCH_FACTOR;
  return a < PREFETCH_EP_MAX ? a : PREFETCH_EP_MAX;
}

void nt_sched_result(nt_sched_t *s, const char *url, int status, int64_t ms) {
  char ep[EP_LEN];
  nt_endpoint(url, ep, sizeof ep);
  int i = ep_stat(s, ep, true);
  if (i < 0) return;
  ep_stat_t *e = &s->eps[i];
  e->ewma_ms = e->ewma_ms > 0 ? 0.8 * e->ewma_ms + 0.2 * (double)ms : (double)ms + 0.001;
  e->ok = status >= 200 && status < 300;
  if (status != 0) {   /* it answered: not a slot-holder, whatever the status */
    e->fails = 0;
    e->trips = 0;
    e->parked_until = 0;
    return;
  }
  e->fails++;
  if (s->breaker_fails > 0 && e->fails >= s->breaker_fails) {
    int64_t park = s->breaker_park_ms << (e->trips < PARK_DOUBLINGS ? e->trips : PARK_DOUBLINGS);
    e->parked_until = cp_mono_ms() + park;
    e->trips++;
    cp_log_warn("webhook endpoint parked", CP_KV_STR("endpoint", e->ep), CP_KV_INT("unanswered", e->fails),
                CP_KV_INT("park_ms", park), CP_KV_END);
  }
}

static bool ep_parked(const ep_stat_t *e, int64_t mono) {
  return e != NULL && e->fails > 0 && mono < e->parked_until;
}

/* How many transfers may be in flight to a tracked endpoint now: none while parked; one while
 * it is failing (and after a park, the probe whose answer closes or re-opens the breaker);
 * per_endpoint when healthy (0 = no limit). */
static int ep_limit(const nt_sched_t *s, const ep_stat_t *e, int64_t mono) {
  if (e == NULL || e->fails == 0) return s->per_endpoint;
  return ep_parked(e, mono) ? 0 : 1;
}

/* Take a delivery out of the queue: its endpoint count goes down. */
static void dequeued(nt_sched_t *s, const queued_t *q) {
  if (q->stat >= 0 && s->eps[q->stat].queued > 0) s->eps[q->stat].queued--;
}

/* Transfers in flight to failing endpoints, together. */
static int suspect_inflight(nt_sched_t *s) {
  const nt_ep_load_t *loads = NULL;
  size_t n = nt_deliverer_loads(s->dlv, &loads);
  int total = 0;
  for (size_t i = 0; i < n; i++) {
    int k = ep_stat(s, loads[i].endpoint, false);
    if (k >= 0 && s->eps[k].fails > 0) total += loads[i].inflight;
  }
  return total;
}

void nt_sched_start(nt_sched_t *s) {
  char err[CP_ERRLEN];
  size_t room = nt_deliverer_room(s->dlv), w = 0, i = 0;
  int64_t mono = cp_mono_ms();
  const char *full[8];   /* endpoints found at their limit in this pass */
  size_t nfull = 0;
  int suspects = suspect_inflight(s);
  for (; i < s->nqueue; i++) {
    queued_t *q = s->queue[i];
    const ep_stat_t *e = q->stat >= 0 ? &s->eps[q->stat] : NULL;
    /* a parked endpoint's deliveries go back to Redis (any replica, after the park) */
    bool stale = mono - q->claimed_mono > s->queue_wait_ms || ep_parked(e, mono);
    /* oldest first: once nothing can start, the rest are younger and wait too */
    if (!stale && room == 0) break;
    bool go = !stale;
    for (size_t k = 0; go && k < nfull; k++) go = strcmp(full[k], q->ep) != 0;
    int limit = ep_limit(s, e, mono);
    bool suspect = e != NULL && e->fails > 0;
    bool bounded = limit > 0 || (e != NULL && e->fails > 0);
    if (go && ((bounded && nt_deliverer_ep_inflight(s->dlv, q->ep) >= limit) ||
               (suspect && suspects >= s->suspect_share))) {
      if (nfull < CP_ARRAY_LEN(full)) full[nfull++] = q->ep;
      go = false;
    }
    if (!stale && !go) {
      s->queue[w++] = q;
      continue;
    }
    dequeued(s, q);
    if (go && nt_deliverer_start(s->dlv, &q->c, err, sizeof err) == 0) {
      room--;
      if (suspect) suspects++;
    } else {
      if (go) cp_log_error("cannot start delivery", CP_KV_STR("id", q->c.id), CP_KV_STR("error", err), CP_KV_END);
      s->release(q->c.id, s->arg);   /* handed back next turn */
      nt_claimed_free(&q->c);
    }
    free(q);
  }
  if (w != i) memmove(s->queue + w, s->queue + i, (s->nqueue - i) * sizeof *s->queue);
  s->nqueue = w + (s->nqueue - i);
}

void nt_sched_enqueue(nt_sched_t *s, nt_claimed_t *batch, size_t n) {
  int64_t mono = cp_mono_ms();
  for (size_t i = 0; i < n; i++) {
    if (s->nqueue == QUEUE_MAX) {   /* cannot happen: claims are sized to the free room */
      s->release(batch[i].id, s->arg);
      nt_claimed_free(&batch[i]);
      continue;
    }
    queued_t *q = cp_xcalloc(1, sizeof *q);
    q->c = batch[i];
    memset(&batch[i], 0, sizeof batch[i]);
    nt_endpoint(q->c.url, q->ep, sizeof q->ep);
    q->claimed_mono = mono;
    q->stat = ep_stat(s, q->ep, true);
    if (q->stat >= 0) s->eps[q->stat].queued++;
    s->queue[s->nqueue++] = q;
  }
}

bool nt_sched_hungry(const nt_sched_t *s, size_t free_slots) {
  if (free_slots > 0 && s->nqueue == 0) return true;
  for (int i = 0; i < EP_STATS_MAX; i++) {
    int a = s->eps[i].ep[0] ? ep_allowance(s, &s->eps[i]) : 0;
    if (a > 0 && s->eps[i].queued < a / 2) return true;
  }
  return false;
}

size_t nt_sched_claim_loads(nt_sched_t *s, nt_ep_load_t **outp, size_t *nout) {
  const nt_ep_load_t *inflight = NULL;
  size_t nin = nt_deliverer_loads(s->dlv, &inflight), n = 0;
  nt_ep_load_t *out = cp_xcalloc(nin + EP_STATS_MAX, sizeof *out);
  *outp = out;
  size_t max = nt_deliverer_room(s->dlv);
  for (size_t i = 0; i < nin; i++) out[n++] = inflight[i];
  int64_t mono = cp_mono_ms();
  bool suspects_full = suspect_inflight(s) >= s->suspect_share;
  for (int i = 0; i < EP_STATS_MAX; i++) {
    const ep_stat_t *e = &s->eps[i];
    if (!e->ep[0]) continue;
    int extra = e->queued - ep_allowance(s, e);
    /* a failing or parked endpoint claims only up to its own limit (none once failing
     * endpoints hold their share of the slots): the rest stays in Redis */
    if (s->per_endpoint > 0 && e->fails > 0)
      extra += s->per_endpoint - (suspects_full ? 0 : ep_limit(s, e, mono));
    if (extra == 0) continue;
    size_t j = 0;
    while (j < n && strcmp(out[j].endpoint, e->ep) != 0) j++;
    if (j == n) out[n++] = (nt_ep_load_t){.endpoint = e->ep, .inflight = 0};
    out[j].inflight += extra;
    if (extra < 0) max += (size_t)-extra;
  }
  /* queued deliveries of untracked endpoints count in the queue too */
  size_t space = QUEUE_MAX - s->nqueue;
  if (max > nt_deliverer_room(s->dlv) + space) max = nt_deliverer_room(s->dlv) + space;
  *nout = n;
  return max;
}

void nt_sched_hand_back_all(nt_sched_t *s) {
  if (s->nqueue) cp_log_info("queued deliveries handed back", CP_KV_INT("deliveries", s->nqueue), CP_KV_END);
  for (size_t i = 0; i < s->nqueue; i++) {   /* claimed but never started: hand back */
    s->release(s->queue[i]->c.id, s->arg);
    nt_claimed_free(&s->queue[i]->c);
    free(s->queue[i]);
  }
  s->nqueue = 0;
}
