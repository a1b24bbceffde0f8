/* verify_rules.c -- the rules engine proper: one event against catalogue, registry and date. */
#include "verify_rules.h"
#include "cp_dates.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Record a rejection with its sentence; returns the reason for `return reject(...)`. */
static cp_reason_t reject(verify_result_t *out, cp_reason_t r, const char *fmt, ...) CP_PRINTF(3, 4);

static cp_reason_t reject(verify_result_t *out, cp_reason_t r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(out->message, sizeof out->message, fmt, ap);
  va_end(ap);
  out->reason = r;
  out->valid_until[0] = '\0';
  return r;
}

static const char *nz(const char *s) { return s != NULL ? s : ""; }

void verify_valid_until(const cat_qual_t *q, int32_t completion_day, char out[11]) {
  assert(q != NULL);
  if (q->refresh_months <= 0) {
    out[0] = '\0';
    return;
  }
  cp_date_format(cp_date_add_months(completion_day, q->refresh_months), out);
}

cp_reason_t verify_check(const cat_catalogue_t *cat, const prov_registry_t *reg,
                         const verify_input_t *in, int32_t today, verify_result_t *out) {
  assert(cat != NULL && reg != NULL && in != NULL && out != NULL);
  memset(out, 0, sizeof *out);
  const char *code = nz(in->qualification_code);
  const char *pid = nz(in->provider_id);
  const char *date = nz(in->completion_date);

  /* Strings from the event are cut short in sentences (%.40s): intake limits their length,
   * this only keeps a sentence readable if it did not. */
  const cat_qual_t *q = cat_find(cat, code);
  if (q == NULL)
    return reject(out, CP_R_UNKNOWN_QUALIFICATION,
                  "Qualification code \"%.40s\" is not in the carepass catalogue.", code);
  out->qual = q;
  if (q->derived)
    return reject(out, CP_R_NOT_SUBMITTABLE,
                  "%s (%.80s) is issued by carepass itself once all %zu required codes are verified; "
                  "submit those codes instead.", q->code, q->title, q->nrequires);

  const prov_t *p = prov_find(reg, pid);
  if (p == NULL)
    return reject(out, CP_R_PROVIDER_UNKNOWN,
                  "Provider \"%.40s\" is not in the carepass provider registry.", pid);

  int32_t day;
  if (cp_date_parse(date, &day) != 0)
    return reject(out, CP_R_INVALID_DATE,
                  "completion_date \"%.20s\" is not a real date in the form YYYY-MM-DD.", date);
  out->completion_day = day;
  if (day > today) {
    char t[11];
    cp_date_format(today, t);
    return reject(out, CP_R_DATE_IN_FUTURE, "completion_date %s is after today (%s).", date, t);
  }
  if (day < VERIFY_EARLIEST_DAY)
    return reject(out, CP_R_DATE_TOO_OLD,
                  "completion_date %s is before 1990-01-01, the earliest date carepass records.", date);

  if (!prov_approved(p, q->code, day))
    return reject(out, CP_R_PROVIDER_NOT_APPROVED,
                  "Provider %s is not approved for %s (%.80s) on %s.", p->id, q->code, q->title, date);

  if (q->assessed && nz(in->assessor_id)[0] == '\0')
    return reject(out, CP_R_ASSESSOR_REQUIRED,
                  "%s (%.80s) is assessed; assessor_id is required.", q->code, q->title);

  out->reason = CP_OK;
  verify_valid_until(q, day, out->valid_until);
  return CP_OK;
}

cp_reason_t verify_check_revocation(const char *revocation_reason, verify_result_t *out) {
  assert(out != NULL);
  memset(out, 0, sizeof *out);
  const char *r = nz(revocation_reason);
  if (!cp_revocation_reason_valid(r))
    return reject(out, CP_R_INVALID_REVOCATION_REASON,
                  "Revocation reason \"%.40s\": %s", r,
                  cp_reason_text(CP_R_INVALID_REVOCATION_REASON));
  out->reason = CP_OK;
  return CP_OK;
}

bool verify_revocation_target(const Carepass__V1__PendingEvent *ev, char *provider, size_t plen,
                              const char **event) {
  assert(plen > 0);
  provider[0] = '\0';
  *event = "";
  if (strcmp(ev->provider_id, VERIFY_OPERATOR_PROVIDER) != 0) {
    snprintf(provider, plen, "%s", ev->provider_id);
    *event = ev->revokes_event_id;
    return ev->revokes_event_id[0] != '\0';
  }
  /* split at the first ':' (provider ids have none; event ids may, e.g. award:CC:...) */
  const char *colon = strchr(ev->revokes_event_id, ':');
  if (colon == NULL || colon == ev->revokes_event_id || colon[1] == '\0' ||
      (size_t)(colon - ev->revokes_event_id) >= plen)
    return false;
  memcpy(provider, ev->revokes_event_id, (size_t)(colon - ev->revokes_event_id));
  provider[colon - ev->revokes_event_id] = '\0';
  *event = colon + 1;
  return true;
}
