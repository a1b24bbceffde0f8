/* gw_check_page.c -- the employer's check page rendered on the server: the form (GOV.UK-style
 * fields, errors linked to their fields) and the result, which answers first (the verdict for the
 * role), then the Care Certificate as one row with its standards folded inside, then what needs
 * attention (expired, expiring within ROLE_EXPIRING_DAYS, revoked), then qualifications, refreshers
 * and CPD, one summary-list row per record with "How we checked this" folded under it. Every value
 * from outside (what was typed, the register, the catalogue, the registries) is escaped by
 * gw_html_text; dates are written one way, d Month yyyy (gw_html_date). */
#include "gw_check_page.h"
#include "gw_html.h"
#include "gw_http.h"
#include "gw_page.h"

#include <ctype.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cp_dates.h"
#include "cp_log.h"

#define PAGE_TITLE "Check a care worker&#39;s skills passport - carepass"

gw_check_form_t *gw_check_form_new(void) { return cp_xcalloc(1, sizeof(gw_check_form_t)); }

void gw_check_form_destroy(gw_check_form_t **fp) {
  if (fp == NULL || *fp == NULL) return;
  sodium_memzero(*fp, sizeof **fp);
  free(*fp);
  *fp = NULL;
}

void gw_check_form_error(gw_check_form_t *f, gw_form_field_t field, const char *fmt, ...) {
  if (f->nerr >= GW_FORM_ERR_MAX) return;
  gw_form_err_t *e = &f->err[f->nerr++];
  e->field = field;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
}

/* ---- the form ---------------------------------------------------------------------------- */

/* The first error about field (NULL = none). */
static const gw_form_err_t *field_error(const gw_check_form_t *f, gw_form_field_t field) {
  for (size_t i = 0; f != NULL && i < f->nerr; i++)
    if (f->err[i].field == field) return &f->err[i];
  return NULL;
}

/* The id an error summary link goes to. */
static const char *field_anchor(const gw_check_form_t *f, gw_form_field_t field) {
  switch (field) {
  case GW_FF_CODE: return "share-code";
  case GW_FF_DOB:
    if (f != NULL && !f->bad_day && f->bad_month) return "dob-month";
    if (f != NULL && !f->bad_day && !f->bad_month && f->bad_year) return "dob-year";
    return "dob-day";
  case GW_FF_ROLE: return "role";
  case GW_FF_EMPLOYER: return "employer";
  case GW_FF_NONE: break;
  }
  return NULL;
}

static void error_summary(gw_jw_t *w, const gw_check_form_t *f) {
  gw_jw_raw(w, "<div class=\"error-summary\" id=\"error-summary\" role=\"alert\" tabindex=\"-1\" "
               "aria-labelledby=\"error-summary-title\">\n<h2 class=\"error-summary-title\" "
               "id=\"error-summary-title\">There is a problem</h2>\n<ul class=\"error-summary-list\">\n");
  for (size_t i = 0; i < f->nerr; i++) {
    const char *a = field_anchor(f, f->err[i].field);
    if (a != NULL) {
      gw_html_fmt(w, "<li><a href=\"#%s\">", a);
      gw_html_text(w, f->err[i].msg);
      gw_jw_raw(w, "</a></li>\n");
    } else {
      gw_jw_raw(w, "<li>");
      gw_html_text(w, f->err[i].msg);
      gw_jw_raw(w, "</li>\n");
    }
  }
  gw_jw_raw(w, "</ul>\n</div>\n");
}

/* The inline message of a field (id "<base>-error"), if it has one. */
static void inline_error(gw_jw_t *w, const gw_form_err_t *e, const char *base) {
  if (e == NULL) return;
  gw_html_fmt(w, "<p class=\"error-message\" id=\"%s-error\"><span class=\"visually-hidden\">Error:</span> ", base);
  gw_html_text(w, e->msg);
  gw_jw_raw(w, "</p>\n");
}

/* A text input. describedby: the hint's id (the error's is added when there is one). */
static void text_input(gw_jw_t *w, const char *id, const char *name, const char *cls, const char *value,
                       const char *extra, const char *describedby, bool invalid) {
  gw_html_fmt(w, "<input class=\"input %s%s\" id=\"%s\" name=\"%s\" type=\"text\" %s value=\"", cls,
              invalid ? " input-error" : "", id, name, extra);
  gw_html_text(w, value);
  gw_jw_raw(w, "\"");
  if (describedby != NULL && describedby[0]) gw_html_fmt(w, " aria-describedby=\"%s\"", describedby);
  if (invalid) gw_jw_raw(w, " aria-invalid=\"true\"");
  gw_jw_raw(w, ">\n");
}

