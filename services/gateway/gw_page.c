/* gw_page.c -- the employer web page: GET / (index.html) and GET /static/<name> (app.js, style.css),
 * served from the copies embedded in the binary, with a strict Content-Security-Policy.
 * Only names in the embedded table are served: the request path is never a file name. */
#include "gw_page.h"
#include "gw_http.h"
#include "gw_page_routes.h"

#include <string.h>

/* Script and styles only from this origin, fetch only to it, no framing, no plugins. */
#define GW_PAGE_CSP "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " \
                    "img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

static const gw_asset_t *asset_find(const char *name) {
  for (size_t i = 0; i < gw_page_assets_len; i++)
    if (strcmp(gw_page_assets[i].name, name) == 0) return &gw_page_assets[i];
  return NULL;
}

static const char *content_type(const char *name) {
  const char *dot = strrchr(name, '.');
  if (dot == NULL) return "application/octet-stream";
  if (strcmp(dot, ".html") == 0) return "text/html; charset=utf-8";
  if (strcmp(dot, ".js") == 0) return "text/javascript; charset=utf-8";
  if (strcmp(dot, ".css") == 0) return "text/css; charset=utf-8";
  return "application/octet-stream";
}

static void serve(gw_req_t *req, const char *name, const char *cache) {
  const gw_asset_t *a = asset_find(name);
  if (a == NULL || strcmp(name, "embed.cmake") == 0) {
    gw_reply_error(req, 404, GW_E_NOT_FOUND, "no such file");
    return;
  }
  gw_reply_bytes(req, 200, content_type(name), a->data, a->len);
  gw_reply_header(req, "Content-Security-Policy", GW_PAGE_CSP);
  gw_reply_header(req, "X-Content-Type-Options", "nosniff");
  gw_reply_header(req, "Referrer-Policy", "no-referrer");
  gw_reply_header(req, "X-Frame-Options", "DENY");
  gw_reply_header(req, MHD_HTTP_HEADER_CACHE_CONTROL, cache);
}

void gw_page_index(gw_req_t *req) { serve(req, "index.html", "no-cache"); }

void gw_page_static(gw_req_t *req) {
  if (strcmp(req->rest, "index.html") == 0) {
    gw_page_index(req);
    return;
  }
  serve(req, req->rest, "public, max-age=300");
}
