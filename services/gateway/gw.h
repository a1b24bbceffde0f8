/* gw.h -- the gateway's shared types: server context, route table, request, stable error codes.
 * Shared by every services/gateway/gw_*.c file; the functions are declared by their own files'
 * headers (gw_http.h request helpers and replies, gw_metrics.h, gw_server.h lifecycle, ...).
 *
 * How a request is served
 * -----------------------
 * libmicrohttpd (epoll, keep-alive) calls the dispatcher (gw_dispatch.c) on one of
 * GATEWAY_THREADS event-loop threads (gw_loop.c: each drives its own daemon on the shared
 * listening address). The dispatcher:
 *   1. finds the route: the first row of gw_routes[] whose path matches (GW_EXACT: equal,
 *      GW_PREFIX: starts with it) AND whose method matches. A path that matches rows of
 *      other methods only gets 405 METHOD_NOT_ALLOWED with an Allow header; a path that
 *      matches nothing gets 404 ROUTE_NOT_FOUND;
 *   2. checks the credential of the row's auth kind (Authorization: Bearer <token>):
 *      GW_AUTH_PROVIDER "cpp_..." (provider in the registry), GW_AUTH_WORKER "cpw_...",
 *      GW_AUTH_EMPLOYER "cpe_..." (employer in the employer registry) or GW_AUTH_EMPLOYER_OPT
 *      (no Authorization header = anonymous; one that is given must be a good "cpe_...");
 *      the token's subject goes into req->subject (and the employer into req->employer).
 *      Failures: 401 UNAUTHENTICATED / INVALID_TOKEN / TOKEN_EXPIRED / TOKEN_REVOKED,
 *      403 PROVIDER_UNKNOWN / EMPLOYER_UNKNOWN (see gw_auth.c);
 *   3. reads the body (POST/PUT/PATCH/DELETE) into req->body, NUL-terminated, up to the
 *      row's max_body (0 = GATEWAY_MAX_BODY); bigger gets 413 BODY_TOO_LARGE;
 *   4. calls the handler, which MUST answer with exactly one gw_reply_* call (a handler
 *      that does not gets 500 INTERNAL). It runs on a loop thread and may block briefly
 *      (Redis round trips), never for long: the thread serves other connections too;
 *   5. counts the request in /metrics (route name, status, latency histogram) and logs
 *      nothing per request (no personal data can leak from here; handlers log with care).
 *
 * Adding routes (other features)
 * ------------------------------
 * gw_routes.c builds gw_routes[] from one macro per feature. A feature adds a header
 * named gw_<feature>_routes.h that declares its handlers and defines
 * GW_<FEATURE>_ROUTES as a list of rows, each followed by a comma, e.g. gw_share_routes.h:
 *
 *   void gw_share_create(gw_req_t *req);
 *   #define GW_SHARE_ROUTES \
 *     {"POST", "/v1/share-codes", GW_EXACT, GW_AUTH_WORKER, 0, gw_share_create, "share_create"},
 *
 * and gw_routes.c includes that header and puts the macro in the table. Exact rows should come before prefix rows of the same
 * path family; the first match wins. Every row is described in services/gateway/web/openapi.json
 * (served at GET /v1/openapi.json; tests/unit/test_gw_openapi.c fails on a row it lacks).
 *
 * Errors: every error is JSON {"error": {"code": "STABLE_CODE", "message": "a sentence"}}
 * with the right status (gw_reply_error), except on a request whose handler set
 * req->error_page (the employer's HTML form): the same error is rendered as a page. Codes
 * used by the core are GW_E_* below; a feature may use its own stable codes (upper snake
 * case) and should list them in its file's top comment.
 */
#ifndef GW_H
#define GW_H

#include <pthread.h>
#include <stdint.h>

#include <jansson.h>
#include <microhttpd.h>

#include "cp_catalogue.h"
#include "cp_ascwds.h"
#include "cp_employers.h"
#include "cp_roles.h"
#include "cp_cidr.h"
#include "cp_crypto.h"
#include "cp_redis.h"
#include "cp_register.h"
#include "cp_token.h"
#include "cp_util.h"

