/* notify_deliver.c -- signed webhook POSTs in parallel with the libcurl multi interface. */
#include <assert.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include <sys/socket.h>
#include "cp_url_check.h"
#include "notify_deliver.h"
#include "notify_retry.h"
#include "notify_sign.h"

#define CONNECT_TIMEOUT_MS 3000L

/* One transfer slot. */
typedef struct {
  bool busy;                  // a transfer is running in this slot
  CURL *easy;                 // the easy handle (reused between transfers)
  struct curl_slist *headers; // request headers of the running transfer
  nt_claimed_t c;             // the delivery being attempted
  int64_t started_ms;         // monotonic start time
  char errbuf[CURL_ERROR_SIZE]; // curl's error text
  char ep[300];               // "host:port" of the transfer (per-endpoint limit)
  bool host_allowed;          // the URL's host name is on CAREPASS_WEBHOOK_ALLOW_HOSTS: any address
  bool url_refused;           // cp_url_check refused the URL itself (why says why): no connection
  const char *refused;        // class of an address the connect-time check refused (NULL = none)
  char why[200];              // the refusal as the result's error text
} slot_t;

struct nt_deliverer {
  CURLM *multi;               // the multi handle
  slot_t *slots;              // concurrency slots
  size_t nslots;              // number of slots
  size_t busy;                // slots in use
  long timeout_ms;            // whole-transfer timeout
  const cp_signkey_t *key;    // signing key (owned by the caller)
  nt_secrets_fn secrets;      // the recipient's v1 secrets of an attempt (NULL = v1a only)
  void *secrets_arg;          // passed to secrets
  nt_ep_load_t *loads;        // scratch for nt_deliverer_loads (nslots entries)
};

static bool curl_ready;

/* Discard the response body: receivers' answers are not needed. */
static size_t discard(char *ptr, size_t size, size_t nmemb, void *arg) {
  (void)ptr;
  (void)arg;
  return size * nmemb;
}

nt_deliverer_t *nt_deliverer_new(const cp_signkey_t *key, int concurrency, long timeout_ms,
                                 char *err, size_t errlen) {
  assert(concurrency > 0);
  if (!curl_ready) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      cp_err(err, errlen, "curl_global_init failed");
      return NULL;
    }
    curl_ready = true;
  }
  nt_deliverer_t *d = cp_xcalloc(1, sizeof *d);
  d->key = key;
  d->timeout_ms = timeout_ms;
  d->nslots = (size_t)concurrency;
  d->slots = cp_xcalloc(d->nslots, sizeof *d->slots);
  d->loads = cp_xcalloc(d->nslots, sizeof *d->loads);
  d->multi = curl_multi_init();
  if (!d->multi) {
    cp_err(err, errlen, "curl_multi_init failed");
    goto err;
  }
  curl_multi_setopt(d->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)concurrency);
  return d;
err:
  nt_deliverer_destroy(&d);
  return NULL;
}

/* Open the socket of a connection curl is about to make, unless the address is one carepass does
 * not send to (cp_url_check.h): judged here, at connect time, for every address a host name
 * resolves to, so a name that points (or is later re-pointed) at loopback, a private network or
 * the cloud metadata address is never connected to. */
static curl_socket_t open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a) {
  slot_t *s = clientp;
  (void)purpose;
  const char *why = NULL;
  if (s->url_refused) {
    s->refused = "";
    return CURL_SOCKET_BAD;
  }
  if (!s->host_allowed && !cp_url_addr_allowed(&a->addr, cp_url_allow_config(), &why)) {
    s->refused = why;
    return CURL_SOCKET_BAD;
  }
  return socket(a->family, a->socktype, a->protocol);
}

static void slot_clear(nt_deliverer_t *d, slot_t *s) {
  if (s->busy) {
    curl_multi_remove_handle(d->multi, s->easy);
    d->busy--;
  }
  curl_slist_free_all(s->headers);
  s->headers = NULL;
  nt_claimed_free(&s->c);
  s->busy = false;
}

void nt_deliverer_destroy(nt_deliverer_t **dp) {
  nt_deliverer_t *d = dp ? *dp : NULL;
  if (!d) return;
  for (size_t i = 0; i < d->nslots; i++) {
    slot_clear(d, &d->slots[i]);
    if (d->slots[i].easy) curl_easy_cleanup(d->slots[i].easy);
  }
  if (d->multi) curl_multi_cleanup(d->multi);
  free(d->slots);
  free(d->loads);
  free(d);
  *dp = NULL;
}

