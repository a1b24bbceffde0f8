/* codec.c -- protobuf-c pack/unpack with size limits and checked results. */
#include "cp_codec.h"

#include <stdlib.h>

int cp_pb_pack(const ProtobufCMessage *msg, uint8_t **out, size_t *outlen) {
  size_t n = protobuf_c_message_get_packed_size(msg);
  uint8_t *buf = cp_xmalloc(n);
  size_t w = protobuf_c_message_pack(msg, buf);
  if (w != n) {
    free(buf);
    return -1;
  }
  *out = buf;
  *outlen = n;
  return 0;
}

ProtobufCMessage *cp_pb_unpack(const ProtobufCMessageDescriptor *d, const uint8_t *buf,
                               size_t len, size_t max_len, char *err, size_t errlen) {
  if (len > max_len) {
    cp_err(err, errlen, "message is %zu bytes; the limit is %zu", len, max_len);
    return NULL;
  }
  /* protobuf-c accepts (NULL, 0) as the empty message; keep buf non-NULL anyway */
  static const uint8_t empty[1];
  ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, buf ? buf : empty);
  if (m == NULL) {
    cp_err(err, errlen, "malformed protobuf");
    return NULL;
  }
  return m;
}
