/* zmq_util.c -- ZeroMQ sockets with carepass's standard options, protobuf frames, multipart receive. */
#include "cp_zmq.h"
#include "cp_codec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* LINGER for every carepass socket: 0, so zmq_ctx_term never hangs at shutdown on
 * unsent messages. Work is never lost this way: queued events live in Redis and
 * are re-driven; a service that wants to flush waits for acknowledgements instead. */
#define CP_ZMQ_LINGER_MS 0

void *cp_zmq_socket(void *ctx, int type, const char *endpoints, bool bind, int hwm,
                    int64_t maxmsg, char *err, size_t errlen) {
  void *s = zmq_socket(ctx, type);
  char *list = NULL;
  if (s == NULL) {
    cp_err(err, errlen, "zmq_socket: %s", zmq_strerror(errno));
    return NULL;
  }
  int linger = CP_ZMQ_LINGER_MS;
  if (zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
      zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0 ||
      zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm) != 0) {
    cp_err(err, errlen, "zmq_setsockopt: %s", zmq_strerror(errno));
    goto err;
  }
  if (maxmsg > 0 && zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) != 0) {
    cp_err(err, errlen, "zmq_setsockopt(ZMQ_MAXMSGSIZE): %s", zmq_strerror(errno));
    goto err;
  }
  if (endpoints == NULL || endpoints[0] == '\0') return s; /* caller binds/connects later */
  list = cp_strdup(endpoints);
  char *save = NULL;
  for (char *ep = strtok_r(list, ",", &save); ep != NULL; ep = strtok_r(NULL, ",", &save)) {
    while (*ep == ' ') ep++;
    size_t n = strlen(ep);
    while (n > 0 && ep[n - 1] == ' ') ep[--n] = '\0';
    if (n == 0) continue;
    int rc = bind ? zmq_bind(s, ep) : zmq_connect(s, ep);
    if (rc != 0) {
      cp_err(err, errlen, "%s %s: %s", bind ? "zmq_bind" : "zmq_connect", ep, zmq_strerror(errno));
      goto err;
    }
  }
  free(list);
  return s;
err:
  free(list);
  zmq_close(s);
  return NULL;
}

void cp_zmq_close(void **sock) {
  if (sock == NULL || *sock == NULL) return;
  zmq_close(*sock);
  *sock = NULL;
}

static void free_buf(void *data, void *hint) {
  (void)hint;
  free(data);
}

int cp_zmq_send_pb(void *sock, const ProtobufCMessage *msg, int flags) {
  uint8_t *buf = NULL;
  size_t len = 0;
  if (cp_pb_pack(msg, &buf, &len) != 0) {
    errno = EPROTO;
    return -1;
  }
  zmq_msg_t m;
  if (zmq_msg_init_data(&m, buf, len, free_buf, NULL) != 0) {
    int e = errno;
    free(buf);
    errno = e;
    return -1;
  }
  if (zmq_msg_send(&m, sock, flags) < 0) {
    int e = errno;
    zmq_msg_close(&m); /* frees buf */
    errno = e;
    return -1;
  }
  return 0;
}

int cp_zmq_recv_frame(void *sock, uint8_t **buf, size_t *len, int flags) {
  zmq_msg_t m;
  zmq_msg_init(&m);
  if (zmq_msg_recv(&m, sock, flags) < 0) {
    int e = errno;
    zmq_msg_close(&m);
    errno = e;
    return -1;
  }
  size_t n = zmq_msg_size(&m);
  uint8_t *b = cp_xmalloc(n + 1);
  memcpy(b, zmq_msg_data(&m), n);
  b[n] = '\0'; /* convenience for text frames; not counted in len */
  zmq_msg_close(&m);
  *buf = b;
  *len = n;
  return 0;
}

int cp_zmq_recv_multipart(void *sock, zmq_msg_t **frames, int *nframes, int max_frames) {
  if (max_frames < 1) {
    errno = EINVAL;
    return -1;
  }
  zmq_msg_t *f = cp_xcalloc((size_t)max_frames, sizeof *f);
  int n = 0;
  bool too_many = false;
  for (;;) {
    zmq_msg_t part;
    zmq_msg_init(&part);
    /* Only the first frame can block or fail with EINTR/EAGAIN: the rest of a
     * multipart message arrives atomically with it. */
    if (zmq_msg_recv(&part, sock, 0) < 0) {
      int e = errno;
      zmq_msg_close(&part);
      if (n > 0 && e == EINTR) continue; /* rest is already queued; keep reading */
      cp_zmq_free_multipart(&f, n);
      errno = e;
      return -1;
    }
    int more = zmq_msg_more(&part);
    if (n < max_frames) {
      f[n++] = part; /* ownership moves into the array */
    } else {
      too_many = true;
      zmq_msg_close(&part);
    }
    if (!more) break;
  }
  if (too_many) {
    cp_zmq_free_multipart(&f, n);
    errno = EPROTO;
    return -1;
  }
  *frames = f;
  *nframes = n;
  return 0;
}

void cp_zmq_free_multipart(zmq_msg_t **frames, int nframes) {
  if (frames == NULL || *frames == NULL) return;
  for (int i = 0; i < nframes; i++) zmq_msg_close(&(*frames)[i]);
  free(*frames);
  *frames = NULL;
}
