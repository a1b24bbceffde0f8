/* gw_check_json.c -- a small append-only JSON text writer for the employer check's replies: the
 * passport is a fixed shape, so it is written straight into one buffer (no jansson tree, no
 * per-value allocations). Strings are escaped as jansson's json_dumps does and must be UTF-8. */
#include "gw_check_json.h"

#include "cp_util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gw_jw_init(gw_jw_t *w, size_t cap) {
  w->cap = cap < 64 ? 64 : cap;
  w->s = cp_xmalloc(w->cap);
  w->len = 0;
  w->bad = false;
}

void gw_jw_free(gw_jw_t *w) {
  free(w->s);
  memset(w, 0, sizeof *w);
}

char *gw_jw_take(gw_jw_t *w, size_t *len) {
  char *s = w->s;
  *len = w->len;
  memset(w, 0, sizeof *w);
  return s;
}

static void reserve(gw_jw_t *w, size_t more) {
  if (w->len + more + 1 <= w->cap) return;
  size_t cap = w->cap * 2;
  while (cap < w->len + more + 1) cap *= 2;
  char *n = realloc(w->s, cap);
  if (n == NULL) abort(); /* OOM is fatal in carepass */
  w->s = n;
  w->cap = cap;
}

void gw_jw_rawn(gw_jw_t *w, const char *s, size_t n) {
  reserve(w, n);
  memcpy(w->s + w->len, s, n);
  w->len += n;
  w->s[w->len] = '\0';
}

void gw_jw_raw(gw_jw_t *w, const char *s) { gw_jw_rawn(w, s, strlen(s)); }

void gw_jw_u64(gw_jw_t *w, uint64_t v) {
  char b[24];
  int n = snprintf(b, sizeof b, "%" PRIu64, v);
  gw_jw_rawn(w, b, (size_t)n);
}

void gw_jw_i64(gw_jw_t *w, int64_t v) {
  char b[24];
  int n = snprintf(b, sizeof b, "%" PRId64, v);
  gw_jw_rawn(w, b, (size_t)n);
}

bool gw_utf8_valid(const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
    else return false;
    if (i + len > n) return false;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

void gw_jw_str(gw_jw_t *w, const char *s) {
  size_t n = strlen(s);
  if (!gw_utf8_valid(s, n)) w->bad = true;
  reserve(w, n + 2);
  w->s[w->len++] = '"';
  size_t run = 0; /* bytes copied as they are, written in one go */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') {
      run++;
      continue;
    }
    gw_jw_rawn(w, s + i - run, run);
    run = 0;
    char e[8];
    switch (c) {
    case '"': gw_jw_rawn(w, "\\\"", 2); break;
    case '\\': gw_jw_rawn(w, "\\\\", 2); break;
    case '\b': gw_jw_rawn(w, "\\b", 2); break;
    case '\f': gw_jw_rawn(w, "\\f", 2); break;
    case '\n': gw_jw_rawn(w, "\\n", 2); break;
    case '\r': gw_jw_rawn(w, "\\r", 2); break;
    case '\t': gw_jw_rawn(w, "\\t", 2); break;
    default:
      snprintf(e, sizeof e, "\\u%04X", c);
      gw_jw_rawn(w, e, 6);
      break;
    }
  }
  gw_jw_rawn(w, s + n - run, run);
  gw_jw_rawn(w, "\"", 1);
}

void gw_jw_kstr(gw_jw_t *w, const char *key, const char *val) {
  gw_jw_raw(w, key);
  gw_jw_str(w, val);
}
