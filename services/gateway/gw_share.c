/* gw_share.c -- the worker's share codes: POST /v1/share-codes (create), GET /v1/share-codes (list),
 * DELETE /v1/share-codes/<id> (withdraw at once). Authenticated with a worker token (cpw_...):
 * the worker is the token's subject (pseudonym hex), never the body.
 *
 * POST body {"date_of_birth": "YYYY-MM-DD" (required), "valid_days": 1..90 (default 30),
 *            "entries": [register indexes of the worker's own entries] (default: every record),
 *            "allow_subscriptions": bool (default false),
 *            "label": the worker's own name for it, e.g. "Sunrise Care interview" (optional, at most
 *                     GW_SC_LABEL_MAX bytes of printable text; kept with the code, never logged),
 *            "ongoing_access": "EMP-0001" (optional: also give that employer ongoing access, a
 *                     consent made as POST /v1/consents does, gw_consent.c, before the code)}
 *   -> 201 {"code": "ABC-DEF-GHJ", "id": "sc_...", "created_at", "expires_at" (ISO 8601 UTC),
 *           "expires" (unix s), "scope": "all" | [indexes], "allow_subscriptions": bool, "label",
 *           "ongoing_access": {"id": "cn_...", "employer", "state": "pending"} (when asked for)}
 *   The code is shown this once: only its keyed hash is stored (key scheme in gw_share.h).
 * GET -> 200 {"share_codes": [{"id", "created_at", "expires_at", "expires", "scope",
 *                              "allow_subscriptions", "views", "label"}]}   (never the code or its hash)
 * DELETE /v1/share-codes/<id> -> 200 {"withdrawn": id, "subscriptions_removed": n}; 404 NOT_FOUND
 *   when the worker has no such live code.
 * Errors: 400 MALFORMED_JSON / MISSING_FIELD / INVALID_FIELD, 400 NOT_YOUR_RECORD,
 * 409 TOO_MANY_SHARE_CODES, 409 CONSENT_EXISTS / CONSENT_LIMIT (ongoing_access refused: no code
 * is made), 401 (token), 503 UNAVAILABLE. */
#include "gw_share.h"
#include "gw_http.h"
#include "gw_consent.h"
#include "gw_share_routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cp_dates.h"
#include "cp_keys.h"
#include "cp_log.h"

#define ENTRIES_MAX 100000 /* most register indexes read for one worker */

