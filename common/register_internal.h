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
