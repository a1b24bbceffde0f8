/* register_internal.h -- private helpers shared by the register_*.c files (not a public API). */
#ifndef REGISTER_INTERNAL_H
#define REGISTER_INTERNAL_H

#include "cp_register.h"

/* Directories whose entries changed in a batch; each is fsynced once at the end. */
typedef struct {
  char **dirs;   // absolute-or-relative directory paths (malloc'd)
  size_t n;      // how many are in use
  size_t cap;    // allocated slots
} reg_dirset_t;

/* Write root/rel via rel.tmp + fsync + rename, creating missing parent directories.
 * The parent (and any directory created) is recorded in ds for reg_dirset_sync. */
int reg_file_write(const char *root, const char *rel, const void *buf, size_t len,
                   reg_dirset_t *ds, char *err, size_t errlen) CP_WUR;
/* The files of one append, written to temp files and made durable together
 * (register_log.c explains the order and why it is crash safe). */
typedef struct {
  int fd;          // the open temp file / renamed file; -1 once fsynced and closed
  char *path;      // final path (malloc'd); the temp file is path + ".tmp"
  bool renamed;    // the temp file has been renamed to path
  bool synced;     // fsync succeeded
} reg_wfile_t;

#define REG_WBATCH_OPEN_MAX 64   /* open files before a batch syncs what it has written so far */
#define REG_FSYNC_THREADS 4      /* threads fsyncing the files of a batch at once */

typedef struct {
  reg_wfile_t *f;  // files, in the order written
  size_t n;        // in use
  size_t cap;      // allocated
  size_t open;     // how many still have an open fd (not yet fsynced)
} reg_wbatch_t;

/* Write root/rel.tmp (no fsync yet; writeback is started), record its parent in ds,
 * and, when rename_now, rename it to root/rel at once. */
int reg_wbatch_write(reg_wbatch_t *wb, const char *root, const char *rel, const void *buf, size_t len,
                     bool rename_now, reg_dirset_t *ds, char *err, size_t errlen) CP_WUR;
/* Rename file i of the batch (written with rename_now false) into place. */
int reg_wbatch_rename(reg_wbatch_t *wb, size_t i, char *err, size_t errlen) CP_WUR;
/* fsync (and close) every file of the batch not yet synced. */
int reg_wbatch_sync(reg_wbatch_t *wb, char *err, size_t errlen) CP_WUR;
/* Close what is open, remove temp files never renamed, free. */
void reg_wbatch_free(reg_wbatch_t *wb);
/* Record a directory to fsync (0, or -1 when out of memory). */
int reg_dirset_add(reg_dirset_t *ds, const char *dir) CP_WUR;
/* fsync every recorded directory, then forget them. */
int reg_dirset_sync(reg_dirset_t *ds, char *err, size_t errlen) CP_WUR;
void reg_dirset_free(reg_dirset_t *ds);
/* Read root/rel (at most max bytes) into a malloc'd buffer; -1 with errno kept
 * (ENOENT when missing, EFBIG when larger than max). */
int reg_file_read(const char *root, const char *rel, size_t max, uint8_t **buf, size_t *len,
                  char *err, size_t errlen) CP_WUR;

#endif
