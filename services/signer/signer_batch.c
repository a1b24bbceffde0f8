/* signer_batch.c -- one batch: receive verified records, drop duplicates, sign, append (one fsync),
 * then Redis, results and notification jobs. */
#include "signer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "cp_codec.h"
#include "cp_log.h"
#include "cp_zmq.h"

#define POLL_MS 200          /* longest wait for the first record, so the stop flag is seen */
#define ID_MAX 128           /* longest provider id / event id accepted */

/* One record of the batch. */
typedef struct {
  Carepass__V1__VerifiedRecord *rec;   // decoded record (owned)
  uint8_t *entry;                      // packed SignedEntry to append (owned); NULL for duplicates
  size_t len;                          // length of entry
  bool dup;                            // already in the register, or earlier in this batch
  size_t first_in_batch;               // for an in-batch duplicate: the item it repeats
  bool dup_in_batch;                   // dup of an item of this batch (index known after append)
  uint64_t index;                      // register index (known after append for new entries)
} item_t;

/* A shape check of what verify sent; false means drop (and log without personal data). */
static bool record_ok(const Carepass__V1__VerifiedRecord *rec, const char **why) {
  const Carepass__V1__PendingEvent *ev = rec->event;
  if (ev == NULL) return (*why = "no event", false);
  if (ev->provider_id[0] == '\0' || strlen(ev->provider_id) > ID_MAX) return (*why = "bad provider_id", false);
  if (ev->provider_event_id[0] == '\0' || strlen(ev->provider_event_id) > ID_MAX)
    return (*why = "bad provider_event_id", false);
  if (ev->worker_pseudonym.len != CP_PSEUDONYM_BYTES) return (*why = "worker_pseudonym is not 32 bytes", false);
  if (rec->entry_type != CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_RECORD &&
      rec->entry_type != CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION &&
      rec->entry_type != CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_DERIVED_AWARD)
    return (*why = "unknown entry_type", false);
  return true;
}

/* Receive one record frame (dropping any extra frames); NULL when nothing usable arrived. */
static Carepass__V1__VerifiedRecord *recv_record(signer_t *s, bool *got) {
  uint8_t *buf = NULL;
  size_t len = 0;
  *got = false;
  if (cp_zmq_recv_frame(s->pull, &buf, &len, ZMQ_DONTWAIT) != 0) return NULL;
  *got = true;
  int more = 0;
  size_t ml = sizeof more;
  while (zmq_getsockopt(s->pull, ZMQ_RCVMORE, &more, &ml) == 0 && more) {
    uint8_t *extra = NULL;
    size_t el;
    if (cp_zmq_recv_frame(s->pull, &extra, &el, 0) != 0) break;
    free(extra);
  }
  char err[CP_ERRLEN];
  Carepass__V1__VerifiedRecord *rec = (Carepass__V1__VerifiedRecord *)cp_pb_unpack(
      &carepass__v1__verified_record__descriptor, buf, len, SIGNER_MAX_RECORD_BYTES, err, sizeof err);
  free(buf);
  const char *why = err;
  if (rec != NULL && !record_ok(rec, &why)) {
    protobuf_c_message_free_unpacked(&rec->base, NULL);
    rec = NULL;
  }
  if (rec == NULL) {
    s->dropped++;
    cp_log_warn("verified record dropped", CP_KV_STR("error", why), CP_KV_END);
  }
  return rec;
}

