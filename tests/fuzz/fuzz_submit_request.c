/* fuzz_submit_request.c -- a SubmitRequest frame as intake decodes and judges it
 * (services/intake/intake_server.c handle_request, then common/ingest_batch.c up to the Redis
 * claim): cp_pb_unpack under MAX_MESSAGE_BYTES, ing_wire_check (NUL bytes and invalid UTF-8 on
 * the wire), the request_id / batch / ack checks, ing_shape_batch, and for each event that
 * passes the pseudonym, PendingEvent, content digest, packing and its event.accepted notice.
 * The input is the frame's bytes. */
#include <string.h>

#include "carepass/v1/event.pb-c.h"
#include "cp_codec.h"
#include "cp_config.h"
#include "cp_crypto.h"
#include "cp_dates.h"
#include "cp_ingest.h"
#include "cp_outbox.h"
#include "cp_utf8.h"
#include "fuzz_util.h"

#define PROVIDER "PRV-0001"
#define REQUEST_ID_MAX 64  /* intake_server.c INTAKE_REQUEST_ID_MAX */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned char secret[CP_SECRET_BYTES] = {1, 2, 3, 4, 5, 6, 7, 8};

/* The events that passed every check: what intake would store and forward. */
static void take_events(Carepass__V1__SubmitRequest *sr, const ing_text_fault_t *faults) {
  size_t n = sr->n_events;
  ing_shape_t *shape = cp_xcalloc(n, sizeof *shape);
  int32_t today = 0;
  if (cp_date_parse("2025-06-01", &today) != 0) abort();
  ing_shape_batch(sr->events, n, PROVIDER, today, shape);
  for (size_t i = 0; i < n; i++) {
    const char *id = sr->events[i]->provider_event_id;
    (void)cp_utf8_valid(id, strlen(id)); /* the answer echoes the id only when it is UTF-8 */
    if (faults[i].reason != CP_OK) continue;
    /* what the wire check passed must be clean after unpacking too (repeated fields, ...) */
    for (size_t f = 0; f < ING_NSTR_FIELDS; f++) {
      const char *v = *ing_str_slot(sr->events[i], &ing_str_fields[f]);
      if (v != NULL && !cp_utf8_valid(v, strlen(v))) abort();
    }
    if (shape[i].reason != CP_OK) continue;
    unsigned char pseudo[CP_PSEUDONYM_BYTES];
    cp_pseudonym(secret, shape[i].ni_norm, pseudo);
    Carepass__V1__PendingEvent pe;
    char digest[65];
    ing_pending_build(sr->events[i], PROVIDER, pseudo, &pe);
    if (ing_pending_digest(&pe, digest) != 0) abort();
    pe.received_at = 1;
    pe.reply_to = "";
    uint8_t *packed = NULL, *notice = NULL;
    size_t packed_len = 0, notice_len = 0;
    if (cp_pb_pack(&pe.base, &packed, &packed_len) != 0) abort();
    Carepass__V1__NotifyJob job;
    ing_accepted_job(&pe, &job);
    if (cp_outbox_pack(&job, &notice, &notice_len) != 0) abort();
    free(packed);
    free(notice);
  }
  ing_shape_wipe(shape, n);
  free(shape);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static bool inited;
  if (!inited) {
    fuzz_quiet();
    if (sodium_init() < 0) abort();
    inited = true;
  }
  size_t max_message = (size_t)cp_cfg_int(CP_OPT_MAX_MESSAGE_BYTES);
  size_t max_batch = (size_t)cp_cfg_int(CP_OPT_MAX_BATCH);
  char err[CP_ERRLEN];
  if (size > max_message) return 0; /* MESSAGE_TOO_LARGE before any decoding */
  Carepass__V1__SubmitRequest *sr = (Carepass__V1__SubmitRequest *)cp_pb_unpack(
      &carepass__v1__submit_request__descriptor, data, size, max_message, err, sizeof err);
  if (sr == NULL) return 0; /* MALFORMED_REQUEST */
  ing_text_fault_t rq_fault;
  ing_text_fault_t *faults = cp_xcalloc(sr->n_events > 0 ? sr->n_events : 1, sizeof *faults);
  if (ing_wire_check(data, size, sr->n_events, faults, &rq_fault) != 0) goto out;
  if (rq_fault.reason != CP_OK) goto out;
  if (!cp_utf8_valid(sr->request_id, strlen(sr->request_id))) abort(); /* judged clean above */
  if (strlen(sr->request_id) > REQUEST_ID_MAX) goto out;
  if (sr->n_events == 0 || sr->n_events > max_batch) goto out;
  if (sr->ack > CAREPASS__V1__ACK_LEVEL__ACK_LEVEL_COMMITTED) goto out;
  take_events(sr, faults);
out:
  free(faults);
  protobuf_c_message_free_unpacked(&sr->base, NULL);
  return 0;
}
