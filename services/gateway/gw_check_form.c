/* gw_check_form.c -- the employer's check without JavaScript: GET / (the form) and POST /check
 * (application/x-www-form-urlencoded, at most GW_FORM_BODY_MAX bytes: share_code, dob_day,
 * dob_month, dob_year, role, employer, each length-limited; other names are ignored). The fields
 * are checked here first, the GOV.UK way (every problem at once, each tied to its field); a form
 * that passes becomes the body of a POST /v1/check and goes through the same check as the API
 * (gw_check_submit_form): the same rate limits, warnings and errors, answered as pages.
 *
 * Nothing personal is put in a URL: the form posts its body, and GET / never echoes a query (a
 * share_code or date of birth in one, from an old copy of the page or a hand-made link, gets a
 * 303 to the bare "/", so it leaves the address bar). Nothing from the form is logged. */
#include "gw_check.h"
#include "gw_check_page.h"
#include "gw_check_routes.h"
#include "gw_http.h"
#include "gw_share.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cp_dates.h"

#define FORM_TYPE "application/x-www-form-urlencoded"
#define FORM_NAME_MAX 16   /* longest field name read */

/* What a form without method="post" (an old copy of the page) would have put in the query. */
static const char *const QUERY_FIELDS[] = {"share_code", "dob_day", "dob_month", "dob_year", "date_of_birth"};

void gw_check_form_get(gw_req_t *req) {
  for (size_t i = 0; i < CP_ARRAY_LEN(QUERY_FIELDS); i++)
    if (gw_query(req, QUERY_FIELDS[i]) != NULL) { /* never read or echoed: out of the address bar */
      static const char moved[] = "<!DOCTYPE html><title>carepass</title><a href=\"/\">Check a passport</a>\n";
      gw_reply_bytes(req, 303, "text/html; charset=utf-8", moved, sizeof moved - 1);
      gw_reply_header(req, MHD_HTTP_HEADER_LOCATION, "/");
      gw_reply_header(req, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
      gw_reply_header(req, "Referrer-Policy", "no-referrer");
      return;
    }
  gw_check_page_form(req, 200, NULL);
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Decode s[0..n) ('+' is a space, %XX a byte) into out (cap bytes with the NUL). 0; 1 too long
 * for out; -1 malformed (a bad escape or a NUL). */
static int form_decode(const char *s, size_t n, char *out, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '+') c = ' ';
    else if (c == '%') {
      if (i + 2 >= n) return -1;
      int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
      if (h < 0 || l < 0) return -1;
      c = (char)(h * 16 + l);
      i += 2;
    }
    if (c == '\0') return -1;
    if (o + 1 >= cap) return 1;
    out[o++] = c;
  }
  out[o] = '\0';
  return 0;
}

/* Leading and trailing blanks dropped, in place. */
static void trim(char *s) {
  size_t n = strlen(s), a = 0;
  while (a < n && isspace((unsigned char)s[a])) a++;
  while (n > a && isspace((unsigned char)s[n - 1])) n--;
  memmove(s, s + a, n - a);
  s[n - a] = '\0';
}

/* One field of the form: its name, where its value goes and how long it may be. */
typedef struct {
  const char *name;     // the input's name
  char *dst;            // the form's buffer
  size_t cap;           // its size (with the NUL)
  gw_form_field_t field; // for an error: which field
  const char *label;    // for an error: what people call it
  bool seen;            // given once already
} form_slot_t;

/* Read the body into f; a field too long or malformed is an error of that field. 0, or -1 when
 * the body cannot be read as a form at all (the error is in f, with no field). */