/* The form itself (values as typed, errors at their fields). */
static void form_html(gw_jw_t *w, const gw_t *gw, const gw_check_form_t *f) {
  static const gw_check_form_t empty;
  const gw_check_form_t *v = f != NULL ? f : &empty;
  const gw_form_err_t *ecode = field_error(f, GW_FF_CODE), *edob = field_error(f, GW_FF_DOB);
  const gw_form_err_t *erole = field_error(f, GW_FF_ROLE), *eemp = field_error(f, GW_FF_EMPLOYER);
  gw_jw_raw(w, "<form method=\"post\" action=\"/check\" id=\"check-form\" class=\"no-print\" novalidate>\n");

  gw_html_fmt(w, "<div class=\"form-group%s\" id=\"code-group\">\n", ecode ? " form-group-error" : "");
  gw_jw_raw(w, "<label class=\"label\" for=\"share-code\">Share code</label>\n"
               "<div class=\"hint\" id=\"share-code-hint\">9 letters and numbers, for example ABC-DEF-GHJ</div>\n");
  inline_error(w, ecode, "share-code");
  text_input(w, "share-code", "share_code", "input-code", v->code,
             "spellcheck=\"false\" autocomplete=\"off\" autocapitalize=\"characters\" maxlength=\"20\"",
             ecode ? "share-code-hint share-code-error" : "share-code-hint", ecode != NULL);
  gw_jw_raw(w, "</div>\n");

  gw_html_fmt(w, "<div class=\"form-group%s\" id=\"dob-group\">\n", edob ? " form-group-error" : "");
  gw_html_fmt(w, "<fieldset class=\"fieldset\" role=\"group\" aria-describedby=\"%s\">\n",
              edob ? "dob-hint dob-error" : "dob-hint");
  gw_jw_raw(w, "<legend class=\"label\">Date of birth</legend>\n"
               "<div class=\"hint\" id=\"dob-hint\">For example, 27 3 1985</div>\n");
  inline_error(w, edob, "dob");
  gw_jw_raw(w, "<div class=\"date-input\">\n<div class=\"date-item\"><label class=\"date-label\" for=\"dob-day\">Day</label>\n");
  text_input(w, "dob-day", "dob_day", "input-2", v->day, "inputmode=\"numeric\" maxlength=\"2\" autocomplete=\"off\"",
             NULL, edob != NULL && v->bad_day);
  gw_jw_raw(w, "</div>\n<div class=\"date-item\"><label class=\"date-label\" for=\"dob-month\">Month</label>\n");
  text_input(w, "dob-month", "dob_month", "input-2", v->month,
             "inputmode=\"numeric\" maxlength=\"2\" autocomplete=\"off\"", NULL, edob != NULL && v->bad_month);
  gw_jw_raw(w, "</div>\n<div class=\"date-item\"><label class=\"date-label\" for=\"dob-year\">Year</label>\n");
  text_input(w, "dob-year", "dob_year", "input-4", v->year, "inputmode=\"numeric\" maxlength=\"4\" autocomplete=\"off\"",
             NULL, edob != NULL && v->bad_year);
  gw_jw_raw(w, "</div>\n</div>\n</fieldset>\n</div>\n");

  gw_html_fmt(w, "<div class=\"form-group%s\" id=\"role-group\">\n", erole ? " form-group-error" : "");
  gw_jw_raw(w, "<label class=\"label\" for=\"role\">Role they would work in</label>\n"
               "<div class=\"hint\" id=\"role-hint\">We tell you first whether their records are enough for this role "
               "of the Care Workforce Pathway</div>\n");
  inline_error(w, erole, "role");
  gw_html_fmt(w, "<select class=\"select%s\" id=\"role\" name=\"role\" aria-describedby=\"%s\"%s>\n",
              erole ? " input-error" : "", erole ? "role-hint role-error" : "role-hint",
              erole ? " aria-invalid=\"true\"" : "");
  gw_html_fmt(w, "<option value=\"\"%s>No particular role</option>\n", v->role[0] ? "" : " selected");
  for (size_t i = 0; gw->roles != NULL && i < roles_count(gw->roles); i++) {
    const role_t *r = roles_at(gw->roles, i);
    gw_jw_raw(w, "<option value=\"");
    gw_html_text(w, r->id);
    gw_jw_raw(w, strcmp(v->role, r->id) == 0 ? "\" selected>" : "\">");
    gw_html_text(w, r->title);
    gw_jw_raw(w, "</option>\n");
  }
  gw_jw_raw(w, "</select>\n</div>\n");

  gw_html_fmt(w, "<div class=\"form-group%s\" id=\"employer-group\">\n", eemp ? " form-group-error" : "");
  gw_jw_raw(w, "<label class=\"label\" for=\"employer\">Your organisation (optional)</label>\n"
               "<div class=\"hint\" id=\"employer-hint\">The care worker sees this name in the list of who viewed their "
               "passport</div>\n");
  inline_error(w, eemp, "employer");
  text_input(w, "employer", "employer", "input-wide", v->employer, "maxlength=\"200\" autocomplete=\"organization\"",
             eemp ? "employer-hint employer-error" : "employer-hint", eemp != NULL);
  gw_jw_raw(w, "</div>\n<button class=\"button\" id=\"check-button\" type=\"submit\">Check passport</button>\n</form>\n");
}