/* ---- stable error codes of the core ------------------------------------- */
#define GW_E_ROUTE_NOT_FOUND "ROUTE_NOT_FOUND"       /* 404 no such route */
#define GW_E_METHOD_NOT_ALLOWED "METHOD_NOT_ALLOWED" /* 405 (+ Allow header) */
#define GW_E_NOT_FOUND "NOT_FOUND"                   /* 404 route exists, the thing does not (e.g. a tile) */
#define GW_E_BAD_PATH "BAD_PATH"                     /* 400 non-canonical or unsafe path */
#define GW_E_BODY_TOO_LARGE "BODY_TOO_LARGE"         /* 413 */
#define GW_E_MALFORMED_JSON "MALFORMED_JSON"         /* 400 body is not JSON (or not the expected top-level type) */
#define GW_E_INVALID_FIELD "INVALID_FIELD"           /* 400 a field has the wrong type or value */
#define GW_E_MISSING_FIELD "MISSING_FIELD"           /* 400 a required field is absent */
#define GW_E_UNSUPPORTED_MEDIA_TYPE "UNSUPPORTED_MEDIA_TYPE" /* 415 */
#define GW_E_INVALID_QUERY "INVALID_QUERY"           /* 400 a query parameter has a bad value */
#define GW_E_UNAUTHENTICATED "UNAUTHENTICATED"       /* 401 no Bearer token (+ WWW-Authenticate) */
#define GW_E_INVALID_TOKEN "INVALID_TOKEN"           /* 401 malformed, wrong kind or bad MAC */
#define GW_E_TOKEN_EXPIRED "TOKEN_EXPIRED"           /* 401 */
#define GW_E_TOKEN_REVOKED "TOKEN_REVOKED"           /* 401 the token's id is on CAREPASS_REVOKED_TOKENS */
#define GW_E_PROVIDER_UNKNOWN "PROVIDER_UNKNOWN"     /* 403 provider token for a provider not in the registry */
#define GW_E_EMPLOYER_UNKNOWN "EMPLOYER_UNKNOWN"     /* 403 employer token for an employer not in the employer registry */
#define GW_E_RATE_LIMITED "RATE_LIMITED"             /* 429 (+ Retry-After) */
#define GW_E_UNAVAILABLE "UNAVAILABLE"               /* 503 Redis or the bus is down; retry later */
#define GW_E_INTERNAL "INTERNAL"                     /* 500 */
#define GW_E_BAD_FRAMING "BAD_FRAMING"               /* 400 both Content-Length and Transfer-Encoding (+ close) */
#define GW_E_TRANSFER_CODING "TRANSFER_CODING_NOT_IMPLEMENTED" /* 501 a transfer coding other than chunked (+ close) */

#define GW_E_TOO_MANY_CONNECTIONS "TOO_MANY_CONNECTIONS" /* 429 a proxied client has GATEWAY_PER_IP_LIMIT requests open */
#define GW_E_INVALID_LABEL "INVALID_LABEL"          /* 400 a self-declared label has control, bidi or unprintable characters */

#define GW_SUBJECT_MAX 128   /* authenticated subject (provider id, worker pseudonym hex, employer id) incl. NUL */
#define GW_IP_MAX 64         /* textual client address incl. NUL */

typedef struct gw gw_t;
typedef struct gw_req gw_req_t;

/* ---- routes (gw_routes.c builds the table) ------------------------------ */

/* How a route's path is matched against the request path (query string excluded). */
typedef enum {
  GW_EXACT = 0,  // path equals the pattern
  GW_PREFIX,     // path starts with the pattern; req->rest is what follows it
} gw_match_t;

/* Which credential a route needs (checked before the body is read). */
typedef enum {
  GW_AUTH_NONE = 0,   // public (handlers may still rate-limit by client address)
  GW_AUTH_PROVIDER,   // Bearer cpp_... token of a provider in the registry; subject = provider id
  GW_AUTH_WORKER,     // Bearer cpw_... token; subject = what the worker token names
  GW_AUTH_EMPLOYER,   // Bearer cpe_... token of an employer in the employer registry; subject = employer id
  GW_AUTH_EMPLOYER_OPT, // as GW_AUTH_EMPLOYER when an Authorization header is sent; anonymous without one
} gw_auth_t;

typedef void (*gw_handler_fn)(gw_req_t *req);
/* Renders an error for a request answered as an HTML page (the employer's form, POST /check):
 * called by gw_reply_error instead of writing JSON, with the same status, code and message. */
typedef void (*gw_error_page_fn)(gw_req_t *req, int status, const char *code, const char *message, void *arg);

