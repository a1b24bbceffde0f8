/* gw_subscribe.c -- employers subscribe a webhook to a worker they checked (only while the share code
 * allows it), in the Redis format notify reads (services/notify/notify_keys.h).
 *
 * POST /v1/subscriptions {"share_code", "date_of_birth", "url": "https://..." (<= 2048),
 *                         "employer": "label" (<= 200), "events": ["record.revoked", "record.expiring",
 *                         "record.expired"] (optional, default all three)}
 *   -> 201 {"id": "sub_<32 hex>", "secret": "whsec_<base64 of 32 random bytes>", "expires_at", "expires",
 *      "events": [...]}: the subscription ends with the share code (or when the worker withdraws the
 *      code). The secret keys the "v1," HMAC-SHA256 signature of every webhook of the subscription
 *      (Standard Webhooks); it is shown in this reply only, and stored in the subscription's hash.
 *   -> 200, the same fields without "secret", with "existing": true and a "message" saying how to get
 *      a new secret, when this URL already has a live subscription made with this share code (one per
 *      URL per code: a retry never makes a second).
 * DELETE /v1/subscriptions/<id> -> 200 {"deleted": id}; 404 NOT_FOUND. The id of an anonymous
 *   subscription is a 128-bit random capability: whoever holds it may unsubscribe.
 *
 * Owned subscriptions. POST /v1/subscriptions with an employer credential (Bearer cpe_..., optional:
 * GW_AUTH_EMPLOYER_OPT) records the employer's id in the subscription ("employer_id") and in the
 * employer's set cp:emp:{id}:subs (at most GW_SUBS_PER_EMPLOYER_MAX live ones: 409
 * SUBSCRIPTION_LIMIT); its label is the registered name (a self-declared "employer" that differs is
 * 400 INVALID_FIELD). GET /v1/subscriptions (employer credential required) lists that employer's
 * live subscriptions: {"subscriptions": [{"id", "events", "expires_at", "expires", "url",
 * "share_code_id"}]} -- never a share code, a date of birth, a worker or a secret. DELETE and POST
 * .../secret of an owned subscription need its owner's credential, and a credential reaches only
 * its own: anyone else (another employer, or no credential) gets the 404 NOT_FOUND of an unknown
 * id, so an id tells nothing about whose it is. A URL that already has a subscription under the
 * code made by someone else is 409 SUBSCRIPTION_URL_TAKEN (its id is not shown).
 * POST /v1/subscriptions/<id>/secret -> 200 {"id", "secret": "whsec_...", "previous_valid_until"}: a new
 *   secret, shown once; the one it replaces still signs (a second "v1," signature) until
 *   previous_valid_until (ISO-8601 UTC; WEBHOOK_SECRET_OVERLAP_S from now; null when the subscription
 *   had no secret). A second rotation within the overlap drops the oldest. 404 NOT_FOUND when no live
 *   subscription has that id (unknown, deleted or expired). The id is the capability, as for DELETE.
 * Errors: those of gw_share_open.c and gw_auth.c, 403 SUBSCRIPTIONS_NOT_ALLOWED, 400 INVALID_FIELD
 * (events, a label other than the registered name), 400 URL_REFUSED (common/url_check.c), 409
 * SUBSCRIPTION_LIMIT (GATEWAY_SUBS_PER_CODE live ones made with this code, or GATEWAY_SUBS_PER_WORKER
 * about this worker, or GW_SUBS_PER_EMPLOYER_MAX of this employer), 409 SUBSCRIPTION_URL_TAKEN, 503
 * UNAVAILABLE. */
#include "gw_share.h"
#include "gw_http.h"
#include "gw_subscribe_routes.h"

#include <assert.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sodium.h>

#include "cp_keys.h"
#include "cp_log.h"
#include "cp_url_check.h"
#include "cp_whsec.h"

#define URL_MAX 2048
#define EMPLOYER_MAX 200
#define SUB_ID_MAX 64

static const char *const EVENTS[] = {"record.revoked", "record.expiring", "record.expired"};

/* Who a request acts as for subscriptions: the authenticated employer's id, "" when anonymous. The
 * one rule of ownership: a subscription is reached only by a request whose owner is its
 * "employer_id" ("" for an anonymous subscription). */
