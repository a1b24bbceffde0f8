/* gw_log.c -- the register served read-only over HTTP, in the C2SP tlog-tiles layout:
 *   GET /log/checkpoint                  the signed checkpoint note (text/plain; no-cache)
 *   GET /log/tile/<L>/<N>[.p/<W>]        hash tiles       (application/octet-stream)
 *   GET /log/tile/entries/<N>[.p/<W>]    entry bundles    (application/octet-stream)
 * Full tiles never change: Cache-Control "public, max-age=31536000, immutable". Partial tiles
 * may be replaced by the full tile (and deleted), so they are cached briefly; the checkpoint is
 * revalidated every time.
 * Safety: the request path is never used as a file name. It is parsed with reg_tile_parse_path,
 * which accepts the canonical form only (so "..", "%2e%2e", "//", absolute paths, leading zeros
 * and non-canonical x-paths are refused with 400 BAD_PATH), and the file name is rebuilt from
 * the parsed numbers. Only tiles covered by the current checkpoint are served (404 otherwise),
 * so nothing a crashed batch left behind is ever published. */
#include "gw_core_routes.h"
#include "gw_http.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define GW_CACHE_FULL "public, max-age=31536000, immutable"
#define GW_CACHE_PARTIAL "public, max-age=60"
#define GW_CACHE_CHECKPOINT "no-cache"

/* The last checkpoint size seen (re-read when a request asks for more). */
static pthread_mutex_t ck_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t ck_size;   // tree size of the last checkpoint read (guarded by ck_lock)

/* Read the checkpoint note (malloc'd, NUL-terminated). */
static int read_checkpoint(gw_t *gw, uint8_t **buf, size_t *len, char *err, size_t errlen) {
  char path[4200];
  snprintf(path, sizeof path, "%s/checkpoint", gw->cfg.register_dir);
  return cp_read_file(path, REG_CHECKPOINT_MAX, buf, len, err, errlen);
}

/* Current tree size from the checkpoint file; -1 if unreadable. */
static int current_size(gw_t *gw, uint64_t *size) {
  uint8_t *buf = NULL;
  size_t len = 0;
  uint8_t root[REG_HASH_BYTES];
  char err[CP_ERRLEN];
  if (read_checkpoint(gw, &buf, &len, err, sizeof err) != 0) return -1;
  int rc = reg_checkpoint_parse((const char *)buf, len, NULL, 0, size, root, err, sizeof err);
  free(buf);
  if (rc != 0) return -1;
  pthread_mutex_lock(&ck_lock);
  if (*size > ck_size) ck_size = *size;
  pthread_mutex_unlock(&ck_lock);
  return 0;
}

void gw_checkpoint_get(gw_req_t *req) {
  uint8_t *buf = NULL;
  size_t len = 0;
  char err[CP_ERRLEN];
  if (read_checkpoint(req->gw, &buf, &len, err, sizeof err) != 0) {
    gw_reply_error(req, 404, GW_E_NOT_FOUND, "the register has no checkpoint yet");
    return;
  }
  gw_reply_take(req, 200, "text/plain; charset=utf-8", buf, len);
  gw_reply_header(req, MHD_HTTP_HEADER_CACHE_CONTROL, GW_CACHE_CHECKPOINT);
}

/* Does the tree of `size` leaves hold tile (level, index) with at least `width` hashes? */
static bool covered(uint64_t size, int level, uint64_t index, unsigned width) {
  unsigned w = reg_tile_width(size, level, index);
  return w != 0 && w >= width;
}

void gw_tile_get(gw_req_t *req) {
  gw_t *gw = req->gw;
  char path[REG_PATH_MAX + 8];
  int level = 0;
  uint64_t index = 0;
  unsigned width = 0;
  if (strlen(req->rest) >= REG_PATH_MAX ||
      snprintf(path, sizeof path, "tile/%s", req->rest) >= (int)sizeof path ||
      reg_tile_parse_path(path, &level, &index, &width) != 0 || level >= REG_LEVELS) {
    gw_reply_error(req, 400, GW_E_BAD_PATH,
                   "not a tile path: use /log/tile/<level>/<N>[.p/<width>] or /log/tile/entries/<N>[.p/<width>] "
                   "in the canonical tlog-tiles form");
    return;
  }
  /* the file name is rebuilt from the numbers, never taken from the request */
  char rel[REG_PATH_MAX];
  if (reg_tile_path(rel, sizeof rel, level, index, width) != 0) {
    gw_reply_error(req, 400, GW_E_BAD_PATH, "not a tile path");
    return;
  }
  pthread_mutex_lock(&ck_lock);
  uint64_t size = ck_size;
  pthread_mutex_unlock(&ck_lock);
  if (!covered(size, level, index, width) && (current_size(gw, &size) != 0 || !covered(size, level, index, width))) {
    gw_reply_error(req, 404, GW_E_NOT_FOUND, "the register has no such tile at its current size");
    return;
  }
  char file[4200 + REG_PATH_MAX];
  snprintf(file, sizeof file, "%s/%s", gw->cfg.register_dir, rel);
  int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    if (fd >= 0) close(fd);
    /* a partial tile the signer replaced by the full one is gone: say so, clients fetch the full tile */
    gw_reply_error(req, 404, GW_E_NOT_FOUND, "the register has no such tile at its current size");
    return;
  }
  struct MHD_Response *r = MHD_create_response_from_fd((uint64_t)st.st_size, fd); /* MHD closes fd */
  if (r == NULL) {
    close(fd);
    gw_reply_error(req, 500, GW_E_INTERNAL, "the tile could not be read");
    return;
  }
  gw_reply_response(req, 200, r, "application/octet-stream");
  gw_reply_header(req, MHD_HTTP_HEADER_CACHE_CONTROL, width == REG_TILE_WIDTH ? GW_CACHE_FULL : GW_CACHE_PARTIAL);
}
