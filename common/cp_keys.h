/* cp_keys.h -- the Redis key scheme. Every key carries a {hash tag} on the
 * entity it belongs to, so the same scheme works on Redis Cluster.
 *
 *  cp:ev:{<provider>:<event>}     HASH  state of one provider event:
 *        state   accepted | rejected | committed
 *        digest  hex SHA-256 of the event's canonical content (idempotency check)
 *        reason  reason code (rejected)       msg  sentence (rejected)
 *        index   register index (committed)   pending  PendingEvent bytes (until final)
 *        t       unix ms accepted
 *        revoked_by  provider event id of the revocation that withdrew this record (verify, HSETNX)
 *        qcode   qualification code, on records a derived award requires (verify)
 *        src     on a derived award cp:ev:{carepass:award:...}: the cp:ev key of the standard that
 *                completed it (verify records the award as a pending event when it issues it)
 *  cp:pending                     ZSET  "<provider>:<event>" scored by the unix ms at
 *                                       which to re-send it to verify if still not final
 *  cp:w:{<pseudonym hex>}:entries LIST  register indexes of the worker's entries (signer)
 *  cp:w:{<pseudonym hex>}:cc      SET   Care Certificate standard codes verified (verify)
 *  cp:w:{<pseudonym hex>}:awards  SET   derived award codes currently held (verify; a code leaves
 *                                       the set when the award is revoked)
 *  cp:w:{<pseudonym hex>}:award_gen HASH award code -> generation: 0 for the first award, +1 each time
 *                                       it is revoked (verify); and "<code>:last" -> the event id of the
 *                                       last award issued for the code (verify's issue script, and the
 *                                       replay of a keyed award entry), which a withdrawal names when it
 *                                       is of the generation withdrawn; absent for awards issued before
 *                                       keyed ids, whose legacy id award:<code>:<hex16>[:g<N>] is used
 *                                       instead (award ids: cp_projection.h)
 *  cp:award_wd                   HASH  late award withdrawals (verify, services/verify/verify_withdraw.c):
 *                                       field "<award code>:<gen>:<pseudonym hex>" -> "<unix ms the award's
 *                                       revocation was last sent, 0 = not yet> <revocation's date> <the
 *                                       award's event id>" (no id in records from before keyed award ids:
 *                                       the legacy id then), for an
 *                                       award withdrawn (a required standard revoked) before it committed;
 *                                       verify sends the award's revocation once it commits, then HDELs it.
 *                                       verify writes it with single-key commands (Cluster-safe); reindex
 *                                       sets it from a Lua script on the worker's keys (not yet Cluster-ready)
 *  cp:reg:{<shard>}:indexed       STRING register size up to which Redis is indexed (signer)
 *  cp:{outbox}                    STREAM notifications owed and not yet stored as deliveries, each
 *                                       entry field j = a packed NotifyJob (common/outbox.c): added in
 *                                       the same atomic step as the change it reports (intake's and the
 *                                       gateway's claim script, verify's rejection, the signer's
 *                                       projection), read by notify's consumer group "notify", XACKed
 *                                       and XDELed once the deliveries are stored
 *  cp:nt:d:{<webhook id>}         HASH  one webhook delivery (notify; see services/notify/notify.h)
 *  cp:nt:due                      ZSET  webhook ids scored by the unix ms of their next attempt
 *  cp:nt:dead                     LIST  dead-lettered webhook ids, newest first
 *  cp:exp:due, cp:exp:lease       ZSET  the expiry schedule: register index -> day of the next
 *                                       threshold / unix ms a scanner holds it until. cp:exp:due:
 *                                       the projection adds a record once (cp_projection.h), notify
 *                                       re-scores it as stages pass; both drop it when retired.
 *                                       cp:exp:lease: notify's expiry scan only
 *  cp:exp:{<index>}               HASH  one record's expiry schedule: the projection creates it
 *                                       with the commit (if absent) and writes the revoked tombstone;
 *                                       notify alone moves stage and state=done (notify_keys.h)
 *  cp:sub:{<sub id>}              HASH  one employer subscription (gateway writes, notify reads)
 *  cp:w:{<pseudonym hex>}:subs    SET   the worker's subscription ids
 *  cp:w:{<pseudonym hex>}:profile HASH  the worker's own webhook_url (notify)
 *  cp:sc:{<code hash hex>}        HASH  one live share code (gateway; see services/gateway/gw_share.h)
 *  cp:scid:{<id>}, cp:scid:{<id>}:subs  HASH, SET  the same code by its id, its subscriptions
 *  cp:scid:{<id>}:sub_urls        HASH  the code's subscriptions by URL (url -> sub id: one per URL)
 *  cp:w:{<pseudonym hex>}:sc      SET   the worker's share-code ids
 *  cp:w:{<pseudonym hex>}:views   LIST  views of the worker's passport, newest first
 *  cp:rl:ip:{<address>}, cp:rl:code:{<code hash hex>}  STRING  failed-check counters (gateway)
 *  cp:cn:{<consent id>}           HASH  one committed, live consent (projection, live and replay):
 *                                       employer, worker (pseudonym hex), index (register index of
 *                                       the consent entry), since (its issued_at, unix s); deleted
 *                                       when its withdrawal commits, and by `carepass leave`
 *  cp:emp:{<employer id>}:staff   SET   consent ids of the employer's live consents (projection)
 *  cp:w:{<pseudonym hex>}:consents SET  the worker's live consent ids (projection)
 *  cp:w:{<pseudonym hex>}:cn_req  HASH  the gateway's note of the worker's consent requests (consent
 *                                       id -> employer), so a pending one is listed and counted;
 *                                       transient (not rebuilt: the committed consent is cp:cn)
 *        The consent id is the hex of the consent's event id "consent:<32 hex>" (cn_<hex> in the
 *        API). Consent entries never enter cp:w:{hex}:entries, the expiry schedule or notices.
 * Not yet Cluster-ready: cp:pending, cp:{outbox}, cp:nt:due and cp:nt:dead (and cp:award_wd in `carepass
 * reindex`) are single keys that Lua scripts touch together with per-entity keys; sharding them is
 * future work.
 */
