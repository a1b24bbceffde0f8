/* signer_batch.c -- the signer loop, pipelined: receive verified records, drop duplicates, sign on a
 * worker thread while the batch before is appended (fsync) and announced (Redis with its notices, results). */
#include "signer.h"
#include "cp_projection.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "cp_codec.h"
#include "cp_log.h"
#include "cp_zmq.h"

#define ID_MAX 128           /* longest provider id / event id accepted */

/* The pipeline, one batch deep. Each pass of signer_batch_run:
 *   1. collects batch k+1 from the PULL socket (without waiting when batch k is
 *      held, so that k is not delayed), drops duplicates and starts a worker thread
 *      that builds and signs its entries (CPU only: records, key, the batch's own
 *      items; no socket, no Redis, no register, no logging);
 *   2. meanwhile, on this thread, appends batch k (reg_append: the fsyncs) and,
 *      only once that returned 0 -- the checkpoint durable -- updates Redis (the
 *      projection, with the notices into the outbox) and sends batch k's results;
 *   3. joins the worker: batch k+1 is now held, signed, for the next pass.
 * Every socket, the Redis connection and the register stay on this thread.
 * Idempotency: a record that repeats one of the held batch (signed, not yet
 * appended) is recognised through that batch's own index (it->dup_inflight) and
 * answered with the index the held batch got, once that is durable. On SIGTERM
 * the loop ends and signer_batch_drain appends and announces the held batch. */

/* One record of the batch. */
typedef struct {
  Carepass__V1__VerifiedRecord *rec;   // decoded record (owned)
  uint8_t *entry;                      // packed SignedEntry to append (owned); NULL for duplicates
  size_t len;                          // length of entry
  bool sign;                           // new: the worker builds and signs its entry
  char *sign_err;                      // why building/signing failed (malloc'd by the worker); NULL = ok
  bool dup;                            // already in the register, earlier in this batch or in the held batch
  size_t first_in_batch;               // for an in-batch duplicate: the item it repeats
  bool dup_in_batch;                   // dup of an item of this batch (index known after append)
  bool dup_inflight;                   // dup of an item of the held batch (index known after its append)
  bool announce;                       // Redis holds its committed state: its result may be published
  bool has_subject;                    // format 2: subject made at dedupe (main thread: the store is not thread-safe)
  cp_subject_t subject;                // its subject (has_subject)
  uint8_t payload[CP_SUBJECT_SEALED_PAYLOAD_MAX]; // a consent: the employer id sealed under the worker key
  size_t payload_len;                  // 0 = none (not a consent, or format 1: then it is refused)
  uint64_t index;                      // register index (known after append); UINT64_MAX = not answered
} item_t;

/* A batch on its way through the pipeline. */
struct signer_batch {
  item_t *items;                 // the records, in arrival order
  size_t n;                      // how many
  signer_index_t *seen;          // (provider, event) -> item position of every item to be signed
  size_t ndup;                   // duplicates of the register or of an earlier item/batch
  int64_t issued_at;             // issued_at of every entry of the batch
  int64_t t0;                    // monotonic ms when the batch started
  const cp_signkey_t *key;       // signing key (the worker's only shared input; read-only)
  pthread_t worker;              // the signing thread
  bool worker_running;           // worker started and not yet joined
};

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
      rec->entry_type != CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_DERIVED_AWARD &&
      rec->entry_type != CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_CONSENT)
    return (*why = "unknown entry_type", false);
  if (rec->entry_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_CONSENT &&
      (strcmp(ev->provider_id, PROJ_CONSENT_PROVIDER) != 0 || !proj_employer_id_valid(ev->employer_id)))
    return (*why = "consent of the wrong provider or employer id", false);
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

/* Collect a batch; NULL when nothing arrived. wait: block up to timeout_ms for the
 * first record (then up to batch_wait_ms for more); otherwise take only what is
 * already queued. */
static signer_batch_t *collect(signer_t *s, bool wait, int timeout_ms, int *prc) {
  zmq_pollitem_t pi = {s->pull, 0, ZMQ_POLLIN, 0};
  *prc = zmq_poll(&pi, 1, wait ? timeout_ms : 0);
  if (*prc <= 0) return NULL;
  signer_batch_t *b = cp_xcalloc(1, sizeof *b);
  b->t0 = cp_mono_ms();
  int64_t deadline = b->t0 + (wait ? s->batch_wait_ms : 0);
  b->items = cp_xcalloc((size_t)s->batch_max, sizeof *b->items);
  while (b->n < (size_t)s->batch_max) {
    bool got;
    Carepass__V1__VerifiedRecord *rec = recv_record(s, &got);
    if (rec != NULL) {
      b->items[b->n++].rec = rec;
      continue;
    }
    if (got) continue;   /* a dropped record: keep draining */
    int64_t left = deadline - cp_mono_ms();
    if (left <= 0 || zmq_poll(&pi, 1, (long)left) <= 0) break;
  }
  if (b->n == 0) {
    free(b->items);
    free(b);
    return NULL;
  }
  return b;
}