static int form_read(const char *body, size_t len, gw_check_form_t *f, bool *bundle) {
  char action[16] = "";
  form_slot_t slots[] = {
    {"share_code", f->code, sizeof f->code, GW_FF_CODE, "The share code", false},
    {"dob_day", f->day, sizeof f->day, GW_FF_DOB, "The day of the date of birth", false},
    {"dob_month", f->month, sizeof f->month, GW_FF_DOB, "The month of the date of birth", false},
    {"dob_year", f->year, sizeof f->year, GW_FF_DOB, "The year of the date of birth", false},
    {"role", f->role, sizeof f->role, GW_FF_ROLE, "The role", false},
    {"employer", f->employer, sizeof f->employer, GW_FF_EMPLOYER, "Your organisation's name", false},
    {"action", action, sizeof action, GW_FF_NONE, "The action", false},
  };
  size_t i = 0;
  while (i < len) {
    size_t end = i;
    while (end < len && body[end] != '&') end++;
    size_t eq = i;
    while (eq < end && body[eq] != '=') eq++;
    char name[FORM_NAME_MAX + 1];
    int nrc = form_decode(body + i, eq - i, name, sizeof name);
    if (nrc == -1) {
      gw_check_form_error(f, GW_FF_NONE, "The form could not be read. Fill it in again.");
      return -1;
    }
    for (size_t k = 0; nrc == 0 && k < CP_ARRAY_LEN(slots); k++) {
      form_slot_t *s = &slots[k];
      if (strcmp(name, s->name) != 0) continue;
      if (s->seen) {
        gw_check_form_error(f, GW_FF_NONE, "The form was sent with a field twice. Fill it in again.");
        return -1;
      }
      s->seen = true;
      const char *v = eq < end ? body + eq + 1 : body + end;
      int vrc = form_decode(v, (size_t)(body + end - v), s->dst, s->cap);
      /* shown back on the page: plain UTF-8 text only (the employer's label says more, below) */
      if (vrc == 0 && s->field != GW_FF_EMPLOYER && gw_label_check(s->dst, strlen(s->dst), s->cap) != CP_OK) vrc = -1;
      if (vrc != 0) {
        s->dst[0] = '\0'; /* never shown back half-read */
        gw_check_form_error(f, s->field, "%s is %s", s->label,
                            vrc == 1 ? "too long" : "not text that can be read");
      }
      break;
    }
    i = end + 1;
  }
  *bundle = strcmp(action, "bundle") == 0;
  return 0;
}

/* Are s's characters all digits, and is there at least one? */
static bool digits(const char *s) {
  if (*s == '\0') return false;
  for (; *s; s++)
    if (*s < '0' || *s > '9') return false;
  return true;
}

/* The date of birth as YYYY-MM-DD in iso, or an error in f. */
static void check_dob(gw_check_form_t *f, char iso[16]) {
  iso[0] = '\0';
  trim(f->day), trim(f->month), trim(f->year);
  bool d = f->day[0] != '\0', m = f->month[0] != '\0', y = f->year[0] != '\0';
  for (size_t i = 0; i < f->nerr; i++)
    if (f->err[i].field == GW_FF_DOB) { /* a part could not be read: said already */
      f->bad_day = f->bad_month = f->bad_year = true;
      return;
    }
  if (!d && !m && !y) {
    f->bad_day = f->bad_month = f->bad_year = true;
    gw_check_form_error(f, GW_FF_DOB, "Enter their date of birth");
    return;
  }
  if (!d || !m || !y) {
    f->bad_day = !d, f->bad_month = !m, f->bad_year = !y;
    gw_check_form_error(f, GW_FF_DOB, "Date of birth must include a %s%s%s%s%s", !d ? "day" : "",
                        !d && (!m || !y) ? (!m && !y ? ", " : " and ") : "", !m ? "month" : "",
                        !m && !y ? " and " : "", !y ? "year" : "");
    return;
  }
  f->bad_day = !digits(f->day) || strlen(f->day) > 2;
  f->bad_month = !digits(f->month) || strlen(f->month) > 2;
  f->bad_year = !digits(f->year) || strlen(f->year) != 4;
  if (f->bad_day || f->bad_month || f->bad_year) {
    gw_check_form_error(f, GW_FF_DOB, f->bad_year && !f->bad_day && !f->bad_month
                                          ? "Year must include 4 numbers"
                                          : "Date of birth must be a real date");
    return;
  }
  snprintf(iso, 16, "%s-%02d-%02d", f->year, atoi(f->month), atoi(f->day));
  int32_t day;
  if (cp_date_parse(iso, &day) != 0) {
    f->bad_day = f->bad_month = f->bad_year = true;
    gw_check_form_error(f, GW_FF_DOB, "Date of birth must be a real date");
    iso[0] = '\0';
    return;
  }
  if (day > cp_today()) {
    f->bad_day = f->bad_month = f->bad_year = true;
    gw_check_form_error(f, GW_FF_DOB, "Date of birth must be in the past");
    iso[0] = '\0';
  }
}

