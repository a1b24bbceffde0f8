/* cp_ingest.h -- taking in provider events, shared by every provider edge (intake over
 * CurveZMQ, the gateway over HTTP) so both apply the same rules and give the same answers:
 *   ingest_shape.c    per-event shape checks (pure: no I/O, no clock)
 *   ingest_pending.c  the PendingEvent of a shape-checked event, its content digest, and the
 *                     event.accepted notify job
 *   ingest_store.c    idempotent claims in Redis (cp:ev:{p:e} + cp:pending + the outbox, one
 *                     Lua call per event, one pipeline per batch) and state reads
 *   ingest_fields.c   CompletionEvent fields by proto name (for edges that read events as text)
 *   ingest_wire.c     NUL bytes and invalid UTF-8 in the string fields of a packed
 *                     SubmitRequest, read from the wire (unpacked strings lose their length)
 *   ingest_batch.c    one batch end to end (shape -> pseudonyms -> claims -> forward -> per-event
 *                     answers); each edge passes how it forwards (ing_edge_t)
 * Key scheme: cp_keys.h. */
#ifndef CP_INGEST_H
#define CP_INGEST_H

#include "carepass/v1/event.pb-c.h"
#include "carepass/v1/internal.pb-c.h"
#include "cp_crypto.h"
#include "cp_reasons.h"
#include "cp_redis.h"
#include "cp_util.h"

/* ---- shape (ingest_shape.c) ------------------------------------------------- */

#define ING_EVENT_ID_MAX 64        /* provider_event_id / revokes_event_id length limit */
#define ING_QUAL_CODE_MAX 31       /* qualification_code length limit */
#define ING_ASSESSOR_MAX 64        /* assessor_id length limit */
#define ING_REASON_CODE_MAX 64     /* revocation_reason length limit */
#define ING_EVIDENCE_HASH_BYTES 32 /* evidence_hash is a SHA-256 */
#define ING_OLDEST_DATE "1990-01-01" /* completion dates before this are refused */
#define ING_SHAPE_MSG_MAX 160      /* room for one sentence */

/* The shape verdict on one event. */
typedef struct {
  cp_reason_t reason;              // CP_OK when the event passed every check
  char message[ING_SHAPE_MSG_MAX]; // sentence naming the field and the limit ("" when CP_OK)
  char ni_norm[10];                // normalised NI number when CP_OK (personal data: wipe after use)
} ing_shape_t;

/* Check one event sent by the authenticated provider `provider_id`, with
 * `today` as the day number of today. Fills *out; never echoes the NI number. */
void ing_shape_event(const Carepass__V1__CompletionEvent *ev, const char *provider_id,
                     int32_t today, ing_shape_t *out);

/* Check a whole batch: ing_shape_event on each event, then the later occurrences of a
 * provider_event_id already used earlier in the batch get DUPLICATE_IN_BATCH. out has
 * n entries, in the order of events. */
void ing_shape_batch(Carepass__V1__CompletionEvent *const *events, size_t n,
                     const char *provider_id, int32_t today, ing_shape_t *out);

/* Wipe the NI numbers held in out[0..n-1]. */
void ing_shape_wipe(ing_shape_t *out, size_t n);

/* ---- text faults on the wire (ingest_wire.c) --------------------------------- */

/* A string field whose bytes a C string cannot carry faithfully or that is not UTF-8. */
typedef struct {
  cp_reason_t reason;  // CP_OK, CP_R_NUL_IN_STRING or CP_R_INVALID_UTF8
  const char *field;   // proto name of the first such field (static), NULL when CP_OK
} ing_text_fault_t;

/* Walk the packed SubmitRequest buf[0..len-1] (already unpacked by protobuf-c into n_events
 * events) and fill faults[i] for its i-th event and *request for request_id. -1 when the
 * bytes do not frame as a SubmitRequest of n_events events (answer MALFORMED_REQUEST). */
int ing_wire_check(const uint8_t *buf, size_t len, size_t n_events, ing_text_fault_t *faults,
                   ing_text_fault_t *request) CP_WUR;

/* ---- fields by name (ingest_fields.c) ---------------------------------------- */

#define ING_NSTR_FIELDS 8          /* string fields of CompletionEvent */

/* One string field of CompletionEvent. */
typedef struct {
  const char *name;  // proto field name (JSON key, CSV header)
  size_t offset;     // offsetof the char * in Carepass__V1__CompletionEvent
} ing_str_field_t;

/* Every string field of CompletionEvent (all but evidence_hash and kind). */
extern const ing_str_field_t ing_str_fields[ING_NSTR_FIELDS];
/* Where field f of ev is stored. */
char **ing_str_slot(Carepass__V1__CompletionEvent *ev, const ing_str_field_t *f);
/* "completion" / "revocation" or the enum names, any case ("" = completion) -> *out; -1 otherwise. */
int ing_kind_parse(const char *s, Carepass__V1__EventKind *out) CP_WUR;

/* ---- pending events (ingest_pending.c) --------------------------------------- */

/* The PendingEvent of a shape-checked event. Strings point into ev and provider_id
 * (pe must not outlive them); no NI number, only the pseudonym. received_at = 0 and
 * reply_to = "" (the caller sets them after the digest). */
void ing_pending_build(const Carepass__V1__CompletionEvent *ev, const char *provider_id,
                       const unsigned char pseudonym[CP_PSEUDONYM_BYTES],
                       Carepass__V1__PendingEvent *pe);
/* Hex SHA-256 of pe packed with received_at and reply_to cleared (canonical content). */
int ing_pending_digest(const Carepass__V1__PendingEvent *pe, char hex[65]) CP_WUR;
/* The event.accepted NotifyJob of a newly accepted event (strings point into pe). */
void ing_accepted_job(const Carepass__V1__PendingEvent *pe, Carepass__V1__NotifyJob *job);

