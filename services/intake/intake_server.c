/* intake_server.c -- the provider-facing ROUTER: CurveZMQ + ZAP, request decoding, whole-request
 * errors, per-event answers, and the poll loop that never blocks on a waiting request.
 *
 * Wire protocol (provider <-> intake)
 * -----------------------------------
 * Transport: ZeroMQ over TCP at CAREPASS_INTAKE_BIND, CurveZMQ mandatory. The client
 * is a CURVE client (its own key pair) that knows intake's server public key (the
 * ".pub" file next to CAREPASS_INTAKE_CURVE_KEY). Intake's ZAP handler (domain
 * "carepass") admits only public keys listed as "curve_public_key" in the provider
 * registry (CAREPASS_PROVIDERS); any other key never completes the handshake, so
 * its requests go unanswered. The provider's identity is the registry entry of the
 * key that connected: never anything in the message body. Intake looks at the
 * registry file every INTAKE_REGISTRY_CHECK_MS and reloads it when it changed (inode,
 * size or mtime; a file that does not load leaves the old registry in force): a key
 * removed from it is refused from then on without a restart, both at the next
 * handshake and on connections already open (the ZAP user id is the client's key,
 * looked up in the current registry on every request: NOT_AUTHENTICATED).
 *
 * Socket: intake binds a ROUTER. The client uses a DEALER (or a REQ):
 *   DEALER request frames:  [SubmitRequest bytes]          (or ["" , SubmitRequest bytes])
 *   REQ request frames:     ["", SubmitRequest bytes]      (REQ adds the empty delimiter)
 * The last frame is the request body; every frame before it (at most 7, e.g. the
 * empty delimiter) is echoed back in front of the reply, so a DEALER gets back
 * exactly the framing it sent and a REQ gets a valid REP-style reply. A DEALER may
 * pipeline many requests; match replies by SubmitRequest.request_id (<= 64 chars).
 * The reply body is one SubmitReply frame.
 *
 * Size limits: a body larger than 2 * CAREPASS_MAX_MESSAGE_BYTES drops the
 * connection (ZMQ_MAXMSGSIZE); a body larger than CAREPASS_MAX_MESSAGE_BYTES gets
 * error MESSAGE_TOO_LARGE. At most CAREPASS_MAX_BATCH events per request.
 *
 * Whole-request errors (SubmitReply.error_code + error_message, no replies):
 *   MALFORMED_REQUEST  body is not a SubmitRequest (or request_id > 64 chars)
 *   MESSAGE_TOO_LARGE  body > CAREPASS_MAX_MESSAGE_BYTES
 *   BATCH_EMPTY        no events
 *   BATCH_TOO_LARGE    more than CAREPASS_MAX_BATCH events
 *   INVALID_ACK_LEVEL  ack not UNSPECIFIED / ACCEPTED / COMMITTED
 *   NOT_AUTHENTICATED  the connection carries no provider identity
 *   UNAVAILABLE        Redis is unavailable: nothing was stored; resend later
 * Otherwise SubmitReply.replies has one EventReply per event, in request order:
 *   ACCEPTED   durable in Redis, on its way to verify and the signer
 *   REJECTED   reason_code + message (shape checks here, rules in verify,
 *              EVENT_ID_REUSED when the id was used for different content; BUSY when the
 *              notifications owed are at CAREPASS_OUTBOX_MAX: not stored, resend it later)
 *   COMMITTED  signed and in the register at entry_index
 * Ack levels: ACCEPTED (or UNSPECIFIED) answers at once. COMMITTED answers when
 * every event is final (COMMITTED or REJECTED) or after CAREPASS_ACK_TIMEOUT_MS,
 * when the events not yet final are reported ACCEPTED (ask again later: a resend of
 * the same batch is idempotent and returns the states reached).
 * Idempotency: (provider, provider_event_id) names an event forever; resending the
 * same content returns the same answer, different content gets EVENT_ID_REUSED.
 */
#include "intake.h"
#include "intake_forward.h"
#include "intake_redrive.h"
#include "intake_req.h"
#include "intake_wait.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cp_codec.h"
#include "cp_config.h"
#include "cp_log.h"
#include "cp_reasons.h"
#include "cp_service.h"

