/* notify.h -- the notify service: NotifyJobs from the bus become Standard Webhooks
 * deliveries (Ed25519 "v1a" signatures) kept in Redis, delivered with libcurl,
 * retried with exponential backoff and jitter for up to WEBHOOK_RETRY_WINDOW_S (3 days),
 * then dead-lettered; record.revoked/expiring/expired also go to subscribed employers.
 *
 * Redis keys (all state lives here, so any notify replica can die at any time):
 *
 *  cp:nt:d:{<id>}  HASH   one webhook delivery, <id> = webhook-id ("msg_" + 32 hex):
 *        state     pending | dead | delivered
 *        url       target URL (per delivery: provider webhook today, subscribers later)
 *        body      the exact JSON body sent (signed anew at every attempt)
 *        type      event type, e.g. record.committed
 *        provider  provider id the job came from
 *        attempts  attempts started so far (incremented when a replica claims it)
 *        created   unix ms the delivery was created (or last replayed from the dead letters)
 *        ep        "host:port" of url (per-endpoint concurrency limit in the claim)
 *        last_status  HTTP status of the last attempt (0 = no HTTP answer)
 *        dead_at   unix ms it was moved to the dead-letter list
 *      A delivered hash keeps only state=delivered and expires after
 *      NT_TOMBSTONE_TTL_S, so an upstream duplicate sent later does not deliver again.
 *  cp:nt:due       ZSET   ids of pending deliveries scored by the unix ms of their
 *                         next attempt. A claim re-scores the id to now + lease
 *                         (visibility timeout), so a crashed replica's in-flight
 *                         deliveries come back by themselves.
 *  cp:nt:dead      LIST   ids of dead-lettered deliveries, newest first.
 *
 *  A delivery that still fails WEBHOOK_RETRY_WINDOW_S after `created` (or after
 *  WEBHOOK_MAX_ATTEMPTS attempts, when that is not 0) is dead-lettered.
 *
 * Expiry schedule (written when notify handles record.committed with a valid_until):
 *  cp:exp:due        ZSET  register index -> day number (days since 1970-01-01) of the
 *                          record's next threshold (stage below)
 *  cp:exp:lease      ZSET  register index -> unix ms until which a scanner holds it (a
 *                          crashed replica's claims go back to cp:exp:due after that)
 *  cp:exp:{<index>}  HASH  state    scheduled | done | revoked
 *                          stage    next threshold: 0 = 90 days before valid_until,
 *                                   1 = 30 days, 2 = 7 days, 3 = the day after (expired)
 *                          provider, qual, worker (pseudonym hex), valid_until,
 *                          completion_date, event_id (provider event id)
 *      A "revoked" or "done" hash is kept for NT_EXP_TOMBSTONE_TTL_S so a late or
 *      replayed record.committed does not schedule the record again.
 *
 * Subscriptions (written by the gateway when an employer subscribes; notify reads
 * them and removes dead ones; see /work/notes/subscriptions.md):
 *  cp:w:{<pseudonym hex>}:subs     SET   subscription ids of the worker
 *  cp:sub:{<sub id>}               HASH  url, worker (pseudonym hex), employer (label),
 *                                        share_code (share code id), expires_at (unix s),
 *                                        events ("record.revoked,record.expiring,record.expired";
 *                                        empty = all), entries (comma list of register
 *                                        indexes the share code covers; empty = all), created
 *  cp:w:{<pseudonym hex>}:profile  HASH  optional field webhook_url: the worker's own webhook
 *  <sub id> = "sub_" + 32 lowercase hex. A missing or expired hash = unsubscribed.
 *
 * The Lua scripts touch cp:nt:d:{id} together with cp:nt:due / cp:nt:dead, which is
 * atomic on a single Redis; on Redis Cluster these keys would need one shared tag.
 *
 * Round trips (the service is mostly waiting on Redis otherwise): the jobs taken in one
 * loop turn (up to 256) are stored as one plan in three pipelined round trips whatever
 * their fan-out (notify_fanout.c); the scripts run with EVALSHA (notify_pipe.c). The
 * outcomes of finished attempts are recorded in batches (one script call per 256) and
 * sent together with the next claim on a second, non-blocking connection that the curl
 * loop polls (notify_async.c), so no delivery waits on a Redis round trip. For endpoints
 * that answer 2xx quickly a claim takes up to 16 x the per-endpoint limit (at most 256)
 * beyond the free slots; those wait in a local queue and start as slots free up (never
 * more than the per-endpoint limit in flight). A queued delivery that could not start
 * within WEBHOOK_TIMEOUT_MS + 4 s is handed back, so its lease always outlives its
 * attempt; at shutdown every queued one is handed back. */
