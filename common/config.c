/* config.c -- load the CAREPASS_* configuration table from the environment, --help and Markdown. */
#include "cp_config.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A loaded value, one per table row (parallel to cp_config_table). */
typedef struct {
  bool loaded;    // set by cp_config_load (row in the service mask)
  long long i;    // INT / BOOL value
  char *s;        // STR value (malloc'd) when loaded
} cfg_value_t;

static cfg_value_t *values;  // cp_config_table_len entries, NULL before load

static int parse_int(const char *s, long long *out) {
  /* strtoll would accept leading blanks and '+'; be strict: [-]digits only */
  if (!(isdigit((unsigned char)s[0]) || (s[0] == '-' && isdigit((unsigned char)s[1])))) return -1;
  char *end = NULL;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0') return -1;
  *out = v;
  return 0;
}

static int parse_bool(const char *s, long long *out) {
  static const char *yes[] = {"1", "true", "yes"};
  static const char *no[] = {"0", "false", "no"};
  for (size_t i = 0; i < CP_ARRAY_LEN(yes); i++) {
    if (strcasecmp(s, yes[i]) == 0) { *out = 1; return 0; }
    if (strcasecmp(s, no[i]) == 0) { *out = 0; return 0; }
  }
  return -1;
}

static size_t find_row(const char *name) {
  for (size_t i = 0; i < cp_config_table_len; i++)
    if (strcmp(cp_config_table[i].name, name) == 0) return i;
  return (size_t)-1;
}

/* Parse and check one value of row d; fill v on success. */
static int check_value(const cp_config_def_t *d, const char *text, bool from_env, cfg_value_t *v,
                       char *err, size_t errlen) {
  const char *src = from_env ? "" : " (default)";
  switch (d->type) {
  case CP_CFG_INT: {
    long long x;
    if (parse_int(text, &x) != 0)
      return cp_err(err, errlen, "CAREPASS_%s=%s%s is not an integer (allowed %lld..%lld)",
                    d->name, text, src, d->min, d->max);
    if (x < d->min || x > d->max)
      return cp_err(err, errlen, "CAREPASS_%s=%s%s is out of range %lld..%lld", d->name, text, src,
                    d->min, d->max);
    v->i = x;
    break;
  }
  case CP_CFG_BOOL: {
    long long x;
    if (parse_bool(text, &x) != 0)
      return cp_err(err, errlen,
                    "CAREPASS_%s=%s%s is not a boolean (use 1/0, true/false or yes/no)", d->name,
                    text, src);
    v->i = x;
    break;
  }
  case CP_CFG_STR: {
    size_t n = strlen(text);
    if ((long long)n < d->min || (d->max > 0 && (long long)n > d->max)) {
      if (d->max > 0)
        return cp_err(err, errlen, "CAREPASS_%s%s is %zu characters long; allowed %lld..%lld",
                      d->name, src, n, d->min, d->max);
      return cp_err(err, errlen, "CAREPASS_%s%s is %zu characters long; at least %lld needed",
                    d->name, src, n, d->min);
    }
    v->s = cp_strdup(text);
    break;
  }
  }
  v->loaded = true;
  return 0;
}

int cp_config_load(unsigned service, char *err, size_t errlen) {
  cp_config_free();
  values = cp_xcalloc(cp_config_table_len, sizeof *values);
  for (size_t i = 0; i < cp_config_table_len; i++) {
    const cp_config_def_t *d = &cp_config_table[i];
    if ((d->services & service) == 0) continue;
    char var[160];
    snprintf(var, sizeof var, "CAREPASS_%s", d->name);
    const char *env = getenv(var);
    if (check_value(d, env ? env : d->def, env != NULL, &values[i], err, errlen) != 0) {
      cp_config_free();
      return -1;
    }
  }
  return 0;
}

void cp_config_free(void) {
  if (values == NULL) return;
  for (size_t i = 0; i < cp_config_table_len; i++) free(values[i].s);
  free(values);
  values = NULL;
}

