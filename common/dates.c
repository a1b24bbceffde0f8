/* dates.c -- proleptic Gregorian dates as day numbers since 1970-01-01 (the clock is in today.c). */
#include "cp_dates.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int days_in_month(int y, int m) {
  static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return (m == 2 && is_leap(y)) ? 29 : dim[m - 1];
}

/* Days since 1970-01-01 of y-m-d (the "days from civil" algorithm, eras of 400 years). */
static int32_t days_from_civil(int y, int m, int d) {
  y -= m <= 2;
  int era = (y >= 0 ? y : y - 399) / 400;
  int yoe = y - era * 400;                                   // [0, 399]
  int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;  // [0, 365]
  int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           // [0, 146096]
  return era * 146097 + doe - 719468;
}

static void civil_from_days(int32_t z, int *y, int *m, int *d) {
  z += 719468;
  int era = (z >= 0 ? z : z - 146096) / 146097;
  int doe = z - era * 146097;
  int yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = yoe + era * 400 + (*m <= 2);
}

static int digits(const char *s, int n) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

int cp_date_parse(const char *s, int32_t *days) {
  if (s == NULL || strlen(s) != 10 || s[4] != '-' || s[7] != '-') return -1;
  int y = digits(s, 4), m = digits(s + 5, 2), d = digits(s + 8, 2);
  if (y < 1900 || y > 2999 || m < 1 || m > 12 || d < 1 || d > days_in_month(y, m)) return -1;
  *days = days_from_civil(y, m, d);
  return 0;
}

void cp_date_format(int32_t days, char out[11]) {
  int y, m, d;
  civil_from_days(days, &y, &m, &d);
  if (y < 0 || y > 9999) { /* outside what YYYY can show: never a valid carepass date */
    memcpy(out, "0000-00-00", 11);
    return;
  }
  snprintf(out, 11, "%04d-%02d-%02d", y, m, d);
}

int32_t cp_date_add_months(int32_t days, int months) {
  int y, m, d;
  civil_from_days(days, &y, &m, &d);
  long total = (long)y * 12 + (m - 1) + months;
  long ny = total >= 0 ? total / 12 : -((-total + 11) / 12);
  int nm = (int)(total - ny * 12) + 1;
  int dim = days_in_month((int)ny, nm);
  return days_from_civil((int)ny, nm, d > dim ? dim : d);
}
