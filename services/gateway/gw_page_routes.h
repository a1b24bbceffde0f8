/* gw_page_routes.h -- the employer web page routes (gw_page.c). */
#ifndef GW_PAGE_ROUTES_H
#define GW_PAGE_ROUTES_H

#include "gw.h"

void gw_page_static(gw_req_t *req);

#define GW_PAGE_ROUTES \
  {"GET", "/static/", GW_PREFIX, GW_AUTH_NONE, 0, gw_page_static, "page_static"},

#endif