#ifndef CP_KEYS_H
#define CP_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One built key. Builders write into it and return k->s. The parts are ids that the edges
 * bound (event ids, provider ids, hex pseudonyms, share-code ids ...): a key that does not fit
 * is a programmer error (assert), never a silently different key. */
#define CP_KEY_MAX 384
typedef struct {
  char s[CP_KEY_MAX];   // the key, NUL-terminated
} cp_key_t;

/* Event state, idempotency, redrive (intake, verify, signer, gateway). */
const char *cp_key_event(cp_key_t *k, const char *provider_id, const char *event_id);
/* The same into a caller's buffer, for ids not bounded yet (straight off the bus): false, and
 * buf "", when the key does not fit in size bytes. */
bool cp_key_event_into(char *buf, size_t size, const char *provider_id, const char *event_id);
const char *cp_key_pending(void);
/* The cp:ev key of a cp:pending member (len bytes, "<provider>:<event>"). */
const char *cp_key_event_of_member(cp_key_t *k, const char *member, size_t len);
/* The cp:pending member of an event (and of the cp:ev key's tag): "<provider>:<event>". */
const char *cp_key_pending_member(cp_key_t *k, const char *provider_id, const char *event_id);

/* The worker's derived state (pseudonym hex). */
const char *cp_key_w_entries(cp_key_t *k, const char *pseudonym_hex);
/* HASH register index -> hex r of the worker's format-2 entries (the opening with the pseudonym). */
const char *cp_key_w_openings(cp_key_t *k, const char *pseudonym_hex);
const char *cp_key_w_cc(cp_key_t *k, const char *pseudonym_hex);
const char *cp_key_w_awards(cp_key_t *k, const char *pseudonym_hex);
const char *cp_key_w_award_gen(cp_key_t *k, const char *pseudonym_hex);

