/* gw_consent.c -- the worker's ongoing-access consents: grant, list, withdraw (worker token).
 *
 * A consent is a register entry (cp_projection.h, README "Privacy"): the gateway claims an event of
 * the reserved provider carepass-consent for the worker (the token's subject, never the body)
 * with the common ingest store (durable in cp:ev, idempotent on provider + event id, in cp:pending
 * for redrive) and pushes it to verify, as POST /v1/events does; verify and the signer commit it
 * and the projection builds cp:cn:{id}. The consent id is 128 random bits (32 hex): event id
 * "consent:<hex>", its withdrawal "withdraw:<hex>" (one per consent, so a repeated DELETE is the
 * same event), API id "cn_<hex>".
 *
 * Until it commits, the gateway keeps its own note of the worker's requests in the transient HASH
 * cp:w:{hex}:cn_req (consent hex -> employer id; written by the gateway only, deleted by leave),
 * so a pending consent is listed and counted; a committed one is read from the projection's keys.
 *
 *   POST   /v1/consents {"employer": "EMP-0001"} -> 202 {"id", "employer", "state": "pending"}
 *   GET    /v1/consents -> 200 {"consents": [{"id", "employer", "state", "since"?}]}
 *          state: pending | active | withdrawn-pending; since: ISO 8601 of the commit
 *   DELETE /v1/consents/cn_<hex> -> 202 {"id", "employer", "state": "withdrawn-pending"}
 * Errors: 400 INVALID_FIELD / MISSING_FIELD / MALFORMED_JSON, 404 NOT_FOUND (unknown, another
 * worker's, or already withdrawn: the same answer), 409 CONSENT_EXISTS (a live consent for that
 * employer), 409 CONSENT_LIMIT (GATEWAY_CONSENTS_PER_WORKER), 409 CONSENT_NEEDS_FORMAT_2 (ENTRY_FORMAT=1;
 * the signer refuses to sign one too), 409 CONSENT_PENDING (withdrawing one not yet committed,
 * with Retry-After), 503 UNAVAILABLE / BUSY. */
#include "gw_consent.h"
#include "gw_consent_routes.h"
#include "gw_http.h"
#include "gw_metrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "carepass/v1/internal.pb-c.h"
#include "cp_codec.h"
#include "cp_ingest.h"
#include "cp_keys.h"
#include "cp_outbox.h"
#include "cp_projection.h"

#define GW_E_CONSENT_EXISTS "CONSENT_EXISTS"  /* 409 a live consent for this employer already */
#define GW_E_EMPLOYER_NOT_REGISTERED "EMPLOYER_NOT_REGISTERED" /* 400 ongoing access for an employer not in EMPLOYERS */
#define GW_E_CONSENT_LIMIT "CONSENT_LIMIT"    /* 409 GATEWAY_CONSENTS_PER_WORKER live consents */
#define GW_E_CONSENT_FORMAT "CONSENT_NEEDS_FORMAT_2" /* 409 ENTRY_FORMAT=1: a consent entry would name the worker */
#define CONSENTS_MAX 1000                     /* most consents read for one worker (the option's bound) */

