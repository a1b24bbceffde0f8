/* cp_projection.h -- the one projection of the register onto Redis: what a committed register
 * entry means for the derived keys (cp_keys.h). The signer applies it after each durable batch
 * (services/signer/signer_redis.c), `carepass reindex` replays the whole log through it
 * (tools/carepass/cmd_reindex.c), and verify withdraws awards with its script.
 *
 * Every committed entry, live and replayed (proj_entry), in the same pipeline as the rest of
 * its batch:
 *   cp:ev:{p:e}             state committed, index (pending, reason, msg deleted); out of cp:pending
 *   cp:w:{hex}:entries      the entry's index, appended once
 *   revocation of a record or award below it: on the revoked event's cp:ev, revoked_by (HSETNX:
 *                           verify sets it first when it verifies the revocation), revoked_index,
 *                           revoked_at (the revocation's issued_at)
 *   key entries             nothing (no event, no worker)
 *   expiry schedule         a record or award with a valid_until and a worker: cp:exp:{index}
 *                           (state scheduled, stage, provider, qual, worker, valid_until,
 *                           completion_date, event_id) and its index in cp:exp:due at the day of
 *                           that stage, the first threshold not passed on `today` (proj_new); none
 *                           when every threshold has passed. Created once: nothing is written when
 *                           the hash exists, so applying again never resets the stage notify moved.
 *                           A revocation of an entry below it retires that entry's schedule (out of
 *                           cp:exp:due and cp:exp:lease, the hash replaced by state=revoked kept
 *                           PROJ_EXP_TOMBSTONE_TTL_S). One writer per field: the projection creates
 *                           the hash and its first cp:exp:due score and writes the tombstone; notify
 *                           (services/notify/notify_expiry.c) alone moves stage / state=done, the
 *                           later cp:exp:due scores and cp:exp:lease, and sends the notices.
 * Live only (PROJ_LIVE): the notice the entry owes, record.committed (records, awards) or
 * record.revoked, in the outbox (cp_outbox.h). The signer queues the chunk in one transaction with
 * the indexed marker, so a notice is written once with its entry (again only if a reply was lost:
 * a harmless duplicate, webhook ids are deterministic); a replay writes none.
 * Replayed only (PROJ_REPLAY), because live they are written before the commit by the service
 * that decides them and they must not be written again at commit (a replay of the signer's last
 * batches after a crash would undo later decisions):
 *   cp:ev digest            intake's idempotency digest, rebuilt from the entry (events that came
 *                           through intake: not carepass's own award events)
 *   cp:ev qcode, cp:w:{hex}:cc    a standard a derived award requires (verify, verify_awards.c)
 *   cp:w:{hex}:awards, :award_gen, cp:award_wd   the award state machine (verify_awards.c):
 *                           an award entry is held (at the generation of its id), a revoked award
 *                           is withdrawn (proj_withdraw_award, the script verify uses too), a
 *                           revoked standard withdraws the award it counts towards (its event
 *                           gets revoked_by, as verify writes it), recording a late withdrawal
 *                           until the award's own revocation is on the register
 * Last, cp:reg:{shard}:indexed (proj_indexed). Applying an entry twice changes nothing, so does
 * replaying the whole log over the state it built. */
#ifndef CP_PROJECTION_H
#define CP_PROJECTION_H

#include <stdint.h>

#include "carepass/v1/register.pb-c.h"
#include "cp_catalogue.h"
#include "cp_crypto.h"
#include "cp_redis.h"
#include "cp_subject.h"

#define PROJ_AWARD_PROVIDER "carepass"             /* provider id of derived awards and their revocations */
#define PROJ_OPERATOR_PROVIDER "carepass-operator" /* provider id of operator revocations (carepass revoke) */
#define PROJ_CONSENT_PROVIDER "carepass-consent"   /* provider id of workers' consents and their withdrawals */
#define PROJ_CONSENT_REASON "CONSENT_WITHDRAWN"    /* the reason code of a consent's withdrawal */
#define PROJ_EMPLOYER_ID_MAX 16                     /* "EMP-" and at most 12 digits */
#define PROJ_CONSENT_ID_HEX 32                      /* a consent event id is "consent:" + 32 hex (128 random bits) */

