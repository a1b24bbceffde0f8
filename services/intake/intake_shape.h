/* intake_shape.h -- per-event shape checks for a provider batch (pure: no I/O, no clock). */
#ifndef INTAKE_SHAPE_H
#define INTAKE_SHAPE_H

#include "carepass/v1/event.pb-c.h"
#include "cp_reasons.h"
#include "cp_util.h"

#define INTAKE_EVENT_ID_MAX 64        /* provider_event_id / revokes_event_id length limit */
#define INTAKE_QUAL_CODE_MAX 31       /* qualification_code length limit */
#define INTAKE_ASSESSOR_MAX 64        /* assessor_id length limit */
#define INTAKE_REASON_CODE_MAX 64     /* revocation_reason length limit */
#define INTAKE_EVIDENCE_HASH_BYTES 32 /* evidence_hash is a SHA-256 */
#define INTAKE_OLDEST_DATE "1990-01-01" /* completion dates before this are refused */
#define INTAKE_SHAPE_MSG_MAX 160      /* room for one sentence */

/* The shape verdict on one event. */
typedef struct {
  cp_reason_t reason;                 // CP_OK when the event passed every check
  char message[INTAKE_SHAPE_MSG_MAX]; // sentence naming the field and the limit ("" when CP_OK)
  char ni_norm[10];                   // normalised NI number when CP_OK (personal data: wipe after use)
} intake_shape_t;

/* Check one event sent by the authenticated provider `provider_id`, with
 * `today` as the day number of today. Fills *out; never echoes the NI number. */
void intake_shape_event(const Carepass__V1__CompletionEvent *ev, const char *provider_id,
                        int32_t today, intake_shape_t *out);

/* Check a whole batch: intake_shape_event on each event, then the later
 * occurrences of a provider_event_id already used earlier in the batch get
 * DUPLICATE_IN_BATCH. out has n entries, in the order of events. */
void intake_shape_batch(Carepass__V1__CompletionEvent *const *events, size_t n,
                        const char *provider_id, int32_t today, intake_shape_t *out);

/* Wipe the NI numbers held in out[0..n-1]. */
void intake_shape_wipe(intake_shape_t *out, size_t n);

#endif
