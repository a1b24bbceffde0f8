/* cmd_proof.c -- `carepass proof`: write the c2sp.org/tlog-proof@v1 bundle of one register entry. */
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cp_bundle.h"
#include "cp_config.h"
#include "cp_register.h"

static void help(FILE *out) {
  fprintf(out,
          "usage: carepass proof INDEX [--out FILE]\n\n"
          "Write a tlog-proof (c2sp.org/tlog-proof@v1) for register entry INDEX of\n"
          "$CAREPASS_REGISTER_DIR: the entry (SignedEntry bytes, base64, on the `extra`\n"
          "line), its index, its inclusion proof and the current signed checkpoint.\n"
          "`carepass verify FILE --vkey VKEY` checks it offline.\n\n"
          "  --out FILE   write to FILE (atomically) instead of standard output\n");
}

/* Write text to path atomically, or to stdout when path is NULL. */
int cli_write_output(const char *cmd, const char *path, const char *text, size_t len) {
  char err[CP_ERRLEN];
  if (path == NULL) {
    if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0) {
      cli_error(cmd, "writing standard output failed");
      return -1;
    }
    return 0;
  }
  if (cp_write_file_atomic(path, text, len, 0644, err, sizeof err) != 0) {
    cli_error(cmd, "%s", err);
    return -1;
  }
  return 0;
}

int cmd_proof(int argc, char **argv) {
  const char *idx_s = NULL, *out = NULL;
  for (int i = 1; i < argc; i++) {
    if (cli_is_help(argv[i])) { help(stdout); return CLI_EXIT_OK; }
    if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) out = argv[++i];
    else if (argv[i][0] != '-' && idx_s == NULL) idx_s = argv[i];
    else {
      cli_error("proof", "unexpected argument \"%s\"", argv[i]);
      help(stderr);
      return CLI_EXIT_USAGE;
    }
  }
  long idx;
  if (idx_s == NULL || cli_parse_long(idx_s, 0, INT64_MAX, &idx) != 0) {
    cli_error("proof", "INDEX must be a register index (a decimal number)");
    help(stderr);
    return CLI_EXIT_USAGE;
  }
  if (cli_config("proof") != 0) return CLI_EXIT_USAGE;
  char err[CP_ERRLEN];
  reg_log_t *log = NULL;
  cp_tlog_proof_t p = {0};
  char *text = NULL;
  size_t len = 0;
  int rc = CLI_EXIT_FAIL;
  if (reg_open(cp_cfg_str(CP_OPT_REGISTER_DIR), NULL, &log, err, sizeof err) != 0) {
    cli_error("proof", "register: %s", err);
    goto out;
  }
  if (cp_tlog_proof_from_log(log, (uint64_t)idx, &p, err, sizeof err) != 0 ||
      cp_tlog_proof_format(&p, &text, &len, err, sizeof err) != 0) {
    cli_error("proof", "%s", err);
    goto out;
  }
  if (cli_write_output("proof", out, text, len) != 0) goto out;
  if (out != NULL)
    fprintf(stderr, "carepass proof: wrote %s (entry %ld, %zu proof hashes, checkpoint size %" PRIu64 ")\n", out, idx,
            p.nproof, reg_size(log));
  rc = CLI_EXIT_OK;
out:
  free(text);
  cp_tlog_proof_clear(&p);
  reg_close(&log);
  return rc;
}
