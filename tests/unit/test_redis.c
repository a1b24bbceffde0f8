/* test_redis.c -- cp_redis against a real redis-server: commands, error replies, pipelines, reconnects. */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "cp_redis.h"

#define REDIS_SERVER "/usr/bin/redis-server"
#define START_WAIT_MS 10000   /* bound on waiting for redis-server to answer PING */
#define STOP_WAIT_MS 10000    /* bound on waiting for it to exit after SIGTERM */
#define TIMEOUT_MS 2000       /* cp_redis command timeout */

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

/* A loopback TCP port that was free a moment ago. */
static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t len = sizeof a;
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  close(fd);
  return ntohs(a.sin_port);
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

static cp_redis_t *connect_to(const srv_t *s) {
  char err[CP_ERRLEN] = "";
  cp_redis_t *r = cp_redis_new("127.0.0.1", s->port, TIMEOUT_MS, err, sizeof err);
  if (r == NULL) fail_msg("cp_redis_new: %s", err);
  return r;
}

static long long client_id(cp_redis_t *r) {
  redisReply *rep = cp_redis_cmd(r, "CLIENT ID");
  assert_non_null(rep);
  assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
  long long id = rep->integer;
  freeReplyObject(rep);
  return id;
}

static void expect_str(redisReply *rep, const char *want) {
  assert_non_null(rep);
  assert_int_equal(rep->type, REDIS_REPLY_STRING);
  assert_int_equal(rep->len, strlen(want));
  assert_memory_equal(rep->str, want, rep->len);
  freeReplyObject(rep);
}

/* Plain commands, printf-style and argv (binary-safe); a refused connection. */
static void test_cmd(void **state) {
  srv_t *s = *state;
  cp_redis_t *r = connect_to(s);
  redisReply *rep = cp_redis_cmd(r, "SET %s %s", "cp:test:{k}", "v1");
  assert_non_null(rep);
  assert_int_equal(rep->type, REDIS_REPLY_STATUS);
  freeReplyObject(rep);
  expect_str(cp_redis_cmd(r, "GET %s", "cp:test:{k}"), "v1");
  rep = cp_redis_cmd(r, "INCRBY cp:test:{n} %d", 41);
  assert_non_null(rep);
  assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
  assert_int_equal(rep->integer, 41);
  freeReplyObject(rep);
  rep = cp_redis_cmd(r, "GET cp:test:{missing}");
  assert_non_null(rep);
  assert_int_equal(rep->type, REDIS_REPLY_NIL);
  freeReplyObject(rep);

  /* argv with a NUL byte inside the value */
  const char *argv[] = {"HSET", "cp:ev:{PRV-0001:e1}", "pending", "a\0b"};
  const size_t lens[] = {4, strlen(argv[1]), 7, 3};
  rep = cp_redis_cmd_argv(r, 4, argv, lens);
  assert_non_null(rep);
  assert_int_equal(rep->integer, 1);
  freeReplyObject(rep);
  rep = cp_redis_cmd(r, "HGET %s %s", argv[1], "pending");
  assert_non_null(rep);
  assert_int_equal(rep->len, 3);
  assert_memory_equal(rep->str, "a\0b", 3);
  freeReplyObject(rep);
  /* %b binary-safe formatting */
  rep = cp_redis_cmd(r, "SET cp:test:{b} %b", "x\0y", (size_t)3);
  assert_non_null(rep);
  freeReplyObject(rep);
  rep = cp_redis_cmd(r, "STRLEN cp:test:{b}");
  assert_int_equal(rep->integer, 3);
  freeReplyObject(rep);
  cp_redis_destroy(&r);
  assert_null(r);
  cp_redis_destroy(&r); /* safe on NULL */

  /* nothing listening: NULL and a message naming host:port */
  char err[CP_ERRLEN] = "";
  int dead = free_port();
  assert_null(cp_redis_new("127.0.0.1", dead, 500, err, sizeof err));
  char want[64];
  snprintf(want, sizeof want, "127.0.0.1:%d", dead);
  assert_non_null(strstr(err, want));
}

