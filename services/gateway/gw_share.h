/* gw_share.h -- share codes: what the gateway keeps under its keys, code making and hashing, and
 * opening a code for an employer (rate limits, constant-time compare). Shared by gw_share*.c,
 * gw_check*.c, gw_subscribe*.c and gw_worker*.c.
 *
 * Redis values (the keys are built by common/cp_keys.h only: cp_key_sc, cp_key_scid,
 * cp_key_scid_subs, cp_key_w_sc, cp_key_w_views, cp_key_rl_ip, cp_key_rl_code, cp_key_sub,
 * cp_key_w_subs; each carries a {hash tag} on the entity it belongs to)
 * ------------------------------------------------------------------------------------------
 *  cp:sc:{<code hash hex>}     HASH   one live share code, looked up by the code an employer types.
 *                                     TTL = the code's validity (EXPIREAT expires).
 *        worker    pseudonym hex (64)          id        share-code id "sc_<16 hex>"
 *        dob       keyed hash hex of the worker's date of birth (never the date)
 *        scope     "" = every record of the worker, else a comma list of register indexes
 *        subs      "1" when employers may subscribe to changes, else "0"
 *        created   unix s                       expires   unix s
 *        consent, consent_employer   the ongoing-access consent made with the code ("" = none): a
 *                  check by that employer's own token is told the consent id, so the employer
 *                  knows which of its staff the consent in GET /v1/staff is
 *  cp:scid:{<id>}              HASH   the same code seen by its id (worker list / withdraw), same TTL:
 *        code (code hash hex), worker, scope, subs, created, expires, views (count of views),
 *        label (the worker's own name for the code; self-declared, shown only to the worker)
 *  cp:scid:{<id>}:subs         SET    subscription ids made with this code (TTL = validity + 1 day);
 *                                     withdrawing the code deletes them
 *  cp:w:{<pseudonym hex>}:sc   SET    the worker's share-code ids (ids whose cp:scid is gone are
 *                                     pruned when the list is read)
 *  cp:w:{<pseudonym hex>}:views LIST  one JSON object per view, newest first, trimmed to
 *                                     GW_VIEWS_KEEP, TTL GW_VIEWS_TTL_S after the last view:
 *                                     {"at": unix s, "code_id": "sc_...", "employer": "label",
 *                                      "client": {"ip": "...", "user_agent": "..."}, "records": n}
 *  cp:rl:ip:{<client address>}      STRING failed share-code checks from that address, plus checks
 *                                     being judged now (reserved by gw_rl_reserve_script, EXPIRE NX)
 *  cp:rl:code:{<code hash hex>}     STRING the same for checks naming that code (whether or not it exists)
 *  cp:rl:emp:{<employer id>}        STRING the same for an authenticated employer's checks (instead of
 *                                     its address's counter)
 *  cp:emp:{<employer id>}:subs      SET    the employer's subscription ids (GET /v1/subscriptions); TTL =
 *                                     the latest of theirs; ids whose cp:sub is gone are pruned when read
 *  cp:sub:{<sub id>}, cp:w:{<pseudonym hex>}:subs   employer subscriptions, in the format notify
 *                                     reads (services/notify/notify_keys.h)
 *
 * Hashes: code hash = BLAKE2b-256 keyed with SHARE_CODE_SECRET over "carepass/share-code/v1\n" ||
 * the 9 normalised characters (its own secret, so rotating TOKEN_SECRET leaves live codes working;
 * codes made before this secret existed were keyed with TOKEN_SECRET and stopped working once); dob hash = BLAKE2b-256 keyed with PSEUDONYM_SECRET over
 * "carepass/share-dob/v1\n" || code hash || YYYY-MM-DD (bound to the code, so two codes of one
 * worker do not carry the same value). Neither the code nor the date of birth is ever stored,
 * logged or put in an error message. Names are not stored at all.
 */
#ifndef GW_SHARE_H
#define GW_SHARE_H

#include "gw.h"
#include "gw_check_json.h"
#include "cp_keys.h"

/* Share code alphabet: A-Z and 2-9 without the look-alikes 0/O, 1/I, 2/Z and 5/S: 28 symbols.
 * 9 symbols drawn uniformly (randombytes_uniform): 9 * log2(28) = 43.27 bits of entropy. */
