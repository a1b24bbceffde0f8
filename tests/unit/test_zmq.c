/* test_zmq.c -- cp_zmq sockets over loopback TCP, protobuf frames, size limits, multipart limits, CURVE + ZAP. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "carepass/v1/event.pb-c.h"
#include "cp_codec.h"
#include "cp_zmq.h"

#define WAIT_MS 5000       /* bound on waiting for something that should arrive */
#define REFUSE_WAIT_MS 1500 /* how long a refused client's message is waited for (must not arrive) */
#define HWM 1000

/* Per-test state: one context (each has its own inproc ZAP endpoint). */
typedef struct {
  void *ctx;   // the ZeroMQ context of this test
} fx_t;

static int setup(void **state) {
  fx_t *fx = cp_xcalloc(1, sizeof *fx);
  fx->ctx = zmq_ctx_new();
  if (fx->ctx == NULL) return -1;
  *state = fx;
  return 0;
}

static int teardown(void **state) {
  fx_t *fx = *state;
  zmq_ctx_term(fx->ctx); /* every socket has LINGER 0 and is closed by the test */
  free(fx);
  return 0;
}

/* Bind `type` on an ephemeral loopback port; the endpoint actually bound goes into ep. */
static void *bind_free(void *ctx, int type, int64_t maxmsg, char *ep, size_t eplen) {
  char err[CP_ERRLEN] = "";
  void *s = cp_zmq_socket(ctx, type, "tcp://127.0.0.1:*", true, HWM, maxmsg, err, sizeof err);
  if (s == NULL) fail_msg("cp_zmq_socket bind: %s", err);
  size_t n = eplen;
  assert_int_equal(zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &n), 0);
  assert_non_null(strstr(ep, "tcp://127.0.0.1:"));
  return s;
}

static bool readable(void *s, int ms) {
  zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
  int rc = zmq_poll(&it, 1, ms);
  assert_true(rc >= 0);
  return rc > 0 && (it.revents & ZMQ_POLLIN);
}

static int get_int_opt(void *s, int opt) {
  int v = 0;
  size_t n = sizeof v;
  assert_int_equal(zmq_getsockopt(s, opt, &v, &n), 0);
  return v;
}

/* cp_zmq_socket sets the standard options, binds and connects; bad endpoints fail with a message. */
static void test_socket_bind_connect(void **state) {
  fx_t *fx = *state;
  char ep[128], err[CP_ERRLEN] = "";
  void *pull = bind_free(fx->ctx, ZMQ_PULL, 0, ep, sizeof ep);
  assert_int_equal(get_int_opt(pull, ZMQ_LINGER), 0);
  assert_int_equal(get_int_opt(pull, ZMQ_RCVHWM), HWM);
  assert_int_equal(get_int_opt(pull, ZMQ_SNDHWM), HWM);

  /* a list with spaces and an empty element, as written in an env variable */
  char list[300];
  snprintf(list, sizeof list, " %s , ,", ep);
  void *push = cp_zmq_socket(fx->ctx, ZMQ_PUSH, list, false, HWM, 0, err, sizeof err);
  if (push == NULL) fail_msg("connect: %s", err);
  assert_int_equal(zmq_send(push, "hello", 5, 0), 5);
  assert_true(readable(pull, WAIT_MS));
  char buf[16];
  assert_int_equal(zmq_recv(pull, buf, sizeof buf, 0), 5);
  assert_memory_equal(buf, "hello", 5);

  /* binding the same port twice fails, and says which endpoint */
  void *again = cp_zmq_socket(fx->ctx, ZMQ_PULL, ep, true, HWM, 0, err, sizeof err);
  assert_null(again);
  assert_non_null(strstr(err, "zmq_bind"));
  assert_non_null(strstr(err, ep));

  /* a malformed endpoint */
  err[0] = '\0';
  assert_null(cp_zmq_socket(fx->ctx, ZMQ_PUSH, "nonsense://x", false, HWM, 0, err, sizeof err));
  assert_non_null(strstr(err, "zmq_connect"));

  /* endpoints NULL: created, not bound (the caller binds later) */
  void *later = cp_zmq_socket(fx->ctx, ZMQ_ROUTER, NULL, true, HWM, 0, err, sizeof err);
  assert_non_null(later);
  char last[128] = "";
  size_t n = sizeof last;
  assert_int_equal(zmq_getsockopt(later, ZMQ_LAST_ENDPOINT, last, &n), 0);
  assert_string_equal(last, "");

  cp_zmq_close(&later);
  cp_zmq_close(&push);
  cp_zmq_close(&pull);
  assert_null(pull);
  cp_zmq_close(&pull); /* safe on NULL */
  cp_zmq_close(NULL);
}