/* Unix seconds as ISO 8601 UTC. */
static void iso_time(int64_t t, char out[32]) {
  time_t tt = (time_t)t;
  struct tm tm;
  gmtime_r(&tt, &tm);
  strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The scope as JSON: "all" or an array of indexes. */
static json_t *scope_json(const char *scope) {
  uint64_t *v = NULL;
  size_t n = 0;
  if (scope == NULL || scope[0] == '\0' || gw_scope_parse(scope, &v, &n) != 0 || n == 0) {
    free(v);
    return json_string("all");
  }
  json_t *a = json_array();
  for (size_t i = 0; i < n; i++) json_array_append_new(a, json_integer((json_int_t)v[i]));
  free(v);
  return a;
}

/* Is index one of the worker's register entries (cp:w:{hex}:entries)? entries is an LRANGE reply. */
static bool worker_has(const redisReply *entries, uint64_t index) {
  char s[32];
  snprintf(s, sizeof s, "%llu", (unsigned long long)index);
  for (size_t i = 0; i < entries->elements; i++)
    if (entries->element[i]->type == REDIS_REPLY_STRING && strcmp(entries->element[i]->str, s) == 0) return true;
  return false;
}

/* Build the scope text from the optional "entries" array; -1 = replied. */
static int read_scope(gw_req_t *req, cp_redis_t *r, json_t *body, char *scope, size_t scopelen) {
  scope[0] = '\0';
  json_t *ent = json_object_get(body, "entries");
  if (ent == NULL || json_is_null(ent)) return 0;
  if (!json_is_array(ent) || json_array_size(ent) == 0 || json_array_size(ent) > 256) {
    gw_reply_error(req, 400, GW_E_INVALID_FIELD, "entries must be a list of 1 to 256 register indexes");
    return -1;
  }
  cp_key_t key;
  redisReply *list = cp_redis_cmd(r, "LRANGE %s 0 %d", cp_key_w_entries(&key, req->subject), ENTRIES_MAX - 1);
  if (list == NULL || list->type != REDIS_REPLY_ARRAY) {
    if (list != NULL) freeReplyObject(list);
    gw_reply_unavailable(req, "the passport index");
    return -1;
  }
  size_t used = 0, i;
  json_t *v;
  uint64_t *idx = cp_xcalloc(json_array_size(ent), sizeof *idx);
  json_array_foreach(ent, i, v) {
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
      gw_reply_error(req, 400, GW_E_INVALID_FIELD, "entries[%zu] must be a register index (an integer >= 0)", i);
      goto err;
    }
    idx[i] = (uint64_t)json_integer_value(v);
    if (!worker_has(list, idx[i])) {
      gw_reply_error(req, 400, GW_E_NOT_YOUR_RECORD, "entries[%zu]: register entry %llu is not one of your records",
                     i, (unsigned long long)idx[i]);
      goto err;
    }
    int k = snprintf(scope + used, scopelen - used, "%s%llu", used ? "," : "", (unsigned long long)idx[i]);
    if (k < 0 || (size_t)k >= scopelen - used) {
      gw_reply_error(req, 400, GW_E_INVALID_FIELD, "entries is too long");
      goto err;
    }
    used += (size_t)k;
  }
  free(idx);
  freeReplyObject(list);
  return 0;
err:
  free(idx);
  freeReplyObject(list);
  return -1;
}

