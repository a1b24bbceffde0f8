/* gw_http.c -- request and response helpers for handlers: per-thread Redis, headers, query,
 * JSON bodies and typed fields, JSON errors, the shared read-only register. */
#include "gw.h"
#include "gw_http.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_log.h"

/* This thread's Redis connection (MHD pool threads live as long as the daemon). */
static __thread cp_redis_t *tls_redis;

cp_redis_t *gw_redis(gw_req_t *req) {
  if (tls_redis != NULL) return tls_redis;
  gw_t *gw = req->gw;
  char err[CP_ERRLEN];
  cp_redis_t *r = cp_redis_new(gw->cfg.redis_host, gw->cfg.redis_port, gw->cfg.redis_timeout_ms, err, sizeof err);
  if (r == NULL) {
    cp_log_warn("redis unavailable", CP_KV_STR("error", err), CP_KV_END);
    return NULL;
  }
  pthread_mutex_lock(&gw->redis_lock);
  gw->redis_all = realloc(gw->redis_all, (gw->nredis + 1) * sizeof *gw->redis_all);
  if (gw->redis_all == NULL) abort(); /* OOM is fatal in carepass */
  gw->redis_all[gw->nredis++] = r;
  pthread_mutex_unlock(&gw->redis_lock);
  tls_redis = r;
  return r;
}