#define INTAKE_ZAP_DOMAIN "carepass"
#define INTAKE_REQUEST_ID_MAX 64   /* longest request_id echoed */
#define INTAKE_BURST 64            /* requests / results handled per poll round before timers run */

/* The provider id of a registered CURVE key in the current registry (copied under reg_lock);
 * false when the key is not (or no longer) registered. */
static bool provider_of_key(intake_t *in, const char *key_z85, char *id, size_t idlen) {
  pthread_mutex_lock(&in->reg_lock);
  const prov_t *p = prov_find_by_key(in->providers, key_z85);
  bool ok = p != NULL && p->curve_key[0] != '\0';
  if (ok) snprintf(id, idlen, "%s", p->id);
  pthread_mutex_unlock(&in->reg_lock);
  return ok;
}

/* ZAP admission: the key must be a provider's registered key; the user id is the key itself, so
 * every request is judged against the registry in force when it arrives (see handle_request). */
static bool admit_provider(const char *key_z85, char *user_id, size_t user_id_len, void *arg) {
  char id[PROV_ID_MAX];
  if (!provider_of_key(arg, key_z85, id, sizeof id)) return false;
  snprintf(user_id, user_id_len, "%s", key_z85);
  return true;
}

/* Reload the provider registry when its file changed since it was loaded. */
static void registry_refresh(intake_t *in) {
  const char *path = cp_cfg_str(CP_OPT_PROVIDERS);
  struct stat st;
  if (stat(path, &st) != 0) return; /* a missing file (mid-replace by hand) keeps what is in force */
  if (st.st_ino == in->reg_st.st_ino && st.st_dev == in->reg_st.st_dev && st.st_size == in->reg_st.st_size &&
      st.st_mtim.tv_sec == in->reg_st.st_mtim.tv_sec && st.st_mtim.tv_nsec == in->reg_st.st_mtim.tv_nsec)
    return;
  char err[CP_ERRLEN];
  prov_registry_t *fresh = NULL;
  if (prov_load(path, &fresh, err, sizeof err) != 0) {
    if (!in->reg_failed)
      cp_log_error("provider registry changed but does not load; the previous one stays in force",
                   CP_KV_STR("error", err), CP_KV_END);
    in->reg_failed = true;
    return;
  }
  pthread_mutex_lock(&in->reg_lock);
  prov_registry_t *old = in->providers;
  in->providers = fresh;
  pthread_mutex_unlock(&in->reg_lock);
  prov_destroy(&old);
  in->reg_st = st;
  in->reg_failed = false;
  cp_log_info("provider registry reloaded", CP_KV_INT("providers", prov_count(fresh)), CP_KV_END);
}