void gw_share_create(gw_req_t *req) {
  json_t *body = gw_body_json(req, JSON_OBJECT);
  if (body == NULL) return;
  const char *dob = NULL, *label = NULL, *ongoing = NULL;
  char consent_id[PROJ_CONSENT_ID_HEX + 1] = "";
  long long days = GW_SC_DAYS_DEFAULT;
  bool subs = false;
  char scope[GW_SC_SCOPE_MAX];
  int32_t dob_day;
  if (gw_json_str(req, body, "date_of_birth", true, 32, &dob) != 0 ||
      gw_json_int(req, body, "valid_days", false, 1, GW_SC_DAYS_MAX, &days) != 0 ||
      gw_json_bool(req, body, "allow_subscriptions", false, &subs) != 0 ||
      gw_json_label(req, body, "label", GW_SC_LABEL_MAX, &label) != 0 ||
      gw_json_str(req, body, "ongoing_access", false, PROJ_EMPLOYER_ID_MAX, &ongoing) != 0)
    goto out;
  if (label == NULL) label = "";
  if (ongoing != NULL && !proj_employer_id_valid(ongoing)) {
    gw_reply_error(req, 400, GW_E_INVALID_FIELD, "ongoing_access must be an employer id: EMP- followed by 4 to 12 digits");
    goto out;
  }
  if (cp_date_parse(dob, &dob_day) != 0 || dob_day > cp_today()) {
    gw_reply_error(req, 400, GW_E_INVALID_FIELD, "date_of_birth must be a real past date YYYY-MM-DD");
    goto out;
  }
  cp_redis_t *r = gw_redis(req);
  if (r == NULL) {
    gw_reply_unavailable(req, "the share-code store");
    goto out;
  }
  if (read_scope(req, r, body, scope, sizeof scope) != 0) goto out;
  cp_key_t wk;
  const char *wkey = cp_key_w_sc(&wk, req->subject);
  redisReply *card = cp_redis_cmd(r, "SCARD %s", wkey);
  if (card == NULL) {
    gw_reply_unavailable(req, "the share-code store");
    goto out;
  }
  long long live = card->type == REDIS_REPLY_INTEGER ? card->integer : 0;
  freeReplyObject(card);
  if (live >= GW_SC_PER_WORKER_MAX) {
    gw_reply_error(req, 409, GW_E_TOO_MANY_CODES,
                   "you have %d share codes; withdraw some before making more", GW_SC_PER_WORKER_MAX);
    goto out;
  }
  /* ongoing access first: a refused consent (CONSENT_EXISTS, CONSENT_LIMIT) makes no code */
  if (ongoing != NULL && gw_consent_grant(req, ongoing, consent_id) != 0) goto out;

  int64_t now = (int64_t)time(NULL), expires = now + days * 86400;
  char code[GW_SC_LEN + 1], hex[65], id[GW_SC_ID_MAX];
  cp_key_t sck, idk;
  const char *sckey = NULL, *idkey = NULL;
  uint8_t h[32], dh[32];
  bool made = false;
  for (int attempt = 0; attempt < 5 && !made; attempt++) {
    gw_sc_generate(code);
    gw_sc_hash(req->gw, code, h);
    cp_hex(h, 32, hex);
    sckey = cp_key_sc(&sck, hex);
    redisReply *nx = cp_redis_cmd(r, "HSETNX %s worker %s", sckey, req->subject);
    if (nx == NULL) break;
    made = nx->type == REDIS_REPLY_INTEGER && nx->integer == 1;
    freeReplyObject(nx);
  }
  if (!made) {
    sodium_memzero(code, sizeof code);
    gw_reply_unavailable(req, "the share-code store");
    goto out;
  }
  gw_random_id("sc_", 8, id, sizeof id);
  gw_sc_dob_hash(req->gw, h, dob, dh);
  char dhex[65], sexp[24], snow[24];
  cp_hex(dh, 32, dhex);
  sodium_memzero(dh, sizeof dh);
  snprintf(sexp, sizeof sexp, "%lld", (long long)expires);
  snprintf(snow, sizeof snow, "%lld", (long long)now);
  idkey = cp_key_scid(&idk, id);
  const char *sv = subs ? "1" : "0";
  cp_redis_pipe_t *pipe = cp_redis_pipe_new();
  cp_redis_handle_t hset = cp_redis_pipe_cmd(pipe, "HSET %s worker %s dob %s id %s scope %s subs %s created %s expires %s "
                                             "consent %s consent_employer %s",
                                             sckey, req->subject, dhex, id, scope, sv, snow, sexp,
                                             ongoing != NULL ? consent_id : "", ongoing != NULL ? ongoing : "");
  cp_redis_pipe_cmd(pipe, "EXPIREAT %s %s", sckey, sexp);
  cp_redis_pipe_cmd(pipe, "HSET %s code %s worker %s scope %s subs %s created %s expires %s views 0 label %s", idkey,
                    hex, req->subject, scope, sv, snow, sexp, label);
  cp_redis_pipe_cmd(pipe, "EXPIREAT %s %s", idkey, sexp);
  cp_redis_pipe_cmd(pipe, "SADD %s %s", wkey, id);
  cp_redis_pipe_cmd(pipe, "EXPIRE %s %d NX", wkey, (GW_SC_DAYS_MAX + 1) * 86400);
  cp_redis_pipe_cmd(pipe, "EXPIRE %s %d GT", wkey, (GW_SC_DAYS_MAX + 1) * 86400);
  bool ok = cp_redis_pipe_exec(pipe, r) == 0 && cp_redis_pipe_reply(pipe, hset)->type == REDIS_REPLY_INTEGER;
  cp_redis_pipe_destroy(&pipe);
  sodium_memzero(dhex, sizeof dhex);
  if (!ok) {
    sodium_memzero(code, sizeof code);
    redisReply *d = cp_redis_cmd(r, "DEL %s %s", sckey, idkey);
    if (d != NULL) freeReplyObject(d);
    gw_reply_unavailable(req, "the share-code store");
    goto out;
  }
  char shown[12], created_at[32], expires_at[32];
  gw_sc_format(code, shown);
  sodium_memzero(code, sizeof code);
  iso_time(now, created_at);
  iso_time(expires, expires_at);
  json_t *res = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:o,s:b}", "code", shown, "id", id, "label", label,
                          "created_at", created_at, "expires_at", expires_at, "expires", (json_int_t)expires,
                          "scope", scope_json(scope), "allow_subscriptions", subs);
  sodium_memzero(shown, sizeof shown);
  if (ongoing != NULL) {
    char cid[8 + PROJ_CONSENT_ID_HEX];
    snprintf(cid, sizeof cid, "cn_%s", consent_id);
    json_object_set_new(res, "ongoing_access", json_pack("{s:s,s:s,s:s}", "id", cid, "employer", ongoing, "state", "pending"));
  }
  gw_reply_json(req, 201, res);
  cp_log_info("share code created", CP_KV_STR("id", id), CP_KV_INT("days", days), CP_KV_END);
