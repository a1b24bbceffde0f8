/* gw_check_routes.h -- the employer check routes (gw_check.c). */
#ifndef GW_CHECK_ROUTES_H
#define GW_CHECK_ROUTES_H

#include "gw.h"

void gw_check_post(gw_req_t *req);
void gw_check_bundle_post(gw_req_t *req);
void gw_check_form_get(gw_req_t *req);   /* gw_check_form.c */
void gw_check_form_post(gw_req_t *req);  /* gw_check_form.c */
void gw_check_own_get(gw_req_t *req);    /* the worker's own passport */
void gw_staff_get(gw_req_t *req);        /* an employer's staff with ongoing access */
void gw_staff_ascwds_post(gw_req_t *req); /* ... their training as ASC-WDS's bulk-upload file */

#define GW_CHECK_ROUTES \
  {"POST", "/v1/check", GW_EXACT, GW_AUTH_EMPLOYER_OPT, 4096, gw_check_post, "check"}, \
  {"POST", "/v1/check/bundle", GW_EXACT, GW_AUTH_EMPLOYER_OPT, 4096, gw_check_bundle_post, "check_bundle"}, \
  {"GET", "/", GW_EXACT, GW_AUTH_NONE, 0, gw_check_form_get, "page"}, \
  {"POST", "/check", GW_EXACT, GW_AUTH_NONE, GW_FORM_BODY_MAX, gw_check_form_post, "check_form"}, \
  {"GET", "/v1/passport", GW_EXACT, GW_AUTH_WORKER, 0, gw_check_own_get, "passport"}, \
  {"GET", "/v1/staff", GW_EXACT, GW_AUTH_EMPLOYER, 0, gw_staff_get, "staff"}, \
  {"POST", "/v1/staff/asc-wds-training.csv", GW_EXACT, GW_AUTH_EMPLOYER, 262144, gw_staff_ascwds_post, "staff_ascwds"},

/* The form's body (application/x-www-form-urlencoded): five short fields; a browser sends well
 * under 1 KB even for a 200-byte organisation name in another script (each byte as %XX). */
#define GW_FORM_BODY_MAX 2048

#endif