void gw_check_page_form(gw_req_t *req, int status, const gw_check_form_t *f) {
  gw_jw_t w;
  gw_jw_init(&w, 8192);
  bool errors = f != NULL && f->nerr > 0;
  if (errors) error_summary(&w, f);
  gw_jw_raw(&w, "<h1>Check a care worker&#39;s skills passport</h1>\n"
                "<p class=\"lead\">Ask the care worker for a <strong>share code</strong> and their <strong>date of "
                "birth</strong>. You will see first whether they are ready for the role you choose, then their "
                "training records and how each one was checked.</p>\n");
  form_html(&w, req->gw, f);
  gw_page_reply(req, status, errors ? "Error: " PAGE_TITLE : PAGE_TITLE, &w);
  gw_jw_free(&w);
}

/* Upper-case the first letter and end with a full stop: the API's sentences, on a page. */
static void sentence(const char *in, char *out, size_t cap) {
  snprintf(out, cap, "%s", in);
  size_t n = strlen(out);
  if (n == 0) return;
  out[0] = (char)toupper((unsigned char)out[0]);
  if (out[n - 1] != '.' && n + 1 < cap) out[n] = '.', out[n + 1] = '\0';
}

void gw_check_page_error(gw_req_t *req, int status, const char *code, const char *message, void *arg) {
  gw_check_form_t *f = arg;
  gw_form_field_t field = GW_FF_NONE;
  if (strcmp(code, "SHARE_CODE_NOT_FOUND") == 0) field = GW_FF_CODE;
  else if (strcmp(code, GW_E_RATE_LIMITED) == 0) field = strstr(message, "share code") ? GW_FF_CODE : GW_FF_NONE;
  else if (strncmp(code, "LABEL_", 6) == 0 || strstr(message, "employer") != NULL) field = GW_FF_EMPLOYER;
  else if (strstr(message, "share_code") != NULL) field = GW_FF_CODE;
  else if (strstr(message, "date_of_birth") != NULL) field = GW_FF_DOB;
  else if (strstr(message, "role") != NULL) field = GW_FF_ROLE;
  char msg[GW_FORM_MSG_MAX];
  if (status >= 500)
    snprintf(msg, sizeof msg, "The passport could not be checked just now. Try again in a minute.");
  else
    sentence(message, msg, sizeof msg);
  /* the API counts the wait in seconds (Retry-After has them too); people read minutes */
  char *wait = strstr(msg, "try again in ");
  long long secs = 0;
  if (strcmp(code, GW_E_RATE_LIMITED) == 0 && wait != NULL && sscanf(wait, "try again in %lld seconds", &secs) == 1 &&
      secs > 0) {
    long long mins = (secs + 59) / 60;
    snprintf(wait, sizeof msg - (size_t)(wait - msg), "try again in %lld %s.", mins, mins == 1 ? "minute" : "minutes");
  }
  if (f == NULL) {
    gw_check_form_t none;
    memset(&none, 0, sizeof none);
    gw_check_form_error(&none, field, "%s", msg);
    gw_check_page_form(req, status, &none);
    return;
  }
  if (field == GW_FF_DOB) f->bad_day = f->bad_month = f->bad_year = true;
  gw_check_form_error(f, field, "%s", msg);
  gw_check_page_form(req, status, f);
}

/* ---- the result -------------------------------------------------------------------------- */

/* A revocation's reason as a sentence (the API gives the code and a phrase). */
static const char *reason_sentence(const char *code) {
  static const struct { const char *code, *text; } t[] = {
    {"ISSUED_IN_ERROR", "it was issued in error."},
    {"FRAUD", "it was found to be fraudulent."},
    {"PROVIDER_DEACCREDITED", "the training provider lost its accreditation."},
    {"ASSESSMENT_INVALID", "the assessment was found to be invalid."},
    {"DUPLICATE", "it was a duplicate record."},
    {"WORKER_REQUEST", "it was withdrawn at the care worker's request."},
    {"OTHER", "it was revoked for another reason."},
    {"REQUIREMENT_REVOKED", "a record it was awarded for was revoked."},
  };
  for (size_t i = 0; code != NULL && i < CP_ARRAY_LEN(t); i++)
    if (strcmp(code, t[i].code) == 0) return t[i].text;
  return "the reason is not one carepass knows.";
}

