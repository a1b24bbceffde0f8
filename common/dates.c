/* dates.c -- proleptic Gregorian dates as day numbers since 1970-01-01, and the (overridable) clock. */
#include "cp_dates.h"
#include "cp_config.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

#define TODAY_FILE_REREAD_MS 200   /* CAREPASS_TODAY_FILE is read at most this often */
#define TODAY_NONE INT32_MIN       /* "no valid date in the file" */

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The date in the file at path (first 10 bytes, then optional whitespace), or TODAY_NONE. */
static int32_t read_today_file(const char *path) {
  char buf[32];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return TODAY_NONE;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n < 10) return TODAY_NONE;
  buf[n] = '\0';
  for (ssize_t i = 10; i < n; i++)
    if (buf[i] != '\n' && buf[i] != '\r' && buf[i] != ' ' && buf[i] != '\t') return TODAY_NONE;
  buf[10] = '\0';
  int32_t days;
  return cp_date_parse(buf, &days) == 0 ? days : TODAY_NONE;
}

/* The date from CAREPASS_TODAY_FILE, cached for TODAY_FILE_REREAD_MS. Threads may race
 * to refresh it: both read the same file, so either result is right. */
static int32_t today_from_file(const char *path) {
  static _Atomic int32_t cached = TODAY_NONE;
  static _Atomic int64_t next_read = 0;
  int64_t now = mono_ms();
  if (now >= atomic_load(&next_read)) {
    atomic_store(&cached, read_today_file(path));
    atomic_store(&next_read, now + TODAY_FILE_REREAD_MS);
  }
  return atomic_load(&cached);
}

int32_t cp_today(void) {
  int32_t days;
  const char *file = cp_cfg_str(CP_OPT_TODAY_FILE);
  if (file[0] != '\0' && (days = today_from_file(file)) != TODAY_NONE) return days;
  const char *today = cp_cfg_str(CP_OPT_TODAY);
  if (today[0] != '\0' && cp_date_parse(today, &days) == 0) return days;
  time_t now = time(NULL);
  return (int32_t)(now >= 0 ? now / 86400 : (now - 86399) / 86400);
}