static const char *owner_of(const gw_req_t *req) { return req->employer != NULL ? req->employer->id : ""; }
static bool owns(const gw_req_t *req, const redisReply *employer_id) {
  const char *had = employer_id != NULL && employer_id->type == REDIS_REPLY_STRING ? employer_id->str : "";
  return strcmp(had, owner_of(req)) == 0;
}

/* The events list as "a,b,c"; -1 = replied. */
static int read_events(gw_req_t *req, json_t *body, char *out, size_t outlen, json_t **list) {
  json_t *ev = json_object_get(body, "events");
  bool want[3] = {false, false, false};
  if (ev == NULL || json_is_null(ev)) {
    want[0] = want[1] = want[2] = true;
  } else {
    size_t i;
    json_t *v;
    if (!json_is_array(ev) || json_array_size(ev) == 0 || json_array_size(ev) > 8) {
      gw_reply_error(req, 400, GW_E_INVALID_FIELD, "events must be a list of record.revoked, record.expiring, record.expired");
      return -1;
    }
    json_array_foreach(ev, i, v) {
      size_t k = 0;
      while (k < 3 && !(json_is_string(v) && strcmp(json_string_value(v), EVENTS[k]) == 0)) k++;
      if (k == 3) {
        gw_reply_error(req, 400, GW_E_INVALID_FIELD,
                       "events[%zu] must be one of record.revoked, record.expiring, record.expired", i);
        return -1;
      }
      want[k] = true;
    }
  }
  out[0] = '\0';
  *list = json_array();
  for (size_t k = 0; k < 3; k++) {
    if (!want[k]) continue;
    size_t used = strlen(out);
    snprintf(out + used, outlen - used, "%s%s", used ? "," : "", EVENTS[k]);
    json_array_append_new(*list, json_string(EVENTS[k]));
  }
  return 0;
}

/* ---- making one subscription: bounded per code and per worker, one per URL per code ----------
 *
 * 1. the code's script (its own hash slot): refused if the code is gone, the URL already has a
 *    live subscription under this code (that one is answered again, 200), or the code has
 *    GATEWAY_SUBS_PER_CODE; else the id is added to the code's set and URL map;
 * 2. the subscription hash is written;
 * 3. the worker's script (the worker's slot): refused at GATEWAY_SUBS_PER_WORKER, else the id is
 *    added to the worker's set (the one notify reads). Ids of subscriptions that have expired stay
 *    in that set until notify prunes them, so at the limit the set is pruned here first (only ids
 *    whose hash is gone: step 2 comes before step 3, so a subscription being made is never
 *    pruned) and the step tried once more;
 * 4. the code is checked again (a withdrawal during 1-3 may have missed the new hash): gone = undo.
 * A refusal after step 1 undoes what was done. */
#define CODE_RESERVE_LUA \
  "if redis.call('EXISTS', KEYS[1]) == 0 then return {'gone'} end\n" \
  "local old = redis.call('HGET', KEYS[3], ARGV[2])\n" \
  "if old and redis.call('SISMEMBER', KEYS[2], old) == 1 then return {'dup', old} end\n" \
  "if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[3]) then return {'full'} end\n" \
  "redis.call('SADD', KEYS[2], ARGV[1])\n" \
  "redis.call('HSET', KEYS[3], ARGV[2], ARGV[1])\n" \
  "redis.call('EXPIREAT', KEYS[2], ARGV[4])\n" \
  "redis.call('EXPIREAT', KEYS[3], ARGV[4])\n" \
  "return {'ok'}\n"
#define WORKER_RESERVE_LUA \
  "if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end\n" \
  "redis.call('SADD', KEYS[1], ARGV[1])\n" \
  "return 1\n"
/* The employer's set (KEYS[1]): refused at ARGV[2]; else the id is added and the set lives at least
 * until ARGV[3] (the latest end of its subscriptions). */
#define EMPLOYER_RESERVE_LUA \
  "if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end\n" \
  "redis.call('SADD', KEYS[1], ARGV[1])\n" \
  "if redis.call('EXPIRETIME', KEYS[1]) < tonumber(ARGV[3]) then redis.call('EXPIREAT', KEYS[1], ARGV[3]) end\n" \
  "return 1\n"
