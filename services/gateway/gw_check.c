/* gw_check.c -- employers: POST /v1/check (the passport behind a share code, with a verification
 * statement) and POST /v1/check/bundle (the same passport as a carepass-passport/v1 bundle that
 * `carepass verify` checks offline). No credential; failed checks are rate limited (gw_share_open.c).
 *
 * Request {"share_code": "ABC-DEF-GHJ", "date_of_birth": "YYYY-MM-DD", "employer": "label" (optional,
 *          <= 200 bytes of printable text, shown to the worker marked self-declared; control or bidi
 *          characters: 400 LABEL_CONTROL_CHAR / LABEL_BIDI_CONTROL, longer: LABEL_TOO_LONG),
 *          "format": "json" | "bundle" (POST /v1/check only)}
 * Reply 200 {"checked_on": "YYYY-MM-DD", "share_code": {"id", "expires_at", "allow_subscriptions"},
 *   "checkpoint": {"origin", "size", "root"},
 *   "records": [{"index", "type": "record" | "award", "qualification_code", "title",
 *                "provider": {"id", "name"}, "completion_date", "valid_until" (or null),
 *                "status": "valid" | "expired" | "revoked" | "not yet valid",
 *                "revocation": {"index", "reason_code", "reason", "date"} (when revoked),
 *                "checks": {"signature", "inclusion", "revocation", "expiry"}: "passed" | "failed" |
 *                          "not established" (expiry: on the record's own dates, whatever its
 *                          revocation -- see record_facts),
 *                "statement": "a sentence in plain words"}],
 *   "verification": {"signature", "inclusion", "revocation", "expiry", "authentic": bool,
 *                    "statement": "..."}}
 * Status on today's date (cp_today) by reg_record_status, the one validity rule. The worker's
 * entries come from the Redis index (cp:w:{hex}:entries); each is read from the register, its
 * signature checked with the key valid at its index and its inclusion proved against the current
 * signed checkpoint (gw_check_cache.c). Every successful check is recorded for the worker.
 * POST /v1/check answering JSON is queued on the event loop it arrived on (gw_check_batch.c), which
 * opens many employers' codes in one Redis pipeline and runs the steps gw_check_jobs below; bundles
 * (and a bad "format", still checked after the code as it always was) are answered at once.
 * The employer's HTML form (POST /check, gw_check_form.c) comes in through check_submit too, with a
 * body made from the form: the same steps, answered by gw_check_page.c (reply_page hands it the
 * same facts, record_facts and readiness_compute, that the JSON is written from).
 * Errors: see gw_share_open.c; 503 UNAVAILABLE when Redis or the register cannot be read. */
#include "gw_check.h"
#include "gw_http.h"
#include "gw_check_cache.h"
#include "gw_check_json.h"
#include "gw_check_model.h"
#include "gw_check_page.h"
#include "gw_check_routes.h"
#include "gw_check_views.h"
#include "gw_share.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cp_dates.h"
#include "cp_keys.h"
#include "cp_log.h"
#include "cp_regkeys.h"
#include "cp_subject.h"

#define ENTRIES_MAX 100000     /* most register indexes read for one worker */
#define EMPLOYER_MAX 200       /* longest employer label (self-declared: gw_json_label) */
#define UA_MAX 200             /* longest user agent kept for the worker (longer is cut) */

#define ET_RECORD CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_RECORD
#define ET_REVOCATION CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION
#define ET_AWARD CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_DERIVED_AWARD

static const char *PASSED = "passed", *FAILED = "failed", *NOT_EST = "not established";

/* One request's passport. */
typedef struct {
  json_t *body;            // request body
  gw_sc_t sc;              // the opened share code
  const char *employer;    // employer label ("" when not given): into body, or the registered name (gw_employer_label)
  const char *ua;          // User-Agent header or NULL (lives as long as req)
  uint64_t *idx;           // the worker's register indexes, ascending
  size_t n;                // how many
  gw_centry_t *ent;        // idx[i] checked
  long *rev;               // ent[i] revoked by ent[rev[i]] (-1 = not revoked)
  gw_ccp_t cp;             // checkpoint used
  uint64_t *scope;         // share-code scope (sorted), n_scope == 0 = everything
  size_t nscope;           // entries in scope
  gw_cconn_t *cc;          // batched check: the batch connection the view is written on (else NULL:
                           // this thread's view connection, gw_check_view_send)
  const role_t *role;      // "role": readiness for this pathway role (NULL = not asked)
  int32_t started;         // "started": a new starter in the role since this day (-1 = not)
  uint8_t (*r)[CP_SUBJECT_R_BYTES];  // format 2: the r opening ent[i] (from cp:w:{hex}:r)
  bool *has_r;             // r[i] is known
  gw_check_form_t *form;   // a check from the employer's HTML form (POST /check): answered as a page,
                           // errors through req->error_page (NULL = the JSON API); owned here
  bool own;                // the worker's own passport (GET /v1/passport): no share code, no view
} pp_t;

