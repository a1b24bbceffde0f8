/* cmd_migrate.c -- `carepass migrate`: a register of entry format 1 rewritten as format 2 (issue 11,
 * item 4), into a new register under a new origin and key; the old one is left as it is,
 * read-only, for audit.
 *
 * Every entry of the old register is read (and its signature checked with the key valid at its
 * index), then written again in the new one: the same fields, except that the worker becomes a
 * fresh subject commitment from the subject key store (format 2), `revokes_index` is mapped to
 * the new indexes, and the old key history is not copied (the new register starts with its own
 * genesis key entry). issued_at keeps the time the record was first committed (validity and
 * revocation dates depend on it). A file `migrated-from` in the new register names the old
 * origin and holds its last checkpoint, so an auditor can tie the two logs together. Redis is
 * not touched: point the services at the new register and run `carepass reindex`. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "carepass/v1/register.pb-c.h"
#include "cp_codec.h"
#include "cp_config.h"
#include "cp_crypto.h"
#include "cp_register.h"
#include "cp_regkeys.h"
#include "cp_subject.h"

#define CMD "migrate"
#define BATCH 1024
#define NO_INDEX UINT64_MAX

static void help(FILE *out) {
  fprintf(out,
          "usage: carepass migrate --to DIR --origin NAME --key FILE\n\n"
          "Rewrite the register $CAREPASS_REGISTER_DIR (entry format 1: each entry names the\n"
          "worker's pseudonym) as a new register in DIR in format 2 (each entry names the\n"
          "worker by a fresh commitment, opened only through the subject key store\n"
          "$CAREPASS_SUBJECT_KEYS), under the log origin NAME and the signing key FILE\n"
          "(made, 0600, when it does not exist). Run it with the shard's signer stopped. The\n"
          "old register is not changed: keep it, read-only, for audit; DIR/migrated-from names\n"
          "its origin and holds its last checkpoint. Every old signature is checked first.\n"
          "Then set CAREPASS_REGISTER_DIR, CAREPASS_LOG_ORIGIN and CAREPASS_SIGNING_KEY to the\n"
          "new register, start the signer and run `carepass reindex`.\n");
}

typedef struct {
  reg_log_t *to;                 // the new register (writer)
  cp_signkey_t *key;             // its key
  cp_subject_store_t *subjects;  // the subject key store
  reg_keyspan_t *spans;          // the old register's key history (signatures checked with it)
  size_t nspans;
  uint64_t *map;                 // old index -> new index (NO_INDEX: not copied)
  uint8_t *batch[BATCH];         // signed entries waiting for their append
  size_t lens[BATCH];
  size_t n;
  uint64_t next;                 // index the next new entry gets
  uint64_t copied, keys;         // counts
  char *err;
  size_t errlen;
} mig_t;

static int flush_batch(mig_t *m) {
  if (m->n == 0) return 0;
  uint64_t first = 0;
  int rc = cp_subject_store_flush(m->subjects, m->err, m->errlen);
  if (rc == 0) rc = reg_append(m->to, (const uint8_t *const *)m->batch, m->lens, m->n, &first, m->err, m->errlen);
  for (size_t i = 0; i < m->n; i++) free(m->batch[i]);
  m->n = 0;
  return rc;
}

static int copy_entry(void *arg, uint64_t index, const uint8_t *entry, size_t len) {
  mig_t *m = arg;
  Carepass__V1__PassportEntry *pe = NULL;
  const reg_keyspan_t *span = NULL;
  char why[CP_ERRLEN];
  m->map[index] = NO_INDEX;
  if (reg_entry_check(m->spans, m->nspans, index, entry, len, &pe, &span, why, sizeof why) != 0)
    return cp_err(m->err, m->errlen, "entry %" PRIu64 " of the old register does not verify: %s", index, why);
  int rc = 0;
  if (pe->entry_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_KEY) {
    m->keys++;   /* the old key history stays with the old register */
    goto out;
  }
  cp_subject_t subj;
  Carepass__V1__PassportEntry ne = *pe;   /* shallow: every field as it was, but the worker */
  if (pe->version < 2) {
    if (pe->worker_pseudonym.len != CP_PSEUDONYM_BYTES) {
      rc = cp_err(m->err, m->errlen, "entry %" PRIu64 " names no worker", index);
      goto out;
    }
    cp_subject_store_new(m->subjects, pe->worker_pseudonym.data, &subj);
    ne.version = 2;
    ne.worker_pseudonym.data = NULL;
    ne.worker_pseudonym.len = 0;
    ne.subject.data = subj.subject;
    ne.subject.len = sizeof subj.subject;
    ne.subject_slot.data = subj.slot;
    ne.subject_slot.len = sizeof subj.slot;
    ne.sealed_opening.data = subj.sealed;
    ne.sealed_opening.len = sizeof subj.sealed;
  }
  if (pe->entry_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION) {
    if (pe->revokes_index >= index || m->map[pe->revokes_index] == NO_INDEX) {
      rc = cp_err(m->err, m->errlen, "entry %" PRIu64 " revokes %" PRIu64 ", which is not a copied entry before it",
                  index, pe->revokes_index);
      goto out;
    }
    ne.revokes_index = m->map[pe->revokes_index];
  }
  if (reg_entry_sign(m->key, &ne, &m->batch[m->n], &m->lens[m->n], m->err, m->errlen) != 0) {
    rc = -1;
    goto out;
  }
  m->n++;
  m->map[index] = m->next++;
  m->copied++;
  if (m->n == BATCH) rc = flush_batch(m);
out:
  protobuf_c_message_free_unpacked(&pe->base, NULL);
  return rc;
}

