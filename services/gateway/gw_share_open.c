/* gw_share_open.c -- an employer opens a share code with the worker's date of birth: failed-check
 * limits per client address (per employer for an authenticated one: gw_sc_probe_init picks the
 * counter) and per code (Redis counters, an attempt reserved atomically before it is judged:
 * gw_share.h), one constant-time compare, one answer for every kind of mismatch. Errors: 400 MISSING_FIELD / INVALID_FIELD, 404 SHARE_CODE_NOT_FOUND,
 * 429 RATE_LIMITED (+ Retry-After), 503 UNAVAILABLE.
 *
 * One round trip: the two reservations, the code's hash and -- when this thread has opened the same
 * code before -- the worker's register index (cp:w:{worker}:entries) are read in one pipeline
 * (gw_sc_open_entries here; gw_check_batch.c sends the same commands for many checks at once
 * through gw_sc_probe_init / gw_sc_probe_judge).
 * The index is used only when the code's hash, read in the same pipeline, still names the worker
 * the hint named; otherwise the caller reads it itself. Nothing is cached but which worker a code
 * hash named last time, so a withdrawn code or a new entry is seen at once. */
#include "gw_share.h"
#include "gw_http.h"
#include "gw_check_views.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cp_dates.h"
#include "cp_keys.h"

/* Reserve one attempt on a failed-check counter: refused at the limit (reply [0, ttl]), else
 * counted (reply [1, count]; the window starts with the first). */
#define RL_RESERVE_LUA \
  "local n = tonumber(redis.call('GET', KEYS[1]) or '0')\n" \
  "if n >= tonumber(ARGV[1]) then return {0, redis.call('TTL', KEYS[1])} end\n" \
  "n = redis.call('INCR', KEYS[1])\n" \
  "redis.call('EXPIRE', KEYS[1], ARGV[2], 'NX')\n" \
  "return {1, n}\n"
/* Give a reservation back: never below 0, never a key without a TTL (DECR of an expired key would
 * make one). */
#define RL_RELEASE_LUA \
  "local n = tonumber(redis.call('GET', KEYS[1]) or '0')\n" \
  "if n > 0 then redis.call('DECR', KEYS[1]) end\n" \
  "return 0\n"
static cp_redis_script_t rl_reserve_script = CP_REDIS_SCRIPT("reserve a share-code attempt", 1, RL_RESERVE_LUA);
static cp_redis_script_t rl_release_script = CP_REDIS_SCRIPT("give a share-code attempt back", 1, RL_RELEASE_LUA);

void gw_sc_reserve_argv(const char *key, long limit, char bufs[2][24], const char *argv[GW_RL_RESERVE_ARGC]) {
  snprintf(bufs[0], 24, "%ld", limit);
  snprintf(bufs[1], 24, "%d", GW_RL_WINDOW_S);
  argv[0] = "EVAL", argv[1] = rl_reserve_script.src, argv[2] = "1", argv[3] = key, argv[4] = bufs[0],
  argv[5] = bufs[1];
}

void gw_sc_release_argv(const char *key, const char *argv[GW_RL_RELEASE_ARGC]) {
  argv[0] = "EVAL", argv[1] = rl_release_script.src, argv[2] = "1", argv[3] = key;
}

/* A reservation's reply: 1 reserved, 0 refused (*ttl = seconds left), -1 no answer (Redis
 * failed: treated as refused, with the whole window, so an outage never opens the door). */
static int reserved(const redisReply *r, long long *ttl) {
  *ttl = GW_RL_WINDOW_S;
  if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_INTEGER ||
      r->element[1]->type != REDIS_REPLY_INTEGER)
    return -1;
  if (r->element[0]->integer == 1) return 1;
  if (r->element[1]->integer > 0) *ttl = r->element[1]->integer;
  return 0;
}