static void pp_clear(pp_t *p) {
  json_decref(p->body);
  gw_check_form_destroy(&p->form);
  free(p->idx);
  free(p->ent);
  free(p->rev);
  free(p->scope);
  free(p->r);
  free(p->has_r);
  memset(p, 0, sizeof *p);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Is ent[i] a record (or award) the share code shows? */
static bool in_scope(const pp_t *p, size_t i) {
  const Carepass__V1__PassportEntry *pe = p->ent[i].pe;
  if (pe == NULL || (pe->entry_type != ET_RECORD && pe->entry_type != ET_AWARD)) return false;
  return gw_scope_has(p->scope, p->nscope, p->idx[i]);
}

/* Does the entry name this worker? (the Redis index is derived state: trust the register) Format 2:
 * its subject must open to the code's worker with the r the worker's index holds for it. */
static bool is_workers(const pp_t *p, size_t i) {
  const Carepass__V1__PassportEntry *pe = p->ent[i].pe;
  char hex[2 * CP_PSEUDONYM_BYTES + 1];
  if (pe != NULL && pe->version >= 2) {
    cp_opening_t op;
    if (p->has_r == NULL || !p->has_r[i] || pe->subject.len != CP_SUBJECT_BYTES ||
        sodium_hex2bin(op.pseudonym, sizeof op.pseudonym, p->sc.worker, strlen(p->sc.worker), NULL, NULL, NULL) != 0)
      return false;
    memcpy(op.r, p->r[i], sizeof op.r);
    return cp_subject_opens(pe->subject.data, &op);
  }
  if (pe == NULL || pe->worker_pseudonym.len != CP_PSEUDONYM_BYTES) return false;
  cp_hex(pe->worker_pseudonym.data, CP_PSEUDONYM_BYTES, hex);
  return strcmp(hex, p->sc.worker) == 0;
}

static int pp_openings(gw_req_t *req, pp_t *p);

/* Read the fields of body (taken over: p->body) and the employer label. 0, or -1 replied. */
static int pp_parse_body(gw_req_t *req, pp_t *p, json_t *body) {
  memset(p, 0, sizeof *p);
  p->body = body;
  p->employer = "";
  p->ua = gw_header(req, MHD_HTTP_HEADER_USER_AGENT);
  if (gw_employer_label(req, p->body, EMPLOYER_MAX, &p->employer) != 0) return -1;
  const char *role = NULL, *started = NULL;
  p->started = -1;
  if (gw_json_str(req, p->body, "role", false, ROLE_ID_MAX, &role) != 0 ||
      gw_json_str(req, p->body, "started", false, 10, &started) != 0)
    return -1;
  if (role != NULL && (p->role = roles_find(req->gw->roles, role)) == NULL) {
    char list[512] = "";
    for (size_t i = 0; i < roles_count(req->gw->roles); i++)
      snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", roles_at(req->gw->roles, i)->id);
    gw_reply_error(req, 400, GW_E_INVALID_FIELD, "role must be one of the Care Workforce Pathway roles: %s", list);
    return -1;
  }
  if (started != NULL && (p->role == NULL || cp_date_parse(started, &p->started) != 0)) {
    gw_reply_error(req, 400, GW_E_INVALID_FIELD, "started must be a date YYYY-MM-DD, given with a role");
    return -1;
  }
  return 0;
}

/* Read the JSON body and its fields. 0, or -1 replied. */
static int pp_parse(gw_req_t *req, pp_t *p) {
  memset(p, 0, sizeof *p);
  json_t *body = gw_body_json(req, JSON_OBJECT);
  return body == NULL ? -1 : pp_parse_body(req, p, body);
}

/* The readiness answer for p->role on today, from the records the code shows that are genuine
 * (the records counted: *recs, the caller frees; a->req[].by points into it). */
static void readiness_compute(const pp_t *p, int32_t today, role_record_t **recs_out, role_answer_t *a) {
  role_record_t *recs = cp_xcalloc(p->n + 1, sizeof *recs);
  size_t n = 0;
  for (size_t i = 0; i < p->n; i++) {
    if (!in_scope(p, i) || !is_workers(p, i) || !p->ent[i].sig_ok || !p->ent[i].incl_ok) continue;
    const Carepass__V1__PassportEntry *rev = p->rev[i] >= 0 ? p->ent[p->rev[i]].pe : NULL;
    if (role_record_of(p->ent[i].pe, rev, p->idx[i], &recs[n])) n++;
  }
  role_readiness(p->role, recs, n, today, p->started, a);
  *recs_out = recs;
}

/* "readiness": for the role asked about, from the records the code shows that are genuine. */
static void readiness_json(const pp_t *p, int32_t today, gw_jw_t *w) {
  role_record_t *recs = NULL;
  role_answer_t a;
  readiness_compute(p, today, &recs, &a);
  char d[11];
  static const char *const verdict[] = {"ready", "ready_until", "not_ready"};
  gw_jw_kstr(w, ",\"readiness\":{\"role\":", p->role->id);
  gw_jw_kstr(w, ",\"title\":", p->role->title);
  gw_jw_kstr(w, ",\"verdict\":", verdict[a.verdict]);
  if (a.verdict == ROLE_READY_UNTIL) {
    cp_date_format(a.until, d);
    gw_jw_kstr(w, ",\"until\":", d);
  } else {
    gw_jw_raw(w, ",\"until\":null");
  }
  gw_jw_raw(w, ",\"requirements\":[");
  for (size_t k = 0; k < a.nreq; k++) {
    const role_req_result_t *r = &a.req[k];
    gw_jw_kstr(w, k ? ",{\"why\":" : "{\"why\":", p->role->req[k].why);
    gw_jw_kstr(w, ",\"state\":", role_req_state_name(r->state));
    if (r->by != NULL) {
      gw_jw_raw(w, ",\"index\":");
      gw_jw_u64(w, r->by->index);
      gw_jw_kstr(w, ",\"code\":", r->by->code);
      if (r->by->valid_until != ROLE_NEVER) {
        cp_date_format(r->by->valid_until, d);
        gw_jw_kstr(w, ",\"valid_until\":", d);
      }
    }
    gw_jw_raw(w, r->expiring ? ",\"expiring\":true}" : ",\"expiring\":false}");
  }
  gw_jw_kstr(w, "],\"basis\":", p->role->source);
  gw_jw_raw(w, "}");
  free(recs);
}

/* With the code opened (p->sc) and the worker's index read (l, still the caller's; NULL or not an
 * array: 503): check every entry. 0, or -1 replied. */
static int pp_index(gw_req_t *req, pp_t *p, const redisReply *l) {
  if (gw_scope_parse(p->sc.scope, &p->scope, &p->nscope) != 0) {
    p->scope = NULL;
    p->nscope = 0;
  }
  if (l == NULL || l->type != REDIS_REPLY_ARRAY) {
    gw_reply_unavailable(req, "the passport index");
    return -1;
  }
  p->idx = cp_xcalloc(l->elements + 1, sizeof *p->idx);
  for (size_t i = 0; i < l->elements; i++) {
    char *end = NULL;
    if (l->element[i]->type != REDIS_REPLY_STRING) continue;
    unsigned long long v = strtoull(l->element[i]->str, &end, 10);
    if (end != l->element[i]->str && *end == '\0') p->idx[p->n++] = v;
  }
  qsort(p->idx, p->n, sizeof *p->idx, cmp_u64);
  size_t k = 0;
  for (size_t i = 0; i < p->n; i++)
    if (k == 0 || p->idx[k - 1] != p->idx[i]) p->idx[k++] = p->idx[i];
  p->n = k;
  p->ent = cp_xcalloc(p->n + 1, sizeof *p->ent);
  p->rev = cp_xcalloc(p->n + 1, sizeof *p->rev);
  char err[CP_ERRLEN];
  if (gw_check_entries(req->gw, p->idx, p->n, p->ent, &p->cp, err, sizeof err) != 0) {
    cp_log_warn("check: register unavailable", CP_KV_STR("error", err), CP_KV_END);
    gw_reply_unavailable(req, "the register");
    return -1;
  }
  if (pp_openings(req, p) != 0) return -1;
  /* revocations (authentic ones only) point back at the worker's earlier entries; the earliest wins */
  for (size_t i = 0; i < p->n; i++) p->rev[i] = -1;
  for (size_t i = 0; i < p->n; i++) {
    const Carepass__V1__PassportEntry *pe = p->ent[i].pe;
    if (pe == NULL || pe->entry_type != ET_REVOCATION || !p->ent[i].sig_ok || !p->ent[i].incl_ok ||
        !is_workers(p, i))
      continue;
    for (size_t j = 0; j < i; j++)
      if (p->idx[j] == pe->revokes_index &&
          (p->rev[j] < 0 || p->ent[p->rev[j]].pe->issued_at > pe->issued_at))
        p->rev[j] = (long)i;
  }
  return 0;
}

/* Format-2 entries: the r of each, from the worker's index (one HGETALL, only when there is such
 * an entry). 0, or -1 replied. */
static int pp_openings(gw_req_t *req, pp_t *p) {
  bool any = false;
  for (size_t i = 0; i < p->n && !any; i++) any = p->ent[i].pe != NULL && p->ent[i].pe->version >= 2;
  if (!any) return 0;
  cp_redis_t *r = gw_redis(req);
  cp_key_t key;
  redisReply *h = r != NULL ? cp_redis_cmd(r, "HGETALL %s", cp_key_w_openings(&key, p->sc.worker)) : NULL;
  if (h == NULL || h->type != REDIS_REPLY_ARRAY) {
    if (h != NULL) freeReplyObject(h);
    gw_reply_unavailable(req, "the passport index");
    return -1;
  }
  p->r = cp_xcalloc(p->n + 1, sizeof *p->r);
  p->has_r = cp_xcalloc(p->n + 1, sizeof *p->has_r);
  for (size_t k = 0; k + 1 < h->elements; k += 2) {
    const redisReply *f = h->element[k], *v = h->element[k + 1];
    char *end = NULL;
    if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) continue;
    uint64_t idx = strtoull(f->str, &end, 10);
    if (end == f->str || *end != '\0') continue;
    const uint64_t *at = bsearch(&idx, p->idx, p->n, sizeof *p->idx, cmp_u64);
    if (at == NULL) continue;
    size_t i = (size_t)(at - p->idx);
    p->has_r[i] = sodium_hex2bin(p->r[i], sizeof p->r[i], v->str, v->len, NULL, NULL, NULL) == 0;
  }
  freeReplyObject(h);
  return 0;
}

/* With the body parsed: open the code, read the worker's index, check every entry, on this
 * thread. 0, or -1 replied. */
static int pp_open(gw_req_t *req, pp_t *p) {
  cp_redis_pipe_t *held = NULL;
  const redisReply *l = NULL;
  if (gw_sc_open_entries(req, p->body, &p->sc, &held, &l, ENTRIES_MAX) != 0) return -1;
  if (l != NULL) {
    int rc = pp_index(req, p, l);
    cp_redis_pipe_destroy(&held);
    return rc;
  }
  /* not read with the code (first open of this code on this thread) */
  cp_redis_t *r = gw_redis(req);
  if (r == NULL) {
    gw_reply_unavailable(req, "the passport index");
    return -1;
  }
  cp_key_t key;
  redisReply *own = cp_redis_cmd(r, "LRANGE %s 0 %d", cp_key_w_entries(&key, p->sc.worker), ENTRIES_MAX - 1);
  int rc = pp_index(req, p, own);
  if (own != NULL) freeReplyObject(own);
  return rc;
}

