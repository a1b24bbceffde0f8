/* signer.h -- the signer service's shared state and the functions its files provide. */
#ifndef SIGNER_H
#define SIGNER_H

#include "cp_util.h"
#include "cp_crypto.h"
#include "cp_redis.h"
#include "cp_register.h"
#include "cp_regkeys.h"
#include "cp_subject.h"
#include "carepass/v1/internal.pb-c.h"
#include "carepass/v1/register.pb-c.h"

#define SIGNER_NAME "signer"
#define SIGNER_MAX_RECORD_BYTES (256 * 1024)   /* largest VerifiedRecord accepted from the bus */
#define SIGNER_REDIS_RETRY_MS 1000              /* pause between Redis reconnection attempts */
#define SIGNER_AWARD_PROVIDER "carepass"        /* provider id of derived awards */

/* (provider_id, provider_event_id) -> register index, for idempotency (signer_index.c). */
typedef struct signer_index signer_index_t;
signer_index_t *signer_index_new(void);
void signer_index_destroy(signer_index_t **ix);
/* Index lookup; returns true and sets *index when present. */
bool signer_index_get(const signer_index_t *ix, const char *provider_id, const char *event_id,
                      uint64_t *index);
void signer_index_put(signer_index_t *ix, const char *provider_id, const char *event_id, uint64_t index);
size_t signer_index_count(const signer_index_t *ix);
/* Fill the index from every entry of the register and, in the same pass, build the
 * key history from its key entries (*keys malloc'd, free(); *nkeys 0 for a register
 * written before key entries existed). Key entries are not put in the index. */
int signer_index_build(signer_index_t *ix, reg_log_t *log, reg_keyspan_t **keys, size_t *nkeys,
                       char *err, size_t errlen) CP_WUR;

/* Decode a register entry (SignedEntry -> PassportEntry); free with
 * protobuf_c_message_free_unpacked. NULL with err set when malformed (signer_entry.c). */
Carepass__V1__PassportEntry *signer_entry_decode(const uint8_t *buf, size_t len, char *err, size_t errlen);
/* The canonical PassportEntry of a verified record (strings and bytes point into rec, and into
 * subject when given): version 1 names the worker by pseudonym; with a subject (ENTRY_FORMAT 2)
 * version 2 carries the subject commitment, slot and sealed opening instead (cp_subject.h). */
void signer_entry_fill(const Carepass__V1__VerifiedRecord *rec, int64_t issued_at, const cp_subject_t *subject,
                       Carepass__V1__PassportEntry *pe);
/* Build the canonical PassportEntry for a verified record, sign it and pack the
 * SignedEntry into a malloc'd buffer. A consent (ENTRY_TYPE_CONSENT) needs a subject and its
 * sealed employer id (sealed, sealed_len: cp_subject_store_seal_payload); without them it is
 * refused (-1 with err), as in entry format 1. Other entries pass NULL, 0. */
int signer_entry_build(const cp_signkey_t *key, const Carepass__V1__VerifiedRecord *rec, int64_t issued_at,
                       const cp_subject_t *subject, const uint8_t *sealed, size_t sealed_len, uint8_t **out,
                       size_t *outlen, char *err, size_t errlen) CP_WUR;

/* A batch in the signing pipeline (signer_batch.c). */
typedef struct signer_batch signer_batch_t;

/* The service (one per process; signer_new / signer_destroy). */
typedef struct signer {
  cp_signkey_t key;            // register signing key (name = log origin)
  int entry_format;            // ENTRY_FORMAT: 1 (pseudonym) or 2 (subject commitment)
  cp_subject_store_t *subjects; // the subject key store (format 2, or when it exists); NULL = none
  reg_log_t *log;              // the register shard (writer)
  signer_index_t *index;       // idempotency index over the register
  reg_keyspan_t *keys;         // key history of the register (from its key entries)
  size_t nkeys;                // spans in keys (0: register written before key entries)
  cp_redis_t *redis;           // Redis connection; NULL while Redis is unreachable
  int64_t redis_retry_at;      // monotonic ms of the next connection attempt
  bool redis_synced;           // the start-up marker has been read (applied is meaningful)
  uint64_t applied;            // register size up to which Redis updates (and the marker) are applied
  void *zctx;                  // ZeroMQ context
  void *pull;                  // PULL: VerifiedRecords from verify (bound, SIGNER_BIND)
  void *results;               // PUB: EventResults (connects to BUS_RESULTS_IN)
  int shard;                   // shard number (Redis marker key)
  int batch_max;               // SIGNER_BATCH_MAX
  int batch_wait_ms;           // SIGNER_BATCH_WAIT_MS
  uint64_t appended;           // counter: entries appended since start
  uint64_t duplicates;         // counter: records answered from the index
  uint64_t dropped;            // counter: malformed records dropped
  signer_batch_t *held;        // a signed batch waiting for its append (pipelining); NULL = none
} signer_t;

/* signer_service.c: make the signer from the configuration (CAREPASS_SIGNING_KEY,
 * REGISTER_DIR, SHARD, SIGNER_BATCH_*, SIGNER_BIND, BUS_*_IN, REDIS_*): load the key, open and
 * index the register (appending the genesis key entry to a new one), publish the vkeys, open
 * the sockets and catch Redis up. 0 with *out set, or -1 with err set and *out NULL. */
int signer_new(signer_t **out, char *err, size_t errlen) CP_WUR;
/* Free the held batch (unappended: its events are redriven), close sockets, Redis and the
 * register, wipe the key. NULL-safe; sets *sp to NULL. */
void signer_destroy(signer_t **sp);
/* The stop line operators and tests read: register size, appended, duplicates, dropped. */
void signer_log_counts(const signer_t *s);

/* signer_batch.c: one pass of the loop (waits up to timeout_ms for records when no
 * batch is held): signs the next batch on a worker thread while the held one is
 * appended and announced. -1 when the register must be reopened (restart). */
int signer_batch_run(signer_t *s, int timeout_ms) CP_WUR;
/* On stop: append and announce the held batch, if any. -1 when its append failed. */
int signer_batch_drain(signer_t *s) CP_WUR;
/* Free the held batch without appending it (after a failure; its events are redriven). */
void signer_batch_discard(signer_t *s);

/* signer_redis.c: connect if due, apply the Redis updates of entries in [applied, size): the
 * projection with each entry's notice, and cp:reg:{shard}:indexed, one transaction per chunk. */
void signer_redis_apply(signer_t *s);
/* Mark one (duplicate) event as committed at index; false when Redis did not take it. */
bool signer_redis_mark(signer_t *s, const char *provider_id, const char *event_id, uint64_t index);

#endif
