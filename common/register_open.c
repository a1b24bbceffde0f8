/* register_open.c -- opening a register: the writer's lock, the checkpoint and its keys, refresh, close. */
#include "register_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cp_log.h"
#include "cp_regkeys.h"

static int lock_dir(reg_log_t *log, char *err, size_t errlen) {
  char path[4200];
  snprintf(path, sizeof path, "%s/lock", log->dir);
  log->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (log->lock_fd < 0) return cp_err(err, errlen, "open %s: %s", path, strerror(errno));
  if (flock(log->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK)
      return cp_err(err, errlen, "register %s is locked by another process (is another signer running for this shard?)",
                    log->dir);
    return cp_err(err, errlen, "flock %s: %s", path, strerror(errno));
  }
  return 0;
}

/* Write a newly signed checkpoint for (size, root) and make it durable. */
static int write_checkpoint(reg_log_t *log, uint64_t size, const uint8_t root[REG_HASH_BYTES],
                            char *note, reg_dirset_t *ds, char *err, size_t errlen) {
  int n = reg_checkpoint_sign(log->key, size, root, note, REG_CHECKPOINT_MAX + 1, err, errlen);
  if (n < 0) return -1;
  if (reg_file_write(log->dir, "checkpoint", note, (size_t)n, ds, err, errlen) != 0) return -1;
  return reg_dirset_sync(ds, err, errlen);
}

/* Reader: (re)load the verifier keys from dir/vkeys, or dir/vkey when there is no
 * vkeys (reg_vkeys_read). 1 when neither file exists (the keys known so far, if
 * any, are kept), 0 when loaded, -1 (err) when a file is unreadable or malformed.
 *
 * Trust: vkeys is written next to the register by the signer and by the
 * operator's `carepass rotate-key` (which appends the new key before the signer
 * signs with it), so a long-running reader follows a rotation without a restart.
 * Trusting these files means trusting whoever can write the register directory --
 * who could also write its checkpoint. A reader that must not trust the
 * directory's own key files (an auditor, a mirror, an employer) brings its own
 * verifier key to the offline tools instead (carepass audit / verify --vkey). */
static int reader_load_vkeys(reg_log_t *log, char *err, size_t errlen) {
  char path[4200];
  struct stat st;
  snprintf(path, sizeof path, "%s/vkeys", log->dir);
  bool have = stat(path, &st) == 0;
  snprintf(path, sizeof path, "%s/vkey", log->dir);
  if (!have && stat(path, &st) != 0) return 1;
  char **v = NULL;
  size_t n = 0;
  if (reg_vkeys_read(log->dir, &v, &n, err, errlen) != 0) return -1;
  reg_vkeys_free(&log->vkeys, log->nvkeys);
  log->vkeys = v;
  log->nvkeys = n;
  return 0;
}

/* Check a checkpoint note: the writer with its own key; a reader with any key in
 * dir/vkeys (re-read once when the keys known so far do not verify it: a rotation).
 * A reader of a register that has no key files yet (a signer that has not published
 * its key) parses the note unverified, as before; once keys are known it never goes
 * back to that. */
static int check_note(reg_log_t *log, const char *note, size_t len, uint64_t *size,
                      uint8_t root[REG_HASH_BYTES], char *err, size_t errlen) {
  if (log->key != NULL) return reg_checkpoint_open(note, len, log->vkey, NULL, 0, size, root, err, errlen);
  char verr[CP_ERRLEN], kerr[CP_ERRLEN];
  if (log->nvkeys > 0 &&
      reg_checkpoint_open_any(note, len, (const char *const *)log->vkeys, log->nvkeys, NULL, 0, size, root,
                              NULL, verr, sizeof verr) == 0)
    return 0;
  if (reader_load_vkeys(log, kerr, sizeof kerr) < 0) {
    if (log->nvkeys == 0) return cp_err(err, errlen, "%s", kerr);
    return cp_err(err, errlen, "%s; re-reading the verifier keys failed: %s", verr, kerr);
  }
  if (log->nvkeys == 0) return reg_checkpoint_parse(note, len, NULL, 0, size, root, err, errlen);
  return reg_checkpoint_open_any(note, len, (const char *const *)log->vkeys, log->nvkeys, NULL, 0, size, root,
                                 NULL, err, errlen);
}

/* Read and check dir/checkpoint into size/root/note. */
static int read_checkpoint(reg_log_t *log, uint64_t *size, uint8_t root[REG_HASH_BYTES], char *note,
                           char *err, size_t errlen) {
  uint8_t *buf = NULL;
  size_t len = 0;
  char rerr[CP_ERRLEN];
  if (reg_file_read(log->dir, "checkpoint", REG_CHECKPOINT_MAX, &buf, &len, rerr, sizeof rerr) != 0)
    return cp_err(err, errlen, "register checkpoint unreadable: %s", rerr);
  char cerr[CP_ERRLEN];
  cerr[0] = '\0';
  int rc = check_note(log, (char *)buf, len, size, root, cerr, sizeof cerr);
  if (rc == 0 && memchr(buf, '\0', len) != NULL) {
    rc = -1;
    snprintf(cerr, sizeof cerr, "checkpoint contains a NUL byte");
  }
  if (rc == 0) memcpy(note, buf, len + 1);
  free(buf);
  if (rc != 0) return cp_err(err, errlen, "register checkpoint %s/checkpoint refused: %s", log->dir, cerr);
  return 0;
}