/* Consents (ongoing access), written by the projection only. */
const char *cp_key_consent(cp_key_t *k, const char *consent_hex);
const char *cp_key_emp_staff(cp_key_t *k, const char *employer_id);
const char *cp_key_w_consents(cp_key_t *k, const char *pseudonym_hex);
/* HASH cp:w:{hex}:cn_req: the gateway's note of a worker's consent requests (consent hex -> employer),
 * so a pending one is listed and counted; transient, deleted by `carepass leave`, not rebuilt. */
const char *cp_key_w_consent_requests(cp_key_t *k, const char *hex);

/* Late award withdrawals and their field "<award code>:<gen>:<pseudonym hex>". */
const char *cp_key_award_wd(void);
const char *cp_key_award_wd_field(cp_key_t *k, const char *award_code, uint64_t gen, const char *pseudonym_hex);

/* How far Redis is indexed from a register shard. */
const char *cp_key_reg_indexed(cp_key_t *k, int shard);

/* notify: deliveries, expiry schedule, subscriptions, the worker's profile. */
const char *cp_key_nt_delivery(cp_key_t *k, const char *webhook_id);
const char *cp_key_nt_due(void);
const char *cp_key_outbox(void);
const char *cp_key_nt_dead(void);
const char *cp_key_exp_due(void);
const char *cp_key_exp_lease(void);
const char *cp_key_exp(cp_key_t *k, uint64_t index);
const char *cp_key_sub(cp_key_t *k, const char *sub_id);
const char *cp_key_w_subs(cp_key_t *k, const char *pseudonym_hex);
const char *cp_key_w_profile(cp_key_t *k, const char *pseudonym_hex);

/* gateway: share codes, views, failed-check counters. */
const char *cp_key_sc(cp_key_t *k, const char *code_hash_hex);
const char *cp_key_scid(cp_key_t *k, const char *share_code_id);
const char *cp_key_scid_subs(cp_key_t *k, const char *share_code_id);
const char *cp_key_scid_sub_urls(cp_key_t *k, const char *share_code_id);
const char *cp_key_w_sc(cp_key_t *k, const char *pseudonym_hex);
const char *cp_key_w_views(cp_key_t *k, const char *pseudonym_hex);
const char *cp_key_rl_ip(cp_key_t *k, const char *client_address);
const char *cp_key_rl_code(cp_key_t *k, const char *code_hash_hex);
/* gateway: a registered employer's failed-check counter and its live subscriptions. */
const char *cp_key_rl_emp(cp_key_t *k, const char *employer_id);
const char *cp_key_emp_subs(cp_key_t *k, const char *employer_id);
/* STRING cp:emp:{E}:staff_seen: unix s of the employer's last GET /v1/staff (gateway; a
 * convenience for "changes since the last visit", expires after 400 days, not rebuilt). */
const char *cp_key_emp_seen(cp_key_t *k, const char *employer_id);

/* The formats the builders use (keys.c). Only for callers not yet moved to the builders
 * (notify, the gateway, and scripts that name a key pattern): new code calls a builder. */
#define CP_KEY_EVENT_FMT    "cp:ev:{%s:%s}"
#define CP_KEY_PENDING      "cp:pending"
#define CP_KEY_W_ENTRIES_FMT "cp:w:{%s}:entries"
#define CP_KEY_W_OPENINGS_FMT "cp:w:{%s}:r"
#define CP_KEY_CONSENT_FMT "cp:cn:{%s}"
#define CP_KEY_EMP_STAFF_FMT "cp:emp:{%s}:staff"
#define CP_KEY_W_CONSENTS_FMT "cp:w:{%s}:consents"
#define CP_KEY_W_CC_FMT     "cp:w:{%s}:cc"
#define CP_KEY_W_AWARDS_FMT "cp:w:{%s}:awards"
#define CP_KEY_W_AWARD_GEN_FMT "cp:w:{%s}:award_gen"
#define CP_KEY_AWARD_WD     "cp:award_wd"
#define CP_KEY_REG_INDEXED_FMT "cp:reg:{%d}:indexed"

#endif