const char *gw_header(gw_req_t *req, const char *name) {
  return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *gw_query(gw_req_t *req, const char *name) {
  return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

static const char *json_type_name(int t) {
  switch (t) {
  case JSON_OBJECT: return "an object";
  case JSON_ARRAY: return "an array";
  case JSON_STRING: return "a string";
  case JSON_INTEGER: return "an integer";
  case JSON_REAL: return "a number";
  case JSON_TRUE:
  case JSON_FALSE: return "a boolean";
  default: return "null";
  }
}

json_t *gw_body_json(gw_req_t *req, int want_type) {
  if (req->body == NULL || req->body_len == 0) {
    gw_reply_error(req, 400, GW_E_MALFORMED_JSON, "the request needs a JSON body");
    return NULL;
  }
  json_error_t jerr;
  json_t *j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
  if (j == NULL) {
    /* jansson's text names a position, never the content */
    gw_reply_error(req, 400, GW_E_MALFORMED_JSON, "the body is not valid JSON (line %d, column %d)",
                   jerr.line, jerr.column);
    return NULL;
  }
  if (want_type >= 0 && (int)json_typeof(j) != want_type) {
    gw_reply_error(req, 400, GW_E_MALFORMED_JSON, "the body must be %s", json_type_name(want_type));
    json_decref(j);
    return NULL;
  }
  return j;
}

/* The field, or NULL (replying MISSING_FIELD when required). *absent says which. */
static json_t *field_get(gw_req_t *req, json_t *obj, const char *field, bool required, bool *absent) {
  json_t *v = json_object_get(obj, field);
  *absent = v == NULL;
  if (v == NULL && required) gw_reply_error(req, 400, GW_E_MISSING_FIELD, "%s is required", field);
  return v;
}

int gw_json_str(gw_req_t *req, json_t *obj, const char *field, bool required, size_t max_len,
                const char **out) {
  bool absent;
  json_t *v = field_get(req, obj, field, required, &absent);
  if (absent) return required ? -1 : 0;
  if (!json_is_string(v)) {
    gw_reply_error(req, 400, GW_E_INVALID_FIELD, "%s must be a string, not %s", field,
                   json_type_name(json_typeof(v)));
    return -1;
  }
  if (max_len > 0 && json_string_length(v) > max_len) {
    gw_reply_error(req, 400, GW_E_INVALID_FIELD, "%s is %zu bytes; the limit is %zu", field,
                   json_string_length(v), max_len);
    return -1;
  }
  *out = json_string_value(v);
  return 0;
}

int gw_json_int(gw_req_t *req, json_t *obj, const char *field, bool required, long long min,
                long long max, long long *out) {
  bool absent;
  json_t *v = field_get(req, obj, field, required, &absent);
  if (absent) return required ? -1 : 0;
  if (!json_is_integer(v)) {
    gw_reply_error(req, 400, GW_E_INVALID_FIELD, "%s must be an integer, not %s", field,
                   json_type_name(json_typeof(v)));
    return -1;
  }
  long long x = json_integer_value(v);
  if (x < min || x > max) {
    gw_reply_error(req, 400, GW_E_INVALID_FIELD, "%s must be between %lld and %lld", field, min, max);
    return -1;
  }
  *out = x;
  return 0;
}

int gw_json_bool(gw_req_t *req, json_t *obj, const char *field, bool required, bool *out) {
  bool absent;
  json_t *v = field_get(req, obj, field, required, &absent);
  if (absent) return required ? -1 : 0;
  if (!json_is_boolean(v)) {
    gw_reply_error(req, 400, GW_E_INVALID_FIELD, "%s must be true or false, not %s", field,
                   json_type_name(json_typeof(v)));
    return -1;
  }
  *out = json_is_true(v);
  return 0;
}

/* One UTF-8 sequence at p (n bytes left): its length and code point, or 0 when malformed (overlong,
 * surrogate, past U+10FFFF, cut). */
static size_t utf8_next(const unsigned char *p, size_t n, uint32_t *cp) {
  unsigned c = p[0];
  size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
  if (len == 0 || len > n) return 0;
  uint32_t v = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
  for (size_t i = 1; i < len; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    v = (v << 6) | (p[i] & 0x3F);
  }
  if ((len == 2 && v < 0x80) || (len == 3 && v < 0x800) || (len == 4 && v < 0x10000) ||
      (v >= 0xD800 && v <= 0xDFFF) || v > 0x10FFFF)
    return 0;
  *cp = v;
  return len;
}

cp_reason_t gw_label_check(const char *s, size_t n, size_t max_len) {
  if (n > max_len) return CP_R_LABEL_TOO_LONG;
  const unsigned char *p = (const unsigned char *)s;
  for (size_t i = 0; i < n;) {
    uint32_t c = 0;
    size_t len = utf8_next(p + i, n - i, &c);
    if (len == 0) return CP_R_INVALID_UTF8;
    i += len;
    if ((c >= 0x202A && c <= 0x202E) || (c >= 0x2066 && c <= 0x2069) || c == 0x200E || c == 0x200F || c == 0x061C)
      return CP_R_LABEL_BIDI_CONTROL;
    if (c < 0x20 || (c >= 0x7F && c < 0xA0) || (c >= 0x200B && c <= 0x200D) || c == 0x2028 || c == 0x2029 ||
        c == 0x2060 || c == 0xFEFF)
      return CP_R_LABEL_CONTROL_CHAR;
  }
  return CP_OK;
}

int gw_json_label(gw_req_t *req, json_t *obj, const char *field, size_t max_len, const char **out) {
  const char *v = NULL;
  if (gw_json_str(req, obj, field, false, 0, &v) != 0) return -1;
  if (v == NULL) return 0;
  cp_reason_t r = gw_label_check(v, json_string_length(json_object_get(obj, field)), max_len);
  if (r != CP_OK) {
    if (r == CP_R_LABEL_TOO_LONG)
      gw_reply_error(req, 400, cp_reason_code(r), "%s is longer than %zu bytes; shorten it", field, max_len);
    else
      gw_reply_error(req, 400, cp_reason_code(r), "%s: %s", field, cp_reason_text(r));
    return -1;
  }
  *out = v;
  return 0;
}

/* Headers every JSON answer carries: no MIME sniffing, and nothing may run or frame it. */
#define GW_JSON_CSP "default-src 'none'; frame-ancestors 'none'"

/* Replace any response already made (a handler answering twice is a bug, but the last wins).
 * A NULL resp (MHD could not allocate) leaves no response: the dispatcher then answers 500 or
 * closes the connection, so an allocation failure never stops the service. */
static void set_response(gw_req_t *req, int status, struct MHD_Response *resp, const char *content_type) {
  if (resp == NULL) {
    cp_log_warn("response allocation failed", CP_KV_STR("route", req->route ? req->route->name : "-"),
                CP_KV_END);
    return;
  }
  if (req->resp != NULL) {
    cp_log_warn("handler answered twice", CP_KV_STR("route", req->route ? req->route->name : "-"), CP_KV_END);
    MHD_destroy_response(req->resp);
  }
  req->resp = resp;
  req->status = status;
  req->error_code = NULL;
  if (content_type != NULL) {
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (strncmp(content_type, "application/json", 16) == 0) {
      MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
      MHD_add_response_header(resp, "Content-Security-Policy", GW_JSON_CSP);
    }
  }
}

void gw_reply_response(gw_req_t *req, int status, struct MHD_Response *resp, const char *content_type) {
  set_response(req, status, resp, content_type);
}

void gw_reply_take(gw_req_t *req, int status, const char *content_type, void *buf, size_t len) {
  struct MHD_Response *r = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
  set_response(req, status, r, content_type);
}

void gw_reply_bytes(gw_req_t *req, int status, const char *content_type, const void *buf, size_t len) {
  struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)buf, MHD_RESPMEM_MUST_COPY);
  set_response(req, status, r, content_type);
}