static int pp_load(gw_req_t *req, pp_t *p) { return pp_parse(req, p) != 0 ? -1 : pp_open(req, p); }

static const char *reason_text(const char *code) {
  static const struct { const char *code, *text; } t[] = {
    {"ISSUED_IN_ERROR", "issued in error"}, {"FRAUD", "fraud"},
    {"PROVIDER_DEACCREDITED", "the provider lost its accreditation"},
    {"ASSESSMENT_INVALID", "the assessment was found invalid"}, {"DUPLICATE", "a duplicate record"},
    {"WORKER_REQUEST", "withdrawn at the worker's request"}, {"OTHER", "another reason"},
    {"REQUIREMENT_REVOKED", "a record it was awarded for was revoked"},
  };
  for (size_t i = 0; i < CP_ARRAY_LEN(t); i++)
    if (strcmp(code, t[i].code) == 0) return t[i].text;
  return "a reason not listed";
}

/* Worst of two check results: failed > not established > passed. */
static const char *worst(const char *a, const char *b) {
  if (a == FAILED || b == FAILED) return FAILED;
  if (a == NOT_EST || b == NOT_EST) return NOT_EST;
  return PASSED;
}

/* ---- rendered records, cached per event loop ----------------------------------------------
 * A record's JSON depends only on the entry, its revocation, the checkpoint it was checked against
 * and the day: a passport checked again (the common case: an employer's page, a recruiter's batch)
 * copies its records' text instead of writing it again. Direct-mapped by register index. */
#define RC_SLOTS 2048

typedef struct {
  uint64_t index;       // register index of the record
  uint64_t rev_index;   // index of the revocation it was shown with (UINT64_MAX = none)
  uint64_t cp_size;     // checkpoint the checks and the statement are against...
  uint8_t cp_root[32];  // ...and its root hash
  int32_t today;        // the day its status is for
  char *json;           // the record's JSON text (NULL = empty slot)
  size_t len;           // its length
} rc_slot_t;

struct gw_rcache {
  rc_slot_t slot[RC_SLOTS];  // by index % RC_SLOTS
};

/* The cache of the loop running on this thread (NULL on other threads). */
static __thread gw_rcache_t *tls_rc;

gw_rcache_t *gw_rcache_new(void) { return cp_xcalloc(1, sizeof(gw_rcache_t)); }

void gw_rcache_bind(gw_rcache_t *rc) { tls_rc = rc; }

void gw_rcache_destroy(gw_rcache_t **rcp) {
  gw_rcache_t *rc = *rcp;
  if (rc == NULL) return;
  for (size_t i = 0; i < RC_SLOTS; i++) free(rc->slot[i].json);
  free(rc);
  *rcp = NULL;
}

/* The slot record i of p would be kept in (NULL off the loops), and whether it holds it now. */
static rc_slot_t *rc_find(const pp_t *p, size_t i, int32_t today, bool *hit) {
  gw_rcache_t *rc = tls_rc;
  *hit = false;
  if (rc == NULL) return NULL;
  rc_slot_t *s = &rc->slot[p->idx[i] % RC_SLOTS];
  uint64_t rix = p->rev[i] >= 0 ? p->idx[p->rev[i]] : UINT64_MAX;
  *hit = s->json != NULL && s->index == p->idx[i] && s->rev_index == rix && s->cp_size == p->cp.size &&
         s->today == today && memcmp(s->cp_root, p->cp.root, 32) == 0;
  return s;
}

static void rc_store(rc_slot_t *s, const pp_t *p, size_t i, int32_t today, const char *json, size_t len) {
  free(s->json);
  s->json = cp_xmalloc(len);
  memcpy(s->json, json, len);
  s->len = len;
  s->index = p->idx[i];
  s->rev_index = p->rev[i] >= 0 ? p->idx[p->rev[i]] : UINT64_MAX;
  s->cp_size = p->cp.size;
  memcpy(s->cp_root, p->cp.root, 32);
  s->today = today;
}

/* What the check found about one record: the facts both the JSON reply and the page are made of. */
typedef struct {
  const Carepass__V1__PassportEntry *pe;   // the record
  const Carepass__V1__PassportEntry *rev;  // its revocation (NULL = not revoked)
  reg_status_t st;                         // its status today (reg_record_status, the one rule)
  const cat_qual_t *q;                     // its catalogue entry (NULL = unknown code)
  const prov_t *pv;                        // its provider (NULL = not in the registry)
  const char *title;                       // q's title, else the code
  const char *c_sig, *c_incl, *c_rev, *c_exp; // the four checks: PASSED / FAILED / NOT_EST
  const char *status;                      // the status word of the API
  char rday[11];                           // the revocation's day ("" = not revoked)
} rec_facts_t;

/* The facts of ent[i] on today. checks.expiry is judged on the record's own dates (completion
 * and valid_until), whatever its revocation: a revoked record whose valid_until has passed fails
 * it, one still within its dates passes it (and fails the revocation check). Before, expiry was
 * derived from the single status, so a revoked and lapsed record said expiry "passed". */
static void record_facts(const gw_t *gw, const pp_t *p, size_t i, const char *today, rec_facts_t *f) {
  const gw_centry_t *e = &p->ent[i];
  f->pe = e->pe;
  f->rev = p->rev[i] >= 0 ? p->ent[p->rev[i]].pe : NULL;
  f->st = reg_record_status(f->pe, f->rev, today);
  f->q = gw->catalogue != NULL ? cat_find(gw->catalogue, f->pe->qualification_code) : NULL;
  f->pv = gw->providers != NULL ? prov_find(gw->providers, f->pe->provider_id) : NULL;
  f->title = f->q != NULL ? f->q->title : f->pe->qualification_code;
  reg_status_t dates = reg_record_status(f->pe, NULL, today); /* the dates alone */
  f->c_sig = e->sig_ok ? PASSED : FAILED;
  f->c_incl = e->incl_ok ? PASSED : (e->beyond ? NOT_EST : FAILED);
  f->c_rev = f->st == REG_STATUS_REVOKED ? FAILED : PASSED;
  f->c_exp = (dates == REG_STATUS_EXPIRED || dates == REG_STATUS_NOT_YET || dates == REG_STATUS_BAD_DATE)
                 ? FAILED : PASSED;
  reg_status_t st = f->st;
  f->status = st == REG_STATUS_VALID ? "valid" : st == REG_STATUS_EXPIRED ? "expired"
              : st == REG_STATUS_REVOKED ? "revoked" : st == REG_STATUS_NOT_YET ? "not yet valid"
              : "invalid dates";
  f->rday[0] = '\0';
  if (f->rev != NULL) cp_date_format((int32_t)((f->rev->issued_at < 0 ? 0 : f->rev->issued_at) / 86400), f->rday);
}

