/* redis_server.h -- one real redis-server per unit test (cmocka setup/teardown), for the tests of
 * the Redis layer and of what uses it (test_redis.c, test_projection.c). Header-only: static. */
#ifndef TEST_REDIS_SERVER_H
#define TEST_REDIS_SERVER_H

#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "cp_util.h"

#define REDIS_SERVER "/usr/bin/redis-server"
#define START_WAIT_MS 10000   /* bound on waiting for redis-server to answer PING */
#define STOP_WAIT_MS 10000    /* bound on waiting for it to exit after SIGTERM */

/* One redis-server for one test. */
typedef struct {
  char dir[64];   // temp directory: redis data and log
  int port;       // loopback port it listens on
  pid_t pid;      // redis-server process, 0 when not running
} srv_t;

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* A TCP socket bound to a free loopback port (in *port). */
static int loopback_socket(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t len = sizeof a;
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  *port = ntohs(a.sin_port);
  return fd;
}

/* A loopback TCP port that was free a moment ago. */
static int free_port(void) {
  int port;
  close(loopback_socket(&port));
  return port;
}

/* Is something answering PING on the port? (raw hiredis, independent of cp_redis) */
static bool pings(int port) {
  struct timeval tv = {0, 200000};
  redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
  bool ok = false;
  if (c != NULL && !c->err) {
    redisReply *r = redisCommand(c, "PING");
    ok = r != NULL && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
    if (r) freeReplyObject(r);
  }
  if (c) redisFree(c);
  return ok;
}

/* Start redis-server on s->port (no persistence) and wait until it answers. */
static int srv_start(srv_t *s) {
  char port[16], logfile[96];
  snprintf(port, sizeof port, "%d", s->port);
  snprintf(logfile, sizeof logfile, "%s/redis.log", s->dir);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    execl(REDIS_SERVER, REDIS_SERVER, "--port", port, "--bind", "127.0.0.1", "--save", "",
          "--appendonly", "no", "--dir", s->dir, "--daemonize", "no", "--logfile", logfile,
          (char *)NULL);
    _exit(127);
  }
  s->pid = pid;
  for (int waited = 0; waited < START_WAIT_MS; waited += 20) {
    if (pings(s->port)) return 0;
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) { /* exited: e.g. the port was taken meanwhile */
      s->pid = 0;
      return -1;
    }
    sleep_ms(20);
  }
  return -1;
}

/* SIGTERM, bounded wait, then SIGKILL. */
static void srv_stop(srv_t *s) {
  if (s->pid <= 0) return;
  kill(s->pid, SIGTERM);
  int st;
  for (int waited = 0; waited < STOP_WAIT_MS; waited += 10) {
    if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
      s->pid = 0;
      return;
    }
    sleep_ms(10);
  }
  kill(s->pid, SIGKILL);
  waitpid(s->pid, &st, 0);
  s->pid = 0;
}

static int setup(void **state) {
  srv_t *s = cp_xcalloc(1, sizeof *s);
  snprintf(s->dir, sizeof s->dir, "/tmp/cp-test-redis-XXXXXX");
  if (mkdtemp(s->dir) == NULL) return -1;
  for (int attempt = 0; attempt < 3; attempt++) { /* another process may grab the port first */
    s->port = free_port();
    if (srv_start(s) == 0) {
      *state = s;
      return 0;
    }
    srv_stop(s);
  }
  fprintf(stderr, "could not start %s (see %s/redis.log)\n", REDIS_SERVER, s->dir);
  return -1;
}

static int teardown(void **state) {
  srv_t *s = *state;
  srv_stop(s);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
  int rc = system(cmd);
  free(s);
  return rc == 0 ? 0 : -1;
}

#endif
