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

/* What form a value must have beyond its bounds (the validator column of the table). */
typedef enum {
  CP_V_NONE,            // bounds only
  CP_V_PORT,            // a TCP port (INT 1..65535)
  CP_V_DURATION,        // a duration (INT; the unit is in the option's name: _MS or _S)
  CP_V_PATH,            // a file or directory path: no control characters; may be empty if min is 0
  CP_V_HOST,            // a host name or IPv4/IPv6 address literal
  CP_V_HOSTPORT,        // host:port, port 1..65535
  CP_V_NAME,            // an identifier: letters, digits, '.', '_', '-' (may be empty if min is 0)
  CP_V_ORIGIN,          // a log origin: printable ASCII, no spaces or '+'
  CP_V_ZMQ_ENDPOINT,    // a ZeroMQ endpoint: tcp://host:port, ipc://path or inproc://name
  CP_V_ZMQ_ENDPOINTS,   // a comma-separated list of ZeroMQ endpoints
  CP_V_LOG_LEVEL,       // one of debug, info, warn, error
  CP_V_DATE,            // YYYY-MM-DD, or empty
  CP_V_CRASH_POINT,     // <point>:<n>, n >= 1, or empty (test fault injection, cp_crash.h)
  CP_V_ALLOW_LIST,      // comma-separated host names, addresses and CIDRs (cp_url_check.h), or empty
} cp_cfg_valid_t;

/* Every option as a constant: CP_OPT_REDIS_PORT etc. A misspelt option fails to compile. */
typedef enum {
#define CP_OPT(name, type, def, min, max, services, valid, help) CP_OPT_##name,
#include "cp_config_options.h"
#undef CP_OPT
  CP_OPT__COUNT   // number of options
} cp_opt_t;

/* One row of the configuration table. */
typedef struct {
  const char *name;       // variable name without the CAREPASS_ prefix, e.g. "REDIS_PORT"
  cp_cfg_type_t type;     // how the value is parsed
  const char *def;        // default, as text ("" = empty)
  long long min, max;     // bounds: value for INT, length for STR (max 0 = no limit)
  unsigned services;      // CP_SVC_* mask of the services that read it
  cp_cfg_valid_t valid;   // form of the value (CP_V_*)
  const char *help;       // one line of meaning
} cp_config_def_t;

/* The table itself (defined in config_table.c from cp_config_options.h), indexed by cp_opt_t,
 * and its length (CP_OPT__COUNT). */
extern const cp_config_def_t cp_config_table[];
extern const size_t cp_config_table_len;

/* Check `text` as a value of row d (bounds and validator), as cp_config_load does; on failure
 * err names the variable, the value and what is allowed. For tests and tools. */
int cp_config_check(const cp_config_def_t *d, const char *text, char *err, size_t errlen) CP_WUR;

/* Load every option that `service` reads from the environment, check bounds.
 * On failure err names the variable, the value and the allowed range. */
int cp_config_load(unsigned service, char *err, size_t errlen) CP_WUR;

/* Accessors: the loaded value, or the default when the option was not loaded (not read by
 * this service, or before cp_config_load). Reading an option with the wrong type is a
 * programmer error (assert). */
long long cp_cfg_int(cp_opt_t opt);
const char *cp_cfg_str(cp_opt_t opt);
bool cp_cfg_bool(cp_opt_t opt);

/* Print --help: usage line then every option of `service` with default and bounds. */
void cp_config_help(FILE *out, const char *progname, unsigned service, const char *summary);
/* Print the table for `service` as a Markdown table (used for README.md). */
void cp_config_markdown(FILE *out, unsigned service);

/* Free what cp_config_load allocated. */
void cp_config_free(void);

#endif
