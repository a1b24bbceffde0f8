/* config.c -- load the CAREPASS_* configuration table from the environment, --help and Markdown. */
#include "cp_config.h"
#include "cp_url_check.h"
#include "cp_dates.h"

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

/* A host name (letters, digits, '-', '.') or an IP address literal ([v6] or v4). */
static bool valid_host(const char *s, size_t n) {
  if (n == 0 || n > 255) return false;
  if (s[0] == '[') return n > 2 && s[n - 1] == ']' && strspn(s + 1, "0123456789abcdefABCDEF:.") == n - 2;
  for (size_t i = 0; i < n; i++)
    if (!(isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '.' || s[i] == '_')) return false;
  return true;
}

/* host:port with a port 1..65535 ("*" is a host for ZeroMQ binds). */
static bool valid_hostport(const char *s, size_t n, bool star) {
  const char *colon = NULL;
  for (size_t i = 0; i < n; i++)
    if (s[i] == ':') colon = s + i;   /* the last colon: [v6]:port */
  if (colon == NULL) return false;
  size_t hl = (size_t)(colon - s), pl = n - hl - 1;
  if (pl == 0 || pl > 5 || strspn(colon + 1, "0123456789") < pl) return false;
  long port = strtol(colon + 1, NULL, 10);
  if (port < 1 || port > 65535) return false;
  return (star && hl == 1 && s[0] == '*') || valid_host(s, hl);
}

static bool valid_endpoint(const char *s, size_t n) {
  if (n > 6 && strncmp(s, "tcp://", 6) == 0) return valid_hostport(s + 6, n - 6, true);
  if (n > 6 && strncmp(s, "ipc://", 6) == 0) return true;
  if (n > 9 && strncmp(s, "inproc://", 9) == 0) return true;
  return false;
}

static bool no_controls(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f) return false;
  return true;
}

/* A short name of each form, for --help and the README table ("" = bounds say it all). */
static const char *form_name(cp_cfg_valid_t v) {
  switch (v) {
  case CP_V_NONE: return "";
  case CP_V_PORT: return "a TCP port";
  case CP_V_DURATION: return "a duration";
  case CP_V_PATH: return "a path";
  case CP_V_HOST: return "a host";
  case CP_V_HOSTPORT: return "host:port";
  case CP_V_NAME: return "a name";
  case CP_V_ORIGIN: return "a log origin";
  case CP_V_ZMQ_ENDPOINT: return "a ZeroMQ endpoint";
  case CP_V_ZMQ_ENDPOINTS: return "ZeroMQ endpoints, comma-separated";
  case CP_V_LOG_LEVEL: return "debug, info, warn or error";
  case CP_V_DATE: return "YYYY-MM-DD or empty";
  case CP_V_CRASH_POINT: return "<point>:<n> or empty";
  case CP_V_ALLOW_LIST: return "hosts and CIDRs, comma-separated";
  }
  return "";
}

