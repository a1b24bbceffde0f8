/* cmd_webhook_secret.c -- `carepass webhook-secret PROVIDER [--rotate]`: a training provider's
 * Standard Webhooks secret (whsec_, the "v1" HMAC signature), in the store notify follows. */
#include "cli.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>

#include "cp_catalogue.h"
#include "cp_config.h"
#include "cp_whsec.h"

static void help(FILE *out) {
  fprintf(out,
          "usage: carepass webhook-secret PROVIDER_ID [--rotate]\n\n"
          "A training provider's webhook secret: with it notify adds a Standard Webhooks \"v1,\" signature\n"
          "(HMAC-SHA256 over \"<webhook-id>.<webhook-timestamp>.<body>\") to every webhook sent to the\n"
          "provider's webhook_url, which any Standard Webhooks library verifies with\n"
          "Webhook(secret).verify(payload, headers); the \"v1a,\" Ed25519 signature (notify.pub) stays.\n\n"
          "  (no option)  make the provider's secret if it has none and print it (whsec_..., on stdout,\n"
          "               this once: it is not shown again). If it has one, print nothing and say so.\n"
          "  --rotate     make a new secret and print it; the one it replaces still signs, beside it,\n"
          "               for $CAREPASS_WEBHOOK_SECRET_OVERLAP_S seconds (default 86400), so the\n"
          "               provider can switch without losing a delivery. Rotating again within that\n"
          "               time drops the oldest.\n\n"
          "Hand the secret to the provider over a channel you trust. The store is\n"
          "$CAREPASS_WEBHOOK_SECRETS (default var/keys/webhook-secrets, mode 0600, never in the\n"
          "repository); a running notify re-reads it within a second: no restart. A provider with a\n"
          "webhook_url and no secret gets v1a signatures only (notify logs that once).\n"
          "The provider must be in the registry ($CAREPASS_PROVIDERS).\n"
          "Exit status: 0 done, 1 failed (unknown provider, unreadable store), 2 usage.\n");
}

static void iso_utc(int64_t unix_s, char out[32]) {
  time_t t = (time_t)unix_s;
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Is provider in the registry? CLI_EXIT_OK, or the exit status with the reason printed. */
static int known_provider(const char *provider) {
  char err[CP_ERRLEN];
  prov_registry_t *reg = NULL;
  if (prov_load(cp_cfg_str(CP_OPT_PROVIDERS), &reg, err, sizeof err) != 0) {
    cli_error("webhook-secret", "%s", err);
    return CLI_EXIT_FAIL;
  }
  bool known = prov_find(reg, provider) != NULL;
  prov_destroy(&reg);
  if (!known) {
    cli_error("webhook-secret", "provider \"%s\" is not in the registry %s; no secret was made", provider,
              cp_cfg_str(CP_OPT_PROVIDERS));
    return CLI_EXIT_FAIL;
  }
  return CLI_EXIT_OK;
}

int cmd_webhook_secret(int argc, char **argv) {
  const char *provider = NULL;
  bool rotate = false;
  for (int i = 1; i < argc; i++) {
    if (cli_is_help(argv[i])) {
      help(stdout);
      return CLI_EXIT_OK;
    }
    if (strcmp(argv[i], "--rotate") == 0) {
      rotate = true;
      continue;
    }
    if (argv[i][0] == '-' || provider != NULL) {
      cli_error("webhook-secret", "unexpected argument \"%s\"", argv[i]);
      help(stderr);
      return CLI_EXIT_USAGE;
    }
    provider = argv[i];
  }
  if (provider == NULL) {
    cli_error("webhook-secret", "PROVIDER_ID is required");
    help(stderr);
    return CLI_EXIT_USAGE;
  }
  if (cli_config("webhook-secret") != 0) return CLI_EXIT_USAGE;
  int rc = known_provider(provider);
  if (rc != CLI_EXIT_OK) return rc;

  char err[CP_ERRLEN];
  const char *path = cp_cfg_str(CP_OPT_WEBHOOK_SECRETS);
  char *dir = cp_strdup(path);
  int mk = cp_mkdirs(dirname(dir), 0700, err, sizeof err);
  free(dir);
  if (mk != 0) {
    cli_error("webhook-secret", "%s", err);
    return CLI_EXIT_FAIL;
  }
  cp_whsec_entry_t e;
  bool made = false;
  int64_t now = (int64_t)time(NULL);
  if (cp_whsec_store_issue(path, provider, rotate, now, cp_cfg_int(CP_OPT_WEBHOOK_SECRET_OVERLAP_S), &e, &made,
                           err, sizeof err) != 0) {
    cli_error("webhook-secret", "%s", err);
    return CLI_EXIT_FAIL;
  }
  char created[32], until[32];
  iso_utc(e.created, created);
  iso_utc(e.previous_until, until);
  if (!made) {
    fprintf(stderr,
            "carepass webhook-secret: provider %s already has a webhook secret (made %s); it was shown when it "
            "was made and is not shown again. `carepass webhook-secret %s --rotate` makes a new one (the "
            "current one keeps signing for CAREPASS_WEBHOOK_SECRET_OVERLAP_S).\n",
            provider, created, provider);
  } else {
    printf("%s\n", e.secret);
    fflush(stdout);
    if (e.previous[0] && e.previous_until > now)
      fprintf(stderr,
              "carepass webhook-secret: new secret for %s; the previous one also signs until %s, then only this "
              "one. notify uses it from its next delivery attempt.\n",
              provider, until);
    else
      fprintf(stderr, "carepass webhook-secret: new secret for %s; notify uses it from its next delivery attempt.\n",
              provider);
  }
  sodium_memzero(&e, sizeof e);
  return CLI_EXIT_OK;
}
