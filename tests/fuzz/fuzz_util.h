/* fuzz_util.h -- small helpers shared by the fuzz targets (header-only: each target is one
 * executable). Quiet logging, the source tree's data files, and a file holding the input for
 * loaders that only read from a path. */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cp_log.h"

#ifndef CAREPASS_SOURCE_DIR_DEFAULT
#define CAREPASS_SOURCE_DIR_DEFAULT "."
#endif

/* Call a function marked warn_unused_result whose refusal is an expected outcome for fuzzed input. */
#define FUZZ_TRY(call) \
  do {                 \
    if ((call) != 0) { \
    }                  \
  } while (0)

/* The source tree (CAREPASS_SOURCE_DIR, else the one this was built from). */
static inline const char *fuzz_source_dir(void) {
  const char *s = getenv("CAREPASS_SOURCE_DIR");
  return s != NULL && s[0] != '\0' ? s : CAREPASS_SOURCE_DIR_DEFAULT;
}

/* path = <source dir>/<rel>. */
static inline void fuzz_source_path(char *out, size_t outlen, const char *rel) {
  snprintf(out, outlen, "%s/%s", fuzz_source_dir(), rel);
}

/* Only errors are logged: a fuzzer runs millions of inputs. */
static inline void fuzz_quiet(void) { cp_log_init("fuzz", "error"); }

/* A memfd holding the input, reachable as a path (/proc/self/fd/N) for loaders that take a
 * file name. One fd per process, rewritten for every input. */
typedef struct {
  int fd;          // the memfd (-1 before the first use)
  char path[64];   // "/proc/self/fd/<fd>"
} fuzz_file_t;

static inline const char *fuzz_file_put(fuzz_file_t *f, const uint8_t *data, size_t size) {
  if (f->fd <= 0) {
    f->fd = memfd_create("fuzz-input", 0);
    if (f->fd < 0) abort();
    snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
  }
  if (ftruncate(f->fd, 0) != 0) abort();
  size_t off = 0;
  while (off < size) {
    ssize_t w = pwrite(f->fd, data + off, size - off, (off_t)off);
    if (w <= 0) abort();
    off += (size_t)w;
  }
  return f->path;
}

#endif