#define GW_SC_ALPHABET "ABCDEFGHJKLMNPQRTUVWXY346789"
#define GW_SC_LEN 9                 /* symbols in a code (shown as ABC-DEF-GHJ) */
#define GW_SC_ID_MAX 24             /* "sc_" + 16 hex + NUL (rounded up) */
#define GW_SC_DAYS_MAX 90           /* longest validity */
#define GW_SC_DAYS_DEFAULT 30       /* validity when not given */
#define GW_SC_SCOPE_MAX 2048        /* longest scope list text */
#define GW_SC_PER_WORKER_MAX 100    /* live codes per worker */
#define GW_SC_LABEL_MAX 100         /* the worker's own label of a code (bytes) */
#define GW_VIEWS_KEEP 1000          /* views kept per worker */
#define GW_VIEWS_TTL_S (180 * 86400) /* views list lives this long after the last view */
#define GW_SUBS_PER_EMPLOYER_MAX 10000 /* live subscriptions of one registered employer (what GET /v1/subscriptions lists) */

/* Failed-check limits (Redis counters): per client address and per code, in a fixed window.
 * Each check reserves one attempt on both counters (one atomic script per counter: refused at the
 * limit, else INCR) BEFORE its date of birth is compared, so a concurrent burst gets at most the
 * limit judged. A failed check keeps its reservations (that is the count); a check that opened the
 * code gives both back (a right answer is not a guess). The per-code limit is the defence against
 * date-of-birth guessing: it holds whatever addresses the guesses come from; the per-address limit
 * slows one client trying many codes. Behind a proxy the address is the one the trusted proxy
 * reports (CAREPASS_GATEWAY_TRUSTED_PROXIES), so one client's lockout is never everyone's.
 *
 * The numbers (config GATEWAY_CHECK_FAILS_PER_CODE, default 5, and GATEWAY_CHECK_FAILS_PER_ADDRESS,
 * default 60, per GW_RL_WINDOW_S): a code holds 43 bits and a date of birth some 22,000 plausible
 * values, so 5 guesses per 15 minutes at one code give a date-of-birth guesser 480 a day, 1 in 46
 * of one code's dates a day at best -- and the worker sees each failed and locked try (below). A
 * client trying many codes needs one that exists first: with two million live codes a guess hits
 * one with probability 2e6 / 28^9 = 1.9e-7, and then its date of birth with about 1/22,000, so 60
 * failures per 15 minutes from one address succeed about once in 1.6e7 days. The per-address
 * ceiling only slows such scanning, so it can be high enough that forty managers behind one
 * office address, each mistyping twice, are never refused; the per-code limit is the one that
 * protects a worker, and it does not depend on the address at all.
 *
 * An authenticated employer (Bearer cpe_..., optional on POST /v1/check and /v1/check/bundle)
 * reserves on its own counter cp:rl:emp:{id} (GATEWAY_CHECK_FAILS_PER_EMPLOYER, default 200 per
 * window) instead of its address's: a registered care group checking from one head office is
 * known and can be cut off by revoking its token, so its failures are charged to it, not to
 * whoever shares its address (and they do not use up the address's 60 either). 200 is about three
 * times the address ceiling: room for a recruitment day of a large group (hundreds of checks, a few
 * percent mistyped), and still at most about 1 success in 5e6 days for someone scanning codes with
 * a stolen token -- who is then one revocation away from nothing. The per-code counter is
 * reserved exactly as for everyone (GATEWAY_CHECK_FAILS_PER_CODE): an employer account buys no
 * extra guesses at any one worker's date of birth. The reservation is the same one command in the
 * same place of the pipeline either way (gw_sc_probe_init picks the key), before the date of birth
 * is judged, so neither the answer nor its timing depends on whether the code exists. An invalid
 * employer credential is refused (401) before any of this: it is never counted as anonymous.
 *
 * Failed and locked tries are shown to the worker: when a check names a code that exists and
 * fails (wrong date of birth) or is refused (a limit), a view of kind "failed" or "locked" (time,
 * code id, client address; records 0) is added to the worker's views, written without waiting for
 * Redis (gw_check_view_send / gw_cconn_attempt), so the answer's timing does not tell whether the
 * code exists. */
#define GW_RL_WINDOW_S 900          /* 15 minutes */
#define GW_RL_WARN_AT 2             /* a failed check warns when this many tries or fewer are left */

/* Stable error codes of the share-code features. */
#define GW_E_SHARE_CODE_NOT_FOUND "SHARE_CODE_NOT_FOUND" /* 404 wrong code, wrong date of birth, withdrawn or expired: one answer */
#define GW_E_NOT_YOUR_RECORD "NOT_YOUR_RECORD"           /* 400 entries names an index that is not the worker's record */
#define GW_E_TOO_MANY_CODES "TOO_MANY_SHARE_CODES"       /* 409 the worker has GW_SC_PER_WORKER_MAX live codes */
#define GW_E_URL_REFUSED "URL_REFUSED" /* 400 a webhook URL carepass will not send to (form or address: cp_url_check.h) */
#define GW_E_SUBS_LIMIT "SUBSCRIPTION_LIMIT" /* 409 the share code or the worker has as many subscriptions as allowed */
#define GW_E_SUBS_NOT_ALLOWED "SUBSCRIPTIONS_NOT_ALLOWED" /* 403 the share code does not allow subscriptions */
#define GW_E_SUBS_URL_TAKEN "SUBSCRIPTION_URL_TAKEN" /* 409 the URL has a subscription under the code made by someone else */