/* The day after an ISO date, long form ("Expired on": valid_until is the last valid day). */
static void day_after(const char *iso, char out[GW_HTML_DATE_MAX]) {
  int32_t d;
  if (cp_date_parse(iso, &d) != 0) {
    gw_html_date(iso, out);
    return;
  }
  gw_html_day(d + 1, out);
}

/* The status tag of a record (sentence case). */
static void status_tag(gw_jw_t *w, const gw_mrec_t *r) {
  const char *cls = "tag-other", *text = "Invalid dates";
  switch (r->status) {
  case REG_STATUS_VALID:
    cls = r->expiring ? "tag-soon" : "tag-valid";
    text = r->expiring ? "Expires soon" : "Valid";
    break;
  case REG_STATUS_EXPIRED: cls = "tag-expired", text = "Expired"; break;
  case REG_STATUS_REVOKED: cls = "tag-revoked", text = "Revoked"; break;
  case REG_STATUS_NOT_YET: cls = "tag-other", text = "Not valid yet"; break;
  default: break;
  }
  if (!r->authentic) cls = "tag-revoked", text = "Not verified";
  gw_html_fmt(w, "<strong class=\"tag %s\">%s</strong>", cls, text);
}

/* The one line that says where the record stands: valid until, expired on, revoked on. */
static void status_line(gw_jw_t *w, const gw_mrec_t *r) {
  char d[GW_HTML_DATE_MAX];
  gw_jw_raw(w, "<p class=\"record-line\">");
  if (!r->authentic) {
    gw_jw_raw(w, "We could not show that this record is genuine: do not rely on it (");
    gw_html_text(w, r->problem);
    gw_jw_raw(w, ").");
  } else if (r->status == REG_STATUS_REVOKED) {
    gw_html_date(r->rev_date, d);
    gw_html_fmt(w, "Revoked on %s: ", d);
    gw_html_text(w, reason_sentence(r->rev_code));
    gw_jw_raw(w, " Do not rely on it.");
  } else if (r->status == REG_STATUS_EXPIRED) {
    day_after(r->valid_until, d);
    gw_html_fmt(w, "Expired on %s", d);
  } else if (r->status == REG_STATUS_NOT_YET) {
    gw_html_date(r->completion_date, d);
    gw_html_fmt(w, "Not valid yet: completed on %s", d);
  } else if (r->status == REG_STATUS_VALID && r->valid_until[0]) {
    gw_html_date(r->valid_until, d);
    gw_html_fmt(w, "%s %s", r->expiring ? "Expires soon: valid until" : "Valid until", d);
  } else if (r->status == REG_STATUS_VALID) {
    gw_jw_raw(w, "Does not expire");
  } else {
    gw_jw_raw(w, "Its dates are malformed: do not rely on it.");
  }
  gw_jw_raw(w, "</p>\n");
}

static const char *check_word(const char *c) {
  return strcmp(c, "passed") == 0 ? "yes" : strcmp(c, "failed") == 0 ? "no" : "not established";
}

/* "How we checked this": the four checks in plain words, and where the record is. */
static void how_checked(gw_jw_t *w, const gw_check_model_t *m, const gw_mrec_t *r) {
  char d[GW_HTML_DATE_MAX];
  gw_jw_raw(w, "<details class=\"details\">\n<summary class=\"details-summary\">How we checked this</summary>\n"
               "<div class=\"details-text\">\n<ul class=\"checks\">\n");
  gw_html_fmt(w, "<li>Signed with the register&#39;s key: %s</li>\n", check_word(r->c_sig));
  gw_html_fmt(w, "<li>Included in the register&#39;s signed checkpoint of %llu entries: %s</li>\n",
              (unsigned long long)m->cp_size, check_word(r->c_incl));
  if (r->rev_code != NULL) {
    gw_html_date(r->rev_date, d);
    gw_html_fmt(w, "<li>Revoked: yes, on %s (register entry %llu)</li>\n", d, (unsigned long long)r->rev_index);
  } else {
    gw_html_fmt(w, "<li>Revoked: %s</li>\n", strcmp(r->c_rev, "passed") == 0 ? "no" : "yes");
  }
  gw_html_fmt(w, "<li>Within its dates today: %s</li>\n", check_word(r->c_exp));
  gw_jw_raw(w, "</ul>\n<p class=\"record-meta\">Register entry <span class=\"code\">");
  gw_html_fmt(w, "%llu", (unsigned long long)r->index);
  gw_jw_raw(w, "</span>, qualification code <span class=\"code\">");
  gw_html_text(w, r->code);
  gw_jw_raw(w, "</span>, provider <span class=\"code\">");
  gw_html_text(w, r->provider_id);
  gw_jw_raw(w, "</span>.</p>\n</div>\n</details>\n");
}

/* data-status of a row: the API's word, or "expiring". */
static const char *row_status(const gw_mrec_t *r) {
  if (r->status == REG_STATUS_VALID && r->expiring) return "expiring";
  return r->status_text;
}

