/* notify_keys.h -- what notify keeps in Redis: the fields of its keys (built by cp_keys.h).
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
 *        to        recipient, whose webhook secret signs it ("v1,"): provider:<provider id>
 *                  (secret store, CAREPASS_WEBHOOK_SECRETS), sub:<sub id> (its hash, read at
 *                  each claim), worker (none: v1a only); absent on deliveries made before it
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
 * Expiry schedule (created with the commit by the projection, common/cp_projection.h, which
 * also writes the revoked tombstone; notify's scan alone moves stage, state=done, the later
 * cp:exp:due scores and cp:exp:lease):
 *  cp:exp:due        ZSET  register index -> day number (days since 1970-01-01) of the
 *                          record's next threshold (stage below)
 *  cp:exp:lease      ZSET  register index -> unix ms until which a scanner holds it (a
 *                          crashed replica's claims go back to cp:exp:due after that)
 *  cp:exp:{<index>}  HASH  state    scheduled | done | revoked
 *                          stage    next threshold: 0 = 90 days before valid_until,
 *                                   1 = 30 days, 2 = 7 days, 3 = the day after (expired)
 *                          provider, qual, worker (pseudonym hex), valid_until,
 *                          completion_date, event_id (provider event id)
 *      A "revoked" or "done" hash is kept for PROJ_EXP_TOMBSTONE_TTL_S so a
 *      replayed commit does not schedule the record again.
 *
 * Subscriptions (written by the gateway when an employer subscribes; notify reads
 * them and removes dead ones):
 *  cp:w:{<pseudonym hex>}:subs     SET   subscription ids of the worker
 *  cp:sub:{<sub id>}               HASH  url, worker (pseudonym hex), employer (label),
 *                                        share_code (share code id), expires_at (unix s),
 *                                        events ("record.revoked,record.expiring,record.expired";
 *                                        empty = all), entries (comma list of register
 *                                        indexes the share code covers; empty = all), created,
 *                                        secret (whsec_, made with the subscription),
 *                                        prev_secret + prev_until (unix s): the secret before the
 *                                        last rotation, which still signs until then,
 *                                        employer_id (the registered employer that owns it, ""
 *                                        or absent = anonymous; the gateway's, notify ignores it)
 *  cp:w:{<pseudonym hex>}:profile  HASH  optional field webhook_url: the worker's own webhook
 *  <sub id> = "sub_" + 32 lowercase hex. A missing or expired hash = unsubscribed.
 *
 * The Lua scripts touch cp:nt:d:{id} together with cp:nt:due / cp:nt:dead, which is
 * atomic on a single Redis; on Redis Cluster these keys would need one shared tag.
 *
 */
#ifndef NOTIFY_KEYS_H
#define NOTIFY_KEYS_H


#include "cp_keys.h"

/* Every key is built by its cp_keys.h builder (cp_key_nt_delivery, cp_key_nt_due,
 * cp_key_nt_dead, cp_key_exp_due, cp_key_exp_lease, cp_key_exp, cp_key_sub, cp_key_w_subs,
 * cp_key_w_profile). A script that reaches per-entity keys from ids it reads (a claim
 * scanning the schedule) is given one key the builder made and puts each id into its
 * {hash tag}: NT_LUA_KEY_OF defines key_of(sample, id) for such a script. */
#define NT_LUA_KEY_OF \
  "local function key_of(sample, id) return (string.gsub(sample, '{[^}]*}', function() return '{' .. id .. '}' end, 1)) end\n"

#define NT_TOMBSTONE_TTL_S     86400        /* how long a delivered id is remembered */

#endif
