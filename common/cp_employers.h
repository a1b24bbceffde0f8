/* cp_employers.h -- the employer registry (data/employers.json, CAREPASS_EMPLOYERS), loaded
 * read-only at start by the gateway and the CLI, strictly like the provider registry.
 *
 * employers.json:
 *   {"version": 1, "employers": [
 *     {"id": "EMP-0001", "name": "...", "cqc_location_id": "1-123456789" (optional),
 *      "ascwds_workplace_id": "G1001376" (optional), "webhook_url": "https://..." (optional)}]}
 *   id: 1..EMP_ID_MAX-1 characters of [A-Za-z0-9._-], unique; what an employer token (cpe_...)
 *       names and what the employer's subscriptions and failed-check counter are keyed by.
 *   cqc_location_id: the CQC location id in its published form, "1-" and 1..EMP_CQC_DIGITS_MAX digits.
 *   ascwds_workplace_id: the ASC-WDS workplace id, 1..EMP_ASCWDS_MAX-1 of [A-Z0-9].
 *   webhook_url: judged by common/url_check.c (as a provider's), "" or absent = none.
 * A file that does not load names the file, the entry and the field; the services refuse to start.
 */
#ifndef CP_EMPLOYERS_H
#define CP_EMPLOYERS_H

#include "cp_util.h"

#define EMP_ID_MAX 32          /* employer id length limit (incl. NUL) */
#define EMP_NAME_MAX 201       /* organisation name: at most 200 bytes, as a self-declared label (incl. NUL) */
#define EMP_CQC_MAX 24         /* CQC location id text (incl. NUL) */
#define EMP_CQC_DIGITS_MAX 15  /* most digits after "1-" */
#define EMP_ASCWDS_MAX 21      /* ASC-WDS workplace id (incl. NUL) */
#define EMP_URL_MAX 512        /* webhook URL (incl. NUL) */
#define EMP_MAX 100000         /* most employers in one registry */

/* One registered employer (care home, home-care agency). */
typedef struct {
  char id[EMP_ID_MAX];                    // employer id, e.g. "EMP-0001"
  char name[EMP_NAME_MAX];                // registered organisation name (printable, non-empty)
  char cqc_location_id[EMP_CQC_MAX];      // "1-<digits>", "" = not given
  char ascwds_workplace_id[EMP_ASCWDS_MAX]; // ASC-WDS workplace id, "" = not given
  char webhook_url[EMP_URL_MAX];          // the employer's webhook endpoint, "" = none
} emp_t;

typedef struct emp_registry emp_registry_t;

/* Load and check the registry at path: 0 with *out, or -1 with err "PATH: employers[i] (id "X"):
 * field "F" ..." (nothing in *out). */
int emp_load(const char *path, emp_registry_t **out, char *err, size_t errlen) CP_WUR;
void emp_destroy(emp_registry_t **reg);
/* The employer with this id, or NULL. */
const emp_t *emp_find(const emp_registry_t *reg, const char *id);
size_t emp_count(const emp_registry_t *reg);
const emp_t *emp_at(const emp_registry_t *reg, size_t i);

#endif