#ifndef NOTIFY_H
#define NOTIFY_H

#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include "cp_util.h"
#include "cp_crypto.h"
#include "cp_redis.h"
#include "carepass/v1/internal.pb-c.h"

#define NT_KEY_DELIVERY_PREFIX "cp:nt:d:"
#define NT_KEY_DELIVERY_FMT    "cp:nt:d:{%s}"
#define NT_KEY_DUE             "cp:nt:due"
#define NT_KEY_DEAD            "cp:nt:dead"
#define NT_TOMBSTONE_TTL_S     86400        /* how long a delivered id is remembered */

#define NT_KEY_EXP_DUE         "cp:exp:due"
#define NT_KEY_EXP_LEASE       "cp:exp:lease"
#define NT_KEY_EXP_PREFIX      "cp:exp:"
#define NT_KEY_EXP_FMT         "cp:exp:{%llu}"
#define NT_EXP_TOMBSTONE_TTL_S (400 * 86400) /* how long a revoked/done schedule is remembered */
#define NT_KEY_SUBS_FMT        "cp:w:{%s}:subs"     /* %s = pseudonym hex */
#define NT_KEY_SUB_FMT         "cp:sub:{%s}"        /* %s = subscription id */
#define NT_KEY_PROFILE_FMT     "cp:w:{%s}:profile"  /* %s = pseudonym hex */
#define NT_SUB_ID_MAX          64                   /* longest subscription id accepted */
#define NT_EXP_STAGES          4                    /* 90, 30, 7 days before; the day after */

#define NT_ID_LEN        36                 /* "msg_" + 32 hex */
#define NT_ID_SIZE       (NT_ID_LEN + 1)
#define NT_SIG_HDR_SIZE  128                /* "v1a," + base64(64 bytes) + NUL fits */
#define NT_PUBKEY_SIZE   64                 /* "whpk_" + base64(32 bytes) + NUL fits */
#define NT_TYPE_MAX      64                 /* longest event type accepted */
#define NT_MAX_JOB_BYTES 65536              /* largest NotifyJob accepted from the bus */

/* ---- notify_pipe.c: many commands in one Redis round trip ---------------- */

/* A Lua script run with EVALSHA: SCRIPT LOAD on first use; a NOSCRIPT answer (Redis
 * restarted or flushed its script cache) is retried once with EVAL. One static
 * instance per script (the SHA is cached in it; notify is single-threaded). */
typedef struct {
  const char *name;     // what the script does (error messages)
  const char *src;      // the Lua source
  char sha[41];         // SHA1 hex once loaded; "" before
} nt_script_t;
#define NT_SCRIPT(name, src) {(name), (src), {0}}

/* Commands queued and then sent together: one write, one read of every reply. */
typedef struct nt_pipe nt_pipe_t;

nt_pipe_t *nt_pipe_new(void);
void nt_pipe_destroy(nt_pipe_t **p);
/* Forget queued commands and replies (keeps the buffers for reuse). */
void nt_pipe_reset(nt_pipe_t *p);
/* Free the replies only (the commands stay queued and can be sent again). */
void nt_pipe_reset_replies(nt_pipe_t *p);
size_t nt_pipe_count(const nt_pipe_t *p);
/* Start a command; returns its index (= its reply's index). With a script, the
 * first argument must be numkeys, then the keys, then the arguments. */
