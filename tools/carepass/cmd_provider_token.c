/* cmd_provider_token.c -- `carepass provider-token`: a provider's HTTP API bearer token (cpp_...). */
#include "cli.h"

#include <stdio.h>
#include <string.h>

#include "cp_catalogue.h"
#include "cp_config.h"
#include "cp_token.h"

#define DEFAULT_DAYS 90
#define MAX_DAYS (CP_TOKEN_PROVIDER_MAX_S / 86400)

static void help(FILE *out) {
  fprintf(out,
          "usage: carepass provider-token PROVIDER_ID [--days N]\n\n"
          "Print a bearer token for the gateway's provider routes (POST /v1/events):\n"
          "  Authorization: Bearer cpp_...\n"
          "The token names the provider, a random token id and its expiry (default %d days, at\n"
          "most %lld; the gateway refuses longer ones) and is MAC'd with the deployment secret\n"
          "$CAREPASS_TOKEN_SECRET (created if missing, 0600), so it must be made on a host that\n"
          "shares the gateway's secret. The provider must be in the registry ($CAREPASS_PROVIDERS).\n"
          "The token id is printed on stderr (\"token id: ...\"); keep it to revoke this one token\n"
          "with `carepass token revoke ID`. Rotating the secret invalidates every token at once.\n",
          DEFAULT_DAYS, (long long)MAX_DAYS);
}

int cmd_provider_token(int argc, char **argv) {
  const char *provider = NULL;
  long days = DEFAULT_DAYS;
  int rc = cli_token_args("provider-token", argc, argv, "PROVIDER_ID", DEFAULT_DAYS, (long)MAX_DAYS, help, &provider, &days);
  if (rc >= 0) return rc;
  if (cli_config("provider-token") != 0) return CLI_EXIT_USAGE;
  char err[CP_ERRLEN];
  prov_registry_t *reg = NULL;
  if (prov_load(cp_cfg_str(CP_OPT_PROVIDERS), &reg, err, sizeof err) != 0) {
    cli_error("provider-token", "%s", err);
    return CLI_EXIT_FAIL;
  }
  bool known = prov_find(reg, provider) != NULL;
  prov_destroy(&reg);
  if (!known) {
    cli_error("provider-token", "provider %s is not in the registry %s", provider, cp_cfg_str(CP_OPT_PROVIDERS));
    return CLI_EXIT_FAIL;
  }
  return cli_token_print("provider-token", CP_TOKEN_PROVIDER, provider, days * 86400);
}