/* Row index of name; asking for an unknown option is a programmer error. */
static size_t row_of(const char *name, cp_cfg_type_t type) {
  size_t i = find_row(name);
  assert(i != (size_t)-1 && "unknown configuration option");
  assert(cp_config_table[i].type == type && "configuration option read with the wrong type");
  (void)type;
  return i;
}

long long cp_cfg_int(const char *name) {
  size_t i = row_of(name, CP_CFG_INT);
  if (values != NULL && values[i].loaded) return values[i].i;
  long long x = 0;
  int rc = parse_int(cp_config_table[i].def, &x);
  assert(rc == 0 && "bad default in config_table.c");
  (void)rc;
  return x;
}

bool cp_cfg_bool(const char *name) {
  size_t i = row_of(name, CP_CFG_BOOL);
  if (values != NULL && values[i].loaded) return values[i].i != 0;
  long long x = 0;
  int rc = parse_bool(cp_config_table[i].def, &x);
  assert(rc == 0 && "bad default in config_table.c");
  (void)rc;
  return x != 0;
}

const char *cp_cfg_str(const char *name) {
  size_t i = row_of(name, CP_CFG_STR);
  if (values != NULL && values[i].loaded) return values[i].s;
  return cp_config_table[i].def;
}

/* Text of a row's bounds, e.g. "1..65535", "length 1..255", "1/0, true/false, yes/no". */
static void bounds_text(const cp_config_def_t *d, char *out, size_t outlen) {
  switch (d->type) {
  case CP_CFG_INT:
    snprintf(out, outlen, "%lld..%lld", d->min, d->max);
    break;
  case CP_CFG_BOOL:
    snprintf(out, outlen, "1/0, true/false, yes/no");
    break;
  case CP_CFG_STR:
    if (d->max > 0)
      snprintf(out, outlen, "length %lld..%lld", d->min, d->max);
    else
      snprintf(out, outlen, "length >= %lld", d->min);
    break;
  }
}

void cp_config_help(FILE *out, const char *progname, unsigned service, const char *summary) {
  fprintf(out, "Usage: %s [--help] [--version]\n\n", progname);
  if (summary != NULL && summary[0] != '\0') fprintf(out, "%s\n\n", summary);
  fprintf(out, "Configuration is read from the environment:\n\n");
  for (size_t i = 0; i < cp_config_table_len; i++) {
    const cp_config_def_t *d = &cp_config_table[i];
    if ((d->services & service) == 0) continue;
    char b[96];
    bounds_text(d, b, sizeof b);
    fprintf(out, "  CAREPASS_%s\n      default \"%s\", allowed %s\n      %s\n", d->name, d->def, b,
            d->help);
  }
}

/* Print s with Markdown table metacharacters escaped. */
static void md_cell(FILE *out, const char *s) {
  for (; *s; s++) {
    if (*s == '|') fputs("\\|", out);
    else fputc(*s, out);
  }
}

void cp_config_markdown(FILE *out, unsigned service) {
  static const char *const svc_names[] = {"bus", "intake", "verify", "signer", "notify", "cli", "gateway"};
  fputs("| variable | default | allowed | read by | meaning |\n", out);
  fputs("| --- | --- | --- | --- | --- |\n", out);
  for (size_t i = 0; i < cp_config_table_len; i++) {
    const cp_config_def_t *d = &cp_config_table[i];
    if ((d->services & service) == 0) continue;
    char b[96];
    bounds_text(d, b, sizeof b);
    fprintf(out, "| `CAREPASS_%s` | ", d->name);
    if (d->def[0] != '\0') {
      fputc('`', out);
      md_cell(out, d->def);
      fputc('`', out);
    } else {
      fputs("(empty)", out);
    }
    fputs(" | ", out);
    md_cell(out, b);
    fputs(" | ", out);
    if ((d->services & CP_SVC_ALL) == CP_SVC_ALL) {
      fputs("all", out);
    } else {
      const char *sep = "";
      for (size_t s = 0; s < CP_ARRAY_LEN(svc_names); s++) {
        if (d->services & (1u << s)) {
          fprintf(out, "%s%s", sep, svc_names[s]);
          sep = ", ";
        }
      }
    }
    fputs(" | ", out);
    md_cell(out, d->help);
    fputs(" |\n", out);
  }
}
