/* gw_check_json.h -- an append-only JSON text writer for the check's replies (gw_check_json.c). */
#ifndef GW_CHECK_JSON_H
#define GW_CHECK_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The check's replies are a fixed shape: written by hand, escaped here. */
typedef struct {
  char *s;     // text, NUL-terminated (malloc'd)
  size_t len;  // bytes used
  size_t cap;  // bytes allocated
  bool bad;    // a string given was not UTF-8 (the text must not be sent)
} gw_jw_t;
void gw_jw_init(gw_jw_t *w, size_t cap);
void gw_jw_free(gw_jw_t *w);
/* Hand over the text (the writer is emptied); *len gets its length. */
char *gw_jw_take(gw_jw_t *w, size_t *len);
/* Raw text (keys, punctuation), escaped string, numbers; kstr = raw key text then a string. */
void gw_jw_raw(gw_jw_t *w, const char *s);
void gw_jw_rawn(gw_jw_t *w, const char *s, size_t n);
void gw_jw_str(gw_jw_t *w, const char *s);
void gw_jw_kstr(gw_jw_t *w, const char *key, const char *val);
void gw_jw_u64(gw_jw_t *w, uint64_t v);
void gw_jw_i64(gw_jw_t *w, int64_t v);
/* Is s[0..n) well-formed UTF-8 (no overlong forms, no surrogates)? */
bool gw_utf8_valid(const char *s, size_t n);

#endif