out:
  json_decref(body);
}

void gw_share_list(gw_req_t *req) {
  cp_redis_t *r = gw_redis(req);
  if (r == NULL) {
    gw_reply_unavailable(req, "the share-code store");
    return;
  }
  cp_key_t wk;
  const char *wkey = cp_key_w_sc(&wk, req->subject);
  redisReply *ids = cp_redis_cmd(r, "SMEMBERS %s", wkey);
  if (ids == NULL || ids->type != REDIS_REPLY_ARRAY) {
    if (ids != NULL) freeReplyObject(ids);
    gw_reply_unavailable(req, "the share-code store");
    return;
  }
  json_t *list = json_array();
  if (ids->elements > 0) {
    cp_redis_pipe_t *pipe = cp_redis_pipe_new();
    cp_redis_handle_t *h = cp_xcalloc(ids->elements, sizeof *h);
    for (size_t i = 0; i < ids->elements; i++) {
      cp_key_t k;
      h[i] = cp_redis_pipe_cmd(pipe, "HGETALL %s", cp_key_scid(&k, ids->element[i]->str));
    }
    if (cp_redis_pipe_exec(pipe, r) != 0) {
      cp_redis_pipe_destroy(&pipe);
      free(h);
      freeReplyObject(ids);
      json_decref(list);
      gw_reply_unavailable(req, "the share-code store");
      return;
    }
    for (size_t i = 0; i < ids->elements; i++) {
      const redisReply *code = cp_redis_pipe_reply(pipe, h[i]);
      const char *w = cp_redis_hfield(code, "worker"), *exp = cp_redis_hfield(code, "expires");
      if (w == NULL || strcmp(w, req->subject) != 0 || exp == NULL) {
        /* gone (expired or withdrawn): prune the id */
        redisReply *d = cp_redis_cmd(r, "SREM %s %s", wkey, ids->element[i]->str);
        if (d != NULL) freeReplyObject(d);
        continue;
      }
      const char *cr = cp_redis_hfield(code, "created"), *views = cp_redis_hfield(code, "views"), *s = cp_redis_hfield(code, "subs");
      const char *lab = cp_redis_hfield(code, "label");   /* none on codes made before labels */
      int64_t e = strtoll(exp, NULL, 10), c = cr ? strtoll(cr, NULL, 10) : 0;
      char ea[32], ca[32];
      iso_time(e, ea);
      iso_time(c, ca);
      json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:s,s:I,s:o,s:b,s:I}", "id", ids->element[i]->str,
                                            "label", lab != NULL ? lab : "",
                                            "created_at", ca, "expires_at", ea, "expires", (json_int_t)e,
                                            "scope", scope_json(cp_redis_hfield(code, "scope")), "allow_subscriptions",
                                            s != NULL && strcmp(s, "1") == 0, "views",
                                            (json_int_t)(views ? strtoll(views, NULL, 10) : 0)));
    }
    cp_redis_pipe_destroy(&pipe);
    free(h);
  }
  freeReplyObject(ids);
  gw_reply_json(req, 200, json_pack("{s:o}", "share_codes", list));
}

