/* verify.h -- the verify service: its state, and the stages a batch of events goes through. */
#ifndef VERIFY_H
#define VERIFY_H

#include "carepass/v1/internal.pb-c.h"
#include "cp_catalogue.h"
#include "cp_crypto.h"
#include "cp_keys.h"
#include "cp_redis.h"
#include "verify_rules.h"

#define VERIFY_BATCH_MAX 256              /* events taken off the queue per round */
#define VERIFY_MAX_EVENT_BYTES (64 * 1024) /* largest PendingEvent accepted from the bus */
#define VERIFY_KEY_MAX 192                /* room for cp:ev:{<provider>:<event id>} */
#define VERIFY_AWARD_PROVIDER "carepass"  /* provider id of derived awards */
#define VERIFY_AWARD_REVOKE_REASON "REQUIREMENT_REVOKED" /* reason of an award revoked with its requirement */
#define VERIFY_AWARD_ID_MAX 128           /* room for an award or award-revocation event id (PROJ_AWARD_ID_MAX) */
#define VERIFY_CRASH_AWARD_CLAIMED "verify.award_claimed" /* test crash point (see verify_awards.c) */
#define VERIFY_AWARD_WD_TICK_MS 1000      /* how often verify looks at late award withdrawals (cp:award_wd) */
#define VERIFY_AWARD_WD_RESEND_MS 5000    /* a late award revocation not yet committed is re-sent after this */
#define VERIFY_AWARD_WD_SCAN 64           /* cp:award_wd fields looked at per tick (HSCAN COUNT) */

/* Counters, logged periodically (and for /metrics via the log). */
typedef struct {
  uint64_t received;     // PendingEvents taken off the bus
  uint64_t malformed;    // frames that were not a usable PendingEvent (dropped)
  uint64_t passed;       // records and revocations sent to a signer
  uint64_t rejected;     // events rejected with a reason code
  uint64_t replayed;     // already-final events whose stored result was re-published
  uint64_t awards;       // derived awards issued
  uint64_t redis_errors; // batches retried because Redis failed
  uint64_t award_redrives; // pending derived awards re-sent after a redrive
  uint64_t award_late_withdrawals; // awards withdrawn before they committed (recorded in cp:award_wd)
  uint64_t award_late_revokes;     // revocations sent for those awards once they committed
} verify_counts_t;


/* State of one event in a batch as it moves through the stages. */
typedef enum {
  VITEM_DROP = 0,     // unusable (malformed); nothing to do
  VITEM_REPLAY,       // already final in Redis: re-publish the stored result
  VITEM_REJECT,       // failed a rule: store with its notice, publish
  VITEM_PASS,         // passed: send a VerifiedRecord to the worker's signer shard
} verify_state_t;

/* One event of a batch. */
typedef struct {
  Carepass__V1__PendingEvent *ev;   // unpacked event (owned)
  bool usable;                      // decoded with a provider and event id (else dropped)
  verify_state_t state;             // what happens to it
  char key[VERIFY_KEY_MAX];         // cp:ev:{provider:event}
  verify_result_t res;              // the rules' verdict
  Carepass__V1__EntryType entry_type; // RECORD or REVOCATION when passing
  uint64_t revokes_index;           // revocation: index of the revoked record
  char target_key[VERIFY_KEY_MAX];  // revocation: cp:ev key of the event it revokes ("" if it names none)
  bool award_redrive;               // a pending derived award's own event, re-sent by intake's redrive
  char revoked_code[48];            // revocation: qualification code verify stored on the revoked record ("" if none)
  char stored_state[16];            // REPLAY: "rejected" or "committed"
  char stored_reason[48];           // REPLAY: stored reason code
  char stored_msg[VERIFY_MSG_MAX];  // REPLAY: stored sentence
  uint64_t stored_index;            // REPLAY: stored register index
  const cat_qual_t *award;          // derived award this event completes (NULL if none)
  uint64_t award_gen;               // generation of that award (0 first, +1 per revocation)
  const cat_qual_t *award_revoke;   // revocation: derived award it withdraws too (NULL if none)
  uint64_t award_revoke_index;      // register index of the withdrawn award
  char award_revoke_id[VERIFY_AWARD_ID_MAX]; // the withdrawn award's event id, as it was issued (either style)
} verify_item_t;

/* The running service (verify_new / verify_destroy). */
typedef struct verify {
  cat_catalogue_t *cat;         // qualification catalogue (owned)
  prov_registry_t *reg;         // provider registry (owned)
  cp_redis_t *redis;            // Redis connection (owned)
  void *zctx;                   // ZeroMQ context (owned)
  void *pull;                   // PULL from the bus verify queue
  void **shards;                // PUSH to each signer shard, in shard order
  size_t nshards;               // number of signer shards
  void *results;                // PUB to the bus results topic
  int64_t redrive_after_ms;     // REDRIVE_AFTER_MS: when intake re-sends an issued award not yet committed
  char wd_cursor[24];           // HSCAN cursor over cp:award_wd between ticks ("0" = start again)
  verify_counts_t counts;       // counters
  verify_item_t *items;         // the batch being worked on (VERIFY_BATCH_MAX slots)
  int64_t last_counts;          // monotonic ms of the last periodic counts line
  uint64_t logged_received;     // counts.received when it was written
  int64_t last_wd;              // monotonic ms of the last late-withdrawal tick
  unsigned char award_secret[CP_SECRET_BYTES]; // AWARD_TAG_SECRET: keys award ids' tags (wiped by verify_destroy)
} verify_t;