size_t nt_pipe_start(nt_pipe_t *p, nt_script_t *script);
/* Add an argument to the command being built (copied). */
void nt_pipe_arg(nt_pipe_t *p, const char *s);
void nt_pipe_argn(nt_pipe_t *p, const char *s, size_t len);
void nt_pipe_argf(nt_pipe_t *p, const char *fmt, ...) CP_PRINTF(2, 3);
/* Send every queued command and read every reply. -1 only when the connection failed
 * (nothing can be known about what ran: callers queue only idempotent commands or
 * rely on leases); error replies are kept as replies (nt_pipe_reply_error). */
int nt_pipe_exec(nt_pipe_t *p, cp_redis_t *r, char *err, size_t errlen) CP_WUR;
/* The pieces of nt_pipe_exec, for sending a pipe on a non-blocking connection
 * (notify_async.c): load the scripts it uses (blocking, once per process), append its
 * commands to a raw context, hand over the replies read (n = nt_pipe_count; the pipe
 * owns and frees them), then re-run any NOSCRIPT ones with EVAL on r. */
int nt_pipe_load_scripts(nt_pipe_t *p, cp_redis_t *r, char *err, size_t errlen) CP_WUR;
int nt_pipe_append_to(nt_pipe_t *p, redisContext *c) CP_WUR;
void nt_pipe_take_replies(nt_pipe_t *p, redisReply **replies, size_t n);
int nt_pipe_fix_noscript(nt_pipe_t *p, cp_redis_t *r, char *err, size_t errlen) CP_WUR;
/* Reply i after nt_pipe_exec (NULL if none). */
const redisReply *nt_pipe_reply(const nt_pipe_t *p, size_t i);
/* -1 with err "<what>: <error>" when reply i is missing or an error reply, else 0. */
int nt_pipe_reply_error(const nt_pipe_t *p, size_t i, const char *what, char *err, size_t errlen) CP_WUR;

/* ---- notify_async.c: one pipe at a time on a non-blocking connection -------- */

/* The service's second Redis connection: the outcomes of a loop turn and the next
 * claim go out on it while curl keeps delivering; the loop waits on its descriptor
 * with curl's and collects the replies when they are there. */
typedef struct nt_aredis nt_aredis_t;

nt_aredis_t *nt_aredis_new(const char *host, int port, int timeout_ms);
void nt_aredis_destroy(nt_aredis_t **a);
/* Is a pipe in flight? */
bool nt_aredis_busy(const nt_aredis_t *a);
/* The descriptor to wait on and its events (-1 when idle). */
int nt_aredis_fd(const nt_aredis_t *a, short *events);
/* Send p (connecting if needed; scripts are loaded on r, blocking, once). p must stay
 * alive and untouched until nt_aredis_progress returns 1 or -1. */
int nt_aredis_send(nt_aredis_t *a, nt_pipe_t *p, cp_redis_t *r, char *err, size_t errlen) CP_WUR;
/* Non-blocking: write/read what can be. 1 = p has every reply (NOSCRIPT replies not yet
 * re-run: nt_pipe_fix_noscript), 0 = still in flight, -1 = connection failed or timed out
 * (dropped; what ran is unknown). */
int nt_aredis_progress(nt_aredis_t *a, char *err, size_t errlen) CP_WUR;

/* ---- notify_sign.c: ids, Standard Webhooks signatures, backoff ---------- */

/* Deterministic webhook-id of a job: "msg_" + hex of the first 16 bytes of
 * BLAKE2b(type 0x00 provider 0x00 provider_event_id 0x00 entry_index as 8 bytes BE),
 * so upstream duplicates of one job collapse into one delivery. */
void nt_delivery_id(const char *type, const char *provider, const char *event_id,
                    uint64_t entry_index, char out[NT_ID_SIZE]);