/* An error reply is NULL + errstr, and the connection stays usable. */
static void test_error_reply(void **state) {
  srv_t *s = *state;
  cp_redis_t *r = connect_to(s);
  long long id = client_id(r);
  redisReply *rep = cp_redis_cmd(r, "SET cp:test:{str} x");
  freeReplyObject(rep);
  assert_null(cp_redis_cmd(r, "LPUSH cp:test:{str} y")); /* wrong type */
  assert_non_null(strstr(cp_redis_errstr(r), "WRONGTYPE"));
  assert_null(cp_redis_cmd(r, "NOSUCHCOMMAND a b"));
  assert_non_null(strstr(cp_redis_errstr(r), "unknown command"));
  const char *argv[] = {"INCR", "cp:test:{str}"};
  assert_null(cp_redis_cmd_argv(r, 2, argv, NULL));
  assert_non_null(strstr(cp_redis_errstr(r), "not an integer"));
  /* same connection: an error reply is not a connection error */
  assert_int_equal(client_id(r), id);
  expect_str(cp_redis_cmd(r, "GET cp:test:{str}"), "x");
  cp_redis_destroy(&r);
}

/* Replies come back in the order the commands were queued, error replies in place. */
static void test_pipeline_order(void **state) {
  srv_t *s = *state;
  cp_redis_t *r = connect_to(s);
  enum { N = 300 };
  cp_redis_pipeline_begin(r);
  for (int i = 0; i < N; i++) {
    if (i % 3 == 0)
      cp_redis_append(r, "RPUSH cp:test:{list} %d", i);
    else if (i % 3 == 1)
      cp_redis_append(r, "SET cp:test:{k%d} v%d", i, i);
    else
      cp_redis_append(r, "GET cp:test:{k%d}", i - 1);
  }
  const char *argv[] = {"INCR", "cp:test:{k1}"}; /* "v1" is not an integer: an error reply */
  cp_redis_append_argv(r, 2, argv, NULL);
  cp_redis_append(r, "LRANGE cp:test:{list} 0 -1");
  redisReply **reps = NULL;
  int n = 0;
  assert_int_equal(cp_redis_pipeline_exec(r, &reps, &n), 0);
  assert_int_equal(n, N + 2);
  for (int i = 0; i < N; i++) {
    if (i % 3 == 0) {
      assert_int_equal(reps[i]->type, REDIS_REPLY_INTEGER);
      assert_int_equal(reps[i]->integer, i / 3 + 1); /* list length after this push */
    } else if (i % 3 == 1) {
      assert_int_equal(reps[i]->type, REDIS_REPLY_STATUS);
    } else {
      char want[16];
      snprintf(want, sizeof want, "v%d", i - 1);
      assert_int_equal(reps[i]->type, REDIS_REPLY_STRING);
      assert_string_equal(reps[i]->str, want);
    }
  }
  assert_int_equal(reps[N]->type, REDIS_REPLY_ERROR); /* left for the caller to inspect */
  assert_int_equal(reps[N + 1]->type, REDIS_REPLY_ARRAY);
  assert_int_equal(reps[N + 1]->elements, N / 3);
  for (size_t j = 0; j < reps[N + 1]->elements; j++)
    assert_int_equal(atoi(reps[N + 1]->element[j]->str), (int)j * 3);
  for (int i = 0; i < n; i++) freeReplyObject(reps[i]);
  free(reps);

  /* an empty pipeline is fine */
  cp_redis_pipeline_begin(r);
  assert_int_equal(cp_redis_pipeline_exec(r, &reps, &n), 0);
  assert_int_equal(n, 0);
  free(reps);
  /* and plain commands work after pipelines */
  expect_str(cp_redis_cmd(r, "GET cp:test:{k1}"), "v1");
  cp_redis_destroy(&r);
}

