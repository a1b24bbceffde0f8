/* register_status.c -- the one rule for "was this record valid on date X" (revocation, expiry, completion). */
#include "cp_regkeys.h"


#include "cp_dates.h"

reg_status_t reg_status_on(const char *completion_date, const char *valid_until, int64_t revoked_at,
                           int32_t day) {
  int32_t done, until;
  if (completion_date == NULL || cp_date_parse(completion_date, &done) != 0) return REG_STATUS_BAD_DATE;
  bool expires = valid_until != NULL && valid_until[0] != '\0';
  if (expires && cp_date_parse(valid_until, &until) != 0) return REG_STATUS_BAD_DATE;
  /* a revocation takes effect on the (UTC) day of its issued_at: from that day on the
   * record is revoked; on earlier days the record is judged as if never revoked */
  if (revoked_at >= 0) {
    int64_t rday = revoked_at / 86400;   /* issued_at is unix seconds, UTC days */
    if (rday <= day) return REG_STATUS_REVOKED;
  }
  if (day < done) return REG_STATUS_NOT_YET;
  if (expires && day > until) return REG_STATUS_EXPIRED;
  return REG_STATUS_VALID;
}

reg_status_t reg_record_status(const Carepass__V1__PassportEntry *entry,
                               const Carepass__V1__PassportEntry *revocation, const char *date) {
  if (entry->entry_type != CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_RECORD &&
      entry->entry_type != CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_DERIVED_AWARD)
    return REG_STATUS_NOT_RECORD;
  int32_t day;
  if (date == NULL || cp_date_parse(date, &day) != 0) return REG_STATUS_BAD_DATE;
  int64_t revoked_at = -1;
  if (revocation != NULL && revocation->entry_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION)
    revoked_at = revocation->issued_at < 0 ? 0 : revocation->issued_at;
  return reg_status_on(entry->completion_date, entry->valid_until, revoked_at, day);
}

const char *reg_status_str(reg_status_t st) {
  switch (st) {
    case REG_STATUS_VALID: return "valid";
    case REG_STATUS_NOT_YET: return "not yet valid";
    case REG_STATUS_EXPIRED: return "expired";
    case REG_STATUS_REVOKED: return "revoked";
    case REG_STATUS_NOT_RECORD: return "not a record";
    case REG_STATUS_BAD_DATE: return "bad date";
  }
  return "unknown";
}
