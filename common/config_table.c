/* config_table.c -- the configuration table, made from the rows of cp_config_options.h. */
#include "cp_config.h"

const cp_config_def_t cp_config_table[] = {
#define CP_OPT(name, type, def, min, max, services, valid, help) \
  [CP_OPT_##name] = {#name, CP_CFG_##type, def, min, max, services, valid, help},
#include "cp_config_options.h"
#undef CP_OPT
};

const size_t cp_config_table_len = CP_ARRAY_LEN(cp_config_table);
_Static_assert(CP_ARRAY_LEN(cp_config_table) == CP_OPT__COUNT, "one table row per option");