static void batch_free(signer_batch_t **bp) {
  signer_batch_t *b = *bp;
  if (b == NULL) return;
  if (b->worker_running) pthread_join(b->worker, NULL);
  for (size_t i = 0; i < b->n; i++) {
    protobuf_c_message_free_unpacked(&b->items[i].rec->base, NULL);
    free(b->items[i].entry);
    free(b->items[i].sign_err);
  }
  signer_index_destroy(&b->seen);
  free(b->items);
  free(b);
  *bp = NULL;
}

/* Duplicates: in the register, in the held batch (not yet appended), or earlier in this batch. */
static void dedupe(signer_t *s, signer_batch_t *b, const signer_batch_t *held) {
  b->seen = signer_index_new();
  b->issued_at = cp_now_ms() / 1000;
  b->key = &s->key;
  for (size_t i = 0; i < b->n; i++) {
    item_t *it = &b->items[i];
    const Carepass__V1__PendingEvent *ev = it->rec->event;
    uint64_t pos;
    if (signer_index_get(s->index, ev->provider_id, ev->provider_event_id, &it->index)) {
      it->dup = true;
    } else if (held != NULL && signer_index_get(held->seen, ev->provider_id, ev->provider_event_id, &pos)) {
      it->dup = true;
      it->dup_inflight = true;
      it->index = UINT64_MAX;
    } else if (signer_index_get(b->seen, ev->provider_id, ev->provider_event_id, &pos)) {
      it->dup = true;
      it->dup_in_batch = true;
      it->first_in_batch = (size_t)pos;
    } else {
      it->sign = true;
      signer_index_put(b->seen, ev->provider_id, ev->provider_event_id, i);
      if (s->entry_format == 2 && s->subjects != NULL) {
        cp_subject_store_new(s->subjects, ev->worker_pseudonym.data, &it->subject);
        it->has_subject = true;
        if (it->rec->entry_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_CONSENT &&
            cp_subject_store_seal_payload(s->subjects, &it->subject, (const uint8_t *)ev->employer_id,
                                          strlen(ev->employer_id), it->payload, &it->payload_len) != 0)
          it->payload_len = 0;   /* refused when signed: logged there */
      }
      continue;
    }
    b->ndup++;
  }
}

/* Worker thread: build and sign the batch's new entries. */
static void *sign_batch(void *arg) {
  signer_batch_t *b = arg;
  for (size_t i = 0; i < b->n; i++) {
    item_t *it = &b->items[i];
    if (!it->sign) continue;
    char err[CP_ERRLEN];
    if (signer_entry_build(b->key, it->rec, b->issued_at, it->has_subject ? &it->subject : NULL,
                           it->payload_len > 0 ? it->payload : NULL, it->payload_len, &it->entry,
                           &it->len, err, sizeof err) != 0) {
      it->entry = NULL;
      it->sign_err = cp_strdup(err);
    }
  }
  return NULL;
}

static void sign_start(signer_batch_t *b) {
  int e = pthread_create(&b->worker, NULL, sign_batch, b);
  if (e == 0) {
    b->worker_running = true;
  } else {
    cp_log_warn("signing thread not started; signing inline", CP_KV_STR("error", strerror(e)), CP_KV_END);
    (void)sign_batch(b);
  }
}

static void sign_join(signer_batch_t *b) {
  if (b->worker_running) {
    pthread_join(b->worker, NULL);
    b->worker_running = false;
  }
  for (size_t i = 0; i < b->n; i++) {
    item_t *it = &b->items[i];
    if (it->sign_err == NULL) continue;
    cp_log_error("record not signed", CP_KV_STR("provider_id", it->rec->event->provider_id),
                 CP_KV_STR("error", it->sign_err), CP_KV_END);
    it->sign = false;
    it->dup = true;   /* neither appended nor answered: verify/intake redrive it */
    it->index = UINT64_MAX;
  }
}

/* Append a signed batch; once it is durable, index it and announce it (Redis with the
 * notices and the marker, then results). -1 only when the register must be reopened. */