/* The start of a record's summary-list row: its title, status tag and status line (the caller
 * writes the rest of the value and closes the row). */
static void row_head(gw_jw_t *w, const gw_mrec_t *r) {
  gw_html_fmt(w, "<div class=\"summary-row record\" id=\"record-%llu\" data-index=\"%llu\" data-status=\"",
              (unsigned long long)r->index, (unsigned long long)r->index);
  gw_html_text(w, row_status(r));
  gw_jw_raw(w, "\">\n<dt class=\"summary-key\">");
  gw_html_text(w, r->title);
  gw_jw_raw(w, "</dt>\n<dd class=\"summary-value\">");
  status_tag(w, r);
  gw_jw_raw(w, "\n");
  status_line(w, r);
}

/* One summary-list row for a record. */
static void record_row(gw_jw_t *w, const gw_check_model_t *m, const gw_mrec_t *r) {
  char d[GW_HTML_DATE_MAX];
  row_head(w, r);
  gw_html_date(r->completion_date, d);
  gw_html_fmt(w, "<p class=\"record-meta\">Completed on %s with ", d);
  gw_html_text(w, r->provider_name);
  gw_jw_raw(w, "</p>\n");
  how_checked(w, m, r);
  gw_jw_raw(w, "</dd>\n</div>\n");
}

static bool is_standard(const gw_mrec_t *r) { return strcmp(r->kind, "care_certificate_standard") == 0; }
static bool is_cc(const gw_mrec_t *r) { return strcmp(r->code, "CC") == 0; }
static bool needs_attention(const gw_mrec_t *r) {
  return !r->authentic || r->status != REG_STATUS_VALID || r->expiring;
}

/* The Care Certificate: one row (the award, or how many standards were shared), its standards
 * folded inside. */
static void care_certificate(gw_jw_t *w, const gw_check_model_t *m, const gw_t *gw) {
  const gw_mrec_t *award = NULL;
  size_t nstd = 0, nstd_valid = 0;
  for (size_t i = 0; i < m->nrec; i++) {
    if (is_cc(&m->rec[i]) && award == NULL) award = &m->rec[i];
    if (is_standard(&m->rec[i])) {
      nstd++;
      if (m->rec[i].status == REG_STATUS_VALID && m->rec[i].authentic) nstd_valid++;
    }
  }
  const cat_qual_t *cc = gw->catalogue != NULL ? cat_find(gw->catalogue, "CC") : NULL;
  size_t total = cc != NULL && cc->nrequires > 0 ? cc->nrequires : 16;
  char d[GW_HTML_DATE_MAX];
  gw_jw_raw(w, "<h2 id=\"care-certificate-title\">The Care Certificate</h2>\n<dl class=\"summary-list\" "
               "id=\"care-certificate\">\n");
  if (award != NULL) {
    row_head(w, award);
    gw_html_date(award->completion_date, d);
    gw_html_fmt(w, "<p class=\"record-meta\">Awarded on %s, when all %zu standards were verified</p>\n", d, total);
  } else {
    gw_jw_raw(w, "<div class=\"summary-row\" id=\"care-certificate-none\" data-status=\"none\">\n<dt "
                 "class=\"summary-key\">The Care Certificate</dt>\n<dd class=\"summary-value\">");
    if (nstd == 0)
      gw_jw_raw(w, "<strong class=\"tag tag-other\">Not shared</strong>\n<p class=\"record-line\">No Care "
                   "Certificate record or standard was shared with this code</p>\n");
    else
      gw_html_fmt(w, "<strong class=\"tag tag-other\">Not complete</strong>\n<p class=\"record-line\">%zu of %zu "
                     "standards shared and valid</p>\n", nstd_valid, total);
  }
  if (nstd > 0) {
    gw_html_fmt(w, "<details class=\"details\">\n<summary class=\"details-summary\">The %zu standards "
                   "(%zu shared)</summary>\n<div class=\"details-text\">\n<ul class=\"standards\">\n", total, nstd);
    for (size_t i = 0; i < m->nrec; i++) {
      const gw_mrec_t *r = &m->rec[i];
      if (!is_standard(r)) continue;
      gw_html_fmt(w, "<li class=\"record\" id=\"record-%llu\" data-index=\"%llu\" data-status=\"",
                  (unsigned long long)r->index, (unsigned long long)r->index);
      gw_html_text(w, row_status(r));
      gw_jw_raw(w, "\">");
      gw_html_text(w, r->title);
      gw_html_date(r->completion_date, d);
      gw_html_fmt(w, ": completed on %s ", d);
      status_tag(w, r);
      if (r->status == REG_STATUS_REVOKED && r->rev_code != NULL) {
        gw_html_date(r->rev_date, d);
        gw_html_fmt(w, " Revoked on %s: ", d);
        gw_html_text(w, reason_sentence(r->rev_code));
      }
      gw_jw_raw(w, "</li>\n");
    }
    gw_jw_raw(w, "</ul>\n</div>\n</details>\n");
  }
  if (award != NULL) how_checked(w, m, award);
  gw_jw_raw(w, "</dd>\n</div>\n</dl>\n");
}