static int make_router(intake_t *in, const char *secret_z85, char *err, size_t errlen) {
  int hwm = (int)cp_cfg_int(CP_OPT_BUS_HWM);
  int64_t maxmsg = (int64_t)(2 * in->max_message);
  /* no endpoint yet: CURVE options must be set before bind */
  in->router = cp_zmq_socket(in->ctx, ZMQ_ROUTER, "", true, hwm, maxmsg, err, errlen);
  if (in->router == NULL) return -1;
  int one = 1;
  if (zmq_setsockopt(in->router, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
      zmq_setsockopt(in->router, ZMQ_CURVE_SECRETKEY, secret_z85, 40) != 0 ||
      zmq_setsockopt(in->router, ZMQ_ZAP_DOMAIN, INTAKE_ZAP_DOMAIN, strlen(INTAKE_ZAP_DOMAIN)) != 0)
    return cp_err(err, errlen, "zmq_setsockopt(CURVE): %s", zmq_strerror(errno));
  const char *bind = cp_cfg_str(CP_OPT_INTAKE_BIND);
  if (zmq_bind(in->router, bind) != 0)
    return cp_err(err, errlen, "zmq_bind %s: %s", bind, zmq_strerror(errno));
  return 0;
}

int intake_new(intake_t **out, char *err, size_t errlen) {
  *out = NULL;
  intake_t *in = cp_xcalloc(1, sizeof *in);
  char pub[41] = "", sec[41] = "";
  int hwm = (int)cp_cfg_int(CP_OPT_BUS_HWM);
  in->max_message = (size_t)cp_cfg_int(CP_OPT_MAX_MESSAGE_BYTES);
  in->max_batch = (size_t)cp_cfg_int(CP_OPT_MAX_BATCH);
  in->ack_timeout_ms = cp_cfg_int(CP_OPT_ACK_TIMEOUT_MS);
  in->redrive_after_ms = cp_cfg_int(CP_OPT_REDRIVE_AFTER_MS);
  in->outbox_max = cp_cfg_int(CP_OPT_OUTBOX_MAX);
  const char *id = cp_cfg_str(CP_OPT_INTAKE_ID);
  if (id[0] != '\0') {
    snprintf(in->id, sizeof in->id, "%s", id);
  } else {
    char host[64] = "intake";
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "intake");
    host[sizeof host - 1] = '\0';
    snprintf(in->id, sizeof in->id, "%s-%ld", host, (long)getpid());
  }

  pthread_mutex_init(&in->reg_lock, NULL);
  if (stat(cp_cfg_str(CP_OPT_PROVIDERS), &in->reg_st) != 0) memset(&in->reg_st, 0, sizeof in->reg_st);
  if (prov_load(cp_cfg_str(CP_OPT_PROVIDERS), &in->providers, err, errlen) != 0) goto err;
  if (cp_secret_load(cp_cfg_str(CP_OPT_PSEUDONYM_SECRET), true, in->secret, err, errlen) != 0) goto err;
  if (cp_curve_load(cp_cfg_str(CP_OPT_INTAKE_CURVE_KEY), true, pub, sec, err, errlen) != 0) goto err;
  in->redis = cp_redis_new(cp_cfg_str(CP_OPT_REDIS_HOST), (int)cp_cfg_int(CP_OPT_REDIS_PORT),
                           (int)cp_cfg_int(CP_OPT_REDIS_TIMEOUT_MS), err, errlen);
  if (in->redis == NULL) goto err;
  if (ing_store_init(in->redis, err, errlen) != 0) goto err;

  in->ctx = zmq_ctx_new();
  if (in->ctx == NULL) {
    cp_err(err, errlen, "zmq_ctx_new: %s", zmq_strerror(errno));
    goto err;
  }
  /* the ZAP handler must be bound before the CURVE socket accepts anyone */
  in->zap = cp_zap_start(in->ctx, admit_provider, in, err, errlen);
  if (in->zap == NULL) goto err;
  if (make_router(in, sec, err, errlen) != 0) goto err;
  in->verify_push = cp_zmq_socket(in->ctx, ZMQ_PUSH, cp_cfg_str(CP_OPT_BUS_VERIFY_IN), false, hwm, 0, err, errlen);
  if (in->verify_push == NULL) goto err;
  in->results_sub = cp_zmq_socket(in->ctx, ZMQ_SUB, cp_cfg_str(CP_OPT_BUS_RESULTS_OUT), false, hwm, 0, err, errlen);
  if (in->results_sub == NULL) goto err;
  if (zmq_setsockopt(in->results_sub, ZMQ_SUBSCRIBE, in->id, strlen(in->id)) != 0) {
    cp_err(err, errlen, "zmq_setsockopt(ZMQ_SUBSCRIBE): %s", zmq_strerror(errno));
    goto err;
  }
  in->waits = intake_waits_new();
  sodium_memzero(sec, sizeof sec);
  cp_log_info("intake listening", CP_KV_STR("bind", cp_cfg_str(CP_OPT_INTAKE_BIND)),
              CP_KV_STR("server_key", pub), CP_KV_STR("id", in->id),
              CP_KV_INT("providers", prov_count(in->providers)), CP_KV_END);
  *out = in;
  return 0;
err:
  sodium_memzero(sec, sizeof sec);
  intake_destroy(&in);
  return -1;
}

