/* cli_util.c -- small helpers shared by the carepass commands: errors, numbers, config, key files. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/stat.h>

#include "cp_config.h"
#include "cp_crypto.h"
#include "cp_redis.h"
#include <sodium.h>

void cli_error(const char *cmd, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "carepass %s: %s\n", cmd, msg);
}

bool cli_is_help(const char *arg) { return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0; }

int cli_config(const char *cmd) {
  char err[CP_ERRLEN];
  if (cp_config_load(CP_SVC_CLI, err, sizeof err) != 0) {
    cli_error(cmd, "configuration: %s", err);
    return -1;
  }
  cp_redis_settings(cp_cfg_str(CP_OPT_REDIS_SENTINELS), cp_cfg_str(CP_OPT_REDIS_MASTER_NAME),
                    (int)cp_cfg_int(CP_OPT_REDIS_MIN_REPLICAS), (int)cp_cfg_int(CP_OPT_REDIS_REPLICA_TIMEOUT_MS));
  return 0;
}

int cli_parse_long(const char *s, long min, long max, long *out) {
  if (s == NULL || !isdigit((unsigned char)s[0])) return -1;
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < min || v > max) return -1;
  *out = v;
  return 0;
}

static bool z85_char(char c) {
  return isalnum((unsigned char)c) || (c != '\0' && strchr(".-:+=^!/*?&<>()[]{}@%$#", c) != NULL);
}

int cli_read_z85_key(const char *path, char out[41], char *err, size_t errlen) {
  uint8_t *buf = NULL;
  size_t len = 0;
  if (cp_read_file(path, 64 * 1024, &buf, &len, err, errlen) != 0) return -1;
  int rc = -1;
  char *save = NULL;
  for (char *ln = strtok_r((char *)buf, "\n", &save); ln != NULL; ln = strtok_r(NULL, "\n", &save)) {
    size_t n = strlen(ln);
    while (n > 0 && isspace((unsigned char)ln[n - 1])) ln[--n] = '\0';
    while (isspace((unsigned char)*ln)) ln++, n--;
    if (strncmp(ln, "secret=", 7) == 0) continue; /* never take the secret half */
    if (strncmp(ln, "public=", 7) == 0) ln += 7, n -= 7;
    if (n != 40) continue;
    bool ok = true;
    for (size_t i = 0; i < 40 && ok; i++) ok = z85_char(ln[i]);
    if (!ok) continue;
    memcpy(out, ln, 40);
    out[40] = '\0';
    rc = 0;
    break;
  }
  if (rc != 0) cp_err(err, errlen, "%s holds no CurveZMQ public key (40 Z85 characters)", path);
  sodium_memzero(buf, len);
  free(buf);
  return rc;
}

int cli_worker_pseudonym(const char *cmd, const char *ni, unsigned char out[CP_PSEUDONYM_BYTES]) {
  char norm[10], err[CP_ERRLEN];
  unsigned char secret[CP_SECRET_BYTES];
  if (cp_ni_normalise(ni, norm) != 0) {
    cli_error(cmd, "that is not a valid National Insurance number (two letters, six digits, A-D)");
    return CLI_EXIT_USAGE;
  }
  int rc = CLI_EXIT_OK;
  if (cp_secret_load(cp_cfg_str(CP_OPT_PSEUDONYM_SECRET), false, secret, err, sizeof err) != 0) {
    cli_error(cmd, "pseudonym secret: %s", err);
    rc = CLI_EXIT_FAIL;
  } else {
    cp_pseudonym(secret, norm, out);
  }
  sodium_memzero(secret, sizeof secret);
  sodium_memzero(norm, sizeof norm);
  return rc;
}

int cli_subjects_open(const char *cmd, unsigned flags, cp_subject_store_t **st) {
  char err[CP_ERRLEN];
  struct stat sb;
  *st = NULL;
  if (stat(cp_cfg_str(CP_OPT_SUBJECT_KEYS), &sb) != 0) return 0;   /* no store: format 1 only */
  if (cp_subject_store_open(cp_cfg_str(CP_OPT_SUBJECT_KEYS), flags, st, err, sizeof err) != 0) {
    cli_error(cmd, "%s", err);
    return -1;
  }
  return 0;
}

int cli_token_args(const char *cmd, int argc, char **argv, const char *id_name, long default_days, long max_days,
                   void (*help_fn)(FILE *out), const char **id, long *days) {
  *id = NULL;
  *days = default_days;
  for (int i = 1; i < argc; i++) {
    if (cli_is_help(argv[i])) {
      help_fn(stdout);
      return CLI_EXIT_OK;
    }
    if (strcmp(argv[i], "--days") == 0 && i + 1 < argc) {
      if (cli_parse_long(argv[++i], 1, max_days, days) != 0) {
        cli_error(cmd, "--days must be a whole number from 1 to %ld", max_days);
        return CLI_EXIT_USAGE;
      }
      continue;
    }
    if (argv[i][0] == '-' || *id != NULL) {
      cli_error(cmd, "unexpected argument \"%s\"", argv[i]);
      help_fn(stderr);
      return CLI_EXIT_USAGE;
    }
    *id = argv[i];
  }
  if (*id == NULL) {
    cli_error(cmd, "%s is required", id_name);
    help_fn(stderr);
    return CLI_EXIT_USAGE;
  }
  return -1;
}

int cli_token_print(const char *cmd, cp_token_kind_t kind, const char *subject, int64_t lifetime_s) {
  char err[CP_ERRLEN];
  unsigned char secret[CP_SECRET_BYTES];
  if (cp_secret_load(cp_cfg_str(CP_OPT_TOKEN_SECRET), true, secret, err, sizeof err) != 0) {
    cli_error(cmd, "%s", err);
    return CLI_EXIT_FAIL;
  }
  char token[CP_TOKEN_MAX], id[CP_TOKEN_ID_HEX];
  int64_t expiry = (int64_t)time(NULL) + lifetime_s;
  int rc = cp_token_make(secret, kind, subject, expiry, token, sizeof token, id);
  sodium_memzero(secret, sizeof secret);
  if (rc != 0) {
    cli_error(cmd, "%s id %s cannot be put in a token (1 to %d printable characters)", cp_token_kind_name(kind),
              subject, CP_TOKEN_SUBJECT_MAX);
    return CLI_EXIT_FAIL;
  }
  fprintf(stderr, "token id: %s (expires %lld)\n", id, (long long)expiry);
  printf("%s\n", token);
  sodium_memzero(token, sizeof token);
  return CLI_EXIT_OK;
}