/* A section of rows: the records that pass keep(). */
static void section(gw_jw_t *w, const gw_check_model_t *m, const char *id, const char *title,
                    bool (*keep)(const gw_mrec_t *)) {
  size_t n = 0;
  for (size_t i = 0; i < m->nrec; i++) n += keep(&m->rec[i]);
  if (n == 0) return;
  gw_html_fmt(w, "<h2 id=\"%s-title\">%s</h2>\n<dl class=\"summary-list\" id=\"%s\">\n", id, title, id);
  for (size_t i = 0; i < m->nrec; i++)
    if (keep(&m->rec[i])) record_row(w, m, &m->rec[i]);
  gw_jw_raw(w, "</dl>\n");
}

/* Each record appears once: what needs attention first, then by kind. */
static bool in_rest(const gw_mrec_t *r) { return !is_standard(r) && !is_cc(r); }
static bool sec_attention(const gw_mrec_t *r) { return in_rest(r) && needs_attention(r); }
static bool sec_quals(const gw_mrec_t *r) {
  return in_rest(r) && !needs_attention(r) && strcmp(r->kind, "refresher") != 0 && strcmp(r->kind, "cpd") != 0;
}
static bool sec_refreshers(const gw_mrec_t *r) {
  return in_rest(r) && !needs_attention(r) && strcmp(r->kind, "refresher") == 0;
}
static bool sec_cpd(const gw_mrec_t *r) { return in_rest(r) && !needs_attention(r) && strcmp(r->kind, "cpd") == 0; }

/* The record that met (or last lapsed for) a requirement, from the model. */
static const gw_mrec_t *rec_by_index(const gw_check_model_t *m, uint64_t index) {
  for (size_t i = 0; i < m->nrec; i++)
    if (m->rec[i].index == index) return &m->rec[i];
  return NULL;
}

