/* cmd_employer_token.c -- `carepass employer-token`: an employer's HTTP API bearer token (cpe_...). */
#include "cli.h"

#include <stdio.h>
#include <string.h>

#include "cp_config.h"
#include "cp_employers.h"
#include "cp_token.h"

#define DEFAULT_DAYS 90
#define MAX_DAYS (CP_TOKEN_EMPLOYER_MAX_S / 86400)

static void help(FILE *out) {
  fprintf(out,
          "usage: carepass employer-token EMPLOYER_ID [--days N]\n\n"
          "Print a bearer token for the gateway's employer routes:\n"
          "  Authorization: Bearer cpe_...\n"
          "With it an employer's checks (POST /v1/check, /v1/check/bundle) count against the\n"
          "employer's own failed-check ceiling instead of its address's, its subscriptions\n"
          "(POST /v1/subscriptions) are its own, listed by GET /v1/subscriptions and deleted only\n"
          "by it. The token names the employer, a random token id and its expiry (default %d days,\n"
          "at most %lld; the gateway refuses longer ones) and is MAC'd with the deployment secret\n"
          "$CAREPASS_TOKEN_SECRET (created if missing, 0600), so it must be made on a host that\n"
          "shares the gateway's secret. The employer must be in the registry ($CAREPASS_EMPLOYERS).\n"
          "The token id is printed on stderr (\"token id: ...\"); keep it to revoke this one token\n"
          "with `carepass token revoke ID`. Rotating the secret invalidates every token at once.\n",
          DEFAULT_DAYS, (long long)MAX_DAYS);
}

int cmd_employer_token(int argc, char **argv) {
  const char *employer = NULL;
  long days = DEFAULT_DAYS;
  int rc = cli_token_args("employer-token", argc, argv, "EMPLOYER_ID", DEFAULT_DAYS, (long)MAX_DAYS, help, &employer, &days);
  if (rc >= 0) return rc;
  if (cli_config("employer-token") != 0) return CLI_EXIT_USAGE;
  char err[CP_ERRLEN];
  emp_registry_t *reg = NULL;
  if (emp_load(cp_cfg_str(CP_OPT_EMPLOYERS), &reg, err, sizeof err) != 0) {
    cli_error("employer-token", "%s", err);
    return CLI_EXIT_FAIL;
  }
  bool known = emp_find(reg, employer) != NULL;
  emp_destroy(&reg);
  if (!known) {
    cli_error("employer-token", "employer %s is not in the employer registry %s; add it there first", employer,
              cp_cfg_str(CP_OPT_EMPLOYERS));
    return CLI_EXIT_FAIL;
  }
  return cli_token_print("employer-token", CP_TOKEN_EMPLOYER, employer, days * 86400);
}