static int commit(signer_t *s, signer_batch_t *b) {
  const uint8_t **ents = cp_xcalloc(b->n, sizeof *ents);
  size_t *lens = cp_xcalloc(b->n, sizeof *lens);
  size_t nnew = 0;
  int rc = 0;
  for (size_t i = 0; i < b->n; i++) {
    if (b->items[i].entry == NULL) continue;
    ents[nnew] = b->items[i].entry;
    lens[nnew] = b->items[i].len;
    nnew++;
  }
  uint64_t first = reg_size(s->log);
  if (nnew > 0) {
    char err[CP_ERRLEN];
    /* the subjects' slots and worker keys are durable before any entry that needs them is */
    if (s->subjects != NULL && cp_subject_store_flush(s->subjects, err, sizeof err) != 0) {
      cp_log_error("subject key store not written; batch not appended", CP_KV_STR("error", err),
                   CP_KV_INT("count", nnew), CP_KV_END);
      goto out;
    }
    if (reg_append(s->log, ents, lens, nnew, &first, err, sizeof err) != 0) {
      /* nothing was committed: the events stay pending in Redis and come back by redrive */
      cp_log_error("register append failed", CP_KV_STR("error", err), CP_KV_INT("count", nnew), CP_KV_END);
      /* a checkpoint that may or may not be durable: only a reopen (restart) can
       * tell, so stop rather than loop on a log that refuses every append */
      if (reg_broken(s->log)) rc = -1;
      goto out;
    }
  }
  /* indexes of new entries, then of duplicates whose original was in flight */
  uint64_t next = first;
  for (size_t i = 0; i < b->n; i++) {
    item_t *it = &b->items[i];
    if (it->entry == NULL) continue;
    it->index = next++;
    signer_index_put(s->index, it->rec->event->provider_id, it->rec->event->provider_event_id, it->index);
  }
  for (size_t i = 0; i < b->n; i++) {
    item_t *it = &b->items[i];
    if (it->dup_in_batch) it->index = b->items[it->first_in_batch].index;
    /* the held batch was appended before this one: its index is there, unless its append failed */
    if (it->dup_inflight &&
        !signer_index_get(s->index, it->rec->event->provider_id, it->rec->event->provider_event_id, &it->index))
      it->index = UINT64_MAX;
  }
  s->appended += nnew;
  s->duplicates += b->ndup;

  /* the register is durable: Redis (state, notices, marker), then results -- and a result only
   * for an event whose committed state Redis holds: a provider told COMMITTED acts on it at once
   * (a revocation of the record is checked against Redis). What Redis did not take (it is down)
   * is not announced; intake answers ACCEPTED at its timeout and the provider's resend finds the
   * final state once this signer has caught Redis up. */
  signer_redis_apply(s);
  size_t unannounced = 0;
  for (size_t i = 0; i < b->n; i++) {
    item_t *it = &b->items[i];
    it->announce = it->index != UINT64_MAX && it->index < s->applied;
    if (it->dup && it->index != UINT64_MAX)
      it->announce = signer_redis_mark(s, it->rec->event->provider_id, it->rec->event->provider_event_id, it->index);
  }
  for (size_t i = 0; i < b->n; i++) {
    item_t *it = &b->items[i];
    if (!it->announce) {
      unannounced += it->index != UINT64_MAX;
      continue;
    }
    publish_result(s, it);
  }
  if (unannounced > 0)
    cp_log_warn("results held until Redis has the committed state", CP_KV_INT("count", (int64_t)unannounced), CP_KV_END);
  cp_log_info("batch committed", CP_KV_INT("count", nnew), CP_KV_INT("duplicates", b->ndup),
              CP_KV_INT("first_index", first), CP_KV_INT("size", reg_size(s->log)),
              CP_KV_INT("ms", cp_mono_ms() - b->t0), CP_KV_INT("redis_ok", s->redis != NULL), CP_KV_END);
out:
  free(ents);
  free(lens);
  return rc;
}

int signer_batch_run(signer_t *s, int timeout_ms) {
  int prc = 0;
  signer_batch_t *cur = collect(s, s->held == NULL, timeout_ms, &prc);
  if (cur == NULL && s->held == NULL) {
    /* idle: a good moment to catch Redis up after an outage */
    signer_redis_apply(s);
    return (prc < 0 && errno != EINTR) ? -1 : 0;
  }
  if (cur != NULL) {
    dedupe(s, cur, s->held);
    if (s->held != NULL) sign_start(cur);   /* signs batch k+1 ... */
    else (void)sign_batch(cur);                /* nothing to overlap with: sign here */
  }
  int rc = 0;
  if (s->held != NULL) {
    rc = commit(s, s->held);   /* ... while batch k is appended and announced */
    batch_free(&s->held);
  }
  if (cur != NULL) {
    sign_join(cur);
    if (rc != 0) batch_free(&cur);   /* never appended: its events are redriven */
    s->held = cur;
  }
  return rc;
}

int signer_batch_drain(signer_t *s) {
  if (s->held == NULL) return 0;
  int rc = commit(s, s->held);
  batch_free(&s->held);
  return rc;
}

void signer_batch_discard(signer_t *s) { batch_free(&s->held); }
