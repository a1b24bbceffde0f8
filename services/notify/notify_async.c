/* notify_async.c -- one pipe at a time on a non-blocking Redis connection, driven from the curl loop. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "notify_async.h"
#include "cp_redis.h"

struct nt_aredis {
  char *host;              // Redis host
  int port;                // Redis port
  int timeout_ms;          // longest a pipe may take before the connection is dropped
  redisContext *c;         // non-blocking connection; NULL until needed / after a failure
  cp_redis_pipe_t *p;            // the pipe in flight (the caller's), NULL when idle
  redisReply **replies;    // replies read so far
  size_t nreplies;         // replies read
  size_t want;             // replies expected (commands in p)
  bool written;            // every command has been written out
  int64_t started_mono;    // monotonic ms the pipe was sent
};

nt_aredis_t *nt_aredis_new(const char *host, int port, int timeout_ms) {
  nt_aredis_t *a = cp_xcalloc(1, sizeof *a);
  a->host = cp_strdup(host);
  a->port = port;
  a->timeout_ms = timeout_ms > 0 ? timeout_ms : 2000;
  return a;
}

static void drop_replies(nt_aredis_t *a) {
  for (size_t i = 0; i < a->nreplies; i++) freeReplyObject(a->replies[i]);
  free(a->replies);
  a->replies = NULL;
  a->nreplies = a->want = 0;
}

/* Give up on the connection and the pipe in flight. */
static int fail(nt_aredis_t *a, char *err, size_t errlen, const char *what) {
  int rc = cp_err(err, errlen, "redis %s:%d (async) %s: %s", a->host, a->port, what,
                  a->c && a->c->err ? a->c->errstr : strerror(errno ? errno : EIO));
  if (a->c) redisFree(a->c);
  a->c = NULL;
  drop_replies(a);
  a->p = NULL;
  return rc;
}

void nt_aredis_destroy(nt_aredis_t **ap) {
  nt_aredis_t *a = ap ? *ap : NULL;
  if (!a) return;
  drop_replies(a);
  if (a->c) redisFree(a->c);
  free(a->host);
  free(a);
  *ap = NULL;
}

bool nt_aredis_busy(const nt_aredis_t *a) { return a->p != NULL; }

int nt_aredis_fd(const nt_aredis_t *a, short *events) {
  *events = 0;
  if (!a->p || !a->c) return -1;
  *events = a->written ? POLLIN : (short)(POLLIN | POLLOUT);
  return a->c->fd;
}

/* Write what the socket takes now. */
static int flush_out(nt_aredis_t *a, char *err, size_t errlen) {
  int done = 0;
  if (redisBufferWrite(a->c, &done) != REDIS_OK) return fail(a, err, errlen, "write");
  a->written = done != 0;
  return 0;
}

int nt_aredis_send(nt_aredis_t *a, cp_redis_pipe_t *p, cp_redis_t *r, char *err, size_t errlen) {
  if (a->p) return cp_err(err, errlen, "redis (async): a pipe is already in flight");
  if (cp_redis_pipe_count(p) == 0) return cp_err(err, errlen, "redis (async): empty pipe");
  if (cp_redis_pipe_load_scripts(p, r, err, errlen) < 0) return -1;   /* once per process, blocking */
  if (!a->c) {
    errno = 0;
    /* where the blocking connection r is: the primary Sentinel named at its last connect */
    a->c = redisConnectNonBlock(cp_redis_host(r), cp_redis_port(r));
    if (!a->c || a->c->err) return fail(a, err, errlen, "connect");
  }
  if (cp_redis_pipe_append_to(p, a->c) < 0) return fail(a, err, errlen, "append");
  a->p = p;
  a->want = cp_redis_pipe_count(p);
  a->replies = cp_xcalloc(a->want, sizeof *a->replies);
  a->nreplies = 0;
  a->written = false;
  a->started_mono = cp_mono_ms();
  return flush_out(a, err, errlen);   /* non-blocking: a connect in progress just waits */
}

int nt_aredis_progress(nt_aredis_t *a, char *err, size_t errlen) {
  if (!a->p) return 0;
  if (!a->written && flush_out(a, err, errlen) < 0) return -1;
  if (a->written) {
    /* redisBufferRead reads what is there (EAGAIN is not an error in non-blocking mode) */
    errno = 0;
    if (redisBufferRead(a->c) != REDIS_OK) return fail(a, err, errlen, "read");
    while (a->nreplies < a->want) {
      void *rep = NULL;
      if (redisGetReplyFromReader(a->c, &rep) != REDIS_OK) return fail(a, err, errlen, "reply");
      if (!rep) break;
      a->replies[a->nreplies++] = rep;
    }
  }
  if (a->nreplies == a->want) {
    cp_redis_pipe_take_replies(a->p, a->replies, a->nreplies);
    a->replies = NULL;
    a->nreplies = a->want = 0;
    a->p = NULL;
    return 1;
  }
  if (cp_mono_ms() - a->started_mono > a->timeout_ms) {
    errno = ETIMEDOUT;
    return fail(a, err, errlen, "timeout");
  }
  return 0;
}