static cp_redis_script_t employer_reserve_script =
    CP_REDIS_SCRIPT("reserve a subscription of an employer", 1, EMPLOYER_RESERVE_LUA);
static cp_redis_script_t code_reserve_script = CP_REDIS_SCRIPT("reserve a subscription on a share code", 3, CODE_RESERVE_LUA);
static cp_redis_script_t worker_reserve_script = CP_REDIS_SCRIPT("reserve a subscription on a worker", 1, WORKER_RESERVE_LUA);

/* Step 1: "ok", "gone", "full", "dup" (*dup = the existing id), or NULL (Redis failed). */
static const char *code_reserve(cp_redis_t *r, const gw_sc_t *sc, const char *id, const char *url, int cap,
                                long long expire_at, char *dup, size_t duplen) {
  cp_key_t k1, k2, k3;
  char scap[16], sexp[24];
  snprintf(scap, sizeof scap, "%d", cap);
  snprintf(sexp, sizeof sexp, "%lld", expire_at);
  const char *argv[] = {cp_key_scid(&k1, sc->id), cp_key_scid_subs(&k2, sc->id), cp_key_scid_sub_urls(&k3, sc->id),
                        id, url, scap, sexp};
  redisReply *rep = cp_redis_eval(r, &code_reserve_script, 7, argv, NULL);
  const char *out = NULL;
  if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 &&
      rep->element[0]->type == REDIS_REPLY_STRING) {
    const char *v = rep->element[0]->str;
    out = strcmp(v, "ok") == 0 ? "ok" : strcmp(v, "gone") == 0 ? "gone" : strcmp(v, "full") == 0 ? "full" : NULL;
    if (strcmp(v, "dup") == 0 && rep->elements == 2 && rep->element[1]->type == REDIS_REPLY_STRING) {
      snprintf(dup, duplen, "%s", rep->element[1]->str);
      out = "dup";
    }
  }
  if (rep != NULL) freeReplyObject(rep);
  return out;
}

/* Step 3: 1 reserved, 0 at the limit, -1 Redis failed. */
static int worker_reserve(cp_redis_t *r, const char *worker, const char *id, int cap) {
  cp_key_t k;
  char scap[16];
  snprintf(scap, sizeof scap, "%d", cap);
  const char *argv[] = {cp_key_w_subs(&k, worker), id, scap};
  redisReply *rep = cp_redis_eval(r, &worker_reserve_script, 3, argv, NULL);
  int rc = rep != NULL && rep->type == REDIS_REPLY_INTEGER ? (int)rep->integer : -1;
  if (rep != NULL) freeReplyObject(rep);
  return rc;
}

/* Step 3b, an owned subscription: 1 reserved, 0 at the limit, -1 Redis failed. */
static int employer_reserve(cp_redis_t *r, const char *employer, const char *id, long long until) {
  cp_key_t k;
  char scap[16], suntil[24];
  snprintf(scap, sizeof scap, "%d", GW_SUBS_PER_EMPLOYER_MAX);
  snprintf(suntil, sizeof suntil, "%lld", until);
  const char *argv[] = {cp_key_emp_subs(&k, employer), id, scap, suntil};
  redisReply *rep = cp_redis_eval(r, &employer_reserve_script, 4, argv, NULL);
  int rc = rep != NULL && rep->type == REDIS_REPLY_INTEGER ? (int)rep->integer : -1;
  if (rep != NULL) freeReplyObject(rep);
  return rc;
}

/* Remove from a set of subscription ids (a worker's or an employer's) the ids whose subscription
 * hash is gone (expired or deleted). */