/* verify_loop.c: make verify over a loaded catalogue and provider registry (it takes both:
 * *cat and *reg are set to NULL, also on failure), waiting for Redis until it answers or a stop
 * is requested, and open its sockets. 0 with *out set, or -1 with err set and *out NULL. */
int verify_new(verify_t **out, cat_catalogue_t **cat, prov_registry_t **reg, char *err,
               size_t errlen) CP_WUR;
/* Close sockets and Redis, free the catalogue and registry. NULL-safe; sets *vp to NULL. */
void verify_destroy(verify_t **vp);
/* One turn of the receive loop: the periodic ticks, then wait up to timeout_ms for events and
 * run the batch that arrived (retrying it while Redis fails, until a stop is requested). */
int verify_turn(verify_t *v, int timeout_ms) CP_WUR;
/* The "counts" line (received, passed, rejected, ...), also written at stop. */
void verify_log_counts(const verify_t *v);

/* verify_batch.c: the stages over a batch of items. Returns 0, or -1 when Redis
 * failed before anything was sent (the caller reconnects and retries the batch). */
int verify_batch(verify_t *v, verify_item_t *items, size_t n, int32_t today) CP_WUR;

/* verify_awards.c: after the batch's rules, record passing Care Certificate standards and
 * mark the items that complete a derived award (item->award). -1 on Redis failure. */
int verify_awards_record(verify_t *v, verify_item_t *items, size_t n) CP_WUR;
/* verify_awards.c: after stage_write, for passing revocations of a code a derived award requires:
 * take the code out of the worker's set and, when that award was issued and is committed, mark
 * the item to withdraw it too (item->award_revoke). The award is named by the id it has
 * (item->award_revoke_id): cp:w:{hex}:award_gen "<code>:last" when that is of the generation
 * withdrawn, else the legacy id of an award issued before keyed ids (proj_award_id_at). When it was
 * issued but is not committed yet, withdraw it in Redis and record the late withdrawal, with that
 * id, in cp:award_wd (verify_withdraw.c sends the award's revocation once it commits). An
 * operator's revocation of an award itself withdraws it when its id, of either style, is the
 * worker's (proj_award_ref_is_of). -1 on Redis failure. */
int verify_awards_revoke(verify_t *v, verify_item_t *items, size_t n) CP_WUR;
/* verify_withdraw.c: one look at the late award withdrawals recorded in cp:award_wd (awards withdrawn
 * by verify_awards_revoke while not yet committed): an award now committed gets its revocation sent
 * (the award's id from the record's third token, or the legacy id for a record written before award
 * ids were keyed; the revocation's id by proj_award_revoke_id; reason REQUIREMENT_REVOKED; re-sent
 * every VERIFY_AWARD_WD_RESEND_MS until committed); the record goes once that revocation is
 * committed, or when the award will not reach the register (rejected / unknown) or was revoked by
 * another entry. Called every VERIFY_AWARD_WD_TICK_MS. -1 on Redis failure (nothing lost: the next
 * tick retries). */
int verify_awards_withdraw_tick(verify_t *v) CP_WUR;
/* verify_awards.c: for items that are a pending derived award re-sent by intake's redrive
 * (item->award_redrive): pass it to the signer when the worker still holds the award at that
 * generation (or it was withdrawn before it committed: it still goes onto the register, and its
 * revocation follows, see verify_withdraw.c) and the standard that completed it is committed; wait
 * (drop) while that standard is not; reject it when the award is no longer held, or when its id is
 * not an award id of this worker (proj_award_ref_is_of: either id style). -1 on Redis failure. */
int verify_awards_redrive(verify_t *v, verify_item_t *items, size_t n) CP_WUR;
/* Build the derived award's PendingEvent for the worker of `src`: provider "carepass", event id the
 * keyed "award:<code>:k<32 hex tag>", then ":g<gen>" for gen > 0 (proj_award_id, keyed with
 * `secret`, verify's AWARD_TAG_SECRET). Only issuing makes a new id; everything after refers to the
 * id the award has. Strings point into `idbuf`. */
void verify_award_event(const unsigned char secret[CP_SECRET_BYTES], const Carepass__V1__PendingEvent *src,
                        const cat_qual_t *award, uint64_t gen, char idbuf[VERIFY_AWARD_ID_MAX],
                        Carepass__V1__PendingEvent *out);
/* Build the PendingEvent withdrawing the award with event id `award_id` (either style) for the
 * worker of `src`: provider "carepass", event id proj_award_revoke_id(award_id) (for example
 * "award-revoke:<code>:k<tag>:<gen>", or "award-revoke:<code>:<hex16>:<gen>" for a legacy award),
 * reason REQUIREMENT_REVOKED. Strings point into `idbuf` and `revbuf`. -1 when award_id is not an
 * award id of `award`. */
int verify_award_revocation_event(const Carepass__V1__PendingEvent *src, const cat_qual_t *award,
                                  const char *award_id, char idbuf[VERIFY_AWARD_ID_MAX],
                                  char revbuf[VERIFY_AWARD_ID_MAX], Carepass__V1__PendingEvent *out) CP_WUR;

/* verify_send.c: messages out. All return 0, or -1 when stopping before the send completed. */
size_t verify_shard_of(const ProtobufCBinaryData *pseudonym, size_t nshards);
int verify_send_record(verify_t *v, const Carepass__V1__VerifiedRecord *rec) CP_WUR;
int verify_publish_result(verify_t *v, const char *reply_to, const Carepass__V1__EventResult *res) CP_WUR;

#endif
