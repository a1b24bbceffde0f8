/* gw_events.c -- POST /v1/events: provider events over HTTP, with the same rules, store and
 * per-event answers as intake (common/cp_ingest.h), so a batch resent over either edge gets the
 * same answer.
 *
 * Request
 *   Authorization: Bearer cpp_...        the provider is the token's subject, never the body
 *   Content-Type: application/json       a JSON array of event objects (default when absent)
 *                 application/x-ndjson   one event object per line (blank lines skipped)
 *   ?ack=accepted (default) | committed  committed waits (<= ACK_TIMEOUT_MS) for final states
 *   Event fields (proto names): provider_event_id, provider_id (empty or the token's provider),
 *   ni_number, qualification_code, completion_date (YYYY-MM-DD), assessor_id,
 *   evidence_hash (hex of 32 bytes, or ""), kind ("completion" | "revocation", the enum names,
 *   or 1 | 2), revokes_event_id, revocation_reason. Unknown fields are ignored.
 * Reply 200
 *   {"replies": [{"provider_event_id": "...", "outcome": "accepted" | "rejected" | "committed",
 *                 "reason_code": "...", "message": "...",   (rejected)
 *                 "entry_index": 12}, ...],                   (committed)
 *    "accepted": a, "rejected": r, "committed": c}
 * Whole-request errors (JSON error object): 400 MALFORMED_JSON, 400 INVALID_FIELD (a field of
 * the wrong type, naming the event and field), 400 BATCH_EMPTY, 400 BATCH_TOO_LARGE,
 * 400 INVALID_ACK_LEVEL, 415 UNSUPPORTED_MEDIA_TYPE, 413 BODY_TOO_LARGE, 401/403 (credential),
 * 503 UNAVAILABLE (Redis down: nothing was stored; resend).
 *
 * Waiting for ?ack=committed: the handler suspends the connection (MHD_suspend_connection)
 * and gives the batch to one helper thread (gw_wait.c) that re-reads the waiting events'
 * states from Redis every GW_WAIT_POLL_MS in one pipeline, then answers and resumes. Polling
 * Redis rather than subscribing to BUS_RESULTS_OUT: results are published to the topic in
 * the event's reply_to, which names one edge replica; an event first sent over ZeroMQ (or
 * by another gateway replica) would never reach this one, while cp:ev:{p:e} is the truth
 * for every edge. The cost is at most GW_WAIT_POLL_MS of extra latency and one pipelined
 * HMGET per waiting event per tick. The event loops are never blocked by a wait.
 */
#include "gw_batch.h"
#include "gw_http.h"
#include "gw_metrics.h"
#include "gw_core_routes.h"
#include "gw_wait.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cp_codec.h"
#include "cp_log.h"
#include "cp_zmq.h"

/* Decode hex of any even length into a malloc'd buffer; -1 if not hex. */
static int hex_decode(const char *hex, uint8_t **out, size_t *outlen) {
  size_t n = strlen(hex);
  *out = NULL;
  *outlen = 0;
  if (n % 2 != 0) return -1;
  if (n == 0) return 0;
  uint8_t *b = cp_xmalloc(n / 2);
  size_t got = 0;
  if (sodium_hex2bin(b, n / 2, hex, n, NULL, &got, NULL) != 0 || got != n / 2) {
    free(b);
    return -1;
  }
  *out = b;
  *outlen = got;
  return 0;
}

/* Fill ev from the JSON object o (event number k, 1-based, for messages). Strings point
 * into o. On a type error replies 400 INVALID_FIELD and returns -1. */
