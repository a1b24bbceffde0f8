/* cp_roles.h -- the roles of the Care Workforce Pathway (data/roles.json) and the one rule that
 * answers "is this set of records enough for role R on day D" (issue 12, item 1).
 *
 * roles.json:
 *   {"version": 1, "source": "...", "roles": [
 *     {"id": "care-worker", "title": "Care or support worker", "source": "...",
 *      "grace_days": 84,                          optional: a new starter's grace period (0 = none)
 *      "requires": [
 *        {"any_of": ["CC", "L2-ASCC"], "grace": true, "why": "..."},   any one of the codes;
 *        {"any_of": ["RF-MH"], "why": "..."}, ...]}, ...]}            grace: may be pending
 *                                                                      within the grace period
 *   Every code must be in the catalogue; ids are [a-z0-9-], unique; a role has 1..ROLE_REQ_MAX
 *   requirements of 1..ROLE_ALT_MAX codes; "grace": true needs the role's grace_days > 0.
 *
 * Readiness (role_readiness): a record counts on day D when it was completed on or before D, is
 * valid until D or later, and is not revoked on D. Each requirement is met by its counting
 * record that lasts longest; else, for a new starter within the role's grace period (started
 * + grace_days >= D) and a requirement that allows it, it is pending; else it is expired (a
 * record of it has lapsed) or missing. The answer is ready (nothing ends), ready until the
 * first day something ends (a record's valid_until, or the end of the grace period), or not
 * ready with what is missing or expired; met requirements ending within ROLE_EXPIRING_DAYS are
 * marked expiring. */
#ifndef CP_ROLES_H
#define CP_ROLES_H

#include <stdint.h>

#include "carepass/v1/register.pb-c.h"
#include "cp_catalogue.h"
#include "cp_util.h"

#define ROLE_ID_MAX 48
#define ROLE_SOURCE_MAX 512
#define ROLE_WHY_MAX 160
#define ROLE_REQ_MAX 16         /* requirements per role */
#define ROLE_ALT_MAX 8          /* codes per requirement ("any one of") */
#define ROLES_MAX 64            /* roles per file */
#define ROLE_GRACE_MAX 366      /* longest grace period, days */
#define ROLE_EXPIRING_DAYS 90   /* a met requirement ending within this many days is "expiring" */
#define ROLE_NEVER INT32_MAX    /* valid_until of a record that does not expire; revoked_from of one not revoked */

typedef struct {
  char codes[ROLE_ALT_MAX][CAT_CODE_MAX];  // any one of these
  size_t ncodes;
  bool grace;                               // may be pending within the role's grace period
  char why[ROLE_WHY_MAX];                   // what it is, for people
} role_req_t;

typedef struct {
  char id[ROLE_ID_MAX];
  char title[CAT_TITLE_MAX];
  char source[ROLE_SOURCE_MAX];  // where the rule comes from
  int grace_days;                // new starters' grace period; 0 = none
  role_req_t req[ROLE_REQ_MAX];
  size_t nreq;
} role_t;

typedef struct roles roles_t;

/* Load and validate roles.json against the catalogue; a bad file is refused with the file, the
 * role and the field in err. */
int roles_load(const char *path, const cat_catalogue_t *cat, roles_t **out, char *err, size_t errlen) CP_WUR;
void roles_destroy(roles_t **r);
const role_t *roles_find(const roles_t *r, const char *id);
size_t roles_count(const roles_t *r);
const role_t *roles_at(const roles_t *r, size_t i);

/* A record as readiness sees it (day numbers, cp_dates.h). */
typedef struct {
  const char *code;         // qualification code
  int32_t completed;        // completion day
  int32_t valid_until;      // last valid day; ROLE_NEVER = does not expire
  int32_t revoked_from;     // first day it no longer counts; ROLE_NEVER = not revoked
  uint64_t index;           // register index (to name it)
} role_record_t;

typedef enum {
  ROLE_REQ_MET = 0,         // a record counts (by)
  ROLE_REQ_PENDING,         // none yet, within the grace period
  ROLE_REQ_EXPIRED,         // none counts; by is the record that lapsed last
  ROLE_REQ_MISSING,         // none at all
} role_req_state_t;

typedef struct {
  role_req_state_t state;
  const role_record_t *by;  // MET: the record; EXPIRED: the last lapsed; else NULL
  bool expiring;            // MET, and it ends within ROLE_EXPIRING_DAYS
} role_req_result_t;

typedef enum {
  ROLE_READY = 0,           // every requirement met, nothing ends
  ROLE_READY_UNTIL,         // ready, until `until` (the first day something ends is until + 1)
  ROLE_NOT_READY,           // something missing or expired
} role_verdict_t;

typedef struct {
  role_verdict_t verdict;
  int32_t until;                          // READY_UNTIL: the last day ready
  role_req_result_t req[ROLE_REQ_MAX];    // per requirement of the role, in its order
  size_t nreq;
} role_answer_t;

/* A register entry as readiness sees it: a record or derived award with real dates; revoked from
 * the day of revocation's issued_at (NULL: not revoked). False for anything else. The strings
 * point into pe. */
bool role_record_of(const Carepass__V1__PassportEntry *pe, const Carepass__V1__PassportEntry *revocation,
                    uint64_t index, role_record_t *out);

/* The answer for role on day; started is the day the worker started in the role (for the grace
 * period), or -1 when they are not a new starter. */
void role_readiness(const role_t *role, const role_record_t *recs, size_t n, int32_t day, int32_t started,
                    role_answer_t *out);

/* "ready", "ready until", "not ready" / "met", "pending", "expired", "missing". */
const char *role_verdict_name(role_verdict_t v);
const char *role_req_state_name(role_req_state_t s);

#endif
