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
 *                                       it is revoked; award ids are award:<code>:<hex16>[:g<N>] (verify)
 *  cp:award_wd                   HASH  late award withdrawals (verify, services/verify/verify_withdraw.c):
 *                                       field "<award code>:<gen>:<pseudonym hex>" -> "<unix ms the award's
 *                                       revocation was last sent, 0 = not yet> <revocation's date>", for an
 *                                       award withdrawn (a required standard revoked) before it committed;
 *                                       verify sends the award's revocation once it commits, then HDELs it.
 *                                       verify writes it with single-key commands (Cluster-safe); reindex
 *                                       sets it from a Lua script on the worker's keys (not yet Cluster-ready)
 *  cp:reg:{<shard>}:indexed       STRING register size up to which Redis is indexed (signer)
 *  cp:nt:d:{<webhook id>}         HASH  one webhook delivery (notify; see services/notify/notify.h)
 *  cp:nt:due                      ZSET  webhook ids scored by the unix ms of their next attempt
 *  cp:nt:dead                     LIST  dead-lettered webhook ids, newest first
 * Not yet Cluster-ready: cp:pending, cp:nt:due and cp:nt:dead (and cp:award_wd in `carepass
 * reindex`) are single keys that Lua scripts touch together with per-entity keys; sharding them is
 * future work.
 */
#ifndef CP_KEYS_H
#define CP_KEYS_H

#define CP_KEY_EVENT_FMT    "cp:ev:{%s:%s}"
#define CP_KEY_PENDING      "cp:pending"
#define CP_KEY_W_ENTRIES_FMT "cp:w:{%s}:entries"
#define CP_KEY_W_CC_FMT     "cp:w:{%s}:cc"
#define CP_KEY_W_AWARDS_FMT "cp:w:{%s}:awards"
#define CP_KEY_W_AWARD_GEN_FMT "cp:w:{%s}:award_gen"
#define CP_KEY_AWARD_WD     "cp:award_wd"
#define CP_KEY_REG_INDEXED_FMT "cp:reg:{%d}:indexed"

#endif