/* Is s exactly 32 lowercase hex? */
static bool hex32(const char *s) {
  if (strlen(s) != PROJ_CONSENT_ID_HEX) return false;
  for (size_t i = 0; i < PROJ_CONSENT_ID_HEX; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
  return true;
}

/* The state of event (carepass-consent, "<prefix><id>"): "accepted", "committed", "rejected" or "". */
static void event_state(cp_redis_t *r, const char *prefix, const char *id, char *out, size_t len) {
  char eid[64];
  cp_key_t k;
  snprintf(eid, sizeof eid, "%s%s", prefix, id);
  redisReply *x = cp_redis_cmd(r, "HGET %s state", cp_key_event(&k, PROJ_CONSENT_PROVIDER, eid));
  cp_redis_reply_str(x, out, len);
  if (x != NULL) freeReplyObject(x);
}

int gw_consent_list_of(cp_redis_t *r, const char *hex, gw_consent_t *out, size_t max, size_t *n) {
  *n = 0;
  cp_key_t wk, rq;
  const char *rk = cp_key_w_consent_requests(&rq, hex);
  redisReply *req = cp_redis_cmd(r, "HGETALL %s", rk);
  redisReply *live = cp_redis_cmd(r, "SMEMBERS %s", cp_key_w_consents(&wk, hex));
  int rc = -1;
  if (req == NULL || req->type != REDIS_REPLY_ARRAY || live == NULL || live->type != REDIS_REPLY_ARRAY) goto out;
  /* committed and live (the projection's), then requested ones not committed yet */
  for (size_t i = 0; i < live->elements + req->elements / 2 && *n < max; i++) {
    bool committed = i < live->elements;
    const redisReply *idr = committed ? live->element[i] : req->element[2 * (i - live->elements)];
    if (idr->type != REDIS_REPLY_STRING || !hex32(idr->str)) continue;
    gw_consent_t *c = &out[*n];
    memset(c, 0, sizeof *c);
    snprintf(c->id, sizeof c->id, "%s", idr->str);
    bool dup = false;
    for (size_t j = 0; j < *n; j++) dup = dup || strcmp(out[j].id, c->id) == 0;
    if (dup) continue;
    char cst[16], wst[16];
    event_state(r, "consent:", c->id, cst, sizeof cst);
    event_state(r, "withdraw:", c->id, wst, sizeof wst);
    if (strcmp(cst, "rejected") == 0 || strcmp(wst, "committed") == 0) {
      if (!committed) freeReplyObject(cp_redis_cmd(r, "HDEL %s %s", rk, c->id));   /* over: forget the note */
      continue;
    }
    if (committed) {
      cp_key_t ck;
      redisReply *h = cp_redis_cmd(r, "HMGET %s employer since", cp_key_consent(&ck, c->id));
      const redisReply *a = cp_redis_reply_array(h, 2);
      cp_redis_reply_str(a ? a->element[0] : NULL, c->employer, sizeof c->employer);
      char since[24] = "";
      cp_redis_reply_str(a ? a->element[1] : NULL, since, sizeof since);
      c->since = strtoll(since, NULL, 10);
      if (h != NULL) freeReplyObject(h);
    } else {
      const redisReply *e = req->element[2 * (i - live->elements) + 1];
      if (e->type == REDIS_REPLY_STRING) snprintf(c->employer, sizeof c->employer, "%s", e->str);
      if (strcmp(cst, "committed") == 0) continue;   /* committed but not live: its worker left, or reindexing */
    }
    if (!proj_employer_id_valid(c->employer)) continue;
    c->state = strcmp(wst, "accepted") == 0 ? GW_CONSENT_WITHDRAWN_PENDING
               : committed                  ? GW_CONSENT_ACTIVE
                                            : GW_CONSENT_PENDING;
    (*n)++;
  }
  rc = 0;
out:
  if (req != NULL) freeReplyObject(req);
  if (live != NULL) freeReplyObject(live);
  return rc;
}

/* Push a claimed event to verify (never blocking: a full queue leaves it to the redrive). */
static void forward(gw_t *gw, const uint8_t *packed, size_t len) {
  pthread_mutex_lock(&gw->push_lock);
  bool pushed = zmq_send(gw->verify_push, packed, len, ZMQ_DONTWAIT) >= 0;
  pthread_mutex_unlock(&gw->push_lock);
  if (!pushed) gw_metric_add(gw, "carepass_gateway_verify_push_failed_total", "", 1);
}

/* Claim and forward one consent-provider event of the worker. 0 taken (new or already known);
 * 1 busy (outbox full); 2 the id was used for other content; -1 Redis unavailable or internal. */
static int claim(gw_t *gw, cp_redis_t *r, const char *hex, const char *event_id, Carepass__V1__EventKind kind,
                 const char *employer, const char *revokes) {
  uint8_t pseudo[CP_PSEUDONYM_BYTES];
  if (strlen(hex) != 2 * CP_PSEUDONYM_BYTES || sodium_hex2bin(pseudo, sizeof pseudo, hex, strlen(hex), NULL, NULL, NULL) != 0)
    return -1;
  Carepass__V1__PendingEvent pe = CAREPASS__V1__PENDING_EVENT__INIT;
  pe.provider_id = (char *)PROJ_CONSENT_PROVIDER;
  pe.provider_event_id = (char *)event_id;
  pe.worker_pseudonym.data = pseudo;
  pe.worker_pseudonym.len = sizeof pseudo;
  pe.kind = kind;
  pe.employer_id = (char *)(employer != NULL ? employer : "");
  pe.revokes_event_id = (char *)(revokes != NULL ? revokes : "");
  pe.revocation_reason = (char *)(revokes != NULL ? PROJ_CONSENT_REASON : "");
  char digest[65];
  uint8_t *packed = NULL, *notice = NULL;
  size_t packed_len = 0, notice_len = 0;
  int rc = -1;
  if (ing_pending_digest(&pe, digest) != 0) goto out;
  pe.received_at = cp_now_ms();
  if (cp_pb_pack(&pe.base, &packed, &packed_len) != 0) goto out;
  Carepass__V1__NotifyJob job;
  ing_accepted_job(&pe, &job);
  if (cp_outbox_pack(&job, &notice, &notice_len) != 0) goto out;
  ing_claim_req_t creq = {event_id, digest, packed, packed_len, notice, notice_len};
  ing_claim_t c;
  memset(&c, 0, sizeof c);
  if (ing_store_claim(r, gw->cfg.redrive_after_ms, gw->cfg.outbox_max, PROJ_CONSENT_PROVIDER, &creq, 1, &c) != 0)
    goto out;
  rc = c.reused ? 2 : c.busy ? 1 : 0;
  if (c.is_new) forward(gw, packed, packed_len);
  ing_claim_clear(&c);
out:
  free(packed);
  free(notice);
  sodium_memzero(pseudo, sizeof pseudo);
  return rc;
}

static const char *state_name(gw_consent_state_t st) {
  switch (st) {
    case GW_CONSENT_PENDING: return "pending";
    case GW_CONSENT_ACTIVE: return "active";
    case GW_CONSENT_WITHDRAWN_PENDING: return "withdrawn-pending";
  }
  return "pending";
}

static json_t *consent_json(const gw_consent_t *c) {
  char id[8 + PROJ_CONSENT_ID_HEX];
  snprintf(id, sizeof id, "cn_%s", c->id);
  json_t *o = json_pack("{s:s,s:s,s:s}", "id", id, "employer", c->employer, "state", state_name(c->state));
  if (c->since > 0) {
    time_t t = (time_t)c->since;
    struct tm tm;
    char s[32];
    gmtime_r(&t, &tm);
    strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_object_set_new(o, "since", json_string(s));
  }
  return o;
}

int gw_consent_grant(gw_req_t *req, const char *employer, char id_out[PROJ_CONSENT_ID_HEX + 1]) {
  gw_t *gw = req->gw;
  if (!proj_employer_id_valid(employer)) {
    gw_reply_error(req, 400, GW_E_INVALID_FIELD, "employer must be EMP- followed by 4 to 12 digits");
    return -1;
  }
  /* only an employer of the registry (EMPLOYERS) can be given ongoing access */
  if (req->gw->employers == NULL || emp_find(req->gw->employers, employer) == NULL) {
    gw_reply_error(req, 400, GW_E_EMPLOYER_NOT_REGISTERED, "%s is not a registered employer; ask them for their "
                   "carepass employer id", employer);
    return -1;
  }
  if (gw->cfg.entry_format < 2) {
    gw_reply_error(req, 409, GW_E_CONSENT_FORMAT,
                   "this register writes entry format 1, which would show who gave whom access; consents need format 2");
    return -1;
  }
  cp_redis_t *r = gw_redis(req);
  gw_consent_t *have = cp_xcalloc(CONSENTS_MAX, sizeof *have);
  size_t n = 0;
  int rc = -1;
  if (r == NULL || gw_consent_list_of(r, req->subject, have, CONSENTS_MAX, &n) != 0) {
    gw_reply_unavailable(req, "the consent store");
    goto out;
  }
  for (size_t i = 0; i < n; i++)
    if (strcmp(have[i].employer, employer) == 0 && have[i].state != GW_CONSENT_WITHDRAWN_PENDING) {
      gw_reply_error(req, 409, GW_E_CONSENT_EXISTS, "you already gave this employer ongoing access (cn_%s)", have[i].id);
      goto out;
    }
  if (n >= (size_t)gw->cfg.consents_per_worker) {
    gw_reply_error(req, 409, GW_E_CONSENT_LIMIT, "you hold %zu consents, the most allowed; withdraw one first", n);
    goto out;
  }
  uint8_t raw[PROJ_CONSENT_ID_HEX / 2];
  randombytes_buf(raw, sizeof raw);
  cp_hex(raw, sizeof raw, id_out);
  char eid[64];
  cp_key_t rq;
  const char *rk = cp_key_w_consent_requests(&rq, req->subject);
  snprintf(eid, sizeof eid, "consent:%s", id_out);
  /* the note first: a consent that commits is then always listed (a note without a claim is
   * dropped by the list once the claim is known rejected or absent for long: here, at once) */
  redisReply *x = cp_redis_cmd(r, "HSET %s %s %s", rk, id_out, employer);
  if (x == NULL) {
    gw_reply_unavailable(req, "the consent store");
    goto out;
  }
  freeReplyObject(x);
  int c = claim(gw, r, req->subject, eid, CAREPASS__V1__EVENT_KIND__EVENT_KIND_CONSENT, employer, NULL);
  if (c != 0) {
    freeReplyObject(cp_redis_cmd(r, "HDEL %s %s", rk, id_out));
    if (c == 1) gw_reply_error(req, 503, cp_reason_code(CP_R_BUSY), "%s", cp_reason_text(CP_R_BUSY));
    else gw_reply_unavailable(req, "the event store");
    goto out;
  }
  rc = 0;
out:
  free(have);
  return rc;
}

void gw_consent_create(gw_req_t *req) {
  json_t *j = gw_body_json(req, JSON_OBJECT);
  if (j == NULL) return;
  const char *employer = NULL;
  char id[PROJ_CONSENT_ID_HEX + 1];
  if (gw_json_str(req, j, "employer", true, PROJ_EMPLOYER_ID_MAX, &employer) == 0 &&
      gw_consent_grant(req, employer, id) == 0) {
    gw_consent_t c = {.state = GW_CONSENT_PENDING};
    snprintf(c.id, sizeof c.id, "%s", id);
    snprintf(c.employer, sizeof c.employer, "%s", employer);
    gw_reply_json(req, 202, consent_json(&c));
  }
  json_decref(j);
}

void gw_consent_list(gw_req_t *req) {
  cp_redis_t *r = gw_redis(req);
  gw_consent_t *have = cp_xcalloc(CONSENTS_MAX, sizeof *have);
  size_t n = 0;
  if (r == NULL || gw_consent_list_of(r, req->subject, have, CONSENTS_MAX, &n) != 0) {
    gw_reply_unavailable(req, "the consent store");
  } else {
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(arr, consent_json(&have[i]));
    gw_reply_json(req, 200, json_pack("{s:o}", "consents", arr));
  }
  free(have);
}

void gw_consent_withdraw(gw_req_t *req) {
  const char *rest = req->rest;
  if (strncmp(rest, "cn_", 3) != 0 || !hex32(rest + 3)) {
    gw_reply_error(req, 404, GW_E_NOT_FOUND, "you hold no consent with that id");
    return;
  }
  const char *id = rest + 3;
  cp_redis_t *r = gw_redis(req);
  gw_consent_t *have = cp_xcalloc(CONSENTS_MAX, sizeof *have);
  size_t n = 0;
  if (r == NULL || gw_consent_list_of(r, req->subject, have, CONSENTS_MAX, &n) != 0) {
    gw_reply_unavailable(req, "the consent store");
    goto out;
  }
  const gw_consent_t *c = NULL;
  for (size_t i = 0; i < n && c == NULL; i++)
    if (strcmp(have[i].id, id) == 0) c = &have[i];
  /* only the worker's own consents are found: another worker's id is unknown here */
  if (c == NULL) {
    gw_reply_error(req, 404, GW_E_NOT_FOUND, "you hold no consent with that id");
    goto out;
  }
  if (c->state == GW_CONSENT_PENDING) {
    /* a revocation needs the consent on the register: say when to try again */
    gw_reply_header(req, "Retry-After", "2");
    gw_reply_error(req, 409, "CONSENT_PENDING", "this consent is not on the register yet; withdraw it in a moment");
    goto out;
  }
  char eid[64], revokes[64];
  snprintf(eid, sizeof eid, "withdraw:%s", id);
  snprintf(revokes, sizeof revokes, "consent:%s", id);
  int rc = claim(req->gw, r, req->subject, eid, CAREPASS__V1__EVENT_KIND__EVENT_KIND_REVOCATION, NULL, revokes);
  if (rc == 1) {
    gw_reply_error(req, 503, cp_reason_code(CP_R_BUSY), "%s", cp_reason_text(CP_R_BUSY));
  } else if (rc != 0) {
    gw_reply_unavailable(req, "the event store");
  } else {
    gw_consent_t w = *c;
    w.state = GW_CONSENT_WITHDRAWN_PENDING;
    gw_reply_json(req, 202, consent_json(&w));
  }
out:
  free(have);
}
