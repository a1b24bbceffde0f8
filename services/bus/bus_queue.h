/* bus_queue.h -- one bus queue: a libzmq zmq_proxy_steerable between two bound sockets, in its own thread. */
#ifndef BUS_QUEUE_H
#define BUS_QUEUE_H

#include "cp_util.h"

typedef struct bus_queue bus_queue_t;

/* Bind `front` (type ftype) and `back` (type btype) with high-water mark hwm and
 * start zmq_proxy_steerable between them in a new thread. `name` names the queue
 * in logs and its inproc control endpoint. NULL with err set on failure. */
bus_queue_t *bus_queue_start(void *ctx, const char *name, int ftype, const char *front, int btype,
                             const char *back, int hwm, char *err, size_t errlen);

/* Has the proxy thread ended on its own (an error)? */
bool bus_queue_failed(const bus_queue_t *q);

/* Send TERMINATE to the proxy, join the thread, close the sockets; safe on NULL. */
void bus_queue_stop(bus_queue_t **q);

#endif
