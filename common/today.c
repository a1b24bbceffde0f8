/* today.c -- the (overridable) clock: cp_today (cp_dates.h) from CAREPASS_TODAY_FILE,
 * CAREPASS_TODAY or the real clock. Apart from dates.c so that the configuration table,
 * which checks dates, and the clock, which reads the table, do not import each other. */
#include "cp_config.h"
#include "cp_dates.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

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
