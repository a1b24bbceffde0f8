/* cmd_token.c -- `carepass token`: revoke one API token by its id (the revocation list) and show a token's id. */
#include "cli.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cp_config.h"
#include "cp_crypto.h"
#include "cp_token.h"

static void help(FILE *out) {
  fprintf(out,
          "usage: carepass token revoke ID|TOKEN\n"
          "       carepass token id TOKEN\n\n"
          "revoke  add a token id (32 hex digits, printed on stderr when the token was made) to the\n"
          "        revocation list $CAREPASS_REVOKED_TOKENS (created if missing, 0600; written\n"
          "        whole: temp file, fsync, rename, directory fsync). Given a whole token (cpp_...,\n"
          "        cpw_... or cpe_...), its id is read from it (it must be genuine: $CAREPASS_TOKEN_SECRET).\n"
          "        A running gateway re-reads the list when it changes: the token is refused\n"
          "        (401 TOKEN_REVOKED) from its next request on, without a restart.\n"
          "id      print a genuine token's id, kind and expiry (unix seconds).\n"
          "The list holds only random ids, never a token, a subject or any personal data.\n");
}

/* Read a whole token's info with the deployment secret; CLI exit status. */
static int token_info(const char *tok, cp_token_info_t *info, const char **kind_out) {
  char err[CP_ERRLEN];
  unsigned char secret[CP_SECRET_BYTES];
  if (cp_secret_load(cp_cfg_str(CP_OPT_TOKEN_SECRET), false, secret, err, sizeof err) != 0) {
    cli_error("token", "token secret: %s", err);
    return CLI_EXIT_FAIL;
  }
  cp_token_kind_t kind = CP_TOKEN_PROVIDER;
  if (cp_token_kind_of(tok, &kind) != 0) kind = CP_TOKEN_PROVIDER; /* then cp_token_check says MALFORMED */
  cp_token_status_t st = cp_token_check(secret, kind, tok, info, (int64_t)time(NULL));
  sodium_memzero(secret, sizeof secret);
  /* an expired or over-long token is still genuine: its id can be shown and revoked */
  if (st != CP_TOKEN_OK && st != CP_TOKEN_EXPIRED && st != CP_TOKEN_TOO_LONG) {
    cli_error("token", "%s", cp_token_status_text(st)); /* never echo the token */
    return CLI_EXIT_FAIL;
  }
  *kind_out = cp_token_kind_name(kind);
  return CLI_EXIT_OK;
}

int cmd_token(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (cli_is_help(argv[i])) { help(stdout); return CLI_EXIT_OK; }
  if (argc != 3 || (strcmp(argv[1], "revoke") != 0 && strcmp(argv[1], "id") != 0)) {
    cli_error("token", "expected `token revoke ID|TOKEN` or `token id TOKEN`");
    help(stderr);
    return CLI_EXIT_USAGE;
  }
  if (cli_config("token") != 0) return CLI_EXIT_USAGE;
  const char *arg = argv[2];
  cp_token_kind_t whole_kind;
  bool whole = cp_token_kind_of(arg, &whole_kind) == 0;
  cp_token_info_t info;
  memset(&info, 0, sizeof info);
  const char *kind = "";
  if (strcmp(argv[1], "id") == 0) {
    if (!whole) {
      cli_error("token", "`token id` takes a whole token (cpp_..., cpw_... or cpe_...)");
      return CLI_EXIT_USAGE;
    }
    int rc = token_info(arg, &info, &kind);
    if (rc == CLI_EXIT_OK) printf("%s %s %lld\n", info.id_hex, kind, (long long)info.expiry);
    sodium_memzero(&info, sizeof info);
    return rc;
  }
  char id[CP_TOKEN_ID_HEX];
  if (whole) {
    int rc = token_info(arg, &info, &kind);
    if (rc != CLI_EXIT_OK) return rc;
    snprintf(id, sizeof id, "%s", info.id_hex);
    sodium_memzero(&info, sizeof info);
  } else {
    uint8_t bin[CP_TOKEN_ID_BYTES];
    if (cp_token_id_parse(arg, bin) != 0) {
      cli_error("token", "not a token id (32 hex digits) or a token (cpp_..., cpw_... or cpe_...)");
      return CLI_EXIT_USAGE;
    }
    cp_hex(bin, CP_TOKEN_ID_BYTES, id); /* lowercase, as the list stores it */
  }
  char err[CP_ERRLEN];
  bool added = false;
  const char *path = cp_cfg_str(CP_OPT_REVOKED_TOKENS);
  if (cp_token_revoke(path, id, &added, err, sizeof err) != 0) {
    cli_error("token", "%s", err);
    return CLI_EXIT_FAIL;
  }
  printf("%s token %s in %s\n", added ? "revoked" : "already revoked:", id, path);
  return CLI_EXIT_OK;
}