/* ---- the idempotent store (ingest_store.c) ----------------------------------- */

/* Where an event stands, as far as the store knows. */
typedef enum {
  ING_ST_UNKNOWN = 0,  // no state in Redis (expired or never stored)
  ING_ST_ACCEPTED,     // durable, not yet final
  ING_ST_REJECTED,     // final: refused by the edge or verify
  ING_ST_COMMITTED,    // final: in the register
} ing_st_t;

/* What claiming (or reading) one event found. */
typedef struct {
  bool is_new;          // first time: stored as accepted, must be forwarded to verify
  bool reused;          // the id was used before for different content
  bool busy;            // new, but the outbox is at OUTBOX_MAX: nothing stored, resend later
  ing_st_t st;          // stored state when neither new nor reused
  char *reason;         // stored reason code (rejected; owned)
  char *message;        // stored sentence (rejected; owned)
  uint64_t index;       // stored register index (committed)
} ing_claim_t;

/* One event to claim. */
typedef struct {
  const char *event_id;   // provider_event_id
  const char *digest;     // hex SHA-256 of the canonical content
  const uint8_t *pending; // packed PendingEvent to store
  size_t pending_len;     // its length
  const uint8_t *notice;  // packed event.accepted NotifyJob, added to the outbox if new
  size_t notice_len;      // its length
} ing_claim_req_t;

/* SCRIPT LOAD the claim script now, so that a Redis that cannot run it is found at start-up
 * (calls run it by EVALSHA through the Redis layer's script registry). */
int ing_store_init(cp_redis_t *r, char *err, size_t errlen) CP_WUR;
/* Claim n events of `provider` in one pipeline; out[i] for reqs[i]. A new event is
 * scheduled in cp:pending for redrive after redrive_after_ms and its notice added to the
 * outbox in the same script; while the outbox holds outbox_max entries a new event is not
 * stored (out[i].busy). Idempotent: after a
 * connection failure it reconnects and reruns once (scripts are reloaded by the Redis
 * layer). -1 when Redis is unavailable (nothing to clear). */
int ing_store_claim(cp_redis_t *r, int64_t redrive_after_ms, int64_t outbox_max, const char *provider,
                    const ing_claim_req_t *reqs, size_t n, ing_claim_t *out) CP_WUR;
/* Read the states of n events of `provider` in one pipeline (out[i].st ING_ST_UNKNOWN
 * when absent). -1 when Redis is unavailable. */
int ing_store_read(cp_redis_t *r, const char *provider, const char *const *event_ids, size_t n,
                   ing_claim_t *out) CP_WUR;
void ing_claim_clear(ing_claim_t *c);
/* An event's state from the reply of "HMGET <cp:ev key> state reason msg index" (zeroed when
 * the reply has another shape). Caller clears it with ing_claim_clear. */
void ing_claim_from_hmget(const redisReply *x, ing_claim_t *out);
/* State name in Redis ("accepted", ...) -> ing_st_t (ING_ST_UNKNOWN otherwise). */
ing_st_t ing_state_of(const char *s, size_t len);

/* ---- one batch end to end (ingest_batch.c) ----------------------------------- */

/* The answer for one event of a batch, the same on every edge. */
typedef struct {
  char *event_id;    // provider_event_id as sent (owned)
  ing_st_t st;       // ACCEPTED, REJECTED or COMMITTED
  char *reason;      // reason code when rejected (owned, NULL otherwise)
  char *message;     // sentence when rejected (owned, NULL otherwise)
  uint64_t index;    // register index when committed
  bool waiting;      // committed ack: still waiting for a final state
} ing_answer_t;

/* What differs between edges when a batch is taken in. */
typedef struct {
  cp_redis_t *redis;                // Redis connection for the claims
  int64_t redrive_after_ms;         // REDRIVE_AFTER_MS (ing_store_claim)
  int64_t outbox_max;               // OUTBOX_MAX (ing_store_claim)
  const unsigned char *secret;      // pseudonym key, CP_SECRET_BYTES
  const char *reply_to;             // PendingEvent.reply_to: results topic of the edge, or ""
  /* Queue one newly claimed event (its packed PendingEvent) to verify, never blocking. A failed
   * push is the edge's to count: the event is durable in cp:pending and the redrive scan
   * resends it. (Its event.accepted notice went into the outbox with the claim.) */
  void (*forward)(void *arg, const Carepass__V1__PendingEvent *pe, const uint8_t *packed, size_t len);
  void *arg;                        // passed to forward
  /* Per event (n entries, or NULL): text faults the edge found where it still knew each
   * string's length (ing_wire_check); an event with one is rejected with its reason. */
  const ing_text_fault_t *faults;
} ing_edge_t;

/* Take in the n events of the authenticated `provider`: shape checks, pseudonyms,
 * PendingEvents and digests, claims in Redis (one pipeline), forward the new events, and
 * fill ans[i] for events[i] (ans zeroed by the caller; free with ing_answers_free). With
 * `committed`, accepted answers are marked waiting and counted in *nwaiting. -1 when Redis
 * is unavailable: nothing was stored, the caller answers UNAVAILABLE. */
int ing_batch_take(const ing_edge_t *edge, const char *provider, bool committed,
                   Carepass__V1__CompletionEvent *const *events, size_t n, ing_answer_t *ans,
                   size_t *nwaiting) CP_WUR;
/* Free the strings of ans[0..n-1] and ans itself (safe on NULL). */
void ing_answers_free(ing_answer_t *ans, size_t n);

#endif
