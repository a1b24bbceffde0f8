/* cp_zmq.h -- ZeroMQ helpers: sockets with carepass's standard options, and
 * sending / receiving protobuf messages with size limits. */
#ifndef CP_ZMQ_H
#define CP_ZMQ_H

#include <zmq.h>
#include <protobuf-c/protobuf-c.h>
#include "cp_util.h"

/* Create a socket of `type`, set LINGER (ms), SNDHWM/RCVHWM (hwm) and, when
 * maxmsg > 0, ZMQ_MAXMSGSIZE; then bind (bind = true) or connect to each
 * comma-separated endpoint. Returns NULL with err set on failure.
 * LINGER is 0: zmq_ctx_term never blocks at shutdown; unsent messages are
 * dropped (work in flight is held in Redis and re-driven, not in socket queues).
 * endpoints NULL or "" creates the socket without binding/connecting, so the
 * caller can set more options (e.g. CURVE) first. */
void *cp_zmq_socket(void *ctx, int type, const char *endpoints, bool bind,
                    int hwm, int64_t maxmsg, char *err, size_t errlen);

/* Close a socket and set *sock to NULL; safe on NULL. */
void cp_zmq_close(void **sock);

/* Pack `msg` and send it as one frame (flags as zmq_send, e.g. ZMQ_SNDMORE|ZMQ_DONTWAIT). */
int cp_zmq_send_pb(void *sock, const ProtobufCMessage *msg, int flags) CP_WUR;

/* Receive one frame into a malloc'd buffer (*buf, *len); -1 on error/EINTR/EAGAIN (errno kept). */
int cp_zmq_recv_frame(void *sock, uint8_t **buf, size_t *len, int flags) CP_WUR;

/* Receive a whole multipart message: up to max_frames frames into a malloc'd
 * array of zmq_msg_t (caller closes each and frees). Extra frames are drained
 * and counted as an error (-1, errno = EPROTO). */
int cp_zmq_recv_multipart(void *sock, zmq_msg_t **frames, int *nframes, int max_frames) CP_WUR;
void cp_zmq_free_multipart(zmq_msg_t **frames, int nframes);

/* Bind a ZAP handler (ZMQ_REP on inproc://zeromq.zap.01) in its own thread that
 * admits a CURVE client when `admit(public_key_z85, arg)` returns true and sets
 * the connection's user id to the value written by `admit` into user_id
 * (<= 64 bytes; e.g. the provider id). Stop it with cp_zap_stop(). */
/*
 * Using it on a CurveZMQ server socket (e.g. intake's ROUTER):
 *   cp_zap_t *zap = cp_zap_start(ctx, admit, arg, err, sizeof err);   // before bind
 *   int one = 1;
 *   zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one);
 *   zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, sec_z85, 40);           // Z85 text: length 40
 *   zmq_bind(sock, endpoint);
 * (cp_zmq_socket binds at once, so for a CURVE server pass endpoints = NULL and
 * bind after setting the CURVE options.) Each received message carries the id the
 * admit callback wrote: zmq_msg_gets(&msg, "User-Id") (NULL if none). Clients set
 * ZMQ_CURVE_SERVERKEY, ZMQ_CURVE_PUBLICKEY and ZMQ_CURVE_SECRETKEY before connect.
 * Refused clients simply never complete the handshake.
 */
typedef bool (*cp_zap_admit_fn)(const char *client_key_z85, char *user_id, size_t user_id_len, void *arg);
typedef struct cp_zap cp_zap_t;
cp_zap_t *cp_zap_start(void *ctx, cp_zap_admit_fn admit, void *arg, char *err, size_t errlen);
void cp_zap_stop(cp_zap_t **zap);

#endif
