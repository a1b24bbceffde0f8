/* gw_check_page.h -- the employer's check page, rendered on the server (gw_check_page.c): the form
 * (GET /, and again with its errors the GOV.UK way) and the result of a check (POST /check). */
#ifndef GW_CHECK_PAGE_H
#define GW_CHECK_PAGE_H

#include "gw.h"
#include "gw_check_model.h"

#define GW_FORM_CODE_MAX 32        /* share code as typed (9 symbols, with spaces or hyphens) */
#define GW_FORM_DAY_MAX 4          /* day / month as typed (2 digits; a little room for blanks) */
#define GW_FORM_YEAR_MAX 8         /* year as typed (4 digits) */
#define GW_FORM_EMPLOYER_MAX 200   /* the employer's name for itself (the API's label limit) */
#define GW_FORM_ERR_MAX 6          /* errors shown at once */
#define GW_FORM_MSG_MAX 512        /* one error message */

/* Which field an error is about (its id in the page). */
typedef enum {
  GW_FF_NONE = 0,    // the whole check (no field: a 503, a lock from the address)
  GW_FF_CODE,        // #share-code
  GW_FF_DOB,         // the date of birth (#dob-day, or the part named by dob_part)
  GW_FF_ROLE,        // #role
  GW_FF_EMPLOYER,    // #employer
} gw_form_field_t;

/* One error: a field and a sentence. */
typedef struct {
  gw_form_field_t field;         // which field
  char msg[GW_FORM_MSG_MAX];     // what to do about it (no personal data)
} gw_form_err_t;

/* The form as the employer filled it in, and what is wrong with it. */
typedef struct {
  char code[GW_FORM_CODE_MAX + 1];         // share code as typed
  char day[GW_FORM_DAY_MAX + 1];           // date of birth: day as typed
  char month[GW_FORM_DAY_MAX + 1];         // ... month
  char year[GW_FORM_YEAR_MAX + 1];         // ... year
  char role[ROLE_ID_MAX];                  // a role id of data/roles.json, "" = no particular role
  char employer[GW_FORM_EMPLOYER_MAX + 1]; // the employer's name for itself (optional)
  bool bad_day, bad_month, bad_year;       // which date parts to mark invalid
  gw_form_err_t err[GW_FORM_ERR_MAX];      // the errors, in the order of the fields
  size_t nerr;                             // how many
} gw_check_form_t;

gw_check_form_t *gw_check_form_new(void);
/* Wipes it (it holds a share code and a date of birth), frees it, sets *f to NULL; NULL-safe. */
void gw_check_form_destroy(gw_check_form_t **f);
/* Add an error (the first GW_FORM_ERR_MAX are kept). */
void gw_check_form_error(gw_check_form_t *f, gw_form_field_t field, const char *fmt, ...) CP_PRINTF(3, 4);

/* The form page (f NULL = empty): status 200 for an empty form, else the status of the error;
 * with errors, the summary at the top, a message at each field, and "Error: " in the title. */
void gw_check_page_form(gw_req_t *req, int status, const gw_check_form_t *f);
/* gw_error_page_fn for a form check (arg: its gw_check_form_t): the API's error, on the form. */
void gw_check_page_error(gw_req_t *req, int status, const char *code, const char *message, void *arg);
/* The result page. 0 replied with the page; -1 a 500 was replied (a value was not UTF-8). */
int gw_check_page_result(gw_req_t *req, const gw_check_model_t *m, const gw_check_form_t *f) CP_WUR;

#endif
