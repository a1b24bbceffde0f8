/* verify_rules.h -- the pure rules of verify: an event against the catalogue, the provider
 * registry and today's date. No Redis, no ZeroMQ: unit-testable on its own. */
#ifndef VERIFY_RULES_H
#define VERIFY_RULES_H

#include "carepass/v1/internal.pb-c.h"
#include "cp_catalogue.h"
#include "cp_reasons.h"

#define VERIFY_MSG_MAX 256    /* longest rejection sentence, incl. NUL */

/* What the rules look at in a completion event (PendingEvent fields; no personal data). */
typedef struct {
  const char *provider_id;        // authenticated provider
  const char *qualification_code; // catalogue code submitted
  const char *completion_date;    // YYYY-MM-DD as sent
  const char *assessor_id;        // "" or NULL when absent
} verify_input_t;

/* The verdict on one event. */
typedef struct {
  cp_reason_t reason;             // CP_OK when the event passes
  char message[VERIFY_MSG_MAX];   // sentence naming the code / provider / date concerned ("" when CP_OK)
  char valid_until[11];           // YYYY-MM-DD, or "" when the qualification does not expire
  const cat_qual_t *qual;         // the catalogue entry (NULL when the code is unknown)
  int32_t completion_day;         // completion date as a day number (when it parsed)
} verify_result_t;

/* Earliest completion date carepass records (day number of 1990-01-01). */
#define VERIFY_EARLIEST_DAY 7305

/* Check one completion event. Order: qualification known, not derived, provider known,
 * date real / not in the future / not before 1990-01-01, provider approved for the code on
 * the completion date, assessor present when assessed. Fills *out; returns out->reason. */
cp_reason_t verify_check(const cat_catalogue_t *cat, const prov_registry_t *reg,
                         const verify_input_t *in, int32_t today, verify_result_t *out);

/* Check a revocation's own fields (the Redis lookup of the revoked event is done by the
 * caller): revocation_reason must be a known code. Fills *out; returns out->reason. */
cp_reason_t verify_check_revocation(const char *revocation_reason, verify_result_t *out);

/* valid_until for a completion on `completion_day` of `q`: day + refresh_months, or ""
 * when the qualification does not expire. */
void verify_valid_until(const cat_qual_t *q, int32_t completion_day, char out[11]);

#define VERIFY_OPERATOR_PROVIDER "carepass-operator" /* provider id of operator revocations (carepass revoke) */
#define VERIFY_OPERATOR_TARGET_MAX 160    /* operator revocation: longest "<provider>:<event id>" it names */

/* verify_rules.c: the event revocation `ev` names: for a provider, its own event
 * revokes_event_id; for an operator revocation (provider "carepass-operator"), revokes_event_id
 * is "<provider>:<event id>" of any provider. Fills provider (size plen) and *event (points into
 * ev); false when an operator revocation names no event that way. */
bool verify_revocation_target(const Carepass__V1__PendingEvent *ev, char *provider, size_t plen,
                              const char **event);

#endif