/* Append one record's JSON (from the loop's cache when it holds it); updates the overall results. */
static void record_json(gw_req_t *req, const pp_t *p, size_t i, const char *today, int32_t today_d,
                        gw_jw_t *w, const char *ov[4], int counts[5]) {
  const gw_centry_t *e = &p->ent[i];
  rec_facts_t f;
  record_facts(req->gw, p, i, today, &f);
  const Carepass__V1__PassportEntry *pe = f.pe, *rev = f.rev;
  reg_status_t st = f.st;
  const prov_t *pv = f.pv;
  const char *title = f.title, *c_sig = f.c_sig, *c_incl = f.c_incl, *c_rev = f.c_rev, *c_exp = f.c_exp;
  const char *status = f.status;
  ov[0] = worst(ov[0], c_sig);
  ov[1] = worst(ov[1], c_incl);
  ov[2] = worst(ov[2], c_rev);
  ov[3] = worst(ov[3], c_exp);
  counts[st == REG_STATUS_VALID ? 0 : st == REG_STATUS_EXPIRED ? 1 : st == REG_STATUS_REVOKED ? 2
         : st == REG_STATUS_NOT_YET ? 3 : 4]++;
  bool hit;
  rc_slot_t *slot = rc_find(p, i, today_d, &hit);
  if (hit) {
    gw_jw_rawn(w, slot->json, slot->len);
    return;
  }
  size_t start = w->len;

  const char *rday = f.rday;
  bool authentic = e->sig_ok && e->incl_ok;
  char stmt[768];
  int k;
  if (authentic && st == REG_STATUS_REVOKED) /* a revoked record is never called genuine */
    k = snprintf(stmt, sizeof stmt, "This record is signed by the register's key and included in the register's "
                 "signed checkpoint of %llu entries, but it was revoked: do not rely on it. ",
                 (unsigned long long)p->cp.size);
  else if (authentic)
    k = snprintf(stmt, sizeof stmt, "This record is genuine: it is signed by the register's key and included in the "
                 "register's signed checkpoint of %llu entries. ", (unsigned long long)p->cp.size);
  else
    k = snprintf(stmt, sizeof stmt, "This record could NOT be shown to be genuine (%s). ", e->problem);
  if (k < 0) k = 0;
  size_t used = (size_t)k < sizeof stmt ? (size_t)k : sizeof stmt - 1;
  switch (st) {
  case REG_STATUS_VALID:
    snprintf(stmt + used, sizeof stmt - used, "It is valid today (%s): completed on %s, %s%s, and not revoked.", today,
             pe->completion_date, pe->valid_until[0] ? "valid until " : "it does not expire",
             pe->valid_until);
    break;
  case REG_STATUS_EXPIRED:
    snprintf(stmt + used, sizeof stmt - used, "It is NOT valid today (%s): it expired after %s.", today, pe->valid_until);
    break;
  case REG_STATUS_REVOKED:
    snprintf(stmt + used, sizeof stmt - used, "It is NOT valid today (%s): it was revoked on %s (%s).", today, rday,
             reason_text(rev->reason_code));
    break;
  case REG_STATUS_NOT_YET:
    snprintf(stmt + used, sizeof stmt - used, "It is NOT valid yet: it was completed on %s, after today (%s).",
             pe->completion_date, today);
    break;
  default:
    snprintf(stmt + used, sizeof stmt - used, "Its dates are malformed.");
    break;
  }

  /* the keys in the order the reply has always had */
  gw_jw_raw(w, "{\"index\":");
  gw_jw_u64(w, p->idx[i]);
  gw_jw_kstr(w, ",\"type\":", pe->entry_type == ET_AWARD ? "award" : "record");
  gw_jw_kstr(w, ",\"qualification_code\":", pe->qualification_code);
  gw_jw_kstr(w, ",\"title\":", title);
  gw_jw_kstr(w, ",\"provider\":{\"id\":", pe->provider_id);
  gw_jw_kstr(w, ",\"name\":", pv != NULL ? pv->name : pe->provider_id);
  gw_jw_kstr(w, "},\"completion_date\":", pe->completion_date);
  if (pe->valid_until[0]) gw_jw_kstr(w, ",\"valid_until\":", pe->valid_until);
  else gw_jw_raw(w, ",\"valid_until\":null");
  gw_jw_kstr(w, ",\"status\":", status);
  gw_jw_kstr(w, ",\"checks\":{\"signature\":", c_sig);
  gw_jw_kstr(w, ",\"inclusion\":", c_incl);
  gw_jw_kstr(w, ",\"revocation\":", c_rev);
  gw_jw_kstr(w, ",\"expiry\":", c_exp);
  gw_jw_kstr(w, "},\"statement\":", stmt);
  if (rev != NULL) {
    gw_jw_raw(w, ",\"revocation\":{\"index\":");
    gw_jw_u64(w, p->idx[p->rev[i]]);
    gw_jw_kstr(w, ",\"reason_code\":", rev->reason_code);
    gw_jw_kstr(w, ",\"reason\":", reason_text(rev->reason_code));
    gw_jw_kstr(w, ",\"date\":", rday);
    gw_jw_raw(w, "}");
  }
  gw_jw_raw(w, "}");
  if (slot != NULL && !w->bad) rc_store(slot, p, i, today_d, w->s + start, w->len - start);
}

/* Remember the view for the worker (best effort: a failure is logged, the employer still gets the answer). */
static void record_view(gw_req_t *req, const pp_t *p, size_t nrec, const char *kind) {
  /* the user agent is self-declared too: cut to UA_MAX bytes at a character boundary; one with
   * control or bidi characters (or not UTF-8) is left out, not shown to the worker */
  const char *ua = p->ua != NULL ? p->ua : "";
  char uab[UA_MAX + 1];
  size_t ul = strlen(ua);
  if (ul > UA_MAX) {
    ul = UA_MAX;
    while (ul > 0 && ((unsigned char)ua[ul] & 0xC0) == 0x80) ul--; /* not inside a sequence */
  }
  memcpy(uab, ua, ul);
  uab[ul] = '\0';
  bool ua_ok = gw_label_check(uab, ul, UA_MAX) == CP_OK;
  gw_jw_t w;
  gw_jw_init(&w, 512);
  gw_jw_raw(&w, "{\"at\":");
  gw_jw_i64(&w, (int64_t)time(NULL));
  gw_jw_kstr(&w, ",\"code_id\":", p->sc.id);
  gw_jw_kstr(&w, ",\"kind\":", kind);
  gw_jw_kstr(&w, ",\"employer\":", p->employer);
  if (req->employer != NULL) gw_jw_kstr(&w, ",\"employer_id\":", req->employer->id); /* checked: its token */
  gw_jw_kstr(&w, ",\"client\":{\"ip\":", req->client_ip);
  if (ua_ok) gw_jw_kstr(&w, ",\"user_agent\":", uab); /* else left out */
  gw_jw_raw(&w, "},\"records\":");
  gw_jw_u64(&w, nrec);
  gw_jw_raw(&w, "}");
  if (!w.bad) {
    cp_key_t key;
    cp_key_w_views(&key, p->sc.worker);
    if (p->cc != NULL) gw_cconn_view(p->cc, key.s, w.s, p->sc.id);
    else gw_check_view_send(req->gw, key.s, w.s, p->sc.id);
  }
  gw_jw_free(&w);
}