void nt_deliverer_set_secrets(nt_deliverer_t *d, nt_secrets_fn fn, void *arg) {
  d->secrets = fn;
  d->secrets_arg = arg;
}

size_t nt_deliverer_room(const nt_deliverer_t *d) { return d->nslots - d->busy; }
size_t nt_deliverer_inflight(const nt_deliverer_t *d) { return d->busy; }

size_t nt_deliverer_loads(nt_deliverer_t *d, const nt_ep_load_t **loads) {
  size_t n = 0;
  for (size_t i = 0; i < d->nslots; i++) {
    const slot_t *s = &d->slots[i];
    if (!s->busy || !s->ep[0]) continue;
    size_t j = 0;
    while (j < n && strcmp(d->loads[j].endpoint, s->ep) != 0) j++;
    if (j == n) d->loads[n++] = (nt_ep_load_t){.endpoint = s->ep, .inflight = 0};
    d->loads[j].inflight++;
  }
  *loads = d->loads;
  return n;
}

int nt_deliverer_ep_inflight(const nt_deliverer_t *d, const char *ep) {
  int n = 0;
  for (size_t i = 0; i < d->nslots; i++)
    if (d->slots[i].busy && strcmp(d->slots[i].ep, ep) == 0) n++;
  return n;
}

static struct curl_slist *add_header(struct curl_slist *list, const char *name, const char *value,
                                     bool *ok) {
  char line[64 + NT_SIG_HDR_SIZE];   /* the longest header is webhook-signature */
  /* "Name:" with no value removes a header curl would add on its own. */
  int n = value[0] ? snprintf(line, sizeof line, "%s: %s", name, value)
                   : snprintf(line, sizeof line, "%s:", name);
  if (n < 0 || (size_t)n >= sizeof line) {
    *ok = false;
    return list;
  }
  struct curl_slist *l = curl_slist_append(list, line);
  if (!l) {
    *ok = false;
    return list;
  }
  return l;
}

int nt_deliverer_start(nt_deliverer_t *d, nt_claimed_t *c, char *err, size_t errlen) {
  slot_t *s = NULL;
  for (size_t i = 0; i < d->nslots && !s; i++)
    if (!d->slots[i].busy) s = &d->slots[i];
  assert(s);   /* the caller checks nt_deliverer_room first */

  if (!s->easy && !(s->easy = curl_easy_init())) return cp_err(err, errlen, "curl_easy_init failed");
  curl_easy_reset(s->easy);
  s->c = *c;
  memset(c, 0, sizeof *c);
  nt_endpoint(s->c.url, s->ep, sizeof s->ep);
  /* A URL refused as a whole (stored before these rules, or a literal address) gets no connection
   * at all; otherwise every address is judged as it is connected to (open_socket). */
  cp_url_t where;
  s->refused = NULL;
  s->why[0] = '\0';
  s->url_refused = cp_url_check(s->c.url, cp_url_allow_config(), &where, s->why, sizeof s->why) != 0;
  s->host_allowed = !s->url_refused && cp_url_host_allowed(where.host, cp_url_allow_config());

  /* Signed at this attempt's time (Standard Webhooks: the attempt's timestamp, not the event's). */
  char ts[24], sig[NT_SIG_HDR_SIZE];
  int64_t now_s = cp_now_ms() / 1000;
  snprintf(ts, sizeof ts, "%lld", (long long)now_s);
  nt_secrets_t secrets = {.n = 0};
  if (d->secrets) d->secrets(d->secrets_arg, &s->c, now_s, &secrets);
  int signed_rc = nt_sign_header(d->key, &secrets, s->c.id, now_s, s->c.body, strlen(s->c.body), sig, sizeof sig);
  nt_secrets_wipe(&secrets);
  if (signed_rc < 0) {
    cp_err(err, errlen, "signing %s failed", s->c.id);
    goto err;
  }
  bool ok = true;
  s->headers = add_header(s->headers, "Content-Type", "application/json", &ok);
  s->headers = add_header(s->headers, "webhook-id", s->c.id, &ok);
  s->headers = add_header(s->headers, "webhook-timestamp", ts, &ok);
  s->headers = add_header(s->headers, "webhook-signature", sig, &ok);
  s->headers = add_header(s->headers, "Expect", "", &ok);   /* no 100-continue round trip */
  if (!ok) {
    cp_err(err, errlen, "building headers for %s failed", s->c.id);
    goto err;
  }

  CURL *e = s->easy;
  CURLcode cc = CURLE_OK;
#define SET(opt, val) do { if (cc == CURLE_OK) cc = curl_easy_setopt(e, opt, val); } while (0)
  SET(CURLOPT_URL, s->c.url);
  SET(CURLOPT_PROTOCOLS_STR, "http,https");
  SET(CURLOPT_PROXY, "");     /* never a proxy from the environment: the address check is ours */
  SET(CURLOPT_OPENSOCKETFUNCTION, open_socket);
  SET(CURLOPT_OPENSOCKETDATA, (void *)s);
  SET(CURLOPT_FOLLOWLOCATION, 0L);
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_TIMEOUT_MS, d->timeout_ms);
  SET(CURLOPT_CONNECTTIMEOUT_MS, d->timeout_ms < CONNECT_TIMEOUT_MS ? d->timeout_ms : CONNECT_TIMEOUT_MS);
  SET(CURLOPT_USERAGENT, "carepass-notify");
  SET(CURLOPT_HTTPHEADER, s->headers);
  SET(CURLOPT_POST, 1L);
  SET(CURLOPT_POSTFIELDS, s->c.body);
  SET(CURLOPT_POSTFIELDSIZE, (long)strlen(s->c.body));
  SET(CURLOPT_WRITEFUNCTION, discard);
  SET(CURLOPT_ERRORBUFFER, s->errbuf);
  SET(CURLOPT_PRIVATE, (void *)s);
