/* cmd_registry_keys.c -- `carepass registry-keys`: fill providers' curve_public_key from a key directory. */
#include "cli.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void help(FILE *out) {
  fprintf(out,
          "usage: carepass registry-keys --in REGISTRY --keys DIR --out FILE\n\n"
          "Write a copy of the provider registry REGISTRY (e.g. data/providers.json)\n"
          "to FILE, with curve_public_key set from DIR/<provider id>.curve.pub for every\n"
          "provider that has such a file (others keep what REGISTRY says). The local\n"
          "runner uses this so that sample provider keys are made at first start and\n"
          "never committed.\n");
}

int cmd_registry_keys(int argc, char **argv) {
  const char *in = NULL, *dir = NULL, *out = NULL;
  for (int i = 1; i < argc; i++) {
    if (cli_is_help(argv[i])) { help(stdout); return CLI_EXIT_OK; }
    if (strcmp(argv[i], "--in") == 0 && i + 1 < argc) in = argv[++i];
    else if (strcmp(argv[i], "--keys") == 0 && i + 1 < argc) dir = argv[++i];
    else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) out = argv[++i];
    else {
      cli_error("registry-keys", "unexpected argument \"%s\"", argv[i]);
      help(stderr);
      return CLI_EXIT_USAGE;
    }
  }
  if (in == NULL || dir == NULL || out == NULL) {
    cli_error("registry-keys", "--in, --keys and --out are required");
    help(stderr);
    return CLI_EXIT_USAGE;
  }
  int rc = CLI_EXIT_FAIL;
  char *text = NULL;
  json_error_t jerr;
  json_t *root = json_load_file(in, JSON_REJECT_DUPLICATES, &jerr);
  if (root == NULL) {
    cli_error("registry-keys", "%s: line %d: %s", in, jerr.line, jerr.text);
    goto out;
  }
  json_t *provs = json_object_get(root, "providers");
  if (!json_is_array(provs)) {
    cli_error("registry-keys", "%s has no \"providers\" array", in);
    goto out;
  }
  size_t i, filled = 0;
  json_t *p;
  json_array_foreach(provs, i, p) {
    const char *id = json_string_value(json_object_get(p, "id"));
    if (id == NULL || id[0] == '\0' || strchr(id, '/') != NULL || id[0] == '.') {
      cli_error("registry-keys", "%s: provider %zu has no usable \"id\"", in, i);
      goto out;
    }
    char path[4096], key[41], err[CP_ERRLEN];
    snprintf(path, sizeof path, "%s/%s.curve.pub", dir, id);
    if (access(path, F_OK) != 0) continue;
    if (cli_read_z85_key(path, key, err, sizeof err) != 0) {
      cli_error("registry-keys", "%s", err);
      goto out;
    }
    if (json_object_set_new(p, "curve_public_key", json_string(key)) != 0) goto out;
    filled++;
  }
  text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  if (text == NULL) {
    cli_error("registry-keys", "cannot serialise the registry");
    goto out;
  }
  size_t len = strlen(text);
  char *withnl = cp_xmalloc(len + 2);
  memcpy(withnl, text, len);
  withnl[len] = '\n';
  withnl[len + 1] = '\0';
  char err[CP_ERRLEN];
  int wrc = cp_write_file_atomic(out, withnl, len + 1, 0644, err, sizeof err);
  free(withnl);
  if (wrc != 0) {
    cli_error("registry-keys", "%s", err);
    goto out;
  }
  fprintf(stderr, "carepass registry-keys: %zu of %zu providers have a key in %s; wrote %s\n", filled,
          json_array_size(provs), dir, out);
  rc = CLI_EXIT_OK;
out:
  free(text);
  json_decref(root);
  return rc;
}
