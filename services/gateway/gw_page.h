/* gw_page.h -- the employer web page's files, embedded at build time (web/embed.cmake writes
 * gw_page_assets.c in the build directory from services/gateway/web/). */
#ifndef GW_PAGE_H
#define GW_PAGE_H

#include <stddef.h>

#include "gw.h"
#include "gw_check_json.h"

/* One embedded file. */
typedef struct {
  const char *name;            // file name in services/gateway/web, e.g. "app.js"
  const unsigned char *data;   // its bytes (NUL-terminated for convenience)
  size_t len;                  // length without the NUL
} gw_asset_t;

extern const gw_asset_t gw_page_assets[];
extern const size_t gw_page_assets_len;

/* Reply with a page: the layout (web/index.html) with title_html (escaped already) in <title>
 * and main_html in <main>; text/html, the page CSP, Cache-Control no-store. A main_html that is
 * not UTF-8 (bad) gets a 500 instead. */
void gw_page_reply(gw_req_t *req, int status, const char *title_html, gw_jw_t *main_html);

#endif