/* 429 with Retry-After = the remaining life of the counter that hit its limit. */
void gw_sc_reply_limited(gw_req_t *req, long long ttl, const char *what) {
  if (ttl <= 0) ttl = GW_RL_WINDOW_S;
  gw_reply_error(req, 429, GW_E_RATE_LIMITED,
                 "too many failed share-code checks %s; try again in %lld seconds", what, ttl);
  char v[32];
  snprintf(v, sizeof v, "%lld", ttl);
  gw_reply_header(req, MHD_HTTP_HEADER_RETRY_AFTER, v);
}

int gw_employer_label(gw_req_t *req, json_t *body, size_t max_len, const char **out) {
  if (gw_json_label(req, body, "employer", max_len, out) != 0) return -1; /* self-declared: printable text */
  if (req->employer == NULL) return 0;
  if ((*out)[0] != '\0' && strcmp(*out, req->employer->name) != 0) {
    gw_reply_error(req, 400, GW_E_INVALID_FIELD,
                   "employer: with an employer credential the label is your registered name (%s); leave it out",
                   req->employer->name);
    return -1;
  }
  *out = req->employer->name;
  return 0;
}

const char *gw_sc_limited_what(const gw_sc_probe_t *p, gw_sc_verdict_t v) {
  if (v == GW_SC_LIMITED_CODE) return "for this share code";
  return p->per_employer ? "with your employer account" : "from your address";
}

void gw_sc_reply_no_match(gw_req_t *req, const gw_sc_probe_t *p) {
  const char *what = p->left_code                ? "this share code"
                     : p->per_employer            ? "checking with your employer account"
                                                  : "checking from your address";
  char warn[160] = "";
  if (p->left == 0)
    snprintf(warn, sizeof warn, " That was the last try: %s is now locked for %d minutes.", what, GW_RL_WINDOW_S / 60);
  else if (p->left <= GW_RL_WARN_AT)
    snprintf(warn, sizeof warn, " %d more failed %s before %s is locked for %d minutes.", p->left,
             p->left == 1 ? "try" : "tries", what, GW_RL_WINDOW_S / 60);
  gw_reply_error(req, 404, GW_E_SHARE_CODE_NOT_FOUND,
                 "no passport matches that share code and date of birth (the code may also have been "
                 "withdrawn or have expired).%s", warn);
}

/* Which worker a code hash named when this thread last opened it (direct-mapped, per thread so no
 * lock; an entry is only a guess that decides whether to read that worker's index speculatively). */
#define HINT_SLOTS 256
typedef struct {
  char code_hash[2 * 32 + 1];              // code hash hex ("" = empty slot)
  char worker[2 * CP_PSEUDONYM_BYTES + 1]; // worker pseudonym hex it named
} hint_t;
static __thread hint_t tls_hints[HINT_SLOTS]; /* 33 KB of thread-local storage; no free needed */

static hint_t *hint_slot(const char *code_hash) {
  unsigned v = 0;
  for (int i = 0; i < 8; i++) v = v * 16 + (unsigned)(code_hash[i] <= '9' ? code_hash[i] - '0' : code_hash[i] - 'a' + 10);
  return &tls_hints[v % HINT_SLOTS];
}

const char *gw_sc_hint_get(const char *code_hash) {
  hint_t *hs = hint_slot(code_hash);
  /* constant time, like every comparison of code-derived values (test_security_claims checks) */
  return strlen(code_hash) == 2 * 32 && sodium_memcmp(hs->code_hash, code_hash, 2 * 32) == 0 ? hs->worker : "";
}

void gw_sc_hint_set(const char *code_hash, const char *worker) {
  hint_t *hs = hint_slot(code_hash);
  snprintf(hs->code_hash, sizeof hs->code_hash, "%s", code_hash);
  snprintf(hs->worker, sizeof hs->worker, "%s", worker);
}

