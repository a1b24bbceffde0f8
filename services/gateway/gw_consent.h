/* gw_consent.h -- the worker's ongoing-access consents, for the routes and for share codes (gw_consent.c). */
#ifndef GW_CONSENT_H
#define GW_CONSENT_H

#include <stddef.h>
#include <stdint.h>

#include "gw.h"
#include "cp_projection.h"

typedef enum {
  GW_CONSENT_PENDING,            // claimed, not yet on the register
  GW_CONSENT_ACTIVE,             // committed, not withdrawn
  GW_CONSENT_WITHDRAWN_PENDING,  // its withdrawal is claimed, not yet committed
} gw_consent_state_t;

/* One of the worker's live consents. */
typedef struct {
  char id[PROJ_CONSENT_ID_HEX + 1];         // the consent's 32 hex (API id cn_<hex>)
  char employer[PROJ_EMPLOYER_ID_MAX + 1];  // the employer given ongoing access
  gw_consent_state_t state;                 // where it stands
  int64_t since;                            // unix s it was signed (0 while pending)
} gw_consent_t;

/* The live consents of worker hex (at most max). 0, or -1 when Redis is unavailable. */
int gw_consent_list_of(cp_redis_t *r, const char *hex, gw_consent_t *out, size_t max, size_t *n) CP_WUR;
/* Grant the request's worker a consent for employer (checked: format, one per employer, the
 * limit), claimed and forwarded; id_out gets its 32 hex. 0, or -1 after an error reply. */
int gw_consent_grant(gw_req_t *req, const char *employer, char id_out[PROJ_CONSENT_ID_HEX + 1]) CP_WUR;

#endif
