/* gw_html.h -- writing HTML text for the employer's pages (gw_html.c): every value from a request,
 * the register or the catalogue goes through gw_html_text, which escapes it. */
#ifndef GW_HTML_H
#define GW_HTML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cp_util.h"
#include "gw_check_json.h"

/* The page is written into a gw_jw_t (gw_check_json.h: an append-only buffer); gw_jw_raw adds
 * markup that is part of the page itself. */

/* s escaped for text and attribute values (& < > " ' become entities); s must be UTF-8, else
 * w->bad is set and the page must not be sent. */
void gw_html_text(gw_jw_t *w, const char *s);
/* Markup made with a format (only the page's own text and numbers, never a value from outside:
 * those go through gw_html_text). Cut at 1024 bytes. */
void gw_html_fmt(gw_jw_t *w, const char *fmt, ...) CP_PRINTF(2, 3);
/* "2026-03-12" -> "12 March 2026" (out: GW_HTML_DATE_MAX bytes); a malformed date is copied. */
#define GW_HTML_DATE_MAX 24
void gw_html_date(const char *iso, char out[GW_HTML_DATE_MAX]);
/* The same for a day number (cp_dates.h). */
void gw_html_day(int32_t day, char out[GW_HTML_DATE_MAX]);

#endif
