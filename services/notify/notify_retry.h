/* notify_retry.h -- claim, delivered, retry, dead letter. */
#ifndef NOTIFY_RETRY_H
#define NOTIFY_RETRY_H

#include <stdbool.h>
#include <stdint.h>
#include "cp_util.h"
#include "cp_redis.h"
#include "notify_jobs.h"
#include "notify_sign.h"

#define NT_TO_MAX 80     /* longest recipient label ("sub:" + a subscription id) + NUL */

/* One claimed delivery (owned by the caller; free with nt_claimed_free). */
typedef struct {
  char id[NT_ID_SIZE];   // webhook-id
  int attempts;          // this attempt's number (1 = first)
  char *url;             // target URL
  char *body;            // JSON body
  char type[NT_TYPE_MAX + 1]; // event type (for the log line)
  char provider[64];     // provider id (for the log line)
  int64_t created_ms;    // unix ms the delivery was created (retry window)
  char to[NT_TO_MAX];    // recipient: "provider:<id>", "sub:<sub id>", "worker" ("" = stored before v1)
  char secret[CP_WHSEC_SIZE];      // a subscription's current whsec_ secret ("" = none; wiped on free)
  char prev_secret[CP_WHSEC_SIZE]; // its previous one during an overlap ("" = none; wiped on free)
  int64_t prev_until;    // unix s until which prev_secret still signs
} nt_claimed_t;

/* Frees and wipes (the secrets). */
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


/* The same claim queued on a pipe (nt_claim_parse reads its reply): the service
 * sends it together with the outcomes of the last loop turn. Returns its handle.
 * A load may be negative: that endpoint may take more than per_endpoint (the service
 * queues the extra ones locally). scan = how many due ids to look at (0 = the rule of
 * nt_claim_limited). *more (may be NULL) = more may be due right now. */
cp_redis_handle_t nt_claim_append(cp_redis_pipe_t *p, int64_t now_ms, int64_t lease_ms, size_t max, size_t scan,
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

/* Queue marks on a pipe: nt_marks_calls(n) script calls, whose handles go into calls[]
 * (NULL = not wanted; replies: integers). Or apply them now (one round trip). */
size_t nt_marks_calls(size_t n);
void nt_marks_append(cp_redis_pipe_t *p, const nt_mark_t *marks, size_t n, cp_redis_handle_t *calls);
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

#endif
