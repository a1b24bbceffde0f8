/* cp_util.h -- small shared macros and helpers used by every carepass module. */
#ifndef CP_UTIL_H
#define CP_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define CP_WUR __attribute__((warn_unused_result))
#define CP_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define CP_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Size of error buffers passed around as (char *err, size_t errlen). */
#define CP_ERRLEN 256

/* Write a formatted message into err (if err != NULL). Always returns -1 so
 * callers can write `return cp_err(err, errlen, "...")`. */
int cp_err(char *err, size_t errlen, const char *fmt, ...) CP_PRINTF(3, 4);

/* Milliseconds since the Unix epoch (CLOCK_REALTIME) and monotonic ms. */
int64_t cp_now_ms(void);
int64_t cp_mono_ms(void);

/* Hex encode `len` bytes into out (needs 2*len+1 bytes). */
void cp_hex(const uint8_t *in, size_t len, char *out);

/* Duplicate a string, aborting on out-of-memory (carepass treats OOM as fatal). */
char *cp_strdup(const char *s);
void *cp_xmalloc(size_t n);
void *cp_xcalloc(size_t n, size_t sz);
void *cp_xrealloc(void *ptr, size_t n);

/* Write a whole file atomically: temp file, fsync, rename, fsync directory.
 * mode is the permission of the new file (e.g. 0600 for keys). */
int cp_write_file_atomic(const char *path, const void *buf, size_t len, int mode,
                         char *err, size_t errlen) CP_WUR;
/* Create a whole file only if no file has that name yet, race-free between processes: the
 * content goes to a temp file, fsynced, then link()ed to path (which fails with EEXIST where
 * rename would replace), the temp unlinked and the directory fsynced. Whoever links first wins;
 * a reader never sees a partial file. 0 = created, 1 = path existed already (left as it is),
 * -1 = error (err set). mode as for cp_write_file_atomic. */
int cp_write_file_exclusive(const char *path, const void *buf, size_t len, int mode,
                            char *err, size_t errlen) CP_WUR;
/* Read a whole file (at most max bytes) into a malloc'd buffer (NUL-terminated). */
int cp_read_file(const char *path, size_t max, uint8_t **out, size_t *outlen,
                 char *err, size_t errlen) CP_WUR;
/* mkdir -p with the given mode. */
int cp_mkdirs(const char *path, int mode, char *err, size_t errlen) CP_WUR;

#endif