#undef SET
  if (cc != CURLE_OK) {
    cp_err(err, errlen, "curl_easy_setopt for %s: %s", s->c.id, curl_easy_strerror(cc));
    goto err;
  }
  s->errbuf[0] = '\0';
  CURLMcode mc = curl_multi_add_handle(d->multi, e);
  if (mc != CURLM_OK) {
    cp_err(err, errlen, "curl_multi_add_handle for %s: %s", s->c.id, curl_multi_strerror(mc));
    goto err;
  }
  s->busy = true;
  s->started_ms = cp_mono_ms();
  d->busy++;
  return 0;
err:
  /* Give the delivery back to the caller unchanged so it can be released. */
  *c = s->c;
  memset(&s->c, 0, sizeof s->c);
  slot_clear(d, s);
  return -1;
}

int nt_deliverer_run(nt_deliverer_t *d, const nt_waitfd_t *extra, size_t nextra, int timeout_ms,
                     nt_result_fn fn, void *arg) {
  struct curl_waitfd wfd[4];
  unsigned n = 0;
  for (size_t i = 0; i < nextra && n < CP_ARRAY_LEN(wfd); i++) {
    if (extra[i].fd < 0) continue;
    wfd[n++] = (struct curl_waitfd){
        .fd = extra[i].fd, .revents = 0,
        .events = (short)(((extra[i].events & POLLIN) ? CURL_WAIT_POLLIN : 0) |
                          ((extra[i].events & POLLOUT) ? CURL_WAIT_POLLOUT : 0))};
  }
  int running = 0, numfds = 0;
  /* curl_multi_poll, not curl_multi_wait: with no transfer and no extra fd, curl_multi_wait
   * returns at once, and an idle notify spun through its loop (~48,000 XREADGROUP/s measured
   * with bench_pipeline's idle check); curl_multi_poll waits the timeout out. */
  CURLMcode mc = curl_multi_poll(d->multi, n ? wfd : NULL, n, timeout_ms, &numfds);
  if (mc != CURLM_OK) return -1;
  mc = curl_multi_perform(d->multi, &running);
  if (mc != CURLM_OK) return -1;
  CURLMsg *m;
  int left = 0;
  while ((m = curl_multi_info_read(d->multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    slot_t *s = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
    assert(s && s->busy);
    nt_result_t res = {.d = &s->c, .status = 0, .curl_code = (int)m->data.result,
                       .error = s->errbuf, .elapsed_ms = cp_mono_ms() - s->started_ms};
    if (m->data.result == CURLE_OK)
      curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &res.status);
    else if (s->refused != NULL) {
      if (!s->url_refused)
        snprintf(s->why, sizeof s->why, "refused to connect to a %s address (CAREPASS_WEBHOOK_ALLOW_HOSTS)",
                 s->refused);
      res.error = s->why;
    } else if (!s->errbuf[0])
      res.error = curl_easy_strerror(m->data.result);
    fn(&res, arg);
    slot_clear(d, s);
  }
  return 0;
}

void nt_deliverer_abort_all(nt_deliverer_t *d, void (*fn)(const nt_claimed_t *c, void *arg), void *arg) {
  for (size_t i = 0; i < d->nslots; i++) {
    slot_t *s = &d->slots[i];
    if (!s->busy) continue;
    if (fn) fn(&s->c, arg);
    slot_clear(d, s);
  }
}
