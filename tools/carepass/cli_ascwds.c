/* cli_ascwds.c -- `carepass verify FILE ... --asc-wds OUT`: a verified passport's training as an
 * ASC-WDS training bulk-upload file (common/cp_ascwds.h), for the employer to upload instead of
 * retyping certificates. */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_ascwds.h"
#include "cp_config.h"
#include "cp_dates.h"

/* Why a record is not a line of the file (NULL: it is one). */
static const char *left_out(const ascwds_map_t *m, const cat_catalogue_t *cat, const role_record_t *rec) {
  const cat_qual_t *q = cat_find(cat, rec->code);
  /* revoked at all, not only by `day`: a withdrawn record goes into no employer's files */
  if (rec->revoked_from != ROLE_NEVER) return "revoked";
  if (q == NULL) return "not in this catalogue";
  if (strcmp(q->kind, "cpd") != 0 && strcmp(q->kind, "refresher") != 0)
    return "a qualification, not training: ASC-WDS records it with the worker's qualifications";
  if (ascwds_category(m, rec->code) == 0)
    return "no ASC-WDS training category checked against ASC-WDS's own list (data/asc-wds-categories.json): "
           "enter it by hand";
  return NULL;
}

int cli_ascwds_write(const char *out, const char *estid, const char *workerid, const cat_catalogue_t *cat,
                     const role_record_t *recs, size_t n, const char *origin) {
  char err[CP_ERRLEN];
  if (cat == NULL) {
    cli_error("verify", "--asc-wds needs the qualification catalogue ($CAREPASS_CATALOGUE)");
    return CLI_EXIT_USAGE;
  }
  ascwds_map_t *m = NULL;
  if (ascwds_load(cp_cfg_str(CP_OPT_ASCWDS_CATEGORIES), cat, &m, err, sizeof err) != 0) {
    cli_error("verify", "%s", err);
    return CLI_EXIT_USAGE;
  }
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (f == NULL) abort();
  fputs(ASCWDS_HEADER, f);
  size_t lines = 0, skipped = 0;
  int rc = CLI_EXIT_OK;
  for (size_t i = 0; i < n && rc == CLI_EXIT_OK; i++) {
    const role_record_t *rec = &recs[i];
    const char *why = left_out(m, cat, rec);
    if (why != NULL) {
      fprintf(stderr, "carepass verify: entry %" PRIu64 " (%s) is not in the ASC-WDS file: %s\n", rec->index,
              rec->code, why);
      skipped++;
      continue;
    }
    char notes[256], line[ASCWDS_LINE_MAX];
    snprintf(notes, sizeof notes, "carepass register %s, entry %" PRIu64 " (check: carepass verify)", origin,
             rec->index);
    ascwds_line_t l = {
        .estid = estid,
        .workerid = workerid,
        .category = ascwds_category(m, rec->code),
        .description = cat_find(cat, rec->code)->title,
        .completed = rec->completed,
        .expires = rec->valid_until == ROLE_NEVER ? ASCWDS_NO_EXPIRY : rec->valid_until,
        /* on the register only if the provider was approved for it on that day (verify) */
        .accredited = ASCWDS_ACCREDITED_YES,
        .notes = notes,
    };
    if (ascwds_format(&l, line, sizeof line, err, sizeof err) < 0) {
      cli_error("verify", "entry %" PRIu64 ": %s", rec->index, err);
      rc = CLI_EXIT_USAGE;
      break;
    }
    fputs(line, f);
    lines++;
  }
  fclose(f);
  if (rc == CLI_EXIT_OK) {
    rc = cli_write_output("verify", out, text, len) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    if (rc == CLI_EXIT_OK)
      fprintf(stderr, "carepass verify: ASC-WDS training file: %zu line(s), %zu record(s) left out, written to %s\n",
              lines, skipped, out);
  }
  free(text);
  ascwds_destroy(&m);
  return rc;
}
