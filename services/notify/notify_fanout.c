/* notify_fanout.c -- record.revoked / record.expiring / record.expired to the provider,
 * the worker's subscribed employers and the worker's own webhook. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "notify.h"
#include "cp_catalogue.h"

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
  if (ev->stage >= 0 && nt_stage_days_before(ev->stage) > 0)
    bad |= json_object_set_new(data, "days_before", json_integer(nt_stage_days_before(ev->stage)));
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

/* One delivery; counts it in *created when new. */
static int add_delivery(cp_redis_t *r, const nt_record_event_t *ev, const char *recipient,
                        const char *sub_id, const char *url, int64_t now_ms, size_t *created,
                        char *err, size_t errlen) {
  char id[NT_ID_SIZE];
  nt_fanout_id(ev->type, recipient, ev->entry_index, ev->stage, id);
  char *body = fanout_body(ev, sub_id, now_ms);
  if (!body) return 0;   /* cannot happen with checked strings; nothing sensible to send */
  bool isnew = false;
  int rc = nt_delivery_create(r, id, url, body, ev->type, nz(ev->provider), now_ms, &isnew, err, errlen);
  free(body);
  if (rc == 0 && isnew) (*created)++;
  return rc;
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

/* Deliveries to every live subscription of the worker. */
static int fanout_subs(cp_redis_t *r, const nt_record_event_t *ev, int64_t now_ms, size_t *created,
                       char *err, size_t errlen) {
  char key[128], idx[24];
  snprintf(key, sizeof key, NT_KEY_SUBS_FMT, ev->worker_hex);
  snprintf(idx, sizeof idx, "%llu", (unsigned long long)ev->entry_index);
  redisReply *set = cp_redis_cmd(r, "SRANDMEMBER %s %d", key, SUBS_MAX);
  if (!set) return cp_err(err, errlen, "reading %s: %s", key, cp_redis_errstr(r));
  int rc = 0;
  for (size_t i = 0; rc == 0 && set->type == REDIS_REPLY_ARRAY && i < set->elements; i++) {
    const redisReply *m = set->element[i];
    if (m->type != REDIS_REPLY_STRING) continue;
    if (!valid_sub_id(m->str, m->len)) {   /* not a subscription id: drop it */
      redisReply *x = cp_redis_cmd(r, "SREM %s %b", key, m->str, m->len);
      if (x) freeReplyObject(x);
      continue;
    }
    char skey[128];
    snprintf(skey, sizeof skey, NT_KEY_SUB_FMT, m->str);
    redisReply *h = cp_redis_cmd(r, "HMGET %s url expires_at events entries worker", skey);
    if (!h) {
      rc = cp_err(err, errlen, "reading %s: %s", skey, cp_redis_errstr(r));
      break;
    }
    if (h->type != REDIS_REPLY_ARRAY || h->elements != 5) {
      freeReplyObject(h);
      continue;
    }
    const char *url = str_or(h->element[0], "");
    long long exp = strtoll(str_or(h->element[1], "0"), NULL, 10);
    const char *events = str_or(h->element[2], "");
    const char *entries = str_or(h->element[3], "");
    const char *worker = str_or(h->element[4], "");
    if (!url[0] || exp <= now_ms / 1000) {
      /* unsubscribed, withdrawn or expired: clean up */
      redisReply *x = cp_redis_cmd(r, "DEL %s", skey);
      if (x) freeReplyObject(x);
      x = cp_redis_cmd(r, "SREM %s %b", key, m->str, m->len);
      if (x) freeReplyObject(x);
    } else if ((worker[0] == '\0' || strcmp(worker, ev->worker_hex) == 0) &&
               (events[0] == '\0' || in_list(events, ev->type)) &&
               (entries[0] == '\0' || in_list(entries, idx))) {
      char recipient[NT_SUB_ID_MAX + 8];
      snprintf(recipient, sizeof recipient, "sub:%s", m->str);
      rc = add_delivery(r, ev, recipient, m->str, url, now_ms, created, err, errlen);
    }
    freeReplyObject(h);
  }
  freeReplyObject(set);
  return rc;
}

/* Delivery to the worker's own webhook, if they set one. */
static int fanout_worker(cp_redis_t *r, const nt_record_event_t *ev, int64_t now_ms, size_t *created,
                         char *err, size_t errlen) {
  char key[128];
  snprintf(key, sizeof key, NT_KEY_PROFILE_FMT, ev->worker_hex);
  redisReply *rep = cp_redis_cmd(r, "HGET %s webhook_url", key);
  if (!rep) return cp_err(err, errlen, "reading %s: %s", key, cp_redis_errstr(r));
  int rc = 0;
  if (rep->type == REDIS_REPLY_STRING && rep->len > 0 && strstr(rep->str, "://"))
    rc = add_delivery(r, ev, "worker", NULL, rep->str, now_ms, created, err, errlen);
  freeReplyObject(rep);
  return rc;
}

int nt_fanout(cp_redis_t *r, const struct prov_registry *providers, const nt_record_event_t *ev,
              bool skip_provider, int64_t now_ms, size_t *created, char *err, size_t errlen) {
  *created = 0;
  if (!skip_provider) {
    const prov_t *p = prov_find(providers, nz(ev->provider));
    if (p && p->webhook_url[0]) {
      char recipient[PROV_ID_MAX + 16];
      snprintf(recipient, sizeof recipient, "provider:%s", p->id);
      if (add_delivery(r, ev, recipient, NULL, p->webhook_url, now_ms, created, err, errlen) < 0) return -1;
    }
  }
  if (!ev->worker_hex || strlen(ev->worker_hex) != 2 * CP_PSEUDONYM_BYTES) return 0;
  if (fanout_subs(r, ev, now_ms, created, err, errlen) < 0) return -1;
  return fanout_worker(r, ev, now_ms, created, err, errlen);
}