void intake_destroy(intake_t **inp) {
  if (inp == NULL || *inp == NULL) return;
  intake_t *in = *inp;
  intake_waits_destroy(&in->waits);
  cp_zmq_close(&in->router);
  cp_zmq_close(&in->verify_push);
  cp_zmq_close(&in->results_sub);
  cp_zap_stop(&in->zap);
  if (in->ctx != NULL) zmq_ctx_term(in->ctx);
  cp_redis_destroy(&in->redis);
  prov_destroy(&in->providers);
  pthread_mutex_destroy(&in->reg_lock);
  sodium_memzero(in->secret, sizeof in->secret);
  free(in);
  *inp = NULL;
}

static void reply_error(intake_t *in, intake_req_t *req, cp_reason_t code, const char *message) {
  Carepass__V1__SubmitReply rep = CAREPASS__V1__SUBMIT_REPLY__INIT;
  rep.request_id = req->request_id != NULL ? req->request_id : (char *)"";
  rep.error_code = (char *)cp_reason_code(code);
  rep.error_message = (char *)message;
  intake_req_send(in, req, &rep.base);
  cp_log_info("request refused", CP_KV_STR("provider", req->provider[0] ? req->provider : "-"),
              CP_KV_STR("error_code", cp_reason_code(code)),
              CP_KV_INT("ms", cp_mono_ms() - req->started_ms), CP_KV_END);
}

/* ing_edge_t.forward: the push is best effort (intake_forward.c counts the failures). */
static void forward_new(void *arg, const Carepass__V1__PendingEvent *pe, const uint8_t *packed, size_t len) {
  (void)pe;
  intake_t *in = arg;
  if (intake_forward_verify(in, packed, len) != 0) {
    /* queue full or bus down: the event is durable; the redrive scan sends it */
  }
}

/* Per-event work for a decoded, authenticated request (ing_batch_take: shape, pseudonymise,
 * claim in Redis, forward the new ones). Returns -1 when Redis is unavailable. */
static int process_events(intake_t *in, intake_req_t *req, const Carepass__V1__SubmitRequest *sr,
                          const ing_text_fault_t *faults) {
  ing_edge_t edge = {
    .redis = in->redis,
    .redrive_after_ms = in->redrive_after_ms,
    .outbox_max = in->outbox_max,
    .secret = in->secret,
    .reply_to = req->committed ? in->id : "", /* results come back on our topic while we wait */
    .forward = forward_new,
    .arg = in,
    .faults = faults,
  };
  return ing_batch_take(&edge, req->provider, req->committed, sr->events, sr->n_events, req->ans, &req->nwaiting);
}

