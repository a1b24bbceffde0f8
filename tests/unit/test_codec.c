/* test_codec.c -- protobuf pack/unpack limits: oversize, malformed, unknown fields, wrong wire types. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "carepass/v1/event.pb-c.h"
#include "cp_codec.h"

#define EV_DESC (&carepass__v1__completion_event__descriptor)

static void pack_event(uint8_t **buf, size_t *len) {
  Carepass__V1__CompletionEvent ev = CAREPASS__V1__COMPLETION_EVENT__INIT;
  ev.provider_event_id = "ev-1";
  ev.qualification_code = "CC-STD-01";
  ev.completion_date = "2025-03-01";
  ev.kind = CAREPASS__V1__EVENT_KIND__EVENT_KIND_COMPLETION;
  assert_int_equal(cp_pb_pack(&ev.base, buf, len), 0);
}

static void test_round_trip(void **state) {
  (void)state;
  Carepass__V1__CompletionEvent ev = CAREPASS__V1__COMPLETION_EVENT__INIT;
  Carepass__V1__CompletionEvent *evs[1] = {&ev};
  Carepass__V1__SubmitRequest req = CAREPASS__V1__SUBMIT_REQUEST__INIT;
  ev.provider_event_id = "ev-42";
  ev.ni_number = "AB123456C";
  req.n_events = 1;
  req.events = evs;
  req.request_id = "r1";
  req.ack = CAREPASS__V1__ACK_LEVEL__ACK_LEVEL_COMMITTED;
  uint8_t *buf = NULL;
  size_t len = 0;
  assert_int_equal(cp_pb_pack(&req.base, &buf, &len), 0);
  char err[CP_ERRLEN] = "";
  Carepass__V1__SubmitRequest *got = (Carepass__V1__SubmitRequest *)cp_pb_unpack(
      &carepass__v1__submit_request__descriptor, buf, len, 1024, err, sizeof err);
  assert_non_null(got);
  assert_int_equal(got->n_events, 1);
  assert_string_equal(got->events[0]->provider_event_id, "ev-42");
  assert_string_equal(got->request_id, "r1");
  assert_int_equal(got->ack, CAREPASS__V1__ACK_LEVEL__ACK_LEVEL_COMMITTED);
  protobuf_c_message_free_unpacked(&got->base, NULL);
  free(buf);
}

static void test_empty_message(void **state) {
  (void)state;
  char err[CP_ERRLEN] = "";
  ProtobufCMessage *m = cp_pb_unpack(EV_DESC, NULL, 0, 100, err, sizeof err);
  assert_non_null(m);
  protobuf_c_message_free_unpacked(m, NULL);
}

static void test_oversize(void **state) {
  (void)state;
  uint8_t *buf = NULL;
  size_t len = 0;
  pack_event(&buf, &len);
  char err[CP_ERRLEN] = "", want[CP_ERRLEN];
  assert_null(cp_pb_unpack(EV_DESC, buf, len, len - 1, err, sizeof err));
  snprintf(want, sizeof want, "message is %zu bytes; the limit is %zu", len, len - 1);
  assert_string_equal(err, want);
  /* exactly at the limit is fine */
  ProtobufCMessage *m = cp_pb_unpack(EV_DESC, buf, len, len, err, sizeof err);
  assert_non_null(m);
  protobuf_c_message_free_unpacked(m, NULL);
  free(buf);
}

static void test_malformed(void **state) {
  (void)state;
  static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  static const uint8_t truncated[] = {0x0a, 0x10, 'a', 'b'};   /* field 1, length 16, 2 bytes */
  static const uint8_t bad_tag[] = {0x00, 0x01};               /* field number 0 */
  char err[CP_ERRLEN] = "";
  assert_null(cp_pb_unpack(EV_DESC, garbage, sizeof garbage, 1024, err, sizeof err));
  assert_string_equal(err, "malformed protobuf");
  err[0] = '\0';
  assert_null(cp_pb_unpack(EV_DESC, truncated, sizeof truncated, 1024, err, sizeof err));
  assert_string_equal(err, "malformed protobuf");
  err[0] = '\0';
  assert_null(cp_pb_unpack(EV_DESC, bad_tag, sizeof bad_tag, 1024, err, sizeof err));
  assert_string_equal(err, "malformed protobuf");
}

static void test_unknown_fields_ignored(void **state) {
  (void)state;
  uint8_t *buf = NULL;
  size_t len = 0;
  pack_event(&buf, &len);
  /* append field 99 (varint 7) and field 100 (bytes "xyz") */
  static const uint8_t extra[] = {0x98, 0x06, 0x07, 0xa2, 0x06, 0x03, 'x', 'y', 'z'};
  uint8_t *big = malloc(len + sizeof extra);
  assert_non_null(big);
  memcpy(big, buf, len);
  memcpy(big + len, extra, sizeof extra);
  char err[CP_ERRLEN] = "";
  Carepass__V1__CompletionEvent *ev = (Carepass__V1__CompletionEvent *)cp_pb_unpack(
      EV_DESC, big, len + sizeof extra, 1024, err, sizeof err);
  assert_non_null(ev);
  assert_string_equal(ev->provider_event_id, "ev-1");
  assert_string_equal(ev->completion_date, "2025-03-01");
  protobuf_c_message_free_unpacked(&ev->base, NULL);
  free(big);
  free(buf);
}

static void test_wrong_wire_type(void **state) {
  (void)state;
  char err[CP_ERRLEN] = "";
  /* CompletionEvent.provider_event_id (string, field 1) sent as a varint */
  static const uint8_t str_as_varint[] = {0x08, 0x01};
  assert_null(cp_pb_unpack(EV_DESC, str_as_varint, sizeof str_as_varint, 1024, err, sizeof err));
  assert_string_equal(err, "malformed protobuf");
  /* EventReply.entry_index (uint64, field 5) sent length-delimited */
  static const uint8_t int_as_bytes[] = {0x2a, 0x01, 0x00};
  err[0] = '\0';
  assert_null(cp_pb_unpack(&carepass__v1__event_reply__descriptor, int_as_bytes,
                           sizeof int_as_bytes, 1024, err, sizeof err));
  assert_string_equal(err, "malformed protobuf");
  /* SubmitRequest.events (message, field 1) sent as a fixed32 */
  static const uint8_t msg_as_fixed[] = {0x0d, 1, 2, 3, 4};
  err[0] = '\0';
  assert_null(cp_pb_unpack(&carepass__v1__submit_request__descriptor, msg_as_fixed,
                           sizeof msg_as_fixed, 1024, err, sizeof err));
  assert_string_equal(err, "malformed protobuf");
}

static void test_invalid_utf8_string(void **state) {
  (void)state;
  /* proto3 strings must be UTF-8; whatever protobuf-c decides, no crash and a
   * clear result: either NULL with the message or a parsed message. */
  static const uint8_t bad[] = {0x0a, 0x02, 0xc3, 0x28};
  char err[CP_ERRLEN] = "";
  ProtobufCMessage *m = cp_pb_unpack(EV_DESC, bad, sizeof bad, 1024, err, sizeof err);
  if (m != NULL) protobuf_c_message_free_unpacked(m, NULL);
  else assert_string_equal(err, "malformed protobuf");
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_round_trip),
    cmocka_unit_test(test_empty_message),
    cmocka_unit_test(test_oversize),
    cmocka_unit_test(test_malformed),
    cmocka_unit_test(test_unknown_fields_ignored),
    cmocka_unit_test(test_wrong_wire_type),
    cmocka_unit_test(test_invalid_utf8_string),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
