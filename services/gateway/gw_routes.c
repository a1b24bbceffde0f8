/* gw_routes.c -- the route table: one macro of rows per feature (see gw.h "Adding routes").
 * A new feature adds its gw_<feature>_routes.h here and its macro to the table. */
#include "gw.h"

#include "gw_check_routes.h"
#include "gw_core_routes.h"
#include "gw_openapi_routes.h"
#include "gw_page_routes.h"
#include "gw_share_routes.h"
#include "gw_subscribe_routes.h"
#include "gw_worker_routes.h"
#include "gw_consent_routes.h"

const gw_route_t gw_routes[] = {
  GW_CORE_ROUTES
  GW_OPENAPI_ROUTES
  GW_SHARE_ROUTES
  GW_CHECK_ROUTES
  GW_WORKER_ROUTES
  GW_CONSENT_ROUTES
  GW_SUBSCRIBE_ROUTES
  GW_PAGE_ROUTES
};

const size_t gw_routes_len = sizeof gw_routes / sizeof gw_routes[0];