/* The webhook-signature header value "v1a,<base64 Ed25519 signature of
 * '<id>.<timestamp>.<body>'>" into out (NT_SIG_HDR_SIZE bytes). */
int nt_sign(const cp_signkey_t *key, const char *id, int64_t timestamp,
            const char *body, size_t bodylen, char *out, size_t outlen) CP_WUR;

/* Verify a "v1a,..." header (space-separated list; any valid one passes). For tests
 * and tools. */
bool nt_verify(const unsigned char pk[32], const char *id, int64_t timestamp,
               const char *body, size_t bodylen, const char *sig_header);

/* The public key as Standard Webhooks writes Ed25519 public keys: "whpk_" + base64. */
int nt_pubkey_format(const unsigned char pk[32], char *out, size_t outlen) CP_WUR;

/* Delay before the attempt after `attempts` failed ones (attempts >= 1):
 * min(base * 2^(attempts-1), max), without jitter. */
int64_t nt_backoff_base_ms(int attempts, int64_t base_ms, int64_t max_ms);
/* The same with +-20% jitter (randombytes_uniform); never below 1 ms. */
int64_t nt_backoff_ms(int attempts, int64_t base_ms, int64_t max_ms);

/* ---- notify_jobs.c: NotifyJob -> delivery in Redis ---------------------- */

/* Check a job's shape (type charset and lengths); 0 or -1 with err. */
int nt_job_check(const Carepass__V1__NotifyJob *job, char *err, size_t errlen) CP_WUR;

/* ms since the epoch as ISO-8601 UTC with milliseconds (2026-11-22T21:05:12.123Z): the
 * "timestamp" of every webhook body. */
void nt_iso8601(int64_t ms, char out[32]);

/* The webhook body: {"type", "timestamp" (ISO-8601 UTC of occurred_at, or now),
 * "data": {provider_id, provider_event_id, reason_code, message, entry_index,
 * qualification_code}} -- never the worker pseudonym. malloc'd, NUL-terminated. */
char *nt_job_body(const Carepass__V1__NotifyJob *job, int64_t now_ms);

/* Store a delivery if its id is new (one Lua script: create hash + ZADD due now).
 * *created = true when new, false when the id already existed. -1 on Redis error. */
int nt_delivery_create(cp_redis_t *r, const char *id, const char *url, const char *body,
                       const char *type, const char *provider, int64_t now_ms,
                       bool *created, char *err, size_t errlen) CP_WUR;

/* ---- notify_fanout.c: recipients of record events ---------------------- */

/* Everything the record.revoked / record.expiring / record.expired webhooks say. */
typedef struct {
  const char *type;             // record.revoked | record.expiring | record.expired
  const char *provider;         // provider id of the record
  const char *event_id;         // provider event id (of the record, or of the revocation)
  const char *qual;             // qualification code
  const char *worker_hex;       // worker pseudonym hex ("" = unknown: provider only)
  const char *completion_date;  // YYYY-MM-DD or ""
  const char *valid_until;      // YYYY-MM-DD or ""
  const char *reason_code;      // record.revoked: the reason ("" otherwise)
  uint64_t entry_index;         // the record concerned (for a revocation: the revoked one)
  int stage;                    // expiry stage 0..3 (-1 for record.revoked)
} nt_record_event_t;

/* Deterministic webhook-id of one fan-out delivery: "msg_" + hex of the first 16 bytes
 * of BLAKE2b("fanout" 0 type 0 recipient 0 entry_index(8 BE) stage(1)), recipient being
 * "provider:<id>", "sub:<sub id>" or "worker". */
void nt_fanout_id(const char *type, const char *recipient, uint64_t entry_index, int stage,
                  char out[NT_ID_SIZE]);

/* Days before valid_until of an expiry stage (90, 30, 7; -1 for the expired stage). */
int nt_stage_days_before(int stage);

