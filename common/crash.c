/* crash.c -- test-only fault injection (cp_crash.h). */
#include "cp_crash.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cp_config.h"
#include "cp_log.h"

void cp_test_crash_point(const char *name) {
  static int armed = -1;   /* -1 not read yet, 0 off, 1 on */
  static char want[48];    /* point name */
  static long left;        /* passes until the kill */
  if (armed < 0) {
    armed = 0;
    const char *v = cp_cfg_str(CP_OPT_TEST_CRASH_POINT);   /* the table checked <name>:<n> */
    const char *colon = strrchr(v, ':');
    if (colon != NULL && (size_t)(colon - v) < sizeof want) {
      memcpy(want, v, (size_t)(colon - v));
      want[colon - v] = '\0';
      left = strtol(colon + 1, NULL, 10);
      armed = 1;
      cp_log_warn("test crash point armed", CP_KV_STR("point", want), CP_KV_INT("n", left), CP_KV_END);
    }
  }
  if (armed == 1 && strcmp(name, want) == 0 && --left == 0) {
    cp_log_warn("test crash point reached", CP_KV_STR("point", name), CP_KV_END);
    raise(SIGKILL);
  }
}
