/* gw_dispatch.c -- the gateway's request dispatcher: the hooks every loop's libmicrohttpd daemon
 * is started with (gw_loop.c; epoll, keep-alive, limits), routing with 404/405, credentials, body
 * limits, metrics.
 *
 * Limits against hostile clients:
 *   GATEWAY_CONN_MEMORY     request line + headers per connection (MHD answers 431/413 itself)
 *   GATEWAY_TIMEOUT_S       a connection silent this long is closed (slowloris, idle keep-alive)
 *   GATEWAY_PER_IP_LIMIT    concurrent connections per client address (counted over all loops)
 *   GATEWAY_MAX_CONNECTIONS concurrent connections in total (same)
 *   GATEWAY_MAX_BODY        body size (Content-Length checked first, then the bytes received)
 * and the framing: Content-Length values that differ (two headers, or a list in one) are 400,
 * Content-Length with Transfer-Encoding is 400, a transfer coding other than
 * one "chunked" is 501; both are answered before any body byte is read and close the connection,
 * so no byte after them can be taken for a request (request smuggling).
 */
#include "gw.h"
#include "gw_http.h"
#include "gw_metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cp_config.h"
#include "cp_ingest.h"
#include "cp_log.h"
#include "cp_service.h"
#include "cp_zmq.h"
#include "gw_dispatch.h"
#include "gw_internal.h"
#include "gw_loop.h"

/* The dispatcher's state of one request (MHD's con_cls). */
struct gw_conn {
  gw_req_t req;          // what the handler sees
  bool started;          // the handler has been called
  bool body_too_large;   // the body passed the limit: 413 at the end
  size_t max_body;       // limit for this request
  size_t body_cap;       // allocated bytes of req.body
  bool answered;         // a response was queued
  bool refused;          // an error reply was made before the body: send it when the request is read
  size_t discarded;      // body bytes of a refused request dropped so far
};

/* Is `path` matched by row r? */
static bool path_matches(const gw_route_t *r, const char *path) {
  if (r->match == GW_EXACT) return strcmp(path, r->path) == 0;
  return strncmp(path, r->path, strlen(r->path)) == 0;
}

static bool method_matches(const gw_route_t *r, const char *method) {
  if (strcmp(r->method, method) == 0) return true;
  return strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0;
}

/* Is row r served on this listener (gw_dispatch.h)? The operator listener serves only /metrics and /healthz;
 * the public one everything but /metrics (live counters are rate-limit feedback for an attacker). */
bool gw_route_listed(const gw_route_t *r, bool operator_port) {
  bool metrics = strcmp(r->name, "metrics") == 0;
  if (operator_port) return metrics || strcmp(r->name, "healthz") == 0;
  return !metrics;
}

/* Find the route; on no method match, fill allow (comma-separated methods of the path). */
static const gw_route_t *route_find(const char *path, const char *method, bool operator_port, char *allow,
                                    size_t allowlen, bool *path_known) {
  *path_known = false;
  allow[0] = '\0';
  for (size_t i = 0; i < gw_routes_len; i++) {
    const gw_route_t *r = &gw_routes[i];
    if (!gw_route_listed(r, operator_port) || !path_matches(r, path)) continue;
    if (method_matches(r, method)) return r;
    *path_known = true;
    if (strstr(allow, r->method) == NULL) {
      size_t n = strlen(allow);
      snprintf(allow + n, allowlen - n, "%s%s", n ? ", " : "", r->method);
      if (strcmp(r->method, "GET") == 0 && strstr(allow, "HEAD") == NULL) {
        n = strlen(allow);
        snprintf(allow + n, allowlen - n, ", HEAD");
      }
    }
  }
  return NULL;
}

/* The client's address: the peer's, or from a trusted proxy what its header says (gw_proxy.c).
 * *proxied: it came from a trusted proxy's header. */
static void client_address(gw_t *gw, struct MHD_Connection *conn, char *out, size_t outlen, bool *proxied) {
  snprintf(out, outlen, "-");
  *proxied = false;
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if (ci == NULL || ci->client_addr == NULL) return;
  const struct sockaddr *sa = ci->client_addr;
  if ((sa->sa_family == AF_INET || sa->sa_family == AF_INET6) && gw_proxy_trusted(&gw->cfg, sa)) {
    gw_proxy_client(&gw->cfg, conn, sa, out, outlen);
    *proxied = true;
    return;
  }
  if (sa->sa_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)outlen);
  else if (sa->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)outlen);
}

