/* cp_outbox.h -- the notification outbox: the Redis stream cp:{outbox} (cp_keys.h).
 *
 * A notification is owed by a state change, so it is written in the same atomic Redis step as
 * that change: intake's and the gateway's claim of a new event (event.accepted, inside the claim
 * script), verify's rejection (event.rejected, in the MULTI of the rejection), the projection of
 * a committed batch (record.committed, record.revoked, in the signer's MULTI). notify reads the
 * stream with the consumer group CP_OUTBOX_GROUP, stores each entry's deliveries and acknowledges
 * (XACK) and deletes (XDEL) it in the same transaction, and takes over (XAUTOCLAIM) the entries
 * a replica read and never acknowledged. The stream therefore holds what is owed and not yet
 * stored: its length is the backlog, bounded at intake by CAREPASS_OUTBOX_MAX.
 *
 * An entry is one field, CP_OUTBOX_FIELD = a packed NotifyJob. It has one writer (the C and
 * Lua forms below, side by side) and one reader (cp_outbox_entry). */
#ifndef CP_OUTBOX_H
#define CP_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "carepass/v1/internal.pb-c.h"
#include "cp_redis.h"
#include "cp_util.h"

#define CP_OUTBOX_GROUP "notify"        /* notify's consumer group */
#define CP_OUTBOX_FIELD "j"             /* the entry's one field: a packed NotifyJob */
#define CP_OUTBOX_ID_MAX 48             /* room for a stream id "<ms>-<seq>" */
#define CP_OUTBOX_JOB_MAX 65536         /* largest packed job a reader accepts */

/* Lua, for a script that adds an entry as part of its own change: key and job are Lua
 * expressions (e.g. "KEYS[3]", "ARGV[8]"). */
#define CP_OUTBOX_LUA_ADD(key, job) "redis.call('XADD', " key ", '*', '" CP_OUTBOX_FIELD "', " job ")\n"
/* Lua: true when the stream key holds max entries or more (max a Lua expression). */
#define CP_OUTBOX_LUA_FULL(key, max) "(redis.call('XLEN', " key ") >= tonumber(" max "))"

/* Pack job for an outbox entry (*buf malloc'd). -1 when it cannot be packed. */
int cp_outbox_pack(const Carepass__V1__NotifyJob *job, uint8_t **buf, size_t *len) CP_WUR;

/* Queue the XADD of job on pipe, inside the caller's transaction with the change it reports.
 * -1 when the job cannot be packed (nothing queued). */
int cp_outbox_add(cp_redis_pipe_t *pipe, const Carepass__V1__NotifyJob *job) CP_WUR;

/* One entry as read back (XREADGROUP, XAUTOCLAIM). */
typedef struct {
  char id[CP_OUTBOX_ID_MAX];    // stream id ("" when the reply had none)
  const uint8_t *job;           // packed NotifyJob, pointing into the reply (NULL: none)
  size_t len;                   // its length
} cp_outbox_entry_t;

/* Read entry reply e ([id, [field, value, ...]]). 0 with the job; -1 when it has another shape
 * or no job field (out->id is still set when it had an id, so the entry can be acknowledged and
 * dropped; a deleted entry read from the pending list has no fields). */
int cp_outbox_entry(const redisReply *e, cp_outbox_entry_t *out) CP_WUR;

/* Queue XACK and XDEL of ids[0..n-1] (inside the transaction that stores their effects). */
void cp_outbox_ack(cp_redis_pipe_t *pipe, const char *const *ids, size_t n);

/* The outbox as an operator watches it. */
typedef struct {
  long long length;             // entries owed and not yet stored (XLEN)
  long long pending;            // of those, read by a notify replica and not yet acknowledged
  long long oldest_age_ms;      // age of the oldest entry (0 when empty)
  long long consumers;          // notify replicas known to the group
} cp_outbox_stats_t;

/* Read the figures (one pipeline). -1 when Redis did not answer; a missing stream or group
 * reads as zeros. */
int cp_outbox_stats(cp_redis_t *r, int64_t now_ms, cp_outbox_stats_t *out) CP_WUR;

#endif
