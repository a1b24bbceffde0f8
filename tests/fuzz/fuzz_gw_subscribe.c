/* fuzz_gw_subscribe.c -- the body of POST /v1/subscriptions (services/gateway/gw_subscribe.c:
 * url through common/url_check.c, employer label, events list, share code and date of birth),
 * sent through the gateway's dispatcher (fuzz_gw.c). Redis is down, so a body that reads cleanly
 * gets 503 after every check made before the store. The input is the body. */
#include <stdbool.h>

#include "fuzz_gw.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  (void)fuzz_gw_post("/v1/subscriptions", "application/json", false, data, size);
  return 0;
}