/* Handle one received multipart request; takes ownership of nothing (frames are moved). */
static void handle_request(intake_t *in, zmq_msg_t *frames, int nframes) {
  char msg[CP_ERRLEN];
  Carepass__V1__SubmitRequest *sr = NULL;
  ing_text_fault_t *faults = NULL;
  intake_req_t *req = cp_xcalloc(1, sizeof *req);
  req->started_ms = cp_mono_ms();
  if (nframes - 1 > INTAKE_MAX_ENVELOPE || nframes < 2) {
    /* a ROUTER always gives [routing id]...[body]; too many envelope frames cannot be echoed */
    cp_log_warn("request dropped: too many envelope frames", CP_KV_INT("frames", nframes), CP_KV_END);
    goto out;
  }
  zmq_msg_t *body = &frames[nframes - 1];
  /* the ZAP user id is the client's CURVE key; the provider is whoever holds it in the registry
   * now (a key removed since the handshake is refused below) */
  const char *user = zmq_msg_gets(body, "User-Id");
  bool removed = false;
  if (user != NULL && !provider_of_key(in, user, req->provider, sizeof req->provider)) {
    req->provider[0] = '\0';
    removed = true;
  }
  for (int i = 0; i < nframes - 1; i++) {
    zmq_msg_init(&req->env[i]);
    zmq_msg_move(&req->env[i], &frames[i]);
  }
  req->nenv = nframes - 1;

  size_t len = zmq_msg_size(body);
  if (len > in->max_message) {
    snprintf(msg, sizeof msg, "request is %zu bytes; the limit is %zu (split the batch)", len,
             in->max_message);
    reply_error(in, req, CP_R_MESSAGE_TOO_LARGE, msg);
    goto out;
  }
  if (req->provider[0] == '\0') {
    reply_error(in, req, CP_R_NOT_AUTHENTICATED,
                removed ? "this connection's key is no longer in the provider registry"
                        : "the connection carries no provider identity");
    goto out;
  }
  char uerr[CP_ERRLEN];
  sr = (Carepass__V1__SubmitRequest *)cp_pb_unpack(&carepass__v1__submit_request__descriptor,
                                                    zmq_msg_data(body), len, in->max_message, uerr,
                                                    sizeof uerr);
  if (sr == NULL) {
    reply_error(in, req, CP_R_MALFORMED_REQUEST, "the request is not a valid SubmitRequest protobuf");
    goto out;
  }
  /* NUL bytes and invalid UTF-8 are judged on the wire bytes, where lengths are still known */
  ing_text_fault_t rq_fault;
  faults = cp_xcalloc(sr->n_events > 0 ? sr->n_events : 1, sizeof *faults);
  if (ing_wire_check(zmq_msg_data(body), len, sr->n_events, faults, &rq_fault) != 0) {
    reply_error(in, req, CP_R_MALFORMED_REQUEST, "the request is not a valid SubmitRequest protobuf");
    goto out;
  }
  if (rq_fault.reason != CP_OK) {
    /* request_id is echoed in every reply: never echo one that is not clean text */
    reply_error(in, req, rq_fault.reason,
                rq_fault.reason == CP_R_NUL_IN_STRING ? "request_id contains a NUL (zero) byte; remove it"
                                                      : "request_id is not valid UTF-8; send it as UTF-8");
    goto out;
  }
  if (strlen(sr->request_id) > INTAKE_REQUEST_ID_MAX) {
    snprintf(msg, sizeof msg, "request_id is %zu characters; the limit is %d", strlen(sr->request_id),
             INTAKE_REQUEST_ID_MAX);
    reply_error(in, req, CP_R_MALFORMED_REQUEST, msg);
    goto out;
  }
  req->request_id = cp_strdup(sr->request_id);
  if (sr->n_events == 0) {
    reply_error(in, req, CP_R_BATCH_EMPTY, "the batch has no events");
    goto out;
  }
  if (sr->n_events > in->max_batch) {
    snprintf(msg, sizeof msg, "the batch has %zu events; the limit is %zu", sr->n_events, in->max_batch);
    reply_error(in, req, CP_R_BATCH_TOO_LARGE, msg);
    goto out;
  }
  switch (sr->ack) {
  case CAREPASS__V1__ACK_LEVEL__ACK_LEVEL_UNSPECIFIED:
  case CAREPASS__V1__ACK_LEVEL__ACK_LEVEL_ACCEPTED:
    break;
  case CAREPASS__V1__ACK_LEVEL__ACK_LEVEL_COMMITTED:
    req->committed = true;
    break;
  default:
    snprintf(msg, sizeof msg, "ack %d is unknown; use ACCEPTED (1) or COMMITTED (2)", (int)sr->ack);
    reply_error(in, req, CP_R_INVALID_ACK_LEVEL, msg);
    goto out;
  }

  req->n = sr->n_events;
  req->ans = cp_xcalloc(req->n, sizeof *req->ans);
  if (process_events(in, req, sr, faults) != 0) {
    reply_error(in, req, CP_R_UNAVAILABLE, "the event store is unavailable; nothing was stored, resend later");
    goto out;
  }
  if (req->nwaiting > 0) {
    int64_t now = cp_mono_ms();
    req->deadline_ms = req->started_ms + in->ack_timeout_ms;
    req->refresh_ms = now + INTAKE_REFRESH_MS;
    intake_waits_add(in->waits, req);
    req = NULL; /* owned by the table now */
    goto out;
  }
  intake_reply(in, req);
out:
  if (sr != NULL) {
    /* the decoded NI numbers are personal data: do not leave them in freed memory */
    for (size_t i = 0; i < sr->n_events; i++)
      sodium_memzero(sr->events[i]->ni_number, strlen(sr->events[i]->ni_number));
    protobuf_c_message_free_unpacked(&sr->base, NULL);
  }
  free(faults);
  intake_req_destroy(&req);
}

