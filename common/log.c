/* log.c -- JSON-lines logging on stderr: one line per event, one write(2) per line. */
#include "cp_log.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 8192  /* longer lines are cut (and closed as valid JSON) */

static char log_service[64] = "carepass";        // "service" field of every line
static atomic_int log_min = CP_LOG_INFO;         // lines below this level are dropped

static const char *level_names[] = {"debug", "info", "warn", "error"};

void cp_log_init(const char *service, const char *level) {
  snprintf(log_service, sizeof log_service, "%s", service ? service : "carepass");
  int lv = CP_LOG_INFO;
  if (level != NULL) {
    for (int i = 0; i < (int)CP_ARRAY_LEN(level_names); i++)
      if (strcasecmp(level, level_names[i]) == 0) lv = i;
  }
  log_min = lv;
}

/* A bounded output buffer; `over` records that something did not fit. */
typedef struct {
  char buf[LOG_LINE_MAX];  // the line
  size_t len;              // bytes used
  bool over;               // truncated
} line_t;

/* Room kept free at the end of the buffer for closing a cut line:
 * '"' + ',"truncated":true' + '}' + '\n'. */
#define LOG_RESERVE 32

static void put(line_t *l, const char *s, size_t n) {
  if (l->over || l->len + n > sizeof l->buf - LOG_RESERVE) {
    l->over = true;
    return;
  }
  memcpy(l->buf + l->len, s, n);
  l->len += n;
}

/* Append into the reserve; only for the few closing bytes of a cut line. */
static void put_force(line_t *l, const char *s) {
  size_t n = strlen(s);
  if (l->len + n <= sizeof l->buf) {
    memcpy(l->buf + l->len, s, n);
    l->len += n;
  }
}

static void puts_raw(line_t *l, const char *s) { put(l, s, strlen(s)); }

/* Append s as a JSON string (with quotes), escaping per RFC 8259; bytes that are
 * not valid UTF-8 become U+FFFD. A string cut for length is still closed. */
static void put_json_str(line_t *l, const char *s) {
  put(l, "\"", 1);
  if (l->over) { /* no room even to open: write an empty string so the JSON stays valid */
    put_force(l, "\"\"");
    return;
  }
  const unsigned char *p = (const unsigned char *)(s ? s : "(null)");
  while (*p && !l->over) {
    unsigned char c = *p;
    char esc[8];
    if (c == '"') put(l, "\\\"", 2);
    else if (c == '\\') put(l, "\\\\", 2);
    else if (c == '\n') put(l, "\\n", 2);
    else if (c == '\r') put(l, "\\r", 2);
    else if (c == '\t') put(l, "\\t", 2);
    else if (c < 0x20 || c == 0x7f) {
      snprintf(esc, sizeof esc, "\\u%04x", c);
      put(l, esc, 6);
    } else if (c < 0x80) {
      put(l, (const char *)p, 1);
    } else {
      /* validate one UTF-8 sequence */
      int n = (c >= 0xc2 && c <= 0xdf) ? 2 : (c >= 0xe0 && c <= 0xef) ? 3 : (c >= 0xf0 && c <= 0xf4) ? 4 : 0;
      bool ok = n > 0;
      for (int i = 1; ok && i < n; i++) ok = (p[i] & 0xc0) == 0x80;
      if (ok && n == 3 && ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f))) ok = false;
      if (ok && n == 4 && ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f))) ok = false;
      if (ok) {
        put(l, (const char *)p, (size_t)n);
        p += n;
        continue;
      }
      put(l, "\\ufffd", 6);
    }
    p++;
  }
  if (l->over) put_force(l, "\"");
  else put(l, "\"", 1);
}

static void put_key(line_t *l, const char *k) {
  put(l, ",", 1);
  put_json_str(l, k);
  put(l, ":", 1);
}

void cp_log(cp_log_level_t level, const char *msg, ...) {
  if ((int)level < log_min) return;
  if ((int)level < 0 || (int)level >= (int)CP_ARRAY_LEN(level_names)) level = CP_LOG_ERROR;
  int saved_errno = errno;
  line_t l;
  l.len = 0;
  l.over = false;

  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char tsbuf[128]; /* 24 used; sized for the compiler's worst case */
  snprintf(tsbuf, sizeof tsbuf, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);

  puts_raw(&l, "{\"ts\":\"");
  puts_raw(&l, tsbuf);
  puts_raw(&l, "\",\"level\":\"");
  puts_raw(&l, level_names[level]);
  puts_raw(&l, "\",\"service\":");
  put_json_str(&l, log_service);
  puts_raw(&l, ",\"msg\":");
  put_json_str(&l, msg);

  va_list ap;
  va_start(ap, msg);
  for (int n = 0; n < 64 && !l.over; n++) { /* bounded: at most 64 key/values */
    int tag = va_arg(ap, int);
    if (tag == CP_KV_END) break;
    const char *key = va_arg(ap, const char *);
    size_t before = l.len;
    char num[64];
    if (tag == 's') {
      const char *v = va_arg(ap, const char *);
      put_key(&l, key);
      bool key_cut = l.over;
      put_json_str(&l, v);
      if (key_cut) l.len = before; /* a cut value is kept; a cut key is not */
    } else if (tag == 'i' || tag == 'd') {
      if (tag == 'i') {
        snprintf(num, sizeof num, "%lld", va_arg(ap, long long));
      } else {
        double v = va_arg(ap, double);
        if (isfinite(v)) snprintf(num, sizeof num, "%.17g", v);
        else snprintf(num, sizeof num, "null");
      }
      put_key(&l, key);
      puts_raw(&l, num);
      if (l.over) l.len = before;
    } else {
      /* unknown tag: the argument list cannot be walked further safely */
      put_key(&l, "log_error");
      puts_raw(&l, "\"bad key/value tag\"");
      if (l.over) l.len = before;
      break;
    }
  }
  va_end(ap);

  if (l.over) put_force(&l, ",\"truncated\":true");
  l.buf[l.len++] = '}';
  l.buf[l.len++] = '\n';

  /* One write(2) per line: stderr lines from several threads never interleave
   * (writes of up to PIPE_BUF to a pipe are atomic; O_APPEND files are too). */
  size_t off = 0;
  for (int tries = 0; off < l.len && tries < 8; tries++) {
    ssize_t w = write(STDERR_FILENO, l.buf + off, l.len - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      break;
    }
    off += (size_t)w;
  }
  errno = saved_errno;
}