/* A protobuf message sent with cp_zmq_send_pb comes back intact through cp_zmq_recv_frame. */
static void test_send_pb_recv_frame(void **state) {
  fx_t *fx = *state;
  char ep[128], err[CP_ERRLEN] = "";
  void *router = bind_free(fx->ctx, ZMQ_ROUTER, 1 << 20, ep, sizeof ep);
  void *dealer = cp_zmq_socket(fx->ctx, ZMQ_DEALER, ep, false, HWM, 1 << 20, err, sizeof err);
  if (dealer == NULL) fail_msg("connect: %s", err);

  Carepass__V1__CompletionEvent ev = CAREPASS__V1__COMPLETION_EVENT__INIT;
  Carepass__V1__CompletionEvent *evs[1] = {&ev};
  ev.provider_event_id = "evt-0001";
  ev.provider_id = "PRV-0001";
  ev.qualification_code = "RF-FIRE";
  ev.completion_date = "2025-03-03";
  uint8_t hash[32];
  memset(hash, 0xab, sizeof hash);
  ev.evidence_hash.data = hash;
  ev.evidence_hash.len = sizeof hash;
  Carepass__V1__SubmitRequest req = CAREPASS__V1__SUBMIT_REQUEST__INIT;
  req.n_events = 1;
  req.events = evs;
  req.ack = CAREPASS__V1__ACK_LEVEL__ACK_LEVEL_COMMITTED;
  req.request_id = "r-1";
  assert_int_equal(cp_zmq_send_pb(dealer, &req.base, 0), 0);

  /* ROUTER sees [identity][payload] */
  assert_true(readable(router, WAIT_MS));
  uint8_t *id = NULL, *buf = NULL;
  size_t idlen = 0, len = 0;
  assert_int_equal(cp_zmq_recv_frame(router, &id, &idlen, 0), 0);
  assert_true(idlen > 0);
  int more = get_int_opt(router, ZMQ_RCVMORE);
  assert_int_equal(more, 1);
  assert_int_equal(cp_zmq_recv_frame(router, &buf, &len, 0), 0);
  assert_int_equal(len, protobuf_c_message_get_packed_size(&req.base));
  assert_int_equal(buf[len], '\0'); /* NUL after the frame, not counted */
  Carepass__V1__SubmitRequest *got = (Carepass__V1__SubmitRequest *)cp_pb_unpack(
      &carepass__v1__submit_request__descriptor, buf, len, 1 << 20, err, sizeof err);
  if (got == NULL) fail_msg("unpack: %s", err);
  assert_string_equal(got->request_id, "r-1");
  assert_int_equal(got->ack, CAREPASS__V1__ACK_LEVEL__ACK_LEVEL_COMMITTED);
  assert_int_equal(got->n_events, 1);
  assert_string_equal(got->events[0]->provider_event_id, "evt-0001");
  assert_string_equal(got->events[0]->qualification_code, "RF-FIRE");
  assert_int_equal(got->events[0]->evidence_hash.len, 32);
  assert_memory_equal(got->events[0]->evidence_hash.data, hash, 32);
  protobuf_c_message_free_unpacked(&got->base, NULL);
  free(buf);

  /* reply back through the identity, as intake does */
  Carepass__V1__SubmitReply rep = CAREPASS__V1__SUBMIT_REPLY__INIT;
  rep.request_id = "r-1";
  rep.error_code = "BATCH_TOO_LARGE";
  assert_int_equal(zmq_send(router, id, idlen, ZMQ_SNDMORE), (int)idlen);
  assert_int_equal(cp_zmq_send_pb(router, &rep.base, 0), 0);
  free(id);
  assert_true(readable(dealer, WAIT_MS));
  assert_int_equal(cp_zmq_recv_frame(dealer, &buf, &len, 0), 0);
  Carepass__V1__SubmitReply *r2 = (Carepass__V1__SubmitReply *)cp_pb_unpack(
      &carepass__v1__submit_reply__descriptor, buf, len, 1 << 20, err, sizeof err);
  assert_non_null(r2);
  assert_string_equal(r2->error_code, "BATCH_TOO_LARGE");
  protobuf_c_message_free_unpacked(&r2->base, NULL);
  free(buf);

  /* nothing waiting: DONTWAIT fails with EAGAIN and leaves the outputs alone */
  buf = NULL;
  errno = 0;
  assert_int_equal(cp_zmq_recv_frame(dealer, &buf, &len, ZMQ_DONTWAIT), -1);
  assert_int_equal(errno, EAGAIN);
  assert_null(buf);

  /* a message with every field at its default packs to zero bytes and still
   * arrives as one empty frame */
  Carepass__V1__SubmitReply empty = CAREPASS__V1__SUBMIT_REPLY__INIT;
  assert_int_equal(cp_zmq_send_pb(dealer, &empty.base, 0), 0);
  assert_true(readable(router, WAIT_MS));
  assert_int_equal(cp_zmq_recv_frame(router, &id, &idlen, 0), 0);
  assert_int_equal(cp_zmq_recv_frame(router, &buf, &len, 0), 0);
  assert_int_equal(len, 0);
  free(buf);
  free(id);
  cp_zmq_close(&dealer);
  cp_zmq_close(&router);
}

