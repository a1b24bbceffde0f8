/* roles.c -- the Care Workforce Pathway roles and readiness (see cp_roles.h). */
#include "cp_roles.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_dates.h"
#include "cp_json.h"

struct roles {
  role_t *r;
  size_t n;
};

static bool id_valid(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n >= ROLE_ID_MAX) return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-')) return false;
  return true;
}

/* A string field into out (at most max-1 bytes, required unless optional). */
static int str_field(const json_t *o, const char *name, bool required, char *out, size_t max, const char *where,
                     char *err, size_t errlen) {
  const json_t *v = json_object_get(o, name);
  if (v == NULL && !required) {
    out[0] = '\0';
    return 0;
  }
  if (!json_is_string(v) || json_string_length(v) == 0)
    return cp_err(err, errlen, "%s: field \"%s\" must be a non-empty string", where, name);
  if (json_string_length(v) >= max)
    return cp_err(err, errlen, "%s: field \"%s\" is longer than %zu bytes", where, name, max - 1);
  snprintf(out, max, "%s", json_string_value(v));
  return 0;
}

static int req_parse(const json_t *o, const cat_catalogue_t *cat, role_req_t *q, const char *where, char *err,
                     size_t errlen) {
  static const char *const known[] = {"any_of", "grace", "why"};
  if (cp_json_check_fields(o, known, CP_ARRAY_LEN(known), where, err, errlen) != 0) return -1;
  const json_t *a = json_object_get(o, "any_of");
  if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > ROLE_ALT_MAX)
    return cp_err(err, errlen, "%s: field \"any_of\" must be an array of 1 to %d codes", where, ROLE_ALT_MAX);
  size_t i;
  const json_t *v;
  json_array_foreach(a, i, v) {
    const char *code = json_string_value(v);
    if (code == NULL || cat_find(cat, code) == NULL)
      return cp_err(err, errlen, "%s: field \"any_of\"[%zu] is not a code of the catalogue", where, i);
    for (size_t j = 0; j < q->ncodes; j++)
      if (strcmp(q->codes[j], code) == 0)
        return cp_err(err, errlen, "%s: field \"any_of\" lists \"%s\" twice", where, code);
    snprintf(q->codes[q->ncodes++], CAT_CODE_MAX, "%s", code);
  }
  const json_t *g = json_object_get(o, "grace");
  if (g != NULL && !json_is_boolean(g)) return cp_err(err, errlen, "%s: field \"grace\" must be true or false", where);
  q->grace = g != NULL && json_is_true(g);
  return str_field(o, "why", true, q->why, sizeof q->why, where, err, errlen);
}

static int role_parse(const json_t *o, const cat_catalogue_t *cat, role_t *r, const char *where, char *err,
                      size_t errlen) {
  static const char *const known[] = {"id", "title", "source", "grace_days", "requires"};
  if (cp_json_check_fields(o, known, CP_ARRAY_LEN(known), where, err, errlen) != 0) return -1;
  if (str_field(o, "id", true, r->id, sizeof r->id, where, err, errlen) != 0) return -1;
  if (!id_valid(r->id)) return cp_err(err, errlen, "%s: field \"id\" may only hold a-z, 0-9 and -", where);
  char w[160];
  snprintf(w, sizeof w, "%s (role \"%s\")", where, r->id);
  if (str_field(o, "title", true, r->title, sizeof r->title, w, err, errlen) != 0 ||
      str_field(o, "source", true, r->source, sizeof r->source, w, err, errlen) != 0)
    return -1;
  const json_t *g = json_object_get(o, "grace_days");
  if (g != NULL && (!json_is_integer(g) || json_integer_value(g) < 0 || json_integer_value(g) > ROLE_GRACE_MAX))
    return cp_err(err, errlen, "%s: field \"grace_days\" must be a whole number of days, 0 to %d", w, ROLE_GRACE_MAX);
  r->grace_days = g != NULL ? (int)json_integer_value(g) : 0;
  const json_t *a = json_object_get(o, "requires");
  if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > ROLE_REQ_MAX)
    return cp_err(err, errlen, "%s: field \"requires\" must be an array of 1 to %d requirements", w, ROLE_REQ_MAX);
  size_t i;
  const json_t *v;
  json_array_foreach(a, i, v) {
    char wq[200];
    snprintf(wq, sizeof wq, "%s requires[%zu]", w, i);
    role_req_t *q = &r->req[r->nreq++];
    if (req_parse(v, cat, q, wq, err, errlen) != 0) return -1;
    if (q->grace && r->grace_days == 0)
      return cp_err(err, errlen, "%s: \"grace\": true needs the role's \"grace_days\"", wq);
  }
  return 0;
}

