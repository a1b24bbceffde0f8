/* gw_routes.c -- the route table: one macro of rows per feature (see gw.h "Adding routes"). */
#include "gw.h"

#include "gw_core_routes.h"

/* Features add a gw_<feature>_routes.h defining GW_<FEATURE>_ROUTES; no edit here needed. */
#if __has_include("gw_share_routes.h")
#include "gw_share_routes.h"
#endif
#ifndef GW_SHARE_ROUTES
#define GW_SHARE_ROUTES
#endif
#if __has_include("gw_check_routes.h")
#include "gw_check_routes.h"
#endif
#ifndef GW_CHECK_ROUTES
#define GW_CHECK_ROUTES
#endif
#if __has_include("gw_worker_routes.h")
#include "gw_worker_routes.h"
#endif
#ifndef GW_WORKER_ROUTES
#define GW_WORKER_ROUTES
#endif
#if __has_include("gw_subscribe_routes.h")
#include "gw_subscribe_routes.h"
#endif
#ifndef GW_SUBSCRIBE_ROUTES
#define GW_SUBSCRIBE_ROUTES
#endif
#if __has_include("gw_page_routes.h")
#include "gw_page_routes.h"
#endif
#ifndef GW_PAGE_ROUTES
#define GW_PAGE_ROUTES
#endif

const gw_route_t gw_routes[] = {
  GW_CORE_ROUTES
  GW_SHARE_ROUTES
  GW_CHECK_ROUTES
  GW_WORKER_ROUTES
  GW_SUBSCRIBE_ROUTES
  GW_PAGE_ROUTES
};

const size_t gw_routes_len = sizeof gw_routes / sizeof gw_routes[0];