/* Is id an employer id by format ("EMP-" then 4 to 12 ASCII digits)? Format only: the registry of
 * employers is not consulted here. */
bool proj_employer_id_valid(const char *id);

#define PROJ_AWARD_ID_MAX 128   /* room for an award or award-revocation event id (the signer takes 128) */
#define PROJ_AWARD_TAG_BYTES 16  /* the keyed tag of an award id: 16 bytes, 32 hex */
#define PROJ_AWARD_TAG_DOMAIN "carepass/award/v1\n"   /* what the tag's BLAKE2b message starts with */

/* Derived award event ids, in two styles (the privacy section of README.md says what each links):
 *   keyed  (what verify issues now)   "award:<code>:k<32 hex tag>", then ":g<gen>" for gen > 0,
 *          tag = BLAKE2b-128 (crypto_generichash) keyed with verify's AWARD_TAG_SECRET over
 *          PROJ_AWARD_TAG_DOMAIN || code || "\n" || 32-byte pseudonym || gen (8 bytes big-endian):
 *          no one without the secret can compute or recognise it from the pseudonym, and each
 *          generation has its own tag;
 *   legacy (awards issued before it, still on registers) "award:<code>:<first 16 hex of the
 *          pseudonym>", then ":g<gen>".
 * Only issuing uses the keyed style; everything after that uses the id the award has (its event,
 * cp:w:{hex}:award_gen <code>:last, the third token of a cp:award_wd value), falling back to the
 * legacy id where an award from before the upgrade left none. A revocation's id follows from the
 * award's id alone (proj_award_revoke_id), in both styles. */

/* The keyed tag of generation gen of the award `code` of the worker with this pseudonym. */
void proj_award_tag(const unsigned char secret[CP_SECRET_BYTES], const char *code,
                    const uint8_t pseudonym[CP_PSEUDONYM_BYTES], uint64_t gen,
                    uint8_t tag[PROJ_AWARD_TAG_BYTES]);
/* The keyed award id (what verify issues). */
void proj_award_id(const unsigned char secret[CP_SECRET_BYTES], const char *code,
                   const uint8_t pseudonym[CP_PSEUDONYM_BYTES], uint64_t gen, char out[PROJ_AWARD_ID_MAX]);
/* The legacy award id of the worker pseudonym_hex (an award issued before keyed ids). */
void proj_award_id_legacy(const char *code, const char *pseudonym_hex, uint64_t gen, char out[PROJ_AWARD_ID_MAX]);
/* The id of the revocation of award award_id, one rule for both styles: strip "award:" and any
 * ":g<n>" suffix, then "award-revoke:" + that + ":" + gen ("award:CC:k<tag>:g2" ->
 * "award-revoke:CC:k<tag>:2"; the legacy ids' revocations come out as they always were). The
 * replay's Lua mirror is standard_revoked's revoke_id in projection.c. False when award_id is not
 * an award id (out is then ""). */
bool proj_award_revoke_id(const char *award_id, char out[PROJ_AWARD_ID_MAX]);

typedef enum {
  PROJ_AWARD_LEGACY,   // "award:<code>:<hex16>[:g<gen>]"
  PROJ_AWARD_KEYED,    // "award:<code>:k<32 hex>[:g<gen>]"
} proj_award_style_t;

/* An award id, parsed. */
typedef struct {
  char code[CAT_CODE_MAX];                 // the award's qualification code
  proj_award_style_t style;                // which of the two styles
  char tag[2 * PROJ_AWARD_TAG_BYTES + 1];  // legacy: the 16 pseudonym hex; keyed: the 32 tag hex
  uint64_t gen;                            // the generation (0 for an id without ":g<n>")
} proj_award_ref_t;

