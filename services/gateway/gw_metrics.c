/* gw_metrics.c -- counters, gauges and the request latency histogram, and GET /metrics in the
 * Prometheus text exposition format (version 0.0.4). */
#include "gw_internal.h"
#include "gw_http.h"
#include "gw_metrics.h"
#include "gw_core_routes.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_keys.h"
#include "cp_outbox.h"
#include "cp_log.h"

#define GW_SERIES_MAX 1024     /* distinct name{labels} series (hash slots) */
#define GW_DESC_MAX 64         /* described metrics */
#define GW_HIST_ROUTES 64      /* routes with a latency histogram */
#define GW_NAME_MAX 64
#define GW_LABELS_MAX 160

/* Latency bucket upper bounds in seconds. */
static const double hist_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
#define GW_NBUCKETS (sizeof hist_bounds / sizeof hist_bounds[0])

/* One series. */
typedef struct {
  char name[GW_NAME_MAX];      // metric name ("" = free slot)
  char labels[GW_LABELS_MAX];  // label text without braces
  bool gauge;                  // set by gw_metric_set (value in g) rather than added (in n)
  uint64_t n;                  // counter value
  double g;                    // gauge value
} series_t;

/* HELP/TYPE of a metric. */
typedef struct {
  char name[GW_NAME_MAX];      // metric name
  char type[16];               // counter | gauge
  char help[200];              // one line
} desc_t;

/* Latency histogram of one route. */
typedef struct {
  char route[GW_NAME_MAX];              // route name ("" = free)
  uint64_t buckets[GW_NBUCKETS + 1];    // per bucket (not cumulative); last = +Inf
  uint64_t count;                       // observations
  double sum;                           // seconds
} hist_t;

struct gw_metrics {
  pthread_mutex_t lock;          // guards everything below
  series_t series[GW_SERIES_MAX]; // open-addressing hash table
  size_t nseries;                // used slots
  desc_t desc[GW_DESC_MAX];      // descriptions
  size_t ndesc;                  // used
  hist_t hist[GW_HIST_ROUTES];   // latency per route
  uint64_t dropped;              // updates lost because the table was full
};

gw_metrics_t *gw_metrics_new(void) {
  gw_metrics_t *m = cp_xcalloc(1, sizeof *m);
  pthread_mutex_init(&m->lock, NULL);
  return m;
}

void gw_metrics_destroy(gw_metrics_t **mp) {
  if (mp == NULL || *mp == NULL) return;
  pthread_mutex_destroy(&(*mp)->lock);
  free(*mp);
  *mp = NULL;
}

static uint32_t fnv(const char *a, const char *b) {
  uint32_t h = 2166136261u;
  for (; *a; a++) h = (h ^ (uint8_t)*a) * 16777619u;
  h = (h ^ '{') * 16777619u;
  for (; *b; b++) h = (h ^ (uint8_t)*b) * 16777619u;
  return h;
}

/* The slot of name{labels}, created if new; NULL when full. Lock held. */
static series_t *slot(gw_metrics_t *m, const char *name, const char *labels) {
  uint32_t h = fnv(name, labels);
  for (size_t k = 0; k < GW_SERIES_MAX; k++) {
    series_t *s = &m->series[(h + k) % GW_SERIES_MAX];
    if (s->name[0] == '\0') {
      if (m->nseries + 1 >= GW_SERIES_MAX * 3 / 4) return NULL;
      snprintf(s->name, sizeof s->name, "%s", name);
      snprintf(s->labels, sizeof s->labels, "%s", labels);
      m->nseries++;
      return s;
    }
    if (strcmp(s->name, name) == 0 && strcmp(s->labels, labels) == 0) return s;
  }
  return NULL;
}

void gw_metric_describe(gw_t *gw, const char *name, const char *type, const char *help) {
  gw_metrics_t *m = gw->metrics;
  pthread_mutex_lock(&m->lock);
  bool have = false;
  for (size_t i = 0; i < m->ndesc; i++) have = have || strcmp(m->desc[i].name, name) == 0;
  if (!have && m->ndesc < GW_DESC_MAX) {
    desc_t *d = &m->desc[m->ndesc++];
    snprintf(d->name, sizeof d->name, "%s", name);
    snprintf(d->type, sizeof d->type, "%s", type);
    snprintf(d->help, sizeof d->help, "%s", help);
  }
  pthread_mutex_unlock(&m->lock);
}

void gw_metric_add(gw_t *gw, const char *name, const char *labels, uint64_t n) {
  gw_metrics_t *m = gw->metrics;
  pthread_mutex_lock(&m->lock);
  series_t *s = slot(m, name, labels ? labels : "");
  if (s != NULL) s->n += n;
  else m->dropped++;
  pthread_mutex_unlock(&m->lock);
}