/* A share code opened by an employer (code and date of birth matched). */
typedef struct {
  char worker[2 * CP_PSEUDONYM_BYTES + 1]; // worker pseudonym hex
  char id[GW_SC_ID_MAX];                   // share-code id
  char code_hash[2 * 32 + 1];              // code hash hex (the cp:sc key's tag)
  char scope[GW_SC_SCOPE_MAX];             // "" = all records, else comma list of indexes
  bool subs;                               // subscriptions allowed
  int64_t created;                         // unix s
  int64_t expires;                         // unix s
  char consent[40];                        // the ongoing-access consent made with the code (hex, "" = none)
  char consent_employer[24];               // ... and the employer it is for
} gw_sc_t;

/* gw_share_code.c: a fresh random code (9 symbols + NUL). */
void gw_sc_generate(char code[GW_SC_LEN + 1]);
/* Normalise what a person typed: drop spaces and hyphens, upper-case; 0 when 9 symbols of the
 * alphabet remain, -1 otherwise. */
int gw_sc_normalise(const char *in, char code[GW_SC_LEN + 1]) CP_WUR;
/* "ABCDEFGHJ" -> "ABC-DEF-GHJ" (12 bytes). */
void gw_sc_format(const char code[GW_SC_LEN + 1], char out[12]);
/* Keyed hashes (see the top comment). */
void gw_sc_hash(const gw_t *gw, const char code[GW_SC_LEN + 1], uint8_t out[32]);
void gw_sc_dob_hash(const gw_t *gw, const uint8_t code_hash[32], const char *dob, uint8_t out[32]);
/* A random id: prefix + 2*nbytes lowercase hex. */
void gw_random_id(const char *prefix, size_t nbytes, char *out, size_t outlen);
/* Parse a scope list ("1,5,9") into a malloc'd sorted array; 0 / -1 (malformed). "" gives n = 0. */
int gw_scope_parse(const char *scope, uint64_t **out, size_t *n) CP_WUR;
/* Is index in the sorted scope (n == 0 means every record)? */
bool gw_scope_has(const uint64_t *scope, size_t n, uint64_t index);

/* gw_share_open.c: the employer label of a check or subscription (field "employer", at most
 * max_len bytes): what the body says (self-declared, printable: gw_json_label), or for an
 * authenticated employer its registered name -- a different self-declared one is 400
 * INVALID_FIELD, never an override. 0 with *out (into body or the registry), or -1 replied. */
int gw_employer_label(gw_req_t *req, json_t *body, size_t max_len, const char **out) CP_WUR;

/* gw_share_open.c: read share_code and date_of_birth from an employer's JSON body, apply the
 * failed-check limits and open the code. 0: *sc filled. -1: a reply was made (400 for a
 * malformed field, 404 SHARE_CODE_NOT_FOUND for a wrong code or date of birth -- the same answer
 * either way, after a constant-time compare --, 429 RATE_LIMITED, 503). */
int gw_sc_open(gw_req_t *req, json_t *body, gw_sc_t *sc) CP_WUR;
/* The same, and when entries != NULL the worker's register index (LRANGE cp:w:{worker}:entries 0
 * max_entries-1) if it could be read in the same Redis round trip (this thread opened the code
 * before): *entries is then an array reply that lives in *held, a pipe the caller takes over
 * (cp_redis_pipe_destroy), else both NULL (the caller reads the index). */
int gw_sc_open_entries(gw_req_t *req, json_t *body, gw_sc_t *sc, cp_redis_pipe_t **held, const redisReply **entries,
                       long max_entries) CP_WUR;

/* Opening a code in steps, so gw_check_batch.c can put many employers' checks in one Redis
 * pipeline. gw_sc_probe_init reads and checks the fields and hashes them (-1: a 400 was replied);
 * the caller then sends, in this order, the reservation of ipkey, the reservation of codekey
 * (gw_sc_reserve_argv: EVAL of gw_rl_reserve_script), HGETALL sckey and gives the three replies
 * to gw_sc_probe_judge, which makes the constant-time compare. Afterwards the reservations in
 * p->release[] (0, 1 or 2 keys: those to give back) are released with gw_sc_release_argv. */