static int event_from_json(gw_req_t *req, json_t *o, size_t k, Carepass__V1__CompletionEvent *ev) {
  carepass__v1__completion_event__init(ev);
  if (!json_is_object(o)) {
    gw_reply_error(req, 400, GW_E_INVALID_FIELD, "event %zu must be a JSON object", k);
    return -1;
  }
  for (size_t i = 0; i < ING_NSTR_FIELDS; i++) {
    json_t *v = json_object_get(o, ing_str_fields[i].name);
    if (v == NULL || json_is_null(v)) continue;
    if (!json_is_string(v)) {
      gw_reply_error(req, 400, GW_E_INVALID_FIELD, "event %zu: %s must be a string", k, ing_str_fields[i].name);
      return -1;
    }
    *ing_str_slot(ev, &ing_str_fields[i]) = (char *)json_string_value(v);
  }
  json_t *h = json_object_get(o, "evidence_hash");
  if (h != NULL && !json_is_null(h)) {
    if (!json_is_string(h) || hex_decode(json_string_value(h), &ev->evidence_hash.data, &ev->evidence_hash.len) != 0) {
      gw_reply_error(req, 400, GW_E_INVALID_FIELD, "event %zu: evidence_hash must be a string of hex digits", k);
      return -1;
    }
  }
  json_t *kd = json_object_get(o, "kind");
  if (kd != NULL && !json_is_null(kd)) {
    if (json_is_integer(kd)) {
      json_int_t x = json_integer_value(kd);
      /* out-of-range numbers get the shape check's INVALID_KIND, as over ZeroMQ */
      ev->kind = x >= 0 && x <= 1000 ? (Carepass__V1__EventKind)x : (Carepass__V1__EventKind)1001;
    } else if (json_is_string(kd)) {
      if (ing_kind_parse(json_string_value(kd), &ev->kind) != 0) {
        gw_reply_error(req, 400, GW_E_INVALID_FIELD, "event %zu: kind must be \"completion\" or \"revocation\"", k);
        return -1;
      }
    } else {
      gw_reply_error(req, 400, GW_E_INVALID_FIELD, "event %zu: kind must be a string or an integer", k);
      return -1;
    }
  }
  return 0;
}

/* The media type of the body: 0 JSON, 1 NDJSON, -1 other. */
static int media_type(gw_req_t *req) {
  const char *ct = gw_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
  if (ct == NULL || ct[0] == '\0') return 0;
  size_t n = strcspn(ct, "; \t");
  if (n == 16 && strncasecmp(ct, "application/json", n) == 0) return 0;
  if ((n == 20 && strncasecmp(ct, "application/x-ndjson", n) == 0) ||
      (n == 18 && strncasecmp(ct, "application/ndjson", n) == 0) ||
      (n == 17 && strncasecmp(ct, "application/jsonl", n) == 0))
    return 1;
  return -1;
}

/* Parse the body into a JSON array of events (NDJSON lines become elements). */
static json_t *parse_events(gw_req_t *req, bool ndjson) {
  if (!ndjson) {
    json_t *j = gw_body_json(req, -1);
    if (j == NULL) return NULL;
    if (!json_is_array(j)) {
      gw_reply_error(req, 400, GW_E_MALFORMED_JSON, "the body must be a JSON array of events (or NDJSON)");
      json_decref(j);
      return NULL;
    }
    return j;
  }
  json_t *arr = json_array();
  const char *p = req->body != NULL ? req->body : "";
  const char *end = p + req->body_len;
  size_t line = 0;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl != NULL ? nl : end;
    line++;
    const char *q = p;
    while (q < le && (*q == ' ' || *q == '\t' || *q == '\r')) q++;
    if (q < le) {
      if (json_array_size(arr) >= req->gw->cfg.max_batch) {
        json_decref(arr);
        gw_reply_error(req, 400, cp_reason_code(CP_R_BATCH_TOO_LARGE), "the batch has more than %zu events",
                       req->gw->cfg.max_batch);
        return NULL;
      }
      json_error_t jerr;
      json_t *o = json_loadb(q, (size_t)(le - q), JSON_REJECT_DUPLICATES, &jerr);
      if (o == NULL || !json_is_object(o)) {
        json_decref(o);
        json_decref(arr);
        gw_reply_error(req, 400, GW_E_MALFORMED_JSON, "line %zu is not a JSON object", line);
        return NULL;
      }
      json_array_append_new(arr, o);
    }
    p = le + (nl != NULL ? 1 : 0);
  }
  return arr;
}

/* ing_edge_t.forward for HTTP threads: the socket is shared, so a lock around the push; never
 * block (a full queue leaves the event in cp:pending for redrive), count what failed. */
