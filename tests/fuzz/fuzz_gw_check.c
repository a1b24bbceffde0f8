/* fuzz_gw_check.c -- the body of POST /v1/check and /v1/check/bundle (services/gateway/gw_check.c
 * pp_parse, the share code and date of birth as gw_share_open.c reads them, the employer label
 * check, "format") and of the employer's form, POST /check (gw_check_form.c: the urlencoded
 * fields, their limits, and every value shown back on the page escaped), sent through the
 * gateway's dispatcher (fuzz_gw.c). The share-code store (Redis) is down, so a body that reads
 * cleanly gets 503 after every check made before it (the form: a page saying so).
 * Input: one byte choosing the route (bit 1: the form; else bit 0: bundle), then the body. */
#include <stdbool.h>

#include "fuzz_gw.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  if (data[0] & 2) {
    (void)fuzz_gw_post("/check", "application/x-www-form-urlencoded", false, data + 1, size - 1);
    return 0;
  }
  const char *path = data[0] & 1 ? "/v1/check/bundle" : "/v1/check";
  (void)fuzz_gw_post(path, "application/json", false, data + 1, size - 1);
  return 0;
}
