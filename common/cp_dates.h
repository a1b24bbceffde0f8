/* cp_dates.h -- calendar dates (YYYY-MM-DD) as day numbers, and the clock.
 * The clock can be set for tests with CAREPASS_TODAY=YYYY-MM-DD (fixed at start), or
 * moved while a service runs with CAREPASS_TODAY_FILE=<path of a file holding YYYY-MM-DD>. */
#ifndef CP_DATES_H
#define CP_DATES_H

#include "cp_util.h"

/* Days since 1970-01-01 of a strict "YYYY-MM-DD" (real calendar date,
 * years 1900..2999). Returns 0 / -1. */
int cp_date_parse(const char *s, int32_t *days) CP_WUR;
/* Format day number as YYYY-MM-DD into out (11 bytes). */
void cp_date_format(int32_t days, char out[11]);
/* Add months, clamping the day to the month's end (2024-01-31 + 1 month = 2024-02-29). */
int32_t cp_date_add_months(int32_t days, int months);
/* Today (UTC) as a day number. CAREPASS_TODAY_FILE, when set, names a file holding
 * YYYY-MM-DD that is re-read at most every 200 ms (a test moves a running service's
 * clock by rewriting it); a missing or invalid file falls through to CAREPASS_TODAY
 * when set and valid, else to the real clock. Thread-safe. */
int32_t cp_today(void);

#endif
