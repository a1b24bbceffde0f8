/* cmd_keygen.c -- `carepass keygen`: make a provider's CurveZMQ key pair and print the public key. */
#include "cli.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "cp_crypto.h"

static void help(FILE *out) {
  fprintf(out,
          "usage: carepass keygen --out FILE [--force]\n\n"
          "Make a CurveZMQ key pair for a training provider. FILE (mode 0600) holds the\n"
          "pair; FILE.pub holds the public key, which goes into the provider registry\n"
          "(curve_public_key). The public key (Z85) is printed on stdout.\n\n"
          "  --out FILE   where to write the key pair\n"
          "  --force      replace an existing key pair (the old key stops working)\n");
}

int cmd_keygen(int argc, char **argv) {
  const char *out = NULL;
  bool force = false;
  for (int i = 1; i < argc; i++) {
    if (cli_is_help(argv[i])) { help(stdout); return CLI_EXIT_OK; }
    if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) out = argv[++i];
    else if (strcmp(argv[i], "--force") == 0) force = true;
    else {
      cli_error("keygen", "unexpected argument \"%s\"", argv[i]);
      help(stderr);
      return CLI_EXIT_USAGE;
    }
  }
  if (out == NULL) {
    cli_error("keygen", "--out FILE is required");
    help(stderr);
    return CLI_EXIT_USAGE;
  }
  if (access(out, F_OK) == 0) {
    if (!force) {
      cli_error("keygen", "%s already exists; not overwriting it (use --force to replace it)", out);
      return CLI_EXIT_FAIL;
    }
    if (unlink(out) != 0) {
      cli_error("keygen", "cannot remove %s: %s", out, strerror(errno));
      return CLI_EXIT_FAIL;
    }
  }
  char pub[41], sec[41], err[CP_ERRLEN];
  if (cp_curve_load(out, true, pub, sec, err, sizeof err) != 0) {
    cli_error("keygen", "%s", err);
    return CLI_EXIT_FAIL;
  }
  sodium_memzero(sec, sizeof sec);
  printf("%s\n", pub);
  return CLI_EXIT_OK;
}
