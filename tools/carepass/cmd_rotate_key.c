/* cmd_rotate_key.c -- `carepass rotate-key`: a new register signing key, announced in the log by the old one. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cp_config.h"
#include "cp_crypto.h"
#include "cp_regkeys.h"
#include "cp_register.h"

#define CMD "rotate-key"

static void help(FILE *out) {
  fprintf(out,
          "usage: carepass rotate-key [--key FILE] [--dir REGISTER_DIR]\n\n"
          "Replace the register's signing key. Run it while the shard's signer is\n"
          "stopped: it takes the register lock with the current key, makes a new key,\n"
          "appends a key entry announcing it (signed by the current key), writes a\n"
          "checkpoint signed by both keys, adds the new verifier key to <dir>/vkeys\n"
          "(every key ever used, oldest first) and <dir>/vkey, moves the old key file\n"
          "to <file>.retired-<keyid> and writes the new key to <file>. The old key\n"
          "stays valid for every index up to and including its handover entry.\n"
          "An interrupted rotation is finished by running the command again.\n\n"
          "  --key FILE   the current signing key (default $CAREPASS_SIGNING_KEY)\n"
          "  --dir DIR    the register directory (default $CAREPASS_REGISTER_DIR)\n");
}

static bool exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* fsync the directory holding path (after renames). */
static int sync_parent(const char *path, char *err, size_t errlen) {
  char *d = cp_strdup(path);
  const char *dir = dirname(d);
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int rc = 0;
  if (fd < 0 || fsync(fd) != 0) rc = cp_err(err, errlen, "fsync %s: %s", dir, strerror(errno));
  if (fd >= 0) close(fd);
  free(d);
  return rc;
}

/* Install the new key file: old -> old.retired-<id>, new -> old, directory fsynced. */
static int swap_key_files(const char *keypath, const char *newpath, const char *retired, char *err,
                          size_t errlen) {
  if (exists(keypath) && rename(keypath, retired) != 0)
    return cp_err(err, errlen, "rename %s to %s: %s", keypath, retired, strerror(errno));
  if (chmod(retired, 0600) != 0) return cp_err(err, errlen, "chmod %s: %s", retired, strerror(errno));
  if (rename(newpath, keypath) != 0)
    return cp_err(err, errlen, "rename %s to %s: %s", newpath, keypath, strerror(errno));
  return sync_parent(keypath, err, errlen);
}