/* Receive and handle up to INTAKE_BURST requests already queued on the ROUTER. */
static void drain_router(intake_t *in) {
  for (int k = 0; k < INTAKE_BURST; k++) {
    int events = 0;
    size_t sz = sizeof events;
    if (zmq_getsockopt(in->router, ZMQ_EVENTS, &events, &sz) != 0 || !(events & ZMQ_POLLIN)) return;
    zmq_msg_t *frames = NULL;
    int n = 0;
    if (cp_zmq_recv_multipart(in->router, &frames, &n, INTAKE_MAX_ENVELOPE + 1) != 0) {
      if (errno == EPROTO)
        cp_log_warn("request dropped: too many frames", CP_KV_END);
      continue;
    }
    handle_request(in, frames, n);
    cp_zmq_free_multipart(&frames, n);
  }
}

/* Apply the results queued on the SUB socket; true if any arrived. */
static bool drain_results(intake_t *in) {
  bool any = false;
  for (int k = 0; k < INTAKE_BURST * 16; k++) {
    int events = 0;
    size_t sz = sizeof events;
    if (zmq_getsockopt(in->results_sub, ZMQ_EVENTS, &events, &sz) != 0 || !(events & ZMQ_POLLIN))
      break;
    zmq_msg_t *f = NULL;
    int n = 0;
    if (cp_zmq_recv_multipart(in->results_sub, &f, &n, 2) != 0) continue;
    size_t idlen = strlen(in->id);
    /* the subscription is a prefix match: insist on our exact topic */
    if (n == 2 && zmq_msg_size(&f[0]) == idlen && memcmp(zmq_msg_data(&f[0]), in->id, idlen) == 0) {
      char err[CP_ERRLEN];
      Carepass__V1__EventResult *res = (Carepass__V1__EventResult *)cp_pb_unpack(
          &carepass__v1__event_result__descriptor, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]),
          in->max_message, err, sizeof err);
      if (res != NULL) {
        intake_waits_result(in->waits, res);
        protobuf_c_message_free_unpacked(&res->base, NULL);
        any = true;
      } else {
        cp_log_warn("bad EventResult on the results topic", CP_KV_STR("error", err), CP_KV_END);
      }
    }
    cp_zmq_free_multipart(&f, n);
  }
  return any;
}

int intake_turn(intake_t *in, int timeout_ms) {
  int64_t now = cp_mono_ms();
  if (in->next_redrive_ms == 0) in->next_redrive_ms = now + INTAKE_REDRIVE_EVERY_MS; /* first turn */
  int64_t wake = intake_waits_next_ms(in->waits);
  if (in->next_redrive_ms < wake) wake = in->next_redrive_ms;
  long timeout = wake <= now ? 0 : (long)(wake - now);
  if (timeout > timeout_ms) timeout = timeout_ms;
  zmq_pollitem_t items[2] = {{in->router, 0, ZMQ_POLLIN, 0}, {in->results_sub, 0, ZMQ_POLLIN, 0}};
  int rc = zmq_poll(items, 2, timeout);
  if (rc < 0) {
    if (errno == EINTR) return 0;
    cp_log_error("zmq_poll failed", CP_KV_STR("error", zmq_strerror(errno)), CP_KV_END);
    return -1;
  }
  bool results = false;
  if (items[1].revents & ZMQ_POLLIN) results = drain_results(in);
  if (items[0].revents & ZMQ_POLLIN) drain_router(in);
  now = cp_mono_ms();
  if (results || intake_waits_next_ms(in->waits) <= now) intake_waits_tick(in, false);
  if (now >= in->next_registry_ms) {
    registry_refresh(in);
    in->next_registry_ms = cp_mono_ms() + INTAKE_REGISTRY_CHECK_MS;
  }
  if (now >= in->next_redrive_ms) {
    intake_redrive(in);
    in->next_redrive_ms = cp_mono_ms() + INTAKE_REDRIVE_EVERY_MS;
  }
  return 0;
}

int intake_drain(intake_t *in) {
  /* SIGTERM: read no more requests; answer the waiting ones with the states reached */
  size_t waiting = intake_waits_count(in->waits);
  (void)drain_results(in);
  intake_waits_tick(in, true);
  cp_log_info("intake stopping", CP_KV_INT("answered_waiting", waiting), CP_KV_END);
  return 0;
}
