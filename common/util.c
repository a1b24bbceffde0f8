/* util.c -- small shared helpers: error buffers, clocks, hex, allocation, atomic file I/O. */
#include "cp_util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int cp_err(char *err, size_t errlen, const char *fmt, ...) {
  if (err != NULL && errlen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

static int64_t clock_ms(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cp_now_ms(void) { return clock_ms(CLOCK_REALTIME); }
int64_t cp_mono_ms(void) { return clock_ms(CLOCK_MONOTONIC); }

void cp_hex(const uint8_t *in, size_t len, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < len; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 0xf];
  }
  out[2 * len] = '\0';
}

static void oom(void) {
  static const char msg[] = "carepass: out of memory\n";
  ssize_t w = write(2, msg, sizeof msg - 1);
  (void)w;
  abort();
}

char *cp_strdup(const char *s) {
  char *d = strdup(s);
  if (d == NULL) oom();
  return d;
}

void *cp_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (p == NULL) oom();
  return p;
}

void *cp_xcalloc(size_t n, size_t sz) {
  void *p = calloc(n ? n : 1, sz ? sz : 1);
  if (p == NULL) oom();
  return p;
}

void *cp_xrealloc(void *ptr, size_t n) {
  void *p = realloc(ptr, n ? n : 1);
  if (p == NULL) oom();
  return p;
}

/* Directory part of path (a malloc'd copy); "." when there is none. */
static char *dir_of(const char *path) {
  char *copy = cp_strdup(path);
  char *d = cp_strdup(dirname(copy));
  free(copy);
  return d;
}

/* A unique temp name beside path (per process and per call, so threads writing the same file
 * never share one); malloc'd. */
static char *temp_name(const char *path) {
  static atomic_uint seq;
  size_t tlen = strlen(path) + 32;
  char *tmp = cp_xmalloc(tlen);
  snprintf(tmp, tlen, "%s.tmp.%ld.%u", path, (long)getpid(), atomic_fetch_add(&seq, 1));
  return tmp;
}

/* Write buf to a new file tmp with exactly mode, fsynced and closed; on failure tmp is removed. */
static int write_temp(const char *tmp, const void *buf, size_t len, int mode, char *err, size_t errlen) {
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return cp_err(err, errlen, "open %s: %s", tmp, strerror(errno));
  if (fchmod(fd, (mode_t)mode) != 0) { /* umask may have narrowed (or we want exact) */
    cp_err(err, errlen, "chmod %s: %s", tmp, strerror(errno));
    goto err;
  }
  const uint8_t *p = buf;
  size_t left = len;
  while (left > 0) {
    ssize_t w = write(fd, p, left);
    if (w < 0) {
      if (errno == EINTR) continue;
      cp_err(err, errlen, "write %s: %s", tmp, strerror(errno));
      goto err;
    }
    p += w;
    left -= (size_t)w;
  }
  if (fsync(fd) != 0) {
    cp_err(err, errlen, "fsync %s: %s", tmp, strerror(errno));
    goto err;
  }
  int cr = close(fd);
  fd = -1;
  if (cr != 0) {
    cp_err(err, errlen, "close %s: %s", tmp, strerror(errno));
    goto err;
  }
  return 0;
err:
  if (fd >= 0) close(fd);
  unlink(tmp);
  return -1;
}

/* fsync the directory of path, so a rename or link into it is durable. */
static int sync_dir_of(const char *path, char *err, size_t errlen) {
  char *dir = dir_of(path);
  int rc = 0;
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || fsync(dfd) != 0) rc = cp_err(err, errlen, "fsync directory %s: %s", dir, strerror(errno));
  if (dfd >= 0) close(dfd);
  free(dir);
  return rc;
}

int cp_write_file_atomic(const char *path, const void *buf, size_t len, int mode,
                         char *err, size_t errlen) {
  char *tmp = temp_name(path);
  int rc = write_temp(tmp, buf, len, mode, err, errlen);
  if (rc == 0 && rename(tmp, path) != 0) {
    rc = cp_err(err, errlen, "rename %s to %s: %s", tmp, path, strerror(errno));
    unlink(tmp);
  }
  /* a failed directory sync is reported, though the file is in place */
  if (rc == 0) rc = sync_dir_of(path, err, errlen);
  free(tmp);
  return rc;
}

int cp_write_file_exclusive(const char *path, const void *buf, size_t len, int mode,
                            char *err, size_t errlen) {
  char *tmp = temp_name(path);
  int rc = write_temp(tmp, buf, len, mode, err, errlen);
  if (rc == 0) {
    if (link(tmp, path) != 0) {
      rc = errno == EEXIST ? 1 : cp_err(err, errlen, "link %s to %s: %s", tmp, path, strerror(errno));
    }
    unlink(tmp);   /* path (if it is ours) keeps the inode */
  }
  if (rc == 0) rc = sync_dir_of(path, err, errlen);
  free(tmp);
  return rc;
}

int cp_read_file(const char *path, size_t max, uint8_t **out, size_t *outlen,
                 char *err, size_t errlen) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  uint8_t *buf = NULL;
  if (fd < 0) return cp_err(err, errlen, "open %s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    cp_err(err, errlen, "stat %s: %s", path, strerror(errno));
    goto err;
  }
  if (st.st_size < 0 || (uint64_t)st.st_size > max) {
    cp_err(err, errlen, "%s is %lld bytes; the limit is %zu", path, (long long)st.st_size, max);
    goto err;
  }
  size_t cap = (size_t)st.st_size, n = 0;
  buf = cp_xmalloc(cap + 1);
  for (;;) {
    if (n == cap) { /* file grew (or is a pipe/proc file): read on up to max */
      if (cap >= max) {
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r == 0) break;
        cp_err(err, errlen, "%s is larger than the limit of %zu bytes", path, max);
        goto err;
      }
      cap = cap * 2 + 4096 > max ? max : cap * 2 + 4096;
      uint8_t *nb = realloc(buf, cap + 1);
      if (nb == NULL) oom();
      buf = nb;
    }
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0) {
      if (errno == EINTR) continue;
      cp_err(err, errlen, "read %s: %s", path, strerror(errno));
      goto err;
    }
    if (r == 0) break;
    n += (size_t)r;
  }
  close(fd);
  buf[n] = '\0';
  *out = buf;
  if (outlen) *outlen = n;
  return 0;
err:
  close(fd);
  free(buf);
  return -1;
}

int cp_mkdirs(const char *path, int mode, char *err, size_t errlen) {
  if (path[0] == '\0') return cp_err(err, errlen, "mkdir: empty path");
  char *p = cp_strdup(path);
  size_t len = strlen(p);
  while (len > 1 && p[len - 1] == '/') p[--len] = '\0';
  for (char *s = p + 1; ; s++) {
    bool end = (*s == '\0');
    if (*s == '/' || end) {
      char save = *s;
      *s = '\0';
      if (mkdir(p, (mode_t)mode) != 0 && errno != EEXIST) {
        cp_err(err, errlen, "mkdir %s: %s", p, strerror(errno));
        free(p);
        return -1;
      }
      *s = save;
      if (end) break;
    }
  }
  struct stat st;
  if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
    cp_err(err, errlen, "%s is not a directory", p);
    free(p);
    return -1;
  }
  free(p);
  return 0;
}
