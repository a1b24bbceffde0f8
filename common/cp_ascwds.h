/* cp_ascwds.h -- carepass records as lines of ASC-WDS's training bulk-upload file.
 *
 * Every employer keeps its staff's training in Skills for Care's Adult Social Care Workforce Data
 * Set (ASC-WDS). Its training bulk upload is a CSV file with this header and these columns, in
 * this order (as ASC-WDS's own importer and exporter read and write them, in its source
 * github.com/NMDSdevopsServiceAdm/SopraSteria-SFC, backend models/BulkImport/csv training tests):
 *
 *   LOCALESTID       the employer's own id of the workplace (carepass: at most 50 characters)
 *   UNIQUEWORKERID   the employer's own id of the worker (at most 50 characters)
 *   CATEGORY         the bulk-upload code of an ASC-WDS training category
 *                    (data/asc-wds-categories.json maps carepass codes to them)
 *   DESCRIPTION      the training's name (carepass: the catalogue title, at most 120 characters)
 *   DATECOMPLETED    DD/MM/YYYY
 *   EXPIRYDATE       DD/MM/YYYY, or empty for training that does not expire
 *   ACCREDITED       1 yes, 0 no, 999 don't know, or empty
 *   NOTES            free text (carepass: at most 1000 characters): the register and index of
 *                    the record, so the line can be checked against the register
 *
 * Fields are written as RFC 4180 CSV (a field with a comma, quote or line break is quoted), lines
 * end with CRLF. The ids are the employer's and must be printable ASCII without commas or quotes,
 * so that no id ever needs quoting. Only training goes into this file: qualifications (the Care
 * Certificate, diplomas) belong to ASC-WDS's worker and qualification files, and a code with no
 * checked category mapping is not exported (the caller says which records were left out). */
#ifndef CP_ASCWDS_H
#define CP_ASCWDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cp_catalogue.h"
#include "cp_util.h"

#define ASCWDS_HEADER "LOCALESTID,UNIQUEWORKERID,CATEGORY,DESCRIPTION,DATECOMPLETED,EXPIRYDATE,ACCREDITED,NOTES\r\n"
#define ASCWDS_ID_MAX 50            /* LOCALESTID / UNIQUEWORKERID characters */
#define ASCWDS_DESCRIPTION_MAX 120  /* DESCRIPTION characters (longer titles are cut at a character) */
#define ASCWDS_NOTES_MAX 1000       /* NOTES characters */
#define ASCWDS_LINE_MAX 2600        /* room for one line, every field at its limit and quoted */
#define ASCWDS_MAP_MAX 256          /* most mappings in the file */
#define ASCWDS_NO_EXPIRY INT32_MAX  /* expires: the training does not expire */

/* ACCREDITED values. */
typedef enum {
  ASCWDS_ACCREDITED_UNSET = 0,   // empty
  ASCWDS_ACCREDITED_YES,         // 1
  ASCWDS_ACCREDITED_NO,          // 0
  ASCWDS_ACCREDITED_UNKNOWN,     // 999
} ascwds_accredited_t;

/* One training line. */
typedef struct {
  const char *estid;                // LOCALESTID (ascwds_id_ok)
  const char *workerid;             // UNIQUEWORKERID (ascwds_id_ok)
  int category;                     // CATEGORY code (ascwds_category)
  const char *description;          // DESCRIPTION (UTF-8; cut at ASCWDS_DESCRIPTION_MAX characters)
  int32_t completed;                // DATECOMPLETED, day number (cp_dates.h)
  int32_t expires;                  // EXPIRYDATE, day number; ASCWDS_NO_EXPIRY = empty
  ascwds_accredited_t accredited;   // ACCREDITED
  const char *notes;                // NOTES (UTF-8, at most ASCWDS_NOTES_MAX characters)
} ascwds_line_t;

typedef struct ascwds_map ascwds_map_t;

/* Load data/asc-wds-categories.json ({"version": 1, "source", "categories": [{"code", "asc_wds_id",
 * "budi", "name", "source"}]}), every code checked against the catalogue (a training kind: cpd or
 * refresher), each once; a bad file is refused naming the file, the entry and the field. */
int ascwds_load(const char *path, const cat_catalogue_t *cat, ascwds_map_t **out, char *err,
                size_t errlen) CP_WUR;
void ascwds_destroy(ascwds_map_t **m);

/* The CATEGORY code of carepass qualification `code`, or 0 when it has no mapping. */
int ascwds_category(const ascwds_map_t *m, const char *code);
/* The ASC-WDS category name of `code` (NULL when it has no mapping). */
const char *ascwds_category_name(const ascwds_map_t *m, const char *code);

/* Is s an id ASC-WDS takes as LOCALESTID / UNIQUEWORKERID: 1..ASCWDS_ID_MAX printable ASCII
 * characters, no comma, no double quote, not starting or ending with a space? */
bool ascwds_id_ok(const char *s);

/* Write line l (CRLF-terminated) into out. Returns its length, or -1 (with err) when a field
 * breaks a rule: a bad id, no category, a completion date after the expiry date, notes too long,
 * text that is not UTF-8. */
int ascwds_format(const ascwds_line_t *l, char *out, size_t outlen, char *err, size_t errlen) CP_WUR;

#endif
