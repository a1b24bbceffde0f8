/* notify_fanout.c -- record.revoked / record.expiring / record.expired to the provider,
 * the worker's subscribed employers and the worker's own webhook. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "notify_fanout.h"
#include "notify_jobs.h"
#include "notify_keys.h"
#include "notify_retry.h"
#include "notify_sign.h"
#include "cp_catalogue.h"
#include "cp_projection.h"
#include "cp_log.h"

#define SUBS_MAX 1000   /* most subscriptions one worker's fan-out reads */

static const char *nz(const char *s) { return s ? s : ""; }

/* The webhook body for one recipient. sub_id is NULL for the provider and the worker:
 * no body ever carries the worker pseudonym. malloc'd, or NULL (invalid UTF-8). */
static char *fanout_body(const nt_record_event_t *ev, const char *sub_id, int64_t now_ms) {
  char ts[32];
  nt_iso8601(now_ms, ts);
  json_t *data = json_object();
  if (!data) return NULL;
  int bad = 0;
  if (sub_id) bad |= json_object_set_new(data, "subscription_id", json_string(sub_id));
  bad |= json_object_set_new(data, "entry_index", json_integer((json_int_t)ev->entry_index));
  bad |= json_object_set_new(data, "qualification_code", json_string(nz(ev->qual)));
  bad |= json_object_set_new(data, "provider_id", json_string(nz(ev->provider)));
  bad |= json_object_set_new(data, "completion_date", json_string(nz(ev->completion_date)));
  bad |= json_object_set_new(data, "valid_until", json_string(nz(ev->valid_until)));
  if (ev->stage >= 0 && proj_exp_days_before(ev->stage) > 0)
    bad |= json_object_set_new(data, "days_before", json_integer(proj_exp_days_before(ev->stage)));
  if (strcmp(ev->type, "record.revoked") == 0)
    bad |= json_object_set_new(data, "reason_code", json_string(nz(ev->reason_code)));
  json_t *root = json_pack("{s:s, s:s, s:o}", "type", ev->type, "timestamp", ts, "data", data);
  if (!root || bad) {
    if (root) json_decref(root);
    else json_decref(data);
    return NULL;
  }
  char *out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(root);
  return out;
}

/* Is item in the comma-separated list? */
static bool in_list(const char *list, const char *item) {
  size_t n = strlen(item);
  for (const char *p = list; *p;) {
    size_t len = strcspn(p, ",");
    const char *q = p;
    size_t ql = len;
    while (ql && *q == ' ') q++, ql--;
    while (ql && q[ql - 1] == ' ') ql--;
    if (ql == n && memcmp(q, item, n) == 0) return true;
    p += len;
    if (*p == ',') p++;
  }
  return false;
}

static bool valid_sub_id(const char *s, size_t len) {
  if (len == 0 || len > NT_SUB_ID_MAX) return false;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
      return false;
  }
  return true;
}

static const char *str_or(const redisReply *e, const char *dflt) {
  return e && e->type == REDIS_REPLY_STRING ? e->str : dflt;
}

/* Create many deliveries. KEYS[1] due zset. ARGV[1] unix ms (created and due), then 8 per
 * delivery: id, url, body, type, provider, endpoint (host:port), recipient ("provider:<id>",
 * "sub:<id>", "worker": whose webhook secret signs it), the delivery's key (built by
 * cp_key_nt_delivery; an argument, so that the script has a fixed number of keys). An id that exists already is left alone (that is
 * the de-duplication). Returns one integer per delivery: 1 = created, 0 = existed. */
static const char CREATE_MANY_LUA[] =
  "local now = ARGV[1]\n"
  "local out = {}\n"
  "for b = 2, #ARGV - 7, 8 do\n"
  "  local k = ARGV[b + 7]\n"
  "  if redis.call('EXISTS', k) == 1 then\n"
  "    out[#out + 1] = 0\n"
  "  else\n"
  "    redis.call('HSET', k, 'state', 'pending', 'url', ARGV[b + 1], 'body', ARGV[b + 2],"
  " 'type', ARGV[b + 3], 'provider', ARGV[b + 4], 'attempts', 0, 'created', now,"
  " 'last_status', 0, 'ep', ARGV[b + 5], 'to', ARGV[b + 6])\n"
  "    redis.call('ZADD', KEYS[1], now, ARGV[b])\n"
  "    out[#out + 1] = 1\n"
  "  end\n"
  "end\n"
  "return out\n";

#define CREATE_PER_CALL 128   /* deliveries per script call (bounds one call's time in Redis) */

