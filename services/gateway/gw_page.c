/* gw_page.c -- the employer web page's files: GET /static/<name> (app.js, style.css) served from
 * the copies embedded in the binary, and the layout (index.html) that every rendered page is put
 * in (gw_page_reply), all with a strict Content-Security-Policy: no inline script or style.
 * Only names in the embedded table are served: the request path is never a file name. */
#include "gw_page.h"
#include "gw_http.h"
#include "gw_page_routes.h"

#include <stdlib.h>
#include <string.h>

#include "cp_log.h"

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

static void page_headers(gw_req_t *req, const char *cache);

static void serve(gw_req_t *req, const char *name, const char *cache) {
  const gw_asset_t *a = asset_find(name);
  if (a == NULL || strcmp(name, "embed.cmake") == 0) {
    gw_reply_error(req, 404, GW_E_NOT_FOUND, "no such file");
    return;
  }
  gw_reply_bytes(req, 200, content_type(name), a->data, a->len);
  page_headers(req, cache);
}

static void page_headers(gw_req_t *req, const char *cache) {
  gw_reply_header(req, "Content-Security-Policy", GW_PAGE_CSP);
  gw_reply_header(req, "X-Content-Type-Options", "nosniff");
  gw_reply_header(req, "Referrer-Policy", "no-referrer");
  gw_reply_header(req, "X-Frame-Options", "DENY");
  gw_reply_header(req, MHD_HTTP_HEADER_CACHE_CONTROL, cache);
}

void gw_page_static(gw_req_t *req) {
  if (strcmp(req->rest, "index.html") == 0) { /* the layout is not a page of its own */
    gw_reply_error(req, 404, GW_E_NOT_FOUND, "no such file");
    return;
  }
  serve(req, req->rest, "public, max-age=300");
}

/* The layout's slots: the page title and the content of <main>. */
#define SLOT_TITLE "<!--@title-->"
#define SLOT_MAIN "<!--@main-->"

void gw_page_reply(gw_req_t *req, int status, const char *title_html, gw_jw_t *main_html) {
  const gw_asset_t *a = asset_find("index.html");
  const char *t = a != NULL ? strstr((const char *)a->data, SLOT_TITLE) : NULL;
  const char *m = t != NULL ? strstr(t, SLOT_MAIN) : NULL;
  if (m == NULL || main_html->bad) { /* a layout without its slots, or text that is not UTF-8: a bug */
    cp_log_error("page not shown", CP_KV_STR("why", m == NULL ? "the layout has no slots" : "text that is not UTF-8"),
                 CP_KV_STR("route", req->route != NULL ? req->route->name : "-"), CP_KV_END);
    gw_reply_error(req, 500, GW_E_INTERNAL, "the page could not be shown; the operators have been told");
    return;
  }
  const char *base = (const char *)a->data;
  gw_jw_t w;
  gw_jw_init(&w, a->len + main_html->len + 256);
  gw_jw_rawn(&w, base, (size_t)(t - base));
  gw_jw_raw(&w, title_html);
  gw_jw_rawn(&w, t + strlen(SLOT_TITLE), (size_t)(m - t - strlen(SLOT_TITLE)));
  gw_jw_rawn(&w, main_html->s, main_html->len);
  gw_jw_rawn(&w, m + strlen(SLOT_MAIN), a->len - (size_t)(m + strlen(SLOT_MAIN) - base));
  size_t len = 0;
  char *text = gw_jw_take(&w, &len);
  gw_reply_take(req, status, "text/html; charset=utf-8", text, len);
  page_headers(req, "no-store"); /* a result or a form with what was typed: never kept */
}
