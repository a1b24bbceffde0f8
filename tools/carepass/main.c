/* main.c -- the carepass command-line tool: find the command and hand over to it. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cp_config.h"
#include "cp_crypto.h"
#include "cp_log.h"

/* One command of the tool. */
typedef struct {
  const char *name;                 // what the user types
  int (*run)(int argc, char **argv); // argv[0] is the command name
  const char *summary;              // one line for `carepass --help`
} cli_command_t;

static const cli_command_t commands[] = {
  {"keygen", cmd_keygen, "make a provider's CurveZMQ key pair and print its public key"},
  {"registry-keys", cmd_registry_keys, "copy the provider registry with public keys filled in from a key directory"},
  {"submit", cmd_submit, "send completion events from a CSV or NDJSON file to intake"},
  {"status", cmd_status, "show the state of one provider event"},
  {"passport", cmd_passport, "show a worker's passport, checking every signature and inclusion proof"},
  {"revoke", cmd_revoke, "operator revocation: one register index, or a provider's records from a date"},
  {"rotate-key", cmd_rotate_key, "replace the register signing key (signer stopped); the old key signs the handover"},
  {"proof", cmd_proof, "write the tlog-proof (c2sp.org/tlog-proof@v1) of one register entry"},
  {"verify", cmd_verify, "check a tlog-proof or passport bundle offline and print a verification statement"},
  {"audit", cmd_audit, "re-hash a whole register (directory or URL): tiles, signatures, checkpoint, consistency"},
  {"reindex", cmd_reindex, "rebuild every derived Redis key from the register alone"},
  {"migrate", cmd_migrate, "rewrite a format-1 register as format 2 under a new origin (signer stopped)"},
  {"leave", cmd_leave, "a worker leaves the register (signer stopped): their key is shredded, their entries unlinkable"},
  {"webhook-secret", cmd_webhook_secret, "make or rotate a training provider's webhook secret (whsec_, Standard Webhooks v1)"},
  {"webhooks", cmd_webhooks, "webhook dead letters: list them (dead) or send them again (replay ID|--all)"},
  {"provider-token", cmd_provider_token, "print an HTTP API token (cpp_...) for a provider in the registry"},
  {"employer-token", cmd_employer_token, "print an HTTP API token (cpe_...) for an employer in the registry"},
  {"worker-token", cmd_worker_token, "print a worker's HTTP token (cpw_...) for share codes and views"},
  {"token", cmd_token, "revoke one API token by its id (revoke ID|TOKEN), or show a token's id"},
};

static void usage(FILE *out) {
  fprintf(out,
          "usage: carepass <command> [options]\n"
          "       carepass <command> --help\n\n"
          "commands:\n");
  for (size_t i = 0; i < CP_ARRAY_LEN(commands); i++)
    fprintf(out, "  %-14s %s\n", commands[i].name, commands[i].summary);
  fprintf(out, "\nexit status: 0 done, 1 failed, 2 usage or configuration error.\n\n");
  cp_config_help(out, "carepass", CP_SVC_CLI, "environment (options on the command line win):");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return CLI_EXIT_USAGE;
  }
  if (cli_is_help(argv[1]) || strcmp(argv[1], "help") == 0) {
    usage(stdout);
    return CLI_EXIT_OK;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("carepass 0.1.0\n");
    return CLI_EXIT_OK;
  }
  /* the library logs JSON lines on stderr; a person at a terminal wants only warnings */
  cp_log_init("cli", "warn");
  if (cp_crypto_init() != 0) {
    fprintf(stderr, "carepass: libsodium could not be initialised\n");
    return CLI_EXIT_FAIL;
  }
  for (size_t i = 0; i < CP_ARRAY_LEN(commands); i++)
    if (strcmp(argv[1], commands[i].name) == 0) {
      int rc = commands[i].run(argc - 1, argv + 1);
      cp_config_free();
      return rc;
    }
  fprintf(stderr, "carepass: unknown command \"%s\" (try carepass --help)\n", argv[1]);
  return CLI_EXIT_USAGE;
}
