/* notify_loop.h -- the notify service object, shared by the files of its loop
 * (notify_service.c, notify_plan_jobs.c, notify_outcomes.c, notify_expiry_scan.c);
 * other code uses notify_service.h. */
#ifndef NOTIFY_LOOP_H
#define NOTIFY_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "cp_catalogue.h"
#include "cp_crypto.h"
#include "cp_log.h"
#include "cp_outbox.h"
#include "cp_redis.h"
#include "notify_async.h"
#include "notify_deliver.h"
#include "notify_retry.h"
#include "notify_sched.h"
#include "notify_secrets.h"
#include "notify_service.h"
#include "carepass/v1/internal.pb-c.h"

#define NT_WAIT_MS 50            /* longest wait in one loop turn */
#define NT_CLAIM_EVERY_MS 50     /* how often to look for due deliveries when idle */
#define NT_DRAIN_MS 5000         /* at shutdown, wait this long for in-flight deliveries */
#define NT_MARKS_FLUSH_N 64      /* record outcomes once this many are waiting ... */
#define NT_MARKS_FLUSH_MS 5      /* ... or the oldest has waited this long (or with a claim) */

/* Counters (exported in the stats log line; /metrics later). */
typedef struct {
  uint64_t jobs;               // NotifyJobs read from the outbox
  uint64_t jobs_invalid;       // jobs that did not unpack or check
  uint64_t no_target;          // jobs whose provider has no webhook URL (nothing to deliver)
  uint64_t created;            // deliveries created
  uint64_t duplicates;         // jobs whose delivery id already existed
  uint64_t delivered;          // 2xx answers
  uint64_t failed;             // failed attempts (non-2xx, timeout, connection error)
  uint64_t dead;               // deliveries moved to the dead-letter list
  uint64_t redis_errors;       // Redis failures
  uint64_t fanout;             // deliveries created for subscribers, workers and expiries
  uint64_t expiry_records;     // records handled by the expiry scanner
  uint64_t outbox_taken_over;  // outbox entries taken over from a replica past its lease
} nt_stats_t;

struct nt_service {
  cp_signkey_t key;            // webhook signing key
  prov_registry_t *providers;  // provider registry (webhook URLs)
  nt_secrets_src_t *secrets;   // the recipients' webhook secrets (v1 signatures)
  cp_redis_t *redis;           // Redis connection
  nt_deliverer_t *dlv;         // libcurl multi deliverer
  nt_sched_t *sched;           // claimed deliveries waiting for a slot of their endpoint
  int max_attempts;            // WEBHOOK_MAX_ATTEMPTS (0 = no count limit)
  int64_t retry_window_ms;     // WEBHOOK_RETRY_WINDOW_S in ms: give up after this long
  int per_endpoint;            // WEBHOOK_PER_ENDPOINT
  int64_t scan_every_ms;       // EXPIRY_SCAN_MS
  size_t scan_batch;           // EXPIRY_SCAN_BATCH
  int64_t next_scan;           // monotonic ms of the next expiry scan
  int64_t backoff_ms;          // WEBHOOK_BACKOFF_MS
  int64_t backoff_max_ms;      // WEBHOOK_BACKOFF_MAX_MS
  int64_t lease_ms;            // visibility timeout of a claim
  char consumer[200];          // this replica's consumer name in the outbox group (<host>-<pid>)
  int64_t outbox_lease_ms;     // NOTIFY_OUTBOX_LEASE_MS: entries held longer are taken over
  bool outbox_group;           // the consumer group is known to exist
  bool outbox_reread;          // read this consumer's unacknowledged entries before new ones
  int64_t next_autoclaim;      // monotonic ms of the next XAUTOCLAIM pass
  char autoclaim_cursor[CP_OUTBOX_ID_MAX]; // where the XAUTOCLAIM pass stands ("0-0" = from the start)
  bool more_jobs;              // the last turn left entries in the outbox: do not wait next turn
  nt_mark_t *marks;            // outcomes not yet recorded in Redis (sent once per loop turn)
  size_t nmarks;               // entries used in marks
  size_t markcap;              // entries allocated in marks
  int64_t marks_since;         // monotonic ms of the oldest unrecorded outcome
  nt_aredis_t *ar;             // non-blocking Redis connection for outcomes + claims
  cp_redis_pipe_t *pipe;       // the pipe of outcomes + claim (in flight on ar while busy)
  nt_mark_t *sent;             // outcomes in the pipe in flight
  size_t nsent;                // entries used in sent
  size_t sentcap;              // entries allocated in sent
  cp_redis_handle_t *mark_calls; // the pipe in flight's outcome script calls
  size_t nmark_calls;          // entries used in mark_calls
  bool claiming;               // the pipe in flight carries a claim
  cp_redis_handle_t claim;     // ... whose reply this is
  size_t claim_room;           // how many that claim may take
  bool due_maybe;              // the last claim left due deliveries in Redis (or new ones were stored)
  bool results;                // attempts finished since the last claim
  int64_t redis_pause_until;   // monotonic ms before which Redis is not tried again
  int64_t next_claim;          // monotonic ms of the next claim
  int64_t next_stats;          // monotonic ms of the next stats line
  nt_stats_t st;               // counters
};

#define NT_REDIS_PAUSE_MS 1000   /* back off this long after a Redis error */

/* A Redis failure pauses Redis use for a while (counted, logged). */
static inline void nt_loop_redis_failed(nt_service_t *s, const char *err) {
  s->st.redis_errors++;
  s->redis_pause_until = cp_mono_ms() + NT_REDIS_PAUSE_MS;
  cp_log_error("redis error", CP_KV_STR("error", err), CP_KV_END);
}

static inline bool nt_loop_redis_paused(const nt_service_t *s) { return cp_mono_ms() < s->redis_pause_until; }

#endif