/* The answer when a JSON body cannot be encoded (NULL from json_pack, e.g. on invalid UTF-8,
 * or no memory): fixed text, so a failed encode never stops the service. */
static const char GW_ENCODE_FAILED[] =
    "{\"error\":{\"code\":\"" GW_E_INTERNAL "\",\"message\":\"the server failed to encode its answer; "
    "retry later\"}}\n";

/* Reply with body (taken); false when it could not be encoded and the fixed 500 was made. */
static bool reply_json(gw_req_t *req, int status, json_t *body) {
  char *s = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  if (s == NULL) {
    cp_log_warn("JSON encode failed", CP_KV_STR("route", req->route ? req->route->name : "-"), CP_KV_END);
    gw_reply_bytes(req, 500, "application/json", GW_ENCODE_FAILED, sizeof GW_ENCODE_FAILED - 1);
    req->error_code = GW_E_INTERNAL;
    return false;
  }
  size_t n = strlen(s);
  /* one trailing newline: friendlier to curl and NDJSON-minded clients */
  char *t = realloc(s, n + 2);
  if (t == NULL) { /* no room for the newline: send it without */
    gw_reply_take(req, status, "application/json", s, n);
    return true;
  }
  t[n] = '\n';
  t[n + 1] = '\0';
  gw_reply_take(req, status, "application/json", t, n + 1);
  return true;
}

void gw_reply_json(gw_req_t *req, int status, json_t *body) { (void)reply_json(req, status, body); }

/* Make msg printable in place: valid UTF-8 without control characters stays as it is, every
 * other byte (invalid or cut sequences, C0 controls, DEL) becomes '?'. Messages may quote
 * request data, and json_pack refuses invalid UTF-8. */
static void printable_utf8(char *msg) {
  unsigned char *p = (unsigned char *)msg;
  while (*p != '\0') {
    unsigned c = *p;
    size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    bool ok = len > 0 && !(len == 1 && (c < 0x20 || c == 0x7F));
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t i = 1; ok && i < len; i++) {
      if ((p[i] & 0xC0) != 0x80) ok = false; /* also stops at the NUL */
      else cp = (cp << 6) | (p[i] & 0x3F);
    }
    /* no overlong forms, surrogates or code points past U+10FFFF; no C1 controls */
    if (ok && len > 1)
      ok = !((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
             (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF || (cp >= 0x80 && cp < 0xA0));
    if (!ok) {
      *p++ = '?';
      continue;
    }
    p += len;
  }
}

void gw_reply_error(gw_req_t *req, int status, const char *code, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  printable_utf8(msg);
  if (req->error_page != NULL) { /* an HTML form's request: the same error, as a page */
    gw_error_page_fn page = req->error_page;
    req->error_page = NULL; /* once: a page that fails falls back to JSON */
    page(req, status, code, msg, req->error_page_arg);
    if (req->resp != NULL) {
      req->error_code = code;
      return;
    }
  }
  json_t *err = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
  if (!reply_json(req, status, err)) return;
  req->error_code = code;
  if (status == 401)
    gw_reply_header(req, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"carepass\"");
}

void gw_reply_unavailable(gw_req_t *req, const char *what) {
  gw_reply_error(req, 503, GW_E_UNAVAILABLE, "%s is unavailable; retry later", what);
  gw_reply_header(req, MHD_HTTP_HEADER_RETRY_AFTER, "1");
}

void gw_reply_header(gw_req_t *req, const char *name, const char *value) {
  if (req->resp == NULL) return; /* programmer error, but harmless: no response to decorate */
  MHD_add_response_header(req->resp, name, value);
}

reg_log_t *gw_register_lock(gw_t *gw, char *err, size_t errlen) {
  pthread_mutex_lock(&gw->reg_lock);
  if (gw->reg == NULL) {
    if (reg_open(gw->cfg.register_dir, NULL, &gw->reg, err, errlen) != 0) {
      gw->reg = NULL;
      pthread_mutex_unlock(&gw->reg_lock);
      return NULL;
    }
  } else if (reg_refresh(gw->reg, err, errlen) != 0) {
    /* keep serving the last good view */
    cp_log_warn("register refresh failed", CP_KV_STR("error", err), CP_KV_END);
  }
  return gw->reg;
}

void gw_register_unlock(gw_t *gw) { pthread_mutex_unlock(&gw->reg_lock); }