/* The request's type is a form (parameters such as a charset allowed)? */
static bool is_form(gw_req_t *req) {
  const char *ct = gw_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
  size_t n = strlen(FORM_TYPE);
  return ct != NULL && strncasecmp(ct, FORM_TYPE, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

void gw_check_form_post(gw_req_t *req) {
  gw_check_form_t *f = gw_check_form_new();
  bool bundle = false;
  if (!is_form(req)) {
    gw_check_form_error(f, GW_FF_NONE, "The form could not be read. Fill it in again.");
    gw_check_page_form(req, 415, f);
    goto out;
  }
  if (form_read(req->body != NULL ? req->body : "", req->body_len, f, &bundle) != 0) {
    /* a form that cannot be read is not shown back */
    f->code[0] = f->day[0] = f->month[0] = f->year[0] = f->role[0] = f->employer[0] = '\0';
    gw_check_page_form(req, 400, f);
    goto out;
  }
  /* the fields, in the order of the page */
  char code[GW_SC_LEN + 1], iso[16];
  trim(f->code);
  bool code_read = true;
  for (size_t i = 0; i < f->nerr; i++) code_read = code_read && f->err[i].field != GW_FF_CODE;
  if (code_read && f->code[0] == '\0')
    gw_check_form_error(f, GW_FF_CODE, "Enter the share code");
  else if (code_read && gw_sc_normalise(f->code, code) != 0)
    gw_check_form_error(f, GW_FF_CODE, "Enter the share code as the care worker gave it: 9 letters and numbers, "
                                       "like ABC-DEF-GHJ");
  sodium_memzero(code, sizeof code);
  check_dob(f, iso);
  if (f->role[0] != '\0' && (req->gw->roles == NULL || roles_find(req->gw->roles, f->role) == NULL)) {
    f->role[0] = '\0';
    gw_check_form_error(f, GW_FF_ROLE, "Select a role from the list, or no particular role");
  }
  trim(f->employer);
  cp_reason_t lr = gw_label_check(f->employer, strlen(f->employer), GW_FORM_EMPLOYER_MAX);
  if (lr == CP_R_LABEL_TOO_LONG)
    gw_check_form_error(f, GW_FF_EMPLOYER, "Your organisation's name must be %d characters or fewer",
                        GW_FORM_EMPLOYER_MAX);
  else if (lr != CP_OK)
    gw_check_form_error(f, GW_FF_EMPLOYER, "Your organisation's name must be plain text, without control or "
                                           "invisible characters");
  if (lr != CP_OK) f->employer[0] = '\0'; /* not shown back */
  /* the errors in the order of the fields on the page */
  for (size_t i = 1; i < f->nerr; i++)
    for (size_t k = i; k > 0 && f->err[k - 1].field > f->err[k].field && f->err[k].field != GW_FF_NONE; k--) {
      gw_form_err_t t = f->err[k];
      f->err[k] = f->err[k - 1];
      f->err[k - 1] = t;
    }
  if (f->nerr > 0) {
    gw_check_page_form(req, 400, f);
    sodium_memzero(iso, sizeof iso);
    goto out;
  }
  json_t *body = json_pack("{s:s,s:s}", "share_code", f->code, "date_of_birth", iso);
  sodium_memzero(iso, sizeof iso);
  if (body != NULL && f->employer[0]) json_object_set_new(body, "employer", json_string(f->employer));
  if (body != NULL && f->role[0]) json_object_set_new(body, "role", json_string(f->role));
  if (body != NULL && bundle) json_object_set_new(body, "format", json_string("bundle"));
  if (body == NULL) {
    gw_check_form_error(f, GW_FF_NONE, "The passport could not be checked just now. Try again in a minute.");
    gw_check_page_form(req, 500, f);
    goto out;
  }
  gw_check_submit_form(req, body, &f); /* takes body and f */
out:
  gw_check_form_destroy(&f);
}