typedef struct {
  uint8_t h[32];                     // code hash
  uint8_t dh[32];                    // date-of-birth hash bound to the code (wiped by gw_sc_probe_clear)
  char code_hash[2 * 32 + 1];        // h as hex
  char ipkey[GW_IP_MAX + 32];        // cp:rl:ip:{client address}, or cp:rl:emp:{employer id} (per_employer)
  char codekey[128];                 // cp:rl:code:{code hash}
  char sckey[128];                   // cp:sc:{code hash}
  const char *release[2];            // after judge: counters whose reservation is given back (ipkey/codekey)
  int nrelease;                      // how many of release[] are set
  long long ttl;                     // after a LIMITED verdict: seconds until the counter that refused expires
  int left;                          // after NO_MATCH: failed tries left before a lock (of the code or the address)
  bool left_code;                    // ... and whether the code's limit is the nearer one (else the address's)
  long limit_ip;                     // failed checks allowed on ipkey (GATEWAY_CHECK_FAILS_PER_ADDRESS or _PER_EMPLOYER)
  bool per_employer;                 // ipkey is the authenticated employer's counter, not the address's
  long limit_code;                   // failed checks allowed per code (GATEWAY_CHECK_FAILS_PER_CODE)
  char attempt_worker[2 * CP_PSEUDONYM_BYTES + 1]; // after a failure on a code that exists: its worker ("" otherwise)
  char attempt_code_id[GW_SC_ID_MAX];              // ... and the code's id
} gw_sc_probe_t;
typedef enum {
  GW_SC_OPENED = 0,      // code and date of birth match, code live: *sc filled
  GW_SC_LIMITED_IP,      // the client address (or the authenticated employer) has too many failed checks (429)
  GW_SC_LIMITED_CODE,    // the code has too many failed checks (429)
  GW_SC_NO_MATCH,        // wrong code, wrong date of birth, withdrawn or expired (404; count a failure)
} gw_sc_verdict_t;
int gw_sc_probe_init(gw_req_t *req, json_t *body, gw_sc_probe_t *p) CP_WUR;
gw_sc_verdict_t gw_sc_probe_judge(gw_sc_probe_t *p, const redisReply *ipcount, const redisReply *codecount,
                                  const redisReply *hash, gw_sc_t *sc);
void gw_sc_probe_clear(gw_sc_probe_t *p);
/* After a verdict other than OPENED on a code that exists: the worker's views key and, in w, the
 * view of kind "failed" (NO_MATCH) or "locked" (LIMITED_*) to record without waiting; false when
 * there is nothing to record (the code does not exist, or it opened). */
bool gw_sc_attempt_view(const gw_req_t *req, const gw_sc_probe_t *p, gw_sc_verdict_t v, cp_key_t *views_key,
                        gw_jw_t *w);
/* The argv of the reservation of key (EVAL, the script's source, 1, key, limit, window: 6 entries,
 * pointing into bufs and key) and of giving one back (EVAL, source, 1, key: 4 entries). EVAL with
 * the source rather than EVALSHA: the batch connection is raw hiredis that loads no scripts, and
 * Redis caches the compiled script by its text. Reply of a reservation: [1, count] or [0, ttl]. */
#define GW_RL_RESERVE_ARGC 6
#define GW_RL_RELEASE_ARGC 4
void gw_sc_reserve_argv(const char *key, long limit, char bufs[2][24], const char *argv[GW_RL_RESERVE_ARGC]);
void gw_sc_release_argv(const char *key, const char *argv[GW_RL_RELEASE_ARGC]);
/* The 429 (ttl: seconds left on the counter that refused; <= 0 = the whole window) and the 404 of
 * a failed open. */
void gw_sc_reply_limited(gw_req_t *req, long long ttl, const char *what);
/* What a 429 of verdict v names: "from your address", "with your employer account" or "for this
 * share code". */
const char *gw_sc_limited_what(const gw_sc_probe_t *p, gw_sc_verdict_t v);
/* 404 for a failed check, warning when a lock is near ("2 more failed tries before ... locked for
 * 15 minutes"): the count is the same whether or not the code exists, so it tells nothing. */
void gw_sc_reply_no_match(gw_req_t *req, const gw_sc_probe_t *p);
/* Which worker a code hash named when this thread last opened it ("" = no guess): a per-thread
 * hint that decides whether to read that worker's index in the same pipeline as the code. */
const char *gw_sc_hint_get(const char *code_hash);
void gw_sc_hint_set(const char *code_hash, const char *worker);

/* gw_share.c: delete the code with this id of this worker and every subscription made with it.
 * 0 deleted, 1 no such code, -1 Redis failed. */
int gw_sc_withdraw(cp_redis_t *r, const char *worker, const char *id) CP_WUR;

#endif