void gw_metric_set(gw_t *gw, const char *name, const char *labels, double v) {
  gw_metrics_t *m = gw->metrics;
  pthread_mutex_lock(&m->lock);
  series_t *s = slot(m, name, labels ? labels : "");
  if (s != NULL) {
    s->gauge = true;
    s->g = v;
  } else {
    m->dropped++;
  }
  pthread_mutex_unlock(&m->lock);
}

void gw_metrics_request(gw_t *gw, const char *route, int status, int64_t ms) {
  char labels[GW_LABELS_MAX];
  snprintf(labels, sizeof labels, "route=\"%s\",status=\"%d\"", route, status);
  gw_metric_add(gw, "carepass_gateway_requests_total", labels, 1);
  gw_metrics_t *m = gw->metrics;
  double sec = (double)ms / 1000.0;
  pthread_mutex_lock(&m->lock);
  for (size_t i = 0; i < GW_HIST_ROUTES; i++) {
    hist_t *h = &m->hist[i];
    if (h->route[0] == '\0') snprintf(h->route, sizeof h->route, "%s", route);
    else if (strcmp(h->route, route) != 0) continue;
    size_t b = 0;
    while (b < GW_NBUCKETS && sec > hist_bounds[b]) b++;
    h->buckets[b]++;
    h->count++;
    h->sum += sec;
    break;
  }
  pthread_mutex_unlock(&m->lock);
}

void gw_metrics_describe_core(gw_t *gw) {
  gw_metric_describe(gw, "carepass_gateway_requests_total", "counter", "HTTP requests answered, by route and status (0 = client left first)");
  gw_metric_describe(gw, "carepass_gateway_events_total", "counter", "provider events received over HTTP, by outcome of the answer");
  gw_metric_describe(gw, "carepass_gateway_verify_push_failed_total", "counter", "accepted events the verify queue would not take (intake's redrive resends them)");
  gw_metric_describe(gw, "carepass_queue_pending", "gauge", "events accepted and not yet final (ZCARD cp:pending)");
  gw_metric_describe(gw, "carepass_webhook_due", "gauge", "webhook deliveries waiting for their next attempt (ZCARD cp:nt:due)");
  gw_metric_describe(gw, "carepass_webhook_dead", "gauge", "webhook deliveries in the dead-letter list (LLEN cp:nt:dead)");
  gw_metric_describe(gw, "carepass_outbox_length", "gauge", "notifications owed and not yet stored as deliveries by notify (XLEN cp:{outbox}); alert above a tenth of CAREPASS_OUTBOX_MAX");
  gw_metric_describe(gw, "carepass_outbox_pending", "gauge", "of those, read by a notify replica and not yet acknowledged");
  gw_metric_describe(gw, "carepass_outbox_oldest_age_seconds", "gauge", "age of the oldest notification owed (0 when none); alert when it stays above 60");
  gw_metric_describe(gw, "carepass_outbox_consumers", "gauge", "notify replicas known to the outbox's consumer group");
  gw_metric_describe(gw, "carepass_gateway_redis_up", "gauge", "1 when the gateway could read Redis for this scrape");
}

/* A growing text buffer. */
typedef struct {
  char *p;      // text
  size_t n;     // length
  size_t cap;   // allocated
} buf_t;

static void bprintf(buf_t *b, const char *fmt, ...) CP_PRINTF(2, 3);
static void bprintf(buf_t *b, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    if ((size_t)k < b->cap - b->n) {
      b->n += (size_t)k;
      return;
    }
    b->cap = b->cap * 2 + (size_t)k + 1;
    b->p = realloc(b->p, b->cap);
    if (b->p == NULL) abort();
  }
}