/* ZMQ_MAXMSGSIZE: a frame over the limit never reaches the application; the
 * sender is disconnected, and a fresh connection still works. */
static void test_maxmsgsize(void **state) {
  fx_t *fx = *state;
  char ep[128], err[CP_ERRLEN] = "";
  void *pull = bind_free(fx->ctx, ZMQ_PULL, 1024, ep, sizeof ep);
  void *push = cp_zmq_socket(fx->ctx, ZMQ_PUSH, ep, false, HWM, 0, err, sizeof err);
  assert_non_null(push);
  char *big = cp_xcalloc(1, 4096);
  assert_int_equal(zmq_send(push, big, 4096, 0), 4096);
  assert_false(readable(pull, REFUSE_WAIT_MS));
  free(big);
  cp_zmq_close(&push);

  push = cp_zmq_socket(fx->ctx, ZMQ_PUSH, ep, false, HWM, 0, err, sizeof err);
  assert_non_null(push);
  assert_int_equal(zmq_send(push, "small", 5, 0), 5);
  assert_true(readable(pull, WAIT_MS));
  uint8_t *buf = NULL;
  size_t len = 0;
  assert_int_equal(cp_zmq_recv_frame(pull, &buf, &len, 0), 0);
  assert_int_equal(len, 5);
  free(buf);
  cp_zmq_close(&push);
  cp_zmq_close(&pull);
}

/* Multipart: the exact count is fine; one frame too many is EPROTO, the
 * whole message is drained, and the next message is read cleanly. */
