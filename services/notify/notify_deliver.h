/* notify_deliver.h -- libcurl multi delivery. */
#ifndef NOTIFY_DELIVER_H
#define NOTIFY_DELIVER_H

#include <stdint.h>
#include "cp_util.h"
#include "cp_crypto.h"
#include "notify_retry.h"

typedef struct nt_deliverer nt_deliverer_t;

/* Result of one finished HTTP attempt. */
typedef struct {
  const nt_claimed_t *d;  // the delivery (valid during the callback only)
  long status;            // HTTP status; 0 = no HTTP answer
  int curl_code;          // CURLcode of the transfer
  const char *error;      // curl's error text ("" when none)
  int64_t elapsed_ms;     // time the attempt took
} nt_result_t;

typedef void (*nt_result_fn)(const nt_result_t *res, void *arg);

nt_deliverer_t *nt_deliverer_new(const cp_signkey_t *key, int concurrency, long timeout_ms,
                                 char *err, size_t errlen);
/* Where each attempt's v1 secrets come from: fn(arg, delivery, now_s, out) fills out (n = 0 = none,
 * v1a only); the deliverer wipes them once the header is built. Without it: v1a only. */
typedef void (*nt_secrets_fn)(void *arg, const nt_claimed_t *c, int64_t now_s, nt_secrets_t *out);
void nt_deliverer_set_secrets(nt_deliverer_t *d, nt_secrets_fn fn, void *arg);
void nt_deliverer_destroy(nt_deliverer_t **d);
/* Free slots for new transfers. */
size_t nt_deliverer_room(const nt_deliverer_t *d);
/* Transfers in flight per endpoint (*loads points into the deliverer; valid until
 * the next start/run). Returns the number of endpoints with transfers in flight. */
size_t nt_deliverer_loads(nt_deliverer_t *d, const nt_ep_load_t **loads);
size_t nt_deliverer_inflight(const nt_deliverer_t *d);
/* Transfers in flight to one endpoint ("host:port" as nt_endpoint writes it). */
int nt_deliverer_ep_inflight(const nt_deliverer_t *d, const char *ep);
/* Start one attempt; takes ownership of *c (sets it to an empty struct). */
int nt_deliverer_start(nt_deliverer_t *d, nt_claimed_t *c, char *err, size_t errlen) CP_WUR;
/* Another descriptor to wait on with curl's (fd < 0 = none). */
typedef struct {
  int fd;                 // descriptor, e.g. ZMQ_FD or the async Redis connection
  short events;           // POLLIN and/or POLLOUT
} nt_waitfd_t;

/* Wait up to timeout_ms for curl activity or for an extra descriptor (up to 4) to be
 * ready, drive transfers and call fn for each finished one. */
int nt_deliverer_run(nt_deliverer_t *d, const nt_waitfd_t *extra, size_t nextra, int timeout_ms,
                     nt_result_fn fn, void *arg) CP_WUR;
/* Abort every transfer in flight, calling fn(claimed, arg) so it can be handed back. */
void nt_deliverer_abort_all(nt_deliverer_t *d, void (*fn)(const nt_claimed_t *c, void *arg), void *arg);

#endif