/* One row of the route table. */
typedef struct {
  const char *method;      // "GET", "POST", "DELETE", ... (HEAD is served by GET rows)
  const char *path;        // exact path or prefix, e.g. "/v1/events", "/log/tile/"
  gw_match_t match;        // GW_EXACT or GW_PREFIX
  gw_auth_t auth;          // credential required
  size_t max_body;         // largest body accepted; 0 = GATEWAY_MAX_BODY
  gw_handler_fn handler;   // answers with one gw_reply_* call
  const char *name;        // metrics label, e.g. "events_post" ([a-z0-9_])
} gw_route_t;

extern const gw_route_t gw_routes[];
extern const size_t gw_routes_len;

/* ---- the server context --------------------------------------------------- */


/* Settings read once from the config table at start. */
typedef struct {
  char bind_host[256];      // GATEWAY_BIND host part (IPv4 dotted quad or "0.0.0.0")
  int port;                 // GATEWAY_BIND port
  int threads;              // GATEWAY_THREADS: event loops (threads), each with its own MHD daemon
  size_t max_body;          // GATEWAY_MAX_BODY: default body limit (bytes)
  int timeout_s;            // GATEWAY_TIMEOUT_S: idle/slow connection timeout
  int per_ip_limit;         // GATEWAY_PER_IP_LIMIT: concurrent connections per client address (0 = none)
  int max_connections;      // GATEWAY_MAX_CONNECTIONS: concurrent connections in total
  size_t conn_memory;       // GATEWAY_CONN_MEMORY: MHD per-connection memory (headers) limit
  int head_timeout_s;       // GATEWAY_HEAD_TIMEOUT_S: whole request head within this (from the first byte seen)
  int min_body_rate;        // GATEWAY_MIN_BODY_RATE: bytes/s a body must average after head_timeout_s (0 = off)
  int reserved_pct;         // GATEWAY_RESERVED_PCT: share of max_connections kept for addresses with few connections
  int few_connections;      // GATEWAY_FEW_CONNECTIONS: below this many an address may use the reserved share
  int fails_per_address;    // GATEWAY_CHECK_FAILS_PER_ADDRESS: failed checks per client address per window
  int fails_per_code;       // GATEWAY_CHECK_FAILS_PER_CODE: failed checks naming one code per window
  int fails_per_employer;   // GATEWAY_CHECK_FAILS_PER_EMPLOYER: failed checks of one authenticated employer per window
  int subs_per_code;        // GATEWAY_SUBS_PER_CODE: live subscriptions per share code
  int subs_per_worker;      // GATEWAY_SUBS_PER_WORKER: live subscriptions per worker
  int consents_per_worker;  // GATEWAY_CONSENTS_PER_WORKER: live (and pending) consents per worker
  int entry_format;         // ENTRY_FORMAT: 1 refuses consents (the signer would not sign them)
  int64_t secret_overlap_s; // WEBHOOK_SECRET_OVERLAP_S: a rotated subscription secret still signs this long
  cp_cidr_list_t trusted;   // GATEWAY_TRUSTED_PROXIES
  bool forwarded_rfc7239;   // GATEWAY_FORWARDED_HEADER is "forwarded" (else "x-forwarded-for")
  char metrics_host[256];   // GATEWAY_METRICS_BIND host ("" = no operator listener)
  int metrics_port;         // GATEWAY_METRICS_BIND port
  size_t max_batch;         // MAX_BATCH: most events in one POST /v1/events
  int64_t ack_timeout_ms;   // ACK_TIMEOUT_MS: longest wait of ?ack=committed
  int64_t redrive_after_ms; // REDRIVE_AFTER_MS: when intake's redrive re-sends an accepted event
  int64_t outbox_max;       // OUTBOX_MAX: the claim answers BUSY at this outbox length
  char redis_host[256];     // REDIS_HOST
  int redis_port;           // REDIS_PORT
  int redis_timeout_ms;     // REDIS_TIMEOUT_MS
  char register_dir[4096];  // REGISTER_DIR: the register served under /log/
  char log_origin[128];     // LOG_ORIGIN
} gw_config_t;

/* A Prometheus counter series: name + label set (see gw_metric_add). */
typedef struct gw_metrics gw_metrics_t;

/* The gateway. Everything here is read-only after gw_new() unless a field says how
 * it is guarded; handlers get it as req->gw. */