static void test_multipart_limits(void **state) {
  fx_t *fx = *state;
  char ep[128], err[CP_ERRLEN] = "";
  void *pull = bind_free(fx->ctx, ZMQ_PULL, 0, ep, sizeof ep);
  void *push = cp_zmq_socket(fx->ctx, ZMQ_PUSH, ep, false, HWM, 0, err, sizeof err);
  assert_non_null(push);

  const char *parts[] = {"a", "bb", "ccc", "dddd", "eeeee"};
  for (int i = 0; i < 3; i++) assert_true(zmq_send(push, parts[i], strlen(parts[i]), i < 2 ? ZMQ_SNDMORE : 0) >= 0);
  for (int i = 0; i < 5; i++) assert_true(zmq_send(push, parts[i], strlen(parts[i]), i < 4 ? ZMQ_SNDMORE : 0) >= 0);
  assert_true(zmq_send(push, "next", 4, 0) >= 0);

  zmq_msg_t *f = NULL;
  int n = 0;
  assert_true(readable(pull, WAIT_MS));
  assert_int_equal(cp_zmq_recv_multipart(pull, &f, &n, 3), 0);
  assert_int_equal(n, 3);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(zmq_msg_size(&f[i]), strlen(parts[i]));
    assert_memory_equal(zmq_msg_data(&f[i]), parts[i], strlen(parts[i]));
  }
  cp_zmq_free_multipart(&f, n);
  assert_null(f);

  /* five frames with room for three */
  f = NULL;
  n = -7;
  errno = 0;
  assert_int_equal(cp_zmq_recv_multipart(pull, &f, &n, 3), -1);
  assert_int_equal(errno, EPROTO);
  assert_null(f);
  assert_int_equal(n, -7); /* outputs untouched on error */

  /* the rest of the oversized message was drained: the next one is intact */
  assert_int_equal(cp_zmq_recv_multipart(pull, &f, &n, 3), 0);
  assert_int_equal(n, 1);
  assert_int_equal(zmq_msg_size(&f[0]), 4);
  assert_memory_equal(zmq_msg_data(&f[0]), "next", 4);
  cp_zmq_free_multipart(&f, n);

  /* max_frames < 1 is refused; nothing waiting with DONTWAIT-less recv is not tested (would block) */
  errno = 0;
  assert_int_equal(cp_zmq_recv_multipart(pull, &f, &n, 0), -1);
  assert_int_equal(errno, EINVAL);
  cp_zmq_free_multipart(&f, 0); /* safe on NULL */
  cp_zmq_free_multipart(NULL, 0);

  cp_zmq_close(&push);
  cp_zmq_close(&pull);
}

/* ---- CURVE + ZAP -------------------------------------------------------- */

/* The admission list the ZAP callback consults. */
typedef struct {
  char allowed[41];    // the one client key admitted (Z85)
  int calls;           // how many times admit ran (any thread; read after a wait)
  int refused;         // how many keys it refused
} admit_ctx_t;

static bool admit(const char *key_z85, char *user_id, size_t user_id_len, void *arg) {
  admit_ctx_t *a = arg;
  __atomic_add_fetch(&a->calls, 1, __ATOMIC_SEQ_CST);
  if (strcmp(key_z85, a->allowed) == 0) {
    snprintf(user_id, user_id_len, "PRV-0001");
    return true;
  }
  __atomic_add_fetch(&a->refused, 1, __ATOMIC_SEQ_CST);
  return false;
}

static void *curve_client(void *ctx, const char *ep, const char *server_pub, const char *pub,
                          const char *sec) {
  char err[CP_ERRLEN] = "";
  void *s = cp_zmq_socket(ctx, ZMQ_DEALER, NULL, false, HWM, 0, err, sizeof err);
  assert_non_null(s);
  assert_int_equal(zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server_pub, 40), 0);
  assert_int_equal(zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 40), 0);
  assert_int_equal(zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40), 0);
  assert_int_equal(zmq_connect(s, ep), 0);
  return s;
}

/* A listed key is admitted and its messages carry the User-Id the callback
 * set; an unlisted key's message never arrives; a plain (non-CURVE) client
 * neither. */