int roles_load(const char *path, const cat_catalogue_t *cat, roles_t **out, char *err, size_t errlen) {
  *out = NULL;
  json_t *arr;
  json_t *root = cp_json_load_list(path, "roles", true, &arr, err, errlen);
  if (root == NULL) return -1;
  static const char *const top[] = {"version", "source", "roles"};
  char sub[CP_ERRLEN];
  roles_t *rs = cp_xcalloc(1, sizeof *rs);
  if (cp_json_check_fields(root, top, CP_ARRAY_LEN(top), "the file", sub, sizeof sub) != 0) {
    cp_err(err, errlen, "%s: %s", path, sub);
    goto err;
  }
  if (json_array_size(arr) > ROLES_MAX) {
    cp_err(err, errlen, "%s: more than %d roles", path, ROLES_MAX);
    goto err;
  }
  rs->r = cp_xcalloc(json_array_size(arr), sizeof *rs->r);
  for (size_t i = 0; i < json_array_size(arr); i++) {
    char where[48];
    snprintf(where, sizeof where, "roles[%zu]", i);
    if (role_parse(json_array_get(arr, i), cat, &rs->r[i], where, sub, sizeof sub) != 0) {
      cp_err(err, errlen, "%s: %s", path, sub);
      goto err;
    }
    rs->n = i + 1;
    for (size_t j = 0; j < i; j++)
      if (strcmp(rs->r[j].id, rs->r[i].id) == 0) {
        cp_err(err, errlen, "%s: %s: duplicate role id \"%s\"", path, where, rs->r[i].id);
        goto err;
      }
  }
  json_decref(root);
  *out = rs;
  return 0;
err:
  json_decref(root);
  roles_destroy(&rs);
  return -1;
}

void roles_destroy(roles_t **rp) {
  if (rp == NULL || *rp == NULL) return;
  free((*rp)->r);
  free(*rp);
  *rp = NULL;
}

const role_t *roles_find(const roles_t *r, const char *id) {
  for (size_t i = 0; id != NULL && i < r->n; i++)
    if (strcmp(r->r[i].id, id) == 0) return &r->r[i];
  return NULL;
}

size_t roles_count(const roles_t *r) { return r->n; }
const role_t *roles_at(const roles_t *r, size_t i) { return i < r->n ? &r->r[i] : NULL; }

bool role_record_of(const Carepass__V1__PassportEntry *pe, const Carepass__V1__PassportEntry *revocation,
                    uint64_t index, role_record_t *out) {
  int32_t c, v = ROLE_NEVER;
  if (pe == NULL || (pe->entry_type != CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_RECORD &&
                     pe->entry_type != CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_DERIVED_AWARD) ||
      pe->completion_date == NULL || cp_date_parse(pe->completion_date, &c) != 0 ||
      (pe->valid_until != NULL && pe->valid_until[0] != '\0' && cp_date_parse(pe->valid_until, &v) != 0))
    return false;
  int32_t rfrom = ROLE_NEVER;
  if (revocation != NULL) rfrom = (int32_t)((revocation->issued_at < 0 ? 0 : revocation->issued_at) / 86400);
  *out = (role_record_t){pe->qualification_code, c, v, rfrom, index};
  return true;
}

static bool code_in(const role_req_t *q, const char *code) {
  for (size_t i = 0; code != NULL && i < q->ncodes; i++)
    if (strcmp(q->codes[i], code) == 0) return true;
  return false;
}

void role_readiness(const role_t *role, const role_record_t *recs, size_t n, int32_t day, int32_t started,
                    role_answer_t *out) {
  memset(out, 0, sizeof *out);
  out->nreq = role->nreq;
  bool in_grace = started >= 0 && role->grace_days > 0 && started <= day &&
                  (int64_t)day <= (int64_t)started + role->grace_days;
  int32_t until = ROLE_NEVER;
  bool ready = true;
  for (size_t k = 0; k < role->nreq; k++) {
    const role_req_t *q = &role->req[k];
    role_req_result_t *res = &out->req[k];
    const role_record_t *best = NULL, *lapsed = NULL;
    for (size_t i = 0; i < n; i++) {
      const role_record_t *r = &recs[i];
      if (!code_in(q, r->code) || r->completed > day || day >= r->revoked_from) continue;
      if (day <= r->valid_until) {
        if (best == NULL || r->valid_until > best->valid_until) best = r;
      } else if (lapsed == NULL || r->valid_until > lapsed->valid_until) {
        lapsed = r;
      }
    }
    if (best != NULL) {
      res->state = ROLE_REQ_MET;
      res->by = best;
      res->expiring = best->valid_until != ROLE_NEVER && (int64_t)best->valid_until < (int64_t)day + ROLE_EXPIRING_DAYS;
      if (best->valid_until < until) until = best->valid_until;
    } else if (q->grace && in_grace) {
      res->state = ROLE_REQ_PENDING;
      int32_t end = started + role->grace_days;
      if (end < until) until = end;
    } else {
      res->state = lapsed != NULL ? ROLE_REQ_EXPIRED : ROLE_REQ_MISSING;
      res->by = lapsed;
      ready = false;
    }
  }
  out->verdict = !ready ? ROLE_NOT_READY : until == ROLE_NEVER ? ROLE_READY : ROLE_READY_UNTIL;
  out->until = ready ? until : 0;
}

const char *role_verdict_name(role_verdict_t v) {
  switch (v) {
    case ROLE_READY: return "ready";
    case ROLE_READY_UNTIL: return "ready until";
    case ROLE_NOT_READY: return "not ready";
  }
  return "unknown";
}

const char *role_req_state_name(role_req_state_t s) {
  switch (s) {
    case ROLE_REQ_MET: return "met";
    case ROLE_REQ_PENDING: return "pending";
    case ROLE_REQ_EXPIRED: return "expired";
    case ROLE_REQ_MISSING: return "missing";
  }
  return "unknown";
}