/* Create the deliveries of one record event: to the provider (registry webhook_url,
 * unless skip_provider), to every live subscription of the worker that wants the type
 * and covers the entry (dead ones are removed), and to the worker's own webhook.
 * *created counts new deliveries. -1 on Redis error (nothing is lost: ids are
 * deterministic, so the caller simply tries again). */
struct prov_registry;
int nt_fanout(cp_redis_t *r, const struct prov_registry *providers, const nt_record_event_t *ev,
              bool skip_provider, int64_t now_ms, size_t *created, char *err, size_t errlen) CP_WUR;

/* A plan: the deliveries of many jobs and record events, stored in three pipelined
 * round trips whatever their number: (1) the caller's own commands (nt_plan_pre) and
 * every event's subscription set and worker profile, (2) every subscription hash,
 * (3) clean-up of dead subscriptions and the creates (one script call per 128
 * deliveries; existing ids are left alone). nt_plan_run once per plan. */
typedef struct nt_plan nt_plan_t;

nt_plan_t *nt_plan_new(void);
void nt_plan_destroy(nt_plan_t **p);
/* The round-1 pipe: queue commands that must run before the creates; read their
 * replies with nt_pipe_reply after nt_plan_run (valid until nt_plan_destroy). */
nt_pipe_t *nt_plan_pre(nt_plan_t *p);
/* A delivery with a known id (strings copied). tag labels it for nt_plan_count_created.
 * Returns its index for nt_plan_created. */
size_t nt_plan_delivery(nt_plan_t *p, const char *id, const char *url, const char *body,
                        const char *type, const char *provider, int tag);
/* A record event: what nt_fanout does for one (the provider's delivery is planned at
 * once; subscribers and the worker's webhook are read during the run). */
void nt_plan_event(nt_plan_t *p, const struct prov_registry *providers, const nt_record_event_t *ev,
                   bool skip_provider, int64_t now_ms, int tag);
/* Run the three rounds. -1 when Redis failed or a create failed (nothing is lost:
 * ids are deterministic and creates idempotent, so the caller runs a new plan later). */
int nt_plan_run(nt_plan_t *p, cp_redis_t *r, int64_t now_ms, char *err, size_t errlen) CP_WUR;
size_t nt_plan_size(const nt_plan_t *p);
/* After the run: was delivery i new? How many new ones carry tag (-1 = any)? */
bool nt_plan_created(const nt_plan_t *p, size_t i);
size_t nt_plan_count_created(const nt_plan_t *p, int tag);

/* ---- notify_expiry.c: the expiry schedule and its scanner --------------- */

/* Schedule a committed record's expiry webhooks (no-op without valid_until, without
 * a 32-byte pseudonym, or when already scheduled/revoked). Thresholds already passed
 * on `today` are skipped. */
int nt_expiry_schedule(cp_redis_t *r, const Carepass__V1__NotifyJob *job, int32_t today,
                       char *err, size_t errlen) CP_WUR;

/* The same queued on a pipe; false when there is nothing to schedule. */
bool nt_expiry_schedule_append(nt_pipe_t *p, const Carepass__V1__NotifyJob *job, int32_t today);

/* A record was revoked: drop its schedule and remember it as revoked. */
int nt_expiry_revoke(cp_redis_t *r, uint64_t index, char *err, size_t errlen) CP_WUR;

/* The same queued on a pipe (reply: integer). */
void nt_expiry_revoke_append(nt_pipe_t *p, uint64_t index);

/* One scan: take up to max records whose next threshold is <= today (Lua, with a
 * lease so several replicas never take the same one), create all their deliveries in
 * one plan, then advance each to its next stage. *emitted = records handled. */
int nt_expiry_scan(cp_redis_t *r, const struct prov_registry *providers, int32_t today,
                   int64_t now_ms, int64_t lease_ms, size_t max, size_t *emitted,
                   size_t *created, char *err, size_t errlen) CP_WUR;

/* ---- notify_retry.c: claim, delivered, retry, dead letter --------------- */