/* Queue the response held in req (or a 500 if the handler made none). */
static enum MHD_Result queue_reply(struct gw_conn *c) {
  gw_req_t *req = &c->req;
  if (req->resp == NULL)
    gw_reply_error(req, 500, GW_E_INTERNAL, "the server failed to answer; retry later");
  c->answered = true;
  if (req->resp == NULL) return MHD_NO; /* not even a 500 could be made: MHD closes the connection */
  enum MHD_Result rc = MHD_queue_response(req->conn, (unsigned)req->status, req->resp);
  return rc;
}

static bool has_body_method(const char *method) {
  return strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0 ||
         strcmp(method, "DELETE") == 0;
}

/* May the method be quoted back? Only 1-16 upper-case letters (every method the routes know is
 * one): the request line's bytes are otherwise never echoed. */
static bool method_is_token(const char *method) {
  size_t n = 0;
  for (; method[n] != '\0'; n++)
    if (method[n] < 'A' || method[n] > 'Z' || n >= 16) return false;
  return n > 0;
}

/* The request's framing headers, counted over every occurrence. */
typedef struct {
  unsigned content_length;    // Content-Length headers
  const char *first_length;   // the value of the first one (MHD's storage)
  bool lengths_differ;        // a later Content-Length (or a list in one) says another length
  unsigned transfer_encoding; // Transfer-Encoding headers
  bool chunked_only;          // every Transfer-Encoding value is exactly one "chunked"
} framing_t;

/* The value of a Content-Length with blanks trimmed, in out (cap bytes); a comma list
 * ("5, 5" -- what a proxy may make of two headers) counts as differing unless every item is
 * the same. Returns false when the items differ. */
static bool length_value(const char *v, char *out, size_t cap) {
  out[0] = '\0';
  bool first = true, same = true;
  while (*v != '\0') {
    while (*v == ' ' || *v == '\t' || *v == ',') v++;
    size_t n = 0;
    while (v[n] != '\0' && v[n] != ',' && v[n] != ' ' && v[n] != '\t') n++;
    if (n == 0) break;
    if (first) snprintf(out, cap, "%.*s", (int)n, v);
    else if (strlen(out) != n || strncmp(out, v, n) != 0) same = false;
    first = false;
    v += n;
  }
  return same;
}

static enum MHD_Result framing_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value) {
  (void)kind;
  framing_t *f = cls;
  if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
    char now[32], was[32];
    f->content_length++;
    if (!length_value(value != NULL ? value : "", now, sizeof now)) f->lengths_differ = true;
    if (f->first_length == NULL) f->first_length = value != NULL ? value : "";
    else if ((void)length_value(f->first_length, was, sizeof was), strcmp(was, now) != 0) f->lengths_differ = true;
  }
  if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) != 0) return MHD_YES;
  f->transfer_encoding++;
  const char *v = value != NULL ? value : "";
  size_t n = strlen(v);
  while (n > 0 && (v[0] == ' ' || v[0] == '\t')) v++, n--;
  while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t')) n--;
  if (f->transfer_encoding > 1 || n != 7 || strncasecmp(v, "chunked", 7) != 0) f->chunked_only = false;
  return MHD_YES;
}

/* Refuse an ambiguous or unsupported framing. Returns true when a response was made; it asks
 * MHD to close the connection, since where this request's body ends cannot be trusted. */
static bool framing_refused(gw_req_t *req) {
  framing_t f = {0, NULL, false, 0, true};
  MHD_get_connection_values(req->conn, MHD_HEADER_KIND, framing_header, &f);
  if (f.lengths_differ) {
    gw_reply_error(req, 400, GW_E_BAD_FRAMING,
                   "the request has Content-Length values that differ; send one Content-Length");
    gw_reply_header(req, MHD_HTTP_HEADER_CONNECTION, "close");
    return true;
  }
  if (f.transfer_encoding == 0) return false;
  if (f.content_length > 0)
    gw_reply_error(req, 400, GW_E_BAD_FRAMING,
                   "the request has both Content-Length and Transfer-Encoding; send only one of them");
  else if (!f.chunked_only)
    gw_reply_error(req, 501, GW_E_TRANSFER_CODING,
                   "the only transfer coding accepted is chunked; send the body plain or chunked");
  else
    return false;
  gw_reply_header(req, MHD_HTTP_HEADER_CONNECTION, "close");
  return true;
}

