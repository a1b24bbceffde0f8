/* register_tiles.c -- tlog-tiles paths, tile widths, entry bundles and crash-safe tile files. */
#define _GNU_SOURCE   /* sync_file_range */
#include "register_internal.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Append the 3-digit path elements of n ("x001/x234/067") at out+off. */
static int put_index(char *out, size_t outlen, size_t off, uint64_t n) {
  unsigned groups[8];   /* 2^64 has 20 digits: at most 7 groups of 3 */
  int g = 0;
  do {
    groups[g++] = (unsigned)(n % 1000);
    n /= 1000;
  } while (n > 0);
  for (int i = g - 1; i >= 0; i--) {
    int w = snprintf(out + off, outlen - off, "%s%03u%s", i > 0 ? "x" : "", groups[i],
                     i > 0 ? "/" : "");
    if (w < 0 || (size_t)w >= outlen - off) return -1;
    off += (size_t)w;
  }
  return (int)off;
}

int reg_tile_path(char *out, size_t outlen, int level, uint64_t index, unsigned width) {
  assert(level >= REG_LEVEL_ENTRIES && level < 64);
  assert(width >= 1 && width <= REG_TILE_WIDTH);
  int w = level == REG_LEVEL_ENTRIES ? snprintf(out, outlen, "tile/entries/")
                                     : snprintf(out, outlen, "tile/%d/", level);
  if (w < 0 || (size_t)w >= outlen) return -1;
  int off = put_index(out, outlen, (size_t)w, index);
  if (off < 0) return -1;
  if (width < REG_TILE_WIDTH) {
    w = snprintf(out + off, outlen - (size_t)off, ".p/%u", width);
    if (w < 0 || (size_t)w >= outlen - (size_t)off) return -1;
  }
  return 0;
}