int reg_open(const char *dir, const cp_signkey_t *key, reg_log_t **out, char *err, size_t errlen) {
  *out = NULL;
  reg_log_t *log = cp_xcalloc(1, sizeof *log);
  log->lock_fd = -1;
  log->key = key;
  log->dir = cp_strdup(dir);
  reg_dirset_t ds = {0};
  if (strlen(dir) > 4000) {
    cp_err(err, errlen, "register directory path is too long");
    goto err;
  }
  if (key != NULL) {
    if (cp_mkdirs(dir, 0755, err, errlen) != 0) goto err;
    if (lock_dir(log, err, errlen) != 0) goto err;
    if (cp_vkey_format(key->name, key->pk, log->vkey, sizeof log->vkey) != 0) {
      cp_err(err, errlen, "cannot format the verifier key of %s", key->name);
      goto err;
    }
    log->edge = cp_xcalloc((size_t)REG_LEVELS * REG_TILE_WIDTH, sizeof(reg_hash_t));
  } else if (reader_load_vkeys(log, err, errlen) < 0) {
    goto err;   /* the keys are re-read by check_note when a rotation needs it */
  }

  char path[4200];
  snprintf(path, sizeof path, "%s/checkpoint", dir);
  struct stat st;
  if (stat(path, &st) != 0 && errno == ENOENT) {
    if (key == NULL) {
      cp_err(err, errlen, "register %s has no checkpoint (has the signer run yet?)", dir);
      goto err;
    }
    snprintf(path, sizeof path, "%s/tile", dir);
    if (stat(path, &st) == 0) {
      cp_err(err, errlen, "register %s has tiles but no checkpoint; refusing to guess its size (restore the checkpoint file)", dir);
      goto err;
    }
    log->size = 0;
    reg_empty_root(log->root);
    if (write_checkpoint(log, 0, log->root, log->note, &ds, err, errlen) != 0) goto err;
  } else if (read_checkpoint(log, &log->size, log->root, log->note, err, errlen) != 0) {
    goto err;
  }
  if (key != NULL) {
    if (reg_recover_edge(log, &ds, err, errlen) != 0) goto err;
    uint64_t removed = reg_recover_discard(log, &ds);
    /* made durable, so that a power cut cannot bring stale files back beside new ones */
    if (reg_dirset_sync(&ds, err, errlen) != 0) goto err;
    if (removed > 0)
      cp_log_warn("register: discarded the files of a batch that was never checkpointed",
                  CP_KV_STR("dir", dir), CP_KV_INT("files", removed), CP_KV_INT("size", log->size), CP_KV_END);
  }
  if (reg_recover_check_root(log, log->size, log->root, err, errlen) != 0) goto err;
  if (key != NULL && reg_recover_load_edge(log, err, errlen) != 0) goto err;
  reg_dirset_free(&ds);
  *out = log;
  return 0;
err:
  reg_dirset_free(&ds);
  reg_close(&log);
  return -1;
}

void reg_close(reg_log_t **logp) {
  if (logp == NULL || *logp == NULL) return;
  reg_log_t *log = *logp;
  if (log->lock_fd >= 0) close(log->lock_fd);   /* releases the flock */
  reg_cache_clear(log);
  free(log->edge);
  free(log->bundle);
  reg_vkeys_free(&log->vkeys, log->nvkeys);
  free(log->dir);
  free(log);
  *logp = NULL;
}

int reg_refresh(reg_log_t *log, char *err, size_t errlen) {
  if (log->key != NULL) return 0;   /* the writer is always current */
  uint64_t size;
  uint8_t root[REG_HASH_BYTES];
  char *note = cp_xmalloc(REG_CHECKPOINT_MAX + 1);
  int rc = -1;
  if (read_checkpoint(log, &size, root, note, err, errlen) != 0) goto out;
  if (size < log->size) {
    cp_err(err, errlen, "register %s: checkpoint went back from %llu to %llu", log->dir,
           (unsigned long long)log->size, (unsigned long long)size);
    goto out;
  }
  if (size != log->size || memcmp(root, log->root, REG_HASH_BYTES) != 0) {
    if (reg_recover_check_root(log, size, root, err, errlen) != 0) goto out;
    log->size = size;
    memcpy(log->root, root, REG_HASH_BYTES);
    memcpy(log->note, note, REG_CHECKPOINT_MAX + 1);
  }
  rc = 0;
out:
  free(note);
  return rc;
}

uint64_t reg_size(const reg_log_t *log) { return log->size; }
bool reg_broken(const reg_log_t *log) { return log->broken; }
void reg_root(const reg_log_t *log, uint8_t root[REG_HASH_BYTES]) { memcpy(root, log->root, REG_HASH_BYTES); }
const char *reg_dir(const reg_log_t *log) { return log->dir; }
const char *reg_checkpoint_note(const reg_log_t *log) { return log->note; }