/* Read the queue depths from Redis into gauges. */
static void scrape_redis(gw_req_t *req) {
  gw_t *gw = req->gw;
  cp_redis_t *r = gw_redis(req);
  bool up = false;
  if (r != NULL) {
    cp_redis_pipe_t *pipe = cp_redis_pipe_new();
    const char *names[] = {"carepass_queue_pending", "carepass_webhook_due", "carepass_webhook_dead"};
    cp_redis_handle_t h[3] = {cp_redis_pipe_cmd(pipe, "ZCARD %s", cp_key_pending()),
                              cp_redis_pipe_cmd(pipe, "ZCARD %s", cp_key_nt_due()),
                              cp_redis_pipe_cmd(pipe, "LLEN %s", cp_key_nt_dead())};
    if (cp_redis_pipe_exec(pipe, r) == 0) {
      up = true;
      for (int i = 0; i < 3; i++) {
        const redisReply *rep = cp_redis_pipe_reply(pipe, h[i]);
        if (rep->type == REDIS_REPLY_INTEGER) gw_metric_set(gw, names[i], "", (double)rep->integer);
      }
    } else if (cp_redis_reconnect(r) != 0) {
      /* reported by carepass_gateway_redis_up 0 */
    }
    cp_redis_pipe_destroy(&pipe);
    cp_outbox_stats_t ob;
    if (up && cp_outbox_stats(r, cp_now_ms(), &ob) == 0) {
      gw_metric_set(gw, "carepass_outbox_length", "", (double)ob.length);
      gw_metric_set(gw, "carepass_outbox_pending", "", (double)ob.pending);
      gw_metric_set(gw, "carepass_outbox_oldest_age_seconds", "", (double)ob.oldest_age_ms / 1000.0);
      gw_metric_set(gw, "carepass_outbox_consumers", "", (double)ob.consumers);
    } else {
      up = false;
    }
  }
  gw_metric_set(gw, "carepass_gateway_redis_up", "", up ? 1 : 0);
}

static const desc_t *find_desc(const gw_metrics_t *m, const char *name) {
  for (size_t i = 0; i < m->ndesc; i++)
    if (strcmp(m->desc[i].name, name) == 0) return &m->desc[i];
  return NULL;
}

static int series_cmp(const void *a, const void *b) {
  const series_t *x = *(const series_t *const *)a, *y = *(const series_t *const *)b;
  int c = strcmp(x->name, y->name);
  return c ? c : strcmp(x->labels, y->labels);
}

void gw_metrics_get(gw_req_t *req) {
  gw_t *gw = req->gw;
  scrape_redis(req);
  gw_metrics_t *m = gw->metrics;
  buf_t b = {cp_xmalloc(8192), 0, 8192};
  b.p[0] = '\0';
  pthread_mutex_lock(&m->lock);
  const series_t **v = cp_xcalloc(m->nseries + 1, sizeof *v);
  size_t nv = 0;
  for (size_t i = 0; i < GW_SERIES_MAX; i++)
    if (m->series[i].name[0] != '\0') v[nv++] = &m->series[i];
  qsort(v, nv, sizeof *v, series_cmp);
  const char *last = "";
  for (size_t i = 0; i < nv; i++) {
    const series_t *s = v[i];
    if (strcmp(s->name, last) != 0) {
      const desc_t *d = find_desc(m, s->name);
      if (d != NULL) bprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", s->name, d->help, s->name, d->type);
      else bprintf(&b, "# TYPE %s %s\n", s->name, s->gauge ? "gauge" : "counter");
      last = s->name;
    }
    if (s->labels[0]) bprintf(&b, "%s{%s} ", s->name, s->labels);
    else bprintf(&b, "%s ", s->name);
    if (s->gauge) bprintf(&b, "%.17g\n", s->g);
    else bprintf(&b, "%llu\n", (unsigned long long)s->n);
  }
  bprintf(&b, "# HELP carepass_gateway_request_duration_seconds time from request to answer, by route\n"
              "# TYPE carepass_gateway_request_duration_seconds histogram\n");
  for (size_t i = 0; i < GW_HIST_ROUTES && m->hist[i].route[0]; i++) {
    const hist_t *h = &m->hist[i];
    uint64_t cum = 0;
    for (size_t k = 0; k <= GW_NBUCKETS; k++) {
      cum += h->buckets[k];
      if (k < GW_NBUCKETS)
        bprintf(&b, "carepass_gateway_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                h->route, hist_bounds[k], (unsigned long long)cum);
      else
        bprintf(&b, "carepass_gateway_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
                h->route, (unsigned long long)cum);
    }
    bprintf(&b, "carepass_gateway_request_duration_seconds_sum{route=\"%s\"} %.9f\n", h->route, h->sum);
    bprintf(&b, "carepass_gateway_request_duration_seconds_count{route=\"%s\"} %llu\n", h->route,
            (unsigned long long)h->count);
  }
  bprintf(&b, "# HELP carepass_gateway_metrics_dropped_total metric updates lost (series table full)\n"
              "# TYPE carepass_gateway_metrics_dropped_total counter\ncarepass_gateway_metrics_dropped_total %llu\n",
          (unsigned long long)m->dropped);
  pthread_mutex_unlock(&m->lock);
  free(v);
  gw_reply_take(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.n);
  gw_reply_header(req, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
}
