/* fuzz_gw.h -- the gateway as the fuzz targets drive it (fuzz_gw.c): the real dispatcher
 * (services/gateway/gw_dispatch.c: framing, routes, credentials, body limits, handlers, replies)
 * on a libmicrohttpd daemon of its own that listens nowhere; each request is written into one end
 * of a socketpair handed to the daemon with MHD_add_connection, and the daemon is run until the
 * answer stops coming. Redis is configured on a closed port (handlers that reach it answer 503
 * UNAVAILABLE, as a gateway with Redis down does); the register is tests/fuzz/fixtures/register. */
#ifndef FUZZ_GW_H
#define FUZZ_GW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Start the gateway once (aborts when it cannot). */
void fuzz_gw_init(void);
/* Send one request's raw bytes; "@PROVIDER_TOKEN@", "@WORKER_TOKEN@" and "@EMPLOYER_TOKEN@"
 * (EMP-0001) in them are replaced by live tokens (so seeds never expire). Returns the HTTP status of the first answer, 0 if none. */
int fuzz_gw_send(const uint8_t *req, size_t len);
/* POST body to path (query included) with content_type (NULL: none) and a provider token when
 * provider is true; returns the status. */
int fuzz_gw_post(const char *path, const char *content_type, bool provider, const uint8_t *body, size_t len);

#endif
