/* notify_jobs.c -- a NotifyJob from the bus: its shape check and its webhook body; the endpoint of a URL. */
#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <jansson.h>
#include "notify_jobs.h"
#include "cp_catalogue.h"

/* Field length limits of a job (bytes, without NUL). */
#define JOB_EVENT_ID_MAX 256
#define JOB_REASON_MAX 64
#define JOB_MESSAGE_MAX 1024

static int check_len(const char *what, const char *s, size_t max, char *err, size_t errlen) {
  size_t n = s ? strlen(s) : 0;
  if (n > max) return cp_err(err, errlen, "%s is %zu bytes; the limit is %zu", what, n, max);
  return 0;
}

int nt_job_check(const Carepass__V1__NotifyJob *job, char *err, size_t errlen) {
  const char *t = job->type ? job->type : "";
  size_t n = strlen(t);
  if (n == 0) return cp_err(err, errlen, "job has no type");
  if (n > NT_TYPE_MAX) return cp_err(err, errlen, "type is %zu bytes; the limit is %d", n, NT_TYPE_MAX);
  for (size_t i = 0; i < n; i++) {
    char c = t[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_'))
      return cp_err(err, errlen, "type has a character outside [a-z0-9._]");
  }
  if (!job->provider_id || !*job->provider_id) return cp_err(err, errlen, "job has no provider_id");
  if (check_len("provider_id", job->provider_id, PROV_ID_MAX - 1, err, errlen) < 0 ||
      check_len("provider_event_id", job->provider_event_id, JOB_EVENT_ID_MAX, err, errlen) < 0 ||
      check_len("reason_code", job->reason_code, JOB_REASON_MAX, err, errlen) < 0 ||
      check_len("message", job->message, JOB_MESSAGE_MAX, err, errlen) < 0 ||
      check_len("qualification_code", job->qualification_code, CAT_CODE_MAX - 1, err, errlen) < 0)
    return -1;
  return 0;
}

void nt_iso8601(int64_t ms, char out[32]) {
  time_t secs = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

static const char *nz(const char *s) { return s ? s : ""; }

char *nt_job_body(const Carepass__V1__NotifyJob *job, int64_t now_ms) {
  char ts[32];
  int64_t at = job->occurred_at > 0 ? job->occurred_at : now_ms;
  nt_iso8601(at, ts);
  /* The pseudonym is deliberately left out: provider webhooks carry no worker data. */
  json_t *data = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}",
                           "provider_id", nz(job->provider_id),
                           "provider_event_id", nz(job->provider_event_id),
                           "reason_code", nz(job->reason_code),
                           "message", nz(job->message),
                           "entry_index", (json_int_t)job->entry_index,
                           "qualification_code", nz(job->qualification_code));
  json_t *root = data ? json_pack("{s:s, s:s, s:o}", "type", nz(job->type), "timestamp", ts, "data", data)
                      : NULL;
  if (!root) {               /* only on OOM or invalid UTF-8 in a string */
    json_decref(data);
    return NULL;
  }
  char *out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(root);
  return out;
}

void nt_endpoint(const char *url, char *out, size_t outlen) {
  assert(outlen > 0);
  out[0] = '\0';
  const char *p = strstr(url, "://");
  if (!p) return;
  bool https = (size_t)(p - url) == 5 && strncasecmp(url, "https", 5) == 0;
  p += 3;
  size_t alen = strcspn(p, "/?#");               /* the authority */
  const char *at = memchr(p, '@', alen);         /* drop user:password@ */
  if (at) {
    alen -= (size_t)(at + 1 - p);
    p = at + 1;
  }
  size_t hlen = alen;
  const char *port = NULL;
  if (alen && p[0] == '[') {                     /* [v6]:port */
    const char *close = memchr(p, ']', alen);
    if (close) {
      hlen = (size_t)(close + 1 - p);
      if (hlen < alen && p[hlen] == ':') port = p + hlen + 1;
    }
  } else {
    const char *colon = memchr(p, ':', alen);
    if (colon) {
      hlen = (size_t)(colon - p);
      port = colon + 1;
    }
  }
  size_t plen = port ? alen - (size_t)(port - p) : 0;
  if (hlen + 8 >= outlen || plen > 5) return;
  for (size_t i = 0; i < hlen; i++) out[i] = (char)tolower((unsigned char)p[i]);
  out[hlen] = ':';
  if (plen) {
    memcpy(out + hlen + 1, port, plen);
    out[hlen + 1 + plen] = '\0';
  } else {
    snprintf(out + hlen + 1, outlen - hlen - 1, "%s", https ? "443" : "80");
  }
}
