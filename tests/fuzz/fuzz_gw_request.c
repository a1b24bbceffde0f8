/* fuzz_gw_request.c -- raw bytes from a client through the gateway's request handling
 * (libmicrohttpd's parser, then services/gateway/gw_dispatch.c: framing checks, routes, 404/405,
 * credentials, X-Forwarded-For from a trusted proxy, body limits, every handler, the reply
 * encoders). The input is what the client sends on one connection (keep-alive: several requests
 * may follow each other); "@PROVIDER_TOKEN@" / "@WORKER_TOKEN@" become live tokens (fuzz_gw.c).
 * An abort, assert or sanitizer report from any request is a bug: one request must never stop
 * the service. */
#include <stdbool.h>

#include "fuzz_gw.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  (void)fuzz_gw_send(data, size);
  return 0;
}
