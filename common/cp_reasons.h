/* cp_reasons.h -- stable rejection reason codes and the sentence that goes with
 * each. Codes never change meaning once published; add new ones at the end. */
#ifndef CP_REASONS_H
#define CP_REASONS_H

#include "cp_util.h"

typedef enum {
  CP_OK = 0,
  /* whole request (intake / gateway) */
  CP_R_MALFORMED_REQUEST,      // not a valid SubmitRequest protobuf
  CP_R_MESSAGE_TOO_LARGE,      // request bigger than CAREPASS_MAX_MESSAGE_BYTES
  CP_R_BATCH_EMPTY,            // no events
  CP_R_BATCH_TOO_LARGE,        // more than CAREPASS_MAX_BATCH events
  CP_R_INVALID_ACK_LEVEL,      // ack level not one of the known values
  CP_R_NOT_AUTHENTICATED,      // no provider identity on the connection
  CP_R_UNAVAILABLE,            // Redis or the bus is unavailable; resend later
  /* per event: shape (intake) */
  CP_R_MISSING_FIELD,          // a required field is empty
  CP_R_FIELD_TOO_LONG,         // a string is longer than its limit
  CP_R_INVALID_EVENT_ID,       // provider_event_id has characters outside [A-Za-z0-9._:-]
  CP_R_INVALID_WORKER_ID,      // NI number is not a valid National Insurance number
  CP_R_INVALID_DATE,           // completion_date is not a real YYYY-MM-DD date
  CP_R_DATE_IN_FUTURE,         // completion_date is after today
  CP_R_DATE_TOO_OLD,           // completion_date is before 1990-01-01
  CP_R_PROVIDER_MISMATCH,      // provider_id names another provider than the credential
  CP_R_INVALID_EVIDENCE_HASH,  // evidence_hash is not 32 bytes
  CP_R_INVALID_KIND,           // kind unknown, or revocation fields on a completion
  CP_R_DUPLICATE_IN_BATCH,     // the same provider_event_id twice in one batch
  CP_R_EVENT_ID_REUSED,        // id already used for an event with different content
  /* per event: rules (verify) */
  CP_R_UNKNOWN_QUALIFICATION,  // qualification_code not in the catalogue
  CP_R_NOT_SUBMITTABLE,        // qualification is derived by carepass (e.g. the Care Certificate)
  CP_R_PROVIDER_UNKNOWN,       // provider not in the registry
  CP_R_PROVIDER_NOT_APPROVED,  // provider not approved for this qualification on that date
  CP_R_ASSESSOR_REQUIRED,      // assessed qualification without assessor_id
  CP_R_REVOKED_EVENT_UNKNOWN,  // revocation names an event that is not committed
  CP_R_INVALID_REVOCATION_REASON, // revocation reason code unknown
  CP_R_ALREADY_REVOKED,        // the record was already revoked
  CP_R_INTERNAL,               // internal error; resend later
  /* per event: text (intake, gateway) -- added after INTERNAL so no code moves */
  CP_R_INVALID_UTF8,           // a string field is not well-formed UTF-8
  CP_R_NUL_IN_STRING,          // a string field contains a NUL byte (would be truncated)
  /* self-declared labels (gateway: employer label, user agent shown to the worker) */
  CP_R_LABEL_TOO_LONG,         // longer than its limit
  CP_R_LABEL_CONTROL_CHAR,     // a control, invisible or line-separator character (or NUL)
  CP_R_LABEL_BIDI_CONTROL,     // a bidirectional control (U+202A-202E, U+2066-2069, U+200E/F, U+061C)
  /* per event: back-pressure (intake, gateway) */
  CP_R_BUSY,                   // notifications owed are at OUTBOX_MAX: not stored; resend later
  /* consents (verify) -- added after BUSY so no code moves */
  CP_R_INVALID_CONSENT,        // a consent event of the wrong shape (employer id, kind, withdrawal reason)
  CP_R_RESERVED_PROVIDER,      // a consent from any provider but carepass-consent, or it sending anything else
  CP_R__COUNT
} cp_reason_t;

/* Stable code string, e.g. "UNKNOWN_QUALIFICATION". */
const char *cp_reason_code(cp_reason_t r);
/* Default sentence a person can act on. */
const char *cp_reason_text(cp_reason_t r);
/* Look a code string up; CP_R__COUNT if unknown. */
cp_reason_t cp_reason_from_code(const char *code);

/* Revocation reason codes accepted in revocation events. */
bool cp_revocation_reason_valid(const char *code);

#endif