/* The id generation gen of the worker's award `code` has: `known` (the award's id as recorded:
 * "<code>:last" of cp:w:{hex}:award_gen, the third token of a cp:award_wd value; NULL or "" when
 * none) when it is an id of that code and generation, else the legacy id (an award issued before
 * keyed ids, for which nothing was recorded). The replay's Lua mirror is in standard_revoked. */
void proj_award_id_at(const char *code, const char *pseudonym_hex, const char *known, uint64_t gen,
                      char out[PROJ_AWARD_ID_MAX]);

/* Split an award event id of either style; false when it is not one. */
bool proj_award_id_parse(const char *id, proj_award_ref_t *out);
/* Is the parsed award this worker's: a legacy id whose hex16 is the pseudonym's first 16 hex, or a
 * keyed id whose tag is the worker's tag for the parsed code and generation (constant time)? */
bool proj_award_ref_is_of(const proj_award_ref_t *ref, const unsigned char secret[CP_SECRET_BYTES],
                          const uint8_t pseudonym[CP_PSEUDONYM_BYTES]);

typedef enum {
  PROJ_LIVE,     // the signer, after a durable batch: intake and verify wrote the rest already
  PROJ_REPLAY,   // `carepass reindex`: nothing else wrote anything; rebuild all derived state
} proj_mode_t;

typedef struct proj proj_t;

/* The expiry stages of a schedule: 90, 30 and 7 days before valid_until, then the day after. */
#define PROJ_EXP_STAGES 4
#define PROJ_EXP_TOMBSTONE_TTL_S (400 * 86400)   /* how long a revoked/done schedule is remembered */

/* Days before valid_until of an expiry stage (90, 30, 7; -1 for the expired stage). */
int proj_exp_days_before(int stage);

/* Day number of a stage's threshold for a record valid until day valid_until. */
int32_t proj_exp_threshold(int32_t valid_until, int stage);

/* cat may be NULL in PROJ_LIVE (it is used only for the award state of a replay). today is the
 * day number (cp_today) from which a new expiry schedule starts: thresholds already passed that
 * day are skipped, as they always were when a record was scheduled. */
proj_t *proj_new(proj_mode_t mode, const cat_catalogue_t *cat, int32_t today);
void proj_destroy(proj_t **p);
/* The subject key store that opens format-2 entries (cp_subject.h); without one, or for an entry
 * it cannot open (its worker left the register), the entry is projected without a worker: its
 * event state only, no worker index, award state, expiry schedule or worker in its notice. */
void proj_set_subjects(proj_t *p, const cp_subject_store_t *subjects);

/* Queue on pipe the Redis updates of committed entry `index`. For a revocation, target is the
 * entry it revokes (NULL when it names none below it or that entry cannot be read). */
void proj_entry(proj_t *p, cp_redis_pipe_t *pipe, uint64_t index, const Carepass__V1__PassportEntry *pe,
                const Carepass__V1__PassportEntry *target);

/* Queue the event state of (provider, event) committed at `index` (what proj_entry writes for
 * every event; alone, for an event the register already holds: a duplicate). */
void proj_event_committed(cp_redis_pipe_t *pipe, const char *provider_id, const char *event_id, uint64_t index);

/* Queue "this standard counts towards a derived award": its code on its event (qcode, for a
 * revocation that names only the event) and in the worker's progress set cp:w:{hex}:cc. Verify
 * writes it when it passes the standard, a replay when it meets the committed record. */
void proj_standard_held(cp_redis_pipe_t *pipe, const char *evkey, const char *pseudonym_hex, const char *code);

/* Queue "generation gen of award code is withdrawn" for the worker: only while the generation is
 * still gen (a missing field is 0) does it go up by one and the code leave the awards set. The
 * reply is 1 when this call withdrew it, else 0. */
cp_redis_handle_t proj_withdraw_award(cp_redis_pipe_t *pipe, const char *pseudonym_hex, const char *award_code,
                                      uint64_t gen);

/* Queue cp:reg:{shard}:indexed = size. */
void proj_indexed(cp_redis_pipe_t *pipe, int shard, uint64_t size);

#endif