int reg_tile_parse_path(const char *path, int *level, uint64_t *index, unsigned *width) {
  const char *p = path;
  if (strncmp(p, "tile/", 5) != 0) return -1;
  p += 5;
  int lv;
  if (strncmp(p, "entries/", 8) == 0) {
    lv = REG_LEVEL_ENTRIES;
    p += 8;
  } else {
    if (p[0] < '0' || p[0] > '9') return -1;
    lv = p[0] - '0';
    p++;
    if (p[0] >= '0' && p[0] <= '9') {
      if (lv == 0) return -1;   /* no leading zero */
      lv = lv * 10 + (p[0] - '0');
      p++;
    }
    if (lv > 63 || *p != '/') return -1;
    p++;
  }
  uint64_t n = 0;
  for (;;) {
    bool more = false;
    if (*p == 'x') {
      more = true;
      p++;
    }
    for (int i = 0; i < 3; i++) {
      if (p[i] < '0' || p[i] > '9') return -1;
    }
    unsigned g = (unsigned)((p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0'));
    if (n > (UINT64_MAX - g) / 1000) return -1;
    n = n * 1000 + g;
    p += 3;
    if (!more) break;
    if (*p != '/') return -1;
    p++;
  }
  unsigned w = REG_TILE_WIDTH;
  if (*p != '\0') {
    if (strncmp(p, ".p/", 3) != 0) return -1;
    p += 3;
    if (p[0] < '1' || p[0] > '9') return -1;
    w = 0;
    for (int i = 0; p[i] != '\0'; i++) {
      if (p[i] < '0' || p[i] > '9' || i >= 3) return -1;
      w = w * 10 + (unsigned)(p[i] - '0');
    }
    if (w >= REG_TILE_WIDTH) return -1;
  }
  /* canonical form only: re-encode and compare (rejects e.g. "x000/005") */
  char canon[REG_PATH_MAX];
  if (reg_tile_path(canon, sizeof canon, lv, n, w) != 0 || strcmp(canon, path) != 0) return -1;
  *level = lv;
  *index = n;
  *width = w;
  return 0;
}

unsigned reg_tile_width(uint64_t size, int level, uint64_t index) {
  if (level == REG_LEVEL_ENTRIES) level = 0;
  assert(level >= 0);
  if (level >= REG_LEVELS) return 0;
  uint64_t n = size >> (REG_TILE_HEIGHT * level);   /* hashes stored at this level */
  uint64_t full = n / REG_TILE_WIDTH;
  if (index < full) return REG_TILE_WIDTH;
  if (index == full) return (unsigned)(n % REG_TILE_WIDTH);
  return 0;
}

int reg_bundle_next(const uint8_t *buf, size_t buflen, size_t *pos, const uint8_t **entry,
                    size_t *len) {
  if (*pos == buflen) return 0;
  if (buflen - *pos < 2) return -1;
  size_t l = ((size_t)buf[*pos] << 8) | buf[*pos + 1];
  if (buflen - *pos - 2 < l) return -1;
  *entry = buf + *pos + 2;
  *len = l;
  *pos += 2 + l;
  return 1;
}

/* ---- crash-safe files -------------------------------------------------- */

static int dirset_add(reg_dirset_t *ds, const char *dir, size_t dirlen) {
  for (size_t i = 0; i < ds->n; i++) {
    if (strlen(ds->dirs[i]) == dirlen && memcmp(ds->dirs[i], dir, dirlen) == 0) return 0;
  }
  if (ds->n == ds->cap) {
    size_t cap = ds->cap ? ds->cap * 2 : 16;
    char **d = realloc(ds->dirs, cap * sizeof *d);
    if (d == NULL) return -1;
    ds->dirs = d;
    ds->cap = cap;
  }
  char *s = cp_xmalloc(dirlen + 1);
  memcpy(s, dir, dirlen);
  s[dirlen] = '\0';
  ds->dirs[ds->n++] = s;
  return 0;
}

/* Record the directory holding `path` (everything before the last '/'). */
static int dirset_add_parent(reg_dirset_t *ds, const char *path) {
  const char *slash = strrchr(path, '/');
  if (slash == NULL) return dirset_add(ds, ".", 1);
  return dirset_add(ds, path, (size_t)(slash - path));
}

/* mkdir every missing directory on the way to the file `path`. */
static int make_parents(char *path, reg_dirset_t *ds, char *err, size_t errlen) {
  for (char *p = strchr(path + 1, '/'); p != NULL; p = strchr(p + 1, '/')) {
    *p = '\0';
    if (mkdir(path, 0755) == 0) {
      if (dirset_add_parent(ds, path) != 0) {
        *p = '/';
        return cp_err(err, errlen, "out of memory");
      }
    } else if (errno != EEXIST) {
      int e = errno;
      cp_err(err, errlen, "mkdir %s: %s", path, strerror(e));
      *p = '/';
      return -1;
    }
    *p = '/';
  }
  return 0;
}

/* Create path.tmp (removing a stale one: a temp file left by a crash, or planted as
 * a symlink, is never written through), creating missing parents, and write buf.
 * Returns the open fd, or -1 (err) with the temp file removed. */
static int tmp_write(const char *path, const char *tmp, const void *buf, size_t len, reg_dirset_t *ds,
                     char *err, size_t errlen) {
  (void)path;
  if (unlink(tmp) != 0 && errno != ENOENT) return cp_err(err, errlen, "unlink %s: %s", tmp, strerror(errno));
  int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
  int fd = open(tmp, flags, 0644);
  if (fd < 0 && errno == ENOENT) {
    char mk[4096 + REG_PATH_MAX + 16];
    snprintf(mk, sizeof mk, "%s", tmp);
    if (make_parents(mk, ds, err, errlen) != 0) return -1;
    fd = open(tmp, flags, 0644);
  }
  if (fd < 0) return cp_err(err, errlen, "open %s: %s", tmp, strerror(errno));
  const uint8_t *p = buf;
  size_t left = len;
  while (left > 0) {
    ssize_t n = write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      unlink(tmp);
      return cp_err(err, errlen, "write %s: %s", tmp, strerror(e));
    }
    p += n;
    left -= (size_t)n;
  }
  return fd;
}

int reg_file_write(const char *root, const char *rel, const void *buf, size_t len,
                   reg_dirset_t *ds, char *err, size_t errlen) {
  char path[4096 + REG_PATH_MAX + 8], tmp[sizeof path + 8];
  int w = snprintf(path, sizeof path, "%s/%s", root, rel);
  if (w < 0 || (size_t)w >= sizeof path) return cp_err(err, errlen, "path too long: %s/%s", root, rel);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int fd = tmp_write(path, tmp, buf, len, ds, err, errlen);
  if (fd < 0) return -1;
  if (fsync(fd) != 0) {
    int e = errno;
    close(fd);
    unlink(tmp);
    return cp_err(err, errlen, "fsync %s: %s", tmp, strerror(e));
  }
  if (close(fd) != 0) {
    int e = errno;
    unlink(tmp);
    return cp_err(err, errlen, "close %s: %s", tmp, strerror(e));
  }
  /* recorded before the rename, so that a -1 always means "path not replaced" */
  if (dirset_add_parent(ds, path) != 0) {
    unlink(tmp);
    return cp_err(err, errlen, "out of memory");
  }
  if (rename(tmp, path) != 0) {
    int e = errno;
    unlink(tmp);
    return cp_err(err, errlen, "rename %s: %s", tmp, strerror(e));
  }
  return 0;
}

/* ---- a batch of files made durable together (see register_internal.h) ---- */

/* fsync (and close) files [from, n) step `step` of a batch; the first error in *err. */
typedef struct {
  reg_wbatch_t *wb;     // the batch
  size_t from;          // first file
  size_t step;          // stride
  int rc;               // 0, or -1 (err filled)
  char err[CP_ERRLEN];  // what failed
} fsync_part_t;

static void *fsync_part(void *arg) {
  fsync_part_t *p = arg;
  p->rc = 0;
  for (size_t i = p->from; i < p->wb->n; i += p->step) {
    reg_wfile_t *f = &p->wb->f[i];
    if (f->fd < 0) continue;
    int rc = fsync(f->fd);
    if (rc != 0 && p->rc == 0) p->rc = cp_err(p->err, sizeof p->err, "fsync %s: %s", f->path, strerror(errno));
    if (close(f->fd) != 0 && p->rc == 0) p->rc = cp_err(p->err, sizeof p->err, "close %s: %s", f->path, strerror(errno));
    f->fd = -1;
    f->synced = rc == 0;
  }
  return NULL;
}

/* fsync and close every file of the batch whose fd is still open. The writeback of
 * each was started by sync_file_range when it was written; the fsyncs run on
 * REG_FSYNC_THREADS threads at once, so that their waits overlap and the journal
 * commits they need are shared, instead of waiting for one file after another. */
static int wbatch_sync_open(reg_wbatch_t *wb, char *err, size_t errlen) {
  fsync_part_t parts[16];
  pthread_t th[16];
  bool started[16] = {false};
  size_t nt = REG_FSYNC_THREADS;
  if (nt > wb->open) nt = wb->open ? wb->open : 1;
  for (size_t t = 0; t < nt; t++) parts[t] = (fsync_part_t){wb, t, nt, 0, ""};
  for (size_t t = 1; t < nt; t++) started[t] = pthread_create(&th[t], NULL, fsync_part, &parts[t]) == 0;
  fsync_part(&parts[0]);
  for (size_t t = 1; t < nt; t++) {
    if (started[t]) pthread_join(th[t], NULL);
    else fsync_part(&parts[t]);
  }
  wb->open = 0;
  for (size_t t = 0; t < nt; t++)
    if (parts[t].rc != 0) return cp_err(err, errlen, "%s", parts[t].err);
  return 0;
}

int reg_wbatch_write(reg_wbatch_t *wb, const char *root, const char *rel, const void *buf, size_t len,
                     bool rename_now, reg_dirset_t *ds, char *err, size_t errlen) {
  char path[4096 + REG_PATH_MAX + 8], tmp[sizeof path + 8];
  int w = snprintf(path, sizeof path, "%s/%s", root, rel);
  if (w < 0 || (size_t)w >= sizeof path) return cp_err(err, errlen, "path too long: %s/%s", root, rel);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  /* bound the open descriptors of a huge batch: sync what is written so far */
  if (wb->open >= REG_WBATCH_OPEN_MAX && wbatch_sync_open(wb, err, errlen) != 0) return -1;
  if (wb->n == wb->cap) {
    size_t cap = wb->cap ? wb->cap * 2 : 32;
    reg_wfile_t *f = realloc(wb->f, cap * sizeof *f);
    if (f == NULL) return cp_err(err, errlen, "out of memory");
    wb->f = f;
    wb->cap = cap;
  }
  if (dirset_add_parent(ds, path) != 0) return cp_err(err, errlen, "out of memory");
  int fd = tmp_write(path, tmp, buf, len, ds, err, errlen);
  if (fd < 0) return -1;
#ifdef SYNC_FILE_RANGE_WRITE
  /* start the writeback now, so that it runs while the rest of the batch is written */
  (void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#endif
  wb->f[wb->n] = (reg_wfile_t){fd, cp_strdup(path), false, false};
  wb->n++;
  wb->open++;
  if (rename_now) return reg_wbatch_rename(wb, wb->n - 1, err, errlen);
  return 0;
}

int reg_wbatch_rename(reg_wbatch_t *wb, size_t i, char *err, size_t errlen) {
  assert(i < wb->n && !wb->f[i].renamed);
  char tmp[4096 + REG_PATH_MAX + 16];
  snprintf(tmp, sizeof tmp, "%s.tmp", wb->f[i].path);
  if (rename(tmp, wb->f[i].path) != 0) return cp_err(err, errlen, "rename %s: %s", tmp, strerror(errno));
  wb->f[i].renamed = true;
  return 0;
}

int reg_wbatch_sync(reg_wbatch_t *wb, char *err, size_t errlen) { return wbatch_sync_open(wb, err, errlen); }

void reg_wbatch_free(reg_wbatch_t *wb) {
  for (size_t i = 0; i < wb->n; i++) {
    reg_wfile_t *f = &wb->f[i];
    if (f->fd >= 0) close(f->fd);
    if (!f->renamed) {
      char tmp[4096 + REG_PATH_MAX + 16];
      snprintf(tmp, sizeof tmp, "%s.tmp", f->path);
      (void)unlink(tmp);
    }
    free(f->path);
  }
  free(wb->f);
  memset(wb, 0, sizeof *wb);
}

int reg_dirset_add(reg_dirset_t *ds, const char *dir) { return dirset_add(ds, dir, strlen(dir)); }

int reg_dirset_sync(reg_dirset_t *ds, char *err, size_t errlen) {
  int rc = 0;
  for (size_t i = 0; i < ds->n; i++) {
    int fd = open(ds->dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
      if (rc == 0) cp_err(err, errlen, "fsync directory %s: %s", ds->dirs[i], strerror(errno));
      rc = -1;
    }
    if (fd >= 0) close(fd);
    free(ds->dirs[i]);
  }
  ds->n = 0;
  return rc;
}

void reg_dirset_free(reg_dirset_t *ds) {
  for (size_t i = 0; i < ds->n; i++) free(ds->dirs[i]);
  free(ds->dirs);
  memset(ds, 0, sizeof *ds);
}

/* Open root/rel read-only without following a symbolic link anywhere below root
 * (root itself may be one) and without blocking on a FIFO: files of a register are
 * written by its signer, never links, so a link can only come from a damaged or
 * hostile directory. -1 with errno (ELOOP / ENOTDIR for a link on the way). */
static int open_inside(const char *root, const char *rel) {
  int dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return -1;
  char part[REG_PATH_MAX];
  const char *p = rel;
  for (;;) {
    const char *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    if (n == 0 || n >= sizeof part || (n <= 2 && p[0] == '.' && (n == 1 || p[1] == '.'))) {
      close(dfd);
      errno = EINVAL;   /* empty, "." or ".." components never come from reg_tile_path */
      return -1;
    }
    memcpy(part, p, n);
    part[n] = '\0';
    int fl = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (slash ? O_DIRECTORY : O_NONBLOCK);
    int fd = openat(dfd, part, fl);
    int e = errno;
    close(dfd);
    if (fd < 0) {
      errno = e;
      return -1;
    }
    if (slash == NULL) return fd;
    dfd = fd;
    p = slash + 1;
  }
}

int reg_file_read(const char *root, const char *rel, size_t max, uint8_t **buf, size_t *len,
                  char *err, size_t errlen) {
  char path[4096 + REG_PATH_MAX + 8];
  int w = snprintf(path, sizeof path, "%s/%s", root, rel);
  if (w < 0 || (size_t)w >= sizeof path) {
    errno = ENAMETOOLONG;
    return cp_err(err, errlen, "path too long: %s/%s", root, rel);
  }
  int fd = open_inside(root, rel);
  if (fd < 0) {
    int e = errno;
    if (e == ELOOP || e == ENOTDIR)
      cp_err(err, errlen, "open %s: a symbolic link or non-directory on the way; refused", path);
    else
      cp_err(err, errlen, "open %s: %s", path, strerror(e));
    errno = e;
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    cp_err(err, errlen, "stat %s: %s", path, strerror(e));
    errno = e;
    return -1;
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    cp_err(err, errlen, "%s is not a regular file; refused", path);
    errno = EINVAL;
    return -1;
  }
  if ((uint64_t)st.st_size > max) {
    close(fd);
    cp_err(err, errlen, "%s is %lld bytes; at most %zu expected", path, (long long)st.st_size, max);
    errno = EFBIG;
    return -1;
  }
  size_t sz = (size_t)st.st_size;
  uint8_t *b = cp_xmalloc(sz + 1);
  size_t got = 0;
  while (got < sz) {
    ssize_t n = read(fd, b + got, sz - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
  }
  close(fd);
  b[got] = '\0';
  *buf = b;
  *len = got;
  return 0;
}