/* The server drops our connection (CLIENT KILL): the next command reconnects once and succeeds. */
static void test_reconnect_after_client_kill(void **state) {
  srv_t *s = *state;
  cp_redis_t *r = connect_to(s);
  cp_redis_t *admin = connect_to(s);
  long long id = client_id(r);
  redisReply *rep = cp_redis_cmd(admin, "CLIENT KILL ID %lld", id);
  assert_non_null(rep);
  assert_int_equal(rep->integer, 1);
  freeReplyObject(rep);

  rep = cp_redis_cmd(r, "SET cp:test:{after-kill} 1");
  assert_non_null(rep);
  assert_int_equal(rep->type, REDIS_REPLY_STATUS);
  freeReplyObject(rep);
  long long id2 = client_id(r);
  assert_true(id2 != id); /* a new connection */

  /* killed between pipeline_begin and exec: exec fails (-1), the caller re-queues, the retry works */
  cp_redis_pipeline_begin(r);
  cp_redis_append(r, "INCR cp:test:{ctr}");
  cp_redis_append(r, "INCR cp:test:{ctr}");
  rep = cp_redis_cmd(admin, "CLIENT KILL ID %lld", id2);
  freeReplyObject(rep);
  redisReply **reps = NULL;
  int n = 0;
  assert_int_equal(cp_redis_pipeline_exec(r, &reps, &n), -1);
  assert_null(reps);
  assert_true(cp_redis_errstr(r)[0] != '\0');
  cp_redis_pipeline_begin(r);
  cp_redis_append(r, "GET cp:test:{after-kill}");
  assert_int_equal(cp_redis_pipeline_exec(r, &reps, &n), 0);
  assert_int_equal(n, 1);
  assert_string_equal(reps[0]->str, "1");
  freeReplyObject(reps[0]);
  free(reps);

  cp_redis_destroy(&admin);
  cp_redis_destroy(&r);
}

/* Redis goes away and comes back on the same port: commands fail (NULL + errstr)
 * while it is down and work again, without a new cp_redis_t, once it is back. */
static void test_reconnect_after_restart(void **state) {
  srv_t *s = *state;
  cp_redis_t *r = connect_to(s);
  redisReply *rep = cp_redis_cmd(r, "SET cp:test:{before} 1");
  freeReplyObject(rep);

  srv_stop(s);
  assert_null(cp_redis_cmd(r, "PING"));
  const char *e = cp_redis_errstr(r);
  assert_true(e[0] != '\0');
  char want[64];
  snprintf(want, sizeof want, "127.0.0.1:%d", s->port);
  assert_non_null(strstr(e, want));
  assert_int_equal(cp_redis_reconnect(r), -1);
  cp_redis_pipeline_begin(r);
  cp_redis_append(r, "PING");
  redisReply **reps = NULL;
  int n = 0;
  assert_int_equal(cp_redis_pipeline_exec(r, &reps, &n), -1);

  assert_int_equal(srv_start(s), 0);
  rep = cp_redis_cmd(r, "PING");
  assert_non_null(rep);
  assert_string_equal(rep->str, "PONG");
  freeReplyObject(rep);
  /* no persistence: the old key is gone, the server is a fresh one */
  rep = cp_redis_cmd(r, "EXISTS cp:test:{before}");
  assert_int_equal(rep->integer, 0);
  freeReplyObject(rep);

  /* restart again while connected (no failed command in between) */
  srv_stop(s);
  assert_int_equal(srv_start(s), 0);
  rep = cp_redis_cmd(r, "SET cp:test:{after} 2"); /* the stale connection fails; one reconnect + retry */
  assert_non_null(rep);
  freeReplyObject(rep);
  expect_str(cp_redis_cmd(r, "GET cp:test:{after}"), "2");
  assert_int_equal(cp_redis_reconnect(r), 0);
  cp_redis_destroy(&r);
}

int main(void) {
  if (access(REDIS_SERVER, X_OK) != 0) {
    fprintf(stderr, "test_redis: %s not found; install redis-server\n", REDIS_SERVER);
    return 1;
  }
  signal(SIGPIPE, SIG_IGN); /* writing to a connection the server closed */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_cmd, setup, teardown),
      cmocka_unit_test_setup_teardown(test_error_reply, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pipeline_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reconnect_after_client_kill, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reconnect_after_restart, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
