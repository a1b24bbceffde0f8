/* cp_catalogue.h -- the qualification catalogue (data/catalogue.json) and the
 * provider registry (data/providers.json), loaded read-only at start.
 *
 * catalogue.json:
 *   {"version": 1, "qualifications": [
 *     {"code": "CC-STD-01", "title": "...", "kind": "care_certificate_standard",
 *      "assessed": true, "refresh_months": 0, "derived": false},
 *     {"code": "CC", "title": "The Care Certificate", "kind": "award",
 *      "derived": true, "requires": ["CC-STD-01", ... 16 codes]}, ...]}
 *   kind: care_certificate_standard | award | certificate | diploma | cpd | refresher
 *   refresh_months: 0 = does not expire; 12 = annual refresher; 36 = three-yearly.
 *   derived: true = issued only by carepass when every code in "requires" is verified.
 *
 * providers.json:
 *   {"version": 1, "providers": [
 *     {"id": "PRV-0001", "name": "...", "curve_public_key": "<Z85 40 chars or empty>",
 *      "webhook_url": "http://... or empty",
 *      "approvals": [{"code": "CC-STD-*", "from": "2015-04-01", "to": ""}, ...]}]}
 *   approvals: code may end in '*' (prefix match); "to" empty = open-ended;
 *   from/to inclusive.
 */
#ifndef CP_CATALOGUE_H
#define CP_CATALOGUE_H

#include "cp_util.h"

#define CAT_CODE_MAX 32       /* qualification code length limit (incl. NUL) */
#define CAT_TITLE_MAX 160
#define PROV_ID_MAX 32        /* provider id length limit (incl. NUL) */
#define PROV_NAME_MAX 160
#define PROV_URL_MAX 512

/* One qualification in the catalogue. */
typedef struct {
  char code[CAT_CODE_MAX];    // stable code, e.g. "CC-STD-01", "RF-MH" (moving and handling)
  char title[CAT_TITLE_MAX];  // human title
  char kind[32];              // care_certificate_standard, award, certificate, diploma, cpd, refresher
  bool assessed;              // an assessor id is required
  int refresh_months;         // validity in months; 0 = does not expire
  bool derived;               // issued by carepass itself, never submitted
  char **requires;            // derived: codes that must all be verified (NULL if none)
  size_t nrequires;           // number of codes in requires
} cat_qual_t;

typedef struct cat_catalogue cat_catalogue_t;

int cat_load(const char *path, cat_catalogue_t **out, char *err, size_t errlen) CP_WUR;
void cat_destroy(cat_catalogue_t **cat);
const cat_qual_t *cat_find(const cat_catalogue_t *cat, const char *code);
size_t cat_count(const cat_catalogue_t *cat);
const cat_qual_t *cat_at(const cat_catalogue_t *cat, size_t i);
/* Derived awards that list `code` among their requirements (for the derived-award rule). */
size_t cat_awards_requiring(const cat_catalogue_t *cat, const char *code,
                            const cat_qual_t **out, size_t max);

/* One approval of a provider for a qualification code pattern over a date range. */
typedef struct {
  char code[CAT_CODE_MAX];    // exact code, or a prefix ending in '*'
  int32_t from;               // first day approved (day number)
  int32_t to;                 // last day approved; INT32_MAX = open-ended
} prov_approval_t;

/* One training provider / awarding body. */
typedef struct {
  char id[PROV_ID_MAX];       // provider id, e.g. "PRV-0001"
  char name[PROV_NAME_MAX];   // organisation name
  char curve_key[41];         // CurveZMQ public key (Z85), "" = cannot use ZeroMQ intake
  char webhook_url[PROV_URL_MAX]; // where notify delivers this provider's webhooks ("" = none)
  prov_approval_t *approvals; // approvals
  size_t napprovals;          // number of approvals
} prov_t;

typedef struct prov_registry prov_registry_t;

int prov_load(const char *path, prov_registry_t **out, char *err, size_t errlen) CP_WUR;
void prov_destroy(prov_registry_t **reg);
const prov_t *prov_find(const prov_registry_t *reg, const char *id);
const prov_t *prov_find_by_key(const prov_registry_t *reg, const char *curve_key_z85);
size_t prov_count(const prov_registry_t *reg);
const prov_t *prov_at(const prov_registry_t *reg, size_t i);
/* Is provider p approved for `code` on day `date`? */
bool prov_approved(const prov_t *p, const char *code, int32_t date);

#endif