static void set_prune(cp_redis_t *r, const char *setkey) {
  cp_key_t k;
  redisReply *m = cp_redis_cmd(r, "SMEMBERS %s", setkey);
  if (m == NULL || m->type != REDIS_REPLY_ARRAY || m->elements == 0) {
    if (m != NULL) freeReplyObject(m);
    return;
  }
  cp_redis_pipe_t *p = cp_redis_pipe_new();
  cp_redis_handle_t *h = cp_xcalloc(m->elements, sizeof *h);
  for (size_t i = 0; i < m->elements; i++) h[i] = cp_redis_pipe_cmd(p, "EXISTS %s", cp_key_sub(&k, m->element[i]->str));
  if (cp_redis_pipe_exec(p, r) == 0) {
    cp_redis_pipe_t *del = cp_redis_pipe_new();
    size_t n = 0;
    for (size_t i = 0; i < m->elements; i++) {
      const redisReply *e = cp_redis_pipe_reply(p, h[i]);
      if (e != NULL && e->type == REDIS_REPLY_INTEGER && e->integer == 0) {
        cp_redis_pipe_cmd(del, "SREM %s %s", setkey, m->element[i]->str);
        n++;
      }
    }
    if (n > 0 && cp_redis_pipe_exec(del, r) != 0) cp_log_warn("subscription prune failed", CP_KV_END);
    cp_redis_pipe_destroy(&del);
  }
  free(h);
  cp_redis_pipe_destroy(&p);
  freeReplyObject(m);
}

/* Undo steps 1-3 for id (best effort: what is left expires with the code). */
static void undo(cp_redis_t *r, const gw_sc_t *sc, const char *id, const char *url, bool in_worker_set,
                 const char *employer) {
  cp_key_t k;
  cp_redis_pipe_t *p = cp_redis_pipe_new();
  if (employer[0] != '\0') cp_redis_pipe_cmd(p, "SREM %s %s", cp_key_emp_subs(&k, employer), id);
  cp_redis_pipe_cmd(p, "DEL %s", cp_key_sub(&k, id));
  cp_redis_pipe_cmd(p, "SREM %s %s", cp_key_scid_subs(&k, sc->id), id);
  cp_redis_pipe_cmd(p, "HDEL %s %s", cp_key_scid_sub_urls(&k, sc->id), url);
  if (in_worker_set) cp_redis_pipe_cmd(p, "SREM %s %s", cp_key_w_subs(&k, sc->worker), id);
  if (cp_redis_pipe_exec(p, r) != 0) cp_log_warn("subscription undo failed", CP_KV_STR("id", id), CP_KV_END);
  cp_redis_pipe_destroy(&p);
}