static cp_redis_script_t create_script = CP_REDIS_SCRIPT("create deliveries", 1, CREATE_MANY_LUA);

/* One delivery the plan will create. */
typedef struct {
  char id[NT_ID_SIZE];      // webhook-id
  char *url;                // target URL
  char *body;               // JSON body
  char *type;               // event type
  char *provider;           // provider id
  char *to;                 // recipient ("provider:<id>", "sub:<id>", "worker", "" = unknown)
  int tag;                  // the caller's label (statistics)
  bool created;             // after the run: new (true) or already known (false)
} plan_dlv_t;

/* One record event whose subscribers and worker webhook the plan reads. */
typedef struct {
  nt_record_event_t ev;     // the event, every string owned by the plan
  int tag;                  // the caller's label for its deliveries
  cp_redis_handle_t subs_reply;    // round 1: the SRANDMEMBER reply
  cp_redis_handle_t profile_reply; // round 1: the HGET webhook_url reply
} plan_ev_t;

/* A subscription member read in round 2. */
typedef struct {
  size_t ev;                // the event it belongs to
  const char *sub_id;       // points into the round-1 reply
  cp_redis_handle_t reply;  // round 2: its HMGET reply
} plan_sub_t;

struct nt_plan {
  plan_dlv_t *dlv;          // deliveries to create
  size_t ndlv, dlvcap;      // used / allocated
  plan_ev_t *ev;            // events to fan out
  size_t nev, evcap;        // used / allocated
  cp_redis_pipe_t *pre;     // round 1: subscription and profile reads
  cp_redis_pipe_t *subs;    // round 2: subscription hashes
  cp_redis_pipe_t *create;  // round 3: clean-ups and creates
  cp_redis_handle_t *creates; // round 3: the create calls, one per CREATE_PER_CALL deliveries
  size_t ncreates;          // entries used in creates
  int64_t now_ms;           // unix ms of the run (created, expiry test of subscriptions)
  nt_plan_tail_fn tail;     // the caller's round-3 commands after the creates (NULL = none)
  void *tail_arg;           // passed to tail
};

nt_plan_t *nt_plan_new(void) {
  nt_plan_t *p = cp_xcalloc(1, sizeof *p);
  p->pre = cp_redis_pipe_new();
  p->subs = cp_redis_pipe_new();
  p->create = cp_redis_pipe_new();
  return p;
}

static void free_event(nt_record_event_t *ev) {
  free((char *)ev->type);
  free((char *)ev->provider);
  free((char *)ev->event_id);
  free((char *)ev->qual);
  free((char *)ev->worker_hex);
  free((char *)ev->completion_date);
  free((char *)ev->valid_until);
  free((char *)ev->reason_code);
}

void nt_plan_destroy(nt_plan_t **pp) {
  nt_plan_t *p = pp ? *pp : NULL;
  if (!p) return;
  for (size_t i = 0; i < p->ndlv; i++) {
    free(p->dlv[i].url);
    free(p->dlv[i].body);
    free(p->dlv[i].type);
    free(p->dlv[i].provider);
    free(p->dlv[i].to);
  }
  for (size_t i = 0; i < p->nev; i++) free_event(&p->ev[i].ev);
  free(p->dlv);
  free(p->ev);
  free(p->creates);
  cp_redis_pipe_destroy(&p->pre);
  cp_redis_pipe_destroy(&p->subs);
  cp_redis_pipe_destroy(&p->create);
  free(p);
  *pp = NULL;
}

size_t nt_plan_delivery(nt_plan_t *p, const char *id, const char *url, const char *body,
                        const char *type, const char *provider, const char *to, int tag) {
  if (p->ndlv == p->dlvcap) {
    p->dlvcap = p->dlvcap ? 2 * p->dlvcap : 64;
    p->dlv = cp_xrealloc(p->dlv, p->dlvcap * sizeof *p->dlv);
  }
  plan_dlv_t *d = &p->dlv[p->ndlv];
  memset(d, 0, sizeof *d);
  snprintf(d->id, sizeof d->id, "%s", id);
  d->url = cp_strdup(url);
  d->body = cp_strdup(body);
  d->type = cp_strdup(nz(type));
  d->provider = cp_strdup(nz(provider));
  d->to = cp_strdup(nz(to));
  d->tag = tag;
  return p->ndlv++;
}