static void test_curve_zap(void **state) {
  fx_t *fx = *state;
  char err[CP_ERRLEN] = "";
  char srv_pub[41], srv_sec[41], ok_pub[41], ok_sec[41], bad_pub[41], bad_sec[41];
  assert_int_equal(zmq_curve_keypair(srv_pub, srv_sec), 0);
  assert_int_equal(zmq_curve_keypair(ok_pub, ok_sec), 0);
  assert_int_equal(zmq_curve_keypair(bad_pub, bad_sec), 0);
  admit_ctx_t a;
  memset(&a, 0, sizeof a);
  snprintf(a.allowed, sizeof a.allowed, "%s", ok_pub);

  cp_zap_t *zap = cp_zap_start(fx->ctx, admit, &a, err, sizeof err);
  if (zap == NULL) fail_msg("cp_zap_start: %s", err);
  void *server = cp_zmq_socket(fx->ctx, ZMQ_ROUTER, NULL, true, HWM, 1 << 20, err, sizeof err);
  assert_non_null(server);
  int one = 1;
  assert_int_equal(zmq_setsockopt(server, ZMQ_CURVE_SERVER, &one, sizeof one), 0);
  assert_int_equal(zmq_setsockopt(server, ZMQ_CURVE_SECRETKEY, srv_sec, 40), 0);
  assert_int_equal(zmq_bind(server, "tcp://127.0.0.1:*"), 0);
  char ep[128];
  size_t eplen = sizeof ep;
  assert_int_equal(zmq_getsockopt(server, ZMQ_LAST_ENDPOINT, ep, &eplen), 0);

  /* the listed key */
  void *good = curve_client(fx->ctx, ep, srv_pub, ok_pub, ok_sec);
  assert_int_equal(zmq_send(good, "from-good", 9, 0), 9);
  assert_true(readable(server, WAIT_MS));
  zmq_msg_t *f = NULL;
  int n = 0;
  assert_int_equal(cp_zmq_recv_multipart(server, &f, &n, 4), 0);
  assert_int_equal(n, 2); /* identity, payload */
  assert_int_equal(zmq_msg_size(&f[1]), 9);
  assert_memory_equal(zmq_msg_data(&f[1]), "from-good", 9);
  const char *uid = zmq_msg_gets(&f[1], "User-Id");
  assert_non_null(uid);
  assert_string_equal(uid, "PRV-0001");
  cp_zmq_free_multipart(&f, n);
  assert_true(__atomic_load_n(&a.calls, __ATOMIC_SEQ_CST) >= 1);
  assert_int_equal(__atomic_load_n(&a.refused, __ATOMIC_SEQ_CST), 0);

  /* an unlisted key: the handshake is refused, the message never arrives */
  void *bad = curve_client(fx->ctx, ep, srv_pub, bad_pub, bad_sec);
  assert_int_equal(zmq_send(bad, "from-bad", 8, ZMQ_DONTWAIT), 8);
  assert_false(readable(server, REFUSE_WAIT_MS));
  assert_true(__atomic_load_n(&a.refused, __ATOMIC_SEQ_CST) >= 1); /* ZAP was asked and said no */

  /* a client without CURVE at all gets nowhere either */
  void *plain = cp_zmq_socket(fx->ctx, ZMQ_DEALER, ep, false, HWM, 0, err, sizeof err);
  assert_non_null(plain);
  assert_int_equal(zmq_send(plain, "plain", 5, ZMQ_DONTWAIT), 5);
  assert_false(readable(server, REFUSE_WAIT_MS / 2));

  /* and the admitted client still works afterwards */
  assert_int_equal(zmq_send(good, "again", 5, 0), 5);
  assert_true(readable(server, WAIT_MS));
  assert_int_equal(cp_zmq_recv_multipart(server, &f, &n, 4), 0);
  assert_int_equal(n, 2);
  assert_memory_equal(zmq_msg_data(&f[1]), "again", 5);
  assert_string_equal(zmq_msg_gets(&f[1], "User-Id"), "PRV-0001");
  cp_zmq_free_multipart(&f, n);

  cp_zmq_close(&plain);
  cp_zmq_close(&bad);
  cp_zmq_close(&good);
  cp_zmq_close(&server);
  cp_zap_stop(&zap);
  assert_null(zap);
  cp_zap_stop(&zap); /* safe on NULL */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_socket_bind_connect, setup, teardown),
      cmocka_unit_test_setup_teardown(test_send_pb_recv_frame, setup, teardown),
      cmocka_unit_test_setup_teardown(test_maxmsgsize, setup, teardown),
      cmocka_unit_test_setup_teardown(test_multipart_limits, setup, teardown),
      cmocka_unit_test_setup_teardown(test_curve_zap, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
