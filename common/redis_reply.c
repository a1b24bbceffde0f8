/* redis_reply.c -- reading hiredis replies: strings, numbers, arrays, HGETALL fields. */
#include "cp_redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool cp_redis_reply_is_error(const redisReply *r) { return r != NULL && r->type == REDIS_REPLY_ERROR; }

bool cp_redis_reply_is_str(const redisReply *r, const char *s) {
  size_t n = strlen(s);
  return r != NULL && r->type == REDIS_REPLY_STRING && r->len == n && memcmp(r->str, s, n) == 0;
}

bool cp_redis_reply_is_int(const redisReply *r, long long v) {
  return r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == v;
}

const redisReply *cp_redis_reply_array(const redisReply *r, size_t n) {
  return r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == n ? r : NULL;
}

bool cp_redis_reply_copy(const redisReply *r, char *dst, size_t max) {
  if (r == NULL || r->type != REDIS_REPLY_STRING || r->len >= max) return false;
  memcpy(dst, r->str, r->len);
  dst[r->len] = '\0';
  return true;
}

void cp_redis_reply_str(const redisReply *r, char *dst, size_t max) {
  if (r != NULL && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS))
    snprintf(dst, max, "%.*s", (int)r->len, r->str);
  else if (max > 0)
    dst[0] = '\0';
}

char *cp_redis_reply_strdup(const redisReply *r) {
  if (r == NULL || r->type != REDIS_REPLY_STRING || r->len == 0) return NULL;
  char *s = cp_xmalloc(r->len + 1);
  memcpy(s, r->str, r->len);
  s[r->len] = '\0';
  return s;
}

uint64_t cp_redis_reply_u64(const redisReply *r) {
  if (r == NULL) return 0;
  if (r->type == REDIS_REPLY_INTEGER) return r->integer > 0 ? (uint64_t)r->integer : 0;
  char buf[24], *end = NULL;
  if (!cp_redis_reply_copy(r, buf, sizeof buf) || buf[0] < '0' || buf[0] > '9') return 0;
  unsigned long long x = strtoull(buf, &end, 10);
  return *end == '\0' ? (uint64_t)x : 0;
}

const char *cp_redis_hfield(const redisReply *r, const char *name) {
  if (r == NULL || r->type != REDIS_REPLY_ARRAY) return NULL;
  for (size_t i = 0; i + 1 < r->elements; i += 2)
    if (r->element[i]->type == REDIS_REPLY_STRING && strcmp(r->element[i]->str, name) == 0 &&
        r->element[i + 1]->type == REDIS_REPLY_STRING)
      return r->element[i + 1]->str;
  return NULL;
}