static void publish_result(signer_t *s, const item_t *it) {
  const Carepass__V1__PendingEvent *ev = it->rec->event;
  if (ev->reply_to[0] == '\0') return;   /* nobody waits for this one */
  Carepass__V1__EventResult res = CAREPASS__V1__EVENT_RESULT__INIT;
  res.provider_id = ev->provider_id;
  res.provider_event_id = ev->provider_event_id;
  res.outcome = CAREPASS__V1__OUTCOME__OUTCOME_COMMITTED;
  res.entry_index = it->index;
  if (zmq_send(s->results, ev->reply_to, strlen(ev->reply_to), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
      cp_zmq_send_pb(s->results, &res.base, ZMQ_DONTWAIT) != 0)
    cp_log_warn("result not published", CP_KV_STR("error", zmq_strerror(errno)), CP_KV_END);
}

static void notify_item(signer_t *s, const item_t *it) {
  const Carepass__V1__PendingEvent *ev = it->rec->event;
  Carepass__V1__PassportEntry pe = CAREPASS__V1__PASSPORT_ENTRY__INIT;
  pe.provider_id = ev->provider_id;
  pe.provider_event_id = ev->provider_event_id;
  pe.qualification_code = ev->qualification_code;
  pe.worker_pseudonym = ev->worker_pseudonym;
  pe.entry_type = it->rec->entry_type;
  pe.reason_code = it->rec->reason_code;
  pe.completion_date = ev->completion_date;
  pe.valid_until = it->rec->valid_until;
  pe.revokes_index = it->rec->revokes_index;
  signer_notify_entry(s, &pe, it->index);
}

int signer_batch_run(signer_t *s) {
  zmq_pollitem_t pi = {s->pull, 0, ZMQ_POLLIN, 0};
  int prc = zmq_poll(&pi, 1, POLL_MS);
  if (prc <= 0) {
    /* idle: a good moment to catch Redis up after an outage */
    signer_redis_apply(s);
    signer_redis_mark_indexed(s);
    return (prc < 0 && errno != EINTR) ? -1 : 0;
  }
  int64_t t0 = cp_mono_ms();
  int64_t deadline = t0 + s->batch_wait_ms;
  item_t *items = cp_xcalloc((size_t)s->batch_max, sizeof *items);
  size_t n = 0;
  while (n < (size_t)s->batch_max) {
    bool got;
    Carepass__V1__VerifiedRecord *rec = recv_record(s, &got);
    if (rec != NULL) {
      items[n++].rec = rec;
      continue;
    }
    if (got) continue;   /* a dropped record: keep draining */
    int64_t left = deadline - cp_mono_ms();
    if (left <= 0 || zmq_poll(&pi, 1, (long)left) <= 0) break;
  }
  if (n == 0) {
    free(items);
    return 0;
  }

  /* duplicates: in the register, or earlier in this batch */
  signer_index_t *seen = signer_index_new();
  const uint8_t **ents = cp_xcalloc(n, sizeof *ents);
  size_t *lens = cp_xcalloc(n, sizeof *lens);
  size_t nnew = 0, ndup = 0;
  int64_t issued_at = cp_now_ms() / 1000;
  for (size_t i = 0; i < n; i++) {
    item_t *it = &items[i];
    const Carepass__V1__PendingEvent *ev = it->rec->event;
    uint64_t pos;
    if (signer_index_get(s->index, ev->provider_id, ev->provider_event_id, &it->index)) {
      it->dup = true;
    } else if (signer_index_get(seen, ev->provider_id, ev->provider_event_id, &pos)) {
      it->dup = true;
      it->dup_in_batch = true;
      it->first_in_batch = (size_t)pos;
    } else {
      char err[CP_ERRLEN];
      if (signer_entry_build(&s->key, it->rec, issued_at, &it->entry, &it->len, err, sizeof err) != 0) {
        cp_log_error("record not signed", CP_KV_STR("provider_id", ev->provider_id), CP_KV_STR("error", err), CP_KV_END);
        it->dup = true;   /* neither appended nor answered: verify/intake redrive it */
        it->index = UINT64_MAX;
        continue;
      }
      signer_index_put(seen, ev->provider_id, ev->provider_event_id, i);
      ents[nnew] = it->entry;
      lens[nnew] = it->len;
      nnew++;
      continue;
    }
    ndup++;
  }
  signer_index_destroy(&seen);

  int rc = 0;
  uint64_t first = reg_size(s->log);
  if (nnew > 0) {
    char err[CP_ERRLEN];
    if (reg_append(s->log, ents, lens, nnew, &first, err, sizeof err) != 0) {
      /* nothing was committed: the events stay pending in Redis and come back by redrive */
      cp_log_error("register append failed", CP_KV_STR("error", err), CP_KV_INT("count", nnew), CP_KV_END);
      /* a checkpoint that may or may not be durable: only a reopen (restart) can
       * tell, so stop rather than loop on a log that refuses every append */
      if (reg_broken(s->log)) rc = -1;
      goto out;
    }
  }
  /* indexes of new entries, then of in-batch duplicates */
  uint64_t next = first;
  for (size_t i = 0; i < n; i++) {
    item_t *it = &items[i];
    if (it->entry == NULL) continue;
    it->index = next++;
    signer_index_put(s->index, it->rec->event->provider_id, it->rec->event->provider_event_id, it->index);
  }
  for (size_t i = 0; i < n; i++) {
    if (items[i].dup_in_batch) items[i].index = items[items[i].first_in_batch].index;
  }
  s->appended += nnew;
  s->duplicates += ndup;

  /* the register is durable: Redis, then results and notifications, then the marker */
  signer_redis_apply(s);
  for (size_t i = 0; i < n; i++) {
    item_t *it = &items[i];
    if (it->dup && it->index != UINT64_MAX)
      signer_redis_mark(s, it->rec->event->provider_id, it->rec->event->provider_event_id, it->index);
  }
  for (size_t i = 0; i < n; i++) {
    item_t *it = &items[i];
    if (it->index == UINT64_MAX) continue;
    publish_result(s, it);
    if (it->entry != NULL) notify_item(s, it);
  }
  signer_redis_mark_indexed(s);
  cp_log_info("batch committed", CP_KV_INT("count", nnew), CP_KV_INT("duplicates", ndup),
              CP_KV_INT("first_index", first), CP_KV_INT("size", reg_size(s->log)),
              CP_KV_INT("ms", cp_mono_ms() - t0), CP_KV_INT("redis_ok", s->redis != NULL), CP_KV_END);
out:
  for (size_t i = 0; i < n; i++) {
    protobuf_c_message_free_unpacked(&items[i].rec->base, NULL);
    free(items[i].entry);
  }
  free(items);
  free(ents);
  free(lens);
  return rc;
}