/* First call for a request: route, credential, Content-Length. Returns true when a
 * response was already made (an error). */
static bool request_start(gw_t *gw, struct gw_conn *c, const char *url, const char *method) {
  gw_req_t *req = &c->req;
  char allow[128];
  bool path_known = false;
  req->route = route_find(url, method, req->operator_port, allow, sizeof allow, &path_known);
  if (req->route == NULL) {
    if (path_known) {
      gw_reply_error(req, 405, GW_E_METHOD_NOT_ALLOWED, "%s is not allowed on this path; use %s",
                     method_is_token(method) ? method : "this method", allow);
      gw_reply_header(req, "Allow", allow);
    } else {
      gw_reply_error(req, 404, GW_E_ROUTE_NOT_FOUND, "there is no such route; see the API documentation");
    }
    return true;
  }
  req->rest = req->route->match == GW_PREFIX ? url + strlen(req->route->path) : "";
  if (gw_auth_check(req) != 0) return true; /* replied */
  c->max_body = req->route->max_body ? req->route->max_body : gw->cfg.max_body;
  const char *cl = gw_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
  if (cl != NULL) {
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(cl, &end, 10);
    if (errno == 0 && end != cl && *end == '\0' && v > c->max_body) {
      gw_reply_error(req, 413, GW_E_BODY_TOO_LARGE, "the body is %llu bytes; the limit is %zu", v,
                     c->max_body);
      return true;
    }
  }
  return false;
}

/* The connection's slot for the request from a proxied client: refused (429, and the request is
 * read and dropped) when that client has GATEWAY_PER_IP_LIMIT requests open already. */
static bool proxied_refused(gw_req_t *req, gw_sock_t *k) {
  if (gw_sock_forwarded(k, req->client_ip) == 0) return false;
  gw_reply_error(req, 429, GW_E_TOO_MANY_CONNECTIONS,
                 "your address has too many requests open at once; wait for one to finish");
  gw_reply_header(req, MHD_HTTP_HEADER_RETRY_AFTER, "1");
  return true;
}