int cmd_rotate_key(int argc, char **argv) {
  const char *keypath = NULL, *dir = NULL;
  for (int i = 1; i < argc; i++) {
    if (cli_is_help(argv[i])) {
      help(stdout);
      return CLI_EXIT_OK;
    } else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc) {
      keypath = argv[++i];
    } else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
      dir = argv[++i];
    } else {
      cli_error(CMD, "unexpected argument \"%s\" (try --help)", argv[i]);
      return CLI_EXIT_USAGE;
    }
  }
  if (cli_config(CMD) != 0) return CLI_EXIT_USAGE;
  if (keypath == NULL) keypath = cp_cfg_str(CP_OPT_SIGNING_KEY);
  if (dir == NULL) dir = cp_cfg_str(CP_OPT_REGISTER_DIR);

  char err[CP_ERRLEN], newpath[4200], retired[4300], cpath[4200];
  cp_signkey_t oldk, newk;
  memset(&oldk, 0, sizeof oldk);
  memset(&newk, 0, sizeof newk);
  reg_log_t *log = NULL;
  reg_keyspan_t *spans = NULL;
  size_t nspans = 0;
  int rc = CLI_EXIT_FAIL;
  snprintf(newpath, sizeof newpath, "%s.new", keypath);
  snprintf(cpath, sizeof cpath, "%s/checkpoint", dir);
  if (!exists(cpath)) {
    cli_error(CMD, "%s has no checkpoint: no register to rotate (start the signer once first)", dir);
    return CLI_EXIT_FAIL;
  }
  if (!exists(keypath) && exists(newpath)) {
    /* the previous run stopped between moving the old key aside and installing the new one */
    if (rename(newpath, keypath) != 0 || sync_parent(keypath, err, sizeof err) != 0) {
      cli_error(CMD, "finishing the interrupted rotation: rename %s: %s", newpath, strerror(errno));
      return CLI_EXIT_FAIL;
    }
    printf("finished an interrupted rotation: %s is the new key\n", keypath);
    return CLI_EXIT_OK;
  }
  if (cp_signkey_load(keypath, cp_cfg_str(CP_OPT_LOG_ORIGIN), false, &oldk, err, sizeof err) != 0) {
    cli_error(CMD, "current key: %s", err);
    goto out;
  }
  if (reg_open(dir, &oldk, &log, err, sizeof err) != 0) {
    if (strstr(err, "locked") != NULL)
      cli_error(CMD, "%s (stop the shard's signer before rotating its key)", err);
    else
      cli_error(CMD, "cannot open the register with the current key: %s", err);
    goto out;
  }
  if (reg_keys_load(log, &spans, &nspans, err, sizeof err) != 0) {
    cli_error(CMD, "key history: %s", err);
    goto out;
  }
  /* the new key: reuse the one an interrupted run already made, else make it now (0600) */
  bool resumed = exists(newpath);
  if (cp_signkey_load(newpath, oldk.name, true, &newk, err, sizeof err) != 0) {
    cli_error(CMD, "new key: %s", err);
    goto out;
  }
  if (strcmp(newk.name, oldk.name) != 0) {
    cli_error(CMD, "%s names key \"%s\", not \"%s\"; remove it and run again", newpath, newk.name, oldk.name);
    goto out;
  }
  const reg_keyspan_t *cur = &spans[nspans - 1];
  uint64_t handover;
  if (memcmp(cur->key_id, oldk.key_id, CP_KEYID_BYTES) == 0) {
    uint8_t *e = NULL;
    size_t len = 0;
    if (reg_key_entry_build(&oldk, newk.name, newk.pk, cp_now_ms() / 1000, &e, &len, err, sizeof err) != 0) {
      cli_error(CMD, "%s", err);
      goto out;
    }
    const uint8_t *entries[1] = {e};
    int arc = reg_append(log, entries, &len, 1, &handover, err, sizeof err);
    if (arc == 0) arc = reg_keys_feed(&spans, &nspans, handover, e, len, err, sizeof err);
    free(e);
    if (arc != 0) {
      cli_error(CMD, "appending the key entry: %s", err);
      goto out;
    }
  } else if (resumed && nspans >= 2 && memcmp(cur->key_id, newk.key_id, CP_KEYID_BYTES) == 0 &&
             memcmp(spans[nspans - 2].key_id, oldk.key_id, CP_KEYID_BYTES) == 0) {
    handover = cur->key_index;   /* an interrupted run appended it already */
  } else {
    char have[9], want[9];
    cp_hex(oldk.key_id, CP_KEYID_BYTES, have);
    cp_hex(cur->key_id, CP_KEYID_BYTES, want);
    cli_error(CMD, "%s holds key %s, but the register's current key is %s; refusing to rotate", keypath, have,
              want);
    goto out;
  }

  /* the handover checkpoint: same tree, signed by both keys, so a reader holding
   * either verifier key can follow the log across the rotation */
  uint8_t root[REG_HASH_BYTES];
  reg_root(log, root);
  uint64_t size = reg_size(log);
  char note[REG_CHECKPOINT_MAX + 1];
  const cp_signkey_t *both[2] = {&oldk, &newk};
  int nlen = reg_checkpoint_sign_multi(both, 2, size, root, note, sizeof note, err, sizeof err);
  if (nlen < 0 || cp_write_file_atomic(cpath, note, (size_t)nlen, 0644, err, sizeof err) != 0) {
    cli_error(CMD, "writing the handover checkpoint: %s", err);
    goto out;
  }
  char oldv[REG_VKEY_MAX], newv[REG_VKEY_MAX];
  if (cp_vkey_format(oldk.name, oldk.pk, oldv, sizeof oldv) != 0 ||
      cp_vkey_format(newk.name, newk.pk, newv, sizeof newv) != 0) {
    cli_error(CMD, "cannot format the verifier keys");
    goto out;
  }
  if (reg_vkeys_publish(dir, oldv, err, sizeof err) != 0 || reg_vkeys_publish(dir, newv, err, sizeof err) != 0) {
    cli_error(CMD, "publishing the verifier keys: %s", err);
    goto out;
  }
  char oldhex[9], newhex[9];
  cp_hex(oldk.key_id, CP_KEYID_BYTES, oldhex);
  cp_hex(newk.key_id, CP_KEYID_BYTES, newhex);
  snprintf(retired, sizeof retired, "%s.retired-%s", keypath, oldhex);
  reg_close(&log);   /* release the lock only once the files describe the new key */
  if (swap_key_files(keypath, newpath, retired, err, sizeof err) != 0) {
    cli_error(CMD, "installing the new key: %s (run the command again to finish)", err);
    goto out;
  }
  printf("key entry at index %llu: key %s valid for indexes %llu..%llu, new key %s from %llu\n",
         (unsigned long long)handover, oldhex, (unsigned long long)spans[nspans - 2].from_index,
         (unsigned long long)handover, newhex, (unsigned long long)handover + 1);
  printf("handover checkpoint (size %llu) signed by %s and %s\n", (unsigned long long)size, oldhex,
         newhex);
  printf("new key: %s\nold key moved to: %s\nverifier key: %s\n", keypath, retired, newv);
  rc = CLI_EXIT_OK;
out:
  reg_close(&log);
  free(spans);
  cp_signkey_wipe(&oldk);
  cp_signkey_wipe(&newk);
  return rc;
}
