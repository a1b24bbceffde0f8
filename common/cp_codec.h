/* cp_codec.h -- protobuf pack/unpack with explicit size limits. Every unpack is
 * checked for NULL; every pack for its length. */
#ifndef CP_CODEC_H
#define CP_CODEC_H

#include <protobuf-c/protobuf-c.h>
#include "cp_util.h"

/* Pack msg into a malloc'd buffer. Returns 0 / -1 (only on OOM or if the packed
 * size disagrees with get_packed_size, which is a bug). */
int cp_pb_pack(const ProtobufCMessage *msg, uint8_t **out, size_t *outlen) CP_WUR;

/* Unpack `len` bytes as descriptor `d`; refuses len > max_len. Returns NULL
 * with err set ("message is N bytes; the limit is M" or "malformed protobuf").
 * Free with protobuf_c_message_free_unpacked(msg, NULL). */
ProtobufCMessage *cp_pb_unpack(const ProtobufCMessageDescriptor *d, const uint8_t *buf,
                               size_t len, size_t max_len, char *err, size_t errlen);

#endif
