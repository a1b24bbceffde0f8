/* gw_openapi.c -- GET /v1/openapi.json: the OpenAPI 3.1 description of every route, the document in
 * services/gateway/web/openapi.json embedded in the binary at build time (web/embed.cmake), so the
 * gateway serves exactly the description it was built with. tests/unit/test_gw_openapi.c fails when
 * the route table and the document disagree; the integration tests check every response they get
 * against it (tests/integration/api_contract.py). */
#include "gw_openapi_routes.h"
#include "gw_http.h"
#include "gw_page.h"

#include <string.h>

#define GW_OPENAPI_ASSET "openapi.json"

const gw_asset_t *gw_openapi_asset(void) {
  for (size_t i = 0; i < gw_page_assets_len; i++)
    if (strcmp(gw_page_assets[i].name, GW_OPENAPI_ASSET) == 0) return &gw_page_assets[i];
  return NULL;
}

void gw_openapi_get(gw_req_t *req) {
  const gw_asset_t *a = gw_openapi_asset();
  if (a == NULL) {   /* a build without the document: say so rather than serve nothing */
    gw_reply_error(req, 404, GW_E_NOT_FOUND, "this gateway was built without its API description");
    return;
  }
  gw_reply_bytes(req, 200, "application/json", a->data, a->len);
  gw_reply_header(req, MHD_HTTP_HEADER_CACHE_CONTROL, "public, max-age=300");
  gw_reply_header(req, "X-Content-Type-Options", "nosniff");
}
