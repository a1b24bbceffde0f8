/* reasons.c -- the stable rejection reason codes and the sentence a person can act on for each. */
#include "cp_reasons.h"

#include <string.h>

/* One reason: its stable code and default sentence. */
typedef struct {
  const char *code;  // stable code string (enum name without CP_R_)
  const char *text;  // what is wrong and what to do
} reason_t;

#define R(e, t) [CP_R_##e] = {#e, t}

static const reason_t reasons[CP_R__COUNT] = {
  [CP_OK] = {"OK", "Accepted."},
  R(MALFORMED_REQUEST, "The request is not a valid SubmitRequest protobuf message; check the client uses the published carepass/v1 schema."),
  R(MESSAGE_TOO_LARGE, "The request is larger than the allowed maximum; split the events into smaller batches and send them again."),
  R(BATCH_EMPTY, "The batch contains no events; send at least one event."),
  R(BATCH_TOO_LARGE, "The batch has more events than allowed; split it into smaller batches and send them again."),
  R(INVALID_ACK_LEVEL, "The requested acknowledgement level is not one of the known values; use one defined in the schema."),
  R(NOT_AUTHENTICATED, "The connection carries no registered provider identity; connect with your registered CurveZMQ client key."),
  R(UNAVAILABLE, "carepass is temporarily unable to accept events; send the same batch again later (resending is safe)."),
  R(MISSING_FIELD, "A required field is empty; fill in every required field and send the event again."),
  R(FIELD_TOO_LONG, "A text field is longer than its limit; shorten it and send the event again."),
  R(INVALID_EVENT_ID, "provider_event_id may only contain letters, digits and . _ : -; use a valid id."),
  R(INVALID_WORKER_ID, "The worker's National Insurance number is not valid (two letters, six digits, a final letter A-D); correct it and send the event again."),
  R(INVALID_DATE, "completion_date is not a real calendar date in the form YYYY-MM-DD; correct it and send the event again."),
  R(DATE_IN_FUTURE, "completion_date is after today; send the event once the qualification has been completed."),
  R(DATE_TOO_OLD, "completion_date is before 1990-01-01; check the date and correct it."),
  R(PROVIDER_MISMATCH, "provider_id names a different provider from the one you are authenticated as; send events only for your own provider id."),
  R(INVALID_EVIDENCE_HASH, "evidence_hash must be exactly 32 bytes (a SHA-256 digest); correct it or leave it empty."),
  R(INVALID_KIND, "The event kind is unknown, or revocation fields were set on a completion; set the kind and its fields consistently."),
  R(DUPLICATE_IN_BATCH, "The same provider_event_id appears more than once in this batch; send each event once."),
  R(EVENT_ID_REUSED, "This provider_event_id was already used for an event with different content; use a new id for a new event."),
  R(UNKNOWN_QUALIFICATION, "qualification_code is not in the carepass qualification catalogue; check the code against the published catalogue."),
  R(NOT_SUBMITTABLE, "This qualification is awarded by carepass itself (for example the Care Certificate) and cannot be submitted; submit its component standards instead."),
  R(PROVIDER_UNKNOWN, "The provider is not in the provider registry; contact carepass to register before submitting."),
  R(PROVIDER_NOT_APPROVED, "The provider was not approved to award this qualification on the completion date; check your approvals with carepass."),
  R(ASSESSOR_REQUIRED, "This qualification requires an assessor; fill in assessor_id and send the event again."),
  R(REVOKED_EVENT_UNKNOWN, "The revocation names an event that is not on the register; check the provider_event_id being revoked."),
  R(INVALID_REVOCATION_REASON, "The revocation reason is not recognised; use ISSUED_IN_ERROR, FRAUD, PROVIDER_DEACCREDITED, ASSESSMENT_INVALID, DUPLICATE, WORKER_REQUEST, REQUIREMENT_REVOKED or OTHER."),
  R(ALREADY_REVOKED, "This record has already been revoked; no further action is needed."),
  R(INTERNAL, "carepass hit an internal error processing this event; send it again later, and contact carepass if it persists."),
  R(INVALID_UTF8, "A text field is not valid UTF-8; send every text field as UTF-8 (convert it from Latin-1 or Windows-1252 if your system stores those) and send the event again."),
  R(NUL_IN_STRING, "A text field contains a NUL (zero) byte, which carepass would otherwise cut the text at; remove it and send the event again."),
  R(LABEL_TOO_LONG, "The label is longer than its limit; shorten it and send the request again."),
  R(LABEL_CONTROL_CHAR, "The label contains a control, invisible or line-separator character; send plain printable text."),
  R(LABEL_BIDI_CONTROL, "The label contains a bidirectional control character (U+202A-202E, U+2066-2069, U+200E, U+200F or U+061C), which can make text show differently from what it says; remove it."),
  R(BUSY, "carepass is holding more notifications than it can deliver right now, so this event was not stored; send it again in a few minutes (resending is safe)."),
  R(INVALID_CONSENT, "The consent is malformed: it needs an employer id EMP- followed by 4 to 12 digits, and a withdrawal needs the reason CONSENT_WITHDRAWN."),
  R(RESERVED_PROVIDER, "Consents are made only by carepass itself for a signed-in worker, and the consent provider id sends nothing else; a training provider cannot send one."),
};

#undef R

const char *cp_reason_code(cp_reason_t r) {
  if ((int)r < 0 || r >= CP_R__COUNT || reasons[r].code == NULL) return "INTERNAL";
  return reasons[r].code;
}

const char *cp_reason_text(cp_reason_t r) {
  if ((int)r < 0 || r >= CP_R__COUNT || reasons[r].text == NULL) return reasons[CP_R_INTERNAL].text;
  return reasons[r].text;
}

cp_reason_t cp_reason_from_code(const char *code) {
  if (code == NULL) return CP_R__COUNT;
  for (int i = 0; i < CP_R__COUNT; i++)
    if (reasons[i].code != NULL && strcmp(reasons[i].code, code) == 0) return (cp_reason_t)i;
  return CP_R__COUNT;
}

bool cp_revocation_reason_valid(const char *code) {
  static const char *valid[] = {"ISSUED_IN_ERROR", "FRAUD", "PROVIDER_DEACCREDITED",
                                "ASSESSMENT_INVALID", "DUPLICATE", "WORKER_REQUEST", "OTHER",
                                "REQUIREMENT_REVOKED"};
  if (code == NULL) return false;
  for (size_t i = 0; i < CP_ARRAY_LEN(valid); i++)
    if (strcmp(code, valid[i]) == 0) return true;
  return false;
}