/* One fan-out delivery of ev to recipient (body built now). */
static void plan_fanout_delivery(nt_plan_t *p, const nt_record_event_t *ev, const char *recipient,
                                 const char *sub_id, const char *url, int64_t now_ms, int tag) {
  char id[NT_ID_SIZE];
  nt_fanout_id(ev->type, recipient, ev->entry_index, ev->stage, id);
  char *body = fanout_body(ev, sub_id, now_ms);
  if (!body) return;   /* cannot happen with checked strings; nothing sensible to send */
  nt_plan_delivery(p, id, url, body, ev->type, nz(ev->provider), recipient, tag);
  free(body);
}

void nt_plan_event(nt_plan_t *p, const struct prov_registry *providers, const nt_record_event_t *ev,
                   bool skip_provider, int64_t now_ms, int tag) {
  if (!skip_provider) {
    const prov_t *pr = prov_find(providers, nz(ev->provider));
    if (pr && pr->webhook_url[0]) {
      char recipient[PROV_ID_MAX + 16];
      snprintf(recipient, sizeof recipient, "provider:%s", pr->id);
      plan_fanout_delivery(p, ev, recipient, NULL, pr->webhook_url, now_ms, tag);
    }
  }
  if (!ev->worker_hex || strlen(ev->worker_hex) != 2 * CP_PSEUDONYM_BYTES) return;
  if (p->nev == p->evcap) {
    p->evcap = p->evcap ? 2 * p->evcap : 16;
    p->ev = cp_xrealloc(p->ev, p->evcap * sizeof *p->ev);
  }
  plan_ev_t *e = &p->ev[p->nev++];
  memset(e, 0, sizeof *e);
  e->tag = tag;
  e->ev = (nt_record_event_t){
      .type = cp_strdup(nz(ev->type)), .provider = cp_strdup(nz(ev->provider)),
      .event_id = cp_strdup(nz(ev->event_id)), .qual = cp_strdup(nz(ev->qual)),
      .worker_hex = cp_strdup(ev->worker_hex), .completion_date = cp_strdup(nz(ev->completion_date)),
      .valid_until = cp_strdup(nz(ev->valid_until)), .reason_code = cp_strdup(nz(ev->reason_code)),
      .entry_index = ev->entry_index, .stage = ev->stage};
}

/* Round 1 (after the caller's commands): every event's subscription set and the
 * worker's own webhook. */
static void queue_reads(nt_plan_t *p) {
  for (size_t i = 0; i < p->nev; i++) {
    plan_ev_t *e = &p->ev[i];
    cp_key_t key;
    e->subs_reply = cp_redis_pipe_start(p->pre, NULL);
    cp_redis_pipe_arg(p->pre, "SRANDMEMBER");
    cp_redis_pipe_arg(p->pre, cp_key_w_subs(&key, e->ev.worker_hex));
    cp_redis_pipe_argf(p->pre, "%d", SUBS_MAX);
    e->profile_reply = cp_redis_pipe_start(p->pre, NULL);
    cp_redis_pipe_arg(p->pre, "HGET");
    cp_redis_pipe_arg(p->pre, cp_key_w_profile(&key, e->ev.worker_hex));
    cp_redis_pipe_arg(p->pre, "webhook_url");
  }
}

static void queue_srem(cp_redis_pipe_t *pipe, const char *worker_hex, const char *member, size_t len) {
  cp_key_t key;
  (void)cp_redis_pipe_start(pipe, NULL);
  cp_redis_pipe_arg(pipe, "SREM");
  cp_redis_pipe_arg(pipe, cp_key_w_subs(&key, worker_hex));
  cp_redis_pipe_argn(pipe, member, len);
}

/* Round 2: the hash of every subscription member (malformed members are removed). */
static plan_sub_t *queue_subs(nt_plan_t *p, size_t *nsubs) {
  size_t n = 0, cap = 0;
  plan_sub_t *subs = NULL;
  for (size_t i = 0; i < p->nev; i++) {
    const plan_ev_t *e = &p->ev[i];
    const redisReply *set = cp_redis_pipe_reply(p->pre, e->subs_reply);
    if (!set || set->type != REDIS_REPLY_ARRAY) {
      if (set && set->type == REDIS_REPLY_ERROR)
        cp_log_warn("subscriptions of a worker unreadable; skipped", CP_KV_STR("error", set->str), CP_KV_END);
      continue;
    }
    for (size_t j = 0; j < set->elements; j++) {
      const redisReply *m = set->element[j];
      if (m->type != REDIS_REPLY_STRING) continue;
      if (!valid_sub_id(m->str, m->len)) {   /* not a subscription id: drop it */
        queue_srem(p->subs, e->ev.worker_hex, m->str, m->len);
        continue;
      }
      if (n == cap) {
        cap = cap ? 2 * cap : 64;
        subs = cp_xrealloc(subs, cap * sizeof *subs);
      }
      subs[n].ev = i;
      subs[n].sub_id = m->str;
      cp_key_t key;
      subs[n].reply = cp_redis_pipe_start(p->subs, NULL);
      cp_redis_pipe_arg(p->subs, "HMGET");
      cp_redis_pipe_arg(p->subs, cp_key_sub(&key, m->str));
      cp_redis_pipe_arg(p->subs, "url");
      cp_redis_pipe_arg(p->subs, "expires_at");
      cp_redis_pipe_arg(p->subs, "events");
      cp_redis_pipe_arg(p->subs, "entries");
      cp_redis_pipe_arg(p->subs, "worker");
      n++;
    }
  }
  *nsubs = n;
  return subs;
}