struct gw {
  gw_config_t cfg;                         // settings
  struct gw_loops *loops;                  // the event loops, each with its HTTP daemon (gw_loop.c)
  struct MHD_Daemon *ops;                  // the operator listener (/metrics, /healthz; gw_ops.c), NULL = off
  prov_registry_t *providers;              // provider registry (read-only)
  emp_registry_t *employers;               // employer registry (EMPLOYERS; read-only)
  cat_catalogue_t *catalogue;              // qualification catalogue (read-only)
  roles_t *roles;                          // Care Workforce Pathway roles (ROLES; read-only)
  ascwds_map_t *ascwds;                    // carepass codes -> ASC-WDS training categories (ASCWDS_CATEGORIES)
  unsigned char token_secret[CP_SECRET_BYTES];     // TOKEN_SECRET: MAC key of cpp_/cpw_/cpe_ tokens (wiped)
  unsigned char pseudonym_secret[CP_SECRET_BYTES]; // PSEUDONYM_SECRET: worker pseudonyms (wiped)
  unsigned char share_code_secret[CP_SECRET_BYTES]; // SHARE_CODE_SECRET: keys share-code hashes (wiped)
  cp_token_revlist_t *revoked;             // REVOKED_TOKENS, re-read when the file changes (thread safe)
  char vkey[256];                          // register verifier key (note vkey), "" if not readable yet; guarded by keys_lock
  char webhook_key[256];                   // notify public key "whpk_...", "" if not readable yet; guarded by keys_lock
  pthread_mutex_t keys_lock;               // the main loop re-reads the two keys above every 2 s
  reg_log_t *reg;                          // read-only register (NULL until it exists); guarded by reg_lock
  pthread_mutex_t reg_lock;                // serialises every use of reg (reg_log_t is not thread-safe)
  void *zctx;                              // ZeroMQ context
  void *verify_push;                       // PUSH to BUS_VERIFY_IN; guarded by push_lock
  pthread_mutex_t push_lock;               // zmq sockets are not thread-safe
  gw_metrics_t *metrics;                   // counters and histograms (internally locked)
  struct gw_waiter *waiter;                // helper thread answering ?ack=committed requests (gw_wait.h)
  int64_t next_keys_ms;                    // monotonic ms of the next key refresh (main thread only)
  pthread_mutex_t redis_lock;              // guards redis_all
  cp_redis_t **redis_all;                  // every per-thread connection (closed at destroy)
  size_t nredis;                           // entries in redis_all
};

/* One HTTP request, from the dispatcher to the handler. */
struct gw_req {
  gw_t *gw;                         // the server
  struct MHD_Connection *conn;      // libmicrohttpd connection (for MHD_* calls if needed)
  const gw_route_t *route;          // matched route
  const char *method;               // request method ("HEAD" is passed as is on GET rows)
  const char *path;                 // request path without the query string (decoded by MHD)
  const char *rest;                 // GW_PREFIX: the path after the prefix ("" for GW_EXACT)
  char *body;                       // request body, NUL-terminated (NULL when none); owned by the dispatcher
  size_t body_len;                  // its length
  char subject[GW_SUBJECT_MAX];     // authenticated subject ("" for GW_AUTH_NONE and an anonymous GW_AUTH_EMPLOYER_OPT)
  const emp_t *employer;            // the authenticated employer (in gw->employers), NULL when none
  int64_t token_expiry;             // expiry (unix s) of the credential, 0 for GW_AUTH_NONE
  char client_ip[GW_IP_MAX];        // client address as text (no port): the peer, or what a trusted proxy says (gw_proxy.c)
  bool operator_port;               // arrived on the operator listener (GATEWAY_METRICS_BIND)
  int64_t started_ms;               // monotonic ms when the request arrived
  /* set by gw_reply_*; the dispatcher queues it */
  int status;                       // HTTP status of the response (0 = none yet)
  struct MHD_Response *resp;        // the response
  const char *error_code;           // stable code when the reply is an error (for metrics), else NULL
  bool suspended;                   // internal: the handler handed the request to a helper thread
  gw_error_page_fn error_page;      // set by an HTML handler: gw_reply_error renders through it (NULL = JSON)
  void *error_page_arg;             // its argument (the handler's form; must outlive the reply)
  struct gw_conn *conn_state;       // internal: the dispatcher's per-request state
};

#endif