int gw_sc_withdraw(cp_redis_t *r, const char *worker, const char *id) {
  cp_key_t idk, subsk, k;
  const char *idkey = cp_key_scid(&idk, id), *subskey = cp_key_scid_subs(&subsk, id);
  cp_redis_pipe_t *pipe = cp_redis_pipe_new();
  cp_redis_handle_t hcode = cp_redis_pipe_cmd(pipe, "HGETALL %s", idkey);
  cp_redis_handle_t hsubs = cp_redis_pipe_cmd(pipe, "SMEMBERS %s", subskey);
  if (cp_redis_pipe_exec(pipe, r) != 0) {
    cp_redis_pipe_destroy(&pipe);
    return -1;
  }
  const redisReply *sc = cp_redis_pipe_reply(pipe, hcode), *subs = cp_redis_pipe_reply(pipe, hsubs);
  const char *w = cp_redis_hfield(sc, "worker"), *code = cp_redis_hfield(sc, "code");
  int rc = 1;
  if (w == NULL || strcmp(w, worker) != 0 || code == NULL) goto out;
  cp_redis_pipe_t *del = cp_redis_pipe_new();
  /* the code first: from this reply on, no employer can open it */
  cp_redis_pipe_cmd(del, "DEL %s", cp_key_sc(&k, code));
  cp_redis_pipe_cmd(del, "DEL %s", idkey);
  for (size_t i = 0; subs->type == REDIS_REPLY_ARRAY && i < subs->elements; i++) {
    cp_redis_pipe_cmd(del, "DEL %s", cp_key_sub(&k, subs->element[i]->str));
    cp_redis_pipe_cmd(del, "SREM %s %s", cp_key_w_subs(&k, worker), subs->element[i]->str);
  }
  cp_redis_pipe_cmd(del, "DEL %s", subskey);
  cp_redis_pipe_cmd(del, "DEL %s", cp_key_scid_sub_urls(&k, id));
  cp_redis_pipe_cmd(del, "SREM %s %s", cp_key_w_sc(&k, worker), id);
  rc = cp_redis_pipe_exec(del, r) == 0 ? 0 : -1;
  cp_redis_pipe_destroy(&del);
out:
  cp_redis_pipe_destroy(&pipe);
  return rc;
}

/* Share-code and subscription ids are [a-z0-9_], short. */
static bool id_ok(const char *s, size_t max) {
  size_t n = strlen(s);
  if (n == 0 || n >= max) return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_')) return false;
  return true;
}

void gw_share_delete(gw_req_t *req) {
  const char *id = req->rest;
  if (!id_ok(id, GW_SC_ID_MAX)) {
    gw_reply_error(req, 404, GW_E_NOT_FOUND, "no share code has that id");
    return;
  }
  cp_redis_t *r = gw_redis(req);
  if (r == NULL) {
    gw_reply_unavailable(req, "the share-code store");
    return;
  }
  cp_key_t subsk;
  redisReply *cnt = cp_redis_cmd(r, "SCARD %s", cp_key_scid_subs(&subsk, id));
  long long nsubs = cnt != NULL && cnt->type == REDIS_REPLY_INTEGER ? cnt->integer : 0;
  if (cnt != NULL) freeReplyObject(cnt);
  int rc = gw_sc_withdraw(r, req->subject, id);
  if (rc < 0) {
    gw_reply_unavailable(req, "the share-code store");
    return;
  }
  if (rc == 1) {
    gw_reply_error(req, 404, GW_E_NOT_FOUND, "you have no live share code with that id");
    return;
  }
  cp_log_info("share code withdrawn", CP_KV_STR("id", id), CP_KV_INT("subscriptions", nsubs), CP_KV_END);
  gw_reply_json(req, 200, json_pack("{s:s,s:I}", "withdrawn", id, "subscriptions_removed", (json_int_t)nsubs));
}