/* The verdict: the page's <h1> and the panel under it. h1 is written into title (escaped). */
static void verdict(gw_jw_t *w, const gw_check_model_t *m, gw_jw_t *title) {
  char d[GW_HTML_DATE_MAX];
  if (m->role == NULL) {
    int attention = 0;
    for (size_t i = 0; i < m->nrec; i++) attention += !is_standard(&m->rec[i]) && needs_attention(&m->rec[i]);
    gw_html_fmt(title, "Passport checked: %zu %s", m->nrec, m->nrec == 1 ? "record" : "records");
    gw_jw_raw(w, "<h1 id=\"verdict\">");
    gw_jw_rawn(w, title->s, title->len);
    gw_jw_raw(w, "</h1>\n");
    gw_html_fmt(w, "<div class=\"panel %s\" id=\"verdict-panel\" data-verdict=\"none\">\n<p>%d valid, %d expired, "
                   "%d revoked. %d %s attention.</p>\n<p>No role was chosen: check again with a role to see whether "
                   "these records are enough for it.</p>\n</div>\n",
                attention ? "panel-warn" : "panel-ok", m->counts[0], m->counts[1], m->counts[2], attention,
                attention == 1 ? "record needs" : "records need");
    return;
  }
  const role_answer_t *a = &m->answer;
  const char *cls = a->verdict == ROLE_READY ? "panel-ok" : a->verdict == ROLE_READY_UNTIL ? "panel-warn" : "panel-bad";
  const char *vname = a->verdict == ROLE_READY ? "ready" : a->verdict == ROLE_READY_UNTIL ? "ready_until" : "not_ready";
  if (a->verdict == ROLE_READY) {
    gw_jw_raw(title, "Ready to start as ");
  } else if (a->verdict == ROLE_READY_UNTIL) {
    gw_html_day(a->until, d);
    gw_html_fmt(title, "Ready until %s as ", d);
  } else {
    gw_jw_raw(title, "Not ready to start as ");
  }
  gw_html_text(title, m->role->title);
  gw_jw_raw(w, "<h1 id=\"verdict\">");
  gw_jw_rawn(w, title->s, title->len);
  gw_jw_raw(w, "</h1>\n");
  gw_html_fmt(w, "<div class=\"panel %s\" id=\"verdict-panel\" data-verdict=\"%s\">\n", cls, vname);
  if (a->verdict == ROLE_READY)
    gw_jw_raw(w, "<p>Every requirement of the role is met by a genuine record that does not expire.</p>\n");
  else if (a->verdict == ROLE_READY_UNTIL)
    gw_jw_raw(w, "<p>Every requirement of the role is met today. The date is when the first of these records "
                 "runs out: they need to renew it before then.</p>\n");
  else
    gw_jw_raw(w, "<p>Some of what the role needs is missing or has expired:</p>\n");
  gw_jw_raw(w, "<ul class=\"requirements\">\n");
  for (size_t k = 0; k < a->nreq; k++) {
    const role_req_result_t *r = &a->req[k];
    const gw_mrec_t *by = r->by != NULL ? rec_by_index(m, r->by->index) : NULL;
    const char *state = r->state == ROLE_REQ_MET ? (r->expiring ? "expiring" : "met")
                        : r->state == ROLE_REQ_PENDING ? "pending" : r->state == ROLE_REQ_EXPIRED ? "expired"
                        : "missing";
    gw_html_fmt(w, "<li data-state=\"%s\">", state);
    switch (r->state) {
    case ROLE_REQ_MET:
      gw_jw_raw(w, r->expiring ? "<strong class=\"tag tag-soon\">Expires soon</strong> "
                               : "<strong class=\"tag tag-valid\">Met</strong> ");
      break;
    case ROLE_REQ_PENDING: gw_jw_raw(w, "<strong class=\"tag tag-other\">Pending</strong> "); break;
    case ROLE_REQ_EXPIRED: gw_jw_raw(w, "<strong class=\"tag tag-expired\">Expired</strong> "); break;
    case ROLE_REQ_MISSING: gw_jw_raw(w, "<strong class=\"tag tag-revoked\">Missing</strong> "); break;
    }
    char why[ROLE_WHY_MAX];
    sentence(m->role->req[k].why, why, sizeof why);
    size_t wl = strlen(why);
    if (wl > 0 && why[wl - 1] == '.') why[wl - 1] = '\0'; /* no full stop: more follows */
    gw_html_text(w, why);
    /* which record: named only when the requirement accepts more than one kind */
    bool name = by != NULL && m->role->req[k].ncodes > 1;
    if (r->state == ROLE_REQ_MET && by != NULL) {
      if (name) {
        gw_jw_raw(w, ": ");
        gw_html_text(w, by->title);
      }
      if (by->valid_until[0]) {
        gw_html_date(by->valid_until, d);
        gw_html_fmt(w, "%s valid until %s", name ? "," : ":", d);
      } else if (!name) {
        gw_jw_raw(w, ": does not expire");
      }
    } else if (r->state == ROLE_REQ_EXPIRED && by != NULL) {
      if (name) {
        gw_jw_raw(w, ": ");
        gw_html_text(w, by->title);
      }
      gw_jw_raw(w, name ? "," : ":");
      if (by->status == REG_STATUS_REVOKED && by->rev_code != NULL) {
        gw_html_date(by->rev_date, d);
        gw_html_fmt(w, " revoked on %s", d);
      } else {
        day_after(by->valid_until, d);
        gw_html_fmt(w, " expired on %s", d);
      }
    } else if (r->state == ROLE_REQ_MISSING) {
      gw_jw_raw(w, ": no record shared");
    } else if (r->state == ROLE_REQ_PENDING) {
      gw_jw_raw(w, ": not yet, within a new starter&#39;s grace period");
    }
    gw_jw_raw(w, "</li>\n");
  }
  gw_jw_raw(w, "</ul>\n<details class=\"details\">\n<summary class=\"details-summary\">Where this rule comes "
               "from</summary>\n<div class=\"details-text\"><p>");
  gw_html_text(w, m->role->source);
  gw_jw_raw(w, "</p></div>\n</details>\n</div>\n");
}

/* The host the page was asked for, if it is plain enough to show (else ""). */
static const char *host_of(gw_req_t *req) {
  const char *h = gw_header(req, MHD_HTTP_HEADER_HOST);
  if (h == NULL || strlen(h) > 255) return "";
  for (const char *p = h; *p; p++)
    if (!isalnum((unsigned char)*p) && strchr(".-:[]", *p) == NULL) return "";
  return h;
}

/* The passport bundle, for `carepass verify` offline: the same check again, posted (the code and
 * the date of birth travel in the body, as they came, never in a URL). */