static void iso_utc(long long unix_s, char out[32]) {
  time_t t = (time_t)unix_s;
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* secret: the new subscription's (201), or NULL for the existing one (200). */
static void reply_subscription(gw_req_t *req, int status, const char *id, const char *secret, long long expires,
                               json_t *events, bool existing) {
  char exp_at[32];
  iso_utc(expires, exp_at);
  json_t *o = json_pack("{s:s,s:s,s:I,s:O}", "id", id, "expires_at", exp_at, "expires", (json_int_t)expires,
                        "events", events);
  if (o != NULL && secret != NULL) json_object_set_new(o, "secret", json_string(secret));
  if (existing && o != NULL) {
    json_object_set_new(o, "existing", json_true());
    json_object_set_new(o, "message",
                        json_string("this URL already has this subscription; its webhook secret was shown only "
                                    "when it was made: POST /v1/subscriptions/<id>/secret makes a new one"));
  }
  gw_reply_json(req, status, o);
  if (secret != NULL) gw_reply_header(req, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
}

/* The subscription already made for this URL under this code, answered again (200, "existing"). */
static void reply_existing(gw_req_t *req, cp_redis_t *r, const char *id) {
  cp_key_t k;
  redisReply *h = cp_redis_cmd(r, "HMGET %s expires_at events employer_id", cp_key_sub(&k, id));
  if (h == NULL || h->type != REDIS_REPLY_ARRAY || h->elements != 3 || h->element[0]->type != REDIS_REPLY_STRING ||
      h->element[1]->type != REDIS_REPLY_STRING) {
    if (h != NULL) freeReplyObject(h);
    gw_reply_unavailable(req, "the subscription store");
    return;
  }
  if (!owns(req, h->element[2])) { /* someone else's: neither its id nor whose it is is shown */
    freeReplyObject(h);
    gw_reply_error(req, 409, GW_E_SUBS_URL_TAKEN,
                   "this URL already has a subscription made with this share code by someone else; use another URL");
    return;
  }
  json_t *events = json_array();
  char evs[128];
  snprintf(evs, sizeof evs, "%s", h->element[1]->str);
  for (char *save = NULL, *t = strtok_r(evs, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save))
    json_array_append_new(events, json_string(t));
  reply_subscription(req, 200, id, NULL, strtoll(h->element[0]->str, NULL, 10), events, true);
  json_decref(events);
  freeReplyObject(h);
}

static void make_subscription(gw_req_t *req, cp_redis_t *r, const gw_sc_t *sc, const char *url,
                              const char *employer, const char *evs, json_t *events) {
  const gw_config_t *cfg = &req->gw->cfg;
  const char *owner = owner_of(req);
  char id[SUB_ID_MAX], sexp[24], snow[24], dup[SUB_ID_MAX] = "";
  gw_random_id("sub_", 16, id, sizeof id);
  long long until = (long long)sc->expires + 86400;
  const char *got = code_reserve(r, sc, id, url, cfg->subs_per_code, until, dup, sizeof dup);
  if (got == NULL) {
    gw_reply_unavailable(req, "the subscription store");
    return;
  }
  if (strcmp(got, "gone") == 0) {
    gw_reply_error(req, 404, GW_E_SHARE_CODE_NOT_FOUND, "the share code was withdrawn");
    return;
  }
  if (strcmp(got, "dup") == 0) {
    reply_existing(req, r, dup);
    return;
  }
  if (strcmp(got, "full") == 0) {
    gw_reply_error(req, 409, GW_E_SUBS_LIMIT,
                   "this share code already has %d subscriptions, the most allowed; delete one you no longer "
                   "need (DELETE /v1/subscriptions/<id>) or send several events to one URL",
                   cfg->subs_per_code);
    return;
  }
  cp_key_t k;
  char secret[CP_WHSEC_SIZE];
  const char *key = cp_key_sub(&k, id);
  snprintf(sexp, sizeof sexp, "%lld", (long long)sc->expires);
  snprintf(snow, sizeof snow, "%lld", (long long)time(NULL));
  cp_whsec_new(secret);
  cp_redis_pipe_t *pipe = cp_redis_pipe_new();
  cp_redis_pipe_cmd(pipe,
                    "HSET %s url %s worker %s employer %s share_code %s expires_at %s events %s entries %s created %s "
                    "secret %s employer_id %s",
                    key, url, sc->worker, employer, sc->id, sexp, evs, sc->scope, snow, secret, owner);
  cp_redis_pipe_cmd(pipe, "EXPIREAT %s %lld", key, until);
  bool ok = cp_redis_pipe_exec(pipe, r) == 0 && cp_redis_pipe_check(pipe, "subscription", NULL, 0) == 0;
  cp_redis_pipe_destroy(&pipe);
  int w = ok ? worker_reserve(r, sc->worker, id, cfg->subs_per_worker) : -1;
  if (w == 0) {
    set_prune(r, cp_key_w_subs(&k, sc->worker));
    w = worker_reserve(r, sc->worker, id, cfg->subs_per_worker);
  }
  if (w != 1) {
    sodium_memzero(secret, sizeof secret);
    undo(r, sc, id, url, false, "");
    if (w == 0)
      gw_reply_error(req, 409, GW_E_SUBS_LIMIT,
                     "this worker already has %d subscriptions, the most allowed; delete one you no longer need",
                     cfg->subs_per_worker);
    else
      gw_reply_unavailable(req, "the subscription store");
    return;
  }
  int e = owner[0] != '\0' ? employer_reserve(r, owner, id, until) : 1;
  if (e == 0) {
    set_prune(r, cp_key_emp_subs(&k, owner));
    e = employer_reserve(r, owner, id, until);
  }
  if (e != 1) {
    sodium_memzero(secret, sizeof secret);
    undo(r, sc, id, url, true, "");
    if (e == 0)
      gw_reply_error(req, 409, GW_E_SUBS_LIMIT,
                     "your employer account already has %d live subscriptions, the most allowed; delete one you no "
                     "longer need (GET /v1/subscriptions lists them)",
                     GW_SUBS_PER_EMPLOYER_MAX);
    else
      gw_reply_unavailable(req, "the subscription store");
    return;
  }
  /* the code may have been withdrawn meanwhile: then undo (withdraw deletes what it saw) */
  redisReply *alive = cp_redis_cmd(r, "EXISTS %s", cp_key_scid(&k, sc->id));
  bool live = alive != NULL && alive->type == REDIS_REPLY_INTEGER && alive->integer == 1;
  bool answered = alive != NULL && alive->type == REDIS_REPLY_INTEGER;
  if (alive != NULL) freeReplyObject(alive);
  if (!live) {
    sodium_memzero(secret, sizeof secret);
    undo(r, sc, id, url, true, owner);
    if (answered) gw_reply_error(req, 404, GW_E_SHARE_CODE_NOT_FOUND, "the share code was withdrawn");
    else gw_reply_unavailable(req, "the subscription store");
    return;
  }
  cp_log_info("subscription created", CP_KV_STR("id", id), CP_KV_STR("share_code_id", sc->id),
              CP_KV_STR("employer_id", owner), CP_KV_END);
  reply_subscription(req, 201, id, secret, (long long)sc->expires, events, false);
  sodium_memzero(secret, sizeof secret);
}

void gw_subscribe_post(gw_req_t *req) {
  json_t *body = gw_body_json(req, JSON_OBJECT), *events = NULL;
  if (body == NULL) return;
  const char *url = NULL, *employer = "";
  char evs[128];
  gw_sc_t sc;
  if (gw_json_str(req, body, "url", true, URL_MAX, &url) != 0 ||
      gw_employer_label(req, body, EMPLOYER_MAX, &employer) != 0) /* a registered employer: its registered name */
    goto out;
  cp_url_t where;
  char why[300];
  if (cp_url_check(url, cp_url_allow_config(), &where, why, sizeof why) != 0) {
    gw_reply_error(req, 400, GW_E_URL_REFUSED, "url: %s", why);
    goto out;
  }
  if (read_events(req, body, evs, sizeof evs, &events) != 0) goto out;
  if (gw_sc_open(req, body, &sc) != 0) goto out;
  if (!sc.subs) {
    gw_reply_error(req, 403, GW_E_SUBS_NOT_ALLOWED,
                   "the worker did not allow subscriptions with this share code; ask them for one that does");
    goto out;
  }
  cp_redis_t *r = gw_redis(req);
  if (r == NULL) {
    gw_reply_unavailable(req, "the subscription store");
    goto out;
  }
  make_subscription(req, r, &sc, url, employer, evs, events);
out:
  json_decref(events);
  json_decref(body);
}

/* Is id[0..n) the form of a subscription id ("sub_" and [a-z0-9_])? */
static bool sub_id_form(const char *id, size_t n) {
  bool ok = n > 4 && n < SUB_ID_MAX && strncmp(id, "sub_", 4) == 0;
  for (size_t i = 0; ok && i < n; i++)
    ok = (id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9') || id[i] == '_';
  return ok;
}

void gw_subscribe_delete(gw_req_t *req) {
  const char *id = req->rest;
  if (!sub_id_form(id, strlen(id))) {
    gw_reply_error(req, 404, GW_E_NOT_FOUND, "no subscription has that id");
    return;
  }
  cp_redis_t *r = gw_redis(req);
  if (r == NULL) {
    gw_reply_unavailable(req, "the subscription store");
    return;
  }
  cp_key_t k;
  redisReply *h = cp_redis_cmd(r, "HMGET %s worker share_code url employer_id", cp_key_sub(&k, id));
  if (h == NULL || h->type != REDIS_REPLY_ARRAY || h->elements != 4) {
    if (h != NULL) freeReplyObject(h);
    gw_reply_unavailable(req, "the subscription store");
    return;
  }
  if (h->element[0]->type != REDIS_REPLY_STRING || !owns(req, h->element[3])) { /* someone else's: as unknown */
    freeReplyObject(h);
    gw_reply_error(req, 404, GW_E_NOT_FOUND, "no subscription has that id");
    return;
  }
  cp_redis_pipe_t *pipe = cp_redis_pipe_new();
  cp_redis_pipe_cmd(pipe, "DEL %s", cp_key_sub(&k, id));
  cp_redis_pipe_cmd(pipe, "SREM %s %s", cp_key_w_subs(&k, h->element[0]->str), id);
  if (req->employer != NULL) cp_redis_pipe_cmd(pipe, "SREM %s %s", cp_key_emp_subs(&k, req->employer->id), id);
  if (h->element[1]->type == REDIS_REPLY_STRING) {
    cp_redis_pipe_cmd(pipe, "SREM %s %s", cp_key_scid_subs(&k, h->element[1]->str), id);
    if (h->element[2]->type == REDIS_REPLY_STRING)
      cp_redis_pipe_cmd(pipe, "HDEL %s %s", cp_key_scid_sub_urls(&k, h->element[1]->str), h->element[2]->str);
  }
  int rc = cp_redis_pipe_exec(pipe, r);
  cp_redis_pipe_destroy(&pipe);
  freeReplyObject(h);
  if (rc != 0) {
    gw_reply_unavailable(req, "the subscription store");
    return;
  }
  gw_reply_json(req, 200, json_pack("{s:s}", "deleted", id));
}

/* ---- a new secret for a subscription ----------------------------------------------------------
 * KEYS[1] the subscription hash. ARGV: the new secret, now (unix s), the overlap (s), the caller's
 * owner id ("" = anonymous). A live subscription (url set, expires_at in the future) of that owner
 * gets the new secret (someone else's is answered as no subscription); the one it had becomes
 * prev_secret until now + overlap. Returns -2 when there is no live subscription, -1 when it had no
 * secret (made before secrets were), else the previous secret's valid-until time. */
#define ROTATE_LUA \
  "local h = redis.call('HMGET', KEYS[1], 'url', 'expires_at', 'secret', 'employer_id')\n" \
  "local now = tonumber(ARGV[2])\n" \
  "if not h[1] or h[1] == '' or tonumber(h[2] or '0') <= now then return -2 end\n" \
  "if (h[4] or '') ~= ARGV[4] then return -2 end\n" \
  "local old = h[3]\n" \
  "redis.call('HSET', KEYS[1], 'secret', ARGV[1])\n" \
  "if not old or old == '' then\n" \
  "  redis.call('HDEL', KEYS[1], 'prev_secret', 'prev_until')\n" \
  "  return -1\n" \
  "end\n" \
  "local untl = now + tonumber(ARGV[3])\n" \
  "redis.call('HSET', KEYS[1], 'prev_secret', old, 'prev_until', untl)\n" \
  "return untl\n"
static cp_redis_script_t rotate_script = CP_REDIS_SCRIPT("rotate a subscription's webhook secret", 1, ROTATE_LUA);

void gw_subscribe_rotate(gw_req_t *req) {
  const char *rest = req->rest, *slash = strchr(rest, '/');
  if (slash == NULL || strcmp(slash, "/secret") != 0) {
    gw_reply_error(req, 404, GW_E_ROUTE_NOT_FOUND,
                   "no such route: POST /v1/subscriptions/<id>/secret makes a new webhook secret");
    return;
  }
  char id[SUB_ID_MAX];
  size_t n = (size_t)(slash - rest);
  if (!sub_id_form(rest, n)) {
    gw_reply_error(req, 404, GW_E_NOT_FOUND, "no live subscription has that id");
    return;
  }
  memcpy(id, rest, n);
  id[n] = '\0';
  cp_redis_t *r = gw_redis(req);
  if (r == NULL) {
    gw_reply_unavailable(req, "the subscription store");
    return;
  }
  char secret[CP_WHSEC_SIZE], snow[24], sover[24];
  long long now = (long long)time(NULL);
  snprintf(snow, sizeof snow, "%lld", now);
  snprintf(sover, sizeof sover, "%lld", (long long)req->gw->cfg.secret_overlap_s);
  cp_whsec_new(secret);
  cp_key_t k;
  const char *argv[] = {cp_key_sub(&k, id), secret, snow, sover, owner_of(req)};
  redisReply *rep = cp_redis_eval(r, &rotate_script, 5, argv, NULL);
  long long until = rep != NULL && rep->type == REDIS_REPLY_INTEGER ? rep->integer : LLONG_MIN;
  if (rep != NULL) freeReplyObject(rep);
  if (until == LLONG_MIN) {
    sodium_memzero(secret, sizeof secret);
    gw_reply_unavailable(req, "the subscription store");
    return;
  }
  if (until == -2) {
    sodium_memzero(secret, sizeof secret);
    gw_reply_error(req, 404, GW_E_NOT_FOUND,
                   "no live subscription has that id (it was deleted, or it ended with its share code)");
    return;
  }
  json_t *o = json_pack("{s:s,s:s}", "id", id, "secret", secret);
  sodium_memzero(secret, sizeof secret);
  if (o != NULL) {
    char at[32];
    iso_utc(until, at);
    json_object_set_new(o, "previous_valid_until", until >= 0 ? json_string(at) : json_null());
  }
  cp_log_info("subscription webhook secret rotated", CP_KV_STR("id", id), CP_KV_INT("previous_valid_until", until),
              CP_KV_END);
  gw_reply_json(req, 200, o);
  gw_reply_header(req, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
}

/* ---- an employer's own subscriptions ---------------------------------------------------------
 * The ids in cp:emp:{id}:subs, each read back from its hash in one pipeline; a hash that is gone,
 * ended or (defensively) not the employer's is left out, and gone ones are pruned from the set. */
void gw_subscribe_list(gw_req_t *req) {
  assert(req->employer != NULL); /* GW_AUTH_EMPLOYER */
  cp_redis_t *r = gw_redis(req);
  if (r == NULL) {
    gw_reply_unavailable(req, "the subscription store");
    return;
  }
  cp_key_t k, sk;
  cp_key_emp_subs(&sk, req->employer->id);
  redisReply *m = cp_redis_cmd(r, "SMEMBERS %s", sk.s);
  if (m == NULL || m->type != REDIS_REPLY_ARRAY) {
    if (m != NULL) freeReplyObject(m);
    gw_reply_unavailable(req, "the subscription store");
    return;
  }
  cp_redis_pipe_t *p = cp_redis_pipe_new();
  cp_redis_handle_t *h = cp_xcalloc(m->elements > 0 ? m->elements : 1, sizeof *h);
  for (size_t i = 0; i < m->elements; i++)
    h[i] = cp_redis_pipe_cmd(p, "HMGET %s url events expires_at share_code employer_id",
                             cp_key_sub(&k, m->element[i]->str));
  json_t *list = json_array();
  size_t gone = 0;
  int rc = m->elements > 0 ? cp_redis_pipe_exec(p, r) : 0;
  long long now = (long long)time(NULL);
  for (size_t i = 0; rc == 0 && i < m->elements; i++) {
    const redisReply *e = cp_redis_pipe_reply(p, h[i]);
    if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements != 5) continue;
    bool have = true;
    for (size_t f = 0; f < 5; f++) have = have && e->element[f]->type == REDIS_REPLY_STRING;
    if (!have) {
      gone++;
      continue;
    }
    long long expires = strtoll(e->element[2]->str, NULL, 10);
    if (expires <= now || strcmp(e->element[4]->str, req->employer->id) != 0) continue;
    char at[32];
    iso_utc(expires, at);
    json_t *events = json_array();
    char evs[128];
    snprintf(evs, sizeof evs, "%s", e->element[1]->str);
    for (char *save = NULL, *t = strtok_r(evs, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save))
      json_array_append_new(events, json_string(t));
    json_array_append_new(list, json_pack("{s:s,s:o,s:s,s:I,s:s,s:s}", "id", m->element[i]->str, "events", events,
                                          "expires_at", at, "expires", (json_int_t)expires, "url", e->element[0]->str,
                                          "share_code_id", e->element[3]->str));
  }
  free(h);
  cp_redis_pipe_destroy(&p);
  freeReplyObject(m);
  if (rc != 0) {
    json_decref(list);
    gw_reply_unavailable(req, "the subscription store");
    return;
  }
  if (gone > 0) set_prune(r, sk.s);
  gw_reply_json(req, 200, json_pack("{s:o}", "subscriptions", list));
  gw_reply_header(req, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
}
