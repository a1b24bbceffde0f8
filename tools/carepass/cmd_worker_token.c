/* cmd_worker_token.c -- `carepass worker-token`: a worker's HTTP bearer token (cpw_...) naming their pseudonym. */
#include "cli.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cp_config.h"
#include "cp_crypto.h"
#include "cp_token.h"

#define DEFAULT_HOURS 12
#define MAX_HOURS (CP_TOKEN_WORKER_MAX_S / 3600)

static void help(FILE *out) {
  fprintf(out,
          "usage: carepass worker-token NI_NUMBER [--hours N | --days N]\n\n"
          "Print a bearer token for the gateway's worker routes (share codes, views):\n"
          "  Authorization: Bearer cpw_...\n"
          "The token's subject is the worker's keyed pseudonym (hex; computed from the NI number\n"
          "with $CAREPASS_PSEUDONYM_SECRET, the NI number itself is not in the token). It expires\n"
          "after N hours (default %d, at most %lld; --days N for whole days within that) and is\n"
          "MAC'd with $CAREPASS_TOKEN_SECRET, so it must be made on a host that shares the\n"
          "gateway's secrets. Its random id is printed on stderr (\"token id: ...\"): revoke this\n"
          "one token with `carepass token revoke ID`. In production an identity provider issues\n"
          "these tokens after signing the worker in.\n",
          DEFAULT_HOURS, (long long)MAX_HOURS);
}

int cmd_worker_token(int argc, char **argv) {
  const char *ni = NULL;
  long hours = DEFAULT_HOURS;
  for (int i = 1; i < argc; i++) {
    if (cli_is_help(argv[i])) { help(stdout); return CLI_EXIT_OK; }
    if (strcmp(argv[i], "--hours") == 0 && i + 1 < argc) {
      if (cli_parse_long(argv[++i], 1, (long)MAX_HOURS, &hours) != 0) {
        cli_error("worker-token", "--hours must be a whole number from 1 to %lld", (long long)MAX_HOURS);
        return CLI_EXIT_USAGE;
      }
      continue;
    }
    if (strcmp(argv[i], "--days") == 0 && i + 1 < argc) {
      long days = 0;
      if (cli_parse_long(argv[++i], 1, (long)(MAX_HOURS / 24), &days) != 0) {
        cli_error("worker-token", "--days must be a whole number from 1 to %lld", (long long)(MAX_HOURS / 24));
        return CLI_EXIT_USAGE;
      }
      hours = days * 24;
      continue;
    }
    if (argv[i][0] == '-' || ni != NULL) {
      /* never echo what might be an NI number */
      cli_error("worker-token", "unexpected argument %d", i);
      help(stderr);
      return CLI_EXIT_USAGE;
    }
    ni = argv[i];
  }
  if (ni == NULL) {
    cli_error("worker-token", "NI_NUMBER is required");
    help(stderr);
    return CLI_EXIT_USAGE;
  }
  if (cli_config("worker-token") != 0) return CLI_EXIT_USAGE;
  char err[CP_ERRLEN], hex[2 * CP_PSEUDONYM_BYTES + 1], token[CP_TOKEN_MAX], id[CP_TOKEN_ID_HEX];
  unsigned char secret[CP_SECRET_BYTES], pseudonym[CP_PSEUDONYM_BYTES];
  int prc = cli_worker_pseudonym("worker-token", ni, pseudonym);
  if (prc != CLI_EXIT_OK) return prc;
  cp_hex(pseudonym, CP_PSEUDONYM_BYTES, hex);
  if (cp_secret_load(cp_cfg_str(CP_OPT_TOKEN_SECRET), true, secret, err, sizeof err) != 0) {
    cli_error("worker-token", "token secret: %s", err);
    return CLI_EXIT_FAIL;
  }
  int64_t expiry = (int64_t)time(NULL) + (int64_t)hours * 3600;
  int rc = cp_token_make(secret, CP_TOKEN_WORKER, hex, expiry, token, sizeof token, id);
  sodium_memzero(secret, sizeof secret);
  if (rc != 0) {
    cli_error("worker-token", "the token could not be made");
    return CLI_EXIT_FAIL;
  }
  fprintf(stderr, "token id: %s (expires %lld)\n", id, (long long)expiry);
  printf("%s\n", token);
  sodium_memzero(token, sizeof token);
  return CLI_EXIT_OK;
}