static void bundle_form(gw_jw_t *w, const gw_check_form_t *f) {
  static const struct { const char *name; size_t off; } h[] = {
    {"share_code", offsetof(gw_check_form_t, code)}, {"dob_day", offsetof(gw_check_form_t, day)},
    {"dob_month", offsetof(gw_check_form_t, month)}, {"dob_year", offsetof(gw_check_form_t, year)},
    {"employer", offsetof(gw_check_form_t, employer)},
  };
  gw_jw_raw(w, "<h2 id=\"bundle-title\">Keep a copy you can check yourself</h2>\n<p>The passport bundle holds every "
               "record shown here with the register&#39;s proofs. Anyone can check it offline with <span "
               "class=\"code\">carepass verify FILE --vkey KEY</span>, using the register key published at <a "
               "href=\"/v1/vkey\">/v1/vkey</a>.</p>\n<form method=\"post\" action=\"/check\" id=\"bundle-form\">\n");
  for (size_t i = 0; i < CP_ARRAY_LEN(h); i++) {
    gw_html_fmt(w, "<input type=\"hidden\" name=\"%s\" value=\"", h[i].name);
    gw_html_text(w, (const char *)f + h[i].off);
    gw_jw_raw(w, "\">\n");
  }
  gw_jw_raw(w, "<input type=\"hidden\" name=\"action\" value=\"bundle\">\n<button class=\"button button-secondary\" "
               "id=\"download-button\" type=\"submit\">Download the passport bundle</button>\n</form>\n");
}

int gw_check_page_result(gw_req_t *req, const gw_check_model_t *m, const gw_check_form_t *f) {
  gw_jw_t w, title;
  gw_jw_init(&w, 16384 + 1536 * (m->nrec < 64 ? m->nrec : 64)); /* grows when needed */
  gw_jw_init(&title, 256);
  char d[GW_HTML_DATE_MAX];
  gw_jw_raw(&w, "<div id=\"result\">\n");
  verdict(&w, m, &title);
  if (m->partial)
    gw_html_fmt(&w, "<p class=\"inset\" id=\"partial\">The care worker shared %zu of their records with this code. "
                    "They may hold others that are not shown here.</p>\n", m->nrec);
  if (!m->authentic)
    gw_jw_raw(&w, "<p class=\"inset inset-bad\" id=\"not-authentic\">Some records could not be shown to be genuine. "
                  "Do not rely on them.</p>\n");
  care_certificate(&w, m, req->gw);
  section(&w, m, "attention", "Expired, expiring within 90 days or revoked", sec_attention);
  section(&w, m, "qualifications", "Qualifications", sec_quals);
  section(&w, m, "refreshers", "Refresher training", sec_refreshers);
  section(&w, m, "cpd", "Continuing professional development", sec_cpd);
  if (m->nrec == 0) gw_jw_raw(&w, "<p id=\"no-records\">The care worker shared no records with this code.</p>\n");

  gw_jw_raw(&w, "<h2 id=\"how-title\">How we checked this passport</h2>\n<p>");
  if (m->nrec == 0)
    gw_jw_raw(&w, "There was nothing to check.");
  else if (!m->authentic)
    gw_jw_raw(&w, "Some records could not be shown to be signed by the register and included in it.");
  else
    gw_jw_raw(&w, "Every record shown is signed with the register&#39;s key and included in its public, "
                  "append-only log. A revoked or expired record is shown as such: only a valid one counts.");
  gw_jw_raw(&w, "</p>\n");
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  gw_html_date(m->today, d);
  gw_html_fmt(&w, "<p class=\"checked-line\" id=\"checked-line\">Checked on %s at %02d:%02d UTC", d, tm.tm_hour,
              tm.tm_min);
  const char *host = host_of(req);
  if (host[0]) {
    gw_jw_raw(&w, " at ");
    gw_html_text(&w, host);
  }
  gw_jw_raw(&w, " against the carepass register <span class=\"code\">");
  gw_html_text(&w, m->origin);
  gw_html_fmt(&w, "</span> (signed checkpoint of %llu entries), share code <span class=\"code\">",
              (unsigned long long)m->cp_size);
  gw_html_text(&w, m->code_id);
  time_t ex = (time_t)m->code_expires;
  gmtime_r(&ex, &tm);
  char exiso[11];
  strftime(exiso, sizeof exiso, "%Y-%m-%d", &tm);
  gw_html_date(exiso, d);
  gw_html_fmt(&w, "</span>, which works until %s.</p>\n", d);
  gw_jw_raw(&w, "<div class=\"no-print actions\">\n<p>To keep a copy for the staff file, print this page or save it "
                "as a PDF from your browser&#39;s Print menu.</p>\n");
  if (f != NULL) bundle_form(&w, f);
  gw_jw_raw(&w, "<p><a class=\"button button-secondary\" href=\"/\" id=\"check-another\">Check another passport</a>"
                "</p>\n</div>\n</div>\n");
  gw_jw_raw(&title, " - Check result - carepass");
  int rc = 0;
  if (w.bad || title.bad) { /* a signed entry that is not UTF-8: the signer refuses those, so a bug */
    cp_log_error("check page: a record is not UTF-8 text", CP_KV_STR("code_id", m->code_id), CP_KV_END);
    gw_reply_error(req, 500, GW_E_INTERNAL, "the passport could not be shown; the operators have been told");
    rc = -1;
  } else {
    gw_page_reply(req, 200, title.s, &w);
  }
  gw_jw_free(&w);
  gw_jw_free(&title);
  return rc;
}
