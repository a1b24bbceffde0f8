/* gw_html.c -- HTML escaping and the one date format of the employer's pages (d Month yyyy). */
#include "gw_html.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cp_dates.h"

void gw_html_text(gw_jw_t *w, const char *s) {
  size_t n = strlen(s);
  if (!gw_utf8_valid(s, n)) w->bad = true;
  size_t run = 0; /* bytes copied as they are, written in one go */
  for (size_t i = 0; i < n; i++) {
    const char *e = NULL;
    switch (s[i]) {
    case '&': e = "&amp;"; break;
    case '<': e = "&lt;"; break;
    case '>': e = "&gt;"; break;
    case '"': e = "&quot;"; break;
    case '\'': e = "&#39;"; break;
    default: run++; continue;
    }
    gw_jw_rawn(w, s + i - run, run);
    run = 0;
    gw_jw_raw(w, e);
  }
  gw_jw_rawn(w, s + n - run, run);
}

void gw_html_fmt(gw_jw_t *w, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (k < 0) return;
  gw_jw_rawn(w, buf, (size_t)k < sizeof buf ? (size_t)k : sizeof buf - 1);
}

static const char *const MONTHS[12] = {"January", "February", "March",     "April",   "May",      "June",
                                       "July",    "August",   "September", "October", "November", "December"};

void gw_html_date(const char *iso, char out[GW_HTML_DATE_MAX]) {
  int32_t d;
  if (iso == NULL || cp_date_parse(iso, &d) != 0) {
    snprintf(out, GW_HTML_DATE_MAX, "%s", iso != NULL ? iso : "");
    return;
  }
  int y = 0, m = 0, dd = 0;
  if (sscanf(iso, "%4d-%2d-%2d", &y, &m, &dd) != 3 || m < 1 || m > 12) {
    snprintf(out, GW_HTML_DATE_MAX, "%s", iso);
    return;
  }
  snprintf(out, GW_HTML_DATE_MAX, "%d %s %d", dd, MONTHS[m - 1], y);
}

void gw_html_day(int32_t day, char out[GW_HTML_DATE_MAX]) {
  char iso[11];
  cp_date_format(day, iso);
  gw_html_date(iso, out);
}
