/* cli_role.c -- readiness for a Care Workforce Pathway role, as the CLI prints it (passport, verify). */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>

#include "cp_config.h"
#include "cp_dates.h"

roles_t *cli_roles_load(const char *cmd, const cat_catalogue_t *cat, const char *id, const role_t **role) {
  char err[CP_ERRLEN];
  roles_t *rs = NULL;
  *role = NULL;
  if (cat == NULL) {
    cli_error(cmd, "--role needs the qualification catalogue ($CAREPASS_CATALOGUE)");
    return NULL;
  }
  if (roles_load(cp_cfg_str(CP_OPT_ROLES), cat, &rs, err, sizeof err) != 0) {
    cli_error(cmd, "roles: %s", err);
    return NULL;
  }
  *role = roles_find(rs, id);
  if (*role == NULL) {
    cli_error(cmd, "no role \"%.48s\" in %s; roles:", id, cp_cfg_str(CP_OPT_ROLES));
    for (size_t i = 0; i < roles_count(rs); i++)
      fprintf(stderr, "  %-24s %s\n", roles_at(rs, i)->id, roles_at(rs, i)->title);
    roles_destroy(&rs);
  }
  return rs;
}

void cli_role_print(FILE *out, const cat_catalogue_t *cat, const role_t *role, const role_record_t *recs, size_t n,
                    int32_t day, int32_t started, role_answer_t *a) {
  role_readiness(role, recs, n, day, started, a);
  char d[11], u[11];
  cp_date_format(day, d);
  fprintf(out, "\nReadiness for %s (%s) on %s: ", role->title, role->id, d);
  if (a->verdict == ROLE_READY) {
    fprintf(out, "READY (nothing it needs expires)\n");
  } else if (a->verdict == ROLE_READY_UNTIL) {
    cp_date_format(a->until, u);
    fprintf(out, "READY UNTIL %s\n", u);
  } else {
    fprintf(out, "NOT READY\n");
  }
  for (size_t k = 0; k < a->nreq; k++) {
    const role_req_result_t *r = &a->req[k];
    const cat_qual_t *q = r->by != NULL ? cat_find(cat, r->by->code) : NULL;
    fprintf(out, "  %-8s %s", role_req_state_name(r->state), role->req[k].why);
    if (r->by != NULL && r->state == ROLE_REQ_MET) {
      fprintf(out, ": entry %" PRIu64 " (%s)", r->by->index, q != NULL ? q->title : r->by->code);
      if (r->by->valid_until != ROLE_NEVER) {
        cp_date_format(r->by->valid_until, u);
        fprintf(out, ", valid until %s%s", u, r->expiring ? " -- expires within 90 days" : "");
      }
    } else if (r->by != NULL) {
      cp_date_format(r->by->valid_until, u);
      fprintf(out, ": entry %" PRIu64 " (%s) expired after %s", r->by->index, q != NULL ? q->title : r->by->code, u);
    } else if (r->state == ROLE_REQ_PENDING) {
      cp_date_format(started + role->grace_days, u);
      fprintf(out, ": not yet, allowed for a new starter until %s", u);
    }
    fprintf(out, "\n");
  }
  fprintf(out, "Basis: %s\n", role->source);
}
