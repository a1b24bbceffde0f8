/* cp_log.h -- JSON-lines logging on stderr. Never log personal data: NI numbers,
 * names and dates of birth must not be passed to these functions. */
#ifndef CP_LOG_H
#define CP_LOG_H

#include "cp_util.h"

typedef enum { CP_LOG_DEBUG = 0, CP_LOG_INFO, CP_LOG_WARN, CP_LOG_ERROR } cp_log_level_t;

/* Key/value arguments for cp_log(): a tag then key then value; end with CP_KV_END. */
#define CP_KV_STR(k, v) 's', (const char *)(k), (const char *)(v)
#define CP_KV_INT(k, v) 'i', (const char *)(k), (long long)(v)
#define CP_KV_DBL(k, v) 'd', (const char *)(k), (double)(v)
#define CP_KV_END 0

/* Set the service name put on every line and the minimum level
 * ("debug", "info", "warn", "error"; unknown -> info). */
void cp_log_init(const char *service, const char *level);

/* Write one JSON line: {"ts":"2026-11-22T21:05:12.123Z","level":"info",
 * "service":"intake","msg":"...", <key/values>}. Thread-safe; one write(2) per line. */
void cp_log(cp_log_level_t level, const char *msg, ...);

#define cp_log_debug(...) cp_log(CP_LOG_DEBUG, __VA_ARGS__)
#define cp_log_info(...)  cp_log(CP_LOG_INFO, __VA_ARGS__)
#define cp_log_warn(...)  cp_log(CP_LOG_WARN, __VA_ARGS__)
#define cp_log_error(...) cp_log(CP_LOG_ERROR, __VA_ARGS__)

#endif