/* Round 3 part 1: deliveries to live subscriptions and worker webhooks; clean-up of
 * dead subscriptions. */
static void plan_recipients(nt_plan_t *p, const plan_sub_t *subs, size_t nsubs) {
  for (size_t k = 0; k < nsubs; k++) {
    const plan_ev_t *e = &p->ev[subs[k].ev];
    const nt_record_event_t *ev = &e->ev;
    const redisReply *h = cp_redis_pipe_reply(p->subs, subs[k].reply);
    if (!h || h->type != REDIS_REPLY_ARRAY || h->elements != 5) {
      if (h && h->type == REDIS_REPLY_ERROR)
        cp_log_warn("subscription unreadable; skipped", CP_KV_STR("subscription", subs[k].sub_id),
                    CP_KV_STR("error", h->str), CP_KV_END);
      continue;
    }
    const char *url = str_or(h->element[0], "");
    long long exp = strtoll(str_or(h->element[1], "0"), NULL, 10);
    const char *events = str_or(h->element[2], "");
    const char *entries = str_or(h->element[3], "");
    const char *worker = str_or(h->element[4], "");
    char idx[24];
    snprintf(idx, sizeof idx, "%llu", (unsigned long long)ev->entry_index);
    if (!url[0] || exp <= p->now_ms / 1000) {
      /* unsubscribed, withdrawn or expired: clean up */
      cp_key_t key;
      (void)cp_redis_pipe_start(p->create, NULL);
      cp_redis_pipe_arg(p->create, "DEL");
      cp_redis_pipe_arg(p->create, cp_key_sub(&key, subs[k].sub_id));
      queue_srem(p->create, ev->worker_hex, subs[k].sub_id, strlen(subs[k].sub_id));
    } else if ((worker[0] == '\0' || strcmp(worker, ev->worker_hex) == 0) &&
               (events[0] == '\0' || in_list(events, ev->type)) &&
               (entries[0] == '\0' || in_list(entries, idx))) {
      char recipient[NT_SUB_ID_MAX + 8];
      snprintf(recipient, sizeof recipient, "sub:%s", subs[k].sub_id);
      plan_fanout_delivery(p, ev, recipient, subs[k].sub_id, url, p->now_ms, e->tag);
    }
  }
  for (size_t i = 0; i < p->nev; i++) {
    const plan_ev_t *e = &p->ev[i];
    const redisReply *rep = cp_redis_pipe_reply(p->pre, e->profile_reply);
    if (rep && rep->type == REDIS_REPLY_STRING && rep->len > 0 && strstr(rep->str, "://"))
      plan_fanout_delivery(p, &e->ev, "worker", NULL, rep->str, p->now_ms, e->tag);
  }
}

/* Round 3 part 2: the creates, CREATE_PER_CALL deliveries per script call (p->creates). */
static void queue_creates(nt_plan_t *p) {
  p->creates = cp_xcalloc(p->ndlv / CREATE_PER_CALL + 1, sizeof *p->creates);
  for (size_t i = 0; i < p->ndlv; i += CREATE_PER_CALL) {
    size_t m = p->ndlv - i < CREATE_PER_CALL ? p->ndlv - i : CREATE_PER_CALL;
    p->creates[p->ncreates++] = cp_redis_pipe_start(p->create, &create_script);
    cp_redis_pipe_arg(p->create, cp_key_nt_due());
    cp_redis_pipe_argf(p->create, "%lld", (long long)p->now_ms);
    for (size_t j = 0; j < m; j++) {
      const plan_dlv_t *d = &p->dlv[i + j];
      char ep[300];
      nt_endpoint(d->url, ep, sizeof ep);
      cp_redis_pipe_arg(p->create, d->id);
      cp_redis_pipe_arg(p->create, d->url);
      cp_redis_pipe_arg(p->create, d->body);
      cp_redis_pipe_arg(p->create, d->type);
      cp_redis_pipe_arg(p->create, d->provider);
      cp_redis_pipe_arg(p->create, ep);
      cp_redis_pipe_arg(p->create, d->to);
      cp_key_t key;
      cp_redis_pipe_arg(p->create, cp_key_nt_delivery(&key, d->id));
    }
  }
}