int gw_sc_probe_init(gw_req_t *req, json_t *body, gw_sc_probe_t *p) {
  memset(p, 0, sizeof *p);
  const char *code_in = NULL, *dob = NULL;
  if (gw_json_str(req, body, "share_code", true, 64, &code_in) != 0) return -1;
  if (gw_json_str(req, body, "date_of_birth", true, 32, &dob) != 0) return -1;
  char code[GW_SC_LEN + 1];
  int32_t dob_day;
  if (gw_sc_normalise(code_in, code) != 0) {
    gw_reply_error(req, 400, GW_E_INVALID_FIELD,
                   "share_code must be 9 letters and digits, shown as three groups of three (e.g. ABC-DEF-GHJ)");
    return -1;
  }
  if (cp_date_parse(dob, &dob_day) != 0 || dob_day > cp_today()) {
    sodium_memzero(code, sizeof code);
    gw_reply_error(req, 400, GW_E_INVALID_FIELD, "date_of_birth must be a real past date YYYY-MM-DD");
    return -1;
  }
  gw_sc_hash(req->gw, code, p->h);
  sodium_memzero(code, sizeof code);
  cp_hex(p->h, 32, p->code_hash);
  /* hashed whether or not the code exists: the same work either way */
  gw_sc_dob_hash(req->gw, p->h, dob, p->dh);
  cp_key_t k;
  /* the first counter: the authenticated employer's, else the client address's (the same one
   * reservation either way, so nothing about the code changes the work; gw_share.h) */
  p->per_employer = req->employer != NULL;
  p->limit_ip = p->per_employer ? req->gw->cfg.fails_per_employer : req->gw->cfg.fails_per_address;
  p->limit_code = req->gw->cfg.fails_per_code;
  snprintf(p->ipkey, sizeof p->ipkey, "%s",
           p->per_employer ? cp_key_rl_emp(&k, req->employer->id) : cp_key_rl_ip(&k, req->client_ip));
  snprintf(p->codekey, sizeof p->codekey, "%s", cp_key_rl_code(&k, p->code_hash));
  snprintf(p->sckey, sizeof p->sckey, "%s", cp_key_sc(&k, p->code_hash));
  return 0;
}

void gw_sc_probe_clear(gw_sc_probe_t *p) { sodium_memzero(p->dh, sizeof p->dh); }

/* Whose code this try named, when it exists (read before the verdict: a failed or locked try on it
 * is shown to its worker). */
static void note_attempt(gw_sc_probe_t *p, const redisReply *hash) {
  const char *worker = cp_redis_hfield(hash, "worker"), *id = cp_redis_hfield(hash, "id");
  p->attempt_worker[0] = p->attempt_code_id[0] = '\0';
  if (worker == NULL || id == NULL || strlen(worker) != 2 * CP_PSEUDONYM_BYTES || strlen(id) >= sizeof p->attempt_code_id)
    return;
  snprintf(p->attempt_worker, sizeof p->attempt_worker, "%s", worker);
  snprintf(p->attempt_code_id, sizeof p->attempt_code_id, "%s", id);
}

bool gw_sc_attempt_view(const gw_req_t *req, const gw_sc_probe_t *p, gw_sc_verdict_t v, cp_key_t *views_key,
                        gw_jw_t *w) {
  if (v == GW_SC_OPENED || p->attempt_worker[0] == '\0') return false;
  gw_jw_raw(w, "{\"at\":");
  gw_jw_i64(w, (int64_t)time(NULL));
  gw_jw_kstr(w, ",\"code_id\":", p->attempt_code_id);
  gw_jw_kstr(w, ",\"kind\":", v == GW_SC_NO_MATCH ? "failed" : "locked");
  /* a registered employer is named (its registered name and id); an anonymous try is nobody's */
  gw_jw_kstr(w, ",\"employer\":", req->employer != NULL ? req->employer->name : "");
  if (req->employer != NULL) gw_jw_kstr(w, ",\"employer_id\":", req->employer->id);
  gw_jw_kstr(w, ",\"client\":{\"ip\":", req->client_ip);
  gw_jw_raw(w, "},\"records\":0}");
  if (w->bad) return false;
  cp_key_w_views(views_key, p->attempt_worker);
  return true;
}

