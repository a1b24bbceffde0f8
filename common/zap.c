/* zap.c -- ZAP (ZeroMQ RFC 27, version 1.0) handler thread admitting CURVE clients by public key. */
#include "cp_zmq.h"
#include "cp_log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_POLL_MS 100       /* how often the thread looks at the stop flag */
#define ZAP_MAX_FRAMES 16     /* a request has 6 + credential frames; CURVE has 1 */
#define ZAP_USER_ID_MAX 64    /* longest user id handed to the application */

struct cp_zap {
  void *ctx;                 // the context whose sockets this handler serves
  void *rep;                 // REP socket bound to inproc://zeromq.zap.01
  pthread_t thread;          // the handler thread
  atomic_int stop;           // set by cp_zap_stop; the thread checks it every ZAP_POLL_MS
  cp_zap_admit_fn admit;     // the application's admission callback
  void *arg;                 // argument for admit
};

/* Send the six-frame ZAP reply. */
static void zap_reply(void *rep, const zmq_msg_t *request_id, const char *status,
                      const char *text, const char *user_id) {
  const char *version = "1.0";
  zmq_send(rep, version, strlen(version), ZMQ_SNDMORE);
  zmq_send(rep, zmq_msg_data((zmq_msg_t *)request_id), zmq_msg_size((zmq_msg_t *)request_id),
           ZMQ_SNDMORE);
  zmq_send(rep, status, strlen(status), ZMQ_SNDMORE);
  zmq_send(rep, text, strlen(text), ZMQ_SNDMORE);
  zmq_send(rep, user_id, strlen(user_id), ZMQ_SNDMORE);
  zmq_send(rep, "", 0, 0); /* metadata: none */
}

static bool frame_is(zmq_msg_t *m, const char *s) {
  size_t n = strlen(s);
  return zmq_msg_size(m) == n && memcmp(zmq_msg_data(m), s, n) == 0;
}

/* Handle one request already waiting on the REP socket. */
static void zap_handle(cp_zap_t *z) {
  zmq_msg_t *f = NULL;
  int n = 0;
  if (cp_zmq_recv_multipart(z->rep, &f, &n, ZAP_MAX_FRAMES) != 0) {
    /* too many frames (drained) or a receive error: a REP socket must still
     * answer, but without a request id we cannot; libzmq only sends well-formed
     * requests, so log it and carry on. */
    cp_log_warn("zap: bad request", CP_KV_STR("error", zmq_strerror(errno)), CP_KV_END);
    if (errno == EPROTO) {
      zmq_msg_t empty;
      zmq_msg_init(&empty);
      zap_reply(z->rep, &empty, "500", "Malformed ZAP request", "");
      zmq_msg_close(&empty);
    }
    return;
  }
  /* frames: version, request id, domain, address, identity, mechanism, credentials... */
  if (n < 6 || !frame_is(&f[0], "1.0")) {
    zap_reply(z->rep, n >= 2 ? &f[1] : &f[0], "500", "Unsupported ZAP version or malformed request", "");
    goto done;
  }
  if (!frame_is(&f[5], "CURVE")) {
    zap_reply(z->rep, &f[1], "400", "Only the CURVE mechanism is accepted", "");
    goto done;
  }
  if (n != 7 || zmq_msg_size(&f[6]) != 32) {
    zap_reply(z->rep, &f[1], "400", "Malformed CURVE credential", "");
    goto done;
  }
  char key_z85[41];
  if (zmq_z85_encode(key_z85, zmq_msg_data(&f[6]), 32) == NULL) {
    zap_reply(z->rep, &f[1], "400", "Malformed CURVE credential", "");
    goto done;
  }
  char user_id[ZAP_USER_ID_MAX + 1];
  memset(user_id, 0, sizeof user_id);
  bool ok = z->admit(key_z85, user_id, sizeof user_id, z->arg);
  user_id[ZAP_USER_ID_MAX] = '\0';
  if (ok)
    zap_reply(z->rep, &f[1], "200", "OK", user_id);
  else
    zap_reply(z->rep, &f[1], "400", "Unknown client key", "");
done:
  cp_zmq_free_multipart(&f, n);
}

static void *zap_main(void *p) {
  cp_zap_t *z = p;
  while (!z->stop) {
    zmq_pollitem_t it = {z->rep, 0, ZMQ_POLLIN, 0};
    int rc = zmq_poll(&it, 1, ZAP_POLL_MS);
    if (rc < 0) {
      if (errno == EINTR) continue;
      if (errno == ETERM) break;
      cp_log_error("zap: zmq_poll failed", CP_KV_STR("error", zmq_strerror(errno)), CP_KV_END);
      break;
    }
    if (rc > 0 && (it.revents & ZMQ_POLLIN)) zap_handle(z);
  }
  return NULL;
}

cp_zap_t *cp_zap_start(void *ctx, cp_zap_admit_fn admit, void *arg, char *err, size_t errlen) {
  cp_zap_t *z = cp_xcalloc(1, sizeof *z);
  z->ctx = ctx;
  z->admit = admit;
  z->arg = arg;
  /* bind before any CURVE server socket accepts a connection (libzmq denies
   * all if no handler is bound when one is needed) */
  z->rep = cp_zmq_socket(ctx, ZMQ_REP, ZAP_ENDPOINT, true, 1000, 0, err, errlen);
  if (z->rep == NULL) goto err;
  int rc = pthread_create(&z->thread, NULL, zap_main, z);
  if (rc != 0) {
    cp_err(err, errlen, "pthread_create: %s", strerror(rc));
    goto err;
  }
  return z;
err:
  cp_zmq_close(&z->rep);
  free(z);
  return NULL;
}

void cp_zap_stop(cp_zap_t **zap) {
  if (zap == NULL || *zap == NULL) return;
  cp_zap_t *z = *zap;
  z->stop = 1;
  pthread_join(z->thread, NULL);
  cp_zmq_close(&z->rep);
  free(z);
  *zap = NULL;
}
