/* cp_config.h -- the configuration table: every CAREPASS_* variable, its default,
 * bounds and one line of meaning. Services load it once at start; --help and the
 * README's configuration section are generated from the same table. */
#ifndef CP_CONFIG_H
#define CP_CONFIG_H

#include <stdio.h>
#include "cp_util.h"

/* Which services read an option (bit mask). */
enum {
  CP_SVC_BUS    = 1u << 0,
  CP_SVC_INTAKE = 1u << 1,
  CP_SVC_VERIFY = 1u << 2,
  CP_SVC_SIGNER = 1u << 3,
  CP_SVC_NOTIFY = 1u << 4,
  CP_SVC_CLI    = 1u << 5,
  CP_SVC_GATEWAY = 1u << 6,
  CP_SVC_ALL    = 0xffu,
};

typedef enum { CP_CFG_INT, CP_CFG_STR, CP_CFG_BOOL } cp_cfg_type_t;

/* One row of the configuration table. */
typedef struct {
  const char *name;       // variable name without the CAREPASS_ prefix, e.g. "REDIS_PORT"
  cp_cfg_type_t type;     // how the value is parsed
  const char *def;        // default, as text ("" = empty)
  long long min, max;     // bounds: value for INT, length for STR (max 0 = no limit)
  unsigned services;      // CP_SVC_* mask of the services that read it
  const char *help;       // one line of meaning
} cp_config_def_t;

/* The table itself (defined in config_table.c) and its length. */
extern const cp_config_def_t cp_config_table[];
extern const size_t cp_config_table_len;

/* Load every option that `service` reads from the environment, check bounds.
 * On failure err names the variable, the value and the allowed range. */
int cp_config_load(unsigned service, char *err, size_t errlen) CP_WUR;

/* Accessors; asking for an option not in the table is a programmer error (assert). */
long long cp_cfg_int(const char *name);
const char *cp_cfg_str(const char *name);
bool cp_cfg_bool(const char *name);

/* Print --help: usage line then every option of `service` with default and bounds. */
void cp_config_help(FILE *out, const char *progname, unsigned service, const char *summary);
/* Print the table for `service` as a Markdown table (used for README.md). */
void cp_config_markdown(FILE *out, unsigned service);

/* Free what cp_config_load allocated. */
void cp_config_free(void);

#endif