/* One claimed delivery (owned by the caller; free with nt_claimed_free). */
typedef struct {
  char id[NT_ID_SIZE];   // webhook-id
  int attempts;          // this attempt's number (1 = first)
  char *url;             // target URL
  char *body;            // JSON body
  char type[NT_TYPE_MAX + 1]; // event type (for the log line)
  char provider[64];     // provider id (for the log line)
  int64_t created_ms;    // unix ms the delivery was created (retry window)
} nt_claimed_t;

void nt_claimed_free(nt_claimed_t *c);

/* Atomically take up to max due deliveries (score <= now), re-score them to
 * now + lease_ms and count the attempt. Fills out[0..*n-1]. -1 on Redis error. */
int nt_claim(cp_redis_t *r, int64_t now_ms, int64_t lease_ms, size_t max,
             nt_claimed_t *out, size_t *n, char *err, size_t errlen) CP_WUR;

/* Endpoint load of this replica for a per-endpoint limited claim. */
typedef struct {
  const char *endpoint;  // "host:port" as nt_endpoint() writes it
  int inflight;          // transfers in flight to it (claims: plus queued, minus allowance)
} nt_ep_load_t;

/* nt_claim with a per-endpoint limit: deliveries whose endpoint already has
 * per_endpoint transfers in flight (loads[] plus what this claim takes) are left
 * due in Redis for a later claim. Scans at most 4 * max + 64 due ids. */
int nt_claim_limited(cp_redis_t *r, int64_t now_ms, int64_t lease_ms, size_t max,
                     int per_endpoint, const nt_ep_load_t *loads, size_t nloads,
                     nt_claimed_t *out, size_t *n, char *err, size_t errlen) CP_WUR;

/* The "host:port" endpoint of a URL into out (lower-cased host, default port from the
 * scheme); the same rule the claim script applies. */
void nt_endpoint(const char *url, char *out, size_t outlen);

/* The same claim queued on a pipe (nt_claim_parse reads its reply): the service
 * sends it together with the outcomes of the last loop turn. Returns its index.
 * A load may be negative: that endpoint may take more than per_endpoint (the service
 * queues the extra ones locally). scan = how many due ids to look at (0 = the rule of
 * nt_claim_limited). *more (may be NULL) = more may be due right now. */
size_t nt_claim_append(nt_pipe_t *p, int64_t now_ms, int64_t lease_ms, size_t max, size_t scan,
                       int per_endpoint, const nt_ep_load_t *loads, size_t nloads);
int nt_claim_parse(const redisReply *rep, size_t max, nt_claimed_t *out, size_t *n, bool *more,
                   char *err, size_t errlen) CP_WUR;

/* The outcome of one attempt, recorded in batches (one script call per 256). */
#define NT_MARK_DELIVERED 'd'   /* 2xx: tombstone, off the schedule */
#define NT_MARK_RETRY     'r'   /* failed: next attempt at t_ms */
#define NT_MARK_DEAD      'x'   /* failed for good: onto cp:nt:dead (t_ms = now) */
#define NT_MARK_RELEASE   'b'   /* not attempted after all: attempts - 1, due at t_ms */
typedef struct {
  char id[NT_ID_SIZE];  // webhook-id
  char op;              // NT_MARK_*
  int status;           // HTTP status of the attempt (0 = no HTTP answer)
  int64_t t_ms;         // retry: unix ms of the next attempt; dead: now; release: due
} nt_mark_t;

/* Queue marks on a pipe (replies: integers); or apply them now (one round trip). */
void nt_marks_append(nt_pipe_t *p, const nt_mark_t *marks, size_t n);
int nt_marks_apply(cp_redis_t *r, const nt_mark_t *marks, size_t n, char *err, size_t errlen) CP_WUR;

/* Single-delivery forms of the marks (each one round trip). */
/* 2xx: forget the delivery (tombstone) and drop it from the schedule. */
int nt_mark_delivered(cp_redis_t *r, const char *id, int status, char *err, size_t errlen) CP_WUR;