/* Does text have the form validator v asks for? The sentence says what is allowed. */
static bool valid_form(cp_cfg_valid_t v, const char *text, const char **what) {
  size_t n = strlen(text);
  switch (v) {
  case CP_V_NONE:
  case CP_V_PORT:
  case CP_V_DURATION:
    return true;   /* bounds say it all */
  case CP_V_PATH:
    *what = "a path without control characters";
    return no_controls(text);
  case CP_V_HOST:
    *what = "a host name or IP address";
    return valid_host(text, n);
  case CP_V_HOSTPORT:
    *what = "host:port with a port 1..65535";
    return valid_hostport(text, n, false);
  case CP_V_NAME:
    *what = "letters, digits, '.', '_' and '-'";
    for (size_t i = 0; i < n; i++)
      if (!(isalnum((unsigned char)text[i]) || strchr("._-", text[i]) != NULL)) return false;
    return true;
  case CP_V_ORIGIN:
    *what = "printable ASCII without spaces or '+'";
    for (size_t i = 0; i < n; i++)
      if (text[i] <= 0x20 || text[i] >= 0x7f || text[i] == '+') return false;
    return true;
  case CP_V_ZMQ_ENDPOINT:
    *what = "a ZeroMQ endpoint tcp://host:port, ipc://path or inproc://name";
    return valid_endpoint(text, n);
  case CP_V_ZMQ_ENDPOINTS:
    *what = "comma-separated ZeroMQ endpoints tcp://host:port, ipc://path or inproc://name";
    for (const char *p = text;;) {
      const char *c = strchr(p, ',');
      size_t len = c ? (size_t)(c - p) : strlen(p);
      if (!valid_endpoint(p, len)) return false;
      if (c == NULL) return true;
      p = c + 1;
    }
  case CP_V_LOG_LEVEL:
    *what = "debug, info, warn or error";
    return strcasecmp(text, "debug") == 0 || strcasecmp(text, "info") == 0 ||
           strcasecmp(text, "warn") == 0 || strcasecmp(text, "error") == 0;
  case CP_V_DATE: {
    *what = "a date YYYY-MM-DD (1900..2999), or empty";
    int32_t d;
    return n == 0 || cp_date_parse(text, &d) == 0;
  }
  case CP_V_CRASH_POINT: {
    *what = "<point>:<n> with a point name of letters, digits, '.', '_', '-' and n >= 1, or empty";
    if (n == 0) return true;
    const char *colon = strrchr(text, ':');
    if (colon == NULL || colon == text || colon[1] == '\0') return false;
    for (const char *c = text; c < colon; c++)
      if (!(isalnum((unsigned char)*c) || strchr("._-", *c) != NULL)) return false;
    if (strspn(colon + 1, "0123456789") != strlen(colon + 1)) return false;
    return strtol(colon + 1, NULL, 10) >= 1;
  }
  case CP_V_ALLOW_LIST: {
    *what = "comma-separated host names, IP addresses and address/prefix-length ranges";
    cp_url_allow_t *a = cp_xcalloc(1, sizeof *a);
    char why[200];
    bool ok = cp_url_allow_parse(text, a, why, sizeof why) == 0;
    free(a);
    return ok;
  }
  }
  return false;
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
    const char *what = "";
    if (!valid_form(d->valid, text, &what))
      return cp_err(err, errlen, "CAREPASS_%s=%s%s is not valid: expected %s", d->name, text, src, what);
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

int cp_config_check(const cp_config_def_t *d, const char *text, char *err, size_t errlen) {
  cfg_value_t v = {0};
  int rc = check_value(d, text, true, &v, err, errlen);
  free(v.s);
  return rc;
}

/* Row of opt; reading an option with the wrong type is a programmer error. */
static size_t row_of(cp_opt_t opt, cp_cfg_type_t type) {
  assert((size_t)opt < cp_config_table_len && "unknown configuration option");
  assert(cp_config_table[opt].type == type && "configuration option read with the wrong type");
  (void)type;
  return (size_t)opt;
}

long long cp_cfg_int(cp_opt_t opt) {
  size_t i = row_of(opt, CP_CFG_INT);
  if (values != NULL && values[i].loaded) return values[i].i;
  long long x = 0;
  int rc = parse_int(cp_config_table[i].def, &x);
  assert(rc == 0 && "bad default in cp_config_options.h");
  (void)rc;
  return x;
}

bool cp_cfg_bool(cp_opt_t opt) {
  size_t i = row_of(opt, CP_CFG_BOOL);
  if (values != NULL && values[i].loaded) return values[i].i != 0;
  long long x = 0;
  int rc = parse_bool(cp_config_table[i].def, &x);
  assert(rc == 0 && "bad default in cp_config_options.h");
  (void)rc;
  return x != 0;
}

const char *cp_cfg_str(cp_opt_t opt) {
  size_t i = row_of(opt, CP_CFG_STR);
  if (values != NULL && values[i].loaded) return values[i].s;
  return cp_config_table[i].def;
}

/* Text of a row's bounds, e.g. "1..65535", "length 1..255", "1/0, true/false, yes/no". */
static void bounds_text(const cp_config_def_t *d, char *out, size_t outlen) {
  switch (d->type) {
  case CP_CFG_INT:
    snprintf(out, outlen, "%lld..%lld", d->min, d->max);   /* the name gives the unit */
    break;
  case CP_CFG_BOOL:
    snprintf(out, outlen, "1/0, true/false, yes/no");
    break;
  case CP_CFG_STR: {
    const char *form = form_name(d->valid);
    const char *sep = form[0] != '\0' ? ", " : "";
    if (d->max > 0)
      snprintf(out, outlen, "%s%slength %lld..%lld", form, sep, d->min, d->max);
    else
      snprintf(out, outlen, "%s%slength >= %lld", form, sep, d->min);
    break;
  }
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