static enum MHD_Result dispatch(gw_t *gw, bool operator_port, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *upload_data, size_t *upload_data_size,
                                void **con_cls) {
  struct gw_conn *c = *con_cls;
  gw_sock_t *k = operator_port ? NULL : gw_sock_of(conn);
  if (c == NULL) {
    c = cp_xcalloc(1, sizeof *c);
    *con_cls = c;
    c->req.gw = gw;
    c->req.conn = conn;
    c->req.conn_state = c;
    c->req.method = method;
    c->req.path = url;
    c->req.rest = "";
    c->req.started_ms = cp_mono_ms();
    c->req.operator_port = operator_port;
    bool proxied = false;
    client_address(gw, conn, c->req.client_ip, sizeof c->req.client_ip, &proxied);
    gw_sock_head_done(k, has_body_method(method));
    if (framing_refused(&c->req)) return queue_reply(c); /* now, before any body byte */
    if ((proxied && proxied_refused(&c->req, k)) || request_start(gw, c, url, method)) {
      /* A refusal is sent once the request is read (MHD keeps the connection alive only
       * then), except 413 which must not wait for the body: it is sent now and MHD closes. */
      if (c->req.status == 413) return queue_reply(c);
      c->refused = true;
      if (c->max_body == 0) c->max_body = gw->cfg.max_body;
    }
    return MHD_YES;
  }
  if (c->answered) {
    *upload_data_size = 0; /* discard what is left of the body */
    return MHD_YES;
  }
  gw_req_t *req = &c->req;
  if (*upload_data_size > 0) {
    size_t n = *upload_data_size;
    *upload_data_size = 0;
    gw_sock_body(k, n);
    if (c->body_too_large) return MHD_YES;
    if (c->refused) { /* the body of a refused request is counted and dropped */
      c->discarded += n;
      if (c->discarded <= c->max_body) return MHD_YES;
      return queue_reply(c); /* too much to drain: answer now, MHD closes the connection */
    }
    if (!has_body_method(method)) return MHD_YES; /* ignored */
    if (req->body_len + n > c->max_body) {
      c->body_too_large = true;
      if (req->body != NULL) sodium_memzero(req->body, req->body_len);
      free(req->body);
      req->body = NULL;
      req->body_len = 0;
      /* answer now: MHD closes the connection after the reply instead of reading the rest */
      gw_reply_error(req, 413, GW_E_BODY_TOO_LARGE, "the body is larger than the limit of %zu bytes",
                     c->max_body);
      return queue_reply(c);
    }
    if (req->body_len + n + 1 > c->body_cap) {
      size_t cap = c->body_cap ? c->body_cap : 4096;
      while (cap < req->body_len + n + 1) cap *= 2;
      if (cap > c->max_body + 1) cap = c->max_body + 1;
      char *nb = cp_xmalloc(cap);
      if (req->body_len) memcpy(nb, req->body, req->body_len);
      if (req->body != NULL) sodium_memzero(req->body, req->body_len);
      free(req->body);
      req->body = nb;
      c->body_cap = cap;
    }
    memcpy(req->body + req->body_len, upload_data, n);
    req->body_len += n;
    req->body[req->body_len] = '\0';
    return MHD_YES;
  }
  /* the whole request is in */
  gw_sock_body_done(k);
  if (c->refused) return queue_reply(c);
  if (!c->started) {
    c->started = true;
    req->route->handler(req);
    if (req->suspended) return MHD_YES; /* a helper thread answers and resumes the connection */
    return queue_reply(c);
  }
  /* resumed after a suspension: the helper made the response */
  if (req->suspended) {
    req->suspended = false;
    return queue_reply(c);
  }
  return queue_reply(c);
}

enum MHD_Result gw_dispatch(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                            const char *version, const char *upload_data, size_t *upload_data_size,
                            void **con_cls) {
  (void)version;
  return dispatch(cls, false, conn, url, method, upload_data, upload_data_size, con_cls);
}

enum MHD_Result gw_dispatch_ops(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                const char *version, const char *upload_data, size_t *upload_data_size,
                                void **con_cls) {
  (void)version;
  return dispatch(cls, true, conn, url, method, upload_data, upload_data_size, con_cls);
}

void gw_dispatch_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  gw_t *gw = cls;
  struct gw_conn *c = *con_cls;
  if (c == NULL) return;
  gw_req_t *req = &c->req;
  if (!req->operator_port) gw_sock_request_done(gw_sock_of(conn));
  int status = c->answered ? req->status : 0; /* 0: the client went away first */
  gw_metrics_request(gw, req->route != NULL ? req->route->name : "unmatched", status,
                     cp_mono_ms() - req->started_ms);
  if (req->resp != NULL) MHD_destroy_response(req->resp);
  if (req->body != NULL) sodium_memzero(req->body, req->body_len); /* may hold NI numbers */
  free(req->body);
  free(c);
  *con_cls = NULL;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-decoding of paths and query values, in place. "%00" is left as it is: a NUL
 * would silently cut the C string (so "/log/tile/0/000.p/1%00junk" would look canonical);
 * kept encoded it makes the path fail every route's checks instead. */
size_t gw_unescape(void *cls, struct MHD_Connection *conn, char *s) {
  char *w = s;
  for (const char *r = s; *r != '\0'; r++) {
    int hi, lo;
    if (r[0] == '%' && (hi = hexval(r[1])) >= 0 && (lo = hexval(r[2])) >= 0 && (hi | lo) != 0) {
      *w++ = (char)(hi * 16 + lo);
      r += 2;
    } else {
      *w++ = *r;
    }
  }
  *w = '\0';
  return (size_t)(w - s);
}

void gw_mhd_log(void *cls, const char *fmt, va_list ap) {
  char buf[512];
  vsnprintf(buf, sizeof buf, fmt, ap);
  size_t n = strlen(buf);
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = '\0';
  cp_log_debug("libmicrohttpd", CP_KV_STR("detail", buf), CP_KV_END);
}