static void reply_bundle(gw_req_t *req, pp_t *p) {
  /* records in scope, and the revocations of those records */
  uint64_t *sel = cp_xcalloc(p->n + 1, sizeof *sel);
  const uint8_t **rs = cp_xcalloc(p->n + 1, sizeof *rs);   /* the openings of exactly what is shown */
  size_t ns = 0, nrec = 0;
  for (size_t i = 0; i < p->n; i++) {
    const Carepass__V1__PassportEntry *pe = p->ent[i].pe;
    if (pe == NULL || !is_workers(p, i)) continue;
    bool shown = false;
    if (in_scope(p, i)) {
      shown = true;
      nrec++;
    } else if (pe->entry_type == ET_REVOCATION) {
      for (size_t j = 0; j < i && !shown; j++) shown = p->idx[j] == pe->revokes_index && in_scope(p, j);
    }
    if (!shown) continue;
    rs[ns] = p->has_r != NULL && p->has_r[i] ? p->r[i] : NULL;
    sel[ns++] = p->idx[i];
  }
  char *text = NULL, err[CP_ERRLEN];
  size_t len = 0;
  int brc = gw_check_bundle(req->gw, p->sc.worker, sel, (const uint8_t *const *)rs, ns, &text, &len, err, sizeof err);
  free(rs);
  if (brc != 0) {
    free(sel);
    cp_log_warn("check: bundle failed", CP_KV_STR("error", err), CP_KV_END);
    gw_reply_unavailable(req, "the register");
    return;
  }
  free(sel);
  record_view(req, p, nrec, "bundle");
  gw_reply_take(req, 200, "application/vnd.carepass.passport", text, len);
  char cd[96];
  snprintf(cd, sizeof cd, "attachment; filename=\"passport-%s.carepass\"", p->sc.id);
  gw_reply_header(req, "Content-Disposition", cd);
  gw_reply_header(req, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
}

static void reply_passport(gw_req_t *req, pp_t *p) {
  char today[11], root[64] = "", exp_at[32];
  int32_t today_d = cp_today();
  cp_date_format(today_d, today);
  if (cp_b64_encode(p->cp.root, 32, root, sizeof root) != 0) root[0] = '\0';
  time_t t = (time_t)p->sc.expires;
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(exp_at, sizeof exp_at, "%Y-%m-%dT%H:%M:%SZ", &tm);
  /* one buffer, in the order of the reply: the totals the end needs are known by then */
  gw_jw_t w;
  gw_jw_init(&w, 2048 + 1024 * (p->n < 64 ? p->n : 64)); /* grows when needed */
  gw_jw_kstr(&w, "{\"checked_on\":", today);
  if (p->role != NULL) readiness_json(p, today_d, &w);   /* the employer's question first */
  if (!p->own) {
    gw_jw_kstr(&w, ",\"share_code\":{\"id\":", p->sc.id);
    gw_jw_kstr(&w, ",\"expires_at\":", exp_at);
    gw_jw_raw(&w, p->sc.subs ? ",\"allow_subscriptions\":true}" : ",\"allow_subscriptions\":false}");
    /* the consent given with this code, told only to its employer checking with its own token */
    if (p->sc.consent[0] && req->employer != NULL && strcmp(req->employer->id, p->sc.consent_employer) == 0) {
      char cid[48];
      snprintf(cid, sizeof cid, "cn_%s", p->sc.consent);
      gw_jw_kstr(&w, ",\"ongoing_access\":{\"consent_id\":", cid);
      gw_jw_raw(&w, "}");
    }
  }
  gw_jw_kstr(&w, ",\"checkpoint\":{\"origin\":", p->cp.origin);
  gw_jw_raw(&w, ",\"size\":");
  gw_jw_u64(&w, p->cp.size);
  gw_jw_kstr(&w, ",\"root\":", root);
  gw_jw_raw(&w, "},\"records\":[");
  const char *ov[4] = {PASSED, PASSED, PASSED, PASSED};
  int counts[5] = {0};
  size_t nrec = 0;
  for (size_t i = 0; i < p->n; i++) {
    if (!in_scope(p, i) || !is_workers(p, i)) continue;
    if (nrec > 0) gw_jw_raw(&w, ",");
    record_json(req, p, i, today, today_d, &w, ov, counts);
    nrec++;
  }
  gw_jw_raw(&w, "]");
  bool authentic = ov[0] == PASSED && ov[1] == PASSED;
  char stmt[640];
  if (nrec == 0)
    snprintf(stmt, sizeof stmt, p->own ? "Your passport holds no records yet." : "This share code shows no records.");
  else
    snprintf(stmt, sizeof stmt,
             "%s On %s, %d %s valid, %d expired, %d revoked%s%s. Checked against the register's signed checkpoint "
             "of %llu entries%s%s.",
             !authentic ? "Some records could NOT be shown to be genuine; do not rely on them."
             : counts[2] > 0 ? (nrec == 1 ? "The record is signed and in the register, but it was revoked."
                                          : "Every record is signed and in the register; the revoked ones must not "
                                            "be relied on.")
             : (nrec == 1 ? "The record is genuine." : "Every record is genuine."),
             today, counts[0], counts[0] == 1 ? "is" : "are", counts[1], counts[2],
             counts[3] ? ", and some are not valid yet" : "", counts[4] ? ", and some have malformed dates" : "",
             (unsigned long long)p->cp.size, p->cp.origin[0] ? " of " : "", p->cp.origin);
  gw_jw_kstr(&w, ",\"verification\":{\"signature\":", ov[0]);
  gw_jw_kstr(&w, ",\"inclusion\":", ov[1]);
  gw_jw_kstr(&w, ",\"revocation\":", ov[2]);
  gw_jw_kstr(&w, ",\"expiry\":", ov[3]);
  gw_jw_raw(&w, authentic ? ",\"authentic\":true" : ",\"authentic\":false");
  gw_jw_kstr(&w, ",\"statement\":", stmt);
  gw_jw_raw(&w, "}}\n");
  if (w.bad) { /* a signed entry that is not UTF-8: the signer refuses those, so this is a bug */
    gw_jw_free(&w);
    cp_log_error("check: a record is not UTF-8 text", CP_KV_STR("code_id", p->sc.id), CP_KV_END);
    gw_reply_error(req, 500, GW_E_INTERNAL, "the passport could not be shown; the operators have been told");
    return;
  }
  if (!p->own) record_view(req, p, nrec, "check");   /* a worker looking at their own is no view */
  size_t len = 0;
  char *text = gw_jw_take(&w, &len);
  gw_reply_take(req, 200, "application/json", text, len);
  gw_reply_header(req, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
}

/* The employer's form (POST /check): the same passport as reply_passport, as facts for the page. */
static void reply_page(gw_req_t *req, pp_t *p) {
  gw_check_model_t m;
  memset(&m, 0, sizeof m);
  m.today_d = cp_today();
  cp_date_format(m.today_d, m.today);
  m.code_id = p->sc.id;
  m.code_expires = p->sc.expires;
  m.partial = p->nscope > 0;
  m.origin = p->cp.origin;
  m.cp_size = p->cp.size;
  m.rec = cp_xcalloc(p->n + 1, sizeof *m.rec);
  m.authentic = true;
  for (size_t i = 0; i < p->n; i++) {
    if (!in_scope(p, i) || !is_workers(p, i)) continue;
    rec_facts_t f;
    record_facts(req->gw, p, i, m.today, &f);
    gw_mrec_t *r = &m.rec[m.nrec++];
    r->index = p->idx[i];
    r->award = f.pe->entry_type == ET_AWARD;
    r->code = f.pe->qualification_code;
    r->title = f.title;
    r->kind = f.q != NULL ? f.q->kind : "";
    r->provider_id = f.pe->provider_id;
    r->provider_name = f.pv != NULL ? f.pv->name : f.pe->provider_id;
    r->completion_date = f.pe->completion_date;
    r->valid_until = f.pe->valid_until;
    r->status = f.st;
    r->status_text = f.status;
    int32_t vu;
    r->expiring = f.st == REG_STATUS_VALID && f.pe->valid_until[0] && cp_date_parse(f.pe->valid_until, &vu) == 0 &&
                  vu - m.today_d <= ROLE_EXPIRING_DAYS;
    if (f.rev != NULL && f.st == REG_STATUS_REVOKED) {
      r->rev_code = f.rev->reason_code;
      snprintf(r->rev_date, sizeof r->rev_date, "%s", f.rday);
      r->rev_index = p->idx[p->rev[i]];
    }
    r->c_sig = f.c_sig, r->c_incl = f.c_incl, r->c_rev = f.c_rev, r->c_exp = f.c_exp;
    r->authentic = p->ent[i].sig_ok && p->ent[i].incl_ok;
    r->problem = r->authentic ? "" : p->ent[i].problem;
    if (!r->authentic) m.authentic = false;
    m.counts[f.st == REG_STATUS_VALID ? 0 : f.st == REG_STATUS_EXPIRED ? 1 : f.st == REG_STATUS_REVOKED ? 2
             : f.st == REG_STATUS_NOT_YET ? 3 : 4]++;
  }
  if (p->role != NULL) {
    m.role = p->role;
    readiness_compute(p, m.today_d, &m.role_recs, &m.answer);
  }
  if (gw_check_page_result(req, &m, p->form) == 0) record_view(req, p, m.nrec, "check");
  free(m.rec);
  free(m.role_recs);
}

/* Answer an opened check: as a page for the form, else as JSON. */
static void reply_check(gw_req_t *req, pp_t *p) {
  if (p->form != NULL) reply_page(req, p);
  else reply_passport(req, p);
}

/* One check queued on its loop (gw_check_batch.c). */
struct gw_cjob {
  gw_req_t *req;            // the request (suspended while the job is queued)
  pp_t p;                   // its passport (body parsed; filled by the steps)
  gw_sc_probe_t probe;      // the code and date of birth, hashed
  char hinted[2 * CP_PSEUDONYM_BYTES + 1]; // worker whose index was read with the code ("" = none)
  int nlookup;              // commands sent by gw_cjob_lookup (3 or 4)
  gw_sc_verdict_t verdict;  // what gw_cjob_judge found
  redisReply *entries;      // the worker's index when read with the code
};

/* Append the read of a worker's register indexes. */
static void append_lrange(redisContext *c, const char *worker) {
  cp_key_t key;
  char last[24];
  snprintf(last, sizeof last, "%d", ENTRIES_MAX - 1);
  gw_redis_cmd(c, 4, (const char *[]){"LRANGE", cp_key_w_entries(&key, worker), "0", last});
}

static int cjob_lookup(gw_cjob_t *j, redisContext *c) {
  char bufs[2][24];
  const char *argv[GW_RL_RESERVE_ARGC];
  gw_sc_reserve_argv(j->probe.ipkey, j->probe.limit_ip, bufs, argv);
  gw_redis_cmd(c, GW_RL_RESERVE_ARGC, argv);
  gw_sc_reserve_argv(j->probe.codekey, j->probe.limit_code, bufs, argv);
  gw_redis_cmd(c, GW_RL_RESERVE_ARGC, argv);
  gw_redis_cmd(c, 2, (const char *[]){"HGETALL", j->probe.sckey});
  snprintf(j->hinted, sizeof j->hinted, "%s", gw_sc_hint_get(j->probe.code_hash));
  j->nlookup = 3;
  if (j->hinted[0] != '\0') {
    append_lrange(c, j->hinted);
    j->nlookup = 4;
  }
  return j->nlookup;
}

static int cjob_judge(gw_cjob_t *j, redisReply **rep, redisContext *c) {
  j->verdict = gw_sc_probe_judge(&j->probe, rep[0], rep[1], rep[2], &j->p.sc);
  gw_sc_probe_clear(&j->probe);
  switch (j->verdict) {
  case GW_SC_LIMITED_IP:
  case GW_SC_LIMITED_CODE:
  case GW_SC_NO_MATCH:
    return 0;
  case GW_SC_OPENED:
    break;
  }
  if (j->nlookup == 4 && strcmp(j->hinted, j->p.sc.worker) == 0 && rep[3] != NULL &&
      rep[3]->type == REDIS_REPLY_ARRAY) {
    j->entries = rep[3]; /* read in the same pipeline as the code: as fresh as a separate read */
    rep[3] = NULL;
  }
  gw_sc_hint_set(j->p.sc.code_hash, j->p.sc.worker);
  if (j->entries != NULL) return 0;
  append_lrange(c, j->p.sc.worker);
  return 1;
}

static void cjob_finish(gw_cjob_t *j, redisReply *extra, gw_cconn_t *cc) {
  gw_req_t *req = j->req;
  for (int i = 0; i < j->probe.nrelease; i++) gw_cconn_release(cc, j->probe.release[i]);
  if (j->verdict != GW_SC_OPENED) {   /* a failed or locked try on a code that exists: its worker sees it */
    gw_jw_t w;
    cp_key_t key;
    gw_jw_init(&w, 256);
    if (gw_sc_attempt_view(req, &j->probe, j->verdict, &key, &w)) gw_cconn_view(cc, key.s, w.s, NULL);
    gw_jw_free(&w);
  }
  switch (j->verdict) {
  case GW_SC_LIMITED_IP:
  case GW_SC_LIMITED_CODE:
    gw_sc_reply_limited(req, j->probe.ttl, gw_sc_limited_what(&j->probe, j->verdict));
    break;
  case GW_SC_NO_MATCH: /* the reservations made in the lookup are the failure's count */
    gw_sc_reply_no_match(req, &j->probe);
    break;
  case GW_SC_OPENED: {
    const redisReply *l = j->entries != NULL ? j->entries : extra; /* both freed below or by cjob_destroy */
    j->p.cc = cc;
    if (pp_index(req, &j->p, l) == 0) reply_check(req, &j->p);
    break;
  }
  }
  if (extra != NULL) freeReplyObject(extra);
}

static void cjob_fail(gw_cjob_t *j) { gw_reply_unavailable(j->req, "the share-code store"); }

static void cjob_destroy(gw_cjob_t **jp) {
  gw_cjob_t *j = *jp;
  if (j == NULL) return;
  j->req->error_page = NULL; /* its argument, the form, is freed with the job */
  j->req->error_page_arg = NULL;
  gw_sc_probe_clear(&j->probe);
  if (j->entries != NULL) freeReplyObject(j->entries);
  pp_clear(&j->p);
  free(j);
  *jp = NULL;
}

/* Answered: free the job and resume its connection (the next MHD_run calls the dispatcher, which
 * queues the reply). */
static void cjob_done(gw_cjob_t **jp) {
  struct MHD_Connection *conn = (*jp)->req->conn;
  cjob_destroy(jp);
  MHD_resume_connection(conn);
}

const gw_cjob_ops_t gw_check_jobs = {
    .lookup = cjob_lookup, .judge = cjob_judge, .finish = cjob_finish, .fail = cjob_fail, .done = cjob_done};

/* A check of body (taken over) for the JSON API (form NULL) or the employer's form (form taken
 * over: errors and the answer are pages). One path for both: the same fields, the same batched
 * open, the same checks. */
static void check_submit(gw_req_t *req, json_t *body, gw_check_form_t **form) {
  gw_cjob_t *j = cp_xcalloc(1, sizeof *j);
  j->req = req;
  if (form != NULL && *form != NULL) {
    req->error_page = gw_check_page_error;
    req->error_page_arg = *form;
  }
  int prc = pp_parse_body(req, &j->p, body); /* sets p (memset): the form is attached after */
  if (form != NULL) {
    j->p.form = *form;
    *form = NULL;
  }
  if (prc != 0) goto out;
  json_t *f = json_object_get(j->p.body, "format");
  if (f == NULL || (json_is_string(f) && strcmp(json_string_value(f), "json") == 0)) {
    /* the common case: queue it on this loop, which opens the code in one pipeline with the other
     * checks queued, answers and resumes the connection */
    if (gw_sc_probe_init(req, j->p.body, &j->probe) != 0) goto out;
    if (gw_checkq_add(&j) == 0) { /* the loop's queue owns the job now */
      MHD_suspend_connection(req->conn);
      req->suspended = true;
      return;
    }
    gw_sc_probe_clear(&j->probe); /* the loop is stopping: answer now */
  }
  /* a bundle or a bad format (checked after the code, as it always was) */
  pp_t *p = &j->p;
  const char *fmt = NULL;
  if (pp_open(req, p) != 0 || gw_json_str(req, p->body, "format", false, 16, &fmt) != 0) goto out;
  if (fmt != NULL && strcmp(fmt, "bundle") == 0) reply_bundle(req, p);
  else if (fmt == NULL || strcmp(fmt, "json") == 0) reply_check(req, p);
  else gw_reply_error(req, 400, GW_E_INVALID_FIELD, "format must be \"json\" or \"bundle\"");
out:
  cjob_destroy(&j);
}

void gw_check_post(gw_req_t *req) {
  json_t *body = gw_body_json(req, JSON_OBJECT);
  if (body != NULL) check_submit(req, body, NULL);
}

void gw_check_submit_form(gw_req_t *req, json_t *body, gw_check_form_t **form) { check_submit(req, body, form); }

void gw_check_bundle_post(gw_req_t *req) {
  pp_t p;
  if (pp_load(req, &p) == 0) reply_bundle(req, &p);
  pp_clear(&p);
}

/* GET /v1/passport[?role=ROLE] (worker token): the worker's own passport exactly as an employer
 * would see it through a code that shares everything -- every record with its index, title,
 * status and checks, and readiness for a role of the pathway when asked -- so that a worker can
 * choose what to share by name. No share code, and no view is recorded. Errors: 400 INVALID_QUERY
 * (an unknown role), 401 (token), 503 UNAVAILABLE. */
void gw_check_own_get(gw_req_t *req) {
  pp_t p;
  memset(&p, 0, sizeof p);
  p.own = true;
  p.employer = "";
  p.started = -1;
  const char *role = gw_query(req, "role");
  if (role != NULL && (req->gw->roles == NULL || (p.role = roles_find(req->gw->roles, role)) == NULL)) {
    gw_reply_error(req, 400, GW_E_INVALID_QUERY, "role must be one of the Care Workforce Pathway roles (see data/roles.json)");
    return;
  }
  if (strlen(req->subject) != 2 * CP_PSEUDONYM_BYTES) {   /* a worker token names a pseudonym */
    gw_reply_error(req, 401, GW_E_INVALID_TOKEN, "this token does not name a worker");
    return;
  }
  memcpy(p.sc.worker, req->subject, 2 * CP_PSEUDONYM_BYTES + 1);
  cp_redis_t *r = gw_redis(req);
  if (r == NULL) {
    gw_reply_unavailable(req, "the passport index");
    return;
  }
  cp_key_t key;
  redisReply *own = cp_redis_cmd(r, "LRANGE %s 0 %d", cp_key_w_entries(&key, p.sc.worker), ENTRIES_MAX - 1);
  if (pp_index(req, &p, own) == 0) reply_passport(req, &p);
  if (own != NULL) freeReplyObject(own);
  pp_clear(&p);
}

/* The passport of consent cid of the authenticated employer's staff, as a code sharing everything
 * would show it (p: own view, role), loaded into p: 1; 0 when cid is not (or no longer) this
 * employer's consent (nothing to show: as for an unknown id); -1 when the register or the index
 * could not be read (replied 503; p cleared). *since gets the consent's time (unix s). */
static int staff_passport(gw_req_t *req, cp_redis_t *r, const char *cid, const role_t *role, pp_t *p,
                          long long *since) {
  cp_key_t key;
  memset(p, 0, sizeof *p);
  p->own = true;
  p->employer = "";
  p->started = -1;
  p->role = role;
  redisReply *cn = cp_redis_cmd(r, "HMGET %s worker employer since", cp_key_consent(&key, cid));
  bool mine = cn != NULL && cn->type == REDIS_REPLY_ARRAY && cn->elements == 3 &&
              cn->element[0]->type == REDIS_REPLY_STRING && cn->element[0]->len == 2 * CP_PSEUDONYM_BYTES &&
              cn->element[1]->type == REDIS_REPLY_STRING && strcmp(cn->element[1]->str, req->employer->id) == 0;
  if (mine) {
    memcpy(p->sc.worker, cn->element[0]->str, 2 * CP_PSEUDONYM_BYTES + 1);
    *since = cn->element[2]->type == REDIS_REPLY_STRING ? strtoll(cn->element[2]->str, NULL, 10) : 0;
  }
  if (cn != NULL) freeReplyObject(cn);
  if (!mine) return 0;   /* another employer's consent is never shown */
  redisReply *own = cp_redis_cmd(r, "LRANGE %s 0 %d", cp_key_w_entries(&key, p->sc.worker), ENTRIES_MAX - 1);
  int rc = pp_index(req, p, own);
  if (own != NULL) freeReplyObject(own);
  if (rc != 0) {
    pp_clear(p);
    return -1;
  }
  return 1;
}

#define STAFF_MAX 2000   /* workers listed in one staff view */

/* GET /v1/staff[?role=ROLE][&not_ready=1][&expiring=DAYS] (employer token): every worker who gave
 * this employer ongoing access (a consent on the register, cp:emp:{E}:staff), each by its consent
 * id (the employer learns which of its staff a consent is from its check: the check of a code made
 * with ongoing access for it tells its own token the consent id), since when, and from the worker's
 * passport as a code sharing everything would show it: how many records, how many valid, expired
 * and revoked, the next expiry, and readiness for ROLE when asked. Filters: not_ready=1 (needs
 * role: only those not ready), expiring=N (1..365: only those with a valid record ending within N
 * days). A withdrawn consent is gone from the list as soon as its withdrawal is on the register.
 * From the second visit on, each worker has "changes" since the last visit (records new, revoked,
 * expired since then; the visit time is cp:emp:{E}:staff_seen, transient) and the reply says
 * when that "last_visit" was.
 * Errors: 400 INVALID_QUERY, 401/403 (credential), 503 UNAVAILABLE. */
void gw_staff_get(gw_req_t *req) {
  const char *role_q = gw_query(req, "role"), *nr_q = gw_query(req, "not_ready"), *ex_q = gw_query(req, "expiring");
  const role_t *role = NULL;
  if (role_q != NULL && (req->gw->roles == NULL || (role = roles_find(req->gw->roles, role_q)) == NULL)) {
    gw_reply_error(req, 400, GW_E_INVALID_QUERY, "role must be one of the Care Workforce Pathway roles (see data/roles.json)");
    return;
  }
  bool not_ready = nr_q != NULL && strcmp(nr_q, "1") == 0;
  if ((nr_q != NULL && !not_ready && strcmp(nr_q, "0") != 0) || (not_ready && role == NULL)) {
    gw_reply_error(req, 400, GW_E_INVALID_QUERY, "not_ready must be 1 or 0, and needs a role");
    return;
  }
  long expiring = 0;
  if (ex_q != NULL) {
    char *end = NULL;
    expiring = strtol(ex_q, &end, 10);
    if (end == ex_q || *end != '\0' || expiring < 1 || expiring > 365) {
      gw_reply_error(req, 400, GW_E_INVALID_QUERY, "expiring must be a number of days from 1 to 365");
      return;
    }
  }
  cp_redis_t *r = gw_redis(req);
  cp_key_t key;
  redisReply *ids = r != NULL ? cp_redis_cmd(r, "SMEMBERS %s", cp_key_emp_staff(&key, req->employer->id)) : NULL;
  if (ids == NULL || ids->type != REDIS_REPLY_ARRAY) {
    if (ids != NULL) freeReplyObject(ids);
    gw_reply_unavailable(req, "the staff index");
    return;
  }
  int32_t today_d = cp_today();
  char today[11];
  cp_date_format(today_d, today);
  /* the last visit, for "changes since": then this visit becomes the last */
  int64_t now = (int64_t)time(NULL), seen = 0;
  cp_key_t sk;
  redisReply *sv = cp_redis_cmd(r, "GETSET %s %lld", cp_key_emp_seen(&sk, req->employer->id), (long long)now);
  if (sv != NULL && sv->type == REDIS_REPLY_STRING) seen = strtoll(sv->str, NULL, 10);
  if (sv != NULL) freeReplyObject(sv);
  redisReply *ex = cp_redis_cmd(r, "EXPIRE %s %d", sk.s, 400 * 86400);
  if (ex != NULL) freeReplyObject(ex);
  int32_t seen_d = seen > 0 ? (int32_t)(seen / 86400) : 0;
  json_t *list = json_array();
  size_t shown = 0;
  for (size_t k = 0; k < ids->elements && shown < STAFF_MAX; k++) {
    if (ids->element[k]->type != REDIS_REPLY_STRING) continue;
    const char *cid = ids->element[k]->str;
    pp_t p;
    long long since = 0;
    int got = staff_passport(req, r, cid, role, &p, &since);
    if (got < 0) {   /* replied 503 */
      json_decref(list);
      freeReplyObject(ids);
      return;
    }
    if (got == 0) continue;
    int valid = 0, expired = 0, revoked = 0, nrec = 0, new_since = 0, revoked_since = 0, expired_since = 0;
    int32_t next = INT32_MAX;
    char next_code[CAT_CODE_MAX] = "";
    for (size_t i = 0; i < p.n; i++) {
      if (!in_scope(&p, i) || !is_workers(&p, i) || !p.ent[i].sig_ok || !p.ent[i].incl_ok) continue;
      rec_facts_t f;
      record_facts(req->gw, &p, i, today, &f);
      nrec++;
      valid += f.st == REG_STATUS_VALID;
      expired += f.st == REG_STATUS_EXPIRED;
      revoked += f.st == REG_STATUS_REVOKED;
      if (seen > 0) {   /* what changed since the employer last looked */
        int32_t vd;
        new_since += f.pe->issued_at > seen;
        revoked_since += f.rev != NULL && f.rev->issued_at > seen;
        expired_since += f.st == REG_STATUS_EXPIRED && f.pe->valid_until[0] &&
                         cp_date_parse(f.pe->valid_until, &vd) == 0 && vd >= seen_d;
      }
      int32_t vu;
      if (f.st == REG_STATUS_VALID && f.pe->valid_until[0] && cp_date_parse(f.pe->valid_until, &vu) == 0 && vu < next) {
        next = vu;
        snprintf(next_code, sizeof next_code, "%s", f.pe->qualification_code);
      }
    }
    role_answer_t a;
    memset(&a, 0, sizeof a);
    if (role != NULL) {
      role_record_t *recs = NULL;
      readiness_compute(&p, today_d, &recs, &a);
      free(recs);
    }
    pp_clear(&p);
    if (not_ready && a.verdict != ROLE_NOT_READY) continue;
    if (expiring > 0 && (next == INT32_MAX || next > today_d + expiring)) continue;
    char since_at[32] = "", next_s[11] = "";
    time_t t = (time_t)since;
    struct tm tm;
    if (since > 0 && gmtime_r(&t, &tm) != NULL) strftime(since_at, sizeof since_at, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (next != INT32_MAX) cp_date_format(next, next_s);
    char idbuf[48];
    snprintf(idbuf, sizeof idbuf, "cn_%s", cid);
    json_t *o = json_pack("{s:s,s:i,s:i,s:i,s:i}", "consent_id", idbuf, "records", nrec, "valid", valid, "expired",
                          expired, "revoked", revoked);
    if (since_at[0]) json_object_set_new(o, "since", json_string(since_at));
    if (seen > 0)
      json_object_set_new(o, "changes", json_pack("{s:i,s:i,s:i}", "new", new_since, "revoked", revoked_since,
                                                  "expired", expired_since));
    json_object_set_new(o, "next_expiry", next != INT32_MAX ? json_pack("{s:s,s:s}", "date", next_s, "code", next_code)
                                                           : json_null());
    if (role != NULL) {
      static const char *const verdict[] = {"ready", "ready_until", "not_ready"};
      char until[11] = "";
      if (a.verdict == ROLE_READY_UNTIL) cp_date_format(a.until, until);
      json_t *rd = json_pack("{s:s,s:s}", "role", role->id, "verdict", verdict[a.verdict]);
      if (until[0]) json_object_set_new(rd, "until", json_string(until));   /* ready_until only */
      json_object_set_new(o, "readiness", rd);
    }
    json_array_append_new(list, o);
    shown++;
  }
  freeReplyObject(ids);
  json_t *res = json_pack("{s:s,s:s,s:o}", "employer_id", req->employer->id, "checked_on", today, "staff", list);
  if (seen > 0) {
    char last[32];
    time_t t = (time_t)seen;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(last, sizeof last, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_object_set_new(res, "last_visit", json_string(last));
  }
  gw_reply_json(req, 200, res);
  gw_reply_header(req, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
}

#define STAFF_IDS_MAX 2000   /* worker ids in one export request */

/* POST /v1/staff/asc-wds-training.csv (employer token) {"workplace_id": "<LOCALESTID>",
 * "worker_ids": {"cn_<consent>": "<UNIQUEWORKERID>", ...}}: the training of every worker with
 * ongoing access whose consent the employer maps to its own ASC-WDS worker id, as ASC-WDS's
 * training bulk-upload file (common/cp_ascwds.h: the writer the offline `carepass verify
 * --asc-wds` uses too). The ids are the employer's own and are not kept: the mapping comes with
 * each request. Lines: authentic records of the worker that are training (cpd, refresher) with a
 * checked ASC-WDS category and not revoked; NOTES name the register entry. A worker without a
 * mapping, or not (or no longer) on the employer's staff, has no lines; an employer with no staff
 * gets the header alone. Errors: 400 MALFORMED_JSON / MISSING_FIELD / INVALID_FIELD (an id ASC-WDS
 * would not take), 401/403, 503. */
void gw_staff_ascwds_post(gw_req_t *req) {
  json_t *body = gw_body_json(req, JSON_OBJECT);
  if (body == NULL) return;
  const char *estid = NULL;
  json_t *ids = json_object_get(body, "worker_ids");
  if (gw_json_str(req, body, "workplace_id", true, ASCWDS_ID_MAX, &estid) != 0) goto out;
  if (!ascwds_id_ok(estid)) {
    gw_reply_error(req, 400, GW_E_INVALID_FIELD, "workplace_id must be 1 to %d printable characters without commas "
                   "or quotes, as ASC-WDS knows the workplace", ASCWDS_ID_MAX);
    goto out;
  }
  if (ids == NULL || !json_is_object(ids) || json_object_size(ids) > STAFF_IDS_MAX) {
    gw_reply_error(req, 400, GW_E_INVALID_FIELD, "worker_ids must be an object of at most %d consent ids "
                   "(cn_...) each mapped to your ASC-WDS worker id", STAFF_IDS_MAX);
    goto out;
  }
  const char *k;
  json_t *v;
  json_object_foreach(ids, k, v) {
    if (strncmp(k, "cn_", 3) != 0 || !json_is_string(v) || !ascwds_id_ok(json_string_value(v))) {
      gw_reply_error(req, 400, GW_E_INVALID_FIELD, "worker_ids must map consent ids (cn_...) to ASC-WDS worker ids of "
                     "1 to %d printable characters without commas or quotes", ASCWDS_ID_MAX);
      goto out;
    }
  }
  if (req->gw->ascwds == NULL) {
    gw_reply_unavailable(req, "the ASC-WDS category map");
    goto out;
  }
  cp_redis_t *r = gw_redis(req);
  if (r == NULL) {
    gw_reply_unavailable(req, "the staff index");
    goto out;
  }
  char today[11];
  cp_date_format(cp_today(), today);
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (f == NULL) abort();
  fputs(ASCWDS_HEADER, f);
  json_object_foreach(ids, k, v) {
    const char *cid = k + 3;
    pp_t p;
    long long since = 0;
    int got = staff_passport(req, r, cid, NULL, &p, &since);
    if (got < 0) {   /* replied 503 */
      fclose(f);
      free(text);
      goto out;
    }
    if (got == 0) continue;   /* not on this employer's staff: nothing, as for an unknown id */
    for (size_t i = 0; i < p.n; i++) {
      if (!in_scope(&p, i) || !is_workers(&p, i) || !p.ent[i].sig_ok || !p.ent[i].incl_ok) continue;
      rec_facts_t rf;
      record_facts(req->gw, &p, i, today, &rf);
      if (rf.st == REG_STATUS_REVOKED || rf.q == NULL ||
          (strcmp(rf.q->kind, "cpd") != 0 && strcmp(rf.q->kind, "refresher") != 0))
        continue;
      int cat = ascwds_category(req->gw->ascwds, rf.pe->qualification_code);
      int32_t done, until = ASCWDS_NO_EXPIRY;
      if (cat == 0 || cp_date_parse(rf.pe->completion_date, &done) != 0) continue;
      if (rf.pe->valid_until[0] && cp_date_parse(rf.pe->valid_until, &until) != 0) continue;
      char notes[256], line[ASCWDS_LINE_MAX], err[CP_ERRLEN];
      snprintf(notes, sizeof notes, "carepass register %s, entry %llu", p.cp.origin, (unsigned long long)p.idx[i]);
      ascwds_line_t l = {.estid = estid, .workerid = json_string_value(v), .category = cat, .description = rf.title,
                         .completed = done, .expires = until, .accredited = ASCWDS_ACCREDITED_YES, .notes = notes};
      if (ascwds_format(&l, line, sizeof line, err, sizeof err) > 0) fputs(line, f);
    }
    pp_clear(&p);
  }
  fclose(f);
  gw_reply_take(req, 200, "text/csv; charset=utf-8", text, len);
  gw_reply_header(req, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  gw_reply_header(req, "Content-Disposition", "attachment; filename=\"asc-wds-training.csv\"");
out:
  json_decref(body);
}
