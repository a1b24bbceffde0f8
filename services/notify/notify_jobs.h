/* notify_jobs.h -- a NotifyJob: its shape check, its webhook body; the endpoint of a URL. */
#ifndef NOTIFY_JOBS_H
#define NOTIFY_JOBS_H

#include <stdbool.h>
#include <stdint.h>
#include "cp_util.h"
#include "carepass/v1/internal.pb-c.h"

#define NT_TYPE_MAX      64                 /* longest event type accepted */
#define NT_MAX_JOB_BYTES 65536              /* largest NotifyJob accepted from the bus */

/* Check a job's shape (type charset and lengths); 0 or -1 with err. */
int nt_job_check(const Carepass__V1__NotifyJob *job, char *err, size_t errlen) CP_WUR;

/* ms since the epoch as ISO-8601 UTC with milliseconds (2026-11-22T21:05:12.123Z): the
 * "timestamp" of every webhook body. */
void nt_iso8601(int64_t ms, char out[32]);

/* The webhook body: {"type", "timestamp" (ISO-8601 UTC of occurred_at, or now),
 * "data": {provider_id, provider_event_id, reason_code, message, entry_index,
 * qualification_code}} -- never the worker pseudonym. malloc'd, NUL-terminated. */
char *nt_job_body(const Carepass__V1__NotifyJob *job, int64_t now_ms);

/* The "host:port" endpoint of a URL into out (lower-cased host, default port from the
 * scheme); the same rule the claim script applies. */
void nt_endpoint(const char *url, char *out, size_t outlen);

#endif