/* Run one round; -1 with err when the connection failed. */
static int run_round(cp_redis_pipe_t *pipe, cp_redis_t *r, const char *what, char *err, size_t errlen) {
  if (cp_redis_pipe_exec(pipe, r) < 0) return cp_err(err, errlen, "%s: %s", what, cp_redis_errstr(r));
  return 0;
}

void nt_plan_set_tail(nt_plan_t *p, nt_plan_tail_fn fn, void *arg) {
  p->tail = fn;
  p->tail_arg = arg;
}

int nt_plan_run(nt_plan_t *p, cp_redis_t *r, int64_t now_ms, char *err, size_t errlen) {
  p->now_ms = now_ms;
  /* The caller's round-1 commands may already be queued; reads go after them. */
  queue_reads(p);
  if (run_round(p->pre, r, "reading subscriptions", err, errlen) < 0) return -1;
  size_t nsubs = 0;
  plan_sub_t *subs = queue_subs(p, &nsubs);
  int rc = run_round(p->subs, r, "reading subscriptions", err, errlen);
  if (rc == 0) {
    assert(cp_redis_pipe_count(p->create) == 0);
    (void)cp_redis_pipe_tx_begin(p->create);
    plan_recipients(p, subs, nsubs);
    queue_creates(p);
    if (p->tail != NULL) p->tail(p->create, p->tail_arg);
    (void)cp_redis_pipe_tx_end(p->create);
    rc = run_round(p->create, r, "storing deliveries", err, errlen);
    if (rc == 0 && cp_redis_pipe_check(p->create, "storing deliveries", err, errlen) != 0) rc = -1;
    for (size_t c = 0, i = 0; rc == 0 && c < p->ncreates; c++) {
      const redisReply *rep = cp_redis_pipe_reply(p->create, p->creates[c]);
      if (rep && rep->type == REDIS_REPLY_ERROR) {
        rc = cp_err(err, errlen, "storing deliveries: %s", rep->str);
        break;
      }
      size_t m = p->ndlv - i < CREATE_PER_CALL ? p->ndlv - i : CREATE_PER_CALL;
      if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != m) {
        rc = cp_err(err, errlen, "storing deliveries: unexpected reply");
        break;
      }
      for (size_t j = 0; j < m; j++, i++)
        p->dlv[i].created = rep->element[j]->type == REDIS_REPLY_INTEGER && rep->element[j]->integer == 1;
    }
  }
  free(subs);   /* sub_id pointers went into the pipes as copies */
  return rc;
}

size_t nt_plan_size(const nt_plan_t *p) { return p->ndlv; }

bool nt_plan_created(const nt_plan_t *p, size_t i) { return i < p->ndlv && p->dlv[i].created; }

size_t nt_plan_count_created(const nt_plan_t *p, int tag) {
  size_t n = 0;
  for (size_t i = 0; i < p->ndlv; i++)
    if (p->dlv[i].created && (tag < 0 || p->dlv[i].tag == tag)) n++;
  return n;
}

int nt_fanout(cp_redis_t *r, const struct prov_registry *providers, const nt_record_event_t *ev,
              bool skip_provider, int64_t now_ms, size_t *created, char *err, size_t errlen) {
  *created = 0;
  nt_plan_t *p = nt_plan_new();
  nt_plan_event(p, providers, ev, skip_provider, now_ms, 0);
  int rc = nt_plan_run(p, r, now_ms, err, errlen);
  if (rc == 0) *created = nt_plan_count_created(p, -1);
  nt_plan_destroy(&p);
  return rc;
}

int nt_delivery_create(cp_redis_t *r, const char *id, const char *url, const char *body,
                       const char *type, const char *provider, int64_t now_ms,
                       bool *created, char *err, size_t errlen) {
  *created = false;
  nt_plan_t *p = nt_plan_new();
  char to[PROV_ID_MAX + 16];
  snprintf(to, sizeof to, "provider:%s", nz(provider));
  size_t i = nt_plan_delivery(p, id, url, body, type, provider, to, 0);
  int rc = nt_plan_run(p, r, now_ms, err, errlen);
  if (rc == 0) *created = nt_plan_created(p, i);
  nt_plan_destroy(&p);
  return rc;
}