/* Failure: reschedule at due_ms. */
int nt_mark_retry(cp_redis_t *r, const char *id, int status, int64_t due_ms,
                  char *err, size_t errlen) CP_WUR;

/* Too many failures: move to cp:nt:dead. */
int nt_mark_dead(cp_redis_t *r, const char *id, int status, int64_t now_ms,
                 char *err, size_t errlen) CP_WUR;

/* Hand an unfinished claim back (shutdown): attempts--, due now. */
int nt_release(cp_redis_t *r, const char *id, int64_t now_ms, char *err, size_t errlen) CP_WUR;

/* ---- notify_deliver.c: libcurl multi delivery ---------------------------- */

typedef struct nt_deliverer nt_deliverer_t;

/* Result of one finished HTTP attempt. */
typedef struct {
  const nt_claimed_t *d;  // the delivery (valid during the callback only)
  long status;            // HTTP status; 0 = no HTTP answer
  int curl_code;          // CURLcode of the transfer
  const char *error;      // curl's error text ("" when none)
  int64_t elapsed_ms;     // time the attempt took
} nt_result_t;

typedef void (*nt_result_fn)(const nt_result_t *res, void *arg);

nt_deliverer_t *nt_deliverer_new(const cp_signkey_t *key, int concurrency, long timeout_ms,
                                 char *err, size_t errlen);
void nt_deliverer_destroy(nt_deliverer_t **d);
/* Free slots for new transfers. */
size_t nt_deliverer_room(const nt_deliverer_t *d);
/* Transfers in flight per endpoint (*loads points into the deliverer; valid until
 * the next start/run). Returns the number of endpoints with transfers in flight. */
size_t nt_deliverer_loads(nt_deliverer_t *d, const nt_ep_load_t **loads);
size_t nt_deliverer_inflight(const nt_deliverer_t *d);
/* Transfers in flight to one endpoint ("host:port" as nt_endpoint writes it). */
int nt_deliverer_ep_inflight(const nt_deliverer_t *d, const char *ep);
/* Start one attempt; takes ownership of *c (sets it to an empty struct). */
int nt_deliverer_start(nt_deliverer_t *d, nt_claimed_t *c, char *err, size_t errlen) CP_WUR;
/* Another descriptor to wait on with curl's (fd < 0 = none). */
typedef struct {
  int fd;                 // descriptor, e.g. ZMQ_FD or the async Redis connection
  short events;           // POLLIN and/or POLLOUT
} nt_waitfd_t;

/* Wait up to timeout_ms for curl activity or for an extra descriptor (up to 4) to be
 * ready, drive transfers and call fn for each finished one. */
int nt_deliverer_run(nt_deliverer_t *d, const nt_waitfd_t *extra, size_t nextra, int timeout_ms,
                     nt_result_fn fn, void *arg) CP_WUR;
/* Abort every transfer in flight, calling fn(claimed, arg) so it can be handed back. */
void nt_deliverer_abort_all(nt_deliverer_t *d, void (*fn)(const nt_claimed_t *c, void *arg), void *arg);

/* ---- notify_admin.c: operator subcommands (notify dead-list / dead-replay) -- */

/* Is arg one of the operator subcommands? */
bool nt_admin_is_command(const char *arg);
/* Run one: argv[0] = "dead-list" [COUNT] | "dead-replay" ID|--all. Config must be
 * loaded. Prints JSON lines on out; returns the process exit code. */
int nt_admin_main(int argc, char **argv, FILE *out, FILE *errout);

/* ---- notify_service.c: the service loop ---------------------------------- */

typedef struct nt_service nt_service_t;

/* Read the config (cp_service_init must have run), load keys and the provider
 * registry, connect Redis and the bus. */
nt_service_t *nt_service_new(char *err, size_t errlen);
/* Run until cp_stop_requested, then drain in-flight deliveries (bounded). */
int nt_service_run(nt_service_t *s) CP_WUR;
void nt_service_destroy(nt_service_t **s);

#endif