static void forward_new(void *arg, const Carepass__V1__PendingEvent *pe, const uint8_t *packed, size_t len) {
  (void)pe;
  gw_t *gw = arg;
  pthread_mutex_lock(&gw->push_lock);
  bool pushed = zmq_send(gw->verify_push, packed, len, ZMQ_DONTWAIT) >= 0;
  pthread_mutex_unlock(&gw->push_lock);
  if (!pushed) gw_metric_add(gw, "carepass_gateway_verify_push_failed_total", "", 1);
}

/* Take the batch in with the pipeline every edge shares (ing_batch_take). -1 when Redis is unavailable. */
static int process(gw_req_t *req, gw_batch_t *b, Carepass__V1__CompletionEvent **evp, size_t n) {
  gw_t *gw = req->gw;
  ing_edge_t edge = {
    .redis = gw_redis(req),
    .redrive_after_ms = gw->cfg.redrive_after_ms,
    .outbox_max = gw->cfg.outbox_max,
    .secret = gw->pseudonym_secret,
    .reply_to = "", /* the gateway reads final states from Redis, not a results topic */
    .forward = forward_new,
    .arg = gw,
  };
  if (edge.redis == NULL) return -1;
  return ing_batch_take(&edge, b->provider, b->committed, evp, n, b->ans, &b->nwaiting);
}

/* Overwrite the NI numbers held by the parsed JSON (personal data) before it is freed. */
static void wipe_ni(json_t *arr) {
  size_t i;
  json_t *o;
  json_array_foreach(arr, i, o) {
    json_t *v = json_object_get(o, "ni_number");
    if (json_is_string(v)) sodium_memzero((char *)json_string_value(v), json_string_length(v));
  }
}

void gw_events_post(gw_req_t *req) {
  gw_t *gw = req->gw;
  bool committed = false;
  const char *ack = gw_query(req, "ack");
  if (ack != NULL && strcmp(ack, "accepted") != 0) {
    if (strcmp(ack, "committed") != 0) {
      gw_reply_error(req, 400, cp_reason_code(CP_R_INVALID_ACK_LEVEL),
                     "ack must be \"accepted\" or \"committed\"");
      return;
    }
    committed = true;
  }
  int mt = media_type(req);
  if (mt < 0) {
    gw_reply_error(req, 415, GW_E_UNSUPPORTED_MEDIA_TYPE,
                   "send application/json (an array of events) or application/x-ndjson");
    return;
  }
  json_t *arr = parse_events(req, mt == 1);
  if (arr == NULL) return;
  size_t n = json_array_size(arr);
  Carepass__V1__CompletionEvent *evs = NULL, **evp = NULL;
  gw_batch_t *b = NULL;
  if (n == 0) {
    gw_reply_error(req, 400, cp_reason_code(CP_R_BATCH_EMPTY), "the batch has no events");
    goto out;
  }
  if (n > gw->cfg.max_batch) {
    gw_reply_error(req, 400, cp_reason_code(CP_R_BATCH_TOO_LARGE), "the batch has %zu events; the limit is %zu", n,
                   gw->cfg.max_batch);
    goto out;
  }
  evs = cp_xcalloc(n, sizeof *evs);
  evp = cp_xcalloc(n, sizeof *evp);
  for (size_t i = 0; i < n; i++) {
    evp[i] = &evs[i];
    if (event_from_json(req, json_array_get(arr, i), i + 1, &evs[i]) != 0) goto out;
  }
  b = cp_xcalloc(1, sizeof *b);
  b->req = req;
  b->committed = committed;
  snprintf(b->provider, sizeof b->provider, "%.*s", (int)sizeof b->provider - 1, req->subject);
  b->n = n;
  b->ans = cp_xcalloc(n, sizeof *b->ans);
  if (process(req, b, evp, n) != 0) {
    gw_reply_unavailable(req, "the event store");
    goto out;
  }
  if (b->nwaiting > 0) {
    b->deadline_ms = req->started_ms + gw->cfg.ack_timeout_ms;
    MHD_suspend_connection(req->conn);
    req->suspended = true;
    gw_waiter_add(gw->waiter, &b); /* the waiter owns it now */
    goto out;
  }
  gw_batch_reply(gw, b);
out:
  if (evs != NULL)
    for (size_t i = 0; i < n; i++) free(evs[i].evidence_hash.data);
  free(evs);
  free(evp);
  gw_batch_destroy(&b);
  wipe_ni(arr);
  json_decref(arr);
}
