/* cp_dates.h -- calendar dates (YYYY-MM-DD) as day numbers, and the clock.
 * The clock can be set for tests with CAREPASS_TODAY=YYYY-MM-DD. */
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
/* Today (UTC) as a day number; CAREPASS_TODAY overrides it when set and valid. */
int32_t cp_today(void);

#endif
