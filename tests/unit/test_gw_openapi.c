/* test_gw_openapi.c -- the gateway's route table (services/gateway/gw_routes.c) and its OpenAPI 3.1
 * document (services/gateway/web/openapi.json, embedded and served at GET /v1/openapi.json) say the
 * same: every route is documented with its method, on the listeners that serve it and with the
 * credential it needs, and every documented operation is a route. A route added without its
 * description fails here; the integration tests check the responses themselves against the
 * document (tests/integration/api_contract.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <cmocka.h>
#include <jansson.h>

#include "gw.h"
#include "gw_dispatch.h"
#include "gw_openapi_routes.h"

static json_t *doc;   // the embedded document, parsed once

static int setup(void **state) {
  (void)state;
  const gw_asset_t *a = gw_openapi_asset();
  if (a == NULL) return -1;
  json_error_t e;
  doc = json_loadb((const char *)a->data, a->len, JSON_REJECT_DUPLICATES, &e);
  if (doc == NULL) fprintf(stderr, "openapi.json line %d: %s\n", e.line, e.text);
  return doc == NULL ? -1 : 0;
}

static int teardown(void **state) {
  (void)state;
  json_decref(doc);
  return 0;
}

static void lower(const char *in, char *out, size_t outlen) {
  size_t i = 0;
  for (; in[i] && i + 1 < outlen; i++) out[i] = (char)(in[i] >= 'A' && in[i] <= 'Z' ? in[i] + 32 : in[i]);
  out[i] = '\0';
}

/* Does doc path `p` belong to route r: the same path (exact), or the prefix and a template after it? */
static bool path_of_route(const gw_route_t *r, const char *p) {
  if (r->match == GW_EXACT) return strcmp(p, r->path) == 0;
  size_t n = strlen(r->path);
  return strncmp(p, r->path, n) == 0 && p[n] == '{';
}

/* The operation of route r in the document (NULL when it has none), and its path. */
static json_t *op_of_route(const gw_route_t *r, const char **path_out) {
  char m[16];
  lower(r->method, m, sizeof m);
  const char *p;
  json_t *item;
  json_object_foreach(json_object_get(doc, "paths"), p, item) {
    json_t *op = json_object_get(item, m);
    if (op != NULL && path_of_route(r, p)) {
      *path_out = p;
      return op;
    }
  }
  return NULL;
}

static bool listed_in(json_t *op, const char *listener) {
  json_t *l = json_object_get(op, "x-carepass-listeners");
  if (l == NULL) return strcmp(listener, "api") == 0;   /* the document's default */
  size_t i;
  json_t *v;
  json_array_foreach(l, i, v) if (json_is_string(v) && strcmp(json_string_value(v), listener) == 0) return true;
  return false;
}

static bool needs_scheme(json_t *op, const char *scheme) {
  size_t i;
  json_t *req;
  json_array_foreach(json_object_get(op, "security"), i, req) if (json_object_get(req, scheme) != NULL) return true;
  return false;
}

/* Whether the operation's credential is optional: its security lists the empty requirement {}. */
static bool security_optional(json_t *op) {
  size_t i;
  json_t *req;
  json_array_foreach(json_object_get(op, "security"), i, req) if (json_is_object(req) && json_object_size(req) == 0) return true;
  return false;
}

/* Every route is in the document, with its listeners and credential. */
static void test_every_route_documented(void **state) {
  (void)state;
  int missing = 0;
  for (size_t i = 0; i < gw_routes_len; i++) {
    const gw_route_t *r = &gw_routes[i];
    const char *path = NULL;
    json_t *op = op_of_route(r, &path);
    if (op == NULL) {
      fprintf(stderr, "route %s %s%s (%s) is not in openapi.json\n", r->method, r->path,
              r->match == GW_PREFIX ? "{...}" : "", r->name);
      missing++;
      continue;
    }
    assert_true(json_is_string(json_object_get(op, "operationId")));
    assert_true(json_object_size(json_object_get(op, "responses")) > 0);
    if (gw_route_listed(r, false) != listed_in(op, "api") || gw_route_listed(r, true) != listed_in(op, "operator")) {
      fprintf(stderr, "route %s %s: x-carepass-listeners of %s disagree with gw_route_listed\n", r->method, r->path,
              path);
      missing++;
    }
    bool prov = needs_scheme(op, "providerToken"), work = needs_scheme(op, "workerToken");
    bool emp = needs_scheme(op, "employerToken"), opt = security_optional(op);
    bool emp_route = r->auth == GW_AUTH_EMPLOYER || r->auth == GW_AUTH_EMPLOYER_OPT;
    if (prov != (r->auth == GW_AUTH_PROVIDER) || work != (r->auth == GW_AUTH_WORKER) || emp != emp_route ||
        (emp_route && opt != (r->auth == GW_AUTH_EMPLOYER_OPT))) {
      fprintf(stderr, "route %s %s: the security of %s disagrees with the route's credential\n", r->method, r->path,
              path);
      missing++;
    }
  }
  assert_int_equal(missing, 0);
}

/* Every documented operation is a route (nothing described that the gateway does not serve). */
static void test_every_operation_is_a_route(void **state) {
  (void)state;
  static const char *const methods[] = {"get", "put", "post", "delete", "patch", "options", "head", "trace"};
  int phantom = 0;
  const char *p;
  json_t *item;
  json_object_foreach(json_object_get(doc, "paths"), p, item) {
    for (size_t k = 0; k < sizeof methods / sizeof methods[0]; k++) {
      if (json_object_get(item, methods[k]) == NULL) continue;
      bool found = false;
      for (size_t i = 0; i < gw_routes_len && !found; i++) {
        char m[16];
        lower(gw_routes[i].method, m, sizeof m);
        found = strcmp(m, methods[k]) == 0 && path_of_route(&gw_routes[i], p);
      }
      if (!found) {
        fprintf(stderr, "openapi.json describes %s %s, which no route serves\n", methods[k], p);
        phantom++;
      }
    }
  }
  assert_int_equal(phantom, 0);
}

/* The document is what GET /v1/openapi.json serves: OpenAPI 3.1 with the error format. */
static void test_document_shape(void **state) {
  (void)state;
  assert_string_equal(json_string_value(json_object_get(doc, "openapi")), "3.1.0");
  json_t *err = json_object_get(json_object_get(json_object_get(doc, "components"), "schemas"), "Error");
  assert_non_null(err);
  assert_non_null(json_object_get(json_object_get(err, "properties"), "error"));
  assert_non_null(json_object_get(json_object_get(json_object_get(doc, "components"), "securitySchemes"),
                                  "providerToken"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_route_documented),
      cmocka_unit_test(test_every_operation_is_a_route),
      cmocka_unit_test(test_document_shape),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
