/* gw_check.h -- what an event loop needs of the employer check (gw_check.c): the steps of a
 * batched check and the loop's cache of rendered records. The routes are in gw_check_routes.h. */
#ifndef GW_CHECK_H
#define GW_CHECK_H

#include "gw_check_batch.h"
#include "gw_check_page.h"

#include <jansson.h>

/* The steps of a POST /v1/check queued on a loop (gw_check_batch.h): done resumes the connection,
 * so the next MHD_run sends the reply. */
extern const gw_cjob_ops_t gw_check_jobs;

/* The employer's form (POST /check, gw_check_form.c): run the check of body (a POST /v1/check body
 * made from the form; taken over) through the same path as POST /v1/check, answering with pages:
 * the result, or the form again with the API's error (req->error_page). *form is taken over. */
void gw_check_submit_form(gw_req_t *req, json_t *body, gw_check_form_t **form);

/* A loop's cache of rendered records (see gw_check.c). */
typedef struct gw_rcache gw_rcache_t;
gw_rcache_t *gw_rcache_new(void);
void gw_rcache_destroy(gw_rcache_t **rc);
/* Make rc the calling thread's cache (NULL: none; checks on other threads cache nothing). */
void gw_rcache_bind(gw_rcache_t *rc);

#endif
