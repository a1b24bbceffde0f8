/* gw_http.h -- what a handler calls (gw_http.c): the register, this thread's Redis, request
 * headers, query and JSON body, and the one reply per request. */
#ifndef GW_HTTP_H
#define GW_HTTP_H

#include "gw.h"

#include "cp_reasons.h"

/* gw_http.c: the shared read-only register, opened on first use and refreshed to the latest
 * checkpoint. Returns it with gw->reg_lock held (release with gw_register_unlock), or NULL
 * (lock not held) when the register cannot be opened yet; err says why. */
reg_log_t *gw_register_lock(gw_t *gw, char *err, size_t errlen);
void gw_register_unlock(gw_t *gw);

/* ---- request helpers (gw_http.c) ----------------------------------------- */

/* This thread's Redis connection (made on first use, reconnected by cp_redis_*),
 * NULL if Redis cannot be reached (then answer gw_reply_unavailable). */
cp_redis_t *gw_redis(gw_req_t *req);
/* A request header / query argument by name (case-insensitive header names), NULL if absent. */
const char *gw_header(gw_req_t *req, const char *name);
const char *gw_query(gw_req_t *req, const char *name);

/* Parse the body as JSON (duplicates keys refused). On failure (no body, not JSON,
 * or not of `want_type` when want_type >= 0 e.g. JSON_OBJECT) replies 400 MALFORMED_JSON
 * and returns NULL. The caller json_decref()s the result. */
json_t *gw_body_json(gw_req_t *req, int want_type);

/* Typed field getters on a JSON object. `required`: absent -> 400 MISSING_FIELD; present
 * with the wrong type or out of bounds -> 400 INVALID_FIELD naming the field. They reply
 * and return -1 on failure; 0 on success (absent optional: *out untouched, returns 0).
 * gw_json_str: max_len bytes at most (0 = no limit); *out points into obj. */
int gw_json_str(gw_req_t *req, json_t *obj, const char *field, bool required, size_t max_len,
                const char **out) CP_WUR;
int gw_json_int(gw_req_t *req, json_t *obj, const char *field, bool required, long long min,
                long long max, long long *out) CP_WUR;
int gw_json_bool(gw_req_t *req, json_t *obj, const char *field, bool required, bool *out) CP_WUR;

/* Self-declared labels (an employer's name for itself, a user agent shown to a worker): printable
 * UTF-8 text of at most max_len bytes, without control characters (C0, DEL, C1, NUL), invisible
 * or line-separator characters (U+200B-200D, U+2028/2029, U+2060, U+FEFF) or bidirectional
 * controls (U+202A-202E, U+2066-2069, U+200E/F, U+061C). CP_OK, or the reason it is refused
 * (CP_R_LABEL_TOO_LONG, CP_R_LABEL_CONTROL_CHAR, CP_R_LABEL_BIDI_CONTROL, CP_R_INVALID_UTF8).
 * The API marks them "self_declared": nobody checked them. */
cp_reason_t gw_label_check(const char *s, size_t n, size_t max_len);
/* An optional label field (gw_json_str + gw_label_check): a refused one gets 400 with the reason's
 * code (LABEL_BIDI_CONTROL, ...) naming the field, never quoting it. 0, or -1 replied. */
int gw_json_label(gw_req_t *req, json_t *obj, const char *field, size_t max_len, const char **out) CP_WUR;

/* ---- replies (gw_http.c); exactly one per request -------------------------- */

/* JSON body (takes the reference: json_decref is done here), Content-Type application/json. */
void gw_reply_json(gw_req_t *req, int status, json_t *body);
/* {"error": {"code": code, "message": sentence}} with status (or, when req->error_page is set, the
 * page it renders with the same status, code and sentence). code is a stable code (GW_E_* or the
 * feature's own); the sentence must hold no personal data. */
void gw_reply_error(gw_req_t *req, int status, const char *code, const char *fmt, ...)
    CP_PRINTF(4, 5);
/* 503 UNAVAILABLE "<what> is unavailable; retry later". */
void gw_reply_unavailable(gw_req_t *req, const char *what);
/* Bytes copied from buf, with a Content-Type. */
void gw_reply_bytes(gw_req_t *req, int status, const char *content_type, const void *buf, size_t len);
/* Bytes taken over (free()d by MHD when sent). */
void gw_reply_take(gw_req_t *req, int status, const char *content_type, void *buf, size_t len);
/* A response made with MHD_create_response_* directly (e.g. from a file descriptor); taken over. */
void gw_reply_response(gw_req_t *req, int status, struct MHD_Response *resp, const char *content_type);
/* Add a header to the reply already made (Cache-Control, Retry-After, Location, ...). */
void gw_reply_header(gw_req_t *req, const char *name, const char *value);

#endif