gw_sc_verdict_t gw_sc_probe_judge(gw_sc_probe_t *p, const redisReply *ipres, const redisReply *coderes,
                                  const redisReply *hash, gw_sc_t *sc) {
  memset(sc, 0, sizeof *sc);
  snprintf(sc->code_hash, sizeof sc->code_hash, "%s", p->code_hash);
  long long ipttl, codettl;
  int ipok = reserved(ipres, &ipttl), codeok = reserved(coderes, &codettl);
  p->nrelease = 0;
  note_attempt(p, hash);
  if (ipok != 1 || codeok != 1) { /* refused: the reservation that was made is given back */
    if (ipok == 1) p->release[p->nrelease++] = p->ipkey;
    if (codeok == 1) p->release[p->nrelease++] = p->codekey;
    p->ttl = ipok != 1 ? ipttl : codettl;
    return ipok != 1 ? GW_SC_LIMITED_IP : GW_SC_LIMITED_CODE;
  }
  /* the same work whether or not the code exists: compare 32 bytes in constant time */
  uint8_t want[32];
  const char *worker = cp_redis_hfield(hash, "worker"), *dobhex = cp_redis_hfield(hash, "dob"), *id = cp_redis_hfield(hash, "id");
  const char *exp = cp_redis_hfield(hash, "expires");
  bool found = worker != NULL && dobhex != NULL && id != NULL && exp != NULL;
  size_t wl = 0;
  if (!found || sodium_hex2bin(want, sizeof want, dobhex, strlen(dobhex), NULL, &wl, NULL) != 0 || wl != 32) {
    found = false;
    randombytes_buf(want, sizeof want);
  }
  bool match = sodium_memcmp(p->dh, want, 32) == 0;
  int64_t expires = exp != NULL ? strtoll(exp, NULL, 10) : 0;
  if (!found || !match || expires <= (int64_t)time(NULL) || strlen(worker) != 2 * CP_PSEUDONYM_BYTES ||
      strlen(id) >= sizeof sc->id) {
    /* the reservations stay: they are the failure's count; say how near a lock is */
    long long ipn = ipres->element[1]->integer, coden = coderes->element[1]->integer;
    long long ipleft = p->limit_ip - ipn, codeleft = p->limit_code - coden;
    p->left_code = codeleft <= ipleft;
    p->left = (int)(p->left_code ? codeleft : ipleft);
    if (p->left < 0) p->left = 0;
    return GW_SC_NO_MATCH;
  }
  p->release[0] = p->ipkey, p->release[1] = p->codekey, p->nrelease = 2;
  p->attempt_worker[0] = p->attempt_code_id[0] = '\0';   /* opened: a view, not a failed try */
  snprintf(sc->worker, sizeof sc->worker, "%s", worker);
  snprintf(sc->id, sizeof sc->id, "%s", id);
  const char *scope = cp_redis_hfield(hash, "scope"), *subs = cp_redis_hfield(hash, "subs"), *created = cp_redis_hfield(hash, "created");
  const char *cn = cp_redis_hfield(hash, "consent"), *cne = cp_redis_hfield(hash, "consent_employer");
  snprintf(sc->consent, sizeof sc->consent, "%s", cn != NULL && strlen(cn) < sizeof sc->consent ? cn : "");
  snprintf(sc->consent_employer, sizeof sc->consent_employer, "%s",
           cne != NULL && strlen(cne) < sizeof sc->consent_employer ? cne : "");
  snprintf(sc->scope, sizeof sc->scope, "%s", scope != NULL ? scope : "");
  sc->subs = subs != NULL && strcmp(subs, "1") == 0;
  sc->created = created != NULL ? strtoll(created, NULL, 10) : 0;
  sc->expires = expires;
  return GW_SC_OPENED;
}

#define RL_STR(x) #x
#define RL_XSTR(x) RL_STR(x)
/* The window as text (the reservation script's ARGV[2]). */
static const char *win_s(void) { return RL_XSTR(GW_RL_WINDOW_S); }

/* Give back the reservations the verdict left in p->release (best effort: a lost release only
 * counts one more attempt, never fewer). */
static void release(cp_redis_t *r, const gw_sc_probe_t *p) {
  for (int i = 0; i < p->nrelease; i++) {
    redisReply *x = cp_redis_eval(r, &rl_release_script, 1, (const char *[]){p->release[i]}, NULL);
    if (x != NULL) freeReplyObject(x);
  }
}

