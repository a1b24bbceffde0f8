/* gw_check_model.h -- one employer check's result as facts, for the HTML page (gw_check_page.c).
 * gw_check.c fills it with the same functions that write the JSON reply of POST /v1/check (the
 * same open, the same entry checks, the same status rule and the same readiness rule), so the page
 * and the API cannot disagree. Strings point into the check's entries, the catalogue and the
 * provider registry: the model lives only while the check is answered. */
#ifndef GW_CHECK_MODEL_H
#define GW_CHECK_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cp_regkeys.h"
#include "cp_roles.h"

/* One record (or derived award) the share code shows. */
typedef struct {
  uint64_t index;                // register index
  bool award;                    // a derived award (the Care Certificate), else a record
  const char *code;              // qualification code
  const char *title;             // its title (the code when the catalogue does not know it)
  const char *kind;              // catalogue kind (care_certificate_standard, award, certificate, diploma,
                                 // cpd, refresher; "" when unknown)
  const char *provider_id;       // provider id
  const char *provider_name;     // provider name (the id when the registry does not know it)
  const char *completion_date;   // YYYY-MM-DD
  const char *valid_until;       // YYYY-MM-DD, "" = does not expire
  reg_status_t status;           // on the check's day (reg_record_status)
  bool expiring;                 // valid, and valid_until is within ROLE_EXPIRING_DAYS
  const char *status_text;       // the API's status word ("valid", "expired", "revoked", ...)
  const char *rev_code;          // revoked: the reason code (else NULL)
  char rev_date[11];             // revoked: the day of the revocation (YYYY-MM-DD)
  uint64_t rev_index;            // revoked: the revocation's register index
  const char *c_sig;             // checks: "passed" / "failed" / "not established", as in the API
  const char *c_incl;            // inclusion in the signed checkpoint
  const char *c_rev;             // revocation
  const char *c_exp;             // expiry (on the record's own dates; see gw_check.c)
  const char *problem;           // why it could not be shown authentic ("" when it was)
  bool authentic;                // signature and inclusion passed
} gw_mrec_t;

/* The whole result. */
typedef struct {
  char today[11];                // the check's day, YYYY-MM-DD
  int32_t today_d;               // the same as a day number
  const char *code_id;           // share-code id ("sc_...")
  int64_t code_expires;          // unix s when the code stops working
  bool partial;                  // the worker chose which records this code shows
  const char *origin;            // the register's origin (checkpoint key name)
  uint64_t cp_size;              // entries in the signed checkpoint checked against
  gw_mrec_t *rec;                // the records shown, in register order
  size_t nrec;                   // how many
  int counts[5];                 // valid, expired, revoked, not yet valid, malformed dates
  bool authentic;                // every record's signature and inclusion passed
  const role_t *role;            // the role asked about (NULL = no particular role)
  role_answer_t answer;          // role != NULL: the readiness answer
  role_record_t *role_recs;      // the records readiness counted (answer.req[].by points here)
} gw_check_model_t;

#endif