/* DIR/migrated-from: the old origin and its last checkpoint, written once, durably. */
static int write_provenance(const char *dir, reg_log_t *from, uint64_t copied, char *err, size_t errlen) {
  char path[4200];
  snprintf(path, sizeof path, "%s/migrated-from", dir);
  const char *note = reg_checkpoint_note(from);
  char head[256];
  snprintf(head, sizeof head, "carepass-migration/v1\nentries %" PRIu64 "\nold checkpoint follows\n", copied);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return cp_err(err, errlen, "%s: %s", path, strerror(errno));
  bool ok = write(fd, head, strlen(head)) == (ssize_t)strlen(head) &&
            write(fd, note, strlen(note)) == (ssize_t)strlen(note) && fsync(fd) == 0;
  close(fd);
  return ok ? 0 : cp_err(err, errlen, "%s: %s", path, strerror(errno));
}

int cmd_migrate(int argc, char **argv) {
  const char *to = NULL, *origin = NULL, *keyfile = NULL;
  for (int i = 1; i < argc; i++) {
    if (cli_is_help(argv[i])) {
      help(stdout);
      return CLI_EXIT_OK;
    }
    if (i + 1 < argc && strcmp(argv[i], "--to") == 0) to = argv[++i];
    else if (i + 1 < argc && strcmp(argv[i], "--origin") == 0) origin = argv[++i];
    else if (i + 1 < argc && strcmp(argv[i], "--key") == 0) keyfile = argv[++i];
    else {
      cli_error(CMD, "unexpected argument \"%s\"", argv[i]);
      help(stderr);
      return CLI_EXIT_USAGE;
    }
  }
  if (to == NULL || origin == NULL || keyfile == NULL) {
    cli_error(CMD, "--to, --origin and --key are required");
    help(stderr);
    return CLI_EXIT_USAGE;
  }
  if (cli_config(CMD) != 0) return CLI_EXIT_USAGE;
  char err[CP_ERRLEN] = "";
  int rc = CLI_EXIT_FAIL;
  mig_t m;
  memset(&m, 0, sizeof m);
  m.err = err;
  m.errlen = sizeof err;
  cp_signkey_t key;
  memset(&key, 0, sizeof key);
  reg_log_t *from = NULL;
  const char *fromdir = cp_cfg_str(CP_OPT_REGISTER_DIR);
  struct stat st;
  if (strcmp(origin, cp_cfg_str(CP_OPT_LOG_ORIGIN)) == 0) {
    cli_error(CMD, "the new register needs a new origin (not \"%s\")", origin);
    return CLI_EXIT_USAGE;
  }
  if (stat(to, &st) == 0) {
    cli_error(CMD, "%s exists: the new register goes into a new directory", to);
    return CLI_EXIT_USAGE;
  }
  if (reg_open(fromdir, NULL, &from, err, sizeof err) != 0 ||
      reg_keys_load(from, &m.spans, &m.nspans, err, sizeof err) != 0) {
    cli_error(CMD, "old register: %s", err);
    goto out;
  }
  if (cp_signkey_load(keyfile, origin, true, &key, err, sizeof err) != 0 ||
      reg_open(to, &key, &m.to, err, sizeof err) != 0) {
    cli_error(CMD, "new register: %s", err);
    goto out;
  }
  if (cp_subject_store_open(cp_cfg_str(CP_OPT_SUBJECT_KEYS), CP_SUBJECT_CREATE | CP_SUBJECT_WRITER, &m.subjects, err, sizeof err) != 0) {
    cli_error(CMD, "%s", err);
    goto out;
  }
  m.key = &key;
  /* the new register's genesis: its own key, signed by itself */
  uint8_t *g = NULL;
  size_t glen = 0;
  uint64_t first = 0;
  if (reg_key_entry_build(&key, key.name, key.pk, cp_now_ms() / 1000, &g, &glen, err, sizeof err) != 0 ||
      reg_append(m.to, (const uint8_t *const *)&g, &glen, 1, &first, err, sizeof err) != 0) {
    free(g);
    cli_error(CMD, "new register: genesis: %s", err);
    goto out;
  }
  free(g);
  m.next = 1;
  uint64_t size = reg_size(from);
  m.map = cp_xcalloc(size + 1, sizeof *m.map);
  char werr[CP_ERRLEN] = "";
  if ((size > 0 && reg_foreach_entry(from, 0, size, copy_entry, &m, werr, sizeof werr) != 0) || flush_batch(&m) != 0) {
    cli_error(CMD, "%s", err[0] ? err : werr);
    goto out;
  }
  char vkey[REG_VKEY_MAX];
  if (cp_vkey_format(key.name, key.pk, vkey, sizeof vkey) != 0 || reg_vkeys_publish(to, vkey, err, sizeof err) != 0 ||
      write_provenance(to, from, m.copied, err, sizeof err) != 0) {
    cli_error(CMD, "new register: %s", err);
    goto out;
  }
  printf("migrated %" PRIu64 " entries of %s (format 1 -> 2; %" PRIu64 " old key entries stay with it) into %s "
         "under origin %s (size %" PRIu64 "); next: point CAREPASS_REGISTER_DIR, CAREPASS_LOG_ORIGIN and "
         "CAREPASS_SIGNING_KEY at it, start the signer, run `carepass reindex`\n",
         m.copied, fromdir, m.keys, to, origin, reg_size(m.to));
  rc = CLI_EXIT_OK;
out:
  for (size_t i = 0; i < m.n; i++) free(m.batch[i]);
  free(m.map);
  free(m.spans);
  cp_subject_store_close(&m.subjects);
  reg_close(&m.to);
  reg_close(&from);
  cp_signkey_wipe(&key);
  return rc;
}