/* A failed or locked try on a code that exists, shown to its worker: written without waiting. */
static void record_attempt(gw_req_t *req, const gw_sc_probe_t *p, gw_sc_verdict_t v) {
  gw_jw_t w;
  cp_key_t key;
  gw_jw_init(&w, 256);
  if (gw_sc_attempt_view(req, p, v, &key, &w)) gw_check_view_send(req->gw, key.s, w.s, NULL);
  gw_jw_free(&w);
}

int gw_sc_open(gw_req_t *req, json_t *body, gw_sc_t *sc) { return gw_sc_open_entries(req, body, sc, NULL, NULL, 0); }

int gw_sc_open_entries(gw_req_t *req, json_t *body, gw_sc_t *sc, cp_redis_pipe_t **held, const redisReply **entries,
                       long max_entries) {
  if (held != NULL) *held = NULL;
  if (entries != NULL) *entries = NULL;
  gw_sc_probe_t p;
  if (gw_sc_probe_init(req, body, &p) != 0) return -1;
  cp_redis_t *r = gw_redis(req);
  if (r == NULL) {
    gw_sc_probe_clear(&p);
    gw_reply_unavailable(req, "the share-code store");
    return -1;
  }
  cp_redis_pipe_t *pipe = cp_redis_pipe_new();
  char lim[24];
  snprintf(lim, sizeof lim, "%ld", p.limit_ip);
  cp_redis_handle_t hip = cp_redis_pipe_script(pipe, &rl_reserve_script, 3, (const char *[]){p.ipkey, lim, win_s()}, NULL);
  snprintf(lim, sizeof lim, "%ld", p.limit_code);
  cp_redis_handle_t hcode = cp_redis_pipe_script(pipe, &rl_reserve_script, 3, (const char *[]){p.codekey, lim, win_s()}, NULL);
  cp_redis_handle_t hsc = cp_redis_pipe_cmd(pipe, "HGETALL %s", p.sckey);
  cp_redis_handle_t hent = {0, 0};
  char hinted[2 * CP_PSEUDONYM_BYTES + 1] = "";
  if (entries != NULL) {
    snprintf(hinted, sizeof hinted, "%s", gw_sc_hint_get(p.code_hash));
    if (hinted[0] != '\0') {
      cp_key_t k;
      hent = cp_redis_pipe_cmd(pipe, "LRANGE %s 0 %ld", cp_key_w_entries(&k, hinted), max_entries - 1);
    }
  }
  if (cp_redis_pipe_exec(pipe, r) != 0) {
    cp_redis_pipe_destroy(&pipe);
    gw_sc_probe_clear(&p);
    gw_reply_unavailable(req, "the share-code store");
    return -1;
  }
  gw_sc_verdict_t v = gw_sc_probe_judge(&p, cp_redis_pipe_reply(pipe, hip), cp_redis_pipe_reply(pipe, hcode),
                                        cp_redis_pipe_reply(pipe, hsc), sc);
  gw_sc_probe_clear(&p);
  release(r, &p);
  record_attempt(req, &p, v);
  if (v == GW_SC_LIMITED_IP || v == GW_SC_LIMITED_CODE) {
    cp_redis_pipe_destroy(&pipe);
    gw_sc_reply_limited(req, p.ttl, gw_sc_limited_what(&p, v));
    return -1;
  }
  if (v == GW_SC_NO_MATCH) {
    cp_redis_pipe_destroy(&pipe);
    gw_sc_reply_no_match(req, &p);
    return -1;
  }
  if (entries != NULL) {
    const redisReply *l = hinted[0] != '\0' ? cp_redis_pipe_reply(pipe, hent) : NULL;
    if (l != NULL && strcmp(hinted, sc->worker) == 0 && l->type == REDIS_REPLY_ARRAY) {
      *entries = l; /* read in the same pipeline as the code: as fresh as a separate read */
      *held = pipe;
      pipe = NULL;
    }
    gw_sc_hint_set(sc->code_hash, sc->worker);
  }
  cp_redis_pipe_destroy(&pipe);
  return 0;
}
