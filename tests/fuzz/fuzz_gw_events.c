/* fuzz_gw_events.c -- the body of POST /v1/events (services/gateway/gw_events.c: a JSON array or
 * NDJSON of events, each field read by proto name, evidence_hash hex, kind; batch limits), sent
 * through the gateway's dispatcher with a live provider token (fuzz_gw.c). Redis is down, so an
 * event batch that decodes gets 503 after every check the handler makes before the store.
 * Input: one byte choosing the media type and ack level, then the body. */
#include <stdbool.h>

#include "fuzz_gw.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  static const char *const types[] = {NULL, "application/json", "application/x-ndjson",
                                      "application/jsonl; charset=utf-8", "text/plain"};
  static const char *const paths[] = {"/v1/events", "/v1/events?ack=committed", "/v1/events?ack=accepted",
                                      "/v1/events?ack=bogus"};
  const char *ct = types[data[0] % 5];
  const char *path = paths[(data[0] / 5) % 4];
  (void)fuzz_gw_post(path, ct, true, data + 1, size - 1);
  return 0;
}
